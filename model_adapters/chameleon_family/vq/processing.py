"""Image -> VQ-GAN pixels exactly as the release's item processor prepares them.

The release (UniToken / Lumina-mGPT ``FlexARItemProcessor.process_image``) works on the image in its own
mode: halve with BOX while both sides are at least twice the crop, BICUBIC-resize so the crop is covered,
then crop at a *random* offset; only afterwards does Meta's tokenizer flatten transparency onto white and
map to [-1, 1] in float64.  The random offset comes from Python's ``random`` which the release seeds with
100 when its item processor is imported; before the offsets, its ``var_center_crop`` draws a
``random.choice`` over its one crop size, which advances the generator.  We replay that from a private
``random.Random(100)`` per image, i.e. what a fresh official process does for its first image, without
touching the global generator.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from PIL import Image

RELEASE_SEED = 100
CROP = 512


def crop_sizes_for(target: int, patch: int = 32, max_ratio: float = 4.0) -> list[tuple[int, int]]:
    """The (w, h) crops of ``(target // patch)^2`` patches with aspect at most ``max_ratio``, in the order
    the release lists them (Lumina-mGPT uses these; UniToken only ``[(512, 512)]``)."""
    budget = (target // patch) ** 2
    sizes, wp, hp = [], budget, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= max_ratio:
            sizes.append((wp * patch, hp * patch))
        if (hp + 1) * wp <= budget:
            hp += 1
        else:
            wp -= 1
    return sizes


def crop_like_release(
    img: Image.Image, size: int = CROP, seed: int = RELEASE_SEED, crop_sizes: Sequence[tuple[int, int]] | None = None
) -> Image.Image:
    """The crop the release feeds its VQ-GAN (still in the image's own mode).

    ``crop_sizes`` (w, h) candidates default to one ``size`` x ``size`` square; the one keeping most of the
    image's aspect wins (ties to the larger size, as the release's descending sort of (ratio, size) does).
    """
    rng = random.Random(seed)
    candidates = list(crop_sizes) if crop_sizes else [(size, size)]
    w, h = img.size
    kept = [min(cw / w, ch / h) / max(cw / w, ch / h) for cw, ch in candidates]
    # the release draws random.choice over the best one: a single candidate, but the draw advances the RNG
    cw, ch = rng.choice(sorted(zip(kept, candidates), reverse=True)[:1])[1]
    while img.size[0] >= 2 * cw and img.size[1] >= 2 * ch:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = max(cw / img.size[0], ch / img.size[1])
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    left = rng.randint(0, img.size[0] - cw)
    top = rng.randint(0, img.size[1] - ch)
    return img.crop((left, top, left + cw, top + ch))


def whiten_transparency(img: Image.Image) -> Image.Image:
    """RGB as Meta's tokenizer makes it: transparent pixels blended onto white, other modes converted."""
    if img.mode == "RGB":
        return img
    rgba = np.array(img.convert("RGBA"))
    if not (rgba[:, :, 3] < 255).any():
        return img.convert("RGB")
    alpha = rgba[:, :, 3:4] / 255.0
    blended = (1 - alpha) * 255 + alpha * rgba[:, :, :3]
    return Image.fromarray(blended.astype(np.uint8), "RGB")


def to_pixels(img: Image.Image) -> torch.Tensor:
    """RGB uint8 -> float32 [3, H, W] in [-1, 1], computed in float64 first as the release does."""
    arr = np.asarray(whiten_transparency(img)) / 255.0 * 2 - 1
    return torch.from_numpy(arr).permute(2, 0, 1).to(torch.float32).contiguous()


def preprocess(img: Image.Image, size: int = CROP, crop_sizes: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    return to_pixels(crop_like_release(img, size, crop_sizes=crop_sizes))


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Decoder output [B, 3, H, W] in [-1, 1] -> RGB images, clamped and truncated to uint8 as the release."""
    x = ((pixels.detach().float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray((a * 255).astype(np.uint8), "RGB") for a in x]
