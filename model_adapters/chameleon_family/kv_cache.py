"""Preallocated KV caches for :class:`.forward.LeanChameleon`: bf16 (exact) or int8.

Why an int8 cache: a CFG image step reads the whole KV cache of every row, and attention is most of the
step (docs/performance.md).  Halving the bytes read is the only way past the bf16 floor, and the only way
large image batches with CFG fit in memory.
Each (row, head, column) vector of K and V is stored as int8 with its own float32 scale (absmax / 127): the
per-element error is at most 1/254 of that vector's largest entry, far finer than fp8 e4m3's 3 mantissa bits.

The int8 cache is for sampled image tokens only; greedy understanding answers always use the exact cache,
so their scores stay those of the model in its own precision.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


class PlainKV:
    """K and V in the model's dtype, [rows, heads, columns, head_dim] per layer."""

    quantized = False

    def __init__(self, n_layers: int, rows: int, heads: int, length: int, head_dim: int, device, dtype,
                 quantize=None):
        shape = (rows, heads, length, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]

    def buffers(self) -> list[torch.Tensor]:
        """Every tensor indexed [row, head, column, ...], for copying rows' prefixes."""
        return [*self.k, *self.v]

    def write(self, i: int, cols, k: torch.Tensor, v: torch.Tensor) -> None:
        """K/V [R, H, T, D] into columns ``cols`` (a tensor of T columns, or a slice) of rows 0..R-1."""
        R = k.shape[0]
        _put(self.k[i][:R], cols, k)
        _put(self.v[i][:R], cols, v)

    def attend(self, i: int, q: torch.Tensor, mask: torch.Tensor, length: int, scale: float) -> torch.Tensor:
        R = q.shape[0]
        return F.scaled_dot_product_attention(q, self.k[i][:R, :, :length], self.v[i][:R, :, :length],
                                              attn_mask=mask, scale=scale)


def _put(buf: torch.Tensor, cols, x: torch.Tensor) -> None:
    """``buf[:, :, cols] = x``; a decode step's columns are a device tensor (captured graphs replay it)."""
    if isinstance(cols, slice):
        buf[:, :, cols].copy_(x)
    else:
        buf.index_copy_(2, cols, x)


