"""Run specifications: a YAML file (or CLI flags) validated into :class:`RunConfig` with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model_adapters.base import parse_model_args


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


def _format(exc: ValidationError, origin: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{origin}: field '{loc}': {err['msg']}")
    return "\n".join(parts)


def load_config(source: Union[str, Path, dict], origin: Optional[str] = None) -> RunConfig:
    if isinstance(source, dict):
        raw = source
        origin = origin or "config"
    else:
        path = Path(source)
        origin = origin or str(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{origin}: no such file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: expected a mapping at the top level")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin)) from None
