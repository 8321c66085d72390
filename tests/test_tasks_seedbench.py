"""SEED-Bench image through score_files. Rules: VK e8e78f05 mcq_vanilla_eval + can_infer (matching_util.py)."""

import pytest

from unitoken_eval_testkit.understanding_helpers import score


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


def test_seedbench_from_hf_schema_drops_video(tmp_path):
    # lmms-lab SEED-Bench columns as read by lmms-eval 75571cf seedbench/utils.py (image is a list there)
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {
        "question_id": ["101", "v7"], "question": ["Colour?", "Action?"], "choice_a": ["red", "run"],
        "choice_b": ["blue", "sit"], "choice_c": ["green", "jump"], "choice_d": ["black", "walk"],
        "answer": ["B", "A"], "data_type": ["image", "video"], "image": [(0, 0, 255), (0, 0, 0)]})
    out = score(tmp_path, "seedbench_img", {"101": "blue"}, data=str(folder))
    assert out["per_sample"] == {"101": 1} and out["n"] == 1
    from unitoken_eval.harness import registry
    assert [s.id for s in registry.make_task("seedbench_img", {}).load(str(folder))] == ["101"]


def test_fetch_verifies_md5_and_data_command_sees_it(tmp_path, monkeypatch):
    from unitoken_eval.harness import registry
    from unitoken_eval.tasks.common import vk_catalog
    from unitoken_eval_testkit.understanding_helpers import SMOKE
    src = SMOKE / "SEEDBench_IMG.tsv"
    monkeypatch.setitem(vk_catalog.CATALOG, "SEEDBench_IMG",
                        vk_catalog.VKData("SEEDBench_IMG", src.as_uri(), vk_catalog.md5_file(src)))
    monkeypatch.setenv("LMUData", str(tmp_path / "lmu"))
    task = registry.make_task("seedbench_img", {})
    assert task.describe_sources()[0]["present"] is False
    path = task.fetch()
    assert path == tmp_path / "lmu" / "SEEDBench_IMG.tsv" and task.describe_sources()[0]["present"] is True
    assert len(task.load(None)) == 4          # default location is $LMUData/SEEDBench_IMG.tsv
