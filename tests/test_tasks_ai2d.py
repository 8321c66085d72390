"""AI2D_TEST through score_files (VK e8e78f05 mcq_vanilla_eval + can_infer)."""

import pytest

from unitoken_eval_testkit.understanding_helpers import score


def test_ai2d_traps(tmp_path):
    preds = {"0": "a",            # not a letter token; equals option text 'a' -> A
             "1": "a bar chart",  # option text
             "2": "D"}            # D is not an option of this row (only A, B) -> 'Z'
    out = score(tmp_path, "ai2d_test", preds, profile="vlmevalkit")
    assert out["per_sample"] == {"0": 1, "1": 1, "2": 0}
    assert out["headline"]["value"] == pytest.approx(200 / 3)
    assert "masked" in score(tmp_path, "ai2d_test", preds)["reference"]


def test_ai2d_from_hf_schema(tmp_path):
    # lmms-lab ai2d columns as read by lmms-eval 75571cf ai2d/utils.py: options list, answer = option number
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {"question": ["Which stage?", "Which part?"],
                                   "options": [["egg", "larva", "pupa", "adult"], ["leaf", "root"]],
                                   "answer": ["2", "1"], "image": [(5, 5, 5), (6, 6, 6)]})
    out = score(tmp_path, "ai2d_test", {"0": "C", "1": "leaf"}, data=str(folder))
    assert out["per_sample"] == {"0": 1, "1": 0}


def test_ai2d_variant_option(tmp_path, monkeypatch):
    from unitoken_eval.harness import registry
    from unitoken_eval.harness.plugin import TaskError
    monkeypatch.setenv("LMUData", str(tmp_path))
    task = registry.make_task("ai2d_test", {"variant": "no_mask"})
    assert task.describe_sources()[0]["location"].endswith("AI2D_TEST_NO_MASK.tsv")
    with pytest.raises(TaskError, match="AI2D_TEST_NO_MASK.tsv does not exist"):
        task.load(None)
    with pytest.raises(TaskError, match="variant"):
        registry.make_task("ai2d_test", {"variant": "blurred"})
    assert score(tmp_path, "ai2d_test", {"0": "A"})["metrics"]["variant"] == "masked"
