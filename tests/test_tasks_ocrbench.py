"""OCRBench through score_files. Rule: OCRBench scorer as VK e8e78f05 OCRBench.evaluate (image_vqa.py)."""

from unitoken_eval_testkit.understanding_helpers import score


def test_ocrbench_points(tmp_path):
    preds = {"0": "The text says: hello world",   # lower-cased substring of 'HELLO'
             "1": "Forty-Two",                    # second ground truth, case-insensitive
             "2": "X^2 + 1",                      # handwritten math: spaces removed but case kept -> miss
             "3": "The total is 17"}              # '7' is a substring of '17': counts (upstream rule)
    out = score(tmp_path, "ocrbench", preds)
    assert out["per_sample"] == {"0": 1, "1": 1, "2": 0, "3": 1}
    assert out["headline"] == {"name": "final_score", "value": 3.0, "scale": "points_0_1000"}
    m = out["metrics"]
    assert m["Text Recognition"] == 2 and m["Doc-oriented VQA"] == 1
    assert m["Handwritten Mathematical Expression Recognition"] == 0 and m["Final Score Norm"] == 0.3
    out = score(tmp_path, "ocrbench", {"2": "x^2+1 "})
    assert out["per_sample"] == {"2": 1}


def test_ocrbench_from_hf_schema(tmp_path):
    # echo840/OCRBench columns as read by lmms-eval 75571cf ocrbench/utils.py: answer is a list, question_type
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {"question": ["what?"], "answer": [["Stop", "STOP sign"]], "dataset": ["IIIT5K"],
                                   "question_type": ["Regular Text Recognition"], "image": [(0, 0, 0)]})
    out = score(tmp_path, "ocrbench", {"0": "It says stop"}, data=str(folder))
    assert out["headline"]["value"] == 1.0 and out["metrics"]["Text Recognition"] == 1


def test_official_equals_the_authors_scoring_loop(tmp_path):
    # tests/data/ocrbench_authors_subset.json: 6 questions per type from OCRBench.json with generated answers,
    # scored by the result loop of OCRBench/example.py executed unmodified (tests/parity/ocrbench_parity.py,
    # which also compares all 1,000 questions over 5 answer sets and the per-type totals).
    import json
    from pathlib import Path

    from unitoken_eval.harness.scoring import score_files
    from parity.ocrbench_parity import write_vk_tsv

    fx = json.loads((Path(__file__).parent / "data" / "ocrbench_authors_subset.json").read_text(encoding="utf-8"))
    write_vk_tsv(fx["questions"], tmp_path / "OCRBench.tsv")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"index": str(i), "prediction": a}) + "\n"
                                              for i, a in enumerate(fx["predictions"])), encoding="utf-8")
    out = score_files("ocrbench", str(tmp_path / "OCRBench.tsv"), predictions=str(tmp_path / "p.jsonl"),
                      profile="official")
    assert [out["per_sample"][str(i)] for i in range(len(fx["questions"]))] == fx["official"]
    assert 0 < sum(fx["official"]) < len(fx["official"])
    assert out["headline"]["value"] == sum(fx["official"])
