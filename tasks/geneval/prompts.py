"""GenEval's 553 prompts: fetched from the official repository on first use and verified, or read from a path.

The project ships none of upstream's files; the metadata is downloaded from GenEval's repository at the
commit the reference notes pin (af4902f) and checked against its sha256, so a changed upstream file or a
corrupted download is an error rather than silently different numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.remote import announce
from unitoken_eval.harness.store import sha256_file
from unitoken_eval.harness.plugin import TaskError
from unitoken_eval.tasks.common.detection import CLASS_NAMES
from unitoken_eval.tasks.geneval.rules import COLORS, TAGS

COMMIT = "af4902f24d3ca90ebbb446dd9891a59e0f82725f"
METADATA_URL = f"https://raw.githubusercontent.com/djghosh13/geneval/{COMMIT}/prompts/evaluation_metadata.jsonl"
METADATA_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
METADATA_LINES = 553
RELATIONS = ("left of", "right of", "above", "below")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unitoken-eval" / "geneval"


def verify(path: Path, expected: str = METADATA_SHA256) -> None:
    got = sha256_file(path)
    if got != expected:
        raise TaskError(
            f"{path}: sha256 {got} does not match GenEval's evaluation_metadata.jsonl at commit {COMMIT[:7]} "
            f"({expected}); the file is corrupted or a different version. Delete it to re-download, or pass "
            "the official file with --data (option verify=false scores another prompt set knowingly)."
        )


def fetch_metadata(dest: Optional[Path] = None, url: Optional[str] = None) -> Path:
    """The verified official metadata file, downloading it into the cache on first use."""
    dest = dest or cache_dir() / "evaluation_metadata.jsonl"
    url = url or METADATA_URL
    if dest.exists():
        verify(dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    announce(url, "GenEval prompts (evaluation_metadata.jsonl)")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read()
    except OSError as exc:
        raise TaskError(
            f"could not download GenEval's prompts from {url} ({exc}); download that file yourself and pass "
            "its path with --data geneval=PATH"
        ) from None
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    try:
        verify(Path(tmp))
    except TaskError:
        os.unlink(tmp)
        raise
    os.replace(tmp, dest)
    return dest


def resolve_source(source: Optional[str], check_sha: bool = True) -> Path:
    """A metadata path from ``--data`` (a file, or a folder holding evaluation_metadata.jsonl) or the cache."""
    if source is None:
        return fetch_metadata()
    path = Path(source)
    if path.is_dir():
        path = path / "evaluation_metadata.jsonl"
    if not path.exists():
        raise TaskError(f"GenEval metadata file {path} does not exist")
    if check_sha:
        verify(path)
    return path


def read_metadata(path: Path) -> list[dict[str, Any]]:
    """The prompts in file order (the line index is the prompt's folder number), each checked for schema."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                meta = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            check_metadata(meta, f"{path}:{lineno}")
            out.append(meta)
    return out


def check_metadata(meta: Any, where: str) -> None:
    """Reject metadata the rules would misread (unknown class, colour, relation or target group)."""
    if not isinstance(meta, dict):
        raise TaskError(f"{where}: expected a JSON object")
    for key in ("tag", "prompt", "include"):
        if key not in meta:
            raise TaskError(f"{where}: missing '{key}'")
    if meta["tag"] not in TAGS:
        raise TaskError(f"{where}: unknown tag {meta['tag']!r} (GenEval's tags: {', '.join(TAGS)})")
    for kind in ("include", "exclude"):
        clauses = meta.get(kind, [])
        if not isinstance(clauses, list):
            raise TaskError(f"{where}: '{kind}' must be a list")
        for i, req in enumerate(clauses):
            if not isinstance(req, dict) or "class" not in req or "count" not in req:
                raise TaskError(f"{where}: {kind}[{i}] needs 'class' and 'count'")
            if req["class"] not in CLASS_NAMES:
                raise TaskError(f"{where}: {kind}[{i}] class {req['class']!r} is not one of GenEval's 80 classes")
            if not isinstance(req["count"], int) or req["count"] < 1:
                raise TaskError(f"{where}: {kind}[{i}] count must be a positive integer")
            if "color" in req and req["color"] not in COLORS:
                raise TaskError(f"{where}: {kind}[{i}] colour {req['color']!r} is not one of {', '.join(COLORS)}")
            if "position" in req:
                pos = req["position"]
                if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in RELATIONS
                        or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                    raise TaskError(f"{where}: {kind}[{i}] position must be [relation, index of an earlier clause]")
