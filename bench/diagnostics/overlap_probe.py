"""Can image decoding and understanding prefill share one GPU faster than taking turns?  7B-shaped layers.

    python bench/diagnostics/overlap_probe.py --mode streams             # two CUDA streams, priority or not
    python bench/diagnostics/overlap_probe.py --mode streams --carveout 48,64 --timeline  # prefill GEMMs leave SMs free
    python bench/diagnostics/overlap_probe.py --mode green --sms 48,64   # SM partitions (green contexts)
    python bench/diagnostics/overlap_probe.py --mode green --sms 64 --timeline  # ... and whether kernels overlapped
    python bench/diagnostics/overlap_probe.py --mode mixed --chunks 512,2048  # one forward: decode rows + a chunk

Decode: steps of R rows (104 images with CFG) attending over a KV cache of L columns, replayed as a CUDA graph
(streams) or eager (green contexts), as the image decoder runs them; prefill: P prompts of S tokens, causal
flash attention.  Both through LAYERS Chameleon-7B-shaped layers (random bf16 weights: no checkpoint).  Each
mode times the two alone, then together (launched from one thread, and from two threads), and writes JSON
to $OUT (or /tmp).  Needs a CUDA GPU; figures are in docs/performance.md.

Mixed steps (chunked prefill riding on decode steps, one stream): each layer's GEMMs take the R decode rows
and C prompt tokens together, so the weights are read once; the decode rows attend over the KV cache and
the chunk over its prompt so far (S/2 earlier tokens on average).  Timed against the decode step and the
chunk run separately, all three as CUDA graphs.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import torch
import torch.nn.functional as F

H, I, NH, D, LAYERS = 4096, 11008, 32, 128, 4
R, L = 208, 1100            # image decode rows (104 images with CFG), context columns
P, S = 16, 4700             # understanding prompts, tokens each
NG, NP = 60, 4              # decode steps, prefills per timing


def build(dev: str = "cuda", dt: torch.dtype = torch.bfloat16):
    g = torch.Generator(device=dev).manual_seed(0)

    def w(*shape):
        return torch.randn(*shape, device=dev, dtype=dt, generator=g) * 0.02

    m = {"qkv": w(H, 3 * H), "o": w(H, H), "gu": w(H, 2 * I), "d": w(I, H), "xg": w(R, H), "xp": w(P * S, H),
         "k": [torch.randn(R, NH, L, D, device=dev, dtype=dt) for _ in range(LAYERS)],
         "v": [torch.randn(R, NH, L, D, device=dev, dtype=dt) for _ in range(LAYERS)]}

    def layer(x, attn):
        x = x + attn(x @ m["qkv"]) @ m["o"]
        gu = x @ m["gu"]
        return x + (F.silu(gu[:, :I]) * gu[:, I:]) @ m["d"]

    def decode_attn(qkv, i):  # the R decode rows' queries over their KV cache
        return F.scaled_dot_product_attention(qkv[:, :H].view(R, NH, 1, D), m["k"][i], m["v"][i]).reshape(R, H)

    def decode_step():
        x = m["xg"]
        for i in range(LAYERS):
            x = layer(x, lambda qkv, i=i: decode_attn(qkv, i))
        return x

    def prefill():
        def attn(qkv):
            q, k, v = (qkv[:, j * H:(j + 1) * H].view(P, S, NH, D).transpose(1, 2) for j in range(3))
            return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(P * S, H)
        x = m["xp"]
        for _ in range(LAYERS):
            x = layer(x, attn)
        return x

    def mixed_parts(C: int):
        """(decode + chunk in one forward, the chunk alone) for chunks of C tokens."""
        past = S // 2
        kc = [torch.randn(1, NH, past + C, D, device=dev, dtype=dt) for _ in range(LAYERS)]
        vc = [torch.randn(1, NH, past + C, D, device=dev, dtype=dt) for _ in range(LAYERS)]
        xc = w(C, H)

        def chunk_attn(qkv, i):  # the chunk's queries over its prompt so far (K/V of the chunk itself included)
            q = qkv[:, :H].view(1, C, NH, D).transpose(1, 2)
            return F.scaled_dot_product_attention(q, kc[i], vc[i]).transpose(1, 2).reshape(C, H)

        def both():
            x = torch.cat((m["xg"], xc))
            for i in range(LAYERS):
                x = layer(x, lambda qkv, i=i: torch.cat((decode_attn(qkv[:R], i), chunk_attn(qkv[R:], i))))
            return x

        def chunk():
            x = xc
            for i in range(LAYERS):
                x = layer(x, lambda qkv, i=i: chunk_attn(qkv, i))
            return x
        return both, chunk

    return decode_step, prefill, mixed_parts


def timed(fn) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def on(stream, fn, n: int) -> None:
    with torch.cuda.stream(stream):
        for _ in range(n):
            fn()


def together(s_dec, dec, s_pre, pre) -> dict:
    one_thread = timed(lambda: (on(s_pre, pre, NP), on(s_dec, dec, NG)))

    def two():
        ts = [threading.Thread(target=on, args=(s_pre, pre, NP)), threading.Thread(target=on, args=(s_dec, dec, NG))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return {"concurrent_s": round(one_thread, 3), "concurrent_threads_s": round(timed(two), 3)}


def busy_overlap(kernels: list[tuple[int, float, float]]) -> dict:
    """Per stream, the time some kernel of it ran (union of its intervals), and the time kernels of two or
    more streams ran at once.  ``kernels``: (stream, start, end), any one time unit."""
    edges = sorted((t, d, st) for st, a, b in kernels for t, d in ((a, 1), (b, -1)))
    running: dict[int, int] = {}
    busy: dict[int, float] = {}
    both, last = 0.0, None
    for t, d, st in edges:
        if last is not None and t > last:
            active = [k for k, n in running.items() if n > 0]
            for k in active:
                busy[k] = busy.get(k, 0.0) + t - last
            if len(active) > 1:
                both += t - last
        running[st] = running.get(st, 0) + d
        last = t
    return {"busy": busy, "together": both}


def timeline(s_dec, dec, s_pre, pre) -> dict:
    """The one-thread concurrent phase under torch.profiler: did kernels of the two streams ever run at the
    same time?  (Timings alone cannot tell a serialised GPU from two partitions that each slowed down.)"""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        on(s_pre, pre, NP)
        on(s_dec, dec, NG)
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    kernels = [(int(e["args"]["stream"]), float(e["ts"]), float(e["ts"]) + float(e["dur"]))
               for e in events if e.get("cat") == "kernel" and "stream" in e.get("args", {})]
    o = busy_overlap(kernels)
    span = (max(k[2] for k in kernels) - min(k[1] for k in kernels)) if kernels else 0.0
    # keyed by the profiler's stream ids (not torch's Stream.stream_id); the decode stream runs most kernels
    return {"kernels": len(kernels), "span_s": round(span / 1e6, 3),
            "kernels_per_stream": {str(k): sum(1 for st, _, _ in kernels if st == k) for k in o["busy"]},
            "busy_s": {str(k): round(v / 1e6, 3) for k, v in o["busy"].items()},
            "both_streams_busy_s": round(o["together"] / 1e6, 3)}


def graphed(fn, s=None):
    """``fn`` captured as a CUDA graph on stream ``s`` (after warm-up), as the image decoder runs its steps."""
    s = s or torch.cuda.Stream()
    on(s, fn, 2)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=s):
        fn()
    return graph.replay


def carve(sms_left: int | None) -> None:
    """Eager GEMMs from now on target all SMs but ``sms_left`` (cuBLASLt's SM count target; None: all)."""
    torch.backends.cuda.preferred_blas_library("cublaslt" if sms_left else "cublas")
    torch._C._set_sm_carveout_experimental(sms_left)


def streams(decode_step, prefill, with_timeline: bool = False, carveouts: tuple = (None,)) -> dict:
    """Decode steps (a CUDA graph, captured on all SMs) and prefill on two streams.  A carveout leaves that
    many SMs free of the prefill's GEMMs for the decode steps' attention; the prefill's own attention is
    not limited."""
    out = {}
    for priority in (0, -1):
        s_dec, s_pre = torch.cuda.Stream(priority=priority), torch.cuda.Stream()
        replay = graphed(decode_step, s_dec)
        on(s_dec, replay, NG)
        on(s_pre, prefill, NP)
        tg, tp = timed(lambda: on(s_dec, replay, NG)), timed(lambda: on(s_pre, prefill, NP))
        for left in carveouts:
            carved = {}
            if left:
                carve(left)
                on(s_pre, prefill, 1)
                carved = {"prefill_carved_s": round(timed(lambda: on(s_pre, prefill, NP)), 3)}
            both = together(s_dec, replay, s_pre, prefill)
            key = f"decode_stream_priority_{priority}" + (f"_prefill_gemms_leave_{left}_sms" if left else "")
            out[key] = {
                "decode_s": round(tg, 3), "prefill_s": round(tp, 3), "sequential_s": round(tg + tp, 3),
                **carved, **both,
                "saving_vs_sequential": round(1 - both["concurrent_s"] / (tg + tp), 3),
                **({"timeline": timeline(s_dec, replay, s_pre, prefill)} if with_timeline else {})}
            carve(None)
    return out


def green(decode_step, prefill, sms: list[int], workqueue, with_timeline: bool = False) -> dict:
    from torch.cuda import green_contexts as gc

    total = torch.cuda.get_device_properties(0).multi_processor_count
    s0 = torch.cuda.Stream()
    on(s0, decode_step, 3)
    on(s0, prefill, 1)
    full_dec, full_pre = timed(lambda: on(s0, decode_step, NG)), timed(lambda: on(s0, prefill, NP))
    out = {"sms": total, "whole_gpu": {"decode_s": round(full_dec, 3), "prefill_s": round(full_pre, 3)}}
    for k in sms:
        extra = {"workqueue_scope": workqueue} if workqueue else {}
        a = gc.GreenContext.create(num_sms=k, device_id=0, **extra)
        b = gc.GreenContext.create(num_sms=total - k, device_id=0, **extra)
        s_dec, s_pre = a.Stream(), b.Stream()
        on(s_dec, decode_step, 2)
        on(s_pre, prefill, 1)
        tg, tp = timed(lambda: on(s_dec, decode_step, NG)), timed(lambda: on(s_pre, prefill, NP))
        both = together(s_dec, decode_step, s_pre, prefill)
        out[f"decode_on_{k}_sms_{workqueue}"] = {
            "decode_alone_s": round(tg, 3), "prefill_alone_s": round(tp, 3), **both,
            "sequential_whole_gpu_s": round(full_dec + full_pre, 3),
            "saving_vs_sequential": round(1 - min(both.values()) / (full_dec + full_pre), 3),
            **({"timeline": timeline(s_dec, decode_step, s_pre, prefill)} if with_timeline else {})}
    return out


def mixed(decode_step, mixed_parts, chunks: list[int]) -> dict:
    s = torch.cuda.Stream()
    dec = graphed(decode_step)
    on(s, dec, 3)
    t_dec = timed(lambda: on(s, dec, NG))
    out = {"decode_step_ms": round(1e3 * t_dec / NG, 3)}
    for C in chunks:
        both, chunk = (graphed(f) for f in mixed_parts(C))
        on(s, both, 3)
        on(s, chunk, 3)
        t_both, t_chunk = timed(lambda: on(s, both, NG)), timed(lambda: on(s, chunk, NG))
        out[f"chunk_{C}"] = {"mixed_step_ms": round(1e3 * t_both / NG, 3), "chunk_alone_ms": round(1e3 * t_chunk / NG, 3),
                             "sequential_ms": round(1e3 * (t_dec + t_chunk) / NG, 3),
                             "saving_vs_sequential": round(1 - t_both / (t_dec + t_chunk), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("streams", "green", "mixed"), default="streams")
    ap.add_argument("--chunks", default="256,512,1024,2048,4096", help="mixed: prompt tokens per mixed step")
    ap.add_argument("--sms", default="48,64", help="green: SMs given to decoding, comma-separated")
    ap.add_argument("--workqueue", default=None, help="green: workqueue_scope (balanced, device_ctx)")
    ap.add_argument("--carveout", default="",
                    help="streams: also with the prefill's GEMMs leaving these many SMs free, comma-separated")
    ap.add_argument("--timeline", action="store_true",
                    help="streams, green: also profile the concurrent phase and report the time both streams ran kernels")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    decode_step, prefill, mixed_parts = build()
    rec = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "mode": a.mode,
           "shapes": {"layers": LAYERS, "decode_rows": R, "kv_columns": L, "prompts": P, "prompt_tokens": S,
                      "decode_steps": NG, "prefills": NP}}
    if a.mode == "streams":
        rec["results"] = streams(decode_step, prefill, a.timeline, (None, *(int(x) for x in a.carveout.split(",") if x)))
    elif a.mode == "mixed":
        rec["results"] = mixed(decode_step, mixed_parts, [int(x) for x in a.chunks.split(",")])
    else:
        rec["results"] = green(decode_step, prefill, [int(x) for x in a.sms.split(",")], a.workqueue, a.timeline)
    print(json.dumps(rec, indent=1))
    out = os.environ.get("OUT", "/tmp")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"overlap-probe-{a.mode}.json"), "w") as fh:
        json.dump(rec, fh, indent=1)


if __name__ == "__main__":
    main()
