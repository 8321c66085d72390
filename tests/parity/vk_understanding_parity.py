"""Differential check of unitoken_eval.tasks.common / understanding tasks against VLMEvalKit's own functions (not a pytest test).

Upstream functions are read from a VLMEvalKit checkout at run time (never copied into the project):
``can_infer`` (vlmeval/utils/matching_util.py), ``process_punctuation`` (vlmeval/smp/misc.py),
``YOrN_Extraction`` / ``Hallusion_rating`` / ``MME_rating`` (vlmeval/dataset/utils/yorn.py) and
``prefetch_circular_group`` (vlmeval/dataset/utils/multiple_choice.py); VK's file ``load`` is replaced by a
function returning the DataFrame we hand it.  Random predictions built from trap fragments (letters in
prose, option texts, refusals, Chinese punctuation, yes/no variants, long period runs) are scored by both.

  python tests/parity/vk_understanding_parity.py /path/to/VLMEvalKit [N]

Last run (2026-11-29, VK e8e78f05): 40000 predictions x 2 option sets, 40000 yes/no, 3000 circular groups,
300 HallusionBench, 300 MME rating and 300 OCRBench draws: 0 differ.
"""

from __future__ import annotations

import ast
import random
import string
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from unitoken_eval.harness.plugin import ScoreContext  # noqa: E402
from unitoken_eval.tasks.common import circular, mcq, yesno  # noqa: E402
from unitoken_eval.tasks.hallusionbench import vk_rates  # noqa: E402
from unitoken_eval.tasks.mme import MME  # noqa: E402


def upstream(vk: Path, rel: str, names: list[str], ns: dict) -> dict:
    tree = ast.parse((vk / rel).read_text(encoding="utf-8"))
    wanted = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Assign)) and
              (getattr(n, "name", None) in names or
               (isinstance(n, ast.Assign) and any(getattr(t, "id", None) in names for t in n.targets)))]
    exec(compile(ast.Module(body=wanted, type_ignores=[]), rel, "exec"), ns)
    return ns


FRAGS = ["A", "B", "C", "D", "Z", "E", "a", "the", "answer", "is", "correct", "circle", "square", "star",
         "triangle", "(B)", "**C**", "。", "答案是", "B。", "正方形", "yes", "no", "Yes", "No.", "not", "1,000", ",",
         ".", "/", "-", "!", "?", "Sorry, I can't help with images of people yet.", "Failed to obtain answer via API",
         "Cannot determine the answer", "\n", "  ", "option", "." * 20]


def text(rng: random.Random) -> str:
    s = " ".join(rng.choice(FRAGS) for _ in range(rng.randint(0, 9)))
    return s.replace(" ", "") if rng.random() < 0.3 else s


