"""Where the time goes in our prefill and decode steps (diagnostic, GPU): torch.profiler kernel tables, and
what torch.compile buys on the prefill.  Not a record: it guides work on model_adapters/chameleon_family/forward.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.throughput import build_llm, timed  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.forward import LeanChameleon  # noqa: E402


def table(prof, n=18):
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=n, max_name_column_width=60)


def main():
    model, head, cfg, _ = build_llm(False, "cuda", torch.bfloat16)
    G, P = 8, 4700
    emb = (torch.randn(G, P, cfg.hidden_size, device="cuda") * 0.02).bfloat16()
    pos = torch.arange(P, device="cuda")[None].expand(G, P)
    lean = LeanChameleon(model, head, G, P, fused=False)
    lean.valid[:] = True
    f = lambda: lean.forward(pos, 0, P, embeds=emb, dense_causal=True)  # noqa: E731
    f()
    _, s = timed(f)
    print(f"eager prefill: {G * P / s:.0f} tokens/s")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        f()
        torch.cuda.synchronize()
    print(table(prof))
    # Decode step at generation shape: 192 rows, 640 attended columns.
    R, L = 192, 640
    dec = LeanChameleon(model, head, R, 1100, fused=False)
    dec.valid[:, :L] = True
    tok = torch.randint(10, 8000, (R, 1), device="cuda")
    col = torch.tensor([L - 1], device="cuda")
    p1 = torch.full((R, 1), L - 1, device="cuda")
    g = lambda: dec.forward(p1, col, L, ids=tok)  # noqa: E731
    for _ in range(3):
        g()
    _, s = timed(lambda: [g() for _ in range(20)])
    print(f"eager decode step (no graph) R={R} L={L}: {1000 * s / 20:.2f} ms")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        g()
        torch.cuda.synchronize()
    print(table(prof))
    del dec
    # torch.compile of the dense prefill.
    t0 = time.perf_counter()
    cf = torch.compile(lambda e, p: lean.forward(p, 0, P, embeds=e, dense_causal=True), dynamic=False)
    try:
        cf(emb, pos)
        torch.cuda.synchronize()
        print(f"compile: {time.perf_counter() - t0:.1f} s")
        _, s = timed(lambda: cf(emb, pos))
        print(f"compiled prefill: {G * P / s:.0f} tokens/s")
    except Exception as exc:
        print("compile failed:", type(exc).__name__, str(exc)[:500])


if __name__ == "__main__":
    main()
