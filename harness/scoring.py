"""Scoring: one path from stored predictions to a task's result, used by a run and by ``unitoken-eval score``.

``score`` scores a predictions file (or a folder of generated images) without a model, so predictions made
elsewhere (another harness, an earlier run) are checked by exactly the code a run uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from unitoken_eval.harness import registry
from unitoken_eval.harness.types import Prediction
from unitoken_eval.harness.plugin import NotScored, ScoreContext, Task, TaskError, tolerate
from unitoken_eval.harness.types import Sample, TaskResult


def make_judge(spec: Optional[str]):
    """The judge client for ``--judge`` (None or 'none' means no judge)."""
    if spec in (None, "", "none"):
        return None
    from unitoken_eval.harness.judge import Judge

    return Judge.from_spec(spec)


def score_predictions(
    task: Task,
    samples: list[Sample],
    predictions: dict[str, Prediction],
    ctx: ScoreContext,
    keep_records: Optional[Callable[[dict[str, dict[str, Any]]], None]] = None,
) -> tuple[TaskResult, dict[str, dict[str, Any]]]:
    """A task's result and per-sample records from its samples and their predictions.

    Error predictions (bad input under ``--skip-bad``) are counted, not scored; samples without a prediction
    are counted as missing; both are said in the warnings.  ``keep_records`` stores the per-sample records
    before they are aggregated (a run's scores.jsonl).  :class:`NotScored` from the task becomes a not-scored
    result with its reason.
    """
    errors = {k: p for k, p in predictions.items() if p.error is not None}
    usable = {k: p for k, p in predictions.items() if p.error is None}
    missing = [s.id for s in samples if s.id not in predictions]
    if missing:
        ctx.warn(f"{task.id}: {len(missing)} samples have no prediction (first: {missing[0]})")
    records: dict[str, dict[str, Any]] = {}
    try:
        records = task.score([s for s in samples if s.id in usable], usable, ctx)
        if keep_records is not None:
            keep_records(records)
        result = task.aggregate(records, ctx)
    except NotScored as exc:
        ctx.warn(f"{task.id}: not scored: {exc}")
        result = task.not_scored(ctx.profile, str(exc))
    result.n_errors = len(errors)
    result.n_samples = len(samples)
    result.n_missing = len(missing)
    if errors:
        first = next(iter(errors.values()))
        ctx.warn(f"{task.id}: {len(errors)} of {len(samples)} samples recorded as errors, not in the metrics "
                 f"(first: {first.sample_id}: {first.error})")
    result.warnings = list(dict.fromkeys(result.warnings + ctx.warnings))
    return result, records


def read_predictions_file(path: str | Path, skip_bad: bool = False) -> dict[str, Prediction]:
    """Read ``{"index": ..., "prediction": "..."}`` lines (``id`` accepted for ``index``; an optional
    ``extraction`` is kept in the prediction's ``meta``).

    Indices are compared as strings (``12`` and ``"12"`` are the same sample); a bad line is an error
    naming the file and line, and a repeated index is an error rather than a silent overwrite.  With
    ``skip_bad`` a line whose index is readable but whose prediction is not a string becomes that sample's
    error record; a line that names no sample (not JSON, no index) stays an error, as it cannot be counted.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"predictions file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out: dict[str, Prediction] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TaskError(f"{path}:{lineno}: expected a JSON object")
        key = obj.get("index", obj.get("id"))
        if key is None or isinstance(key, (dict, list, bool)):
            raise TaskError(f"{path}:{lineno}: missing or invalid 'index'")
        pred = obj.get("prediction")
        sid = str(key)
        if sid in out:
            raise TaskError(f"{path}:{lineno}: index {sid!r} appears more than once")
        if not isinstance(pred, str):
            out[sid] = Prediction(sample_id=sid, error=tolerate(
                f"{path}:{lineno}: 'prediction' must be a string (index {sid!r})", skip_bad))
            continue
        # An answer already extracted from the prediction (by the benchmark's own pipeline): tasks that
        # extract answers score it as given.
        meta = {"extraction": obj["extraction"]} if "extraction" in obj else {}
        out[sid] = Prediction(sample_id=sid, text=pred, meta=meta)
    return out


def score_files(
    task_id: str,
    data: Optional[str],
    predictions: Optional[str] = None,
    images: Optional[str] = None,
    detections: Optional[str] = None,
    profile: Optional[str] = None,
    judge: Optional[str] = None,
    skip_bad: bool = False,
    options: Optional[dict[str, Any]] = None,
    partial: bool = False,
) -> dict[str, Any]:
    """Score files as a run would; with ``skip_bad`` bad rows, images or predictions are counted as errors.

    Files that cover only part of the task's samples are refused unless ``partial`` is given; the result then
    says how many samples it covers and is marked partial.

    ``options`` are the task's options (as ``options.<task>`` of a run config: local scorer weights, ...)."""
    options = dict(options or {})
    if images:
        options["images_dir"] = images
    if detections:
        options["detections"] = detections
    task = registry.make_task(task_id, options)
    if task.subtasks:
        raise TaskError(f"{task_id} is a group task: score its members ({', '.join(task.subtasks)}) one by one")
    task.skip_bad = skip_bad
    samples = task.load(data, None)
    bad_rows = {s.id: Prediction(sample_id=s.id, error=s.error) for s in samples if s.error is not None}
    bad_samples = [s for s in samples if s.error is not None]
    samples = [s for s in samples if s.error is None]
    left_out: dict[str, str] = {}
    if task.kind == "generate":
        if not images:
            raise TaskError(f"{task_id} scores generated images: pass --images DIR")
        preds = task.predictions_from_images(Path(images), samples)
    else:
        if not predictions:
            raise TaskError(f"{task_id} needs --predictions FILE")
        native = task.read_native_predictions(Path(predictions))
        preds = native if native is not None else read_predictions_file(predictions, skip_bad=skip_bad)
        # Rows of another split of the same file (MMMU_DEV_VAL's dev rows) are counted as left out, not refused.
        left_out = {k: task.left_out[k] for k in preds if k in task.left_out}
        preds = {k: p for k, p in preds.items() if k not in left_out}
        known = {s.id for s in samples} | set(bad_rows)
        unknown = [k for k in preds if k not in known]
        if unknown:
            raise TaskError(
                f"{predictions}: {len(unknown)} indices are not in the data of {task_id} (first: {unknown[0]!r})"
            )
    preds = {**{k: p for k, p in preds.items() if k not in bad_rows}, **bad_rows}
    missing = [s.id for s in samples if s.id not in preds]
    source = predictions or images
    if missing and not partial:
        raise TaskError(f"{source}: covers {len(samples) - len(missing)} of {len(samples)} samples of {task_id} "
                        f"(first without a prediction: {missing[0]!r}); pass --partial to score only those "
                        "(the result is then marked partial)")
    work_dir = Path(images) if images else None
    ctx = ScoreContext(profile=task.profile(profile), work_dir=work_dir, judge=make_judge(judge))
    if left_out:
        why = sorted(set(left_out.values()))
        ctx.warn(f"{task_id}: {len(left_out)} predictions left out, for rows outside the scored data "
                 f"({', '.join(why)})")
    result, records = score_predictions(task, samples + bad_samples, preds, ctx)
    errors = {k: p for k, p in preds.items() if p.error is not None}
    return {
        "task": task_id,
        "profile": result.profile,
        "headline": result.headline.to_json(),
        "metrics": result.metrics,
        "per_sample": {k: v.get("score") for k, v in records.items()},
        "n": result.n,
        "n_samples": result.n_samples,
        "n_errors": result.n_errors,
        "n_missing": result.n_missing,
        "n_left_out": len(left_out),
        "partial": result.partial,
        "coverage": result.coverage(),
        "errors": {k: p.error for k, p in errors.items()},
        "status": result.status,
        "reason": result.reason,
        "reference": result.reference,
        "warnings": result.warnings,
    }
