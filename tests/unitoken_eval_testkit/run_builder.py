"""Build run directories the way harness/store.py writes them, without running a model (tests only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.store import RunStore
from unitoken_eval.harness.types import Headline, TaskResult


def make_run(root: Path, model: str = "unitoken", data: Optional[dict] = None, limit: Optional[int] = None,
             profile: str = "official", smoke: bool = False, fingerprint: Optional[str] = None) -> RunStore:
    store = RunStore(root)
    identity = {"model": model, "model_args": {}, "profile": profile, "limit": limit, "smoke": smoke, "seed": 0,
                "data": data or {}, "options": {}}
    store.write_manifest({
        "run_id": root.name, "identity": identity, "tasks": [],
        "config": {**identity, "tasks": [], "judge": None},
        "versions": {"unitoken-eval": "0.1.0", "torch": "2.13.0"}, "git_commit": "abc123", "seed": 0,
        "model_fingerprint": fingerprint, "started": "2026-11-29T00:00:00+00:00", "finished": None,
    })
    return store


def add_task(store: RunStore, task: str, value: Optional[float], scale: str = "percent", name: str = "accuracy",
             metrics: Optional[dict[str, Any]] = None, scores: Optional[dict[str, Any]] = None,
             status: str = "scored", reason: Optional[str] = None, profile: str = "official",
             warnings: Optional[list[str]] = None, n_samples: Optional[int] = None,
             n_missing: int = 0) -> TaskResult:
    result = TaskResult(task=task, profile=profile, headline=Headline(name, value, scale), metrics=metrics or {},
                        n=len(scores or {}), status=status, reason=reason, reference="official scorer @ test",
                        warnings=warnings or [], n_samples=n_samples, n_missing=n_missing)
    store.write_metrics(result)
    if scores is not None:
        store.write_scores(task, {k: (v if isinstance(v, dict) else {"score": v}) for k, v in scores.items()})
    man = store.read_manifest()
    man["tasks"] = list(dict.fromkeys(man.get("tasks", []) + [task]))
    store.write_manifest(man)
    return result


def binary_scores(n: int, n_right: int, prefix: str = "") -> dict[str, int]:
    """n samples, the first n_right right."""
    return {f"{prefix}{i}": int(i < n_right) for i in range(n)}


def full_understanding_run(root: Path, **kw) -> RunStore:
    """A run with every understanding task of Table 6 scored (values chosen so the averages are checkable)."""
    store = make_run(root, **kw)
    for task, value in {"mmmu_val": 34.2, "mmbench_dev_cn": 64.1, "mmbench_dev_en": 70.3, "mmstar": 45.2,
                        "seedbench_img": 70.3, "mathvista_testmini": 41.6, "hallusionbench": 49.6,
                        "ai2d_test": 67.6, "mmvet": 30.0}.items():
        add_task(store, task, value)
    add_task(store, "mme", 1400.0, scale="points_0_2800", name="total")
    add_task(store, "ocrbench", 634.0, scale="points_0_1000", name="total")
    return store


def dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")
