"""The results store: one directory per run, append-only per-sample records, resumable.

Layout of ``<run_dir>``::

    manifest.json            model fingerprint, config, versions, git commit, seeds, times, host
    run.log                  the run's log
    tasks/<task>/predictions-<writer>.jsonl   one JSON line per sample, appended and flushed
    tasks/<task>/images/...  generated images in the benchmark's official layout
    tasks/<task>/scores.jsonl, metrics.json
    tables/                  CSV / LaTeX tables of the run

Several writers (GPU workers, torchrun ranks, Slurm array tasks) each append to their own predictions file,
so no two processes ever write one file; readers merge them, keep the first record of an id and drop a torn
last line (a process killed mid-write).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import io
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from PIL import Image

from unitoken_eval.harness import faults
from unitoken_eval.harness.types import Prediction, TaskResult

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Whole words of a key name (api_key, hf-token, auth, ...), so "unitoken-eval" or "max_tokens" are not hidden.
_SECRET_KEY = re.compile(r"(?:^|[_\-.])(key|token|secret|password|passwd|auth|authorization|credentials?)(?:$|[_\-.])", re.I)


_PAIR = re.compile(r"([A-Za-z0-9_.\-]+)=([^,\s&#;]+)")


class StoreError(Exception):
    """A run directory that cannot be used as asked (locked, another model's, unreadable)."""


def safe_name(value: str, max_len: int = 120) -> str:
    """A file-name-safe rendering of a sample id or task id.

    Never lets ``..``, separators or control characters through; long or altered ids get a short hash
    suffix so two different ids cannot collide.
    """
    text = str(value)
    cleaned = _SAFE.sub("_", text).strip("._") or "_"
    if cleaned != text or len(cleaned) > max_len:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned[: max_len - 9]}-{digest}"
    return cleaned


def is_secret_key(name: str) -> bool:
    """A field or argument name that holds a credential (api_key, hf-token, auth, ...)."""
    return bool(_SECRET_KEY.search(name))


def redact(obj: Any) -> Any:
    """Replace values whose key looks like a credential; used on everything that reaches disk.

    Strings are searched too: a command line (``--model-args path=x,hf_token=...``) or a URL query
    (``?api_key=...``) carries ``key=value`` pairs the dictionary keys never show.
    """
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and _SECRET_KEY.search(k) and v else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "=" in obj:
        return _PAIR.sub(lambda m: f"{m.group(1)}=***" if _SECRET_KEY.search(m.group(1)) else m.group(0), obj)
    return obj


