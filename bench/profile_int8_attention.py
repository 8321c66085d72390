"""The int8 decode-attention kernel against bf16 SDPA at CFG image-step shapes (diagnostic, GPU).

Sweeps the kernel's tile size and warps, checks each against dequantize-then-SDPA, and prints one JSON line
per shape with milliseconds and effective bandwidth (bytes of K and V read, scales included).  Not a record:
it picks the defaults in model_adapters/kv_cache.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profile_decode import cuda_ms  # noqa: E402
from model_adapters.kv_cache import decode_attention_int8, dequantize_int8, quantize_int8  # noqa: E402


# bytes (the conversion kernel) at its best of the 2026-11-29 sweeps; int8 tensor cores in tiles of 32 and 64
# columns (the MMA's depth being 32).
VARIANTS = [("bytes", 16, 2)] + [("imma", b, w) for b in (32, 64) for w in (1, 2, 4)]


def one_shape(R: int, L: int, H: int = 32, D: int = 128) -> dict:
    dev = "cuda"
    q = torch.randn(R, H, 1, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(R, H, L, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(R, H, L, D, device=dev, dtype=torch.bfloat16)
    mask = torch.rand(R, L, device=dev) > 0.02
    (kc, ks), (vc, vs) = quantize_int8(k), quantize_int8(v)
    scale = D ** -0.5
    m4 = mask[:, None, None, :]
    ref = F.scaled_dot_product_attention(q.float(), dequantize_int8(kc, ks, torch.float32),
                                         dequantize_int8(vc, vs, torch.float32), attn_mask=m4, scale=scale)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=m4, scale=scale)
    bf16_bytes = 2 * R * H * L * D * 2
    int8_bytes = 2 * R * H * L * (D + 4)
    res = {"rows": R, "columns": L,
           "int8_vs_exact_max_abs": float((ref - exact).abs().max()),
           "sdpa_bf16_ms": cuda_ms(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=m4, scale=scale))}
    res["sdpa_bf16_TBps"] = bf16_bytes / res["sdpa_bf16_ms"] / 1e9
    variants = {}
    for kind, block, warps in VARIANTS:
        name = f"{kind}-b{block}w{warps}"
        os.environ["UNITOKEN_EVAL_INT8_KERNEL"] = kind
        os.environ["UNITOKEN_EVAL_INT8_BLOCK"], os.environ["UNITOKEN_EVAL_INT8_WARPS"] = str(block), str(warps)
        try:
            out = decode_attention_int8(q, kc, ks, vc, vs, mask, L, scale)
            err = float((out.float() - ref).abs().max())
            ms = cuda_ms(lambda: decode_attention_int8(q, kc, ks, vc, vs, mask, L, scale))
            variants[name] = {"ms": round(ms, 4), "TBps": round(int8_bytes / ms / 1e9, 2), "max_err": err}
        except Exception as exc:  # noqa: BLE001 - a diagnostic: report and go on
            variants[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    res["int8_kernel"] = variants
    best = min((k for k in variants if "ms" in variants[k]), key=lambda k: variants[k]["ms"])
    res["best"], res["speedup_vs_bf16"] = best, res["sdpa_bf16_ms"] / variants[best]["ms"]
    return res


if __name__ == "__main__":
    # Rows x columns of a CFG batch of 128 images early, midway and late in an image; then 192 images.
    results = [one_shape(R, L) for R, L in ((256, 600), (256, 1120), (384, 1120))]
    for res in results:
        print(json.dumps(res), flush=True)
    # The variant with the least total time over the shapes, as environment lines for a following run.
    names = [k for k in results[0]["int8_kernel"] if all("ms" in r["int8_kernel"][k] for r in results)]
    best = min(names, key=lambda k: sum(r["int8_kernel"][k]["ms"] for r in results))
    kind, bw = best.split("-")
    b, w = bw[1:].split("w")
    print(f"UNITOKEN_EVAL_INT8_KERNEL={kind} UNITOKEN_EVAL_INT8_BLOCK={b} UNITOKEN_EVAL_INT8_WARPS={w}")
