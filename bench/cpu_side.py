"""CPU work around each sample that the GPU does not do (run anywhere; writes bench/records/cpu-side-<host>.json).

Per image, on one core, in the harness's own code:
- decoding a VLMEvalKit base64 JPEG cell (640x480, quality 90) to a PIL image (`unitoken_eval.tasks.common.vlmeval_tsv`);
- UniToken's preprocessing of it: the VQ-GAN crop to 512 px pixels, and the AnyRes SigLIP views to pixels
  (`unitoken_eval.model_adapters.unitoken.processing`);
- encoding and atomically writing one generated 512x512 PNG (`unitoken_eval.harness.store.RunStore.save_image`).
These are what the runner now overlaps with GPU work (requests built a batch ahead, images written while
the next batch draws); the record says how much time per image that hides.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_io import save_record  # noqa: E402
from unitoken_eval.harness.store import RunStore  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.vq import processing as vq_processing  # noqa: E402
from unitoken_eval.model_adapters.unitoken.processing import VisionLayout, siglip_pixels  # noqa: E402
from unitoken_eval.tasks.common.vlmeval_tsv import decode_image_b64  # noqa: E402


def photo_like(w: int, h: int, seed: int) -> Image.Image:
    """Smooth gradients plus mild noise: compresses like a photograph, unlike pure noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, (x + y) / (w + h)], -1) * 200
    img = base + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype("uint8"))


def per_image_ms(fn, items) -> float:
    fn(items[0])
    t = time.perf_counter()
    for it in items:
        fn(it)
    return 1000 * (time.perf_counter() - t) / len(items)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "bench" / "records"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    photos = [photo_like(640, 480, i) for i in range(a.images)]
    cells = []
    for im in photos:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        cells.append(base64.b64encode(buf.getvalue()).decode())
    decoded = [decode_image_b64(c, "bench") for c in cells]
    layout = VisionLayout(anyres=True)
    generated = [photo_like(512, 512, 100 + i) for i in range(a.images)]
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        names = iter(range(10 ** 6))
        rec = {
            "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": 1,
            "images": a.images,
            "ms_per_image": {
                "decode_base64_jpeg_640x480": per_image_ms(lambda c: decode_image_b64(c, "bench"), cells),
                "vq_crop_to_pixels": per_image_ms(vq_processing.preprocess, decoded),
                "anyres_siglip_views_to_pixels": per_image_ms(
                    lambda im: siglip_pixels(layout.views(im)[0], layout.image_size), decoded),
                "png_encode_and_write_512": per_image_ms(
                    lambda im: store.save_image("t", f"{next(names)}.png", im), generated),
            },
        }
    save_record(rec, a.out, f"cpu-side-{platform.node()}")


if __name__ == "__main__":
    main()
