"""Preallocated KV caches for :class:`model_adapters.chameleon_fast.LeanChameleon`: bf16 (exact) or int8.

Why an int8 cache: a CFG image step on an H200 reads the whole KV cache of every row (~2 x 1060 columns x
256 KiB per column in bf16) and attention is ~60% of the step (bench/records/profile-decode-*.txt).  Halving
the bytes read is the only way past the bf16 floor, and the only way 128 images with CFG fit in memory.
Each (row, head, column) vector of K and V is stored as int8 with its own float32 scale (absmax / 127): the
per-element error is at most 1/254 of that vector's largest entry, far finer than fp8 e4m3's 3 mantissa bits.

The int8 cache is for sampled image tokens only; greedy understanding answers always use the exact cache,
so their scores stay those of the model in its own precision.
"""

from __future__ import annotations

import os

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

    def write(self, i: int, cols: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        R = k.shape[0]
        self.k[i][:R].index_copy_(2, cols, k)
        self.v[i][:R].index_copy_(2, cols, v)

    def attend(self, i: int, q: torch.Tensor, mask: torch.Tensor, length: int, scale: float) -> torch.Tensor:
        R = q.shape[0]
        return F.scaled_dot_product_attention(q, self.k[i][:R, :, :length], self.v[i][:R, :, :length],
                                              attn_mask=mask, scale=scale)


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
    (prefill, CPU, no Triton) the visible columns are dequantized and go through SDPA, with the same values.
    """

    quantized = True

    def __init__(self, n_layers: int, rows: int, heads: int, length: int, head_dim: int, device, dtype,
                 quantize=None):
        """``quantize``: :func:`quantize_int8` or a compiled form of it (one fused kernel per write)."""
        shape = (rows, heads, length, head_dim)
        self.quantize = quantize or quantize_int8
        self.k = [torch.zeros(shape, device=device, dtype=torch.int8) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=torch.int8) for _ in range(n_layers)]
        self.ks = [torch.zeros(shape[:3], device=device, dtype=torch.float32) for _ in range(n_layers)]
        self.vs = [torch.zeros(shape[:3], device=device, dtype=torch.float32) for _ in range(n_layers)]
        self.kernel = torch.device(device).type == "cuda" and _triton_available()

    def buffers(self) -> list[torch.Tensor]:
        return [*self.k, *self.v, *self.ks, *self.vs]

    def write(self, i: int, cols: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        R = k.shape[0]
        for codes, scales, x in ((self.k[i], self.ks[i], k), (self.v[i], self.vs[i], v)):
            c, s = self.quantize(x)
            codes[:R].index_copy_(2, cols, c)
            scales[:R].index_copy_(2, cols, s)

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


def _kernel() -> dict:
    """The Triton kernels by variant, imported on first use (so importing this module never needs Triton)."""
    from model_adapters import kv_int8_kernels as kk

    return {"bytes": kk.decode_attn, "imma": kk.decode_attn_imma}


def decode_attention_int8(q: torch.Tensor, k: torch.Tensor, ks: torch.Tensor, v: torch.Tensor, vs: torch.Tensor,
                          mask: torch.Tensor, length: int, scale: float) -> torch.Tensor:
    """softmax(q . k^T * scale, masked) . v for q [R, H, 1, D] over int8 columns [0, length); mask [R, length]."""
    R, H, _, D = q.shape
    if k.stride(3) != 1 or ks.stride(2) != 1 or k.stride() != v.stride() or ks.stride() != vs.stride():
        raise ValueError("int8 KV buffers must share one contiguous layout")
    q2 = q.reshape(R, H, D)
    out = torch.empty((R, H, D), dtype=q.dtype, device=q.device)
    m = mask if mask.dtype == torch.uint8 else mask.view(torch.uint8) if mask.dtype == torch.bool else mask.to(torch.uint8)
    # Tuning knobs for bench/profile_int8_attention.py.  UNITOKEN_EVAL_INT8_KERNEL: "imma" (both products on
    # int8 tensor cores, the query and each tile's softmax weights quantized to ~15 bits; tiles >= 32) or
    # "bytes" (codes converted to float; for GPUs without int8 MMA in Triton, before sm_80).  Defaults: imma,
    # 32-column tiles, one warp: 3.4 TB/s against 2.9-3.0 for the best conversion kernels (integer-op
    # conversions included, since removed) at 256-384 rows x 1120 columns
    # (bench/records/profile-int8-attention-NVIDIA-H200-20261129-0700.txt).
    # The query . key product is an int8 MMA over the head dimension, which must be a multiple of 32 (128 for
    # Chameleon-7B; the tiny test models have 16).
    imma_ok = D % 32 == 0 and (q.device.type != "cuda" or torch.cuda.get_device_capability(q.device) >= (8, 0))
    variant = os.environ.get("UNITOKEN_EVAL_INT8_KERNEL", "imma" if imma_ok else "bytes")
    if variant not in ("bytes", "imma"):
        raise ValueError(f"UNITOKEN_EVAL_INT8_KERNEL={variant!r}: expected imma or bytes")
    if variant == "imma" and D % 32:
        raise ValueError(f"UNITOKEN_EVAL_INT8_KERNEL=imma needs a head dimension that is a multiple of 32, not {D}")
    block = int(os.environ.get("UNITOKEN_EVAL_INT8_BLOCK", "32" if variant == "imma" else "16"))
    warps = int(os.environ.get("UNITOKEN_EVAL_INT8_WARPS", "1" if variant == "imma" else "2"))
    stages = int(os.environ.get("UNITOKEN_EVAL_INT8_STAGES", "1"))
    if variant == "imma" and block < 32:
        raise ValueError("UNITOKEN_EVAL_INT8_KERNEL=imma needs UNITOKEN_EVAL_INT8_BLOCK >= 32 (int8 MMA depth)")
    fn = _kernel()[variant]
    fn[(R * H,)](q2, k, ks, v, vs, m, out, length, float(scale), q2.stride(0), q2.stride(1), k.stride(0),
                 k.stride(1), k.stride(2), ks.stride(0), ks.stride(1), m.stride(0), out.stride(0), out.stride(1),
                 H=H, D=D, BLOCK_N=block, num_warps=warps, num_stages=stages)
    return out.reshape(R, H, 1, D)
