"""Say so before anything is fetched from the network, and remember it for the run's manifest.

A config is data, but some of its values (``--data owner/name``, ``--model-args path=owner/name``, a
scorer model id) make the harness download from the Hugging Face hub or a URL.  A user evaluating offline
or on sensitive infrastructure must see that before it happens, and a reader of a finished run must be
able to tell which inputs did not come from the local disk.  Every place that fetches calls
:func:`announce` first; it logs one warning naming the source and adds it to :func:`sources`, which the
runner writes into ``manifest.json`` as ``remote_sources``.  Code a configuration names for execution (an
mmengine ``.py`` config) is announced and recorded the same way (:func:`announce_code`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("unitoken_eval.remote")

_lock = threading.Lock()
_seen: dict[str, dict[str, str]] = {}


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://", "ftp://", "s3://", "gs://",
                                                                "hf://"))


def is_hub_id(value: Any) -> bool:
    """``owner/name`` that is not a path on this machine: what the hub clients would download."""
    if not isinstance(value, str) or not value or is_url(value):
        return False
    if value.startswith((".", "/", "~")) or value.count("/") != 1 or value.endswith((".tsv", ".jsonl", ".json")):
        return False
    return not Path(os.path.expanduser(value)).exists()


def announce(source: str, what: str) -> None:
    """Log (once per source and process) that ``what`` is about to be fetched from ``source``; record it."""
    with _lock:
        if source in _seen:
            return
        _seen[source] = {"source": source, "what": what}
    log.warning("fetching %s from %s (a remote source; recorded in the run manifest)", what, source)


def announce_code(path: str, what: str) -> None:
    """Log (once) that Python code named by the user's configuration is about to run; record it."""
    with _lock:
        if path in _seen:
            return
        _seen[path] = {"source": path, "what": what, "executes": "yes"}
    log.warning("executing %s from %s (code named by the configuration; recorded in the run manifest)", what, path)


def announce_hub(repo_id: str, what: str, kind: str = "model") -> None:
    prefix = "datasets/" if kind == "dataset" else ""
    announce(f"https://huggingface.co/{prefix}{repo_id}", what)


def announce_if_remote(value: Any, what: str, kind: str = "model") -> None:
    """:func:`announce` a URL or a hub id (fetched unless the hub's cache holds it); a local path is silent."""
    if is_url(value):
        announce(str(value), what)
    elif is_hub_id(value):
        announce_hub(str(value), f"{what} (a Hugging Face hub id, unless already cached)", kind)


def announce_model_args(adapter: str, model_args: dict[str, Any]) -> None:
    """Model arguments that name a hub id or URL: the adapter will fetch them (the harness does not know the
    adapter's code, so it says so for every such value before the adapter is built)."""
    from unitoken_eval.harness.store import is_secret_key

    for key, value in sorted(model_args.items()):
        if not is_secret_key(key):  # a credential is not a source, and its value must not reach the log
            announce_if_remote(value, f"model {adapter} argument {key}=")


def reset() -> None:
    """Forget this process's announcements: a new run records only what it fetches itself."""
    with _lock:
        _seen.clear()


def sources() -> list[dict[str, str]]:
    with _lock:
        return list(_seen.values())


def merge(recorded: Optional[list[dict[str, str]]]) -> list[dict[str, str]]:
    """The manifest's list plus this process's announcements, without repeats (a resumed run adds to it)."""
    out = {d["source"]: d for d in (recorded or []) if isinstance(d, dict) and "source" in d}
    for d in sources():
        out.setdefault(d["source"], d)
    return list(out.values())
