"""Differential check of unitoken_eval.tasks.geneval's rules against GenEval's own evaluate_images.py (not a pytest test).

Random scenarios (official prompts, detections with ties, exact 0.3/0.9 scores, integer and float boxes,
NMS on and off) are scored twice: by upstream's ``evaluate_image`` / ``evaluate`` / ``relative_position`` /
``compute_iou`` (their source read from a GenEval checkout at run time, its detector and CLIP stubbed), in
upstream's NumPy 1.23, and by our rules in the current environment.  Reasons are compared with relation
names sorted (upstream prints a Python set).

  python -m venv /tmp/np123 && /tmp/np123/bin/pip install numpy==1.23.5 pillow
  /tmp/np123/bin/python tests/parity/geneval_rules_parity.py upstream GENEVAL_CHECKOUT DATA_DIR out.jsonl
  python tests/parity/geneval_rules_parity.py ours GENEVAL_CHECKOUT DATA_DIR out.jsonl

DATA_DIR holds evaluation_metadata.jsonl and object_names.txt.  Last run (2026-11-29, af4902f, NumPy 1.23.5
vs 2.4.6): 6000 scenarios, 0 differ.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]


def color_of_row(row):
    """A colour fixed by the detection's values, so both sides see the same 'classifier' output."""
    return COLORS[int(round(sum(float(v) for v in row) * 1000)) % 10]


def scenarios(data: Path, n=6000, seed=0):
    metas = [json.loads(x) for x in (data / "evaluation_metadata.jsonl").read_text().splitlines()]
    names = (data / "object_names.txt").read_text().split("\n")[:80]
    rng = random.Random(seed)
    for t in range(n):
        meta = metas[rng.randrange(len(metas))]
        max_overlap = rng.choice([1.0, 1.0, 0.5, 0.8, 0.3])
        classes = [r["class"] for r in meta["include"]] + [rng.choice(names)]
        scale, dets = rng.choice([8, 64, 512]), []
        for _ in range(rng.randint(0, 24)):
            c = names.index(rng.choice(classes))
            s = rng.choice([0.3, 0.9, 0.30000001, 0.9000001, 0.95, 0.5, round(rng.uniform(0.2, 1.0), 7),
                            round(rng.uniform(0.88, 1.0), 7)])
            if rng.random() < 0.5:
                x1, y1, w, h = (rng.randint(0, scale) for _ in range(4))
            else:
                x1, y1, w, h = (rng.uniform(0, scale) for _ in range(4))
            dets.append((c, s, [x1, y1, x1 + w, y1 + h]))
        if dets and rng.random() < 0.3:
            dets.append(dets[rng.randrange(len(dets))])
        yield t, meta, max_overlap, dets


def run_upstream(checkout: Path, data: Path, out: Path) -> None:
    from PIL import Image, ImageOps

    src = (checkout / "evaluation" / "evaluate_images.py").read_text()
    wanted = ("compute_iou", "relative_position", "evaluate", "evaluate_image")
    body = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    blank = out.with_suffix(".png")
    Image.new("RGB", (8, 8)).save(blank)
    result = {}
    env = {"np": np, "json": json, "Image": Image, "ImageOps": ImageOps, "COLORS": COLORS,
           "color_classification": lambda image, objs, cls: [color_of_row(o[0].tolist()) for o in objs],
           "inference_detector": lambda model, path: result["bbox"], "object_detector": None,
           "classnames": (data / "object_names.txt").read_text().split("\n")[:80]}
    exec(compile(ast.Module(body=body, type_ignores=[]), "evaluate_images.py", "exec"), env)
    with open(out, "w") as fh:
        for t, meta, mo, dets in scenarios(data):
            env.update(THRESHOLD=0.3, COUNTING_THRESHOLD=0.9, MAX_OBJECTS=16, NMS_THRESHOLD=mo, POSITION_THRESHOLD=0.1)
            result["bbox"] = [np.array([b + [s] for (c, s, b) in dets if c == k], dtype=np.float32).reshape(-1, 5)
                              for k in range(80)]
            r = env["evaluate_image"](str(blank), meta)
            fh.write(json.dumps({"t": t, "correct": bool(r["correct"]), "reason": r["reason"], "details": r["details"]}) + "\n")


def canon(reason: str) -> list[str]:
    out = []
    for line in reason.split("\n"):
        m = re.match(r"(expected .* target, found )(.*)( target)$", line)
        out.append(m.group(1) + " and ".join(sorted(m.group(2).split(" and "))) + m.group(3) if m else line)
    return out


def compare_ours(data: Path, upstream_out: Path) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from unitoken_eval.tasks.common.detection import sort_by_class
    from unitoken_eval.tasks.geneval.rules import RuleOptions, evaluate, keep_detections

    ups = [json.loads(x) for x in upstream_out.read_text().splitlines()]
    n_diff = 0
    for (t, meta, mo, dets), up in zip(scenarios(data), ups):
        found = sort_by_class(np.array([d[0] for d in dets], dtype=int), np.array([d[1] for d in dets], np.float32),
                              np.array([d[2] for d in dets], np.float32).reshape(-1, 4), None)
        for items in found.values():
            for d in items:
                d.color = color_of_row(np.array(d.row(), np.float32).tolist())
        opts = RuleOptions(max_overlap=mo)
        kept = keep_detections(found, meta["tag"], opts)
        ok, reason = evaluate(kept, meta, opts)
        details = {c: [d.row() for d in v] for c, v in kept.items()}
        if ok != up["correct"] or canon(reason) != canon(up["reason"]) or details != json.loads(up["details"]):
            n_diff += 1
            if n_diff <= 5:
                print(f"scenario {t}: ours {ok} {reason!r}; upstream {up['correct']} {up['reason']!r}")
    print(f"{len(ups)} scenarios, {n_diff} differ")
    return 1 if n_diff else 0


if __name__ == "__main__":
    mode, checkout, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    if mode == "upstream":
        run_upstream(checkout, data, out)
    else:
        raise SystemExit(compare_ours(data, out))
