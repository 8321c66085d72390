"""Read lmms-eval sample logs (``--log_samples``) so their answers can be re-scored by our scorers.

lmms-eval (0.3 and later; checked against 0.7.3) writes one JSON line per document to
``<output_path>/<model>/<date>_samples_<task>.jsonl``.  A line holds ``doc_id`` (the document's position in
the split lmms-eval loaded), ``target``, ``filtered_resps`` (the answer its scorer saw; ``resps``, the raw
answer, is kept only when a filter or reasoning-tag stripping changed it), the prompt as ``input`` and the
task's per-document metric records.  The document itself is not kept, so the line is joined to our sample by
position: ``doc_id`` k is the k-th sample of the same data (the lmms-lab parquet copy lmms-eval read, loaded
with our task's ``--data``).  Where we know what lmms-eval's task records (MME's ``question_id`` and
``category``, its ``target``), each line is checked against the sample it lands on, so a log made on other
data is an error naming the line instead of answers silently scored against the wrong questions.

This module reads files only; it never imports lmms_eval.  Run it as a script to turn a log into our
predictions file for ``unitoken-eval score``::

    python -m unitoken_eval.harness.interop.lmms_eval_logs LOG.jsonl --task mme --data DIR --out predictions.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from unitoken_eval.harness.exit_codes import ExitCode
from unitoken_eval.harness.interop import InteropError

log = logging.getLogger("unitoken_eval.interop")

# lmms-eval's file name for a task's samples (evaluation_tracker.save_results_samples).
LOG_NAME = re.compile(r"_samples_(?P<task>[^/\\]+)\.jsonl$")
_RESPONSE_KEYS = ("filtered_resps", "resps")


@dataclass
class LogLine:
    """One document of an lmms-eval samples log, with where it came from for error messages."""

    lineno: int
    doc_id: int
    text: str
    record: dict[str, Any]


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _response_text(value: Any, where: str) -> str:
    """The single answer of a generate_until document.

    lmms-eval flattens one-element lists before writing (``[["a"]]`` -> ``["a"]``, ``["a"]`` -> ``"a"``), so
    a response may arrive at any nesting depth; several answers for one document (``repeats`` > 1) cannot be
    one prediction and are refused rather than silently reduced to the first.
    """
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        raise InteropError(f"{where}: {len(value)} responses for one document (repeats > 1 or a loglikelihood "
                           "task); only single-answer generation tasks can be re-scored")
    raise InteropError(f"{where}: the response is a {type(value).__name__}, not text")


def _doc_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise InteropError(f"{where}: 'doc_id' is missing or not an integer")
    if isinstance(value, int):
        doc = value
    elif isinstance(value, str) and value.strip().isdigit():
        doc = int(value.strip())
    else:
        raise InteropError(f"{where}: 'doc_id' must be a non-negative integer, got {value!r}")
    if doc < 0:
        raise InteropError(f"{where}: 'doc_id' must be a non-negative integer, got {doc}")
    return doc


def read_log(path: Union[str, Path]) -> list[LogLine]:
    """Every document of the log, in file order; any malformed line is an error naming the file and line.

    A repeated ``doc_id`` is an error too: lmms-eval writes one line per document and filter, so a repeat
    means two runs appended to one file or a task with several filter pipelines, and neither has one answer.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InteropError(f"lmms-eval samples log {path} does not exist") from None
    except OSError as exc:
        raise InteropError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    raw_lines = data.split(b"\n")
    torn = raw_lines[-1].strip() != b""
    out: list[LogLine] = []
    seen: dict[int, int] = {}
    for lineno, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        where = _where(path, lineno)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InteropError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if lineno == 1 and text.strip() in ("{", "["):
                raise InteropError(f"{where}: a JSON document, not JSON lines; lmms-eval's --log_samples writes "
                                   "<date>_samples_<task>.jsonl (versions before 0.3 wrote one .json per task, "
                                   "which is not read here)") from None
            tail = " (the file ends in a partial line: was lmms-eval stopped while writing?)" \
                if torn and lineno == len(raw_lines) else ""
            raise InteropError(f"{where}: not valid JSON ({exc.msg}){tail}") from None
        if not isinstance(obj, dict):
            raise InteropError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if "doc_id" not in obj:
            raise InteropError(f"{where}: no 'doc_id': not an lmms-eval samples log line")
        doc = _doc_id(obj["doc_id"], where)
        key = next((k for k in _RESPONSE_KEYS if k in obj), None)
        if key is None:
            raise InteropError(f"{where}: no 'filtered_resps' or 'resps': not an lmms-eval samples log line")
        answer = _response_text(obj[key], where)
        if doc in seen:
            raise InteropError(f"{where}: doc_id {doc} repeats line {seen[doc]} (two runs in one file, or a "
                               "task with several filters?)")
        seen[doc] = lineno
        out.append(LogLine(lineno=lineno, doc_id=doc, text=answer, record=obj))
    return out


def sniff(path: Union[str, Path]) -> bool:
    """Whether ``path`` looks like an lmms-eval samples log: its first JSON line has lmms-eval's keys.

    Reads only the start of the file, so it is cheap on large logs; never raises (an unreadable file is
    simply not a log).
    """
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                obj = json.loads(raw.decode("utf-8"))
                return (isinstance(obj, dict) and "doc_id" in obj
                        and any(k in obj for k in _RESPONSE_KEYS)
                        and any(k in obj for k in ("target", "doc_hash", "input")))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False


