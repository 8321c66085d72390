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
    out = score(tmp_path, "hallusionbench", preds)
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
    from harness import registry
    task = registry.make_task("hallusionbench", {})
    samples = task.load(str(folder))
    assert [s.id for s in samples] == ["VD_chart_1_1_0_0", "VD_chart_1_1_1_0"]   # text-only row dropped
    assert [s.fields["answer"] for s in samples] == ["Yes", "No"]
    out = score(tmp_path, "hallusionbench", {"VD_chart_1_1_0_0": "yes", "VD_chart_1_1_1_0": "yes"}, data=str(folder))
    assert out["metrics"]["overall"] == {"aAcc": 50.0, "fAcc": 50.0, "qAcc": 0.0}
    assert out["metrics"]["data_sha256"] is None