def manifest_smoke(manifest: dict[str, Any]) -> Optional[str]:
    """Why a stored run's numbers say nothing about a model (smoke data, a stand-in model), or None."""
    if manifest.get("smoke"):
        return str(manifest["smoke"])
    cfg = manifest.get("config") or manifest.get("identity") or {}
    return "embedded smoke data" if cfg.get("smoke") else None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(model: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{safe_name(model)}"


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def file_digest(path: str | Path, algorithm: str) -> str:
    """The file's hashlib ``algorithm`` digest, read in blocks: data files and checkpoints can be gigabytes."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each complete line; a torn final line (no newline) is skipped.

    A malformed complete line is an error naming the file and line: it means something other than a crash
    wrote there.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    # The element after the last newline is either empty or a torn write.
    for lineno, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise StoreError(f"{path}:{lineno}: not UTF-8 text ({exc.reason})") from exc
        if not isinstance(obj, dict):
            raise StoreError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


class JsonlAppender:
    """Append JSON lines to one file, flushing (and fsyncing) each batch.

    On open, a torn last line left by a killed process is cut off so the next record starts on its own line.
    """

    def __init__(self, path: Path, fsync: bool = True, fault_tag: Optional[str] = None):
        self.path = path
        self.fsync = fsync
        self.fault_tag = fault_tag  # the task id the ``torn_write`` fail point matches (unitoken_eval.harness.faults)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a+b")
        self._repair_tail()

    def _repair_tail(self) -> None:
        self._fh.seek(0, io.SEEK_END)
        size = self._fh.tell()
        if size == 0:
            return
        self._fh.seek(size - 1)
        if self._fh.read(1) == b"\n":
            return
        # Find the last newline and truncate after it.
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            self._fh.seek(start)
            chunk = self._fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        self._fh.truncate(keep)
        self._fh.seek(0, io.SEEK_END)

    def write(self, objs: Iterable[dict[str, Any]]) -> None:
        payload = b"".join(
            json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n" for o in objs
        )
        if not payload:
            return
        if self.fault_tag is not None and faults.should_kill("torn_write", self.fault_tag):
            # what a kill between two write(2) calls of one batch leaves: whole lines, then half of one
            first = payload.index(b"\n") + 1
            cut = first + (len(payload) - first) // 2 if len(payload) > first else first // 2
            cut -= payload[cut - 1:cut] == b"\n"  # never exactly on a line end: the last line must be torn
            self._fh.write(payload[:cut])
            self._fh.flush()
            faults.kill_now()
        self._fh.write(payload)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RunStore:
    """A run directory. Open it with :meth:`create` or :meth:`open`; hold :meth:`lock` while writing."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock_fh = None

    # ----- lifecycle
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{self.root} is not a run directory (no manifest.json)") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.manifest_path}: unreadable manifest ({exc.msg})") from exc

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, redact(manifest))

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.read_manifest()
        manifest.update(fields)
        self.write_manifest(manifest)
        return manifest

    def lock(self, writer: str = "main") -> None:
        """Take the writer's lock, or fail naming who holds it.

        Each writer id has its own lock, so distinct shard workers may share a run directory while a second
        process with the same writer id (a duplicate launch) is refused.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".lock-{safe_name(writer)}"
        fh = open(path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreError(f"run directory {self.root} is in use by {holder} (lock {path.name}); wait for it to "
                             "finish or stop it, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # ----- tasks
    def task_dir(self, task_id: str) -> Path:
        return self.root / "tasks" / safe_name(task_id)

    def task_ids(self) -> list[str]:
        base = self.root / "tasks"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def holds_records(self) -> bool:
        """Whether any sample was inferred into this run (a run that failed at start holds none)."""
        base = self.root / "tasks"
        return base.exists() and any(p.stat().st_size > 0 for p in base.glob("*/predictions-*.jsonl"))

    def prediction_writer(self, task_id: str, writer: str = "main") -> JsonlAppender:
        return JsonlAppender(self.task_dir(task_id) / f"predictions-{safe_name(writer)}.jsonl", fault_tag=task_id)

    def append_inference_stats(self, record: dict[str, Any], writer: str = "main") -> None:
        """One line per task and process: samples inferred, wall time, the adapter's counters over that time."""
        with JsonlAppender(self.root / f"inference-{safe_name(writer)}.jsonl", fsync=False) as out:
            out.write([record])

    def read_inference_stats(self) -> list[dict[str, Any]]:
        return [obj for path in sorted(self.root.glob("inference-*.jsonl")) for _, obj in read_jsonl(path)]

    def prediction_files(self, task_id: str) -> list[Path]:
        return sorted(self.task_dir(task_id).glob("predictions-*.jsonl"))

    def read_predictions(self, task_id: str) -> dict[str, Prediction]:
        """All stored predictions of a task, merged over writers; the first record of an id wins, except that
        an answer supersedes an error record (what ``--retry-errors`` appends after the input was fixed)."""
        out: dict[str, Prediction] = {}
        for path in self.prediction_files(task_id):
            for lineno, obj in read_jsonl(path):
                if "id" not in obj:
                    raise StoreError(f"{path}:{lineno}: record has no 'id'")
                pred = Prediction.from_json(obj)
                old = out.get(pred.sample_id)
                if old is None or (old.error is not None and pred.error is None):
                    out[pred.sample_id] = pred
        return out

    def save_image(self, task_id: str, rel_path: str, image: Image.Image) -> str:
        rel = Path(rel_path)
        if rel.is_absolute() or ".." in rel.parts:
            raise StoreError(f"refusing image path outside the run directory: {rel_path!r}")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        write_atomic(self.task_dir(task_id) / "images" / rel, buf.getvalue())
        return str(Path("images") / rel)

    def images_dir(self, task_id: str) -> Path:
        return self.task_dir(task_id) / "images"

    def write_scores(self, task_id: str, records: dict[str, dict[str, Any]]) -> None:
        lines = "".join(json.dumps({"id": k, **v}, ensure_ascii=False) + "\n" for k, v in records.items())
        write_atomic(self.task_dir(task_id) / "scores.jsonl", lines.encode("utf-8"))

    def read_scores(self, task_id: str) -> dict[str, dict[str, Any]]:
        path = self.task_dir(task_id) / "scores.jsonl"
        if not path.exists():
            return {}
        out = {}
        for _, obj in read_jsonl(path):
            sid = str(obj.pop("id"))
            out[sid] = obj
        return out

    def write_metrics(self, result: TaskResult) -> None:
        write_json_atomic(self.task_dir(result.task) / "metrics.json", result.to_json())

    def read_metrics(self, task_id: str) -> Optional[TaskResult]:
        path = self.task_dir(task_id) / "metrics.json"
        if not path.exists():
            return None
        return TaskResult.from_json(json.loads(path.read_text(encoding="utf-8")))

    def all_metrics(self) -> dict[str, TaskResult]:
        out = {}
        for tid in self.task_ids():
            m = self.read_metrics(tid)
            if m is not None:
                out[m.task] = m
        return out
