"""Published model outputs scored by the authors' unmodified scorers and by ``unitoken-eval score --profile
official``, compared sample by sample (not a pytest test: tests/test_official_published.py checks the committed
subset in tests/data/official_parity/).

MMMU (MMMU-Benchmark/MMMU): each model folder under ``mmmu/example_outputs/`` is scored by
``mmmu/main_parse_and_eval.py --subject ALL``, run from the checkout as it is; its per-sample ``judge``
(``parsed_output.json``) is compared with ours, scored from an MMMU_DEV_VAL-shaped TSV made of the same outputs
(ids, question types, gold answers, option texts; a list gold written as its text, as the Hugging Face and
VLMEvalKit copies hold it) and the responses as predictions lines.

MathVista (lupantech/MathVista): each ``results/<model>/output_*.json``, two ways:
- given extractions: ``evaluation/calculate_score.py`` on a copy of the file; ours scores the file itself
  (``score --predictions output_x.json``, no judge);
- through the judge: ``evaluation/extract_answer.py --rerun`` against a local fake judge answering with the
  authors' recorded extraction of that problem (an empty one as the API error that extract_answer turns into
  ''), then ``calculate_score.py``; ours scores the responses alone with ``--judge`` on a fake judge answering
  the same way.
The data TSV is built from the checkout's ``data/testmini.json`` and ``data/query.json``.
``calculate_score.py`` loads the dataset from the hub; offline, a stand-in ``datasets`` module serves the same ``data/testmini.json`` (the answers it
compares with come from the output files).  Nothing upstream is modified or copied into this project.

  # upstream's imports (pandas of their era: calculate_score.py's breakdown fails on pandas 3)
  pip install --target /tmp/pkgs Levenshtein openai opencv-python-headless word2number rich tqdm pyyaml "pandas==2.2.3"
  python tests/parity/published_outputs_parity.py MMMU_CHECKOUT MATHVISTA_CHECKOUT --upstream-path /tmp/pkgs \\
      [--judge-files N] [--write-fixtures tests/data/official_parity]

``--write-fixtures`` also writes the small committed subset (a few dozen samples per file, with the verdicts
the unmodified code gives on that subset).  Figures of the last run are in docs/official-profiles.md.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from unitoken_eval_testkit.fake_judge import FakeJudgeServer  # noqa: E402

MMMU_COLUMNS = ["index", "question", *"ABCDEFGHI", "answer", "split", "category", "l2-category", "id",
                "question_type", "image"]
MATHVISTA_COLUMNS = ["index", "image", "question", "answer", "answer_option", "choices", "question_type",
                     "answer_type", "precision", "unit", "task", "skills"]
FIXTURE_FILES = ("output_bard", "output_chatgpt", "output_claude_2shot_solution", "output_idefics_9b_instruct",
                 "output_instruct_blip2_vicuna_13b", "output_random_guess")  # (random: given extractions only)
# The Azure error message on which MathVista's GPT_Model.get_response returns '' at once.
EMPTY_EXTRACTION_ERROR = (400, "Please reduce the length of the messages.")


def png_b64() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 200, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_tsv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    """A VLMEvalKit-style TSV: the first row holds a small image, the others refer to it by index."""
    img = png_b64()
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, columns, delimiter="\t", extrasaction="ignore")
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow(dict(r, image=img if i == 0 else str(rows[0]["index"])))
    return path


def ours(task: str, data: Path, predictions: Path, judge: Optional[str] = None) -> dict[str, Any]:
    """``unitoken-eval score --profile official --format json`` in a child process."""
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "score", "--task", task, "--data", str(data), "--predictions",
           str(predictions), "--profile", "official", "--format", "json"]
    if judge:
        cmd += ["--judge", judge]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"unitoken-eval score failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def upstream_env(deps: Optional[str], *paths: Path) -> dict[str, str]:
    parts = [str(p) for p in paths] + ([deps] if deps else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(parts))


# ----------------------------------------------------------------------------------------------- MMMU
def mmmu_records(model_dir: Path) -> list[dict[str, Any]]:
    recs = []
    for f in sorted(model_dir.glob("*/output.json")):
        recs.extend(json.loads(f.read_text(encoding="utf-8")))
    return recs


def mmmu_upstream(checkout: Path, recs: list[dict[str, Any]], work: Path, deps: Optional[str]) -> dict[str, bool]:
    """Run main_parse_and_eval.py on ``recs`` laid out as a model folder; id -> Correct."""
    model = work / "model"
    shutil.rmtree(model, ignore_errors=True)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_subject.setdefault(r["id"].split("_", 1)[1].rsplit("_", 1)[0], []).append(r)
    for subject, items in by_subject.items():
        (model / subject).mkdir(parents=True)
        (model / subject / "output.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    run = subprocess.run([sys.executable, "main_parse_and_eval.py", "--path", str(model), "--subject", "ALL"],
                         cwd=checkout / "mmmu", env=upstream_env(deps), capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"main_parse_and_eval.py failed:\n{run.stderr[-3000:]}")
    verdicts = {}
    for f in model.glob("*/parsed_output.json"):
        for r in json.loads(f.read_text(encoding="utf-8")):
            verdicts[r["id"]] = r["judge"] == "Correct"
    return verdicts


def mmmu_tsv_rows(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(recs, start=1):
        subject = r["id"].split("_", 1)[1].rsplit("_", 1)[0]
        answer = r["answer"] if isinstance(r["answer"], str) else str(r["answer"])
        row = {"index": i, "question": "<image 1> ?", "answer": answer, "split": r["id"].split("_", 1)[0],
               "category": subject, "l2-category": subject, "id": r["id"], "question_type": r["question_type"]}
        if r["question_type"] == "multiple-choice":
            row.update(r["index2ans"])
        rows.append(row)
    return rows


def mmmu_ours(recs: list[dict[str, Any]], work: Path) -> dict[str, bool]:
    rows = mmmu_tsv_rows(recs)
    data = write_tsv(work / "MMMU_DEV_VAL.tsv", MMMU_COLUMNS, rows)
    preds = work / "predictions.jsonl"
    preds.write_text("".join(json.dumps({"index": row["index"], "prediction": r["response"]}, ensure_ascii=False)
                             + "\n" for row, r in zip(rows, recs)), encoding="utf-8")
    per_sample = ours("mmmu_val", data, preds)["per_sample"]
    return {row["id"]: bool(per_sample[str(row["index"])]) for row in rows}


def mmmu_fixture_subset(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every open question, the NA-string option, and multiple-choice responses of each kind (unparsable ones
    draw from the seeded generator, so the subset keeps its own draws)."""
    picked = [r for r in recs if r["question_type"] != "multiple-choice" or r["id"] == "validation_Geography_15"]
    mc = [r for r in recs if r["question_type"] == "multiple-choice" and r not in picked]
    picked += [r for r in mc if len(r["response"].split()) > 5][:12] + [r for r in mc if len(r["response"]) <= 3][:8]
    picked += [r for r in mc if not any(c in r["response"] for c in "ABCDEFGHI")][:10]
    keep = {r["id"] for r in picked}
    return [r for r in recs if r["id"] in keep]


