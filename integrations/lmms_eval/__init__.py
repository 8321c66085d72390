"""lmms-eval bridge: our model adapters as lmms-eval models, and lmms-eval's tasks on local data.

- ``plugin.manifests`` is registered under lmms-eval's ``lmms_eval.models`` entry-point group (pyproject),
  so an installed unitoken-eval makes ``lmms-eval --model unitoken`` (our ``unitoken`` adapter) and
  ``lmms-eval --model unitoken_eval --model_args adapter=ID,...`` (any registered adapter) work.
- ``models`` holds those lmms-eval model classes; it is imported by lmms-eval, never by our core.
- ``local_task`` writes an lmms-lab/MME-schema parquet folder and an ``--include_path`` task that runs
  lmms-eval's own ``mme`` task on it offline.
- Reading lmms-eval's sample logs back lives in the core (``unitoken_eval.harness.interop.lmms_eval_logs``): it needs only
  the files, not lmms-eval.

This ``__init__`` imports nothing from lmms_eval, so the package can be inspected without the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA_HINT = "install the extra: pip install 'unitoken-eval[lmms-eval]' (lmms-eval==0.7.3)"


class LmmsEvalMissing(ImportError):
    """lmms-eval is not installed; the message says how to install the extra."""


def require_lmms_eval(what: str = "this") -> ModuleType:
    """Import lmms_eval or fail with one clear line naming the extra (instead of a bare ModuleNotFoundError)."""
    try:
        return importlib.import_module("lmms_eval")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "lmms_eval":
            raise
        raise LmmsEvalMissing(f"{what} needs lmms-eval, which is not installed: {EXTRA_HINT}") from None
