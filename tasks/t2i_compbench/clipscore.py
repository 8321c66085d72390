"""CLIPScore for non-spatial prompts (and the action part of complex): raw cosine similarity.

CLIPScore_eval/CLIP_similarity.py @1b70949 uses OpenAI's ``clip`` package, ViT-B/32: the image through
CLIP's preprocessing (resize the short side to 224 bicubic, centre crop 224, CLIP normalisation), the prompt
through ``clip.tokenize``; both features L2-normalised; the score is their dot product (no 2.5 x max(., 0)
rescaling).  For complex prompts (``--complex``) adjectives are dropped from the text first.

Here the same weights come through transformers (``openai/clip-vit-base-patch32``) and the preprocessing is
re-done with PIL exactly as torchvision does it.  ``clip.load`` keeps the model in float16 on CUDA (float32
on CPU); we do the same by default (option ``clip_dtype``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from unitoken_eval.tasks.common.scorer_models import load_pretrained

from unitoken_eval.tasks.t2i_compbench.blip_vqa import CLIP_MEAN, CLIP_STD, default_device

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
SIZE = 224


def preprocess(image: Image.Image, size: int = SIZE) -> np.ndarray:
    """torchvision Resize(size, BICUBIC) + CenterCrop(size) + ToTensor + Normalize, on a PIL image."""
    im = image.convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = (arr - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return arr.transpose(2, 0, 1).copy()


class ClipScorer:
    def __init__(self, model, tokenizer, device: str = "cpu", dtype: Optional[str] = None, label: str = "",
                 batch_size: int = 64):
        import torch

        self.torch = torch
        if dtype is None:
            dtype = "float16" if str(device).startswith("cuda") else "float32"
        self.dtype = getattr(torch, dtype)
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.label = label
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_id: Optional[str] = None, device: Optional[str] = None, dtype: Optional[str] = None):
        from transformers import CLIPModel, CLIPTokenizer

        model_id = model_id or DEFAULT_MODEL
        model, tokenizer = load_pretrained("T2I-CompBench++ CLIP weights", model_id, "clip_model", DEFAULT_MODEL,
                                           CLIPModel.from_pretrained, CLIPTokenizer.from_pretrained)
        return cls(model, tokenizer, device or default_device(), dtype, label=f"CLIP {model_id} (transformers)")

    def scores(self, images: list, texts: list[str]) -> list[float]:
        """Cosine similarity of each (image, text) pair."""
        torch = self.torch
        out: list[float] = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                ims, txt = images[s : s + self.batch_size], texts[s : s + self.batch_size]
                pix = torch.from_numpy(np.stack([preprocess(im) for im in ims])).to(self.device, self.dtype)
                v = self.model.visual_projection(self.model.vision_model(pixel_values=pix).pooler_output)
                tok = self.tokenizer(txt, padding=True, truncation=True, max_length=77, return_tensors="pt")
                tok = tok.to(self.device)
                t = self.model.text_projection(
                    self.model.text_model(input_ids=tok.input_ids, attention_mask=tok.attention_mask).pooler_output
                )
                v = v / v.norm(dim=-1, keepdim=True)
                t = t / t.norm(dim=-1, keepdim=True)
                out.extend(float(x) for x in (v * t).sum(-1).float().cpu())
        return out
