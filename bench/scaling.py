"""One GPU against N GPUs of one host on the same work, through ``unitoken-eval run --gpus`` (the local pool).

The work: a random UniToken-7B in the release layout (bench/unitoken_release_layout.py's shapes), MME-style
yes/no pairs about 640x480 images (VLMEvalKit TSV schema, the second question of a pair reusing the first
row's image by index) and GenEval-style prompts (4 images each), run with ``--infer-only`` (no detector on
the GPU machine).  Each setting is a fresh run directory and fresh worker processes, model loading included,
as a user's run would be.  Writes bench/records/scaling-<gpu>-<time>.json with wall times and the speedup.

GPU host:  python bench/scaling.py --gpus 0,1 --root /data/scaling
CPU check: python bench/scaling.py --quick          (tiny checkpoint, workers on the CPU; figures meaningless)
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import io
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_io import save_record  # noqa: E402
from bench.unitoken_release_layout import LLM_7B, SIGLIP_SO400M, VQGAN_META  # noqa: E402
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_release  # noqa: E402

OBJECTS = ["dog", "cat", "car", "bicycle", "bench", "cup", "chair", "clock", "umbrella", "bird"]


def write_mme_tsv(path: Path, images: int) -> int:
    rng = np.random.RandomState(0)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "category", "image_path", "question", "answer", "image"])
        for i in range(images):
            buf = io.BytesIO()
            Image.fromarray((rng.rand(480, 640, 3) * 255).astype("uint8")).save(buf, format="JPEG", quality=90)
            first = 2 * i
            w.writerow([first, "existence", f"{i}.jpg", f"Is there a {OBJECTS[i % 10]} in this image? "
                        "Please answer yes or no.", "Yes", base64.b64encode(buf.getvalue()).decode()])
            w.writerow([first + 1, "existence", f"{i}.jpg", f"Is there a {OBJECTS[(i + 3) % 10]} in this image? "
                        "Please answer yes or no.", "No", str(first)])
    return 2 * images


def write_geneval_prompts(path: Path, prompts: int) -> int:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(prompts):
            obj = OBJECTS[i % 10]
            fh.write(json.dumps({"tag": "single_object", "include": [{"class": obj, "count": 1}],
                                 "prompt": f"a photo of a {obj}"}) + "\n")
    return prompts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", default="0,1", help="the N-GPU setting (the 1-GPU setting is its first id)")
    ap.add_argument("--root", default="/tmp/unitoken-scaling")
    ap.add_argument("--mme-images", type=int, default=256, help="images (two questions each)")
    ap.add_argument("--gen-prompts", type=int, default=64, help="GenEval-style prompts (four images each)")
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--model-args", default="batch_size=16,gen_batch_size=64", help="extra adapter arguments")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", default=str(ROOT / "bench" / "records"))
    a = ap.parse_args(argv)
    if a.quick:
        a.mme_images, a.gen_prompts, a.shard_size, a.model_args = 4, 2, 2, "batch_size=2,gen_batch_size=2"
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    ckpt = root / ("UniToken-AnyRes-tiny" if a.quick else "UniToken-AnyRes-7B-random")
    cuda = torch.cuda.is_available() and not a.quick
    if not (ckpt / "model.safetensors.index.json").is_file():
        if a.quick:
            write_tiny_release(ckpt, seed=0)
        else:
            write_tiny_release(ckpt, seed=0, llm=LLM_7B, vision_shape=SIGLIP_SO400M, vqgan_shape=VQGAN_META,
                               dtype=torch.bfloat16, device="cuda" if cuda else "cpu")
    n_und = write_mme_tsv(root / "MME.tsv", a.mme_images)
    n_gen = write_geneval_prompts(root / "evaluation_metadata.jsonl", a.gen_prompts)
    config = {"model": "unitoken", "model_args": f"path={ckpt},{a.model_args}" + ("" if cuda else ",device=cpu"),
              "tasks": ["mme", "geneval"], "shard_size": a.shard_size,
              "data": {"mme": str(root / "MME.tsv"), "geneval": str(root / "evaluation_metadata.jsonl")},
              "options": {"geneval": {"verify_prompts": False}}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    settings = [a.gpus.split(",")[0], a.gpus]
    rec = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
           "gpu": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__, "quick": a.quick,
           "work": {"mme_questions": n_und, "geneval_prompts": n_gen, "images": 4 * n_gen,
                    "shard_size": a.shard_size, "model_args": a.model_args}, "runs": {}}
    for gpus in settings:
        out = root / f"run-gpus-{gpus.replace(',', '_')}"
        cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--config", str(root / "config.yaml"), "--gpus", gpus,
               "--out", str(out), "--infer-only", "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        rec["runs"][gpus] = {"gpus": len(gpus.split(",")), "seconds": secs, "returncode": proc.returncode,
                             "log_tail": (proc.stdout + proc.stderr)[-1500:] if proc.returncode else None}
        print(f"--gpus {gpus}: {secs:.1f} s (rc {proc.returncode})", flush=True)
    one, many = (rec["runs"][s] for s in settings)
    if one["returncode"] == 0 and many["returncode"] == 0:
        rec["speedup"] = one["seconds"] / many["seconds"]
    if a.quick:
        print(json.dumps(rec, indent=2))
    else:
        save_record(rec, a.records, f"scaling-{rec['gpu'].replace(' ', '-')}")


if __name__ == "__main__":
    main()
