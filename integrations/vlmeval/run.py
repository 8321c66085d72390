"""Run VLMEvalKit's own ``run.py`` with our model class and the ``Local*`` datasets resolvable.

    python -m integrations.vlmeval.run [--run-py PATH] --config cfg.json [any other run.py flag]
    torchrun --nproc-per-node 8 -m integrations.vlmeval.run --config cfg.json      # VK's multi-GPU mode

Why a launcher and not a patch: run.py resolves a model ``class`` with ``getattr(vlmeval.vlm, name)`` and a
dataset ``class`` with ``getattr(vlmeval.dataset, name)``, and has no plugin hook.  Registering our classes
into those modules in this process and then executing the unmodified run.py as ``__main__`` needs no edit
to VLMEvalKit's files and follows run.py's flags, outputs and multi-process behaviour as they are.

run.py is not part of the installed ``vlmeval`` package (it sits beside it in the repository), so it is found
from ``--run-py``, else ``$VLMEVAL_RUN_PY``, else next to the installed package (an editable install or a
checkout on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path
from typing import Optional

from integrations.vlmeval import VLMEvalMissing, require_vlmeval


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
    vlmeval = require_vlmeval("integrations.vlmeval.run")
    beside = Path(vlmeval.__file__).resolve().parent.parent / "run.py"
    if beside.is_file():
        return beside
    raise RunPyNotFound(
        "VLMEvalKit's run.py is not installed with the vlmeval package (it sits at the top of its repository): "
        "pass --run-py /path/to/VLMEvalKit/run.py or set VLMEVAL_RUN_PY (a clone of the same commit)")


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m integrations.vlmeval.run", add_help=False,
                                 description="VLMEvalKit's run.py with unitoken-eval's model class registered")
    ap.add_argument("--run-py", dest="run_py", help="path of VLMEvalKit's run.py (default: beside the package)")
    ap.add_argument("--unitoken-help", action="store_true", help="show this help (plain --help is run.py's)")
    ours, rest = ap.parse_known_args(argv)
    if ours.unitoken_help:
        ap.print_help()
        return 0
    try:
        run_py = find_run_py(ours.run_py)
        from integrations.vlmeval.model import register

        register()
    except (RunPyNotFound, VLMEvalMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # run.py imports its sibling modules (none today) relative to its folder, and reads sys.argv itself.
    sys.path.insert(0, str(run_py.parent))
    sys.argv = [str(run_py), *rest]
    try:
        runpy.run_path(str(run_py), run_name="__main__")
    except SystemExit as exc:  # argparse's --help / errors inside run.py
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
