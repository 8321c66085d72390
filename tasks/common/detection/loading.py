"""Build the shared detector from a spec string (the interface is in unitoken_eval.tasks.common.detection).

Kept apart from the interface so the backends, which implement it, never import back into it.
"""

from __future__ import annotations

import os
from typing import Any, Union

from unitoken_eval.tasks.common.detection import CHECKPOINT_NAME, ENV_CHECKPOINT, Detector, DetectorError


def load_detector(spec: Union[str, Detector, None] = None, **kwargs: Any) -> Detector:
    """Build a detector from a spec string (see the module docstring) or pass one through.

    Keyword arguments go to the backend: ``checkpoint``, ``config``, ``device`` ("cuda", "cpu", or None for
    CUDA when present), ``batch_size``.
    """
    if isinstance(spec, Detector):
        return spec
    spec = (spec or "mmdet").strip()
    if spec == "smoke":
        from unitoken_eval.tasks.common.detection.smoke import SmokeDetector

        return SmokeDetector(**{k: v for k, v in kwargs.items() if k in ("device",)})
    checkpoint = kwargs.pop("checkpoint", None)
    if spec.startswith("mmdet:"):
        checkpoint = spec[len("mmdet:"):] or checkpoint
    elif spec != "mmdet":
        if spec.endswith((".pth", ".pt", ".ckpt")) or os.path.sep in spec:
            checkpoint = spec
        else:
            raise DetectorError(f"unknown detector spec {spec!r}: use 'mmdet', 'mmdet:/path/to/checkpoint.pth' "
                                f"or 'smoke'")
    checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT)
    if not checkpoint:
        raise DetectorError(
            "the GenEval detector needs its checkpoint: download the mmdet 3.x Mask2Former Swin-S weights "
            f"({CHECKPOINT_NAME}, listed in mmdet 3.3's configs/mask2former/metafile.yml) and pass "
            f"detector_checkpoint=PATH or set ${ENV_CHECKPOINT}"
        )
    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    return MMDetMask2Former(checkpoint=checkpoint, **kwargs)
