"""``unitoken-eval score``: score a predictions file (or a folder of generated images) without a model.

This is the same scoring code a run uses; it exists so predictions made elsewhere (another harness, an
earlier run) can be checked against the reference scorers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from harness import registry
from harness.types import Prediction
from tasks.base import ScoreContext, TaskError, tolerate


def read_predictions_file(path: str | Path, skip_bad: bool = False) -> dict[str, Prediction]:
    """Read ``{"index": ..., "prediction": "..."}`` lines (``id`` accepted for ``index``).

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
        out[sid] = Prediction(sample_id=sid, text=pred)
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
    partial: bool = False,
) -> dict[str, Any]:
    """Score files as a run would; with ``skip_bad`` bad rows, images or predictions are counted as errors.

    Files that cover only part of the task's samples are refused unless ``partial`` is given; the result then
    says how many samples it covers and is marked partial.
    """
    from harness.runner import make_judge

    options: dict[str, Any] = {}
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
    samples = [s for s in samples if s.error is None]
    if task.kind == "generate":
        if not images:
            raise TaskError(f"{task_id} scores generated images: pass --images DIR")
        preds = task.predictions_from_images(Path(images), samples)
    else:
        if not predictions:
            raise TaskError(f"{task_id} needs --predictions FILE")
        preds = read_predictions_file(predictions, skip_bad=skip_bad)
        known = {s.id for s in samples} | set(bad_rows)
        unknown = [k for k in preds if k not in known]
        if unknown:
            raise TaskError(
                f"{predictions}: {len(unknown)} indices are not in the data of {task_id} (first: {unknown[0]!r})"
            )
    missing = [s.id for s in samples if s.id not in preds]
    source = predictions or images
    if missing and not partial:
        raise TaskError(f"{source}: covers {len(samples) - len(missing)} of {len(samples)} samples of {task_id} "
                        f"(first without a prediction: {missing[0]!r}); pass --partial to score only those "
                        "(the result is then marked partial)")
    errors = {**{k: p for k, p in preds.items() if p.error is not None}, **bad_rows}
    preds = {k: p for k, p in preds.items() if p.error is None and k not in bad_rows}
    work_dir = Path(images) if images else None
    ctx = ScoreContext(profile=task.profile(profile), work_dir=work_dir, judge=make_judge(judge), options=options)
    scored = [s for s in samples if s.id in preds]
    records = task.score(scored, preds, ctx)
    result = task.aggregate(records, ctx)
    result.n_samples, result.n_errors, result.n_missing = len(samples) + len(bad_rows), len(errors), len(missing)
    if missing:
        ctx.warn(f"{task_id}: {len(missing)} samples have no prediction (first: {missing[0]}); {result.coverage()}")
    if errors:
        ctx.warn(f"{task_id}: {len(errors)} samples recorded as errors, not in the metrics "
                 f"(first: {next(iter(errors.values())).error})")
    return {
        "task": task_id,
        "profile": result.profile,
        "headline": result.headline.to_json(),
        "metrics": result.metrics,
        "per_sample": {k: v.get("score") for k, v in records.items()},
        "n": result.n,
        "n_samples": result.n_samples,
        "n_errors": len(errors),
        "n_missing": len(missing),
        "partial": result.partial,
        "coverage": result.coverage(),
        "errors": {k: p.error for k, p in errors.items()},
        "status": result.status,
        "reason": result.reason,
        "reference": result.reference,
        "warnings": result.warnings + [w for w in ctx.warnings if w not in result.warnings],
    }