def run_mmmu(checkout: Path, work: Path, deps: Optional[str], fixtures: Optional[Path]) -> list[tuple[str, int, int]]:
    figures = []
    for model_dir in sorted(p for p in (checkout / "mmmu" / "example_outputs").iterdir() if p.is_dir()):
        recs = mmmu_records(model_dir)
        w = work / "mmmu" / model_dir.name
        w.mkdir(parents=True, exist_ok=True)
        up = mmmu_upstream(checkout, recs, w, deps)
        mine = mmmu_ours(recs, w)
        bad = [k for k in up if up[k] != mine.get(k)]
        figures.append((f"mmmu/example_outputs/{model_dir.name}", len(up), len(up) - len(bad)))
        print(f"MMMU {model_dir.name}: {len(up)} samples, {len(up) - len(bad)} agree; "
              f"official accuracy {100 * sum(up.values()) / len(up):.2f}" + (f"; differ: {bad[:5]}" if bad else ""))
        if fixtures:
            sub = mmmu_fixture_subset(recs)
            verdicts = mmmu_upstream(checkout, sub, w / "subset", deps)
            out = [dict({k: r[k] for k in ("id", "question_type", "answer", "index2ans", "response") if k in r},
                        official="Correct" if verdicts[r["id"]] else "Wrong") for r in sub]
            (fixtures / f"mmmu_{model_dir.name}.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n",
                                                                  encoding="utf-8")
    return figures


