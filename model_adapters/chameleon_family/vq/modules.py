"""The VQ-GAN as modules whose parameter names are exactly the keys of Meta's ``vqgan.ckpt``.

Encoder and quantizer are transformers' Chameleon classes (their names and shapes match Meta's keys one for
one).  transformers ships no decoder, so the taming-style decoder is ours: a mirror of the encoder (resnet
blocks with GroupNorm(32) and swish, single-head spatial self-attention at the lowest resolution,
nearest-neighbour x2 upsampling followed by a 3x3 conv), num_res_blocks + 1 blocks per level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VQGANConfig


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm-swish-conv twice plus a (1x1 when the width changes) shortcut; no timestep input."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head attention over all positions, q/k/v/out as 1x1 convs (taming's layout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        h = self.norm(x)
        # [B, 1 head, HW, C]; the default scale 1/sqrt(C) is taming's
        q, k, v = (m(h).flatten(2).transpose(1, 2).unsqueeze(1) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, hgt, wid)
        return x + self.proj_out(out)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """Latent [B, z_channels, r, r] -> pixels [B, out_ch, r*2^(L-1), ...], L = len(ch_mult)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        levels = len(cfg.ch_mult)
        attn = cfg.attn_type == "vanilla"
        block_in = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // 2 ** (levels - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, cfg.dropout)
        self.mid.attn_1 = AttnBlock(block_in) if attn else nn.Identity()
        self.mid.block_2 = ResnetBlock(block_in, block_in, cfg.dropout)
        ups: list[nn.Module] = []
        for level in reversed(range(levels)):
            up = nn.Module()
            up.block = nn.ModuleList()
            up.attn = nn.ModuleList()
            block_out = cfg.ch * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                up.block.append(ResnetBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if attn and res in cfg.attn_resolutions:
                    up.attn.append(AttnBlock(block_in))
            if level != 0:
                up.upsample = Upsample(block_in)
                res *= 2
            ups.insert(0, up)  # index = level, as in the checkpoint's up.{level}.* keys
        self.up = nn.ModuleList(ups)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(range(len(self.up))):
            up = self.up[level]
            for i, block in enumerate(up.block):
                h = block(h)
                if len(up.attn):
                    h = up.attn[i](h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VQGAN(nn.Module):
    """Encoder + quantizer + 1x1 convs + decoder under Meta's key names (``encoder.*``, ``decoder.*`` ...)."""

    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        from transformers.models.chameleon.modeling_chameleon import (
            ChameleonVQVAEEncoder,
            ChameleonVQVAEVectorQuantizer,
        )

        tf_cfg = cfg.transformers_vq_config()
        self.cfg = cfg
        self.encoder = ChameleonVQVAEEncoder(tf_cfg)
        self.quantize = ChameleonVQVAEVectorQuantizer(tf_cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels [B,3,H,W] in [-1,1] -> codes [B, H/16, W/16] (nearest codebook entry)."""
        h = self.quant_conv(self.encoder(pixels))
        b, _, hh, ww = h.shape
        flat = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        emb = self.quantize.embedding.weight
        # the same expansion of |z - e|^2 as the release, so ties and rounding pick the same codes
        dist = flat.pow(2).sum(1, keepdim=True) + emb.pow(2).sum(1) - 2 * flat @ emb.t()
        return dist.argmin(1).view(b, hh, ww)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, h, w] -> pixels [B, out_ch, 16h, 16w], unclamped."""
        z = self.quantize.embedding(codes).permute(0, 3, 1, 2).contiguous()
        return self.decoder(self.post_quant_conv(z))


def random_init_(model: nn.Module, seed: int) -> None:
    """Fill every parameter from a private generator so a tiny model is the same for a seed on any machine.

    Norms near identity, convs scaled by 1/sqrt(fan_in), codebook ~ N(0,1): activations stay O(1) through
    the random network, so encoded codes vary with the image and decoded pixels are not all saturated.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod_name, mod in sorted(model.named_modules()):
            for p_name, p in sorted(mod.named_parameters(recurse=False)):
                if isinstance(mod, nn.GroupNorm):
                    base = 1.0 if p_name == "weight" else 0.0
                    p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
                elif isinstance(mod, nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=gen))
                elif p_name == "bias":
                    p.copy_(0.02 * torch.randn(p.shape, generator=gen))
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
