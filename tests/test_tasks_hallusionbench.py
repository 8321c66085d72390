"""HallusionBench through score_files. Rules: VK e8e78f05 Hallusion_rating + YOrN_Extraction
(vlmeval/dataset/utils/yorn.py): set/figure/question ids = '_'-split index fields 3/4/5."""

import pytest

from unitoken_eval_testkit.understanding_helpers import score


def test_hallusion_three_rates(tmp_path):
    preds = {"VD_chart_1_0_0_0": "Yes, the middle bar is the tallest.",  # Yes (right)
             "VD_chart_1_0_0_1": "No.",                                  # No (right)
             "VD_chart_1_0_1_0": "yes/no",                               # Unknown (wrong)
             "VS_map_1_3_0_0": "No, it is a square.",                    # No (right)
             "VS_map_1_3_1_0": "No"}                                     # No (answer Yes)
    out = score(tmp_path, "hallusionbench", preds, profile="vlmevalkit")
    assert out["per_sample"] == {"VD_chart_1_0_0_0": 1, "VD_chart_1_0_0_1": 1, "VD_chart_1_0_1_0": 0,
                                 "VS_map_1_3_0_0": 1, "VS_map_1_3_1_0": 0}
    m = out["metrics"]["overall"]
    # figures: chart_0_0 [1,1], chart_0_1 [0], map_3_0 [1], map_3_1 [0] -> 50
    # questions: chart_0_0 [1,0], chart_0_1 [1], map_3_0 [1,0] -> 33.3
    assert m == {"aAcc": pytest.approx(60.0), "fAcc": pytest.approx(50.0), "qAcc": pytest.approx(100 / 3)}
    assert out["headline"]["value"] == pytest.approx((60 + 50 + 100 / 3) / 3)
    assert out["metrics"]["l2-category"]["map"]["aAcc"] == pytest.approx(50.0)


def test_hallusion_from_hf_schema(tmp_path):
    # lmms-lab HallusionBench 'image' split columns as read by lmms-eval 75571cf hallusion_bench/utils.py
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {
        "category": ["VD", "VD", "VS"], "subcategory": ["chart", "chart", "map"], "set_id": [1, 1, 0],
        "figure_id": [0, 1, 0], "question_id": [0, 0, 2], "visual_input": ["1", "1", "0"],
        "question": ["Is it up?", "Is it up?", "Is Paris in France?"], "gt_answer": ["1", "0", "1"],
        "gt_answer_details": ["", "", ""], "image": [(1, 2, 3), (3, 2, 1), (0, 0, 0)]}, split="image")
    from unitoken_eval.harness import registry
    task = registry.make_task("hallusionbench", {})
    samples = task.load(str(folder))
    assert [s.id for s in samples] == ["VD_chart_1_1_0_0", "VD_chart_1_1_1_0"]   # text-only row dropped
    assert [s.fields["answer"] for s in samples] == ["Yes", "No"]
    out = score(tmp_path, "hallusionbench", {"VD_chart_1_1_0_0": "yes", "VD_chart_1_1_1_0": "yes"}, data=str(folder),
                profile="vlmevalkit")
    assert out["metrics"]["overall"] == {"aAcc": 50.0, "fAcc": 50.0, "qAcc": 0.0}
    assert out["metrics"]["data_sha256"] is None


# ---------------------------------------------------------------- official: the authors' scorer
# tests/data/hallusionbench_authors_subset.json: questions from the authors' HallusionBench.json, predictions from
# their published HallusionBench_result_sample.json, and what their evaluation.py (744007c2, run unmodified by
# tests/parity/hallusionbench_parity.py) made of them given the same judge replies this fake judge sends.
import json
from pathlib import Path

from unitoken_eval.harness.scoring import score_files
from unitoken_eval.tasks.hallusionbench import is_right, verdict_of
from unitoken_eval_testkit.fake_judge import FakeJudgeServer, free_port_url

AUTHORS = json.loads((Path(__file__).parent / "data" / "hallusionbench_authors_subset.json").read_text())


@pytest.fixture
def authors_files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "HallusionBench.json"
    data.write_text(json.dumps(AUTHORS["questions"]))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in AUTHORS["predictions"].items()))
    return str(data), str(preds)


def authors_judge(prompt, temperature):
    question = prompt.split("Question: ", 1)[1].split("\nReference answer: ", 1)[0]
    prediction = prompt.split("\nPrediction answer: ", 1)[1].rsplit("\nOutput:", 1)[0]
    replies = {(q["question"], AUTHORS["predictions"][k]): AUTHORS["judge_replies"][k]
               for q in AUTHORS["questions"] for k in [_index(q)]}
    return replies[(question, prediction)]


