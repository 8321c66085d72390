"""GenEval's detector: mmdet 3 Mask2Former Swin-S (COCO instance segmentation) with the 3.x checkpoint.

Upstream ran mmdet 2.x with ``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`` and asserted CUDA.  Here the
3.x config shipped inside the mmdet wheel is built with the 3.x conversion of the same weights (mixing a 3.x
checkpoint with the 2.x config gives all-zero scores, geneval #6), on CUDA when present and on CPU otherwise.
The 3.x result (a DetDataSample with flat labels/scores/boxes/masks) is regrouped per class as mmdet 2.x's
``bbox2result``/``mask2result`` did, which is what GenEval's rules read.  Both mmdet versions' test pipelines
resize to (1333, 800) keeping the ratio, normalise with the same mean/std and pad to a multiple of 32.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from unitoken_eval.harness.remote import announce_code
from unitoken_eval.tasks.common.detection import CLASS_NAMES, Detections, Detector, DetectorError, sort_by_class

log = logging.getLogger("unitoken_eval.geneval")

CONFIG_REL = ".mim/configs/mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"


def default_config() -> Path:
    import mmdet

    path = Path(mmdet.__file__).resolve().parent / CONFIG_REL
    if not path.exists():
        raise DetectorError(f"mmdet's Mask2Former Swin-S config is missing from the installed wheel ({path})")
    return path


def pick_device(device: Optional[str] = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class MMDetMask2Former(Detector):
    name = "mmdet Mask2Former Swin-S (mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco)"

    def __init__(self, checkpoint: Optional[str] = None, config: Optional[str] = None,
                 device: Optional[str] = None, batch_size: Any = None, random_weights: bool = False):
        try:
            from unitoken_eval.tasks.common.detection.mmcv_compat import ensure_mmcv_ops

            self.ops = ensure_mmcv_ops()
            import torch
            from mmdet.apis import init_detector
            from mmdet.utils import get_test_pipeline_cfg
            from mmengine.config import Config
            from mmcv.transforms import Compose
        except ImportError as exc:
            raise DetectorError(
                f"the GenEval detector needs mmdet 3.3 / mmengine / mmcv-lite: pip install 'unitoken-eval[geneval]' "
                f"({exc})"
            ) from None
        self.device = pick_device(device)
        self.batch_size = int(batch_size) if batch_size else (8 if self.device.startswith("cuda") else 1)
        if config:  # mmengine runs a .py config as Python: a config option must not do that silently
            announce_code(str(Path(config).resolve()), "GenEval detector config (mmengine executes it as Python)")
        cfg = Config.fromfile(str(config or default_config()))
        if checkpoint is None and not random_weights:
            raise DetectorError("MMDetMask2Former needs a checkpoint (random_weights=True only for tests)")
        # palette != 'none' keeps init_detector from building the COCO dataset just to read its palette.
        self.model = init_detector(cfg, None, palette="random", device="cpu")
        if checkpoint is not None:
            self._load_weights(checkpoint)
            self.name = f"{self.name} [{Path(checkpoint).name}]"
        else:
            self.caveat = "random weights (test only)"
        self.model.to(self.device).eval()
        pipeline = get_test_pipeline_cfg(cfg.copy())
        pipeline[0].type = "mmdet.LoadImageFromNDArray"
        self.pipeline = Compose(pipeline)
        self._torch = torch

    def _load_weights(self, checkpoint: str) -> None:
        from unitoken_eval.tasks.common.detection.checkpoint import load_checkpoint_safely, state_dict_of

        try:
            ckpt = load_checkpoint_safely(checkpoint)
            sd = state_dict_of(ckpt)
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
            raise DetectorError(f"cannot load the detector checkpoint {checkpoint}: {exc}") from None
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        if missing:
            raise DetectorError(
                f"{checkpoint}: {len(missing)} weights of the mmdet 3.x Mask2Former Swin-S are missing "
                f"(first: {missing[0]}); is this the mmdet 3.x checkpoint mask2former_swin-s-p4-w7-224_"
                "8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth? (the 2.x file needs the 2.x config)"
            )
        if unexpected:
            log.warning("%s: %d unexpected keys ignored (first: %s)", checkpoint, len(unexpected), unexpected[0])
        classes = (ckpt.get("meta") or {}).get("dataset_meta", {}).get("classes") if isinstance(ckpt.get("meta"), dict) else None
        if classes is not None and len(classes) != len(CLASS_NAMES):
            raise DetectorError(f"{checkpoint}: trained on {len(classes)} classes, GenEval needs the 80 COCO classes")

    def detect(self, images: list[Image.Image], min_score: float = 0.0, with_masks: bool = True) -> list[Detections]:
        torch = self._torch
        out: list[Optional[Detections]] = [None] * len(images)
        # Batch only images of one size, so padding never differs from one-at-a-time inference.
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault(im.size, []).append(i)
        for idxs in by_size.values():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start:start + self.batch_size]
                data = {"inputs": [], "data_samples": []}
                for i in chunk:
                    # mmdet reads files as BGR (mmcv.imread); give it the same channel order.
                    bgr = np.ascontiguousarray(np.asarray(images[i].convert("RGB"))[:, :, ::-1])
                    item = self.pipeline({"img": bgr, "img_id": i})
                    data["inputs"].append(item["inputs"])
                    data["data_samples"].append(item["data_samples"])
                with torch.no_grad():
                    results = self.model.test_step(data)
                for i, res in zip(chunk, results):
                    out[i] = self._convert(res, min_score, with_masks)
        return out  # type: ignore[return-value]

    @staticmethod
    def _convert(result: Any, min_score: float, with_masks: bool) -> Detections:
        inst = result.pred_instances
        keep = inst.scores > min_score
        labels = inst.labels[keep].cpu().numpy()
        scores = inst.scores[keep].float().cpu().numpy()
        boxes = inst.bboxes[keep].float().cpu().numpy()
        masks = None
        if with_masks and "masks" in inst:
            masks = inst.masks[keep].bool().cpu().numpy()
        return sort_by_class(labels, scores, boxes, masks, min_score=min_score, with_masks=with_masks)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"device": self.device, "mmcv_ops": self.ops})
        return d

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