def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 over the last dim: (codes, float32 scale) with x ~= codes * scale[..., None]."""
    xf = x.float()
    scale = xf.abs().amax(-1).clamp(min=1e-12) / 127.0
    codes = torch.round(xf / scale[..., None]).clamp(-127, 127).to(torch.int8)
    return codes, scale


def dequantize_int8(codes: torch.Tensor, scale: torch.Tensor, dtype) -> torch.Tensor:
    return (codes.float() * scale[..., None]).to(dtype)


class Int8KV:
    """K and V as int8 codes plus one float32 scale per (row, head, column): about half the bytes of bf16.

    Decode steps (one query per row) on CUDA run a Triton kernel that reads the codes directly; elsewhere
    (prefill, CPU, no Triton, a head dimension the kernel cannot take) the visible columns are dequantized
    and go through SDPA, with the same values up to the kernel's rounding.
    """

    quantized = True

    def __init__(self, n_layers: int, rows: int, heads: int, length: int, head_dim: int, device, dtype,
                 quantize=None):
        """``quantize``: :func:`quantize_int8` or a compiled form of it (one fused kernel per write)."""
        why = int8_kv_unsupported(device)
        if why:
            raise ValueError(why)
        shape = (rows, heads, length, head_dim)
        self.quantize = quantize or quantize_int8
        self.k = [torch.zeros(shape, device=device, dtype=torch.int8) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=torch.int8) for _ in range(n_layers)]
        self.ks = [torch.zeros(shape[:3], device=device, dtype=torch.float32) for _ in range(n_layers)]
        self.vs = [torch.zeros(shape[:3], device=device, dtype=torch.float32) for _ in range(n_layers)]
        self.kernel = torch.device(device).type == "cuda" and head_dim % MMA_DEPTH == 0 and _triton_available()

    def buffers(self) -> list[torch.Tensor]:
        return [*self.k, *self.v, *self.ks, *self.vs]

    def write(self, i: int, cols: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        R = k.shape[0]
        for codes, scales, x in ((self.k[i], self.ks[i], k), (self.v[i], self.vs[i], v)):
            c, s = self.quantize(x)
            _put(codes[:R], cols, c)
            _put(scales[:R], cols, s)

    def attend(self, i: int, q: torch.Tensor, mask: torch.Tensor, length: int, scale: float) -> torch.Tensor:
        R, H, T, D = q.shape
        k, v, ks, vs = self.k[i][:R], self.v[i][:R], self.ks[i][:R], self.vs[i][:R]
        if T == 1 and self.kernel and mask.shape[1] == 1:
            return decode_attention_int8(q, k, ks, v, vs, mask.reshape(R, length), length, scale)
        kd = dequantize_int8(k[:, :, :length], ks[:, :, :length], q.dtype)
        vd = dequantize_int8(v[:, :, :length], vs[:, :, :length], q.dtype)
        return F.scaled_dot_product_attention(q, kd, vd, attn_mask=mask, scale=scale)


def make_kv(kind: str, *args, **kwargs):
    if kind == "bf16":
        return PlainKV(*args, **kwargs)
    if kind == "int8":
        return Int8KV(*args, **kwargs)
    raise ValueError(f"unknown KV cache kind {kind!r} (known: bf16, int8)")


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def int8_kv_unsupported(device) -> Optional[str]:
    """Why the int8 cache cannot run on ``device``, or None: its decode kernel needs int8 tensor cores (MMA in
    Triton), which GPUs before compute capability 8.0 lack.  CPU runs the dequantize-and-SDPA path."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    cap = torch.cuda.get_device_capability(device)
    if cap >= (8, 0):
        return None
    return (f"kv_cache=int8 needs int8 tensor cores (compute capability 8.0+, e.g. A100, L40S, H100, H200); "
            f"{torch.cuda.get_device_name(device)} is sm_{cap[0]}{cap[1]}")


# The int8 MMA's depth: the kernel's column tile and the head dimension are multiples of it.
MMA_DEPTH = 32
# Kernel launch settings: one MMA-deep column tile per step, one warp per (row, head), no software
# pipelining; the fastest combination of the measured sweep (docs/performance.md).
BLOCK_N, NUM_WARPS, NUM_STAGES = MMA_DEPTH, 1, 1


def decode_attention_int8(q: torch.Tensor, k: torch.Tensor, ks: torch.Tensor, v: torch.Tensor, vs: torch.Tensor,
                          mask: torch.Tensor, length: int, scale: float) -> torch.Tensor:
    """softmax(q . k^T * scale, masked) . v for q [R, H, 1, D] over int8 columns [0, length); mask [R, length].

    Both products run on int8 tensor cores (:mod:`.kv_int8_kernel`), so no cached code is converted to float."""
    R, H, _, D = q.shape
    if D % MMA_DEPTH:
        raise ValueError(f"the int8 decode kernel needs a head dimension that is a multiple of {MMA_DEPTH}, not {D}")
    if k.stride(3) != 1 or ks.stride(2) != 1 or k.stride() != v.stride() or ks.stride() != vs.stride():
        raise ValueError("int8 KV buffers must share one contiguous layout")
    from . import kv_int8_kernel  # Triton is imported only when a CUDA int8 cache first attends

    q2 = q.reshape(R, H, D)
    out = torch.empty((R, H, D), dtype=q.dtype, device=q.device)
    m = mask if mask.dtype == torch.uint8 else mask.view(torch.uint8) if mask.dtype == torch.bool else mask.to(torch.uint8)
    kv_int8_kernel.decode_attn[(R * H,)](
        q2, k, ks, v, vs, m, out, length, float(scale), q2.stride(0), q2.stride(1), k.stride(0), k.stride(1),
        k.stride(2), ks.stride(0), ks.stride(1), m.stride(0), out.stride(0), out.stride(1),
        H=H, D=D, BLOCK_N=BLOCK_N, num_warps=NUM_WARPS, num_stages=NUM_STAGES)
    return out.reshape(R, H, 1, D)
