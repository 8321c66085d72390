"""Weight layouts the fast forward derives from a model's own parameters: fused projections, float8 copies.

They live in a :class:`ModelWeights` object the decoders share, never as attributes on the transformers model.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

FP8_MAX = 448.0  # largest finite float8 e4m3fn


def fp8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float8 e4m3 codes of ``x`` [M, K] with one float32 scale per row (row absmax / 448): [M, K], [M, 1]."""
    xf = x.float()
    scale = xf.abs().amax(-1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    return (xf / scale).to(torch.float8_e4m3fn), scale


@functools.lru_cache(maxsize=None)
def _cpu_scaled_mm_takes_row_scales() -> bool:
    """Whether this torch's CPU ``_scaled_mm`` accepts per-row / per-column scales (some releases' CPU backend
    takes per-tensor scales only)."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.float32)
    except Exception:  # noqa: BLE001 - any refusal of the call means no
        return False
    return True


def fp8_unsupported(device) -> Optional[str]:
    """Why float8 GEMMs cannot run on ``device``, or None.  ``torch._scaled_mm`` needs float8 tensor cores on a
    GPU (compute capability 8.9+: L4/L40S, H100/H200 and later); on CPU it runs (slowly), which the tests use,
    where the torch build's CPU backend takes per-row scales."""
    device = torch.device(device)
    if device.type != "cuda":
        if _cpu_scaled_mm_takes_row_scales():
            return None
        return (f"prefill=fp8 on CPU needs torch._scaled_mm with per-row scales, which torch {torch.__version__}'s "
                "CPU backend lacks (per-tensor scales only)")
    cap = torch.cuda.get_device_capability(device)
    if cap >= (8, 9):
        return None
    return (f"prefill=fp8 needs float8 tensor cores (compute capability 8.9+, e.g. L40S, H100, H200); "
            f"{torch.cuda.get_device_name(device)} is sm_{cap[0]}{cap[1]}")


def decoder_linears(model):
    """The seven projections of every decoder layer (attention q/k/v/o, MLP gate/up/down)."""
    for layer in model.layers:
        a, m = layer.self_attn, layer.mlp
        yield from (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)


def _adjacent(weights: list[torch.Tensor]) -> bool:
    """Whether the weights lie back to back in one buffer (joined earlier), in this order."""
    if not all(w.is_contiguous() for w in weights):
        return False
    at = weights[0].data_ptr()
    for w in weights:
        if w.data_ptr() != at or w.untyped_storage().data_ptr() != weights[0].untyped_storage().data_ptr():
            return False
        at += w.numel() * w.element_size()
    return True


def _join(*linears) -> torch.Tensor:
    """One matrix of the linears' weights stacked by rows, each linear keeping a view into it (no extra
    memory: the old tensors are released).  Linears joined before are viewed again, not copied."""
    weights = [lin.weight for lin in linears]
    rows = sum(w.shape[0] for w in weights)
    if _adjacent(weights):
        return weights[0].detach().as_strided((rows, weights[0].shape[1]), weights[0].stride())
    joined = torch.cat(weights).contiguous()
    at = 0
    for lin, w in zip(linears, weights):
        lin.weight = torch.nn.Parameter(joined[at: at + w.shape[0]], requires_grad=False)
        at += w.shape[0]
    return joined


class ModelWeights:
    """The derived weights of one model, shared by every decoder (and session) that runs it.

    ``qkv[i]`` / ``gate_up[i]``: layer i's q/k/v and gate/up weights as one matrix each (one wide GEMM
    instead of three or two narrow ones: fewer kernels per decode step), the model's modules keeping views
    into them.  ``fp8``: a float8 copy of every decoder linear (per output channel scale) for ``prefill=fp8``,
    whose wide GEMMs then run on float8 tensor cores; the model's own weights stay for every other forward.
    """

    def __init__(self, model):
        self.model = model
        self.qkv: Optional[list[torch.Tensor]] = None
        self.gate_up: Optional[list[torch.Tensor]] = None
        self.fp8: Optional[dict[torch.nn.Linear, tuple[torch.Tensor, torch.Tensor]]] = None

    @property
    def fused(self) -> bool:
        return self.qkv is not None

    def fuse(self) -> bool:
        """Build the fused matrices once; False (and nothing done) for layers with biases."""
        if self.fused:
            return True
        layers = self.model.layers
        for layer in layers:
            a, m = layer.self_attn, layer.mlp
            if any(x.bias is not None for x in (a.q_proj, a.k_proj, a.v_proj, m.gate_proj, m.up_proj)):
                return False
        with torch.no_grad():
            qkv = [_join(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj) for layer in layers]
            gate_up = [_join(layer.mlp.gate_proj, layer.mlp.up_proj) for layer in layers]
        self.qkv, self.gate_up = qkv, gate_up
        return True

    def make_fp8(self) -> None:
        """Build the float8 copies once (~1 byte per parameter)."""
        if self.fp8 is not None:
            return
        copies = {}
        with torch.no_grad():
            for lin in decoder_linears(self.model):
                codes, scale = fp8_rows(lin.weight)
                copies[lin] = (codes, scale.reshape(1, -1))
        self.fp8 = copies

    def release_fp8(self) -> None:
        """Free the float8 copies, e.g. before image generation, whose batch size is bounded by memory."""
        self.fp8 = None
