"""AI2D_TEST through score_files (VK e8e78f05 mcq_vanilla_eval + can_infer)."""

import pytest

from tests.understanding_helpers import score


def test_ai2d_traps(tmp_path):
    preds = {"0": "a",            # not a letter token; equals option text 'a' -> A
             "1": "a bar chart",  # option text
             "2": "D"}            # D is not an option of this row (only A, B) -> 'Z'
    out = score(tmp_path, "ai2d_test", preds, profile="vlmevalkit")
    assert out["per_sample"] == {"0": 1, "1": 1, "2": 0}
    assert out["headline"]["value"] == pytest.approx(200 / 3)
    assert "masked" in score(tmp_path, "ai2d_test", preds)["reference"]
