"""CPU stand-ins for the four xformers pieces Meta's Chameleon transformer imports (``xformers.ops.RMSNorm``,
``fmha.memory_efficient_attention_forward``, ``rope_padded``, ``BlockDiagonalCausalWithOffsetPaddedKeysMask``),
written from xformers' documented semantics; its kernels are CUDA/Triton only.  Used by
tests/parity/chameleon_reference.py, which registers them as the ``xformers`` modules before importing Meta's code.

* the mask: queries of sequence b are rows ``q_seqinfo.seqstart[b]:seqstart[b+1]``; its keys are cache rows
  ``b*padding : b*padding + k_seqinfo.seqlen[b]``; causal aligned bottom-right (query i of n sees keys up to
  ``seqlen - n + i``).  Meta's adapter mutates ``seqstart``, ``seqstart_py``, ``max_seqlen`` and ``seqlen`` in
  place between calls, so everything is read at call time.
* ``rope_padded``: rotary embedding on adjacent pairs (LLaMA's released layout) at the positions above, writes
  the rotated keys and the values into the caches, returns the rotated queries.
* ``RMSNorm``: ``x / sqrt(mean(x^2) + eps) * weight``.
"""

from __future__ import annotations

import sys
import types

import torch
from torch import nn


class _SeqLenInfo:
    def __init__(self, seqstart_py: list[int]):
        self.seqstart_py = list(seqstart_py)
        self.seqstart = torch.tensor(self.seqstart_py, dtype=torch.int32)
        lens = [b - a for a, b in zip(self.seqstart_py, self.seqstart_py[1:])]
        self.max_seqlen, self.min_seqlen = max(lens), min(lens)


class _PaddedSeqLenInfo:
    def __init__(self, seqlen: list[int], padding: int):
        self.padding = padding
        self.seqstart_py = [i * padding for i in range(len(seqlen) + 1)]
        self.seqstart = torch.tensor(self.seqstart_py, dtype=torch.int32)
        self.seqlen = torch.tensor(seqlen, dtype=torch.int32)


class BlockDiagonalCausalWithOffsetPaddedKeysMask:
    def __init__(self, q_seqinfo: _SeqLenInfo, k_seqinfo: _PaddedSeqLenInfo):
        self.q_seqinfo, self.k_seqinfo = q_seqinfo, k_seqinfo

    @classmethod
    def from_seqlens(cls, q_seqlen, kv_padding, kv_seqlen):
        starts = [0]
        for n in q_seqlen:
            starts.append(starts[-1] + int(n))
        return cls(_SeqLenInfo(starts), _PaddedSeqLenInfo([int(x) for x in kv_seqlen], int(kv_padding)))

    def _blocks(self):
        qs = [int(x) for x in self.q_seqinfo.seqstart.tolist()]
        for b in range(len(qs) - 1):
            n = qs[b + 1] - qs[b]
            kv = int(self.k_seqinfo.seqlen[b])
            yield b, qs[b], n, b * self.k_seqinfo.padding, kv


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, include_weight: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if include_weight else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            out = out * self.weight.float()
        return out.to(x.dtype)


def _rotate_adjacent(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """x [n, H, D], pos [n]: pairs (2i, 2i+1) rotated by pos * theta^(-2i/D)."""
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    ang = pos.float()[:, None] * inv[None]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    xf = x.float()
    x0, x1 = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1).flatten(-2)
    return out.to(x.dtype)


def rope_padded(xq, xk, xv, cache_k, cache_v, attn_bias, theta=10000.0, **_unused):
    out = torch.empty_like(xq)
    for _b, q0, n, k0, kv in attn_bias._blocks():
        if n == 0:
            continue
        pos = torch.arange(kv - n, kv)
        out[0, q0:q0 + n] = _rotate_adjacent(xq[0, q0:q0 + n], pos, theta)
        cache_k[0, k0 + kv - n: k0 + kv] = _rotate_adjacent(xk[0, q0:q0 + n], pos, theta)
        cache_v[0, k0 + kv - n: k0 + kv] = xv[0, q0:q0 + n]
    return out


def memory_efficient_attention_forward(q, k, v, attn_bias, **_unused):
    shape = q.shape
    d = shape[-1]
    qf, kf, vf = (t.reshape(t.shape[0], t.shape[1], -1, d) for t in (q, k, v))  # [1, M, heads, D]
    out = torch.zeros_like(qf)
    for _b, q0, n, k0, kv in attn_bias._blocks():
        if n == 0:
            continue
        qb = qf[0, q0:q0 + n].transpose(0, 1)  # [heads, n, D]
        kb = kf[0, k0:k0 + kv].transpose(0, 1)
        vb = vf[0, k0:k0 + kv].transpose(0, 1)
        mask = torch.arange(kv)[None, :] <= (kv - n + torch.arange(n))[:, None]
        o = torch.nn.functional.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=d ** -0.5)
        out[0, q0:q0 + n] = o.transpose(0, 1)
    return out.reshape(shape)


def install() -> None:
    """Register the stand-ins as ``xformers``, ``xformers.ops``, ``xformers.ops.fmha``, ``...fmha.attn_bias``."""
    root, ops, fmha, bias = (types.ModuleType(n) for n in ("xformers", "xformers.ops", "xformers.ops.fmha",
                                                            "xformers.ops.fmha.attn_bias"))
    bias.BlockDiagonalCausalWithOffsetPaddedKeysMask = BlockDiagonalCausalWithOffsetPaddedKeysMask
    fmha.memory_efficient_attention_forward = memory_efficient_attention_forward
    fmha.attn_bias = bias
    ops.RMSNorm, ops.fmha, ops.rope_padded = RMSNorm, fmha, rope_padded
    root.ops = ops
    sys.modules.update({"xformers": root, "xformers.ops": ops, "xformers.ops.fmha": fmha,
                        "xformers.ops.fmha.attn_bias": bias})
