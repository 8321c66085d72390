"""Build tests/data/mmvet_authors_subset.json by running MM-Vet's unmodified grader (not a pytest test).

yuweihao/MM-Vet publishes one model's answers (results/llava_llama2_13b_chat.json) but not its question file
(mm-vet.json ships in a separate download).  This script takes the first N published answers, pairs them with
questions, ground truths and capability lists written here in mm-vet.json's schema (the questions are
stand-ins: "Synthetic question K?"), and grades them with the authors' mm-vet_evaluator.py run as is from a
checkout, its OpenAI client replaced by a stand-in module that answers with :func:`grader_reply` (the same
replies the pytest's local fake judge gives: well-formed scores, words before or after a score, junk that
forces the 'digit' re-asks, out-of-range numbers, samples junk throughout so the 0.0 fallback is hit, and
samples whose only valid reply is the fifth, the last one upstream reads).
It records the authors' per-sample scores and reply counts and their capability / capability-combination
tables (cap-score and cap-int-score CSVs, rounded to 1 decimal as they write them).

  pip install --target /tmp/hbdeps tqdm
  python tests/parity/mmvet_parity.py MMVET_CHECKOUT tests/data/mmvet_authors_subset.json [N]

MMVET_CHECKOUT: ``git archive`` of acde843e (mm-vet_evaluator.py as c7ff270, which only rearranged the
arguments of 7d717c2f; 7d717c2f itself stops at ``openai.api_key`` without ``import openai``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CAP_SETS = [["rec"], ["ocr"], ["rec", "know", "gen"], ["ocr", "math"], ["rec", "spat"], ["ocr", "spat"],
            ["rec", "ocr", "spat"], ["ocr", "know", "gen", "rec"]]
FIRST = ["1.0", "0.5", "0.0", "0.8 mostly right", "0.3", "Correctness: 0.6", "1.2", "0.9"]
REASK = ["0.4", "score", "1.0", "-0.1", "0.7"]
SUFFIX = "\nPredict the correctness of the answer (digit): "
QUESTION = re.compile(r"\n(Synthetic question (\d+)\?) \| ")

STUB = r'''
import hashlib, re
FIRST, REASK, SUFFIX = %r, %r, %r
QUESTION = re.compile(r"\n(Synthetic question (\d+)\?) \| ")
def reply(prompt, temperature):
    k = int(QUESTION.findall(prompt)[-1][1])
    if k %% 7 == 3:
        return "n/a"
    if k %% 7 == 5:
        return "0.6" if prompt.endswith(SUFFIX) and temperature == 1.5 else "n/a"
    options = REASK if prompt.endswith(SUFFIX) else FIRST
    h = int(hashlib.sha256(f"{k}/{temperature}/{prompt.endswith(SUFFIX)}".encode()).hexdigest(), 16)
    return options[h %% len(options)]
class _Msg:
    def __init__(self, c): self.content = c
class _Choice:
    def __init__(self, c): self.message = _Msg(c)
class _Resp:
    def __init__(self, c): self.choices = [_Choice(c)]; self.model = "stand-in"
class _Completions:
    def create(self, model=None, max_tokens=None, temperature=0.0, messages=None):
        assert max_tokens == 3
        return _Resp(reply(messages[-1]["content"], float(temperature)))
class _Chat:
    completions = _Completions()
class OpenAI:
    def __init__(self, **kw): self.chat = _Chat()
''' % (FIRST, REASK, SUFFIX)


def grader_reply(prompt: str, temperature: float) -> str:
    """The stand-in grader (same function as the stub's): by question number, temperature and re-ask."""
    k = int(QUESTION.findall(prompt)[-1][1])
    if k % 7 == 3:
        return "n/a"
    if k % 7 == 5:  # valid only in the fifth reply, the last one upstream reads
        return "0.6" if prompt.endswith(SUFFIX) and temperature == 1.5 else "n/a"
    reask = prompt.endswith(SUFFIX)
    options = REASK if reask else FIRST
    h = int(hashlib.sha256(f"{k}/{temperature}/{reask}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def main(checkout: Path, out: Path, n: int = 40) -> None:
    answers = json.loads((checkout / "results" / "llava_llama2_13b_chat.json").read_text())
    rng = random.Random(0)
    ids = list(answers)[:n]
    meta = {k: {"imagename": f"{k}.png", "question": f"Synthetic question {i}?",
                "answer": rng.choice(["2<AND>7", "red<OR>dark red", "a cat", "42"]),
                "capability": rng.choice(CAP_SETS)} for i, k in enumerate(ids)}
    preds = {k: answers[k] for k in ids}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stub" / "openai").mkdir(parents=True)
        (tmp / "stub" / "openai" / "__init__.py").write_text(STUB)
        (tmp / "stub" / "openai" / "_exceptions.py").write_text("class RateLimitError(Exception):\n    pass\n")
        (tmp / "mmvet").mkdir()
        (tmp / "out").mkdir()
        (tmp / "mmvet" / "mm-vet.json").write_text(json.dumps(meta))
        (tmp / "model.json").write_text(json.dumps(preds))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp / "stub"), os.environ.get("HB_DEPS", "/tmp/hbdeps")]),
               "OPENAI_API_KEY": "unused"}
        run = subprocess.run([sys.executable, str(checkout / "mm-vet_evaluator.py"), "--mmvet_path", str(tmp / "mmvet"),
                              "--result_file", str(tmp / "model.json"), "--result_path", str(tmp / "out")],
                             cwd=tmp, env=env, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"mm-vet_evaluator.py failed:\n{run.stderr[-3000:]}")
        outs = {p.name: p for p in (tmp / "out").iterdir()}
        grades = json.loads(next(p for name, p in outs.items() if "-grade-" in name).read_text())

        def row(kind):
            with next(p for name, p in outs.items() if kind in name).open() as f:
                header, values = list(csv.reader(f))[:2]
            return {k: float(v) for k, v in zip(header[1:], values[1:]) if k not in ("std", "runs")}

        caps, combos = row("-cap-score-"), row("-cap-int-score-")
    fixture = {
        "source": {"repo": "yuweihao/MM-Vet", "commit": "acde843e02dae30047bb456ee4a8ab28dee7e0ae",
                   "answers": "results/llava_llama2_13b_chat.json (first %d)" % n,
                   "questions": "stand-ins in mm-vet.json's schema (the question file is not in the repository)",
                   "scorer": "mm-vet_evaluator.py run unmodified (num_run 1); grader replies from grader_reply() in "
                             "tests/parity/mmvet_parity.py"},
        "metadata": meta, "predictions": preds,
        "official": {"per_sample": {k: v["score"][0] for k, v in grades.items()},
                     "capability": caps,
                     # their column names join a Python set (order varies between runs): sorted here
                     "combination": {"_".join(sorted(k.split("_"))) if k != "total" else k: v for k, v in combos.items()}},
    }
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n")
    print(f"{n} answers graded; capability row {caps}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 40)
