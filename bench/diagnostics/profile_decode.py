"""Where decode steps spend their time (diagnostic, GPU): masked attention variants at the understanding
(16 rows x 4.8k columns) and generation (192 rows x 0.6-1.1k columns) shapes, then one whole decode step of
the 7B shape with a kernel table.  Not a record: it guides work on model_adapters/chameleon_family/forward.py."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.throughput import build_llm  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.forward import LeanChameleon  # noqa: E402


def cuda_ms(fn, iters=20):
    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters


def attention_variants(R, L, H=32, D=128, gap=0.02):
    dev = "cuda"
    Lmax = L + 64
    q = torch.randn(R, H, 1, D, device=dev, dtype=torch.bfloat16)
    K = torch.randn(R, H, Lmax, D, device=dev, dtype=torch.bfloat16)
    V = torch.randn(R, H, Lmax, D, device=dev, dtype=torch.bfloat16)
    valid = torch.rand(R, Lmax, device=dev) > gap
    valid[:, L - 1] = True
    k, v = K[:, :, :L], V[:, :, :L]
    mask = valid[:, None, None, :L].clone()
    scale = D ** -0.5
    gbytes = 2 * R * H * L * D * 2 / 1e9
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=scale)
    res = {}

    def record(name, fn):
        try:
            out = fn()
            err = float((out.float() - ref).abs().max())
            ms = cuda_ms(fn)
            res[name] = {"ms": round(ms, 4), "TBps": round(gbytes / ms, 2), "max_err": err}
        except Exception as exc:  # noqa: BLE001 - a diagnostic: report and go on
            res[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}

    from torch.nn.attention import SDPBackend, sdpa_kernel

    record("sdpa_bool_default", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale))
    for be in ("EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        def f(be=be):
            with sdpa_kernel([getattr(SDPBackend, be)]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        record(f"sdpa_bool_{be}", f)
    fmask = torch.zeros(R, 1, 1, L, device=dev, dtype=torch.bfloat16).masked_fill(~mask, float("-inf"))
    record("sdpa_float_default", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=fmask, scale=scale))
    fmaskH = fmask.expand(R, H, 1, L).contiguous()
    record("sdpa_floatH_default", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=fmaskH, scale=scale))
    record("sdpa_nomask_flash", lambda: F.scaled_dot_product_attention(q, k, v, scale=scale))
    kc, vc = k.contiguous(), v.contiguous()
    record("sdpa_bool_contig", lambda: F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask, scale=scale))

    def manual():
        s = torch.matmul(q, k.transpose(-1, -2)).float() * scale
        s = s.masked_fill(~mask, float("-inf"))
        return torch.matmul(torch.softmax(s, -1).to(v.dtype), v)
    record("manual_bf16_scores", manual)
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def mask_mod(b, h, qi, kv):
            return valid[b, kv]
        bm = create_block_mask(mask_mod, R, None, 1, L, device=dev)
        fa = torch.compile(flex_attention, dynamic=False)
        t0 = time.perf_counter()
        fa(q, k, v, block_mask=bm, scale=scale)
        torch.cuda.synchronize()
        res["flex_compile_s"] = round(time.perf_counter() - t0, 1)
        record("flex", lambda: fa(q, k, v, block_mask=bm, scale=scale))
        record("flex_contig", lambda: fa(q, kc, vc, block_mask=bm, scale=scale))
    except Exception as exc:  # noqa: BLE001
        res["flex"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"R": R, "L": L, "GB": round(gbytes, 2), **res}


def table(prof, n=22):
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=n, max_name_column_width=70)


def decode_step(model, head, R, L, label):
    from torch.profiler import ProfilerActivity, profile

    lean = LeanChameleon(model, head, R, L + 64)
    lean.valid[:, :L] = True
    tok = torch.randint(10, 8000, (R, 1), device="cuda")
    col = torch.tensor([L - 1], device="cuda")
    p1 = torch.full((R, 1), L - 1, device="cuda")
    g = lambda: lean.forward(p1, col, L, ids=tok)  # noqa: E731
    ms = cuda_ms(g, 10)
    print(f"[{label}] eager decode step R={R} L={L}: {ms:.2f} ms", flush=True)
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        g()
        torch.cuda.synchronize()
    print(table(prof), flush=True)
    # The same step as a CUDA graph.
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        g()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g()
    gms = cuda_ms(graph.replay, 10)
    print(f"[{label}] graph decode step R={R} L={L}: {gms:.2f} ms", flush=True)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    print(table(prof), flush=True)
    del lean, graph
    torch.cuda.empty_cache()
    return ms, gms


def main():
    import json

    out = {}
    for R, L in ((16, 4800), (64, 4800), (192, 640), (192, 1088), (256, 1088)):
        r = attention_variants(R, L)
        print(json.dumps(r), flush=True)
        out[f"attn_{R}x{L}"] = r
        torch.cuda.empty_cache()
    model, head, cfg, _ = build_llm(False, "cuda", torch.bfloat16)
    for R, L, label in ((16, 4800, "understanding"), (192, 640, "generation")):
        try:
            out[f"step_{label}"] = decode_step(model, head, R, L, label)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
