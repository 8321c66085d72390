"""Find tasks, model adapters and suites through Python entry points.

Groups: ``unitoken_eval.tasks`` (name = task id, value = Task subclass), ``unitoken_eval.model_adapters``
(name = adapter id, value = ModelAdapter subclass) and ``unitoken_eval.suites`` (name = suite id, value =
a module attribute holding the path of a run-config YAML).  Our own tasks register the same way a third
party's do, so nothing here names a benchmark or a model.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from unitoken_eval.harness.plugin import ModelAdapter, Task

TASK_GROUP = "unitoken_eval.tasks"
ADAPTER_GROUP = "unitoken_eval.model_adapters"
SUITE_GROUP = "unitoken_eval.suites"


class RegistryError(Exception):
    """An id that names nothing registered, or an entry point that does not load."""


@lru_cache(maxsize=None)
def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        # First registration wins; a duplicate from another distribution is ignored rather than shadowing ours.
        found.setdefault(ep.name, ep)
    return found


def clear_cache() -> None:
    _entry_points.cache_clear()


def _load(group: str, kind: str, name: str) -> Any:
    eps = _entry_points(group)
    if name not in eps:
        hint = difflib.get_close_matches(name, list(eps), n=3)
        extra = f"; did you mean {', '.join(hint)}?" if hint else ""
        known = ", ".join(sorted(eps)) or "none registered"
        raise RegistryError(f"unknown {kind} {name!r}{extra} (known: {known}; see `unitoken-eval list`)")
    ep = eps[name]
    try:
        return ep.load()
    except ImportError as exc:
        raise RegistryError(f"{kind} {name!r} ({ep.value}) failed to import: {exc}") from exc


def task_ids() -> list[str]:
    return sorted(_entry_points(TASK_GROUP))


def adapter_ids() -> list[str]:
    return sorted(_entry_points(ADAPTER_GROUP))


def suite_ids() -> list[str]:
    return sorted(_entry_points(SUITE_GROUP))


def task_class(task_id: str):
    cls = _load(TASK_GROUP, "task", task_id)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise RegistryError(f"task {task_id!r} entry point does not name a Task subclass: {cls!r}")
    return cls


def adapter_class(adapter_id: str):
    cls = _load(ADAPTER_GROUP, "model adapter", adapter_id)
    if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
        raise RegistryError(f"model adapter {adapter_id!r} entry point does not name a ModelAdapter subclass: {cls!r}")
    return cls


def suite_path(suite_id: str) -> str:
    value = _load(SUITE_GROUP, "suite", suite_id)
    return str(value)


def make_task(task_id: str, options: dict | None = None):
    return task_class(task_id)(options)


def expand_task_ids(ids: list[str]) -> list[str]:
    """Replace group tasks by their members (keeping the group itself for its combined score)."""
    out: list[str] = []
    for tid in ids:
        cls = task_class(tid)
        for sub in cls.subtasks:
            if sub not in out:
                out.append(sub)
        if tid not in out:
            out.append(tid)
    return out


def run_size(tasks: list[str], options: dict | None = None, smoke: bool = False) -> dict:
    """What a run of ``tasks`` does on whole benchmarks, from each task's declared ``full_size`` under the
    run's task options: per task its samples, input images (understanding) and generated images, and the
    totals.  Tasks that declare no size are listed under ``undeclared``; a smoke run uses the embedded few
    samples instead, so its full sizes do not apply (``smoke`` is reported as such)."""
    options = options or {}
    per_task: dict[str, dict] = {}
    undeclared: list[str] = []
    for tid in expand_task_ids(tasks):
        task = make_task(tid, options.get(tid))
        if task.subtasks:
            continue
        size = task.full_size
        if size is None:
            undeclared.append(tid)
            continue
        per_task[tid] = {"kind": task.kind, "samples": size.samples,
                         "input_images": size.input_images if task.kind == "understand" else 0,
                         "generated_images": size.samples * task.images_per_sample()}
    total = {k: sum(t[k] for t in per_task.values()) for k in ("samples", "input_images", "generated_images")}
    total["understanding_prompts"] = sum(t["samples"] for t in per_task.values() if t["kind"] == "understand")
    total["generation_prompts"] = sum(t["samples"] for t in per_task.values() if t["kind"] == "generate")
    return {"tasks": per_task, "total": total, "undeclared": undeclared, "smoke": smoke}


def suite_size(suite_id: str) -> dict:
    """:func:`run_size` of a registered suite's tasks and options."""
    from unitoken_eval.harness.config import load_config

    cfg = load_config(suite_path(suite_id), origin=f"suite {suite_id}")
    return run_size(cfg.tasks, cfg.options, smoke=bool(cfg.smoke))
