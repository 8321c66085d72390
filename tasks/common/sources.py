"""Rows of ``unitoken-eval data``: what a task needs besides the model, where it is looked for, whether it is
there, and the command or URL that gets it.

Every row has ``what``, ``location``, ``present`` and ``get``; ``fetchable`` says whether ``data --fetch``
can get it (a hub model, an official file) or the user must (a checkpoint behind a licence, a spaCy model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.plugin import TaskError


def row(what: str, location: str, present: bool, get: str, fetchable: bool, **extra: Any) -> dict[str, Any]:
    return {"what": what, "location": location, "present": present, "get": get, "fetchable": fetchable, **extra}


def hub_cache_dir(model_id: str) -> Path:
    """Where huggingface_hub keeps a model (``$HF_HUB_CACHE/models--org--name``)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # huggingface_hub comes with transformers; only a broken install lacks it
        HF_HUB_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    return Path(HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))


def hub_model(what: str, model_id: Optional[str], default: str, option: str) -> dict[str, Any]:
    """A scorer model loaded by hub id (or a local folder given with the task option ``option``)."""
    model_id = str(model_id or default)
    local = Path(model_id)
    if local.is_absolute() or model_id.startswith("."):
        return row(what, str(local), local.exists(), f"the local copy given with {option}={model_id}", False)
    cache = hub_cache_dir(model_id)
    present = (cache / "snapshots").is_dir() and any((cache / "snapshots").iterdir())
    return row(what, str(cache), present, f"huggingface-cli download {model_id} (or any local copy with "
               f"{option}=PATH)", True, hub_id=model_id)


def fetch_hub_model(model_id: str) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise TaskError(f"cannot fetch {model_id}: huggingface_hub is not installed ({exc})") from None
    try:
        snapshot_download(model_id)
    except Exception as exc:  # any hub/network failure is reported as the reason, not a traceback
        raise TaskError(f"cannot fetch {model_id} from the Hugging Face hub ({type(exc).__name__}: {exc})") from None


def fetch_rows(rows: list[dict[str, Any]]) -> None:
    """Fetch the missing hub models of ``rows`` (files are fetched by their task's own code)."""
    for r in rows:
        if not r["present"] and r["fetchable"] and r.get("hub_id"):
            fetch_hub_model(r["hub_id"])
