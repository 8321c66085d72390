"""Build tests/data/hallusionbench_authors_subset.json by running the authors' unmodified scorer (not a pytest test).

The authors' repository (tianyi-lab/HallusionBench) publishes its question file HallusionBench.json and one model
output file, HallusionBench_result_sample.json (``model_prediction`` per question, from the 254-question release;
no judge verdicts are published in the repository).  This script takes the published predictions whose question
is still in HallusionBench.json, keeps the question pairs whose text-only / original member is among them (the
authors' pair analysis needs it), and scores them with the authors' evaluation.py run as is from the checkout,
its GPT-4 calls answered by a stand-in ``openai`` module with the deterministic replies of :func:`judge_reply`
(the same replies the pytest's local fake judge gives).  It records the questions, predictions, replies and the
authors' per-sample verdicts and correctness (their ``assign_correctness``) with their printed leaderboard row
and per-category rates (their ``get_eval_all`` / ``get_eval_fig`` / ``get_eval_pair_all``).

  pip install --target /tmp/hbdeps prettytable tqdm
  python tests/parity/hallusionbench_parity.py HB_CHECKOUT tests/data/hallusionbench_authors_subset.json [N_ROWS]

HB_CHECKOUT is e.g. ``git archive`` of 744007c232c292942c7f80eb61edb2465482da31 unpacked in /tmp.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPLIES = ["correct", "Correct.", "correct", "The prediction is correct.", "incorrect",
           "Incorrect: it conflicts with the reference.", "unclear", "The prediction is not correct",  # -> correct upstream
           "I cannot tell.", "CORRECT"]
KEY = ("category", "subcategory", "set_id", "figure_id", "question_id")

STUB = '''
import hashlib
REPLIES = %r
def _pick(text, options):
    return options[int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) %% len(options)]
class ChatCompletion:
    @staticmethod
    def create(model=None, messages=None, **kw):
        p = messages[0]["content"]
        if "response1:" in p:
            text = _pick(p, ["same", "different"])
        else:
            q = p.split("\\n\\n Question:", 1)[1].split("\\nReference answer: ", 1)[0]
            pred = p.split("\\nPrediction answer:", 1)[1].rsplit("\\nOutput:", 1)[0]
            text = _pick(q + "\\x00" + pred, REPLIES)
        return {"choices": [{"message": {"content": text}}]}
''' % (REPLIES,)


def judge_reply(question: str, prediction: str) -> str:
    return REPLIES[int(hashlib.sha256((question + "\x00" + prediction).encode("utf-8")).hexdigest(), 16) % len(REPLIES)]


def index_of(r: dict) -> str:
    return "_".join(str(r[k]) for k in ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id"))


def main(checkout: Path, out: Path, n_rows: int = 80) -> None:
    questions = json.loads((checkout / "HallusionBench.json").read_text())
    published = json.loads((checkout / "HallusionBench_result_sample.json").read_text())
    by_key = {tuple(q[k] for k in KEY): q for q in questions}
    rows = []
    for p in published:
        q = by_key.get(tuple(p[k] for k in KEY))
        if q is not None and q["question"] == p["question"]:
            rows.append({**q, "model_prediction": p["model_prediction"]})
    pair = lambda r: (r["category"], r["subcategory"], r["set_id"], r["question_id"])  # noqa: E731
    has_orig = {pair(r) for r in rows if r["figure_id"] == "0"}
    rows = [r for r in rows if pair(r) in has_orig]
    group = lambda r: (r["category"], r["subcategory"], r["set_id"])  # noqa: E731
    hard = {group(r) for r in rows if r["visual_input"] == "2"}
    order = sorted(dict.fromkeys(group(r) for r in rows), key=lambda g: g not in hard)  # sets with edited figures first
    sets: list[tuple] = []
    for cat in ("VD", "VS"):  # whole (category, subcategory, set) groups, about n_rows / 2 per category
        taken = 0
        for g in order:
            if g[0] == cat and taken < n_rows // 2:
                sets.append(g)
                taken += sum(group(x) == g for x in rows)
    chosen = [r for r in rows if group(r) in sets]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stub").mkdir()
        (tmp / "stub" / "openai.py").write_text(STUB)
        (tmp / "HallusionBench_result.json").write_text(json.dumps(chosen))
        deps = os.environ.get("HB_DEPS", "/tmp/hbdeps")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp / "stub"), deps])}
        run = subprocess.run([sys.executable, str(checkout / "evaluation.py")], cwd=tmp, env=env,
                             capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"evaluation.py failed:\n{run.stderr[-3000:]}")
        line = next(ln for ln in run.stdout.splitlines() if "GPT Eval" in ln and ln.count("|") == 7)
        pair_acc, fig_acc, easy, hard, q_acc = [float(x) for x in line.split("|")[2:7]]
        sys.path[:0] = [str(tmp / "stub"), deps, str(checkout)]
        import utils as upstream  # the authors' utils.py, unmodified

        vd = json.loads((tmp / "hallusion_output_vd_model.json").read_text())
        vs = json.loads((tmp / "hallusion_output_vs_model.json").read_text())
        entry = "gpt4v_output_gpt_check"
        vd, vs = upstream.assign_correctness(vd, entry), upstream.assign_correctness(vs, entry)

        def rates(data):
            a, f, p = upstream.get_eval_all(data, entry), upstream.get_eval_fig(data), upstream.get_eval_pair_all(data, entry)
            return {"aAcc": 100 * a["correct"] / a["total"], "fAcc": 100 * f["correct"] / f["total"],
                    "qAcc": 100 * p["correct"] / p["total"]}

    fixture = {
        "source": {"repo": "tianyi-lab/HallusionBench", "commit": "744007c232c292942c7f80eb61edb2465482da31",
                   "questions": "HallusionBench.json (subset)", "predictions": "HallusionBench_result_sample.json",
                   "scorer": "evaluation.py + utils.py run unmodified; GPT-4 replies from judge_reply() in "
                             "tests/parity/hallusionbench_parity.py"},
        "questions": [{k: v for k, v in r.items() if k != "model_prediction"} for r in chosen],
        "predictions": {index_of(r): r["model_prediction"] for r in chosen},
        "judge_replies": {index_of(r): judge_reply(r["question"], r["model_prediction"]) for r in chosen},
        "official": {
            "per_sample": {index_of(r): {"verdict": str(r[entry]), "correct": int(r["correct"])} for r in vd + vs},
            "leaderboard": {"qAcc": pair_acc, "fAcc": fig_acc, "easy_qAcc": easy, "hard_qAcc": hard, "aAcc": q_acc},
            "overall": rates(vd + vs), "category": {"VD": rates(vd), "VS": rates(vs)},
        },
    }
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n")
    print(f"{len(chosen)} questions ({len(sets)} sets); leaderboard {fixture['official']['leaderboard']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 80)
