"""MME through score_files, both profiles.
official: MME eval_tool/calculation.py parse_pred_ans on lower-cased answers + acc/acc_plus;
vlmevalkit: VK e8e78f05 MME_rating with YOrN_Extraction (vlmeval/dataset/utils/yorn.py)."""

import pytest

from unitoken_eval_testkit.understanding_helpers import score

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
    from unitoken_eval.harness import registry
    task = registry.make_task("mme", {})
    s = task.load(task.smoke_source())
    assert task.request(s[0]).image_key == task.request(s[1]).image_key != task.request(s[2]).image_key


def test_mme_from_hf_schema_pairs_by_question_id(tmp_path):
    # lmms-lab MME columns as read by lmms-eval 75571cf mme/utils.py: question_id (image file), question, answer, category
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {
        "question_id": ["code_reasoning/0020.png"] * 2 + ["OCR/1.jpg"] * 2,
        "question": ["q1", "q2", "q3", "q4"], "answer": ["Yes", "No", "Yes", "No"],
        "category": ["code_reasoning"] * 2 + ["OCR"] * 2, "image": [(1, 1, 1)] * 4})
    out = score(tmp_path, "mme", {"0": "yes", "1": "no", "2": "yes", "3": "yes"}, data=str(folder))
    sub = out["metrics"]["subtasks"]
    assert sub["code_reasoning"]["score"] == 200.0 and sub["OCR"] == {"acc": 50.0, "acc_plus": 0.0, "score": 50.0}
    assert out["metrics"]["cognition"] == 200.0 and out["metrics"]["perception"] == 50.0


def test_prompt_suffix_option():
    from unitoken_eval.harness import registry
    task = registry.make_task("mme", {"prompt_suffix": "\nAnswer the question using a single word or phrase."})
    s = task.load(task.smoke_source())[0]
    assert task.request(s).prompt == ("Is there a circle in this image? Please answer yes or no.\n"
                                      "Answer the question using a single word or phrase.")


def test_official_equals_the_authors_eval_tool_on_their_lavin_answers(tmp_path):
    # tests/data/mme_lavin_subset.json: the first 4 images of every sub-task from the LaVIN answers that MME's
    # authors ship in tools/eval_tool.zip, with what their calculation.py (run unmodified by
    # tests/parity/mme_parity.py, which also checks the full 2,374 answers) computed from them.
    import json
    from pathlib import Path

    from unitoken_eval.harness.scoring import score_files
    from parity.mme_parity import SUBTASKS, write_vk_tsv

    fx = json.loads((Path(__file__).parent / "data" / "mme_lavin_subset.json").read_text(encoding="utf-8"))
    preds = write_vk_tsv(fx["rows"], tmp_path / "MME.tsv")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in preds.items()))
    out = score_files("mme", str(tmp_path / "MME.tsv"), predictions=str(tmp_path / "p.jsonl"), profile="official")
    theirs = fx["official"]
    assert [out["per_sample"][str(i)] for i in range(len(fx["rows"]))] == theirs["per_sample"]
    m = out["metrics"]
    assert {t: m["subtasks"][t]["score"] for t in SUBTASKS} == {t: pytest.approx(theirs["scores"][t]) for t in SUBTASKS}
    assert m["perception"] == pytest.approx(theirs["scores"]["perception"])
    assert m["cognition"] == pytest.approx(theirs["scores"]["cognition"])
