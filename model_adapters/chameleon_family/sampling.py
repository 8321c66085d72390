"""Choosing image tokens: classifier-free guidance and top-k sampling with per-image seeded noise.

Sampling uses the Gumbel-max trick over the top-k candidates with noise drawn from each row's own seeded
generator: the same distribution as softmax + multinomial over the top-k, and an image depends only on its
own seed, never on which other prompts share its batch.
"""

from __future__ import annotations

from typing import Sequence

import torch


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """The release's guidance on raw logits: scale * (cond - uncond) + uncond."""
    return scale * (cond - uncond) + uncond


def gumbel_topk_sample(logits: torch.Tensor, k: int, temperature: float, uniform: torch.Tensor) -> torch.Tensor:
    """Sample from softmax(top-k(logits) / T) with the Gumbel-max trick; ``uniform`` is [B, k] in (0, 1)."""
    vals, idx = torch.topk(logits, k, dim=-1)
    gumbel = -torch.log(-torch.log(uniform))
    choice = torch.argmax(vals / temperature + gumbel, dim=-1, keepdim=True)
    return idx.gather(-1, choice).squeeze(-1)


def row_noise(seeds: Sequence[int], n_steps: int, k: int, device) -> torch.Tensor:
    """[B, n_steps, k] uniforms, row b from its own generator seeded with seeds[b] (batch-independent)."""
    rows = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s))
        u = torch.rand((n_steps, k), generator=g, dtype=torch.float32)
        rows.append(u.clamp_(min=1e-10, max=1.0 - 1e-7))
    return torch.stack(rows).to(device)
