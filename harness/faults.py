"""Fail points: let a test SIGKILL a run at an exact place instead of racing it with a timer.

A crash-safety test that kills a process "after about two seconds" passes or fails with the machine's
speed and proves nothing about the narrow windows (half a batch on disk, scores written but no metrics)
where records get lost or duplicated.  The harness therefore names those places and, when
``$UNITOKEN_EVAL_KILL_AT`` arms one of them, sends itself SIGKILL there: the same signal the OOM killer or a
preempted node delivers, so no ``finally`` block, atexit hook or buffered write gets a chance to tidy up.

Spec: ``POINT[@TASK][#N]`` kills at the N-th time (default 1) POINT is reached for TASK (any task if
omitted).  Points:

  ``batch_written``   a batch's records are appended and flushed (inference)
  ``torn_write``      in the middle of appending a batch: part of the batch, then half a line, is on disk
  ``detections``      a chunk of a generation task's detections is appended to its cache (scoring)
  ``before_metrics``  per-sample scores are written, metrics not yet

Unset (every normal run), each check is one dictionary lookup.
"""

from __future__ import annotations

import os
import re
import signal
from typing import NoReturn, Optional

ENV = "UNITOKEN_EVAL_KILL_AT"
POINTS = ("batch_written", "torn_write", "detections", "before_metrics")
_SPEC = re.compile(r"^(?P<point>[a-z_]+)(?:@(?P<task>[^#]+))?(?:#(?P<n>\d+))?$")
_hits: dict[tuple[str, Optional[str]], int] = {}


def _armed() -> Optional[tuple[str, Optional[str], int]]:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    m = _SPEC.match(spec.strip())
    if not m or m.group("point") not in POINTS:
        raise ValueError(f"${ENV}={spec!r}: expected POINT[@TASK][#N] with POINT one of {', '.join(POINTS)}")
    return m.group("point"), m.group("task"), int(m.group("n") or 1)


def should_kill(point: str, task: Optional[str] = None) -> bool:
    """Count this pass through ``point`` and say whether it is the armed one."""
    armed = _armed()
    if armed is None or armed[0] != point or (armed[1] is not None and armed[1] != task):
        return False
    key = (point, task)
    _hits[key] = _hits.get(key, 0) + 1
    return _hits[key] == armed[2]


def kill_now() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(137)  # pragma: no cover - SIGKILL cannot be caught


def failpoint(point: str, task: Optional[str] = None) -> None:
    if should_kill(point, task):
        kill_now()
