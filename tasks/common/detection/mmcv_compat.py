"""Make mmdet 3 importable with ``mmcv-lite`` (the only mmcv on PyPI as wheels), without its compiled ops.

``mmcv.ops`` loads ``mmcv._ext`` at import and asserts every op name exists, although GenEval's Mask2Former
needs only one of them at inference: multi-scale deformable attention, which mmcv itself runs in pure
PyTorch on CPU tensors and through ``_ext.ms_deform_attn_forward`` on CUDA tensors.  When the compiled module
is missing we register a stand-in before mmdet is imported: that one op is computed with mmcv's own
PyTorch implementation (same bilinear sampling as the CUDA kernel), every other op raises a clear error
if something calls it.  A full mmcv (with ``_ext``) is used as is.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

STANDIN_NAME = "mmcv._ext"


class MissingOpError(RuntimeError):
    """A compiled mmcv op was called that the PyTorch stand-in does not provide."""


def _ms_deform_attn_forward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                            attention_weights, im2col_step=None):
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

    # mmcv's PyTorch path reads the level shapes as Python sizes; on CUDA they would arrive as device tensors
    return multi_scale_deformable_attn_pytorch(value, value_spatial_shapes.cpu(), sampling_locations,
                                               attention_weights)


def _missing(name: str):
    def op(*args, **kwargs):
        raise MissingOpError(
            f"mmcv compiled op '{name}' is not available: mmcv-lite has no compiled ops and only "
            "ms_deform_attn_forward is provided in PyTorch; install a full mmcv (2.0-2.1) for this model"
        )

    op.__name__ = name
    return op


def _module_getattr(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return _missing(name)


def ensure_mmcv_ops() -> str:
    """Register the stand-in if needed; returns "compiled" (a full mmcv) or "pytorch" (the stand-in)."""
    existing = sys.modules.get(STANDIN_NAME)
    if existing is not None:
        return "pytorch" if getattr(existing, "_unitoken_standin", False) else "compiled"
    try:
        spec = importlib.util.find_spec(STANDIN_NAME)
    except ModuleNotFoundError:
        raise ImportError("mmcv is not installed (pip install 'unitoken-eval[geneval]')") from None
    if spec is not None:
        return "compiled"
    import mmcv

    module = types.ModuleType(STANDIN_NAME, "PyTorch stand-in for mmcv's compiled ops (unitoken-eval)")
    # A spec without a loader: mmengine's mmcv_full_available() then (rightly) reports no full mmcv.
    module.__spec__ = importlib.machinery.ModuleSpec(STANDIN_NAME, None)
    module._unitoken_standin = True
    module.ms_deform_attn_forward = _ms_deform_attn_forward
    module.__getattr__ = _module_getattr
    sys.modules[STANDIN_NAME] = module
    mmcv._ext = module
    return "pytorch"
