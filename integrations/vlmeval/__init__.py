"""VLMEvalKit bridge: our model adapters inside VLMEvalKit's ``run.py``, and its evaluators on our files.

- ``model.UniTokenEvalVLM``: a VLMEvalKit model class (``vlmeval.vlm.base.BaseModel``) that answers through
  any of our registered adapters.
- ``model.register()``: puts it into ``vlmeval.vlm`` as ``UniTokenEval`` (run.py resolves a config entry's
  ``class`` with ``getattr(vlmeval.vlm, name)``), and adds ``Local<Dataset>`` variants of VLMEvalKit's image
  dataset classes that read ``$LMUData/<name>.tsv`` as it is and never download.
- ``run``: ``python -m unitoken_eval.integrations.vlmeval.run --config cfg.json ...`` registers, then runs VLMEvalKit's own
  ``run.py`` unchanged in this process.
- ``evaluate``: ``python -m unitoken_eval.integrations.vlmeval.evaluate MME preds.xlsx`` runs VLMEvalKit's ``evaluate`` on a
  prediction file (ours, exported by ``unitoken-eval export``).

Importing vlmeval switches off TLS certificate checks for the whole process (its ``__init__`` replaces
``ssl._create_default_https_context``), so only these modules import it, and they run in their own process
(``unitoken-eval vlmeval ...`` starts one); ``register()`` puts the verifying default back right after the
import.  This ``__init__`` imports nothing from vlmeval.
"""

from __future__ import annotations

import importlib
from types import ModuleType

CLASS_NAME = "UniTokenEval"
LOCAL_PREFIX = "Local"
EXTRA_HINT = ("install VLMEvalKit: pip install 'unitoken-eval[vlmeval]' from a source checkout, or VLMEvalKit "
              "from a local clone (docs/interop.md, section VLMEvalKit)")


class VLMEvalMissing(ImportError):
    """VLMEvalKit is not installed; the message says how to install it."""


def require_vlmeval(what: str = "this") -> ModuleType:
    """Import vlmeval (then restore TLS verification) or fail with one line saying how to install it."""
    import ssl

    verifying = ssl._create_default_https_context
    if verifying is ssl._create_unverified_context:
        verifying = ssl.create_default_context
    try:
        module = importlib.import_module("vlmeval")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "vlmeval":
            raise VLMEvalMissing(f"{what} needs VLMEvalKit: {EXTRA_HINT}") from None
        raise VLMEvalMissing(f"{what}: VLMEvalKit is installed but its dependency {exc.name!r} is not "
                             f"({exc}); {EXTRA_HINT}") from None
    finally:
        # vlmeval/__init__ sets an unverified default HTTPS context; nothing of ours wants that.
        ssl._create_default_https_context = verifying
    return module
