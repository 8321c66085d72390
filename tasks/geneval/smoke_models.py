"""Tiny random-weight stand-ins for GenEval's detector and colour classifier, for offline smoke runs only.

They exercise every step of the real scoring path (detector interface, per-class regrouping, thresholds,
mask crops, CLIP zero-shot colour, rules, caches) in seconds without downloads; their numbers mean nothing
and results say so.  The detector is a miniature mask-classification model (queries -> class logits and
mask logits, scored as Mask2Former's instance post-processing: class probability x mean mask probability,
boxes from masks); the colour model is transformers' CLIPModel built from a tiny config.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PIL import Image

from tasks.geneval.detector import CLASS_NAMES, Detections, Detector, sort_by_class

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


class CharTokenizer:
    """A vocabulary-free tokenizer for the tiny CLIP (characters -> ids), shaped like a transformers one."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.bos, self.eos = vocab_size - 2, vocab_size - 1

    def __call__(self, texts: list[str], padding: bool = True, return_tensors: str = "pt") -> Any:
        import torch
        from transformers import BatchEncoding

        rows = [[self.bos] + [ord(c) % (self.vocab_size - 2) for c in t] + [self.eos] for t in texts]
        n = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.eos] * (n - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
        return BatchEncoding({"input_ids": ids, "attention_mask": mask})


def smoke_color_classifier(device: str = "cpu", seed: int = 0):
    import torch
    from transformers import CLIPConfig, CLIPModel

    from tasks.geneval.colors import ColorClassifier

    vocab = 160
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    return ColorClassifier(model, CharTokenizer(vocab), device, "smoke CLIP (tiny, random weights)", 224,
                           caveat="smoke colour classifier: random weights, numbers meaningless")
