"""One object for the image side of Chameleon-family models: PIL <-> VQ codes <-> BPE ids <-> image blocks.

An image block is ``[BOI, size_h, size_w, rows x (codes-as-ids + NEWLINE), EOI]``: 1060 tokens for 512x512
(32 rows of 32 codes).  All tensor work is batched and runs under ``no_grad`` on the tokenizer's device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
import yaml
from PIL import Image

from . import processing
from .config import (
    CKPT_FILE,
    CONFIG_FILE,
    VQGANConfig,
    VQGANLoadError,
    check_state_dict,
    find_weights,
    read_checkpoint,
)
from .modules import VQGAN, random_init_
from .vocab import ImageVocabulary

# pixels per size-token grid unit in the release (a 512 side is 16 grids)
GRID_PIXELS = 32


class VQImageTokenizer:
    def __init__(
        self,
        model: VQGAN,
        vocabulary_map: Mapping[str, int],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        source: str = "<config>",
        crop_sizes: Optional[Sequence[tuple[int, int]]] = None,
    ):
        self.cfg = model.cfg
        self.source = source
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.model.requires_grad_(False)
        self.vocab = ImageVocabulary.from_map(vocabulary_map, self.cfg.n_embed)
        # lookups live on the device so mapping never syncs with the host
        self._code_to_id = self.vocab.code_to_id.to(self.device)
        self._id_to_code = self.vocab.id_to_code.to(self.device)
        self.image_size = processing.CROP
        # (w, h) crop candidates; None = the 512x512 square UniToken uses (Lumina-mGPT: processing.crop_sizes_for)
        self.crop_sizes = list(crop_sizes) if crop_sizes else None
        self.max_decode_batch = 16
        self.latent = self.image_size // self.cfg.downsample  # 32 codes per side for 512
        n_grids = self.image_size // GRID_PIXELS
        self.size_token = self.vocab.size_id(n_grids)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_files(
        cls,
        vqgan: str | os.PathLike,
        vocabulary_map: Mapping[str, int],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        crop_sizes: Optional[Sequence[tuple[int, int]]] = None,
    ) -> "VQImageTokenizer":
        """Load Meta's release layout: ``vqgan/vqgan.yaml`` + ``vqgan/vqgan.ckpt`` (or a converted vqgan.safetensors)."""
        vqgan = Path(vqgan)
        cfg_path = vqgan / CONFIG_FILE
        if not cfg_path.is_file():
            raise VQGANLoadError(f"{cfg_path} does not exist: the VQ-GAN directory needs {CONFIG_FILE} and {CKPT_FILE}")
        cfg = VQGANConfig.from_yaml(cfg_path)
        weights = find_weights(vqgan)
        state = read_checkpoint(weights)
        with torch.device("meta"):
            model = VQGAN(cfg)
        state = check_state_dict(state, model.state_dict(), str(weights))
        model.load_state_dict(state, strict=True, assign=True)
        return cls(model, vocabulary_map, device=device, dtype=dtype, source=str(weights), crop_sizes=crop_sizes)

    @classmethod
    def from_config(
        cls,
        ddconfig: Mapping[str, Any],
        n_embed: int,
        embed_dim: int,
        vocabulary_map: Mapping[str, int],
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "VQImageTokenizer":
        """A randomly initialised VQ-GAN, identical for a given seed (for tiny test models)."""
        cfg = VQGANConfig.from_ddconfig(ddconfig, n_embed, embed_dim)
        model = VQGAN(cfg)
        random_init_(model, seed)
        return cls(model, vocabulary_map, device=device, dtype=dtype, source=f"<random seed {seed}>")

    # ---------------------------------------------------------------- pixels
    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """PIL -> float32 [3, 512, 512] in [-1, 1], cropped as the release does ([3, h, w] with crop_sizes)."""
        return processing.preprocess(img, self.image_size, self.crop_sizes)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, 512, 512] in [-1, 1] -> LongTensor codes [B, 32, 32]."""
        if pixels.dim() != 4 or pixels.shape[1] != self.cfg.in_channels:
            raise ValueError(f"encode expects pixels [B, {self.cfg.in_channels}, H, W], got {tuple(pixels.shape)}")
        return self.model.encode(pixels.to(self.device, self.dtype))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> list[Image.Image]:
        """LongTensor codes [B, 32, 32] -> 512x512 RGB images."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.dim() != 3:
            raise ValueError(f"decode expects codes [B, h, w], got {tuple(codes.shape)}")
        bad = (codes < 0) | (codes >= self.cfg.n_embed)
        if bool(bad.any()):
            raise ValueError(f"decode: codes outside the codebook [0, {self.cfg.n_embed}) e.g. {codes[bad][:3].tolist()}")
        codes = codes.to(self.device)
        images: list[Image.Image] = []
        # the decoder's 512x512 activations are ~0.5 GB per image at full width: bound the batch it sees
        for start in range(0, codes.shape[0], self.max_decode_batch):
            images += processing.to_pil(self.model.decode(codes[start : start + self.max_decode_batch]))
        return images

    # ---------------------------------------------------------------- ids
    def codes_to_bpe(self, codes: torch.Tensor) -> torch.Tensor:
        return self._code_to_id[codes.to(self._code_to_id.device)]

    def bpe_to_codes(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """BPE ids -> codes; any id that is not an image token is an error (naming it)."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self._id_to_code.device)
        inside = (ids >= 0) & (ids < self._id_to_code.numel())
        codes = torch.where(inside, self._id_to_code[ids.clamp(0, self._id_to_code.numel() - 1)], -1)
        if bool((codes < 0).any()):
            raise ValueError(f"not image tokens: ids {ids[codes < 0][:5].tolist()}")
        return codes

    def block_from_codes(self, codes: torch.Tensor) -> list[list[int]]:
        """Codes [B, h, w] -> one image block (list of ids) per image."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        b, h, w = codes.shape
        ids = self.codes_to_bpe(codes)
        rows = torch.cat([ids, torch.full((b, h, 1), self.vocab.newline, dtype=ids.dtype, device=ids.device)], 2)
        body = rows.reshape(b, -1).tolist()
        hs, ws = self.vocab.size_id(h // 2), self.vocab.size_id(w // 2)  # a grid unit is 2 codes (32 px)
        return [[self.vocab.boi, hs, ws, *row, self.vocab.eoi] for row in body]

    def codes_from_block(self, ids: Sequence[int]) -> torch.Tensor:
        """Inverse of :meth:`block_from_codes` for one block (BOI/EOI optional) -> codes [1, h, w]."""
        ids = list(ids)
        if ids and ids[0] == self.vocab.boi:
            ids = ids[1:]
        if ids and ids[-1] == self.vocab.eoi:
            ids = ids[:-1]
        sizes = {v: k for k, v in self.vocab.size_ids.items()}
        if len(ids) < 2 or ids[0] not in sizes or ids[1] not in sizes:
            raise ValueError("image block does not start with two size tokens")
        h, w = 2 * sizes[ids[0]], 2 * sizes[ids[1]]
        body = torch.as_tensor(ids[2:], dtype=torch.long)
        if body.numel() != h * (w + 1):
            raise ValueError(f"image block of {h}x{w} codes needs {h * (w + 1)} body tokens, got {body.numel()}")
        grid = body.view(h, w + 1)
        if bool((grid[:, -1] != self.vocab.newline).any()):
            raise ValueError("image block rows do not end with the newline token")
        return self.bpe_to_codes(grid[:, :-1]).unsqueeze(0)

    def image_blocks(self, images: Sequence[Image.Image],
                     pixels: Optional[Sequence[Optional[torch.Tensor]]] = None) -> list[list[int]]:
        """Batched: each image -> its block (1060 tokens for 512x512); images cropped alike share a batch.

        ``pixels``: :meth:`preprocess` of each image where computed ahead (None where not)."""
        given = list(pixels) if pixels is not None else [None] * len(images)
        pixels = [px if px is not None else self.preprocess(im) for im, px in zip(images, given)]
        out: list[list[int]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, px in enumerate(pixels):
            by_shape.setdefault(tuple(px.shape), []).append(i)
        for idx in by_shape.values():
            blocks = self.block_from_codes(self.encode(torch.stack([pixels[i] for i in idx])))
            for i, block in zip(idx, blocks):
                out[i] = block
        return out

    def image_block(self, img: Image.Image) -> list[int]:
        return self.image_blocks([img])[0]

    def decode_blocks(self, blocks: Sequence[Sequence[int]]) -> list[Image.Image]:
        if not blocks:
            return []
        return self.decode(torch.cat([self.codes_from_block(b) for b in blocks]))

    def fingerprint(self) -> dict[str, Any]:
        return {"vqgan": self.source, "n_embed": self.cfg.n_embed, "embed_dim": self.cfg.embed_dim}


def write_tiny_vqgan(
    out_dir: str | os.PathLike,
    seed: int = 0,
    ch: int = 32,
    ch_mult: Sequence[int] = (1, 1, 1, 1, 2),
    num_res_blocks: int = 1,
    z_channels: int = 32,
    embed_dim: int = 8,
    n_embed: int = 8192,
    attn_resolutions: Sequence[int] = (),
    with_loss_keys: bool = True,
) -> Path:
    """Write a random tiny VQ-GAN as Meta ships one: ``vqgan.yaml`` + ``vqgan.ckpt`` (``{"state_dict": ...}``).

    ``with_loss_keys`` adds training-only ``loss.*`` tensors as taming checkpoints carry; loading ignores them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ddconfig = {
        "double_z": False, "z_channels": z_channels, "resolution": processing.CROP, "in_channels": 3,
        "out_ch": 3, "ch": ch, "ch_mult": list(ch_mult), "num_res_blocks": num_res_blocks,
        "attn_resolutions": list(attn_resolutions), "dropout": 0.0,
    }
    cfg = VQGANConfig.from_ddconfig(ddconfig, n_embed, embed_dim)
    model = VQGAN(cfg)
    random_init_(model, seed)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if with_loss_keys:
        gen = torch.Generator().manual_seed(seed + 1)
        state["loss.logvar"] = torch.zeros(())
        state["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4, generator=gen)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_yaml_doc(), sort_keys=False))
    torch.save({"state_dict": state}, out / CKPT_FILE)
    return out
