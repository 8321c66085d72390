"""Throughput of our decoding paths against a naive reference loop, on a randomly initialised UniToken-7B.

Run on a GPU machine:  python bench/throughput.py            (writes bench/records/throughput-<date>.json)
Check the script on CPU: python bench/throughput.py --quick  (tiny shapes; figures meaningless)

What is measured, side by side in one process on the same weights:
- understanding: prompts of ~4.7k tokens (UniToken's image prefix + a question), greedy answers;
  ours = PrefixSharingGreedyDecoder (batched, flash prefill, CUDA-graph decode, one session kept across
  batches as the adapter keeps it; decode time per batch at each answer length the suite uses) vs naive =
  transformers ChameleonModel forward with a DynamicCache, batch 1, as the other harnesses run;
- prefix sharing: MMBench-style groups of 4 prompts about one image: prefill tokens with and without sharing;
- text-to-image: 1060-token images with CFG; ours = CFGImageDecoder (static cache, CUDA graphs, cond and
  uncond rows in one batch) vs naive = eager cond + uncond forwards with DynamicCache, batch 1 (timed over a
  number of steps and scaled to a whole image: the naive loop takes minutes per image); ours also with the
  previous batch's images VQ-decoded in the background meanwhile, as the adapter generates;
- vision encoders as the adapter runs them (SigLIP so400m on 5 AnyRes views, compiled on CUDA, eager beside
  it; our VQ-GAN in float32 encoding at 512 px and decoding generated codes);
- a projection of the paper suite's wall time on this GPU from these rates (assumptions in the record).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_io import save_record  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.decoders import CFGImageDecoder, PrefixSharingGreedyDecoder  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.forward import LeanChameleon  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.grid import ImageGrid  # noqa: E402

# Samples per benchmark (understanding: prompts; groups share one image) under the paper's protocols.
SUITE_UNDERSTANDING = {
    # name: (prompts, distinct images, mean answer tokens)
    "mmmu_val": (900, 900, 8),
    "mmbench_dev_en": (4329, 1164, 4),
    "mmbench_dev_cn": (4329, 1164, 4),
    "seedbench_img": (14233, 14233, 4),
    "mmstar": (1500, 1500, 4),
    "mathvista_testmini": (1000, 1000, 64),
    "hallusionbench": (951, 951, 4),
    "ai2d_test": (3088, 3088, 4),
    "ocrbench": (1000, 1000, 16),
    "mme": (2374, 1187, 4),
    "mmvet": (218, 218, 128),
}
# Generation: images (GenEval 553 x 4; T2I-CompBench++ colour/shape/texture val 3 x 300 x 10, the paper's columns).
SUITE_IMAGES = {"geneval": 553 * 4, "t2i_compbench": 3 * 300 * 10}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *a, **kw):
    sync()
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    sync()
    return out, time.perf_counter() - t0


def build_llm(quick: bool, device, dtype):
    from transformers import ChameleonConfig, ChameleonModel

    if quick:
        cfg = ChameleonConfig(vocab_size=65536, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=4,
                              vq_config={"embed_dim": 8, "num_embeddings": 16, "base_channels": 32,
                                         "channel_multiplier": [1, 1], "num_res_blocks": 1,
                                         "attn_resolutions": [], "resolution": 32, "latent_channels": 8},
                              vocabulary_map={"<image>": 8711})
    else:
        cfg = ChameleonConfig(vocabulary_map={"<image>": 8711})  # 7B defaults: 4096 x 32 layers, vocab 65536
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = ChameleonModel(cfg).to(dtype).eval()
        head = torch.nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False).to(dtype)
    # Random weights give near-uniform logits: scale the head so greedy/top-k decisions are not ties.
    torch.nn.init.normal_(head.weight, std=0.02)
    n = sum(p.numel() for p in model.parameters()) + head.weight.numel()
    return model, head, cfg, n


def bench_understanding(model, head, cfg, args, rec):
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    P, S, new = args.prefix_len, args.suffix_len, args.answer_tokens
    H = cfg.hidden_size
    g = torch.Generator(device="cpu").manual_seed(0)

    def prefixes(n):
        return [(torch.randn(P, H, generator=g) * 0.02).to(dev, dtype) for _ in range(n)]

    suffix = [int(x) for x in torch.randint(10, 8000, (S - 1,), generator=g)] + [8710]

    def rates(dec, pre):
        """Seconds of one batch end to end, and of its prefill alone (one answer token), on ``dec``'s warm
        session (as the adapter's thousands of batches run)."""
        G = len(pre)
        _, secs = timed(dec.answer, pre, [suffix] * G, list(range(G)), new, [8710])
        _, secs_p = timed(dec.answer, pre, [suffix] * G, list(range(G)), 1, [8710])
        toks = G * (P + S)
        return {"prompts": G, "prompt_tokens_each": P + S, "answer_tokens": new, "seconds": secs,
                "prompts_per_s": G / secs, "prompt_tokens_per_s": toks / secs, "prefill_only_seconds": secs_p,
                "prefill_tokens_per_s": toks / secs_p}

    # One decoder for the whole section, as the adapter keeps one: its session (KV cache, step graphs) serves
    # every batch.  Warm-up on a small batch (graphs against eager: tests/test_gpu_paths.py).
    dec = PrefixSharingGreedyDecoder(model, head)
    warm = prefixes(2)
    t0 = time.perf_counter()
    dec.answer(warm, [suffix] * 2, [0, 1], new, [8710])
    rec["understanding_warmup_seconds_incl_compile"] = time.perf_counter() - t0
    G = args.und_batch
    pre = prefixes(G)
    # The first batch of the full size opens a larger session (cache, graph captures, attention plans per
    # shape): recorded apart, a one-off cost per run.
    longest = max(ans for _, _, ans in SUITE_UNDERSTANDING.values()) if not args.quick else new
    _, cold = timed(dec.answer, pre, [suffix] * G, list(range(G)), longest, [8710])
    rec["understanding_first_batch_seconds"] = cold
    rec["understanding_ours"] = rates(dec, pre)
    # The decode part of a batch by answer length, on graphs kept from earlier batches: what each benchmark's
    # answers cost (a random model never ends early, so every row runs the full length).
    lengths = sorted({ans for _, _, ans in SUITE_UNDERSTANDING.values()}) if not args.quick else [2, new]
    prefill_only = rec["understanding_ours"]["prefill_only_seconds"]
    by_len = {}
    for n in lengths:
        _, secs_n = timed(dec.answer, pre, [suffix] * G, list(range(G)), n, [8710])
        by_len[str(n)] = {"batch_seconds": secs_n, "decode_seconds": max(0.0, secs_n - prefill_only)}
    rec["understanding_decode_by_answer_tokens"] = {"prompts_per_batch": G, "by_answer_tokens": by_len}
    first = dec.answer(pre, [suffix] * G, list(range(G)), 1, [8710])
    # MMBench-style sharing: groups of 4 questions about one image, on the same session.
    groups = max(1, G // 4)
    shared = prefixes(groups)
    members = [k for k in range(groups) for _ in range(4)]
    dec.answer(shared, [suffix] * len(members), members, new, [8710])
    dec.stats.update(prefill_tokens=0, prompt_tokens=0)
    _, secs_s = timed(dec.answer, shared, [suffix] * len(members), members, new, [8710])
    rec["prefix_sharing"] = {
        "groups": groups, "prompts": len(members), "prompt_tokens": dec.stats["prompt_tokens"],
        "prefill_tokens": dec.stats["prefill_tokens"],
        "prefill_reduction": dec.stats["prompt_tokens"] / dec.stats["prefill_tokens"],
        "seconds": secs_s, "prompts_per_s": len(members) / secs_s,
        "effective_prompt_tokens_per_s": dec.stats["prompt_tokens"] / secs_s,
    }
    dec.release()
    # Opt-in float8 prefill GEMMs (prefill=fp8): the same batch, and how many first answer tokens agree.
    fp8 = PrefixSharingGreedyDecoder(model, head, prefill="fp8")
    fp8.answer(pre, [suffix] * G, list(range(G)), new, [8710])  # warm-up: float8 weights, compiled pieces
    rec["understanding_fp8"] = rates(fp8, pre)
    rec["understanding_fp8"]["first_token_agreement_with_bf16"] = sum(
        x == y for x, y in zip(first, fp8.answer(pre, [suffix] * G, list(range(G)), 1, [8710]))) / G
    fp8.release()
    fp8.weights.release_fp8()  # ~7 GB that the generation batches below need
    del pre, shared
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None

    # Naive: batch 1, transformers forward over inputs_embeds with a DynamicCache, full prompt each time.
    from transformers import DynamicCache

    def naive_one(prefix):
        emb = torch.cat([prefix, model.embed_tokens(torch.tensor(suffix, device=dev))])[None]
        cache = DynamicCache(config=cfg)
        kw = _cache_kw(model, cache)
        out = model(inputs_embeds=emb, use_cache=True, **kw)
        h = out.last_hidden_state
        logits = head(h)  # every position, as a plain LM forward does
        toks = []
        t = logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new - 1):
            toks.append(int(t))
            out = model(input_ids=t, use_cache=True, **kw)
            t = head(out.last_hidden_state[:, -1]).argmax(-1, keepdim=True)
        return toks

    naive_one(prefixes(1)[0])
    n_naive = args.naive_prompts
    pre = prefixes(n_naive)
    _, secs_n = timed(lambda: [naive_one(p) for p in pre])
    rec["understanding_naive"] = {"prompts": n_naive, "seconds": secs_n, "prompts_per_s": n_naive / secs_n,
                                  "prompt_tokens_per_s": n_naive * (P + S) / secs_n}
    rec["understanding_ratio"] = rec["understanding_ours"]["prompts_per_s"] / rec["understanding_naive"]["prompts_per_s"]


def _cache_kw(model, cache):
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"cache": cache} if "cache" in params else {"past_key_values": cache}


