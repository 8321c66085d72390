"""Where one understanding batch and one image-decode step of the real adapter spend GPU time (diagnostic, GPU).

    python bench/diagnostics/profile_batch.py --checkpoint /tmp/ut7b      # JSON and kernel tables to $OUT

The release-layout random UniToken-7B (written by bench/unitoken_release_layout.py's code when absent) is
loaded through the ``unitoken`` adapter, as a run loads it.  Understanding: batches of 16 SEED-Bench-like
prompts (one 1024x768 picture each, 4 answer tokens), timed per stage (VQ-GAN encoding, SigLIP, the LLM's
prefill and answers) and profiled as kernel categories.  Beside them, at the same prefill shape: attention by
SDPA backend, and the projection GEMMs fused and separate.  Generation: a warm 100-image batch's decode step,
its captured graph replayed and its kernels by category.  Not a record: it says where work on
model_adapters/chameleon_family/ would pay.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.end_to_end import picture  # noqa: E402
from bench.unitoken_release_layout import ensure_checkpoint  # noqa: E402
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402

CATEGORIES = (  # first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa", "attn")),
    ("conv", ("fprop", "conv", "implicit", "winograd")),
    ("gemm", ("nvjet", "gemm", "xmma", "cutlass", "cublas", "splitkreduce")),
    ("compiled elementwise", ("triton",)),
    ("copies", ("copy", "cat", "index", "memcpy", "memset", "fill")),
)


SORT_KEY = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"


def category(name: str) -> str:
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other elementwise/reduce"


def kernel_summary(prof, top: int = 25) -> dict:
    """Kernels only (events that ran on the device), by name: aten ops would count their kernels twice."""
    rows: dict[str, list] = {}
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA") and e.device_time_total > 0:
            r = rows.setdefault(e.name, [0.0, 0])
            r[0] += e.device_time_total / 1000.0
            r[1] += 1
    by_cat: dict[str, float] = {}
    for name, (t, _) in rows.items():
        by_cat[category(name)] = by_cat.get(category(name), 0.0) + t
    ranked = sorted(rows.items(), key=lambda kv: -kv[1][0])
    return {"total_kernel_ms": round(sum(r[0] for r in rows.values()), 2),
            "by_category_ms": {k: round(v, 2) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
            "top_kernels": [{"name": n[:110], "ms": round(t, 3), "calls": c, "category": category(n)}
                            for n, (t, c) in ranked[:top]]}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cuda_ms(fn, reps: int = 5) -> float:
    fn()
    sync()
    if not torch.cuda.is_available():  # --quick on CPU: the script's logic only
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return 1000 * (time.perf_counter() - t) / reps
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    sync()
    return a.elapsed_time(b) / reps


class StageTimer:
    """Wraps a bound method so each call is timed between two synchronisations (seconds per stage)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, obj, attr: str, name: str):
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            sync()
            t = time.perf_counter()
            out = fn(*a, **kw)
            sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            return out

        setattr(obj, attr, timed)


def seed_like_requests(n: int, start: int, size=(1024, 768)) -> list[UnderstandRequest]:
    from PIL import Image

    out = []
    for i in range(start, start + n):
        img = Image.open(io.BytesIO(base64.b64decode(picture(i, size)))).convert("RGB")
        q = (f"Question {i}: which of the following best describes the scene?\n"
             "A. A dog on a beach\nB. A city street at night\nC. A bowl of fruit\nD. A mountain lake\n"
             "Answer with the option's letter from the given choices directly.")
        out.append(UnderstandRequest(f"s{i}", q, [img], f"img{i}", max_new_tokens=4))
    return out


def understanding(ad, args, rec):
    timer = StageTimer()
    timer.wrap(ad.vq, "image_blocks", "vq_encode")
    timer.wrap(ad.model, "continuous_tokens_many", "siglip")
    timer.wrap(ad.decoders, "greedy_answers", "llm_prefill_and_answers")
    B = args.prompts
    batches = [seed_like_requests(B, k * B) for k in range(args.warm + args.batches + 1)]
    for reqs in batches:
        ad.preprocess(reqs)  # the runner does this in its prepare thread, ahead of the batch
    for reqs in batches[: args.warm]:
        ad.understand_with_tokens(reqs)
    timer.seconds.clear()
    t = time.perf_counter()
    for reqs in batches[args.warm: args.warm + args.batches]:
        ad.understand_with_tokens(reqs)
    sync()
    wall = time.perf_counter() - t
    per = {k: round(v / args.batches, 4) for k, v in timer.seconds.items()}
    per["whole_batch"] = round(wall / args.batches, 4)
    per["rest"] = round(per["whole_batch"] - sum(v for k, v in per.items() if k != "whole_batch"), 4)
    lens = [p.shape[0] for p in ad.build_prefixes(batches[-1])[0]]
    rec["understanding"] = {"prompts_per_batch": B, "batches_timed": args.batches, "seconds_per_batch": per,
                            "prefix_tokens": {"min": min(lens), "max": max(lens), "mean": sum(lens) / len(lens)}}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        ad.understand_with_tokens(batches[-1])
        sync()
    rec["understanding"]["kernels"] = kernel_summary(prof)
    (Path(args.out) / "understanding-kernels.txt").write_text(
        prof.key_averages().table(sort_by=SORT_KEY, row_limit=40, max_name_column_width=90))
    return sum(lens) // len(lens)