# ------------------------------------------------------------------------------------------ MathVista
def mathvista_rows(problems: dict[str, dict[str, Any]], queries: dict[str, str]) -> list[dict[str, Any]]:
    """MathVista_MINI-shaped rows; ``question`` holds the query (hint and question), as VLMEvalKit's TSV does."""
    rows = []
    for pid, p in problems.items():
        choices = p.get("choices")
        meta = p.get("metadata") or {}
        rows.append({"index": pid, "question": queries[pid], "answer": p["answer"],
                     "answer_option": (chr(65 + choices.index(p["answer"])) if choices and p["answer"] in choices
                                       else ""),
                     "choices": repr(list(choices)) if choices else "", "question_type": p["question_type"],
                     "answer_type": p["answer_type"],
                     "precision": "" if p.get("precision") is None else p["precision"],
                     "unit": p.get("unit") or "", "task": meta.get("task", ""), "skills": repr(meta.get("skills", []))})
    return rows


def datasets_stand_in(work: Path, testmini: Path) -> Path:
    """A ``datasets`` module whose load_dataset serves the checkout's testmini.json (calculate_score.py asks the
    hub for the gold answers of problems whose output lacks one)."""
    shim = work / "datasets_stand_in"
    (shim / "datasets").mkdir(parents=True, exist_ok=True)
    (shim / "datasets" / "__init__.py").write_text(
        "import json\n\n\ndef load_dataset(name, split=None, **kw):\n"
        f"    return [dict(v, pid=k) for k, v in json.load(open({str(testmini)!r})).items()]\n")
    return shim


