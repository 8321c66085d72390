"""MMBench dev EN/CN through unitoken_eval.harness.scoring.score_files: CircularEval keyed by main index.

Rules: VK e8e78f05 mcq_circular_eval / prefetch_circular_group (vlmeval/dataset/utils/multiple_choice.py),
can_infer (vlmeval/utils/matching_util.py). Smoke rows: tasks/smoke_data/build_understanding.py (copy k of
question q at q + k*1e6; options rotated by k).
"""

import pytest

from unitoken_eval.harness import registry
from unitoken_eval.harness.types import Prediction
from unitoken_eval.harness.plugin import ScoreContext
from unitoken_eval_testkit.understanding_helpers import score

# Q0 answers per copy: A, D, C, B (circle); Q1: C, B, A, D (blue); Q2: A, B ("3").
EN = {
    "0": "A", "1000000": "circle", "2000000": "The answer is C.", "3000000": "B. circle",   # all right -> 1
    "1": "C", "1000001": "(B)", "2000001": "blue", "3000001": "答案是D。",                 # last copy unmatched -> 0
    "2": "3", "1000002": "Sorry, I cannot tell",                                          # unmatched -> 0 without judge
}


def test_mmbench_en_circular(tmp_path):
    out = score(tmp_path, "mmbench_dev_en", EN)
    assert out["per_sample"] == {"0": 1, "1": 0, "2": 0}
    assert out["headline"] == {"name": "accuracy", "value": pytest.approx(100 / 3), "scale": "percent"}
    assert out["n"] == 3
    m = out["metrics"]
    assert m["split"] == "dev" and len(m["data_sha256"]) == 64
    assert m["l2-category"]["coarse_perception"] == 100.0
    assert "MMBench" in out["reference"]


def test_mmbench_cn_chinese_options(tmp_path):
    cn = {"0": "A", "1000000": "圆形", "2000000": "C", "3000000": "（B）",   # full-width brackets: Z -> wrong
          "1": "蓝色", "1000001": "B", "2000001": "A", "3000001": "D",       # option text then letters
          "2": "A", "1000002": "B"}
    out = score(tmp_path, "mmbench_dev_cn", cn, profile="vlmevalkit")
    assert out["per_sample"] == {"0": 0, "1": 1, "2": 1}
    assert out["profile"] == "vlmevalkit"


class Judge:
    def __init__(self):
        self.calls = 0

    def complete(self, prompt):
        self.calls += 1
        return "B"


def test_judge_fallback_is_opt_in():
    task = registry.make_task("mmbench_dev_en", {})
    samples = task.load(task.smoke_source())
    preds = {k: Prediction(sample_id=k, text=v) for k, v in EN.items()}
    judge = Judge()
    recs = task.score(samples, preds, ScoreContext(profile="official", judge=judge))
    assert recs["2"]["score"] == 0 and judge.calls == 0             # judge given but not asked for
    task = registry.make_task("mmbench_dev_en", {"judge_fallback": True})
    recs = task.score(samples, preds, ScoreContext(profile="official", judge=judge))
    # copy 1000002 resolved to B (right); copy 3000001 ('答案是D。', unmatched) resolved to B (wrong, answer D)
    assert recs["2"]["score"] == 1 and recs["1"]["score"] == 0 and judge.calls == 2
    wrong = {**preds, "1000001": Prediction(sample_id="1000001", text="A"), "3000001": Prediction(sample_id="3000001", text="?")}
    judge.calls = 0
    recs = task.score(samples, wrong, ScoreContext(profile="official", judge=judge))
    assert recs["1"]["score"] == 0 and judge.calls == 1   # rule-matched wrong copy ends group 1 before its judge call


def test_request_shares_image_key_and_limit_keeps_groups():
    task = registry.make_task("mmbench_dev_en", {})
    samples = task.load(task.smoke_source(), limit=2)
    assert sorted(s.id for s in samples) == ["0", "1", "1000000", "1000001", "2000000", "2000001", "3000000", "3000001"]
    reqs = {s.id: task.request(s) for s in samples}
    assert reqs["0"].image_key == reqs["3000000"].image_key != reqs["1"].image_key
    assert reqs["1000000"].prompt == ("Question: What shape is shown in the image?\nOptions:\nA. square\nB. triangle\n"
                                      "C. star\nD. circle\nPlease select the correct answer from the options above. \n")
    assert reqs["1"].prompt.startswith("Hint: The image holds one shape.\nQuestion:")


