"""mathvista_testmini through score_files, with and without a local fake judge.

official: lupantech/MathVista 53d52587 evaluation/extract_answer.py rules, then the judge, then
evaluation/calculate_score.py normalize_extracted_answer + safe_equal.  vlmevalkit: VLMEvalKit e8e78f05
vlmeval/dataset/utils/mathvista.py MathVista_auxeval / post_check(prefetch=True), then the judge, then
post_check(prefetch=False).
"""

import csv
import re

import pytest

from unitoken_eval.harness.scoring import score_files
from unitoken_eval_testkit.fake_judge import FakeJudgeServer, free_port_url
from unitoken_eval_testkit.understanding_helpers import SMOKE

COLS = ["index", "image", "question", "answer", "answer_option", "choices", "question_type", "answer_type",
        "precision", "unit", "task", "skills"]
MC = dict(question_type="multi_choice", answer_type="text", answer="green", answer_option="B",
          choices="['red', 'green', 'blue', 'yellow']", task="visual question answering", skills="['scientific reasoning']")
INT = dict(question_type="free_form", answer_type="integer", task="figure question answering",
           skills="['arithmetic reasoning', 'statistical reasoning']")

# index: (row fields, prediction)
CASES = {
    "1": (dict(INT, answer="1000"), "1,000"),          # int('1,000') fails: no prefetch
    "2": (dict(INT, answer="1000"), "1e3"),            # official int(float('1e3')) = 1000; VK int('1e3') fails
    "3": (dict(question_type="free_form", answer_type="float", answer="3.5", precision="1.0",
               task="textbook question answering", skills="['numeric commonsense']"), "3.50"),  # float prefetch
    "4": (MC, "The answer is B"),                      # can_infer letter -> prefetch
    "5": (MC, "green"),                                # option text only -> prefetch
    "6": (MC, "It is (A) red, no, (B) green"),         # two letters, two texts: no prefetch; official takes '(A)'
    "7": (MC, "I cannot see the image"),               # refusal: official picks the closest choice by edit distance
    "8": (dict(INT, answer="0"), "0"),                 # prefetch returns 0, falsy upstream: goes to the judge
    "9": (dict(question_type="free_form", answer_type="list", answer="[2007, 2008]", task="figure question answering",
               skills="['statistical reasoning']"), "[2007, 2008]"),   # VK never matches lists
    "10": (dict(INT, answer="5", unit="cm"), "5 cm"),  # unit: needs extraction
}


def _image_cell():
    csv.field_size_limit(10 ** 9)
    with open(SMOKE / "MathVista_MINI.tsv", encoding="utf-8") as f:
        return next(csv.DictReader(f, delimiter="\t"))["image"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "MathVista_MINI.tsv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLS, delimiter="\t")
        w.writeheader()
        for k, (row, _) in CASES.items():
            w.writerow({"index": k, "image": _image_cell() if k == "1" else "1", "question": f"Hint: ...\nQuestion: q{k}?",
                        **row})
    preds = tmp_path / "preds.jsonl"
    import json
    preds.write_text("".join(json.dumps({"index": k, "prediction": p}) + "\n" for k, (_, p) in CASES.items()))
    return str(data), str(preds)


EXTRACT = {"1,000": "1000", "The answer is B": "B", "5 cm": "5", "It is (A) red, no, (B) green": "B", "I cannot see the image": "",
           "1e3": "1000", "0": "0", "[2007, 2008]": "[2007, 2008]"}


def fake_extractor(prompt, temperature):
    resp = re.findall(r"Model response: (.*)\nExtracted answer:", prompt)[-1]
    return EXTRACT.get(resp, resp)


def test_no_judge_raw_prediction_is_the_extraction(files):
    data, preds = files
    out = score_files("mathvista_testmini", data, predictions=preds, profile="official")
    assert out["per_sample"] == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1, "6": 0, "7": 1, "8": 1, "9": 1, "10": 0}
    assert out["headline"] == {"name": "accuracy", "value": 70.0, "scale": "percent"}
    assert any("raw predictions" in w for w in out["warnings"])
    # extract_answer.py's rules settle 3 (3.50 parses as a float, 'green' is a choice, '0' parses as an integer)
    assert out["metrics"]["extracted_by"] == {"rule": 3, "raw prediction (no judge)": 7}
    assert out["metrics"]["per_task"]["visual question answering"] == 75.0
    assert "calculate_score.py" in out["reference"] and "53d52587" in out["reference"]
    vk = score_files("mathvista_testmini", data, predictions=preds, profile="vlmevalkit")
    assert vk["per_sample"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1, "6": 0, "7": 0, "8": 1, "9": 0, "10": 0}
    assert vk["metrics"]["per_skill"]["numeric commonsense"] == 100.0


def test_judge_extracts_what_rules_cannot_and_is_cached(files):
    data, preds = files
    with FakeJudgeServer(fake_extractor) as srv:
        out = score_files("mathvista_testmini", data, predictions=preds, profile="official", judge=srv.url + "#model=m")
        # official: 7 samples go to the judge, all but the 3 that extract_answer.py's rules settle
        assert len(srv.requests) == 7
        # sample 7: the judge extracts '' and the closest choice to '' is 'red' (edit distance 3): wrong
        assert out["per_sample"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 0, "8": 1, "9": 1, "10": 1}
        vk = score_files("mathvista_testmini", data, predictions=preds, profile="vlmevalkit", judge=srv.url + "#model=m")
        # vlmevalkit: its prefetch settles 3, 4 and 5 (not 8: a prefetched 0 is falsy upstream); sample 8 is new
        assert len(srv.requests) == 8
        assert vk["per_sample"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 0, "8": 1, "9": 0, "10": 1}
        assert out["metrics"]["extracted_by"] == {"judge": 7, "rule": 3}
        assert vk["metrics"]["extracted_by"] == {"judge": 7, "prefetch": 3}


