"""The official profiles against the benchmark authors' own scorers, sample by sample, on published outputs.

tests/data/official_parity/ holds small subsets of the model outputs the authors published (MMMU's
mmmu/example_outputs/, MathVista's results/<model>/output_*.json) with the verdict the authors' unmodified code
gives each sample of that subset (see the NOTE.md there; tests/parity/published_outputs_parity.py runs the full
comparison and writes these files).  Here each subset is scored by ``score_files`` (what ``unitoken-eval score``
runs) with profile ``official`` and every verdict must be the authors'.
"""

import json
from pathlib import Path

import pytest

from unitoken_eval.harness.scoring import score_files
from unitoken_eval_testkit.fake_judge import FakeJudgeServer
from parity.published_outputs_parity import (MATHVISTA_COLUMNS, MMMU_COLUMNS, mathvista_rows, mmmu_tsv_rows,
                                                   our_judge_reply, write_tsv)

FIXTURES = Path(__file__).resolve().parent / "data" / "official_parity"
MMMU_FILES = sorted(FIXTURES.glob("mmmu_*.json"))
MATHVISTA_FILES = sorted(FIXTURES.glob("mathvista_*.json"))


def test_fixtures_are_there():
    assert len(MMMU_FILES) == 2 and len(MATHVISTA_FILES) == 6


@pytest.mark.parametrize("path", MMMU_FILES, ids=lambda p: p.stem)
def test_mmmu_official_equals_main_parse_and_eval(tmp_path, path):
    recs = json.loads(path.read_text(encoding="utf-8"))
    rows = mmmu_tsv_rows(recs)
    data = write_tsv(tmp_path / "MMMU_DEV_VAL.tsv", MMMU_COLUMNS, rows)
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"index": row["index"], "prediction": r["response"]}) + "\n"
                             for row, r in zip(rows, recs)), encoding="utf-8")
    out = score_files("mmmu_val", str(data), predictions=str(preds), profile="official")
    ours = {row["id"]: out["per_sample"][str(row["index"])] for row in rows}
    theirs = {r["id"]: int(r["official"] == "Correct") for r in recs}
    assert ours == theirs
    # the cases this subset is there for: an option reading 'None', list golds, 'short-answer' questions
    assert "validation_Geography_15" in theirs and any(isinstance(r["answer"], list) for r in recs)
    assert {r["question_type"] for r in recs} == {"multiple-choice", "short-answer"}


def _mathvista_data(tmp_path, problems):
    queries = {pid: p["query"] for pid, p in problems.items()}
    return write_tsv(tmp_path / "MathVista_MINI.tsv", MATHVISTA_COLUMNS, mathvista_rows(problems, queries)), queries


@pytest.mark.parametrize("path", MATHVISTA_FILES, ids=lambda p: p.stem)
def test_mathvista_official_equals_calculate_score_on_given_extractions(tmp_path, path):
    problems = json.loads(path.read_text(encoding="utf-8"))
    data, _ = _mathvista_data(tmp_path, problems)
    native = tmp_path / "output_model.json"
    native.write_text(json.dumps({pid: {k: p[k] for k in ("response", "extraction") if k in p}
                                  for pid, p in problems.items()}), encoding="utf-8")
    out = score_files("mathvista_testmini", str(data), predictions=str(native), profile="official")
    theirs = {pid: int(p["official_given"]) for pid, p in problems.items() if p["official_given"] is not None}
    if not theirs:
        pytest.skip("calculate_score.py stops on this file (a problem without an extraction)")
    assert {pid: out["per_sample"][pid] for pid in theirs} == theirs


@pytest.mark.parametrize("path", MATHVISTA_FILES, ids=lambda p: p.stem)
def test_mathvista_official_equals_extract_answer_then_calculate_score(tmp_path, path, monkeypatch):
    # extract_answer.py's rules, then the judge (a fake answering with the authors' recorded extraction).
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    problems = json.loads(path.read_text(encoding="utf-8"))
    data, queries = _mathvista_data(tmp_path, problems)
    lines = tmp_path / "responses.jsonl"
    lines.write_text("".join(json.dumps({"index": pid, "prediction": p["response"]}) + "\n"
                             for pid, p in problems.items()), encoding="utf-8")
    with FakeJudgeServer(our_judge_reply(problems, queries)) as srv:
        out = score_files("mathvista_testmini", str(data), predictions=str(lines), profile="official",
                          judge=srv.url + "#model=fake-judge")
    theirs = {pid: int(p["official_judge"]) for pid, p in problems.items() if p["official_judge"] is not None}
    if not theirs:
        pytest.skip("extract_answer.py cannot run on this file (its problems have no 'query')")
    assert out["per_sample"] == theirs
    assert out["metrics"]["extracted_by"].get("judge", 0) > 0
