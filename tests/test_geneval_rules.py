"""GenEval's rules driven by constructed detections.

Expected outcomes are derived by hand from djghosh13/geneval evaluation/evaluate_images.py @ af4902f:
``evaluate_image`` (threshold / counting_threshold strict ``>``, MAX_OBJECTS cap, NMS with ``compute_iou``),
``evaluate`` (include top-``count``, colour of those only, position against every object of the target group,
exclude on the kept count) and ``relative_position`` (margin 0.1 x summed sizes, normalised by the raw offset).
"""

from __future__ import annotations

import numpy as np
import pytest

from unitoken_eval.tasks.common.detection import Detection
from unitoken_eval.tasks.geneval.rules import (MissingColor, RuleOptions, box_iou, color_targets, evaluate, keep_detections,
                                 relative_position)

OPTS = RuleOptions()


def det(score, box=(0, 0, 10, 10), color=None):
    return Detection(box=list(box), score=score, color=color)


def one(cls, count=1, **kw):
    return {"class": cls, "count": count, **kw}


# ---------------------------------------------------------------- keep_detections (evaluate_image's loop)
def test_threshold_is_strict_and_counting_uses_point_nine():
    dets = {"cat": [det(0.3), det(0.30001), det(0.9), det(0.90001)]}
    kept = keep_detections(dets, "single_object", OPTS)
    assert [d.score for d in kept["cat"]] == [0.90001, 0.9, 0.30001]  # 0.3 itself is dropped
    kept = keep_detections(dets, "counting", OPTS)
    assert [d.score for d in kept["cat"]] == [0.90001]  # 0.9 itself is dropped for the counting tag


def test_classes_with_nothing_above_threshold_disappear():
    kept = keep_detections({"cat": [det(0.2)], "dog": [det(0.5)]}, "two_object", OPTS)
    assert list(kept) == ["dog"]


def test_cap_of_sixteen_applies_after_sorting():
    dets = {"bird": [det(0.31 + i * 0.01) for i in range(20)]}
    kept = keep_detections(dets, "single_object", OPTS)["bird"]
    assert len(kept) == 16
    assert kept[0].score == pytest.approx(0.50) and kept[-1].score == pytest.approx(0.35)


def test_exclude_reads_the_capped_count():
    # 20 confident detections are capped at 16, so "fewer than 17" holds although 20 were found.
    dets = {"bird": [det(0.95) for _ in range(20)]}
    meta = {"tag": "counting", "include": [one("bird", 16)], "exclude": [one("bird", 17)]}
    kept = keep_detections(dets, "counting", OPTS)
    assert evaluate(kept, meta, OPTS) == (True, "")
    meta["exclude"] = [one("bird", 16)]
    assert evaluate(kept, meta, OPTS) == (False, "expected bird<16, found 16")


def test_nms_off_by_default_and_greedy_when_max_overlap_below_one():
    a, b, c = det(0.9, (0, 0, 99, 99)), det(0.8, (0, 0, 99, 89)), det(0.7, (200, 200, 260, 260))
    assert len(keep_detections({"cup": [a, b, c]}, "single_object", OPTS)["cup"]) == 3
    # iou(a, b) with inclusive areas = 100*90 / (100*100) = 0.9
    assert box_iou(a.box, b.box) == pytest.approx(0.9)
    kept = keep_detections({"cup": [c, b, a]}, "single_object", RuleOptions(max_overlap=0.5))["cup"]
    assert kept == [a, c]
    # suppression needs iou < max_overlap to survive: iou 0.9 is kept only above 0.9
    assert len(keep_detections({"cup": [a, b]}, "single_object", RuleOptions(max_overlap=0.9))["cup"]) == 1
    assert len(keep_detections({"cup": [a, b]}, "single_object", RuleOptions(max_overlap=0.91))["cup"]) == 2


def test_iou_of_disjoint_and_degenerate_boxes():
    assert box_iou([0, 0, 9, 9], [20, 20, 29, 29]) == 0
    assert box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1


