"""Our own predictions file (``{"index": ..., "prediction": "..."}`` per line) as a replay source.

It is the file ``unitoken-eval score --predictions`` reads, so the same reader is used here: indices are
strings, a bad line or a repeated index is an error naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from unitoken_eval.harness.interop import InteropError


def sniff(path: Union[str, Path]) -> bool:
    """A ``.jsonl`` file whose first non-empty line is an object with ``index`` (or ``id``) and ``prediction``."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8"))
                    return isinstance(obj, dict) and "prediction" in obj and ("index" in obj or "id" in obj)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False


def load_predictions(path: Union[str, Path], task: Any, *, samples: Optional[list] = None,
                     source: Optional[str] = None) -> dict[str, str]:
    """Sample id -> prediction text; with ``samples``, an index that is not one of them is an error."""
    from unitoken_eval.harness.scoring import read_predictions_file
    from unitoken_eval.harness.plugin import TaskError

    try:
        preds = read_predictions_file(path)
    except TaskError as exc:
        raise InteropError(str(exc)) from None
    out = {sid: p.text for sid, p in preds.items() if p.text is not None}
    if samples is not None:
        known = {s.id for s in samples}
        unknown = [k for k in out if k not in known]
        if unknown:
            task_id = getattr(task, "id", task)
            raise InteropError(f"{path}: index {unknown[0]!r} is not a sample of {task_id} "
                               f"({len(unknown)} such indices; was the file made on other data?)")
    return out
