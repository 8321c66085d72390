"""Load an mmdet ``.pth`` checkpoint without running code from the file.

mmengine's loader calls ``torch.load`` with pickling fully enabled, and torch's weights-only default rejects
mmdet checkpoints whose ``meta`` holds numpy scalars or library objects.  We load with ``weights_only=True``
and admit exactly what an mmdet checkpoint needs: numpy scalars and dtypes as themselves, and every other
global the file names as an inert placeholder (its state is kept as data, nothing is called).  Only
``state_dict`` and plain metadata are used afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


class Placeholder:
    """Stands for an object of a class the checkpoint names but we refuse to import."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualname}>"


def _numpy_globals() -> list[Any]:
    allowed: list[Any] = [np.dtype, np.ndarray]
    for modname in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(modname, fromlist=["scalar", "_reconstruct"])
        except ImportError:
            continue
        allowed += [(mod.scalar, f"{modname}.scalar"), (mod._reconstruct, f"{modname}._reconstruct")]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "uint8")]
    return allowed


def _placeholder(qualname: str) -> type:
    return type(f"Placeholder[{qualname}]", (Placeholder,), {"qualname": qualname})


def load_checkpoint_safely(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict (``state_dict`` + ``meta``), loaded with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detector checkpoint {path} does not exist")
    allowed = _numpy_globals()
    known = {f"{getattr(a, '__module__', '')}.{getattr(a, '__name__', '')}" for a in allowed if not isinstance(a, tuple)}
    known |= {a[1] for a in allowed if isinstance(a, tuple)}
    try:
        unknown = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # an old-format (non-zip) file: let torch.load report it
        unknown = []
    allowed += [(_placeholder(name), name) for name in unknown if name not in known]
    with torch.serialization.safe_globals(allowed):
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
    return ckpt


def state_dict_of(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights, without a DataParallel ``module.`` prefix."""
    sd = ckpt.get("state_dict", ckpt)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("checkpoint has no tensor state_dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
