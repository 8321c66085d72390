"""OCRBench's own scoring loop against ``unitoken-eval score --profile official`` (not a pytest test).

Yuliang-Liu/MultimodalOCR has no scorer separate from the model run: the rule is the loop at the end of
OCRBench/example.py's ``__main__`` block (after the model workers).  This script reads that file from a
checkout, takes its module-level score tables and, from the ``__main__`` block, the loop that sets
``data[i]['result']`` and the ``if len(data)==1000`` summary, and executes those statements unmodified on
OCRBench.json's 1,000 questions with generated answers (each question's ground truth with changed case,
added newlines and spaces, cut short, wrapped in prose, another question's answer, or empty); the model
part is not run.  The same answers are scored through our OCRBench task (VLMEvalKit's TSV schema) and
compared per sample, per type and in total; a subset is written as tests/data/ocrbench_authors_subset.json.

  PYTHONPATH=$PWD python tests/parity/ocrbench_parity.py MULTIMODALOCR_CHECKOUT tests/data/ocrbench_authors_subset.json

Last run (f5cbec66, the last commit touching OCRBench/example.py): 1,000 questions x 5 seeds: 0 differ.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import random
import sys
import tempfile
from pathlib import Path


def authors_scoring(checkout: Path):
    """A function running the authors' statements on ``data`` (list of dicts with 'predict'): (data, type scores)."""
    tree = ast.parse((checkout / "OCRBench" / "example.py").read_text(encoding="utf-8"))
    tables = [n for n in tree.body if isinstance(n, ast.Assign)
              and {t.id for t in n.targets if isinstance(t, ast.Name)} & {"OCRBench_score", "AllDataset_score", "num_all"}]
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    loop = next(n for n in main.body if isinstance(n, ast.For) and "'result'" in ast.unparse(n))
    summary = next(n for n in main.body if isinstance(n, ast.If) and "len(data) == 1000" in ast.unparse(n.test))
    full = compile(ast.Module(body=[*tables, loop, summary], type_ignores=[]), "example.py", "exec")
    # the summary's other branch (fewer than 1,000 questions) divides by every dataset's count: loop only
    part = compile(ast.Module(body=[*tables, loop], type_ignores=[]), "example.py", "exec")

    def run(data):
        ns = {"data": data}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(full if len(data) == 1000 else part, ns)
        return ns["data"], ns["OCRBench_score"]
    return run


def make_answers(questions: list[dict], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for q in questions:
        gts = q["answers"] if isinstance(q["answers"], list) else [q["answers"]]
        gt = rng.choice(gts)
        kind = rng.randrange(9)
        if kind == 0:
            text = gt
        elif kind == 1:
            text = gt.upper() if rng.random() < 0.5 else gt.swapcase()
        elif kind == 2:
            text = f"The answer is {gt}."
        elif kind == 3:
            text = gt.replace(" ", "") if " " in gt else " ".join(gt)
        elif kind == 4:
            text = "\n" + gt[: max(1, len(gt) // 2)] + "\n" + gt[len(gt) // 2:] + "\n"
        elif kind == 5:
            text = gt[: max(0, len(gt) - 1)]
        elif kind == 6:
            other = rng.choice(questions)["answers"]
            text = other if isinstance(other, str) else other[0]
        elif kind == 7:
            text = ""
        else:
            text = f"  {gt.strip()}  \n\n(I think)"
        out.append(text)
    return out


def write_vk_tsv(questions: list[dict], path: Path) -> None:
    """VLMEvalKit's OCRBench.tsv schema: answer as a Python list literal, category = the question type."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    rows = ["index\timage\tquestion\tanswer\tcategory"]
    for i, q in enumerate(questions):
        answers = q["answers"] if isinstance(q["answers"], list) else [q["answers"]]
        rows.append("\t".join([str(i), png, q["question"], json.dumps(answers, ensure_ascii=False), q["type"]]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def ours(questions: list[dict], answers: list[str], tmp: Path) -> dict:
    from unitoken_eval.harness.scoring import score_files

    write_vk_tsv(questions, tmp / "OCRBench.tsv")
    (tmp / "p.jsonl").write_text("".join(json.dumps({"index": str(i), "prediction": a}) + "\n"
                                         for i, a in enumerate(answers)), encoding="utf-8")
    return score_files("ocrbench", str(tmp / "OCRBench.tsv"), predictions=str(tmp / "p.jsonl"), profile="official")


def main(checkout: Path, out: Path, seeds: int = 5) -> None:
    questions = json.loads((checkout / "OCRBench" / "OCRBench" / "OCRBench.json").read_text(encoding="utf-8"))
    run = authors_scoring(checkout)
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            answers = make_answers(questions, seed)
            data, per_type = run([{**q, "predict": a} for q, a in zip(questions, answers)])
            got = ours(questions, answers, Path(tmp))
            differ += sum(int(got["per_sample"][str(i)] != d["result"]) for i, d in enumerate(data))
            differ += sum(int(got["metrics"]["per_category"][t] != v) for t, v in per_type.items())
            differ += int(got["headline"]["value"] != sum(per_type.values()))
        print(f"{len(questions)} questions x {seeds} seeds: {differ} differ")
    rng = random.Random(0)
    by_type: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_type.setdefault(q["type"], []).append(i)
    keep = sorted(i for idx in by_type.values() for i in rng.sample(idx, 6))
    subset = [questions[i] for i in keep]
    answers = [make_answers(questions, 0)[i] for i in keep]
    data, _ = run([{**q, "predict": a} for q, a in zip(subset, answers)])
    fixture = {"source": {"repo": "Yuliang-Liu/MultimodalOCR", "commit": "f5cbec66817b643f732f11cdc7b3a550963b70dc",
                          "questions": "OCRBench/OCRBench/OCRBench.json (6 per type)",
                          "scorer": "OCRBench/example.py: the result loop of its __main__ block, executed unmodified"},
               "questions": subset, "predictions": answers, "official": [d["result"] for d in data]}
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(Path(sys.argv[1]), Path(sys.argv[2]))