# ---------------------------------------------------------------- include / exclude (evaluate)
def test_include_needs_count_detections():
    meta = {"tag": "counting", "include": [one("clock", 3)], "exclude": [one("clock", 4)]}
    ok, why = evaluate({"clock": [det(0.95), det(0.95)]}, meta)
    assert not ok and why == "expected clock>=3, found 2"
    assert evaluate({"clock": [det(0.95)] * 3}, meta) == (True, "")
    ok, why = evaluate({"clock": [det(0.95)] * 4}, meta)
    assert not ok and why == "expected clock<4, found 4"


def test_missing_class_fails_with_zero_found():
    meta = {"tag": "two_object", "include": [one("bench"), one("sports ball")]}
    ok, why = evaluate({"bench": [det(0.5)]}, meta)
    assert not ok and why == "expected sports ball>=1, found 0"


def test_all_failing_clauses_are_reported_in_order():
    meta = {"tag": "two_object", "include": [one("bench"), one("sports ball")]}
    ok, why = evaluate({}, meta)
    assert why == "expected bench>=1, found 0\nexpected sports ball>=1, found 0"


# ---------------------------------------------------------------- colour
def test_colour_uses_only_the_top_count_detections():
    meta = {"tag": "colors", "include": [one("car", color="red")]}
    assert evaluate({"car": [det(0.9, color="red"), det(0.8, color="blue")]}, meta) == (True, "")
    ok, why = evaluate({"car": [det(0.9, color="blue"), det(0.8, color="red")]}, meta)
    assert not ok and why == "expected red car>=1, found 0 red; and 1 blue"


def test_colour_count_must_cover_every_counted_object():
    meta = {"tag": "colors", "include": [one("car", 2, color="red")]}
    ok, why = evaluate({"car": [det(0.9, color="red"), det(0.8, color="green")]}, meta)
    assert not ok and why == "expected red car>=2, found 1 red; and 1 red, 1 green"
    assert evaluate({"car": [det(0.9, color="red"), det(0.8, color="red")]}, meta) == (True, "")


def test_colour_classifier_is_asked_only_for_top_count_and_only_when_enough_found():
    calls = []

    def classify(cls, dets):
        calls.append((cls, [d.score for d in dets]))
        return ["white"] * len(dets)

    meta = {"tag": "color_attr", "include": [one("bowl", color="white"), one("apple", color="black")]}
    ok, why = evaluate({"bowl": [det(0.9), det(0.8)]}, meta, OPTS, classify)
    assert calls == [("bowl", [0.9])]
    assert not ok and why == "expected apple>=1, found 0"
    with pytest.raises(MissingColor):
        evaluate({"bowl": [det(0.9)]}, meta)


def test_color_targets_lists_classes_with_colour_clauses_present():
    meta = {"tag": "color_attr", "include": [one("bowl", color="white"), one("apple", color="black")]}
    assert color_targets({"bowl": [det(0.9)], "cat": [det(0.9)]}, meta) == {"bowl": 1}


# ---------------------------------------------------------------- position
def test_relative_position_basic_directions_y_down():
    a, b = [0, 0, 10, 10], [100, 0, 110, 10]
    assert relative_position(a, b) == {"left of"}
    assert relative_position(b, a) == {"right of"}
    assert relative_position([0, 0, 10, 10], [0, 100, 10, 110]) == {"above"}
    assert relative_position([0, 100, 10, 110], [0, 0, 10, 10]) == {"below"}


def test_relative_position_margin_gives_no_relation():
    # offset 15 < 0.1 * (100 + 100): the revised offset is 0 on both axes
    assert relative_position([0, 0, 100, 100], [15, 0, 115, 100]) == set()
    # just outside the margin: revised dx = -(21 - 20) / 21 = -0.048 -> still no direction (|dx| <= 0.5)
    assert relative_position([0, 0, 100, 100], [21, 0, 121, 100]) == set()


def test_relative_position_diagonal_gives_both():
    # offset (-30, -30), margin 2 on each axis: revised (-28, -28) / 42.43 = -0.66 each
    assert relative_position([0, 0, 10, 10], [30, 30, 40, 40]) == {"left of", "above"}


