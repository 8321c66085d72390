"""SEED-Bench image through score_files. Rules: VK e8e78f05 mcq_vanilla_eval + can_infer (matching_util.py)."""

import pytest

from tests.understanding_helpers import score


def test_seedbench_traps(tmp_path):
    preds = {
        "1": "A. One",                                          # letter + text
        "2": "Green",                                           # option text only -> B
        "3": "The text is at the top left, so B is wrong",      # the only letter B is among the last 5 tokens -> B (answer A)
        "4": "I cannot answer.",                                # nothing matches -> 'Z'
    }
    out = score(tmp_path, "seedbench_img", preds)
    assert out["per_sample"] == {"1": 1, "2": 1, "3": 0, "4": 0}
    assert out["headline"]["value"] == pytest.approx(50.0) and out["headline"]["scale"] == "percent"
    assert out["metrics"]["category"]["Instances Counting"] == 100.0
    assert out["metrics"]["split"] == "test"