def prefill_pieces(args, rec, T: int):
    """Attention by SDPA backend and the projection GEMMs, at one understanding batch's prefill shape."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    R, H, D, hid, inter = (args.prompts, 32, 128, 4096, 11008) if not args.quick else (args.prompts, 2, 16, 32, 64)
    dev, dt = ("cpu", torch.float32) if args.quick else ("cuda", torch.bfloat16)
    g = torch.Generator(device=dev).manual_seed(0)
    qkv = torch.randn(R, T, 3, H, D, device=dev, dtype=dt, generator=g)
    q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # the forward's strides: [R, T, H, D] viewed as [R, H, T, D]
    flops = 4 * R * H * D * T * T / 2  # causal
    att: dict = {}
    ref = None
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([be]):
                f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
                ms = cuda_ms(f)
                out = f()
            if ref is None:
                ref = out
            att[name] = {"ms_per_layer": round(ms, 3), "tflops": round(flops / ms / 1e9, 1),
                         "max_abs_diff_vs_flash": float((out.float() - ref.float()).abs().max())}
        except Exception as exc:  # noqa: BLE001 - a backend may not take this shape
            att[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    del qkv, q, k, v, ref
    M = R * T
    x = torch.randn(M, hid, device=dev, dtype=dt) * 0.02
    xi = torch.randn(M, inter, device=dev, dtype=dt) * 0.02
    w = {n: torch.randn(o, i, device=dev, dtype=dt) * 0.02
         for n, (o, i) in {"q": (hid, hid), "qkv": (3 * hid, hid), "gate": (inter, hid),
                           "gate_up": (2 * inter, hid), "down": (hid, inter)}.items()}
    gem = {}
    for n, wt in w.items():
        inp = xi if n == "down" else x
        ms = cuda_ms(lambda: F.linear(inp, wt))
        gem[n] = {"ms": round(ms, 3), "tflops": round(2 * M * wt.shape[0] * wt.shape[1] / ms / 1e9, 1)}
    per_layer_sep = 4 * gem["q"]["ms"] + 2 * gem["gate"]["ms"] + gem["down"]["ms"]
    per_layer_fused = gem["qkv"]["ms"] + gem["q"]["ms"] + gem["gate_up"]["ms"] + gem["down"]["ms"]
    rec["prefill_pieces"] = {"rows": M, "tokens_per_prompt": T, "attention_causal": att, "gemm": gem,
                             "gemm_ms_per_layer_separate": round(per_layer_sep, 3),
                             "gemm_ms_per_layer_fused_qkv_gate_up": round(per_layer_fused, 3)}
    del x, xi, w


def generation(ad, args, rec):
    reqs = [GenerateRequest(f"g{i}", f"a photo of a red object number {i} on a wooden table", n_images=1, seed=i,
                            options={"cfg": 5.0}) for i in range(args.gen_batch)]
    t = time.perf_counter()
    ad.generate_with_tokens(reqs)
    sync()
    first = time.perf_counter() - t
    t = time.perf_counter()
    ad.generate_with_tokens(reqs)
    sync()
    warm = time.perf_counter() - t
    sess = ad.decoders.image_decoder._session
    n = sess.out.shape[1]
    width = sess.lean.max_len - n

    def at_step(k: int) -> int:
        """Put the step state at image token k (the batch is over: its state is past the end); its length."""
        sess.state["step"].fill_(k)
        sess.state["col"].fill_(width + k)
        return min(sess.lean.max_len, -(-(width + k) // ad.decoders.image_decoder.bucket) * ad.decoders.image_decoder.bucket)

    mid = at_step(n // 2)
    steps = {}
    for k in (n // 8, n // 2, n - 40):  # each timing replays 26 steps from token k
        L = at_step(k)
        if L in sess.runner.graphs:  # no graphs on CPU (--quick)
            steps[L] = round(cuda_ms(sess.runner.graphs[L].replay, reps=25), 3)
    from torch.profiler import ProfilerActivity, profile

    at_step(n // 2)
    sess.step(mid)
    sync()
    at_step(n // 2)
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        sess.step(mid)
        sync()
    rec["generation"] = {"images": args.gen_batch, "rows": sess.lean.max_rows, "first_batch_s": round(first, 2),
                         "warm_batch_s": round(warm, 2), "images_per_s": round(args.gen_batch / warm, 3),
                         "graph_step_ms_by_length": steps, "eager_step_kernels_at_length": mid,
                         "kernels": kernel_summary(prof)}
    (Path(args.out) / "generation-step-kernels.txt").write_text(
        prof.key_averages().table(sort_by=SORT_KEY, row_limit=40, max_name_column_width=90))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="/tmp/ut7b")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--gen-batch", type=int, default=100)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--sections", default="understanding,prefill_pieces,generation",
                    help="which to run, in this order (generation first leaves it the most memory)")
    ap.add_argument("--quick", action="store_true", help="tiny model on CPU: checks the script only")
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.warm, args.batches, args.gen_batch = 2, 1, 1, 2
    from unitoken_eval.model_adapters.unitoken import UniTokenAdapter

    cuda = not args.quick
    rec: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__}
    rec["checkpoint_write_s"] = ensure_checkpoint(Path(args.checkpoint), args.quick, cuda)
    ad = UniTokenAdapter(path=args.checkpoint, dtype="bfloat16" if cuda else "float32", device="cuda" if cuda else "cpu",
                         batch_size=str(args.prompts), gen_batch_size=str(args.gen_batch))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    T = 4146
    sections = {"understanding": lambda: understanding(ad, args, rec),
                "prefill_pieces": lambda: prefill_pieces(args, rec, T),
                "generation": lambda: generation(ad, args, rec)}
    for name in args.sections.split(","):
        section = sections[name]
        try:  # each section on its own: one failing keeps the others' figures
            got = section()
            T = got if name == "understanding" else T
        except Exception as exc:  # noqa: BLE001
            import traceback
            rec[name + "_error"] = traceback.format_exc()[-1500:]
        ad.decoders.release()
        if cuda:
            torch.cuda.empty_cache()
        (Path(args.out) / "profile-batch.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