def _index(q):
    return "_".join(q[k] for k in ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id"))


def test_official_equals_the_authors_scorer_sample_by_sample(authors_files):
    data, preds = authors_files
    with FakeJudgeServer(authors_judge) as srv:
        out = score_files("hallusionbench", data, predictions=preds, profile="official", judge=srv.url + "#model=g")
        # every distinct (question, answer) is graded; identical ones may share one cached call, and two asked
        # at once may both reach the judge, so the count of calls is not fixed
        distinct = {(q["question"], q["gt_answer_details"], AUTHORS["predictions"][_index(q)]) for q in AUTHORS["questions"]}
        assert len({r["messages"][-1]["content"] for r in srv.requests}) == len(distinct)
        sent = srv.requests[0]["messages"][0]["content"]
        first = AUTHORS["questions"][0]
        assert f"Reference answer: {first['gt_answer_details']}\n" in sent   # the authors' reference sentence
    official = AUTHORS["official"]
    assert out["status"] == "scored" and out["n"] == out["n_samples"] == len(AUTHORS["questions"])
    assert out["per_sample"] == {k: v["correct"] for k, v in official["per_sample"].items()}
    m = out["metrics"]
    codes = [v["verdict"] for v in official["per_sample"].values()]
    assert m["verdicts"] == {"correct": codes.count("1"), "incorrect": codes.count("0"), "unclear": codes.count("2")}
    assert m["overall"] == pytest.approx(official["overall"])
    assert m["category"] == {k: pytest.approx(v) for k, v in official["category"].items()}
    board = official["leaderboard"]                                         # evaluation.py prints 4 decimals
    for ours, theirs in (("qAcc", "qAcc"), ("fAcc", "fAcc"), ("aAcc", "aAcc")):
        assert round(m["overall"][ours], 4) == pytest.approx(board[theirs])
    assert round(m["easy_qAcc"], 4) == pytest.approx(board["easy_qAcc"])
    assert round(m["hard_qAcc"], 4) == pytest.approx(board["hard_qAcc"])
    assert out["headline"]["value"] == pytest.approx(sum(official["overall"].values()) / 3)
    assert "tianyi-lab/HallusionBench 744007c2" in out["reference"]
    assert not any("text-only" in w for w in out["warnings"])               # the full question file was read


def test_official_without_a_judge_is_not_scored(authors_files):
    data, preds = authors_files
    out = score_files("hallusionbench", data, predictions=preds, profile="official")
    assert out["status"] == "not_scored" and out["reason"] == "needs a judge"
    assert out["headline"]["value"] is None and set(out["per_sample"].values()) == {None}
    rule = out["metrics"]["vlmevalkit_rule_based"]                           # shown only under its own name
    assert "not the authors' protocol" in rule["note"] and "overall" not in out["metrics"]
    assert any("not scored under the official profile" in w for w in out["warnings"])


def test_official_with_the_judge_down_leaves_samples_pending(authors_files):
    data, preds = authors_files
    out = score_files("hallusionbench", data, predictions=preds, profile="official",
                      judge=free_port_url() + "#model=g&retries=1&backoff=0.01")
    assert out["status"] == "not_scored" and "pending judge" in out["reason"] and out["headline"]["value"] is None


def test_verdict_reading_and_correctness_rule():
    assert [verdict_of(t) for t in ("Correct.", "incorrect", "The prediction is not correct", "unclear", "")] == \
        ["1", "0", "1", "2", "2"]        # substring tests, 'incorrect' first, as evaluate_by_chatgpt reads replies
    assert is_right("2", "VS", "0") == 1 and is_right("2", "VS", "1") == 0 and is_right("2", "VD", "0") == 0
    assert is_right("0", "VS", "0") == 0 and is_right("1", "VD", "2") == 1


def test_text_only_questions_load_without_an_image_and_vlmevalkit_leaves_them_out(authors_files):
    from unitoken_eval.harness import registry
    data, preds = authors_files
    task = registry.make_task("hallusionbench", {})
    samples = task.load(data)
    text_only = [s for s in samples if s.id.split("_")[2] == "0"]
    assert len(samples) == len(AUTHORS["questions"]) and text_only and all(s.image is None for s in text_only)
    assert task.request(text_only[0]).images == []
    out = score_files("hallusionbench", data, predictions=preds, profile="vlmevalkit")
    assert out["n"] == len(samples) - len(text_only)
    assert any(f"{len(text_only)} text-only questions left out" in w for w in out["warnings"])


def test_official_on_the_vlmevalkit_tsv_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    preds = {"VD_chart_1_0_0_0": "Yes, the middle bar is the tallest.", "VD_chart_1_0_0_1": "No.",
             "VD_chart_1_0_1_0": "yes/no", "VS_map_1_3_0_0": "No, it is a square.", "VS_map_1_3_1_0": "No"}
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in preds.items()))
    from unitoken_eval.harness import registry
    with FakeJudgeServer(lambda p, t: "incorrect" if "yes/no" in p else "correct") as srv:
        out = score_files("hallusionbench", registry.make_task("hallusionbench", {}).smoke_source(),
                          predictions=str(path), profile="official", judge=srv.url + "#model=g")
        assert any("Reference answer: Yes\n" in r["messages"][0]["content"] for r in srv.requests)
    assert out["per_sample"] == {"VD_chart_1_0_0_0": 1, "VD_chart_1_0_0_1": 1, "VD_chart_1_0_1_0": 0,
                                 "VS_map_1_3_0_0": 1, "VS_map_1_3_1_0": 1}
    assert any("no text-only questions" in w for w in out["warnings"])
    assert any("no reference answer text" in w for w in out["warnings"])
