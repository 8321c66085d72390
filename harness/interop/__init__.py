"""Read other harnesses' prediction files, and write ours in their formats.

Each format lives in its own module with the same two functions:

- ``sniff(path) -> bool``: whether the file looks like that format (cheap, never raises);
- ``load_predictions(path, task, *, samples=None, source=None) -> dict[str, str]``: our task's sample id ->
  the raw answer text the other harness recorded (what its own scorer saw), with errors naming file and row.

Formats: ``vlmevalkit`` (:mod:`unitoken_eval.harness.interop.vlmeval_io`, VLMEvalKit's ``{model}_{dataset}.xlsx|tsv|json``),
``lmms-eval`` (:mod:`unitoken_eval.harness.interop.lmms_eval_logs`, ``--log_samples`` logs) and ``jsonl`` (our own
``{"index", "prediction"}`` lines, what ``unitoken-eval score --predictions`` reads).  Modules are imported by
name only when asked for, so a format whose module is absent (or whose reader needs a missing package) fails
with a message saying so while the others keep working; none of them imports the other harness itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional, Union


class InteropError(ValueError):
    """A file from (or for) another harness that cannot be read or written; the message names file and row."""


# format name -> module holding sniff() and load_predictions(); "auto" tries them in this order, the most
# specific first (an lmms-eval log is also JSON lines, so our generic jsonl comes last).
FORMAT_MODULES: dict[str, str] = {
    "vlmevalkit": "unitoken_eval.harness.interop.vlmeval_io",
    "lmms-eval": "unitoken_eval.harness.interop.lmms_eval_logs",
    "jsonl": "unitoken_eval.harness.interop.jsonl_io",
}
FORMATS = tuple(FORMAT_MODULES)
_ALIASES = {"vlmeval": "vlmevalkit", "vk": "vlmevalkit", "lmms_eval": "lmms-eval", "lmms": "lmms-eval"}
_UNAVAILABLE = {"lmms-eval": "lmms-eval log import not available (module unitoken_eval.harness.interop.lmms_eval_logs is missing)"}


def normalise_format(fmt: Optional[str]) -> str:
    """``auto`` or one of :data:`FORMATS` (a few spellings accepted); anything else is an error listing them."""
    name = (fmt or "auto").strip().lower()
    name = _ALIASES.get(name, name)
    if name != "auto" and name not in FORMAT_MODULES:
        raise InteropError(f"unknown predictions format {fmt!r}; choose auto, {', '.join(FORMATS)}")
    return name


def format_module(fmt: str) -> Any:
    """The module implementing ``fmt``, imported now; a missing module is an :class:`InteropError` saying so."""
    name = normalise_format(fmt)
    if name == "auto":
        raise InteropError("format 'auto' has no module: call detect_format() first")
    modname = FORMAT_MODULES[name]
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        # Only the format's own module being absent means "not available"; a missing dependency inside it
        # is reported as such, naming the package.
        if exc.name == modname:
            raise InteropError(_UNAVAILABLE.get(name, f"{name} import not available (module {modname} is missing)")) \
                from None
        raise InteropError(f"{name} import needs the package {exc.name!r}, which is not installed") from None


def detect_format(path: Union[str, Path]) -> str:
    """The first format whose ``sniff`` accepts ``path``; none -> an error naming the file and what was tried."""
    path = Path(path)
    if not path.exists():
        raise InteropError(f"predictions file {path} does not exist")
    tried = []
    for name in FORMATS:
        try:
            module = format_module(name)
        except InteropError:
            continue  # an absent optional format cannot claim the file
        tried.append(name)
        if module.sniff(path):
            return name
    raise InteropError(f"{path}: not a predictions file of any known format (tried {', '.join(tried)}); "
                       "pass format=... to say which it is and see why it does not read")


def load_predictions(path: Union[str, Path], task: Any, fmt: Optional[str] = "auto", **kwargs: Any) -> dict[str, str]:
    """Our sample id -> recorded answer, read from ``path`` in format ``fmt`` (``auto`` sniffs).

    ``task`` is one of our Task objects or a registered task id; ``kwargs`` (``samples``, ``source``) go to the
    format's reader, which uses them to check (VLMEvalKit) or to join (lmms-eval) the file's rows to our samples.
    """
    name = normalise_format(fmt)
    if name == "auto":
        name = detect_format(path)
    return format_module(name).load_predictions(Path(path), task, **kwargs)
