"""A tiny random-weight stand-in for the shared detector, for offline smoke runs only (numbers meaningless).

A miniature mask-classification model (queries -> class logits and mask logits, scored as Mask2Former's
instance post-processing: class probability x mean mask probability, boxes from masks) over the same 80
classes, so every step after detection (per-class regrouping, thresholds, mask crops, rules) runs for real.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from unitoken_eval.tasks.common.detection import CLASS_NAMES, Detections, Detector, sort_by_class

SMOKE_CAVEAT = "smoke detector: random weights, numbers meaningless"


class SmokeDetector(Detector):
    name = "smoke detector (tiny random mask-classification model)"
    caveat = SMOKE_CAVEAT

    def __init__(self, device: Optional[str] = None, queries: int = 12, seed: int = 0):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.torch = torch
        self.device = device or "cpu"
        self.stem = torch.randn(16, 3, 4, 4, generator=g) * 0.5
        self.queries = torch.randn(queries, 16, generator=g)
        # A large temperature makes random class probabilities peaky, so some pass GenEval's 0.3 threshold
        # and the colour and position rules run too.
        self.cls_head = torch.randn(16, len(CLASS_NAMES) + 1, generator=g) * 3.0
        self.top_k = queries

    def detect(self, images: list[Image.Image], min_score: float = 0.0, with_masks: bool = True) -> list[Detections]:
        torch = self.torch
        F = torch.nn.functional
        out = []
        for im in images:
            w, h = im.size
            x = torch.from_numpy(np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.float32) / 127.5 - 1.0)
            feats = F.conv2d(x.permute(2, 0, 1)[None], self.stem, stride=4)[0]  # (16, 16, 16)
            mask_logits = torch.einsum("qc,chw->qhw", self.queries, feats)
            mask_logits = F.interpolate(mask_logits[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            probs = F.softmax(self.queries @ self.cls_head, dim=-1)[:, :-1]
            scores, flat = probs.flatten().topk(self.top_k)
            q = flat // len(CLASS_NAMES)
            labels = flat % len(CLASS_NAMES)
            binary = mask_logits[q] > 0
            mask_score = (mask_logits[q].sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
            scores = scores * mask_score
            boxes = np.zeros((len(q), 4))
            for i, m in enumerate(binary.numpy()):
                ys, xs = np.nonzero(m)
                if len(xs):
                    boxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            out.append(sort_by_class(labels.numpy(), scores.numpy(), boxes, binary.numpy(), min_score, with_masks))
        return out