def main() -> int:
    vk = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
    rng = random.Random(0)
    import logging
    import os
    import re
    import copy as cp
    ns: dict = {"re": re, "os": os, "cp": cp, "string": string, "logger": logging.getLogger("vk"),
                "np": np, "pd": pd, "defaultdict": defaultdict}
    upstream(vk, "vlmeval/utils/matching_util.py",
             ["_VERBOSE_ANSWER_RE", "can_infer_option", "can_infer_text", "can_infer"], ns)
    upstream(vk, "vlmeval/smp/misc.py", ["process_punctuation"], ns)
    upstream(vk, "vlmeval/dataset/utils/yorn.py", ["YOrN_Extraction", "Hallusion_rating", "MME_rating"], ns)
    upstream(vk, "vlmeval/dataset/utils/multiple_choice.py", ["build_choices", "prefetch_answer",
                                                              "prefetch_circular_group"], ns)
    diffs = 0
    shapes = {"A": "circle", "B": "square", "C": "triangle", "D": "star"}
    cn = {"A": "圆形", "B": "正方形", "C": "三角形", "D": "星形"}
    for _ in range(n):
        s = text(rng)
        for ch in (shapes, cn):
            up = ns["can_infer"](s, dict(ch)) or "Z"
            if up != mcq.match_exact(s, ch):
                diffs += 1
                print("can_infer differs:", repr(s))
        if ns["YOrN_Extraction"](s) != yesno.vk_yes_no(s):
            diffs += 1
            print("YOrN differs:", repr(s))

    # circular groups: upstream prefetch (exact matching: None -> hit 0)
    for _ in range(3000):
        k = rng.randint(1, 4)
        opts = ["circle", "square", "triangle", "star"][:max(k, 2)]
        rows, answers, pre = [], [], []
        for j in range(k):
            rot = opts[j % len(opts):] + opts[:j % len(opts)]
            gt = "ABCD"[rot.index("circle")]
            pred = rng.choice([gt, "circle", text(rng), rng.choice("ABCD")])
            item = {"GT": gt, "prediction": pred, **{"ABCD"[i]: o for i, o in enumerate(rot)}}
            rows.append(item)
            answers.append(gt)
            pre.append(mcq.can_infer(pred, mcq.build_choices(item)))
        res = ns["prefetch_circular_group"](pd.DataFrame(rows), verbose=False)
        up = res["hit"] if isinstance(res, dict) else 0
        if up != circular.score_group(answers, pre)[0]:
            diffs += 1
            print("circular differs:", rows)

    # HallusionBench and MME ratings on random score tables
    for _ in range(300):
        recs, rows = {}, []
        for i in range(rng.randint(1, 12)):
            idx = f"{rng.choice(['VD', 'VS'])}_{rng.choice(['chart', 'map'])}_1_{rng.randint(0, 2)}_{rng.randint(0, 2)}_{i % 3}"
            if idx in recs:
                continue
            sc = rng.random() < 0.6
            cat, l2 = idx.split("_")[0], idx.split("_")[1]
            p = idx.split("_")
            recs[idx] = {"score": int(sc), "category": cat, "l2-category": l2, "set_id": p[3], "figure_id": p[4],
                         "question_id": p[5]}
            rows.append({"index": idx, "score": sc, "category": cat, "l2-category": l2})
        ns["load"] = lambda _f, df=pd.DataFrame(rows): df.copy()
        up = ns["Hallusion_rating"]("x").iloc[0]
        ours = vk_rates(list(recs.values()))
        if any(abs(up[k] - ours[k]) > 1e-9 for k in ("aAcc", "fAcc", "qAcc")):
            diffs += 1
            print("Hallusion differs:", rows)

    cats = ["OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position", "posters", "scene",
            "code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation"]
    task = MME()
    for _ in range(300):
        rows, recs = [], {}
        for c in cats:
            for img in range(rng.randint(1, 3)):
                for q in range(2):
                    sc = rng.random() < 0.7
                    path = f"{c}/{img}.png"
                    rows.append({"category": c, "image_path": path, "score": sc})
                    recs[f"{c}{img}{q}"] = {"score": int(sc), "category": c, "image": path}
        ns["load"] = lambda _f, df=pd.DataFrame(rows): df.copy()
        ns["d2df"] = lambda d: pd.DataFrame({k: [v] for k, v in d.items()})
        up = ns["MME_rating"]("x").iloc[0]
        res = task.aggregate(recs, ScoreContext(profile="vlmevalkit"))
        if abs(up["perception"] - res.metrics["perception"]) > 1e-9 or abs(up["reasoning"] - res.metrics["cognition"]) > 1e-9:
            diffs += 1
            print("MME differs")
    # OCRBench: upstream OCRBench_eval (vlmeval/dataset/utils/ocrbench.py) with load/dump stubbed
    from unitoken_eval.tasks.ocrbench import OCRBench, ocrbench_hit
    ocr_cats = ["Regular Text Recognition", "Digit String Recognition", "Scene Text-centric VQA",
                "Handwritten Mathematical Expression Recognition", "Key Information Extraction"]
    got: dict = {}
    ons = {"tqdm": lambda x: x, "logger": logging.getLogger("vk"), "get_intermediate_file_path": lambda *a: "x",
           "dump": lambda d, _p: got.update(d)}
    upstream(vk, "vlmeval/dataset/utils/ocrbench.py", ["OCRBench_eval"], ons)
    for _ in range(300):
        rows, recs = [], {}
        for i in range(rng.randint(1, 10)):
            answers = [rng.choice(["Hello", "x^{2} + 1", "x^2+1", "7", "STOP", " a b "]) for _ in range(rng.randint(1, 2))]
            pred = rng.choice(["hello there", "X^2 + 1", "x ^ 2 + 1", "17", "stop\nsign", text(rng)])
            cat = rng.choice(ocr_cats)
            rows.append({"prediction": pred, "answer": repr(answers), "category": cat})
            recs[str(i)] = {"score": ocrbench_hit(pred, answers, cat), "category": cat}
        ons["load"] = lambda _f, df=pd.DataFrame(rows): df.copy()
        got.clear()
        ons["OCRBench_eval"]("x")
        res = OCRBench().aggregate(recs, ScoreContext(profile="official"))
        if got["Final Score"] != res.metrics["Final Score"] or got["Text Recognition"] != res.metrics["Text Recognition"]:
            diffs += 1
            print("OCRBench differs:", rows)
    print(f"differences: {diffs}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
