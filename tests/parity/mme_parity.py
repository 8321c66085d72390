"""MME's own eval_tool against ``unitoken-eval score --profile official`` on the authors' published LaVIN answers.

The Evaluation branch of BradyFU/Awesome-Multimodal-Large-Language-Models ships tools/eval_tool.zip
(calculation.py and LaVIN/, the answers of LaVIN to all 2,374 questions in the tool's result format:
image, question, ground truth, response per line).  This script (not a pytest test) runs the tool's
calculation.py unmodified on the full LaVIN folder and on a subset (the first PAIRS images of every
sub-task), scores the same answers with our MME task, compares every sample (their ``parse_pred_ans`` on the
lower-cased response, as ``process_result`` calls it) and every sub-task score, and writes the subset with
the tool's numbers as tests/data/mme_lavin_subset.json.

  pip install --target /tmp/mmedeps scikit-learn
  git --git-dir=MIRROR show 1c1d69e1:tools/eval_tool.zip > eval_tool.zip && unzip eval_tool.zip -d /tmp/mme
  PYTHONPATH=$PWD python tests/parity/mme_parity.py /tmp/mme/eval_tool tests/data/mme_lavin_subset.json [PAIRS]

Last run (1c1d69e1, PAIRS 4): full LaVIN folder, 2,374 samples and 14 sub-task scores: 0 differ
(perception 963.61, cognition 249.64, as the tool prints).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUBTASKS = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
            "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def read_results(folder: Path, pairs: int | None = None) -> list[dict]:
    """Rows of the tool's result files (image, question, ground truth, response), sub-task by sub-task."""
    rows = []
    for task in SUBTASKS:
        lines = (folder / f"{task}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        for line in lines[: 2 * pairs] if pairs else lines:
            image, question, gt, response = line.split("\t")
            rows.append({"category": task, "image": image, "question": question, "answer": gt,
                         "response": response.rstrip("\n")})
    return rows


def write_vk_tsv(rows: list[dict], path: Path) -> dict[str, str]:
    """VLMEvalKit's MME.tsv schema (one tiny image per row; pairs share ``image_path``); returns index -> response."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    lines = ["index\timage\tquestion\tanswer\tcategory\timage_path"]
    for i, r in enumerate(rows):
        lines.append("\t".join([str(i), png, r["question"], r["answer"], r["category"], f"{r['category']}/{r['image']}"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {str(i): r["response"] for i, r in enumerate(rows)}


def run_tool(tool: Path, results: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.environ.get("MME_DEPS", "/tmp/mmedeps")}
    out = subprocess.run([sys.executable, "calculation.py", "--results_dir", str(results)], cwd=tool, env=env,
                         capture_output=True, text=True, check=True).stdout
    scores = {m.group(1): float(m.group(2)) for m in re.finditer(r"\t (\w+)  score: ([0-9.]+)", out)}
    totals = [float(x) for x in re.findall(r"total score: ([0-9.]+)", out)]
    return {**scores, "perception": totals[0], "cognition": totals[1]}


def tool_per_sample(tool: Path, rows: list[dict]) -> list[int]:
    """The tool's ``parse_pred_ans`` on each lower-cased response (newline included, as ``process_result`` reads
    each line), in a subprocess with the tool's own dependencies; importing calculation.py only builds its parser."""
    code = ("import json, sys; sys.argv = ['calculation.py']; import calculation as c; cal = c.calculate_metrics(); "
            "rows = json.load(sys.stdin); "
            "print(json.dumps([int(cal.parse_pred_ans((r['response'] + '\\n').lower()) == r['answer'].lower()) for r in rows]))")
    env = {**os.environ, "PYTHONPATH": os.environ.get("MME_DEPS", "/tmp/mmedeps")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tool, env=env, input=json.dumps(rows),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def ours(rows: list[dict], tmp: Path) -> dict:
    from unitoken_eval.harness.scoring import score_files

    preds = write_vk_tsv(rows, tmp / "MME.tsv")
    (tmp / "p.jsonl").write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in preds.items()))
    return score_files("mme", str(tmp / "MME.tsv"), predictions=str(tmp / "p.jsonl"), profile="official")


def compare(tool: Path, folder: Path, rows: list[dict], tmp: Path) -> tuple[dict, list[int], int]:
    theirs = run_tool(tool, folder)
    per_sample = tool_per_sample(tool, rows)
    got = ours(rows, tmp)
    differ = sum(int(got["per_sample"][str(i)] != v) for i, v in enumerate(per_sample))
    m = got["metrics"]
    for task in SUBTASKS:
        differ += abs(m["subtasks"][task]["score"] - theirs[task]) > 1e-9
    differ += abs(m["perception"] - theirs["perception"]) > 1e-9
    differ += abs(m["cognition"] - theirs["cognition"]) > 1e-9
    return theirs, per_sample, differ


def main(tool: Path, out: Path, pairs: int = 4) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full = read_results(tool / "LaVIN")
        theirs_full, _, differ = compare(tool, (tool / "LaVIN").resolve(), full, tmp)
        print(f"full LaVIN: {len(full)} samples, perception {theirs_full['perception']:.2f}, "
              f"cognition {theirs_full['cognition']:.2f}; {differ} differ")
        subset = read_results(tool / "LaVIN", pairs)
        sub_dir = tmp / "subset"
        sub_dir.mkdir()
        for task in SUBTASKS:
            lines = (tool / "LaVIN" / f"{task}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
            (sub_dir / f"{task}.txt").write_text("".join(lines[: 2 * pairs]), encoding="utf-8")
        theirs, per_sample, differ_sub = compare(tool, sub_dir, subset, tmp)
        print(f"subset: {len(subset)} samples; {differ_sub} differ")
        shutil.rmtree(sub_dir)
    fixture = {
        "source": {"repo": "BradyFU/Awesome-Multimodal-Large-Language-Models",
                   "commit": "1c1d69e138b57cf8b0400427927bfb8ed4285458 (Evaluation branch)",
                   "file": "tools/eval_tool.zip: LaVIN/*.txt (first %d images of each sub-task)" % pairs,
                   "scorer": "eval_tool/calculation.py run unmodified; per-sample values from its parse_pred_ans"},
        "rows": subset, "official": {"per_sample": per_sample, "scores": theirs},
    }
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