def test_mmbench_from_hf_schema(tmp_path):
    # lmms-lab MMBench 'en' dev columns as read by lmms-eval 75571cf mmbench/en_utils.py (note 'L2-category')
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {
        "index": [5, 1000005], "question": ["Shape?", "Shape?"], "hint": [None, None],
        "A": ["circle", "square"], "B": ["square", "circle"], "C": [None, None], "D": [None, None],
        "answer": ["A", "B"], "category": ["c", "c"], "L2-category": ["l2", "l2"], "source": ["s", "s"],
        "split": ["dev", "dev"], "image": [(9, 9, 9), (9, 9, 9)]}, split="dev")
    out = score(tmp_path, "mmbench_dev_en", {"5": "circle", "1000005": "B"}, data=str(folder))
    assert out["per_sample"] == {"5": 1} and out["metrics"]["l2-category"] == {"l2": 100.0}


def test_full_size_file_scores(tmp_path):
    """A 15,000-row MMBench-style file (3,750 groups x 4 copies) goes through score_files.

    The expected hits are worked out here from the predictions' shapes, by VK e8e78f05 rules: the gold letter
    alone, the option text "circle" alone (can_infer_text), "The answer is X" (X the only letter, within the
    last five tokens -> X), and a sentence with no option letter or text (-> 'Z', wrong); a group counts only
    if all four copies are right (prefetch_circular_group).  Timing lives in bench/understanding_scoring.py.
    """
    import json

    from bench.understanding_scoring import build
    from unitoken_eval.harness.scoring import score_files

    data, pred = build(tmp_path, 15000)
    answers = {}
    for line in data.read_text().splitlines()[1:]:
        cells = line.split("\t")
        answers[cells[0]] = cells[7]
    groups: dict[int, list[bool]] = {}
    for line in pred.read_text().splitlines():
        rec = json.loads(line)
        gt, p = answers[str(rec["index"])], rec["prediction"]
        groups.setdefault(rec["index"] % 1_000_000, []).append(p in (gt, "circle", f"The answer is {gt}"))
    expected = {str(g): int(all(v)) for g, v in groups.items()}
    out = score_files("mmbench_dev_en", str(data), predictions=str(pred))
    assert out["n"] == 3750 and len(out["per_sample"]) == 3750
    assert {k: int(v) for k, v in out["per_sample"].items()} == expected
    assert out["headline"]["value"] == pytest.approx(100 * sum(expected.values()) / 3750)
    assert 0 < sum(expected.values()) < 3750


def test_smoke_builder_is_deterministic(tmp_path, monkeypatch):
    """Rebuilding the committed smoke TSVs gives identical bytes (same Pillow)."""
    from pathlib import Path

    import unitoken_eval.tasks.smoke_data.build_understanding as b

    committed = Path(b.__file__).parent / "understanding"
    monkeypatch.setattr(b, "OUT", tmp_path)
    b.main()
    built = sorted(p.name for p in tmp_path.glob("*.tsv"))
    assert len(built) == 11 and built == sorted(p.name for p in committed.glob("*.tsv"))
    for name in built:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_partial_group_scored_as_vk_but_warned(tmp_path):
    """VK e8e78f05 mcq_circular_eval groups the rows present in the predictions (data[g_index == idx]), so two of
    four copies right make the group count; we score it the same and add a warning."""
    import json

    from unitoken_eval.harness.scoring import score_files

    task = registry.make_task("mmbench_dev_en", {})
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"index": 0, "prediction": "A"}) + "\n"
                    + json.dumps({"index": 1000000, "prediction": "circle"}) + "\n")
    out = score_files("mmbench_dev_en", task.smoke_source(), predictions=str(pred), partial=True)
    assert out["per_sample"] == {"0": 1} and out["partial"]
    assert any("fewer copies" in w and "main index 0" in w for w in out["warnings"])
    full = {i: "x" for i in ("0", "1000000", "2000000", "3000000")}
    pred.write_text("".join(json.dumps({"index": int(k), "prediction": v}) + "\n" for k, v in full.items()))
    out = score_files("mmbench_dev_en", task.smoke_source(), predictions=str(pred), partial=True)
    assert out["per_sample"] == {"0": 0} and not any("fewer copies" in w for w in out["warnings"])
