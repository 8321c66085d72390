"""GenEval's colour classifier: CLIP ViT-L/14 (OpenAI weights) zero-shot over ten colours, per detected object.

Reference (evaluate_images.py @ af4902f with open_clip 2.20.0 and clip_benchmark 1.4.0):
  * crop: the object's mask composited over a #999 grey canvas, cropped to its box (``ImageCrops``);
  * preprocessing: open_clip's eval transform for "openai" ViT-L-14: resize the short side to 224 (bicubic),
    centre-crop 224, RGB, scale to [0, 1], normalise with OpenAI's mean/std.  It is re-implemented here on
    PIL exactly as torchvision computes it (``CLIPImageProcessor`` rounds sizes differently and its fast
    variant needs torchvision), so the pixels match open_clip's;
  * classifier: per class name, the three templates are encoded, L2-normalised, averaged and re-normalised
    (clip_benchmark ``zero_shot_classifier``); logits = 100 * normalised image features @ weights; argmax.
    clip_benchmark 1.4.0 runs both under ``torch.cuda.amp.autocast`` (fp16) by default: we do the same on
    CUDA; on CPU everything is fp32 (upstream never ran on CPU).
The model is transformers' ``CLIPModel`` with ``openai/clip-vit-large-patch14`` (the same OpenAI weights as
open_clip's ViT-L-14 "openai"); its tokenizer is the same BPE, padded with a mask instead of zeros, which
leaves the end-of-text features unchanged under CLIP's causal attention.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from unitoken_eval.tasks.common.detection import Detection
from unitoken_eval.tasks.geneval.rules import COLORS

DEFAULT_MODEL = "openai/clip-vit-large-patch14"
TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
BACKGROUND = "#999"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def object_crop(image: Image.Image, det: Detection, background: str = BACKGROUND) -> Image.Image:
    """The object on a grey canvas (when it has a mask), cropped to its box, as ``ImageCrops.__getitem__``."""
    image = image.convert("RGB")
    if det.mask is not None:
        mask = np.asarray(det.mask).astype(bool)
        if mask.shape != (image.size[1], image.size[0]):
            raise ValueError(f"mask shape {mask.shape} does not match the image ({image.size[1]}, {image.size[0]})")
        image = Image.composite(image, Image.new("RGB", image.size, color=background), Image.fromarray(mask))
    # PIL rounds float boxes (int(round(v))); the reference passes the detector's float box the same way.
    return image.crop(tuple(det.box[:4]))


def clip_pixels(image: Image.Image, size: int = 224) -> np.ndarray:
    """open_clip's eval transform (torchvision Resize(size, bicubic) + CenterCrop(size) + ToTensor + Normalize)."""
    w, h = image.size
    if w == 0 or h == 0:
        raise ValueError("empty crop")
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = (arr - np.array(OPENAI_MEAN, dtype=np.float32)) / np.array(OPENAI_STD, dtype=np.float32)
    return arr.transpose(2, 0, 1)


def _features(out: Any):
    """transformers < 5.20 returns the projected tensor, later versions an output with ``pooler_output``."""
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ColorClassifier:
    """Zero-shot colour of each detection; text weights are computed once per class name."""

    def __init__(self, model: Any, tokenizer: Any, device: str, name: str, image_size: int = 224,
                 caveat: Optional[str] = None):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.device = device
        self.name = name
        self.image_size = image_size
        self.caveat = caveat
        self._weights: dict[str, Any] = {}

    def _autocast(self):
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _class_weights(self, classname: str):
        import torch
        import torch.nn.functional as F

        if classname not in self._weights:
            cols = []
            with torch.no_grad(), self._autocast():
                for color in COLORS:
                    texts = [t.format(c=color, cls=classname) for t in TEMPLATES]
                    tok = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
                    emb = _features(self.model.get_text_features(input_ids=tok["input_ids"],
                                                                 attention_mask=tok.get("attention_mask")))
                    emb = F.normalize(emb, dim=-1).mean(dim=0)
                    emb = emb / emb.norm()
                    cols.append(emb)
                self._weights[classname] = torch.stack(cols, dim=1)
        return self._weights[classname]

    def classify(self, image: Image.Image, classname: str, detections: Sequence[Detection]) -> list[str]:
        """The colour name chosen for each detection (in order)."""
        import torch
        import torch.nn.functional as F

        if not detections:
            return []
        weights = self._class_weights(classname)
        pixels = np.stack([clip_pixels(object_crop(image, d), self.image_size) for d in detections])
        with torch.no_grad(), self._autocast():
            x = torch.from_numpy(pixels).to(self.device)
            feats = F.normalize(_features(self.model.get_image_features(pixel_values=x)), dim=-1)
            logits = 100.0 * feats @ weights
        return [COLORS[i] for i in logits.argmax(dim=1).tolist()]

    def describe(self) -> dict[str, Any]:
        d = {"color_model": self.name, "device": self.device}
        if self.caveat:
            d["color_caveat"] = self.caveat
        return d
