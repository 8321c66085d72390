"""MMStar through score_files: VK micro overall (report_acc @ e8e78f05) as headline; lmms-eval's l2-category
macro (mmstar_aggregate_results) in the metrics."""

import pytest

from unitoken_eval_testkit.understanding_helpers import score


def test_mmstar_micro_and_macro(tmp_path):
    preds = {"0": "triangle", "1": "**A**", "2": "middle",
             "3": "There are 3 bars, answer: C"}   # only letter C, last token -> C; answer is B
    out = score(tmp_path, "mmstar", preds)
    assert out["per_sample"] == {"0": 1, "1": 1, "2": 1, "3": 0}
    assert out["headline"]["value"] == pytest.approx(75.0)
    # l2 means: image scene 100, attribute recognition 100, numeric commonsense 50 -> 83.33
    assert out["metrics"]["l2_category_macro"] == pytest.approx(250 / 3)
    assert out["metrics"]["category"]["math"] == pytest.approx(50.0)
