"""The NumPy 1.23 argsort GenEval's tie order depends on, checked against outputs recorded under NumPy 1.23.5.

tests/data/geneval_numpy123_argsort.json was written by running ``np.argsort`` in a NumPy 1.23.5 environment
(the version GenEval's environment.yml pins) on score arrays full of ties.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unitoken_eval.tasks.common.detection import sort_by_class
from unitoken_eval.tasks.common.detection.legacy_sort import argsort_numpy123

CASES = json.loads((Path(__file__).parent / "data" / "geneval_numpy123_argsort.json").read_text())


def test_matches_numpy_123_on_recorded_arrays_with_ties():
    assert CASES["numpy"].startswith("1.23")
    for case in CASES["cases"]:
        assert argsort_numpy123(case["scores"]) == case["argsort"], len(case["scores"])


def test_sorts_any_input_ascending():
    rng = np.random.RandomState(0)
    for n in (0, 1, 5, 16, 17, 50, 333):
        v = rng.choice([0.3, 0.5, 0.9], size=n).astype(np.float32)
        order = argsort_numpy123(v.tolist())
        assert sorted(order) == list(range(n)) and np.all(np.diff(v[order]) >= 0)


def test_per_class_order_follows_numpy_123_ties():
    big = next(c for c in CASES["cases"] if len(c["scores"]) == 100)
    n = len(big["scores"])
    out = sort_by_class(np.zeros(n, int), np.array(big["scores"], np.float32), np.arange(4 * n).reshape(n, 4), None)
    # the box's first coordinate encodes the row index, so the emitted order can be read back
    assert [int(d.box[0]) // 4 for d in out["person"]] == big["argsort"][::-1]


def test_equal_scores_put_the_later_detection_first_and_flip_the_verdict():
    # Two cups from the head with one float32 score: evaluate_images.py's np.argsort(scores)[::-1] takes the
    # later one (blue) as the most confident, so "a red cup" fails; taking the earlier one would pass it.
    from unitoken_eval.tasks.geneval.rules import RuleOptions, evaluate, keep_detections
    from unitoken_eval.tasks.common.detection import CLASS_NAMES

    cup = CLASS_NAMES.index("cup")
    dets = sort_by_class(np.array([cup, cup]), np.array([0.8, 0.8], np.float32),
                         np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float64), None)
    for d in dets["cup"]:
        d.color = "red" if d.box[0] == 0 else "blue"   # the earlier-listed cup is the red one
    assert [d.color for d in dets["cup"]] == ["blue", "red"]
    kept = keep_detections(dets, "color", RuleOptions())
    meta = {"tag": "color", "include": [{"class": "cup", "count": 1, "color": "red"}]}
    assert evaluate(kept, meta) == (False, "expected red cup>=1, found 0 red; and 1 blue")
