"""Inputs as the UniToken release builds them: text turns, SigLIP views (base or AnyRes), token layout.

The AnyRes rules follow the release's LLaVA-derived helpers (select_best_resolution, resize-and-pad, 384
tiles, unpad), re-implemented here so the continuous-token count per image is exactly the release's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from unitoken_eval.harness.plugin import AdapterError

# (width, height) in the release's order: the order decides ties
PINPOINTS: tuple[tuple[int, int], ...] = ((384, 768), (768, 384), (768, 768), (384, 1152), (1152, 384))
IMAGE_SYMBOL = "<|image|>"
END_OF_TURN = "<reserved08706>"  # id 8710
T2I_TEMPLATE = "Generate an image according to the following prompt:\n{prompt}"
SIGLIP_MEAN = SIGLIP_STD = 0.5


def select_best_resolution(size: tuple[int, int], candidates: Sequence[tuple[int, int]] = PINPOINTS) -> tuple[int, int]:
    """Most kept pixels (capped at the original's), then least padding; earlier candidates win exact ties."""
    w, h = size
    best, best_eff, best_waste = None, 0, float("inf")
    for cw, ch in candidates:
        scale = min(cw / w, ch / h)
        eff = min(int(w * scale) * int(h * scale), w * h)
        waste = cw * ch - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (cw, ch), eff, waste
    return best


def resize_and_pad(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Aspect-preserving resize (PIL's default filter, as the release) centred on black."""
    w, h = img.size
    tw, th = target
    sw, sh = tw / w, th / h
    if sw < sh:
        nw, nh = tw, min(math.ceil(h * sw), th)
    else:
        nw, nh = min(math.ceil(w * sh), tw), th
    canvas = Image.new("RGB", (tw, th), (0, 0, 0))
    canvas.paste(img.resize((nw, nh)), ((tw - nw) // 2, (th - nh) // 2))
    return canvas


def tiles(img: Image.Image, tile: int) -> list[Image.Image]:
    w, h = img.size
    return [img.crop((x, y, x + tile, y + tile)) for y in range(0, h, tile) for x in range(0, w, tile)]


def siglip_pixels(views: Sequence[Image.Image], size: int) -> torch.Tensor:
    """SigLIP's processor: bicubic to size x size, /255, mean/std 0.5 -> float32 [N, 3, size, size]."""
    arrs = []
    for v in views:
        v = v.convert("RGB")
        if v.size != (size, size):
            v = v.resize((size, size), resample=Image.BICUBIC)
        a = np.asarray(v, dtype=np.float32) * np.float32(1 / 255)
        arrs.append((a - SIGLIP_MEAN) / SIGLIP_STD)
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def unpad_rows_cols(orig: tuple[int, int], rows: int, cols: int) -> tuple[slice, slice]:
    """Which rows/columns of the reassembled (rows x cols) feature grid survive unpadding.

    ``padding = leftover // 2`` is cut from both sides, so an odd leftover keeps one extra row/column.
    """
    ow, oh = orig
    if ow / oh > cols / rows:
        new = int(oh * (cols / ow))
        pad = (rows - new) // 2
        return slice(pad, rows - pad), slice(0, cols)
    new = int(ow * (rows / oh))
    pad = (cols - new) // 2
    return slice(0, rows), slice(pad, cols - pad)


@dataclass
class VisionLayout:
    """How one image becomes SigLIP views and how their features are arranged."""

    anyres: bool
    image_size: int = 384
    patch_size: int = 14

    @property
    def side(self) -> int:
        return self.image_size // self.patch_size  # 27 features per tile side

    def views(self, img: Image.Image) -> tuple[list[Image.Image], Optional[tuple[int, int]]]:
        """Base view first; with AnyRes the tiles of the chosen pinpoint follow (grid (cols, rows))."""
        img = img.convert("RGB")
        base = img.resize((self.image_size, self.image_size))
        if not self.anyres:
            return [base], None
        pins = tuple((w * self.image_size // 384, h * self.image_size // 384) for w, h in PINPOINTS)
        best = select_best_resolution(img.size, pins)
        return [base] + tiles(resize_and_pad(img, best), self.image_size), (best[0] // self.image_size,
                                                                              best[1] // self.image_size)

    def arrange(self, feats: torch.Tensor, grid: Optional[tuple[int, int]], orig: tuple[int, int],
                newline: torch.Tensor) -> torch.Tensor:
        """[N_views, side*side, H] -> the continuous tokens [T, H]: base view, then unpadded rows + newline."""
        base = feats[0]
        if grid is None:
            return base
        cols, rows = grid
        s = self.side
        g = feats[1:].reshape(rows, cols, s, s, -1).permute(0, 2, 1, 3, 4).reshape(rows * s, cols * s, -1)
        rs, cs = unpad_rows_cols(orig, rows * s, cols * s)
        g = g[rs, cs]
        g = torch.cat([g, newline.to(g.dtype).expand(g.shape[0], 1, -1)], dim=1)
        return torch.cat([base, g.reshape(-1, g.shape[-1])], dim=0)

    def n_tokens(self, size: tuple[int, int]) -> int:
        """Continuous tokens for an image of ``size`` (w, h): 729 + H'(W'+1) with AnyRes, 729 without."""
        s = self.side
        if not self.anyres:
            return s * s
        pins = tuple((w * self.image_size // 384, h * self.image_size // 384) for w, h in PINPOINTS)
        bw, bh = select_best_resolution(size, pins)
        rows, cols = bh // self.image_size * s, bw // self.image_size * s
        rs, cs = unpad_rows_cols(size, rows, cols)
        return s * s + len(range(rows)[rs]) * (len(range(cols)[cs]) + 1)


class TextTokenizer:
    """The release's text side: ``tokenizers`` file, BOS = id of ``<s>`` (0; config.json's bos_token_id 1 is
    ``<pad>``, which the release does not use), the image symbol as an added token, turns ending in 8710."""

    def __init__(self, path: Path, vocabulary_map: dict[str, int]):
        from tokenizers import AddedToken, Tokenizer

        f = path / "tokenizer.json"
        if not f.is_file():
            raise AdapterError(f"{f} does not exist (the checkpoint's tokenizer file)")
        try:
            self.tok = Tokenizer.from_file(str(f))
        except Exception as exc:
            raise AdapterError(f"{f}: cannot be read by tokenizers: {exc}") from exc
        self.bos = int(vocabulary_map.get("<s>", 0))
        if self.tok.token_to_id(END_OF_TURN) is None:
            raise AdapterError(f"{f}: no token {END_OF_TURN} (end of turn)")
        self.eot = self.tok.token_to_id(END_OF_TURN)
        self.tok.add_tokens([AddedToken(IMAGE_SYMBOL, special=True, normalized=False)])
        self.image_symbol_id = self.tok.token_to_id(IMAGE_SYMBOL)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def question(self, text: str, n_images: int) -> tuple[list[int], list[int]]:
        """(ids before the image, ids after it) of one turn; without an explicit symbol the image goes first
        followed by a space, as the release inserts ``"<|image|> "``."""
        if n_images and IMAGE_SYMBOL not in text:
            text = (IMAGE_SYMBOL + " ") * n_images + text
        ids = [self.bos] + self.encode(text + END_OF_TURN)
        if not n_images:
            return ids[:1], ids[1:]  # the BOS is the (shared) prefix of text-only prompts
        at = [i for i, t in enumerate(ids) if t == self.image_symbol_id]
        if len(at) != 1:
            raise AdapterError(f"prompt has {len(at)} {IMAGE_SYMBOL} symbols; UniToken takes one image per prompt")
        return ids[: at[0]], ids[at[0] + 1:]

    def t2i(self, prompt: str, template: str = T2I_TEMPLATE) -> list[int]:
        return [self.bos] + self.encode(template.format(prompt=prompt) + END_OF_TURN)
