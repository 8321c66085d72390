"""End to end on a randomly initialised full-size UniToken-7B *in the release layout*: write it (7B Chameleon
LLM + SigLIP so400m + adapter as sharded safetensors with q/k norms [1, 128], Meta-shaped VQ-GAN files), load
it through the ``unitoken`` adapter exactly as a downloaded checkpoint, and time both paths.

GPU (~140 GB of GPU memory):  python bench/unitoken_release_layout.py --out /data/ut7b   (~15 GB on disk)
CPU check of the script: python bench/unitoken_release_layout.py --quick           (tiny shapes, meaningless)

Writes bench/records/unitoken-release-layout-<local time>.json.  Random weights never emit the end-of-turn
token, so every answer runs to max_new_tokens: understanding figures are prefill + that many decode steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.records_io import save_record  # noqa: E402
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.unitoken import UniTokenAdapter  # noqa: E402
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_release  # noqa: E402

LLM_7B = dict(vocab_size=65536, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32)
SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=384, patch_size=14)
VQGAN_META = dict(ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, z_channels=256, embed_dim=256)


def ensure_checkpoint(out: Path, quick: bool, cuda: bool):
    """Write a random checkpoint in the release layout at ``out`` unless one is there (UniToken-7B's shapes; the
    tiny model's with ``quick``); the seconds the write took, or None when nothing was written."""
    if (out / "model.safetensors.index.json").is_file():
        return None
    t = time.time()
    if quick:
        write_tiny_release(out, seed=0)
    else:
        write_tiny_release(out, seed=0, llm=LLM_7B, vision_shape=SIGLIP_SO400M, vqgan_shape=VQGAN_META,
                           dtype=torch.bfloat16, device="cuda" if cuda else "cpu")
    return round(time.time() - t, 1)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/unitoken-7b-release-layout")
    ap.add_argument("--quick", action="store_true", help="tiny shapes on CPU: checks the script only")
    ap.add_argument("--prompts", type=int, default=32, help="understanding prompts (4 per image)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--images", type=int, default=64, help="generated images (cfg 5.0, top-k 2000)")
    ap.add_argument("--gen-batch", default="64", help="images per batch, or auto (the adapter's default)")
    ap.add_argument("--batch", default="16", help="prompts per batch, or auto (the adapter's default)")
    ap.add_argument("--kv-cache", default="bf16", choices=("bf16", "int8"), help="the adapter's kv_cache= for images")
    ap.add_argument("--prefill", default="bf16", choices=("bf16", "fp8"), help="the adapter's prefill= for answers")
    ap.add_argument("--records", default=str(Path(__file__).resolve().parent / "records"))
    a = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not a.quick
    out = Path(a.out)
    rec: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "host": platform.node(),
                 "torch": torch.__version__, "device": torch.cuda.get_device_name() if cuda else "cpu", "quick": a.quick}
    import transformers

    rec["transformers"] = transformers.__version__
    write_s = ensure_checkpoint(out, a.quick, cuda)
    if write_s is not None:
        rec["write_s"] = write_s
    t = time.time()
    ad = UniTokenAdapter(path=str(out), dtype="bfloat16" if cuda else "float32", device="cuda" if cuda else "cpu",
                         batch_size=str(a.batch), gen_batch_size=str(a.gen_batch), kv_cache=a.kv_cache,
                         prefill=a.prefill)
    _sync()
    rec["load_s"] = round(time.time() - t, 1)
    batch, gen_batch = ad.batch_size("understand"), ad.batch_size("generate")  # auto resolved by the adapter
    rec["batch_sizes"] = {"asked": [a.batch, a.gen_batch], "used": [batch, gen_batch]}
    rec["params_llm"] = sum(p.numel() for p in ad.model.llm.parameters()) + ad.model.lm_head.weight.numel()
    rng = np.random.RandomState(0)
    n_img = max(1, a.prompts // 4)
    imgs = [Image.fromarray((rng.rand(480, 640, 3) * 255).astype("uint8")) for _ in range(n_img)]
    reqs = [UnderstandRequest(str(i), f"Question {i}: what is in the image?", [imgs[i % n_img]], f"img{i % n_img}",
                              max_new_tokens=a.max_new_tokens) for i in range(a.prompts)]
    ad.understand_with_tokens(reqs[: min(2, len(reqs))])  # warm-up (kernels, graphs)
    _sync()
    t = time.time()
    res = []
    for s in range(0, len(reqs), batch):
        res += ad.understand_with_tokens(reqs[s: s + batch])
    _sync()
    dt_u = time.time() - t
    prefix_len = ad.build_prefixes(reqs[:1])[0][0].shape[0]
    rec["understanding"] = {"prefill": a.prefill, "prompts": len(reqs), "images": n_img, "prefix_tokens": prefix_len,
                            "new_tokens_each": a.max_new_tokens, "seconds": round(dt_u, 2),
                            "prompts_per_s": round(len(reqs) / dt_u, 3),
                            "all_answers_full_length": all(len(r["token_ids"]) == a.max_new_tokens for r in res)}
    greqs = [GenerateRequest(str(i), f"a photo of object number {i}", n_images=1, seed=i, options={"cfg": 5.0})
             for i in range(a.images)]
    # warm-up: one whole batch (the decoder's session for this batch shape: KV cache, graph captures)
    ad.generate_with_tokens([GenerateRequest(f"w{i}", "warm-up", n_images=1, seed=10_000 + i, options={"cfg": 5.0})
                             for i in range(min(gen_batch, a.images))])
    _sync()
    t = time.time()
    gres = ad.generate_with_tokens(greqs)
    _sync()
    dt_g = time.time() - t
    ok = all(r["token_ids"][0][:3] == [8197, 8820, 8820] and r["token_ids"][0][-1] == 8196 for r in gres)
    rec["generation"] = {"images": a.images, "batch": gen_batch, "kv_cache": a.kv_cache, "seconds": round(dt_g, 2),
                         "images_per_s": round(a.images / dt_g, 3), "structure_ok": ok,
                         "image_size": list(gres[0]["images"][0].size)}
    if cuda:
        rec["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    if a.quick:
        print(json.dumps(rec, indent=2))
    else:
        save_record(rec, a.records, "unitoken-release-layout")


if __name__ == "__main__":
    main()
