"""The object detector GenEval's rules read and T2I-CompBench++'s spatial/numeracy rules reuse: its interface.

GenEval's evaluate_images.py reads mmdet 2.x output: per COCO class, an (n, 5) array of [x1, y1, x2, y2, score]
and, for Mask2Former, one binary mask per row.  Every backend here returns that shape, as plain
:class:`Detection` records keyed by GenEval's class names, so the rules never see a detector library's types.

Backends (built by :func:`unitoken_eval.tasks.common.detection.loading.load_detector` from a spec string a run
configuration can name):
  ``mmdet`` / ``mmdet:/path/to/checkpoint.pth`` / ``/path/to/checkpoint.pth``: mmdet 3 Mask2Former Swin-S
      (the GenEval detector, ``mask2former.py``; checkpoint from the spec, the ``checkpoint=`` argument or
      ``$UNITOKEN_GENEVAL_DETECTOR``);
  ``smoke``: a tiny random-weight mask-classification detector over the same 80 classes (``smoke.py``), for
      offline smoke runs only (its numbers mean nothing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from PIL import Image

from unitoken_eval.harness.plugin import NotScored
from unitoken_eval.tasks.common.detection.legacy_sort import argsort_numpy123

# The 80 COCO classes in COCO's category order, as GenEval names them (three renamed: "computer mouse",
# "tv remote", "computer keyboard").  Index i here is mmdet's label i for a COCO-trained model.
CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

ENV_CHECKPOINT = "UNITOKEN_GENEVAL_DETECTOR"
CHECKPOINT_NAME = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth"


class DetectorError(NotScored):
    """The detector cannot be built or run (missing extra, missing or wrong checkpoint): not scored, never 0."""


@dataclass
class Detection:
    """One detected instance: box in pixels [x1, y1, x2, y2], confidence, and its binary mask (H, W) if any."""

    box: list[float]
    score: float
    mask: Optional[np.ndarray] = field(default=None, repr=False)
    # The colour GenEval's CLIP classifier chose for this instance (filled in by the task, cached to disk).
    color: Optional[str] = None

    def row(self) -> list[float]:
        """The mmdet 2.x bbox row GenEval stores in its results' ``details``: [x1, y1, x2, y2, score]."""
        return [float(v) for v in self.box] + [float(self.score)]


Detections = dict[str, list[Detection]]


class Detector(ABC):
    """Detects the 80 COCO classes; ``name`` is recorded in results so a reader knows which model scored."""

    name: str = "detector"
    # A line for results when this is not GenEval's reference detector (smoke, other models).
    caveat: Optional[str] = None

    @abstractmethod
    def detect(self, images: list[Image.Image], min_score: float = 0.0, with_masks: bool = True) -> list[Detections]:
        """Per image, class name -> detections sorted by descending score (only classes that have any).

        ``min_score`` drops detections at or below it early (saves memory on 100-query models; the rules
        still apply their own thresholds); ``with_masks=False`` skips returning masks.
        """

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"detector": self.name}
        if self.caveat:
            d["caveat"] = self.caveat
        return d

    def close(self) -> None:
        """Release model memory."""


def sort_by_class(labels: np.ndarray, scores: np.ndarray, boxes: np.ndarray, masks: Optional[Any],
                  min_score: float = 0.0, with_masks: bool = True) -> Detections:
    """Group flat instance arrays (label, score, box, mask) into GenEval's per-class lists.

    mmdet 2.x's ``bbox2result``/``mask2result`` kept each class's instances in the order the head emitted
    them and GenEval sorts by score afterwards with ``np.argsort(scores)[::-1]`` under NumPy 1.23.  Newer
    NumPy orders equal scores differently, so the 1.23 algorithm is reproduced (legacy_sort.py)
    on the float32 scores: ties come out exactly as upstream's.
    """
    out: Detections = {}
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for idx, name in enumerate(CLASS_NAMES):
        rows = np.flatnonzero(labels == idx)
        if rows.size == 0:
            continue
        order = rows[np.array(argsort_numpy123(scores[rows].astype(np.float32).tolist()), dtype=np.intp)[::-1]]
        dets = []
        for r in order:
            if scores[r] <= min_score:
                continue
            mask = None
            if with_masks and masks is not None:
                mask = np.asarray(masks[r]).astype(bool)
            dets.append(Detection(box=boxes[r].tolist(), score=float(scores[r]), mask=mask))
        if dets:
            out[name] = dets
    return out