# ----------------------------------------------------------------------------- checks per task
# What lmms-eval's version of one of our tasks records per document, to confirm a line landed on the sample
# it was made from.  Returns a description of the first disagreement, or None.
Check = Callable[[LogLine, Any], Optional[str]]


def _norm(value: Any) -> str:
    return str(value).strip().lower()


def _check_mme(line: LogLine, sample: Any) -> Optional[str]:
    """lmms-eval ``mme``: ``target`` is the answer; the metric record carries ``question_id`` (the image file,
    our ``image_path``) and ``category``."""
    target = line.record.get("target")
    answer = sample.fields.get("answer")
    if target is not None and answer is not None and _norm(target) != _norm(answer):
        return f"target {target!r} but the sample's answer is {answer!r}"
    for key in ("mme_perception_score", "mme_cognition_score"):
        rec = line.record.get(key)
        if not isinstance(rec, dict):
            continue
        for theirs, ours in (("question_id", "image_path"), ("category", "category")):
            if theirs in rec and sample.fields.get(ours) is not None and str(rec[theirs]) != str(sample.fields[ours]):
                return f"{theirs} {rec[theirs]!r} but the sample's {ours} is {sample.fields[ours]!r}"
    return None


CHECKS: dict[str, Check] = {"mme": _check_mme}


# ----------------------------------------------------------------------------- the importer
def _task_object(task: Any) -> Any:
    if isinstance(task, str):
        from unitoken_eval.harness import registry

        return registry.make_task(task, {})
    return task


def _samples_of(task: Any, source: Optional[str]) -> list:
    """The task's samples as a run would load them (the data the task last read when no source is given)."""
    if source is None:
        source = getattr(task, "data_path", None)
    return task.load(source, None)


def load_predictions(path: Union[str, Path], task: Any, *, samples: Optional[list] = None,
                     source: Optional[str] = None) -> dict[str, str]:
    """Map OUR sample ids of ``task`` to the answer text lmms-eval logged for them.

    ``task`` is a Task (or a registered task id).  Its samples are ``samples`` when the caller holds them
    already, else ``task.load(source)`` (``source`` defaults to the data the task last loaded, then to the
    task's default location).  ``doc_id`` k is joined to the k-th sample, because lmms-eval numbers documents
    by their position in the split it read and does not log the document; lines are checked against their
    sample where the task has a check (see ``CHECKS``).  The text is ``filtered_resps``: what lmms-eval's own
    scorer was given, so the two scorings see the same answer.

    Raises :class:`InteropError` naming the file and line for malformed lines, a ``doc_id`` past the end of
    the data (unknown sample), a repeated ``doc_id`` or sample, and a line whose recorded document disagrees
    with the sample it lands on.
    """
    path = Path(path)
    task = _task_object(task)
    lines = read_log(path)
    if samples is None:
        samples = _samples_of(task, source)
    task_id = getattr(task, "id", type(task).__name__)
    check = CHECKS.get(task_id)
    out: dict[str, str] = {}
    for line in lines:
        where = _where(path, line.lineno)
        if line.doc_id >= len(samples):
            raise InteropError(f"{where}: doc_id {line.doc_id} is not a sample of {task_id}: its data has "
                               f"{len(samples)} samples (was the log made on other data?)")
        sample = samples[line.doc_id]
        if sample.id in out:
            raise InteropError(f"{where}: sample {sample.id!r} of {task_id} appears twice")
        if check is not None:
            why = check(line, sample)
            if why:
                raise InteropError(f"{where}: doc_id {line.doc_id} does not match sample {sample.id!r} of "
                                   f"{task_id}: {why}; the log was made on other data (give the task the data "
                                   "lmms-eval read, e.g. the same parquet folder)")
        out[sample.id] = line.text
    if check is None and out:
        log.warning("%s: %d lines joined to %s samples by position only (no check for this task)",
                    path, len(out), task_id)
    return out


def write_predictions_file(predictions: dict[str, str], out: Union[str, Path]) -> Path:
    """Write ``{"index": id, "prediction": text}`` lines: the file ``unitoken-eval score --predictions`` reads."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for sid, text in predictions.items():
            fh.write(json.dumps({"index": sid, "prediction": text}, ensure_ascii=False) + "\n")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m unitoken_eval.harness.interop.lmms_eval_logs",
        description="Turn an lmms-eval samples log into a predictions file for `unitoken-eval score`.")
    ap.add_argument("log", help="<date>_samples_<task>.jsonl written by lmms-eval --log_samples")
    ap.add_argument("--task", required=True, help="our task id (e.g. mme)")
    ap.add_argument("--data", default=None, help="the data lmms-eval read (e.g. a parquet folder); default: the task's")
    ap.add_argument("--out", required=True, help="predictions JSONL to write")
    args = ap.parse_args(argv)
    from unitoken_eval.harness.plugin import TaskError

    try:
        preds = load_predictions(Path(args.log), args.task, source=args.data)
    except (InteropError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    write_predictions_file(preds, args.out)
    print(f"{len(preds)} predictions written to {args.out}")
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
