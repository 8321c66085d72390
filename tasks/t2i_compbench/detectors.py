"""Object detectors for the spatial, 3D-spatial, numeracy and complex scorers, behind one small interface.

Upstream scores with UniDet (detectron2; RS200 for spatial, R50 for numeracy) on the image resized with
torchvision ``Resize(size=479, max_size=480)``; boxes are in that resized frame, which is what the 150-pixel
distance rule assumes.  Every backend here is run on that same resized image and returns flat
:class:`~unitoken_eval.tasks.t2i_compbench.rules.Det` lists in that frame, highest score first.

Backends (task option ``detector``):
  ``mmdet`` (default) / ``mmdet:/path/ckpt.pth``: the GenEval Mask2Former (unitoken_eval.tasks.common.detection), 80 COCO
      classes; results say "detector: mmdet Mask2Former (not the official UniDet)";
  ``unidet:/path/to/T2I-CompBench/UniDet_eval``: the official UniDet, for users who have detectron2 and the
      UniDet weights in upstream's layout (imported lazily; not verified here: detectron2 is not on PyPI);
  ``smoke``: the GenEval smoke detector (random weights), for the offline smoke suite only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Protocol

from PIL import Image

from unitoken_eval.tasks.t2i_compbench.rules import SCORE_THRESHOLD, Det

MMDET_LABEL = "mmdet Mask2Former (not the official UniDet)"
# GenEval renamed three COCO classes; T2I-CompBench prompts use the plain COCO words.
_COCO_NAMES = {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}


class DetectorUnavailable(Exception):
    """The detector cannot be built (missing extra, weights or code); never scored as zero."""


class T2IDetector(Protocol):
    label: str

    def detect(self, images: list[Image.Image]) -> list[list[Det]]: ...


def scoring_size(width: int, height: int, size: int = 479, max_size: int = 480) -> tuple[int, int]:
    """torchvision ``Resize(size=479, max_size=480)``'s output (width, height) for a PIL image."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    if new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if width <= height else (new_long, new_short)


def to_scoring_frame(image: Image.Image) -> Image.Image:
    """The image as UniDet saw it (torchvision Resize on PIL: bilinear)."""
    im = image.convert("RGB")
    size = scoring_size(*im.size)
    return im if size == im.size else im.resize(size, Image.BILINEAR)


class GenEvalDetector:
    """The GenEval detector (unitoken_eval.tasks.common.detection) seen through T2I-CompBench's flat detection lists."""

    def __init__(self, spec: str = "mmdet", threshold: float = SCORE_THRESHOLD):
        try:
            from unitoken_eval.tasks.common.detection.loading import load_detector
        except ImportError as exc:
            raise DetectorUnavailable(f"the GenEval detector module cannot be imported ({exc})") from None
        try:
            self.inner = load_detector(spec)
        except Exception as exc:  # DetectorError, missing extra or checkpoint: reported, never scored as zero
            raise DetectorUnavailable(
                f"detector {spec!r} cannot be loaded: {exc} (T2I-CompBench++ tasks take the checkpoint as option "
                f"detector=mmdet:/path/to/checkpoint.pth or detector_checkpoint=PATH)"
            ) from None
        self.threshold = threshold
        caveat = getattr(self.inner, "caveat", None)
        self.label = (caveat or f"smoke detector: random weights, numbers meaningless") if spec == "smoke" \
            else MMDET_LABEL

    def detect(self, images: list[Image.Image]) -> list[list[Det]]:
        frames = [to_scoring_frame(im) for im in images]
        out = []
        for per_class in self.inner.detect(frames, min_score=self.threshold, with_masks=False):
            dets = [
                Det(_COCO_NAMES.get(name, name), tuple(float(v) for v in d.box), float(d.score))
                for name, lst in per_class.items()
                for d in lst
                if d.score > self.threshold
            ]
            out.append(sorted(dets, key=lambda d: -d.score))
        return out


class UniDetDetector:
    """The official UniDet through upstream's own loader (UniDet_eval/experts), for users who have it.

    ``root`` is upstream's ``UniDet_eval`` directory with ``experts/expert_weights/Unified_learned_OCIM_*.pth``
    and ``dataset/detection_features.pt``; ``ckpt`` is "RS200" (spatial) or "R50" (numeracy).
    """

    def __init__(self, root: str, ckpt: str = "RS200", device: Optional[str] = None):
        self.root = Path(root).expanduser()
        if not (self.root / "experts" / "model_bank.py").exists():
            raise DetectorUnavailable(f"{self.root} is not T2I-CompBench's UniDet_eval directory (no experts/model_bank.py)")
        try:
            import detectron2  # noqa: F401
            import torch
        except ImportError:
            raise DetectorUnavailable("UniDet needs detectron2, which is not installed (it is not on PyPI)") from None
        self.torch = torch
        weights = self.root / "experts" / "expert_weights" / f"Unified_learned_OCIM_{ckpt}_6x+2x.pth"
        if not weights.exists():
            raise DetectorUnavailable(f"UniDet weights {weights} are missing")
        sys.path.insert(0, str(self.root))
        import os

        cwd = os.getcwd()
        argv = sys.argv
        try:
            os.chdir(self.root)  # upstream's loader reads configs by relative path and parses sys.argv
            sys.argv = [argv[0]]
            from experts.model_bank import load_expert_model

            self.model, _ = load_expert_model(task="obj_detection", ckpt=ckpt)
            self.labels = torch.load("dataset/detection_features.pt", weights_only=True)["labels"]
        finally:
            os.chdir(cwd)
            sys.argv = argv
        self.model.eval()
        self.label = f"UniDet {ckpt} (official)"

    def detect(self, images: list[Image.Image]) -> list[list[Det]]:
        import numpy as np

        torch = self.torch
        batch = []
        for im in images:
            frame = to_scoring_frame(im)
            arr = np.array(frame)[:, :, ::-1]
            t = torch.as_tensor(arr.astype("float32").transpose(2, 0, 1))
            batch.append({"image": t, "height": t.shape[1], "width": t.shape[2]})
        with torch.no_grad():
            preds = self.model(batch)
        out = []
        for p in preds:
            inst = p["instances"].get_fields()
            boxes = inst["pred_boxes"].tensor.tolist()
            out.append([
                Det(self.labels[int(c)], tuple(b), float(s))
                for b, c, s in zip(boxes, inst["pred_classes"].tolist(), inst["scores"].tolist())
            ])
        return out


def load(spec: Optional[str], ckpt: str = "RS200") -> T2IDetector:
    spec = (spec or "mmdet").strip()
    if spec.startswith("unidet:"):
        return UniDetDetector(spec[len("unidet:"):], ckpt=ckpt)
    if spec == "unidet":
        raise DetectorUnavailable("detector=unidet needs the UniDet_eval directory: unidet:/path/to/UniDet_eval")
    return GenEvalDetector(spec)
