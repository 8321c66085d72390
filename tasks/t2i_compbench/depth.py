"""MiDaS DPT-Hybrid depth for the 3D-spatial rule, produced the way 3D_spatial_eval.py produces it.

Upstream (@1b70949, experts/model_bank_3d.py + 3D_spatial_eval.py): the image resized to 480 x 480 (bilinear),
normalised with mean = std = 0.5, through DPT-Hybrid (``dpt_hybrid-midas-501f0c75.pt``, non-negative inverse
depth, fp16 autocast); each map min-max normalised, resized to the image size (bilinear, align_corners=True),
written as an 8-bit PNG (PIL truncates 255 * d), read back, resized like the detector input
(``Resize(479, max_size=480)``, bilinear) and divided by 255.  We use transformers' DPTForDepthEstimation with
``Intel/dpt-hybrid-midas`` (the same MiDaS v3 hybrid weights, converted) in float32 [parity unverified].
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from unitoken_eval.tasks.common.scorer_models import load_pretrained

from unitoken_eval.tasks.t2i_compbench.blip_vqa import default_device
from unitoken_eval.tasks.t2i_compbench.detectors import scoring_size

DEFAULT_MODEL = "Intel/dpt-hybrid-midas"
INPUT_SIZE = 480


def preprocess(image: Image.Image) -> np.ndarray:
    im = image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return ((arr - 0.5) / 0.5).transpose(2, 0, 1).copy()


def to_png_levels(pred: np.ndarray, width: int, height: int) -> np.ndarray:
    """Min-max normalise, resize to (height, width) bilinear with align_corners=True, 8-bit as PIL stores it."""
    import torch

    d = torch.as_tensor(pred, dtype=torch.float32)
    d = (d - d.min()) / (d.max() - d.min())
    d = torch.nn.functional.interpolate(d[None, None], size=(height, width), mode="bilinear", align_corners=True)
    levels = Image.fromarray(255 * d[0, 0].numpy()).convert("L")  # PIL truncates and clips, as upstream's PNG
    return np.asarray(levels)


def in_scoring_frame(levels: np.ndarray) -> np.ndarray:
    """The 8-bit map read back and resized like the detector input, as float32 in [0, 1]."""
    im = Image.fromarray(levels, mode="L")
    size = scoring_size(*im.size)
    if size != im.size:
        im = im.resize(size, Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


class MidasDepth:
    def __init__(self, model, device: str = "cpu", label: str = "", batch_size: int = 16):
        import torch

        self.torch = torch
        self.model = model.to(device).eval()
        self.device = device
        self.label = label
        self.batch_size = batch_size
        # transformers' hybrid (BiT + ViT) embeddings refuse inputs other than their configured size unless told
        # to interpolate, and DPTModel does not pass that flag on; upstream runs DPT-Hybrid at 480 px with its
        # position grid resized bilinearly, which is what these embeddings do once the size check passes.
        emb = getattr(getattr(model, "dpt", None), "embeddings", None)
        if emb is not None and isinstance(getattr(emb, "image_size", None), (tuple, list)):
            emb.image_size = (INPUT_SIZE, INPUT_SIZE)

    @classmethod
    def load(cls, model_id: Optional[str] = None, device: Optional[str] = None) -> "MidasDepth":
        from transformers import DPTForDepthEstimation

        model_id = model_id or DEFAULT_MODEL
        (model,) = load_pretrained("T2I-CompBench++ depth model", model_id, "depth_model", DEFAULT_MODEL,
                                   DPTForDepthEstimation.from_pretrained)
        return cls(model, device or default_device(), label=f"MiDaS DPT-Hybrid {model_id} (transformers)")

    def depth_maps(self, images: list[Image.Image]) -> list[np.ndarray]:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                ims = images[s : s + self.batch_size]
                pix = torch.from_numpy(np.stack([preprocess(im) for im in ims])).to(self.device)
                pred = self.model(pixel_values=pix).predicted_depth.float().cpu().numpy()
                for im, p in zip(ims, pred):
                    out.append(in_scoring_frame(to_png_levels(p, *im.size)))
        return out
