"""Where the benchmark scripts put what they measured: one JSON file per run under a records folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path


def save_record(rec: dict, folder: str | Path, stem: str) -> Path:
    """Print ``rec`` and write it to ``folder/<stem>-<local time>.json``; returns the path."""
    path = Path(folder) / f"{stem}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=2) + "\n")
    print(json.dumps(rec, indent=2))
    print(f"record: {path}")
    return path


def latest_record(folder: str | Path, stem: str) -> Path:
    """The newest ``folder/<stem>-*.json`` by the time stamp in its name (one record of each kind is kept)."""
    found = sorted(Path(folder).glob(f"{stem}-*.json"))
    if not found:
        raise FileNotFoundError(f"no {stem}-*.json record in {folder}")
    return found[-1]