def test_judge_down_marks_pending_never_zero(files):
    data, preds = files
    out = score_files("mathvista_testmini", data, predictions=preds,
                      judge=free_port_url() + "#model=m&retries=1&backoff=0.01")
    assert out["status"] == "not_scored" and out["headline"]["value"] is None
    assert out["metrics"]["pending_judge"] == 7 and "pending judge" in out["reason"]
    assert sum(v is None for v in out["per_sample"].values()) == 7


def test_smoke_source_prompt_is_the_query():
    from unitoken_eval.harness import registry
    t = registry.make_task("mathvista_testmini", {})
    s = t.load(t.smoke_source())
    assert len(s) == 4 and t.request(s[2]).prompt.endswith("(D) yellow")   # VK: the TSV question as is
    assert len(t.request(s[0]).images) == 1


def test_hf_schema_ai4math(tmp_path):
    # AI4Math/MathVista testmini columns (pid, query, choices list/None, metadata struct, decoded_image)
    from unitoken_eval_testkit.understanding_helpers import hf_parquet, score
    folder = hf_parquet(tmp_path, {
        "pid": ["1", "2"], "question": ["q1", "q2"], "query": ["Hint: ...\nQuestion: q1", "Hint: ...\nQuestion: q2"],
        "choices": [["red", "green"], None], "answer": ["green", "7"], "precision": [None, None], "unit": [None, None],
        "question_type": ["multi_choice", "free_form"], "answer_type": ["text", "integer"],
        "metadata": [{"task": "vqa", "skills": ["logical reasoning"]}, {"task": "math word problem",
                                                                        "skills": ["arithmetic reasoning"]}],
        "decoded_image": [(0, 0, 0), (1, 1, 1)]}, image_column="decoded_image", split="testmini")
    out = score(tmp_path, "mathvista_testmini", {"1": "(B) green", "2": "7"}, data=str(folder))
    assert out["per_sample"] == {"1": 1, "2": 1}
    assert out["metrics"]["per_skill"] == {"arithmetic reasoning": 100.0, "logical reasoning": 100.0}


def test_official_sends_what_its_rules_do_not_settle_to_the_judge(files, tmp_path):
    # VK's rule pass would read a refusal as its no-answer marker and a letter inside prose as an answer;
    # extract_answer.py has no such rules: both go to the judge, whose extraction decides.
    import json
    data, _ = files
    preds = tmp_path / "p2.jsonl"
    preds.write_text(json.dumps({"index": "4", "prediction": "Sorry, I can't help with images of people yet."}) + "\n"
                     + json.dumps({"index": "5", "prediction": "B"}) + "\n"      # a letter: not a choice's text
                     + json.dumps({"index": "8", "prediction": " 0 "}) + "\n")   # int(' 0 ') parses: a rule
    with FakeJudgeServer(lambda p, t: "yellow") as srv:
        out = score_files("mathvista_testmini", data, predictions=str(preds), profile="official",
                          judge=srv.url + "#model=m", partial=True)
        assert len(srv.requests) == 2
    assert out["per_sample"] == {"4": 0, "5": 0, "8": 1}
    assert out["metrics"]["extracted_by"] == {"judge": 2, "rule": 1}


def test_given_extractions_are_scored_as_given(files, tmp_path):
    # MathVista's own output file (pid -> problem with response and extraction) and our lines with
    # 'extraction': scored through calculate_score.py's normalisation, no rules and no judge.
    import json
    data, _ = files
    native = tmp_path / "output_model.json"
    native.write_text(json.dumps({
        "4": {"pid": "4", "response": "The answer is B", "extraction": "(A) red"},
        "3": {"pid": "3", "response": "3.50", "extraction": 3.5},
        "9": {"pid": "9", "response": "2007 and 2008", "extraction": [2007, 2008]},
        "10": {"pid": "10", "response": "5 cm", "extraction": "5 cm"},
    }))
    lines = tmp_path / "given.jsonl"
    lines.write_text(json.dumps({"index": "7", "prediction": "I cannot see the image", "extraction": "green"}) + "\n")
    with FakeJudgeServer(lambda p, t: "green") as srv:
        out = score_files("mathvista_testmini", data, predictions=str(native), profile="official",
                          judge=srv.url + "#model=m", partial=True)
        out2 = score_files("mathvista_testmini", data, predictions=str(lines), profile="official",
                           judge=srv.url + "#model=m", partial=True)
        assert srv.requests == []
    assert out["per_sample"] == {"3": 1, "4": 0, "9": 1, "10": 0}
    # the only warning is the partial coverage this test asked for
    assert out["metrics"]["extracted_by"] == {"given": 4}
    assert [w for w in out["warnings"] if "have no prediction" not in w] == []
    assert out2["per_sample"] == {"7": 1}


def test_native_output_with_a_bad_response_names_the_problem(files, tmp_path):
    import json
    data, _ = files
    native = tmp_path / "output_model.json"
    native.write_text(json.dumps({"4": {"response": 7, "extraction": "B"}}))
    with pytest.raises(Exception, match=r"output_model.json: problem '4': 'response' must be a string"):
        score_files("mathvista_testmini", data, predictions=str(native), profile="official")
