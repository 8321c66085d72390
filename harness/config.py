"""Run specifications: a YAML file (or CLI flags) validated into :class:`RunConfig` with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from unitoken_eval.harness.plugin import parse_model_args


class ConfigError(Exception):
    """A run specification that cannot be used; the message names the file and the field."""


class SubsetSpec(BaseModel):
    """A fixed, seeded, stratified subset per task (harness/subset.py): ``sizes`` maps a task id to the number
    of units to keep (samples, or what the task keeps whole: an MMBench circular group, an MME image pair)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    sizes: dict[str, int] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"sizes must be >= 1, got {bad}")
        return value


class RunConfig(BaseModel):
    """One model on a list of tasks.

    ``data`` maps a task id to its data source (path or hub id); ``options`` maps a task id to task options
    (prompt overrides, generation settings such as ``cfg`` that go into that task's requests).
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    tasks: list[str]
    profile: Optional[Literal["official", "vlmevalkit"]] = None
    judge: Optional[str] = None
    limit: Optional[int] = Field(default=None, ge=1)
    smoke: bool = False
    seed: int = 0
    batch_size: Optional[int] = Field(default=None, ge=1)
    shard_size: int = Field(default=256, ge=1)
    skip_bad: bool = False
    retry_errors: bool = False
    data: dict[str, str] = Field(default_factory=dict)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    subset: Optional[SubsetSpec] = None

    @field_validator("model_args", mode="before")
    @classmethod
    def _args(cls, value: Union[str, dict, None]) -> dict:
        if value is None:
            return {}
        if isinstance(value, str):
            return parse_model_args(value)
        return value

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one task is required")
        return value


def _format(exc: ValidationError, origin: str, overrides: dict[str, str]) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        top = str(err["loc"][0]) if err["loc"] else ""
        # A value given on the command line is blamed on its flag, not on the file it overrode.
        where = f"command line: {overrides[top]}" if top in overrides else f"{origin}: field '{loc}'"
        parts.append(f"{where}: {err['msg']}")
    return "\n".join(parts)


def read_config_file(path: Union[str, Path], origin: Optional[str] = None) -> dict[str, Any]:
    """The mapping in a run-config YAML file, or a ConfigError naming the file (and line, for bad YAML)."""
    origin = origin or str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{origin}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin}: is a directory, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{origin}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{at} ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    return raw


def load_config(source: Union[str, Path, dict], origin: Optional[str] = None,
                overrides: Optional[dict[str, str]] = None) -> RunConfig:
    """Validate a run config (a mapping or a YAML file); ``overrides`` maps the fields that came from the
    command line to their flags, so an error names the flag rather than the file."""
    if isinstance(source, dict):
        raw = source
        origin = origin or "config"
    else:
        origin = origin or str(source)
        raw = read_config_file(source, origin)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin, overrides or {})) from None
