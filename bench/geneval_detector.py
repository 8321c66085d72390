"""Images per second of GenEval's scorer: the mmdet Mask2Former Swin-S detector (+ optionally the CLIP colours).

Run in an environment with the geneval extra (pip install '.[geneval]'):
  python bench/geneval_detector.py --random-weights                 # architecture only, no checkpoint needed
  python bench/geneval_detector.py --checkpoint mask2former_...c9d0c4f2.pth --color-model openai/clip-vit-large-patch14
On a GPU it runs there (fp32 detector, as upstream); without one on CPU (use --n 2). Random weights time the
same network as the real checkpoint; with random weights few/no detections pass the thresholds, so the
colour step is timed on a fixed number of crops per image instead (--crops).  Writes a JSON record to
bench/records/geneval-detector-<date>.json unless --no-record.
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="mmdet 3.x Mask2Former Swin-S checkpoint (.pth)")
    ap.add_argument("--random-weights", action="store_true", help="time the architecture with random weights")
    ap.add_argument("--device", help="cuda / cpu (default: cuda when available)")
    ap.add_argument("--n", type=int, default=64, help="images timed (after warm-up)")
    ap.add_argument("--size", type=int, default=512, help="square image side (UniToken generates 512 px)")
    ap.add_argument("--batch-sizes", default="1,4,8,16", help="detector batch sizes to try")
    ap.add_argument("--color-model", help="also time the CLIP colour classifier (hub id or path, or 'smoke')")
    ap.add_argument("--crops", type=int, default=2, help="colour crops per image when timing colours")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from unitoken_eval.tasks.common.detection import Detection
    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    if not args.checkpoint and not args.random_weights:
        ap.error("give --checkpoint PATH or --random-weights")
    rng = np.random.RandomState(0)
    images = [Image.fromarray(rng.randint(0, 256, (args.size, args.size, 3)).astype(np.uint8)) for _ in range(args.n)]
    t0 = time.perf_counter()
    det = MMDetMask2Former(checkpoint=args.checkpoint, random_weights=args.random_weights, device=args.device)
    build_s = time.perf_counter() - t0
    record = {"what": "GenEval detector throughput", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
              "host": platform.node(), "device": det.device, "mmcv_ops": det.ops,
              "gpu": torch.cuda.get_device_name(0) if det.device.startswith("cuda") else None,
              "torch": torch.__version__, "weights": "random" if args.random_weights else Path(args.checkpoint).name,
              "image_size": args.size, "n_images": args.n, "build_s": round(build_s, 2), "detector": {}}
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        det.batch_size = bs
        det.detect(images[: max(bs, 1)], min_score=0.3)  # warm-up (cudnn autotune, allocator)
        sync()
        t0 = time.perf_counter()
        det.detect(images, min_score=0.3)
        sync()
        secs = time.perf_counter() - t0
        record["detector"][str(bs)] = {"images_per_s": round(args.n / secs, 3), "s_per_image": round(secs / args.n, 4)}
        if det.device.startswith("cuda"):
            record["detector"][str(bs)]["max_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(f"detector batch {bs}: {args.n / secs:.2f} images/s ({secs / args.n * 1000:.1f} ms/image)", flush=True)
    if args.color_model:
        from unitoken_eval.tasks.geneval.loading import load_color_classifier

        clf = load_color_classifier(args.color_model, args.device)
        h = args.size
        crops = [Detection(box=[h * 0.1 * k, h * 0.1 * k, h * (0.5 + 0.1 * k), h * (0.6 + 0.1 * k)], score=0.9,
                           mask=np.ones((h, h), bool)) for k in range(args.crops)]
        clf.classify(images[0], "car", crops)
        sync()
        t0 = time.perf_counter()
        for im in images:
            clf.classify(im, "car", crops)
        sync()
        secs = time.perf_counter() - t0
        record["colors"] = {"model": args.color_model, "crops_per_image": args.crops,
                            "images_per_s": round(args.n / secs, 3)}
        print(f"colours ({args.crops} crops/image): {args.n / secs:.2f} images/s", flush=True)
    print(json.dumps(record, indent=1))
    if not args.no_record:
        out_dir = Path(__file__).resolve().parent / "records"
        out_dir.mkdir(exist_ok=True)
        path = out_dir / f"geneval-detector-{dt.date.today().isoformat()}-{det.device.split(':')[0]}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