def calculate_score(checkout: Path, output: Path, shim: Path, deps: Optional[str]) -> dict[str, bool]:
    run = subprocess.run([sys.executable, str(checkout / "evaluation" / "calculate_score.py"), "--output_dir",
                          str(output.parent), "--output_file", output.name, "--score_file", "scores_" + output.name],
                         cwd=checkout, env=upstream_env(deps, shim, checkout), capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed")
    return {pid: bool(p["true_false"]) for pid, p in json.loads(output.read_text(encoding="utf-8")).items()}


def recorded_extraction(p: dict[str, Any]) -> str:
    ext = p.get("extraction")
    return "" if ext is None else str(ext)


def upstream_judge_reply(problems: dict[str, dict[str, Any]], demo_prompt: str) -> Callable[[str, float], Any]:
    """Fake judge for extract_answer.py: its prompt is demo, query, response; answer with the recorded extraction."""
    head, tail = demo_prompt.strip() + "\n\n", "\n\nExtracted answer: "
    table = {f"{p['query']}\n\n{p['response']}": recorded_extraction(p) for p in problems.values()}

    def reply(prompt: str, temperature: float) -> Any:
        ext = table[prompt[len(head):-len(tail)]]
        return ext if ext.strip() else EMPTY_EXTRACTION_ERROR
    return reply


def our_judge_reply(problems: dict[str, dict[str, Any]], questions: dict[str, str]) -> Callable[[str, float], Any]:
    """Fake judge for our extraction prompt (..., question, 'Model response: ...', 'Extracted answer:'): the
    recorded extraction of the problem with that response and question.  Where several problems share both (the
    prompt is then the same), the last one's, as the upstream fake's table keeps it."""
    def norm(text: str) -> str:
        return text.replace("\r", "").strip()

    by_response: dict[str, list[tuple[str, str]]] = {}
    for pid, p in problems.items():
        by_response.setdefault(p["response"], []).append((norm(questions[pid]), recorded_extraction(p)))

    def reply(prompt: str, temperature: float) -> str:
        before, after = prompt.rsplit("\nModel response: ", 1)
        cands = by_response[after[:-len("\nExtracted answer:")]]
        before = norm(before)
        return [e for q, e in cands if before.endswith(q)][-1]
    return reply


def extract_answer_upstream(checkout: Path, output: Path, problems: dict[str, dict[str, Any]],
                            deps: Optional[str]) -> None:
    sys.path.insert(0, str(checkout))
    try:
        from evaluation.prompts.ext_ans import demo_prompt  # read from the checkout, not copied
    finally:
        sys.path.remove(str(checkout))
    with FakeJudgeServer(upstream_judge_reply(problems, demo_prompt)) as srv:
        env = upstream_env(deps, checkout)
        env.update(AZURE_OPENAI_API_ENDPOINT=srv.url.rsplit("/v1", 1)[0], AZURE_OPENAI_API_KEY="fake",
                   AZURE_OPENAI_API_VERSION="2024-02-01", AZURE_OPENAI_MODEL="fake-judge")
        run = subprocess.run([sys.executable, str(checkout / "evaluation" / "extract_answer.py"),
                              "--results_file_path", str(output), "--rerun"],
                             cwd=checkout, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"extract_answer.py failed:\n{run.stderr[-3000:]}")


def vk_rules_verdict(p: dict[str, Any]) -> Optional[bool]:
    """The verdict when VLMEvalKit's rule pass (not extract_answer.py's rules) settles the extraction, else None."""
    from unitoken_eval.tasks import mathvista as mv

    choices = list(p.get("choices") or [])
    fields = {"question_type": p["question_type"], "answer_type": p["answer_type"], "answer": p["answer"],
              "answer_option": chr(65 + choices.index(p["answer"])) if p["answer"] in choices else None}
    if mv.official_rule_extraction(p["response"], p["question_type"], p["answer_type"], choices) is not None:
        return None
    pre = mv.vk_post_check(fields, p["response"], choices, prefetch=True)
    if not pre:
        return None
    norm = mv.normalize_extracted_answer(pre, choices, p["question_type"], p["answer_type"], p.get("precision"))
    return norm == str(p["answer"])


def mathvista_fixture_subset(problems: dict[str, dict[str, Any]], official_judge: dict[str, bool],
                             n: int = 48) -> list[str]:
    """Problems of each kind the pipelines treat differently: exact choices, bare letters, refusals, numbers
    that int()/float() parse, lists, empty extractions, long responses, and responses whose verdict
    VLMEvalKit's rule pass would have changed."""
    pids = list(problems)
    mc = [k for k in pids if problems[k]["question_type"] == "multi_choice"]
    groups = [
        [k for k in pids if k in official_judge and vk_rules_verdict(problems[k]) not in (None, official_judge[k])][:10],
        [k for k in mc if problems[k]["response"] in (problems[k]["choices"] or [])][:4],
        [k for k in mc if len(problems[k]["response"].strip()) <= 3][:6],
        [k for k in pids if any(w in problems[k]["response"].lower() for w in ("sorry", "cannot", "unable"))][:6],
        [k for k in pids if problems[k]["answer_type"] == "integer" and
         problems[k]["response"].strip().lstrip("-").isdigit()][:4],
        [k for k in pids if problems[k]["answer_type"] == "float"][:6],
        [k for k in pids if problems[k]["answer_type"] == "list"][:3],
        [k for k in pids if not recorded_extraction(problems[k]).strip()][:4],
        [k for k in pids if len(problems[k]["response"]) > 200][:5],
    ]
    keep = {k for g in groups for k in g}
    return [k for k in pids if k in keep][:n]


def run_mathvista(checkout: Path, work: Path, deps: Optional[str], judge_files: int, fixtures: Optional[Path],
                  pattern: str = "*/output_*.json") -> list[tuple[str, str, int, int]]:
    testmini = checkout / "data" / "testmini.json"
    shim = datasets_stand_in(work, testmini)
    queries = json.loads((checkout / "data" / "query.json").read_text(encoding="utf-8"))
    data = write_tsv(work / "MathVista_MINI.tsv", MATHVISTA_COLUMNS,
                     mathvista_rows(json.loads(testmini.read_text(encoding="utf-8")), queries))
    figures = []
    files = sorted({f for pat in pattern.split(",") for f in (checkout / "results").glob(pat)})
    for n_file, path in enumerate(files):
        name = str(path.relative_to(checkout))
        problems = json.loads(path.read_text(encoding="utf-8"))
        w = work / "mathvista" / path.parent.name
        w.mkdir(parents=True, exist_ok=True)
        # given extractions
        given = w / path.name
        shutil.copy(path, given)
        try:
            up = calculate_score(checkout, given, shim, deps)
        except RuntimeError as exc:
            print(f"MathVista {name} (given): calculate_score.py stops ({exc}); not compared")
            up = None
        if up is not None:
            mine = {k: bool(v) for k, v in ours("mathvista_testmini", data, path)["per_sample"].items()}
            bad = [k for k in up if up[k] != mine.get(k)]
            figures.append((name, "given extraction", len(up), len(up) - len(bad)))
            published = path.parent / path.name.replace("output_", "scores_", 1)
            note = ""
            if published.is_file():
                correct = json.loads(published.read_text(encoding="utf-8"))["average"]["correct"]
                note = f"; published scores file: {correct} correct, the unmodified code now: {sum(up.values())}"
            print(f"MathVista {name} (given): {len(up)} samples, {len(up) - len(bad)} agree{note}"
                  + (f"; differ: {bad[:5]}" if bad else ""))
        # through the judge
        up_j: dict[str, bool] = {}
        if n_file >= judge_files and not (fixtures and path.stem in FIXTURE_FILES):
            pass
        elif not all("query" in p for p in problems.values()):
            print(f"MathVista {name} (judge): the file has no 'query', which extract_answer.py needs; not compared")
        else:
            up_j, mine_j = judge_path(checkout, path, problems, w, shim, deps, data, queries)
            bad = [k for k in up_j if up_j[k] != mine_j.get(k)]
            figures.append((name, "judge (fake, recorded extractions)", len(up_j), len(up_j) - len(bad)))
            print(f"MathVista {name} (judge): {len(up_j)} samples, {len(up_j) - len(bad)} agree"
                  + (f"; differ: {bad[:5]}" if bad else ""))
        if fixtures and path.stem in FIXTURE_FILES:
            keep = mathvista_fixture_subset(problems, up_j)
            out = {pid: dict({k: problems[pid].get(k) for k in ("question_type", "answer_type", "choices", "precision",
                                                                "unit", "answer", "response")},
                             query=problems[pid].get("query") or queries[pid],
                             task=(problems[pid].get("metadata") or {}).get("task"),
                             **({"extraction": problems[pid]["extraction"]} if "extraction" in problems[pid] else {}),
                             official_given=None if up is None else up[pid], official_judge=up_j.get(pid))
                   for pid in keep}
            (fixtures / f"mathvista_{path.stem}.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n",
                                                                  encoding="utf-8")
    return figures


def judge_path(checkout: Path, path: Path, problems: dict[str, dict[str, Any]], w: Path, shim: Path,
               deps: Optional[str], data: Path, queries: dict[str, str]) -> tuple[dict[str, bool], dict[str, bool]]:
    """pid -> verdict of extract_answer.py + calculate_score.py, and of ours with --judge (both on fake judges)."""
    judged = w / ("judged_" + path.name)
    shutil.copy(path, judged)
    extract_answer_upstream(checkout, judged, problems, deps)
    up_j = calculate_score(checkout, judged, shim, deps)
    lines = w / ("responses_" + path.stem + ".jsonl")
    lines.write_text("".join(json.dumps({"index": pid, "prediction": p["response"]}, ensure_ascii=False) + "\n"
                             for pid, p in problems.items()), encoding="utf-8")
    os.environ["UNITOKEN_EVAL_CACHE"] = str(w / ("judge_cache_" + path.stem))
    with FakeJudgeServer(our_judge_reply(problems, queries)) as srv:
        mine_j = {k: bool(v) for k, v in
                  ours("mathvista_testmini", data, lines, judge=srv.url + "#model=fake-judge")["per_sample"].items()}
    return up_j, mine_j


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mmmu", type=Path, help="MMMU-Benchmark/MMMU checkout")
    ap.add_argument("mathvista", type=Path, help="lupantech/MathVista checkout")
    ap.add_argument("--upstream-path", help="a folder of the packages the upstream scripts import")
    ap.add_argument("--judge-files", type=int, default=10 ** 6, help="run the judge path on the first N files only")
    ap.add_argument("--write-fixtures", type=Path)
    ap.add_argument("--mathvista-files", default="*/output_*.json",
                    help="which results/ files (globs, comma-separated)")
    ap.add_argument("--skip-mmmu", action="store_true")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="published_parity_"))
    if args.write_fixtures:
        args.write_fixtures.mkdir(parents=True, exist_ok=True)
    figures = [] if args.skip_mmmu else [(name, "parse and eval", n, agree) for name, n, agree in
                                         run_mmmu(args.mmmu, work, args.upstream_path, args.write_fixtures)]
    figures += run_mathvista(args.mathvista, work, args.upstream_path, args.judge_files, args.write_fixtures,
                             args.mathvista_files)
    print("\n| file | path | samples | agree |\n|---|---|---:|---:|")
    for name, how, n, agree in figures:
        print(f"| {name} | {how} | {n} | {agree} |")
    return 0 if all(n == agree for _, _, n, agree in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