def test_margin_shrinks_one_axis_but_norm_uses_raw_offset():
    # A: centre (5, 50), size (10, 100); B: centre (45, 80), size (10, 100). Offset (-40, -30), |offset| 50.
    # Margins: x 0.1*20 = 2, y 0.1*200 = 20 -> revised (-38, -10) -> (dx, dy) = (-0.76, -0.2).
    # Without the margin dy would be -0.6 ("above"); with it only "left of" holds.
    assert relative_position([0, 0, 10, 100], [40, 30, 50, 130]) == {"left of"}


def test_position_clause_against_every_target_object():
    meta = {"tag": "position", "include": [one("teddy bear"), one("dog", position=["right of", 0])]}
    bear = det(0.9, (0, 0, 10, 10))
    dog = det(0.9, (100, 0, 110, 10))
    assert evaluate({"teddy bear": [bear], "dog": [dog]}, meta) == (True, "")
    ok, why = evaluate({"teddy bear": [bear], "dog": [det(0.9, (0, 100, 10, 110))]}, meta)
    assert not ok and why == "expected dog right of target, found below target"
    # only the top-`count` target objects form the group: a second bear to the right does not matter
    right_bear = det(0.5, (300, 0, 310, 10))
    assert evaluate({"teddy bear": [bear, right_bear], "dog": [dog]}, meta) == (True, "")


def test_position_with_no_relation_reports_empty_relation():
    meta = {"tag": "position", "include": [one("tv"), one("vase", position=["left of", 0])]}
    ok, why = evaluate({"tv": [det(0.9, (0, 0, 100, 100))], "vase": [det(0.9, (5, 0, 105, 100))]}, meta)
    assert not ok and why == "expected vase left of target, found  target"


def test_position_without_target_reports_no_target():
    meta = {"tag": "position", "include": [one("tv"), one("vase", position=["left of", 0])]}
    ok, why = evaluate({"vase": [det(0.9)]}, meta)
    assert not ok and why == "expected tv>=1, found 0\nno target for vase to be left of"


def test_failed_colour_skips_the_position_check():
    meta = {"tag": "position", "include": [one("tv"), one("vase", color="red", position=["left of", 0])]}
    objs = {"tv": [det(0.9, (0, 0, 10, 10))], "vase": [det(0.9, (0, 100, 10, 110), color="blue")]}
    ok, why = evaluate(objs, meta)
    assert not ok and why == "expected red vase>=1, found 0 red; and 1 blue"  # no position reason added


def test_rule_options_parse_strings():
    o = RuleOptions.from_options({"threshold": "0.5", "max_objects": "3", "max_overlap": "0.7"})
    assert (o.threshold, o.counting_threshold, o.max_objects, o.max_overlap) == (0.5, 0.9, 3, 0.7)
    assert o.floor() == 0.5 and RuleOptions().floor() == 0.3


def test_ties_keep_the_detector_order():
    a, b, c = det(0.8, (0, 0, 1, 1)), det(0.8, (5, 5, 6, 6)), det(0.9)
    assert keep_detections({"cup": [a, b, c]}, "single_object", OPTS)["cup"] == [c, a, b]
    assert keep_detections({"cup": [b, a, c]}, "single_object", OPTS)["cup"] == [c, b, a]


def test_thresholds_compare_in_float32_like_numpy_did_upstream():
    # evaluate_image compares a float32 score array with the Python float threshold: NumPy casts 0.3 to
    # float32, so a detector score of exactly float32(0.3) (0.30000001192092896 as a double) is NOT above it.
    f32_03, f32_09 = float(np.float32(0.3)), float(np.float32(0.9))
    assert f32_03 > 0.3  # as a double it would pass
    dets = {"cat": [det(f32_03), det(float(np.float32(0.3000001)))]}
    assert [d.score for d in keep_detections(dets, "single_object", OPTS)["cat"]] == [float(np.float32(0.3000001))]
    assert "cat" not in keep_detections({"cat": [det(f32_09)]}, "counting", OPTS)
    assert keep_detections({"cat": [det(float(np.float32(0.9000001)))]}, "counting", OPTS)["cat"]