def bench_prefill_variants(model, head, cfg, args, rec):
    """Prefill of a batch of ~4.7k-token prompts: the decoders' path, and the same through float8 GEMMs."""
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    P, G = args.prefix_len + args.suffix_len, args.und_batch
    emb = (torch.randn(G, P, cfg.hidden_size, device=dev) * 0.02).to(dtype)
    pos = torch.arange(P, device=dev)[None].expand(G, P)
    out = {}
    # default: what the decoders do; default+fp8: float8 GEMMs (prefill=fp8, opt-in, not exact)
    variants = [("default", "bf16"), ("default+fp8", "fp8")]
    logits = {}
    for name, prefill in variants:
        try:
            lean = LeanChameleon(model, head, G, P, fused=True, prefill=prefill)
            lean.valid[:] = True
            logits[name] = lean.forward(pos, 0, P, embeds=emb, dense_causal=True)
            _, secs = timed(lean.forward, pos, 0, P, embeds=emb, dense_causal=True)
            out[name] = {"seconds": secs, "tokens_per_s": G * P / secs}
            if name != "default" and "default" in logits:
                a, b = logits["default"], logits[name]
                out[name]["last_logits_vs_default"] = {
                    "mean_abs_diff_over_std": float((a - b).abs().mean() / a.std()),
                    "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean())}
            lean.weights.release_fp8()
            del lean
        except Exception as exc:  # e.g. float8 GEMMs this GPU lacks
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        gc.collect()
        torch.cuda.empty_cache() if dev.type == "cuda" else None
    rec["prefill_variants"] = out


def bench_generation(model, head, cfg, args, rec):
    dev = next(model.parameters()).device
    grid = ImageGrid() if not args.quick else ImageGrid(rows=4, cols=4)
    g = torch.Generator(device="cpu").manual_seed(1)
    prompt = [0] + [int(x) for x in torch.randint(10, 8000, (args.gen_prompt_len - 4,), generator=g)] + [8710, 16853, 8197]
    runs = []
    from unitoken_eval.model_adapters.chameleon_family.vq.background import BackgroundDecoder

    vq = _vq_model(args, dev)
    for spec in str(args.gen_runs).split(","):
        kind, B = spec.split(":")
        B = int(B)
        dec = CFGImageDecoder(model, head, grid=grid, kv_cache=kind)
        # The first batch of a shape opens the decoder's session (KV cache, graph captures, cuDNN plans);
        # later batches of a run reuse it.  Both are recorded; the rate is the later batches'.  A third batch
        # runs as the adapter's do, while the previous batch's images are VQ-decoded in the background.
        codes = torch.randint(0, 8192, (B, 32, 32))  # a 512x512 image's codes, whatever the grid
        try:
            _, cold = timed(dec.generate, [prompt] * B, list(range(B)), cfg=5.5, image_top_k=2000)
            toks, secs = timed(dec.generate, [prompt] * B, list(range(B, 2 * B)), cfg=5.5, image_top_k=2000)
            with BackgroundDecoder(vq, dev) as bg:
                sync()
                t0 = time.perf_counter()
                images = bg.submit(codes)
                dec.generate([prompt] * B, list(range(2 * B, 3 * B)), cfg=5.5, image_top_k=2000)
                sync()
                t1 = time.perf_counter()
                images.result()
                sync()
                t2 = time.perf_counter()
        except torch.OutOfMemoryError as exc:
            dec.release()
            runs.append({"kv_cache": kind, "images": B, "rows_with_cfg": 2 * B,
                         "error": f"out of memory: {exc}"[:200]})
            gc.collect()
            torch.cuda.empty_cache()
            continue
        sched = grid.schedule()
        ok = bool((toks[:, sched >= 0] == sched[sched >= 0]).all()) and bool(
            ((toks[:, sched < 0] >= 4) & (toks[:, sched < 0] <= 8195)).all())
        runs.append({"kv_cache": kind, "images": B, "rows_with_cfg": 2 * B, "tokens_per_image": grid.n_tokens + 1,
                     "first_batch_seconds": cold, "seconds": secs, "images_per_s": B / secs, "structure_ok": ok,
                     "ms_per_step": 1000 * secs / grid.n_tokens,
                     # the same batch with the previous B images decoding meanwhile, and the wait for them after
                     "with_background_decode": {"seconds": t1 - t0, "decode_wait_seconds": t2 - t1,
                                                "images_per_s": B / (t2 - t0)},
                     "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if dev.type == "cuda" else None})
        del toks
        dec.release()
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    del vq
    rec["generation_ours_by_batch"] = runs
    ok_runs = [r for r in runs if "images_per_s" in r]
    rec["generation_ours"] = max(ok_runs, key=lambda r: r["images_per_s"])
    exact = [r for r in ok_runs if r["kv_cache"] == "bf16"]
    if exact:
        rec["generation_ours_bf16_kv"] = max(exact, key=lambda r: r["images_per_s"])
    # Naive: batch 1 CFG, eager, DynamicCache, cond and uncond as two forwards; timed over a number of steps.
    from transformers import DynamicCache

    steps = min(args.naive_steps, grid.n_tokens - 2)

    def naive(steps):
        cc, uc = DynamicCache(config=cfg), DynamicCache(config=cfg)
        ck, uk = _cache_kw(model, cc), _cache_kw(model, uc)
        c = model(input_ids=torch.tensor([prompt], device=dev), use_cache=True, **ck)
        u = model(input_ids=torch.tensor([[8197]], device=dev), use_cache=True, **uk)
        t = torch.tensor([[8820]], device=dev)
        for _ in range(steps):
            c = model(input_ids=t, use_cache=True, **ck)
            u = model(input_ids=t, use_cache=True, **uk)
            lc, lu = head(c.last_hidden_state[:, -1]).float(), head(u.last_hidden_state[:, -1]).float()
            logits = 5.5 * (lc - lu) + lu
            logits[:, :4] = -math.inf
            logits[:, 8196:] = -math.inf
            v, i = torch.topk(logits, 2000)
            t = i.gather(-1, torch.multinomial(torch.softmax(v, -1), 1))

    naive(4)
    _, secs_n = timed(naive, steps)
    per_step = secs_n / steps
    per_image = per_step * grid.n_tokens
    rec["generation_naive"] = {"steps_timed": steps, "ms_per_step": 1000 * per_step,
                               "seconds_per_image_extrapolated": per_image, "images_per_s": 1 / per_image}
    rec["generation_ratio"] = rec["generation_ours"]["images_per_s"] / rec["generation_naive"]["images_per_s"]


def _vq_model(args, device):
    """Our VQ-GAN at Meta's shape (tiny with --quick), random weights, float32 as the adapter loads it."""
    from unitoken_eval.model_adapters.chameleon_family.vq import VQImageTokenizer, build_vocabulary_map

    dd = {"double_z": False, "z_channels": 8 if args.quick else 256, "resolution": 512, "in_channels": 3,
          "out_ch": 3, "ch": 32 if args.quick else 128, "ch_mult": [1, 1, 2, 2, 4],
          "num_res_blocks": 1 if args.quick else 2, "attn_resolutions": [], "dropout": 0.0}
    return VQImageTokenizer.from_config(dd, 8192, 8 if args.quick else 256, build_vocabulary_map(), device=device)


def bench_vision(args, rec, device, dtype):
    """The vision encoders as the adapter runs them, in batches of ``--und-batch`` images: SigLIP so400m in
    the model dtype over 5 AnyRes views per image in one forward (compiled on CUDA, as compile=auto does;
    eager beside it), our VQ-GAN in float32 for encoding (the release's tokens), and decoding generated codes
    one image per call, float32, to PIL."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from unitoken_eval.model_adapters.unitoken.modeling import compiled_tower

    if args.quick:
        sc = SiglipVisionConfig(image_size=384, patch_size=14, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=1, num_attention_heads=2)
    else:
        sc = SiglipVisionConfig(image_size=384, patch_size=14, hidden_size=1152, intermediate_size=4304,
                                num_hidden_layers=27, num_attention_heads=16)
    sc._attn_implementation = "sdpa"
    with torch.device(device):
        vit = SiglipVisionModel(sc).to(dtype).eval()
    vq = _vq_model(args, device)
    n, per = args.vision_images, max(1, args.und_batch)
    views = torch.randn(n * 5, 3, 384, 384, device=device, dtype=dtype)
    pix = torch.rand(n, 3, 512, 512, device=device) * 2 - 1
    codes = torch.randint(0, 8192, (n, 32, 32))

    def siglip(tower):
        for i in range(0, n, per):
            tower(pixel_values=views[5 * i: 5 * min(n, i + per)], interpolate_pos_encoding=True)

    def vq_encode():
        for i in range(0, n, per):
            vq.encode(pix[i: i + per])

    with torch.no_grad():
        vit(pixel_values=views[:5], interpolate_pos_encoding=True)
        vq.encode(pix[:1])
        vq.decode(codes[:1])
        _, s1 = timed(siglip, vit)
        _, s2 = timed(vq_encode)
        _, s3 = timed(lambda: [vq.decode(codes[j: j + 1]) for j in range(n)])
        rec["vision"] = {"images": n, "batch": per, "siglip_eager_5_views_per_s": n / s1,
                         "vqgan_encode_fp32_per_s": n / s2, "vqgan_decode_fp32_one_at_a_time_per_s": n / s3}
        if device == "cuda":
            tower = compiled_tower(vit)
            _, s_compile = timed(lambda: [tower(pixel_values=views[: 5 * k], interpolate_pos_encoding=True)
                                          for k in (min(n, per), 1)])  # a full batch and a last, smaller one
            _, s4 = timed(siglip, tower)
            x = views[:5 * min(n, per)]
            y_eager = vit(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state.float()
            y_comp = tower(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state.float()
            rec["vision"].update({
                "siglip_5_views_per_s": n / s4, "siglip_compile_seconds": s_compile,
                "siglip_compiled_vs_eager_mean_abs_diff_over_std": float((y_eager - y_comp).abs().mean() / y_eager.std())})
            del tower
        else:
            rec["vision"]["siglip_5_views_per_s"] = n / s1


def projection(rec, und: dict, gen: dict) -> dict:
    """Wall time of the paper suite on one GPU from the measured rates ``und`` (an understanding_* entry) and
    ``gen`` (a generation_* entry); assumptions stated in the record."""
    prefill_rate = und["prefill_tokens_per_s"]
    prompt_len = und["prompt_tokens_each"]
    suffix = rec["config"]["suffix_len"]
    per_batch = und["prompts"]
    # Decode seconds of a batch by answer length (kept graphs), measured for each length the suite uses;
    # older records timed one length only: per token from (end to end - prefill only).
    by_len = rec.get("understanding_decode_by_answer_tokens", {}).get("by_answer_tokens", {})
    per_tok = max(0.0, und["seconds"] - und["prefill_only_seconds"]) / max(1, und["answer_tokens"] - 1)
    vision = rec.get("vision", {})
    # older records measured transformers' VQ encoder in bf16 ("vqgan_encode_per_s")
    enc = vision.get("vqgan_encode_fp32_per_s") or vision.get("vqgan_encode_per_s")
    v_per_img = (1 / vision["siglip_5_views_per_s"] + 1 / enc) if vision else 0.0
    rows, total = {}, 0.0
    for name, (prompts, images, ans) in SUITE_UNDERSTANDING.items():
        prefill_tokens = images * (prompt_len - suffix) + prompts * suffix
        batches = math.ceil(prompts / per_batch)
        decode = batches * (by_len[str(ans)]["decode_seconds"] if str(ans) in by_len else (ans - 1) * per_tok)
        secs = prefill_tokens / prefill_rate + decode + images * v_per_img
        rows[name] = round(secs, 1)
        total += secs
    # Generation in whole batches (a last partial batch costs a full one); VQ decoding overlapped with the
    # next batch as the adapter does it, where measured, plus the last batch's decoding, which nothing hides.
    dec = vision.get("vqgan_decode_fp32_one_at_a_time_per_s")
    B = gen["images"]
    bg = gen.get("with_background_decode")
    batch_secs = bg["seconds"] + bg["decode_wait_seconds"] if bg else gen["seconds"] + (B / dec if dec else 0.0)
    for name, n in SUITE_IMAGES.items():
        secs = math.ceil(n / B) * batch_secs + (B / dec if dec and bg else 0.0)
        rows[name] = round(secs, 1)
        total += secs
    # Once per run: compiling (SigLIP, the LLM's pieces), the first understanding batch's session, and each
    # generation benchmark's session (another CFG scale is another session).
    once = {"siglip_compile": vision.get("siglip_compile_seconds", 0.0),
            "understanding_warmup": rec.get("understanding_warmup_seconds_incl_compile", 0.0),
            "understanding_first_batch": max(0.0, rec.get("understanding_first_batch_seconds", und["seconds"])
                                             - und["seconds"]),
            "generation_sessions": len(SUITE_IMAGES) * max(0.0, gen["first_batch_seconds"] - gen["seconds"])}
    rows["one_time"] = round(sum(once.values()), 1)
    total += sum(once.values())
    return {"seconds_per_benchmark": rows, "one_time_seconds": {k: round(v, 1) for k, v in once.items()},
            "total_minutes": total / 60,
            "assumptions": "prompts of the measured length; groups of prompts about one image share one prefill "
                           "(MMBench circular copies, MME pairs); answer lengths per benchmark as listed in "
                           "bench/throughput.py, decode time per batch measured at each; vision encoders once per "
                           "distinct image; scoring overlaps inference (CPU) and is not counted; generation in "
                           "whole batches with VQ decoding in the background as the adapter runs it; GenEval "
                           "4 x 553 images, T2I-CompBench++ colour/shape/texture val 3 x 300 x 10 images"}


def projections(rec) -> dict:
    """The suite projected with the exact paths (bf16 prefill and KV cache), and with the opt-in ones
    (prefill=fp8, kv_cache=int8 at its best batch) where measured."""
    out = {}
    if "generation_ours_bf16_kv" in rec:
        out["exact"] = projection(rec, rec["understanding_ours"], rec["generation_ours_bf16_kv"])
    else:
        out["exact"] = {"error": "no bf16-KV generation run succeeded (see generation_ours_by_batch)"}
    und = rec.get("understanding_fp8", rec["understanding_ours"])
    out["opt_in"] = projection(rec, und, rec["generation_ours"])
    out["opt_in"]["settings"] = {"prefill": "fp8" if "understanding_fp8" in rec else "bf16",
                                 "kv_cache": rec["generation_ours"]["kv_cache"],
                                 "gen_batch_size": rec["generation_ours"]["images"]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny shapes on CPU, to check the script runs")
    ap.add_argument("--sections", default="vision,prefill,understanding,generation")
    ap.add_argument("--prefix-len", type=int, default=4600)
    ap.add_argument("--suffix-len", type=int, default=100)
    ap.add_argument("--answer-tokens", type=int, default=8)
    ap.add_argument("--und-batch", type=int, default=16)
    ap.add_argument("--naive-prompts", type=int, default=4)
    ap.add_argument("--gen-runs", default="bf16:104,int8:192",
                    help="comma-separated KV-cache:images runs (bf16 = exact cache, int8 = model_adapters/chameleon_family/kv_cache.py)")
    ap.add_argument("--gen-prompt-len", type=int, default=40)
    ap.add_argument("--naive-steps", type=int, default=64)
    ap.add_argument("--vision-images", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "bench" / "records"))
    args = ap.parse_args(argv)
    if args.quick:
        args.prefix_len, args.suffix_len, args.und_batch, args.naive_prompts = 64, 8, 4, 2
        args.gen_runs, args.naive_steps, args.vision_images = "bf16:2,int8:2", 4, 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = True
    import transformers

    rec = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "dtype": str(dtype),
    }
    sections = set(args.sections.split(","))
    try:
        run_sections(args, rec, sections, device, dtype)
    except BaseException as exc:  # keep what was measured before the failure
        rec["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        save_record(rec, args.out, "throughput-" + ("quick" if args.quick else rec["gpu"].replace(" ", "-")))


def run_sections(args, rec, sections, device, dtype):
    if "vision" in sections:
        bench_vision(args, rec, device, dtype)
        gc.collect()
        torch.cuda.empty_cache() if device == "cuda" else None
    model, head, cfg, n_params = build_llm(args.quick, device, dtype)
    rec["llm_parameters"] = n_params
    if "prefill" in sections:
        bench_prefill_variants(model, head, cfg, args, rec)
    if "understanding" in sections:
        bench_understanding(model, head, cfg, args, rec)
        gc.collect()
        torch.cuda.empty_cache() if device == "cuda" else None
    if "generation" in sections:
        bench_generation(model, head, cfg, args, rec)
    if device == "cuda":
        rec["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    if {"understanding", "generation"} <= sections:
        try:
            rec["projection"] = projections(rec)
        except Exception as exc:  # keep the measurements even if a projection input is missing
            rec["projection"] = {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    main()
