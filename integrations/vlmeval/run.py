"""Run VLMEvalKit's own ``run.py`` with our model class and the ``Local*`` datasets resolvable.

    python -m unitoken_eval.integrations.vlmeval.run [--run-py PATH] --config cfg.json [any other run.py flag]
    torchrun --nproc-per-node 8 -m unitoken_eval.integrations.vlmeval.run --config cfg.json      # VK's multi-GPU mode

Why a launcher and not a patch: run.py resolves a model ``class`` with ``getattr(vlmeval.vlm, name)`` and a
dataset ``class`` with ``getattr(vlmeval.dataset, name)``, and has no plugin hook.  Registering our classes
into those modules in this process and then executing the unmodified run.py as ``__main__`` needs no edit
to VLMEvalKit's files and follows run.py's flags, outputs and multi-process behaviour as they are.

run.py is found from ``--run-py``, else ``$VLMEVAL_RUN_PY``, else next to the installed package (an editable
install of a clone, where run.py sits at the top of the repository), else inside it (``vlmeval/run.py``: the
``ms-vlmeval`` package on PyPI ships it there, run as the module ``vlmeval.run``).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path
from typing import Optional

from unitoken_eval.harness.exit_codes import ExitCode
from unitoken_eval.integrations.vlmeval import VLMEvalMissing, require_vlmeval


class RunPyNotFound(FileNotFoundError):
    """VLMEvalKit's run.py could not be located."""


def find_run_py(explicit: Optional[str] = None) -> Path:
    """VLMEvalKit's run.py: ``explicit``, ``$VLMEVAL_RUN_PY``, or beside the installed vlmeval package."""
    for candidate, origin in ((explicit, "--run-py"), (os.environ.get("VLMEVAL_RUN_PY"), "$VLMEVAL_RUN_PY")):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_dir():
                path = path / "run.py"
            if not path.is_file():
                raise RunPyNotFound(f"{origin}: {path} is not VLMEvalKit's run.py")
            return path.resolve()
    vlmeval = require_vlmeval("unitoken_eval.integrations.vlmeval.run")
    package = Path(vlmeval.__file__).resolve().parent
    for path in (package.parent / "run.py", package / "run.py"):
        if path.is_file():
            return path
    raise RunPyNotFound(
        f"VLMEvalKit's run.py is neither beside nor inside the installed vlmeval package ({package}): pass "
        "--run-py /path/to/VLMEvalKit/run.py or set VLMEVAL_RUN_PY (a clone of the same commit), or install "
        "ms-vlmeval, which ships it as vlmeval/run.py")


def run_module_name(run_py: Path) -> Optional[str]:
    """``vlmeval.run`` when ``run_py`` is the package's own module (ms-vlmeval: its imports are absolute but it
    must run as part of the package), else None (a repository's top-level script, run as a file)."""
    try:
        import vlmeval
    except ImportError:
        return None
    package = Path(vlmeval.__file__).resolve().parent
    return "vlmeval.run" if run_py.resolve() == package / "run.py" else None


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m unitoken_eval.integrations.vlmeval.run", add_help=False,
                                 description="VLMEvalKit's run.py with unitoken-eval's model class registered")
    ap.add_argument("--run-py", dest="run_py", help="path of VLMEvalKit's run.py (default: beside the package)")
    ap.add_argument("--unitoken-help", action="store_true", help="show this help (plain --help is run.py's)")
    ours, rest = ap.parse_known_args(argv)
    if ours.unitoken_help:
        ap.print_help()
        return ExitCode.OK
    try:
        run_py = find_run_py(ours.run_py)
        from unitoken_eval.integrations.vlmeval.model import register

        register()
    except (RunPyNotFound, VLMEvalMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    module = run_module_name(run_py)
    if module is None:
        # A repository's run.py imports its sibling modules (none today) relative to its folder.
        sys.path.insert(0, str(run_py.parent))
    sys.argv = [str(run_py), *rest]  # run.py reads sys.argv itself
    try:
        if module is None:
            runpy.run_path(str(run_py), run_name="__main__")
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # argparse's --help / errors inside run.py
        # Python's own convention for SystemExit: None is success, a message is status 1.
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
