"""Choosing image tokens: classifier-free guidance and top-k sampling with per-image seeded noise.

Sampling uses the Gumbel-max trick over the top-k candidates: the same distribution as softmax + multinomial
over the top-k.  Each candidate's noise is a hash of (the image's seed, the step, the candidate's token id), so
an image depends only on its own seed, never on which other prompts share its batch, and not on the order in
which ``topk`` returns tied logits (on CUDA that order varies from run to run; bf16 logits tie often).
"""

from __future__ import annotations

from typing import Callable

import torch

_MASK32 = (1 << 32) - 1
_MIX = 0x45D9F3B  # a 32-bit multiplicative hash constant; products stay below 2**63 in int64


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """The release's guidance on raw logits: scale * (cond - uncond) + uncond."""
    return scale * (cond - uncond) + uncond


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix of int64 values in [0, 2**32): the same on every device (no overflow)."""
    x = x ^ (x >> 16)
    x = (x * _MIX) & _MASK32
    x = x ^ (x >> 16)
    x = (x * _MIX) & _MASK32
    return x ^ (x >> 16)


def token_uniforms(seeds: torch.Tensor, step: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Uniforms in (0, 1), float32, one per (row, candidate): a function of the row's seed [B], the step (a
    0-d or [1] tensor) and the candidate token ids [B, k] alone."""
    key = _hash32((seeds & _MASK32)[:, None] ^ _hash32(step.reshape(1, 1) & _MASK32))
    bits = _hash32(key ^ _hash32(tokens.long() & _MASK32))
    return ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))


def gumbel_topk_sample(logits: torch.Tensor, k: int, temperature: float,
                       uniform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Sample from softmax(top-k(logits) / T) with the Gumbel-max trick.  ``uniform`` maps the candidates' ids
    [B, k] to their uniforms in (0, 1), [B, k]."""
    vals, idx = torch.topk(logits, k, dim=-1)
    gumbel = -torch.log(-torch.log(uniform(idx)))
    choice = torch.argmax(vals / temperature + gumbel, dim=-1, keepdim=True)
    return idx.gather(-1, choice).squeeze(-1)
