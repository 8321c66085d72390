"""The ``replay`` adapter: recorded answers (VLMEvalKit files, our JSONL) as a model of a run.

It must answer each request from the file by the request's task and sample id, fail naming the file and the
sample for a sample the file lacks (or record it under --skip-bad), and fingerprint the file so that a
resumed run refuses a changed one.  Runs here use the smoke MME data and need no model and no extra.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from unitoken_eval.harness import interop
from unitoken_eval.harness.cli import main
from unitoken_eval.harness.scoring import score_files
from unitoken_eval.harness.store import RunStore
from unitoken_eval.harness.types import UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError, SampleErrors
from unitoken_eval.model_adapters.replay import ReplayAdapter

SMOKE_MME = Path(__file__).resolve().parents[1] / "tasks" / "smoke_data" / "understanding" / "MME.tsv"
ANSWERS = {"0": "Yes", "1": "No", "2": "I think yes", "3": "yes", "4": "No.", "5": "no"}


def vk_file(path: Path, answers: dict[str, str]) -> Path:
    """A VLMEvalKit prediction TSV (its dump: TSV rows without 'image', plus 'prediction', all quoted)."""
    df = pd.read_csv(SMOKE_MME, sep="\t").drop(columns=["image"])
    df = df[df["index"].astype(str).isin(answers)]
    df["prediction"] = [answers[str(i)] for i in df["index"]]
    df.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    return path


def run(out: Path, source: Path, *extra: str, args: str = "") -> int:
    return main(["run", "--model", "replay", "--model-args", f"source={source}{args}", "--tasks", "mme",
                 "--data", f"mme={SMOKE_MME}", "--profile", "vlmevalkit", "--out", str(out), "--no-progress", *extra])


def metrics(out: Path) -> dict:
    return json.loads((out / "tasks" / "mme" / "metrics.json").read_text(encoding="utf-8"))


def test_replayed_vk_file_scores_like_score_on_the_same_answers(tmp_path):
    src = vk_file(tmp_path / "somemodel_MME.tsv", ANSWERS)
    assert run(tmp_path / "r", src) == 0
    stored = RunStore(tmp_path / "r").read_predictions("mme")
    assert {k: p.text for k, p in stored.items()} == ANSWERS
    # the same answers through `score` (our JSONL) give the same metrics
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in ANSWERS.items()))
    ref = score_files("mme", str(SMOKE_MME), predictions=str(jsonl), profile="vlmevalkit")
    got = metrics(tmp_path / "r")
    assert got["headline"] == ref["headline"] and got["metrics"]["subtasks"] == ref["metrics"]["subtasks"]
    manifest = RunStore(tmp_path / "r").read_manifest()
    assert manifest["model_fingerprint"] == {"adapter": "replay", "source": str(src.resolve()), "format": "vlmevalkit",
                                             "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}


def test_our_jsonl_and_vk_json_sources(tmp_path):
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text("".join(json.dumps({"index": int(k), "prediction": v}) + "\n" for k, v in ANSWERS.items()))
    assert interop.detect_format(jsonl) == "jsonl"
    assert run(tmp_path / "a", jsonl, args=",task=mme") == 0
    recs = pd.read_csv(SMOKE_MME, sep="\t").drop(columns=["image"]).to_dict("records")
    vkjson = tmp_path / "m_MME.json"
    vkjson.write_text(json.dumps([dict(r, prediction=ANSWERS[str(r["index"])]) for r in recs]))
    assert run(tmp_path / "b", vkjson) == 0  # task from VK's {model}_{dataset} file name
    assert metrics(tmp_path / "a")["metrics"]["subtasks"] == metrics(tmp_path / "b")["metrics"]["subtasks"]


def test_missing_sample_names_file_and_sample(tmp_path, capsys):
    src = vk_file(tmp_path / "m_MME.tsv", {k: v for k, v in ANSWERS.items() if k != "3"})
    assert run(tmp_path / "r", src) == 2
    err = capsys.readouterr().err
    assert f"{src.resolve()}: no recorded answer for sample '3' of task mme" in err and "--skip-bad" in err


def test_missing_sample_under_skip_bad_is_a_recorded_error(tmp_path):
    src = vk_file(tmp_path / "m_MME.tsv", {k: v for k, v in ANSWERS.items() if k != "3"})
    assert run(tmp_path / "r", src, "--skip-bad") == 0
    stored = RunStore(tmp_path / "r").read_predictions("mme")
    assert stored["3"].error == f"{src.resolve()}: no recorded answer for sample '3' of task mme"
    assert {k: p.text for k, p in stored.items() if k != "3"} == {k: v for k, v in ANSWERS.items() if k != "3"}
    m = metrics(tmp_path / "r")
    assert m["n_errors"] == 1 and m["n"] == 5


def test_resume_refuses_a_changed_source_file(tmp_path, capsys):
    src = vk_file(tmp_path / "m_MME.tsv", ANSWERS)
    out = tmp_path / "r"
    assert run(out, src) == 0
    # a crash after three answers: drop the rest, so the resumed run has inference to do
    path = RunStore(out).prediction_files("mme")[0]
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    vk_file(src, dict(ANSWERS, **{"5": "yes"}))  # the file is edited in between
    assert run(out, src, "--resume") == 2
    assert "model fingerprint" in capsys.readouterr().err
    vk_file(src, ANSWERS)  # the original file again: the run resumes and finishes
    assert run(out, src, "--resume") == 0
    assert {k: p.text for k, p in RunStore(out).read_predictions("mme").items()} == ANSWERS


def test_requests_answered_by_their_task(tmp_path):
    src = vk_file(tmp_path / "m_MME.tsv", ANSWERS)
    ad = ReplayAdapter(source=str(src))
    assert ad.understand([UnderstandRequest(sample_id="2", prompt="?", task_id="mme")]) == ["I think yes"]
    # VK indices repeat across benchmarks: an MME file never answers another task's sample '2'
    with pytest.raises(AdapterError, match="cannot tell|no recorded answer|hallusionbench"):
        ReplayAdapter(source=str(src), task="mme").understand(
            [UnderstandRequest(sample_id="2", prompt="?", task_id="hallusionbench")])
    with pytest.raises(SampleErrors) as err:
        ad.understand([UnderstandRequest(sample_id=s, prompt="?", task_id="mme") for s in ("1", "77", "88")])
    assert err.value.answers == ["No", None, None] and sorted(err.value.errors) == [1, 2]
    assert "and 1 more" in str(err.value)


@pytest.mark.parametrize("args, message", [
    ({}, "needs source=PATH"),
    ({"source": "/nonexistent/x_MME.xlsx"}, "does not exist"),
    ({"source": "SRC", "temperature": "0"}, r"unknown model argument\(s\) \['temperature'\]"),
    ({"source": "SRC", "format": "csv"}, "unknown predictions format 'csv'"),
])
def test_bad_model_args(tmp_path, args, message):
    src = vk_file(tmp_path / "m_MME.tsv", ANSWERS)
    args = {k: (str(src) if v == "SRC" else v) for k, v in args.items()}
    with pytest.raises(AdapterError, match=message):
        ReplayAdapter(**args)


def test_file_name_without_task_needs_task_arg(tmp_path):
    src = vk_file(tmp_path / "renamed.tsv", ANSWERS)
    with pytest.raises(AdapterError, match=r"cannot tell which task renamed\.tsv answers; pass task=ID"):
        ReplayAdapter(source=str(src)).understand([UnderstandRequest(sample_id="0", prompt="?")])
    assert ReplayAdapter(source=str(src), task="mme").understand([UnderstandRequest(sample_id="0", prompt="?")]) == ["Yes"]


def test_lmms_eval_reader_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(interop.FORMAT_MODULES, "lmms-eval", "unitoken_eval.harness.interop._no_such_module")
    with pytest.raises(interop.InteropError, match="lmms-eval log import not available"):
        interop.format_module("lmms-eval")
    # auto-detection skips the absent format and still finds the others
    src = vk_file(tmp_path / "m_MME.tsv", ANSWERS)
    assert interop.detect_format(src) == "vlmevalkit"
    log = tmp_path / "x_samples_mme.jsonl"
    log.write_text(json.dumps({"doc_id": 0, "filtered_resps": ["Yes"], "target": "Yes"}) + "\n")
    with pytest.raises(AdapterError, match="lmms-eval log import not available"):
        ReplayAdapter(source=str(log), format="lmms-eval")
