"""MME through score_files, both profiles.
official: MME eval_tool/calculation.py parse_pred_ans on lower-cased answers + acc/acc_plus;
vlmevalkit: VK e8e78f05 MME_rating with YOrN_Extraction (vlmeval/dataset/utils/yorn.py)."""

import pytest

from tests.understanding_helpers import score

PREDS = {"0": "Yes", "1": "Not sure",                  # existence: answers Yes / No
         "2": "The answer is yes", "3": "No",          # color: Yes / No
         "4": "The answer is yes", "5": "no."}         # numerical_calculation: Yes / No


def test_mme_official(tmp_path):
    out = score(tmp_path, "mme", PREDS, profile="official")
    # 'Not sure' -> 'no' (first 4 chars); 'The answer is yes' -> 'other'
    assert out["per_sample"] == {"0": 1, "1": 1, "2": 0, "3": 1, "4": 0, "5": 1}
    sub = out["metrics"]["subtasks"]
    assert sub["existence"]["score"] == pytest.approx(200.0)
    assert sub["color"] == {"acc": 50.0, "acc_plus": 0.0, "score": 50.0}
    assert out["metrics"]["perception"] == pytest.approx(250.0)
    assert out["metrics"]["cognition"] == pytest.approx(50.0)
    assert out["headline"] == {"name": "total", "value": pytest.approx(300.0), "scale": "points_0_2800"}
    assert "existence" not in out["metrics"]["missing_subtasks"] and "OCR" in out["metrics"]["missing_subtasks"]


def test_mme_vlmevalkit(tmp_path):
    out = score(tmp_path, "mme", PREDS, profile="vlmevalkit")
    # 'Not sure' -> Unknown (wrong); 'The answer is yes' -> Yes
    assert out["per_sample"] == {"0": 1, "1": 0, "2": 1, "3": 1, "4": 1, "5": 1}
    assert out["metrics"]["subtasks"]["existence"]["score"] == pytest.approx(50.0)
    assert out["headline"]["value"] == pytest.approx(450.0)


def test_mme_pairs_share_image_key():
    from harness import registry
    task = registry.make_task("mme", {})
    s = task.load(task.smoke_source())
    assert task.request(s[0]).image_key == task.request(s[1]).image_key != task.request(s[2]).image_key
