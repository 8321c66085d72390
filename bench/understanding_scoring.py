"""How long scoring a full-size MMBench-style predictions file takes (it should take seconds, not minutes).

Builds a 15,000-row VK-schema TSV (3,750 questions x 4 circular copies, every row's image a reference to one
shared base64 image, as VK's TSVs store copies) and a predictions JSONL with a mix of letters, option texts
and unmatched answers, then times ``unitoken_eval.harness.scoring.score_files`` (TSV read + matching + CircularEval +
aggregation).  Run: ``python -m bench.understanding_scoring [--rows 15000]``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import tempfile
import time
from pathlib import Path

from PIL import Image


def build(tmp: Path, rows: int) -> tuple[Path, Path]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    img = base64.b64encode(buf.getvalue()).decode()
    rng = random.Random(0)
    opts = ["circle", "square", "triangle", "star"]
    lines = ["\t".join(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
                        "l2-category", "split"])]
    preds = []
    questions = rows // 4
    for q in range(questions):
        for k in range(4):
            rot = opts[k:] + opts[:k]
            ans = "ABCD"[rot.index("circle")]
            idx = q + k * 1_000_000
            lines.append("\t".join([str(idx), f"Which shape is shown ({q})?", "", *rot, ans, f"cat{q % 7}",
                                    img if (q == 0 and k == 0) else "0", f"l2{q % 3}", "dev"]))
            r = rng.random()
            pred = ans if r < 0.6 else ("circle" if r < 0.8 else ("The answer is " + rng.choice("ABCD")) if r < 0.95
                                        else "I am not sure about this one.")
            preds.append(json.dumps({"index": idx, "prediction": pred}))
    data = tmp / "MMBench_DEV_EN.tsv"
    data.write_text("\n".join(lines) + "\n")
    pred = tmp / "pred.jsonl"
    pred.write_text("\n".join(preds) + "\n")
    return data, pred


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=15000)
    args = ap.parse_args()
    from unitoken_eval.harness.scoring import score_files

    with tempfile.TemporaryDirectory() as d:
        data, pred = build(Path(d), args.rows)
        t0 = time.perf_counter()
        out = score_files("mmbench_dev_en", str(data), predictions=str(pred))
        dt = time.perf_counter() - t0
    print(json.dumps({"rows": args.rows, "groups": out["n"], "headline": out["headline"], "seconds": round(dt, 2)}))


if __name__ == "__main__":
    main()
