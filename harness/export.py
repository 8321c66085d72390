"""``unitoken-eval export``: a run's predictions in another harness's format, for its own scorers.

Only VLMEvalKit is written so far: one ``{model}_{dataset}.<xlsx|tsv|json>`` per understanding task read from a
VLMEvalKit TSV (the file VLMEvalKit's ``run.py`` writes after inference), so VLMEvalKit's ``evaluate`` can
score our predictions and the two scorers can be compared on the same answers.  The table needs the task's
data (VLMEvalKit's file repeats the TSV's columns), which is loaded from where the run read it (the run's
``--data``, the smoke data, or the default location).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.interop import InteropError
from unitoken_eval.harness.store import RunStore, StoreError, safe_name

log = logging.getLogger("unitoken_eval")


@dataclass
class Exported:
    task: str
    path: Optional[Path] = None
    rows: int = 0
    errors: int = 0          # samples recorded as errors, written with VLMEvalKit's failure marker
    missing: int = 0         # samples of the data without any record (a partial or --limit run)
    skipped: Optional[str] = None  # why no file was written for this task

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "path": str(self.path) if self.path else None, "rows": self.rows,
                "errors": self.errors, "missing": self.missing, "skipped": self.skipped}


@dataclass
class ExportReport:
    out_dir: Path
    model_name: str
    files: list[Exported] = field(default_factory=list)


def _task_source(task: Any, config: dict[str, Any]) -> Optional[str]:
    """Where the run read the task's data (as the runner decides it)."""
    source = (config.get("data") or {}).get(task.id)
    if source is None and config.get("smoke"):
        source = task.smoke_source()
    return source


def export_vlmevalkit(run_dir: Path, out_dir: Path, model_name: Optional[str] = None, file_format: str = "xlsx",
                      tasks: Optional[list[str]] = None) -> ExportReport:
    """Write VLMEvalKit prediction files for the run's understanding tasks; see the module docstring.

    ``model_name`` becomes the ``{model}`` part of the file names (default: the run's model id); it is
    sanitised, so it cannot lead outside ``out_dir``.  Tasks that are not read from a VLMEvalKit TSV
    (generation tasks) are reported as skipped, not errors.
    """
    from unitoken_eval.harness import registry
    from unitoken_eval.harness.interop.vlmeval_io import FAIL_MARKER, FILE_FORMATS, prediction_table, write_prediction_file

    if file_format not in FILE_FORMATS:
        raise InteropError(f"VLMEvalKit prediction files are {', '.join(FILE_FORMATS)}, not {file_format!r}")
    store = RunStore(Path(run_dir))
    manifest = store.read_manifest()
    config = manifest.get("config") or {}
    name = safe_name(model_name or config.get("model") or "model")
    stored = store.task_ids()
    wanted = tasks if tasks is not None else list(dict.fromkeys([*(manifest.get("tasks") or []), *stored]))
    report = ExportReport(out_dir=Path(out_dir), model_name=name)
    for tid in wanted:
        if safe_name(tid) not in stored:
            if tasks is not None:
                raise StoreError(f"{run_dir}: task {tid} has no predictions in this run")
            continue
        task = registry.make_task(tid, (config.get("options") or {}).get(tid))
        item = Exported(task=tid)
        report.files.append(item)
        tsv_name = getattr(task, "tsv_name", None)
        if task.kind != "understand" or not tsv_name or task.subtasks:
            item.skipped = "not a task read from a VLMEvalKit TSV"
            continue
        preds = store.read_predictions(tid)
        samples = task.load(_task_source(task, config), None)
        texts: dict[str, str] = {}
        for s in samples:
            p = preds.get(s.id)
            if p is None:
                item.missing += 1
            elif p.error is not None:
                item.errors += 1
                texts[s.id] = f"{FAIL_MARKER}: {p.error}"
            else:
                texts[s.id] = "" if p.text is None else str(p.text)
        unknown = [k for k in preds if k not in {s.id for s in samples}]
        if unknown:
            raise StoreError(f"{store.task_dir(tid)}: {len(unknown)} stored predictions are not samples of the "
                             f"data {task.data_path} (first: {unknown[0]!r}); the run read other data")
        if not texts:
            item.skipped = "no predictions"
            continue
        columns, rows = prediction_table(samples, texts)
        item.path = write_prediction_file(columns, rows, report.out_dir / f"{name}_{tsv_name}.{file_format}",
                                          what=f"{tid} predictions")
        item.rows = len(rows)
        if item.missing:
            log.warning("%s: %d of %d samples have no prediction; VLMEvalKit's evaluation of %s expects every row",
                        tid, item.missing, len(samples), item.path)
    return report
