"""T2I-CompBench++ detector rules driven with constructed detections.

Expectations are worked out by hand from upstream at Karine-Huang/T2I-CompBench@1b70949:
UniDet_eval/2D_spatial_eval.py (determine_position, the 0.25/0.25/0.5 total, the < 0.5 cut),
UniDet_eval/3D_spatial_eval.py (substring label match, depth branches), UniDet_eval/numeracy_eval.py
(calculate_iou merge, prompt parsing, 0.5 present + 0.5 exact count) and 3_in_1_eval/3_in_1.py.
"""

import math

import numpy as np
import pytest

from unitoken_eval.tasks.t2i_compbench import rules
from unitoken_eval.tasks.t2i_compbench.nouns import person_map
from unitoken_eval.tasks.t2i_compbench.rules import Det


# ------------------------------------------------------------------ 2D position
@pytest.mark.parametrize(
    "rel, b1, b2, want",
    [
        ("on the left of", (0, 0, 100, 100), (300, 0, 400, 100), 1.0),  # dx=300 > 0, no overlap
        ("on the left of", (0, 0, 100, 100), (50, 0, 150, 100), 0.3),  # iou 1/3 >= 0.1 -> 0.1 / (1/3)
        ("on the left of", (300, 0, 400, 100), (0, 0, 100, 100), 0.0),  # wrong side
        ("on the left of", (0, 0, 10, 10), (100, 200, 110, 210), 0.0),  # |dx| <= |dy|
        ("on the right of", (300, 0, 400, 100), (0, 0, 100, 100), 1.0),
        ("on the right of", (0, 0, 100, 100), (300, 0, 400, 100), 0.0),
        ("on the bottom of", (0, 300, 100, 400), (0, 0, 100, 100), 1.0),  # object 1 lower: dy < 0
        ("on the bottom of", (0, 0, 100, 100), (0, 300, 100, 400), 0.0),
        ("on the top of", (0, 0, 100, 100), (0, 300, 100, 400), 1.0),
        ("on the top of", (0, 0, 100, 100), (0, 50, 100, 150), 0.3),
        ("next to", (0, 0, 10, 10), (100, 400, 110, 410), 1.0),  # |dx| = 100 < 150
        ("next to", (0, 0, 10, 10), (300, 400, 310, 410), 150 / 400),
        ("near", (0, 0, 10, 10), (300, 400, 310, 410), 150 / 400),
        ("on side of", (0, 0, 10, 10), (149, 0, 159, 10), 1.0),
        ("on top of", (0, 0, 100, 100), (0, 300, 100, 400), 0.0),  # not one of upstream's branches
        (None, (0, 0, 100, 100), (300, 0, 400, 100), 0.0),
    ],
)
def test_determine_position_2d(rel, b1, b2, want):
    assert rules.determine_position(rel, b1, b2) == pytest.approx(want)


def test_iou_exactly_at_threshold_is_penalised():
    # iou == 0.1 is not < 0.1: the soft branch gives 0.1 / 0.1 = 1.0 anyway; just above it is below 1.
    b1, b2 = (0, 0, 100, 100), (82, 0, 182, 100)  # inter 1800, union 18200 -> iou ~0.0989 < 0.1
    assert rules.determine_position("on the left of", b1, b2) == 1.0
    b2 = (80, 0, 180, 100)  # inter 2000, union 18000 -> iou 0.111
    assert rules.determine_position("on the left of", b1, b2) == pytest.approx(0.1 / (2000 / 18000))


def test_zero_area_boxes_do_not_divide_by_zero():
    assert rules.determine_position("on the left of", (0, 0, 0, 0), (5, 0, 5, 0)) == 1.0


def test_locality_takes_first_vocab_entry_as_substring():
    assert rules.locality("a cat on the top of a dog", rules.VOCAB_2D) == "on the top of"
    assert rules.locality("a cat next to a dog near a car", rules.VOCAB_2D) == "next to"  # vocab order
    assert rules.locality("a cat nearby a dog", rules.VOCAB_2D) == "near"  # substring, as upstream
    assert rules.locality("a cat on top of a dog", rules.VOCAB_2D) == "on top of"
    assert rules.locality("a cat and a dog", rules.VOCAB_2D) is None
    assert rules.locality("a dog hidden behind a car", rules.VOCAB_3D) == "behind"


# ------------------------------------------------------------------ 2D total
def test_kept_is_strictly_above_threshold_and_score_ordered():
    dets = [Det("dog", (0, 0, 1, 1), 0.5), Det("cat", (0, 0, 1, 1), 0.6), Det("car", (0, 0, 1, 1), 0.9)]
    assert [d.label for d in rules.kept(dets)] == ["car", "cat"]


def test_spatial_2d_both_found():
    dets = [Det("dog", (0, 0, 100, 100), 0.9), Det("chair", (300, 0, 400, 100), 0.8)]
    r = rules.spatial_2d_score(dets, "dog", "chair", "on the left of")
    assert r["score"] == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    assert r["found"] == "both"


def test_spatial_2d_below_half_becomes_zero():
    dets = [Det("dog", (300, 0, 400, 100), 0.9), Det("chair", (0, 0, 100, 100), 0.8)]
    assert rules.spatial_2d_score(dets, "dog", "chair", "on the left of")["score"] == 0.0  # 0.425 -> 0
    # one object only: 0.25 * s is always < 0.5
    assert rules.spatial_2d_score(dets[:1], "dog", "chair", "on the left of")["score"] == 0.0
    assert rules.spatial_2d_score(dets[1:], "dog", "chair", "on the left of")["found"] == "obj2"
    assert rules.spatial_2d_score([], "dog", "chair", "on the left of")["found"] == "none"


def test_spatial_2d_uses_first_detection_of_label_and_exact_names():
    dets = [Det("dog", (0, 0, 100, 100), 0.95), Det("dog", (500, 0, 600, 100), 0.7),
            Det("chair", (300, 0, 400, 100), 0.6)]
    r = rules.spatial_2d_score(dets, "dog", "chair", "on the left of")
    assert r["score"] == pytest.approx(0.25 * 0.95 + 0.25 * 0.6 + 0.5)  # the first dog, left of the chair
    # 2D matches labels exactly: "glass" does not find "wine glass"
    assert rules.spatial_2d_score([Det("wine glass", (0, 0, 9, 9), 0.9)], "glass", "x", None)["found"] == "none"


def test_person_mapping():
    assert [person_map(w) for w in ("girl", "boy", "man", "woman", "men", "dog", None)] == [
        "person", "person", "person", "person", "men", "dog", None]
    dets = [Det("person", (0, 0, 100, 100), 0.9), Det("frog", (0, 300, 100, 400), 0.9)]
    r = rules.spatial_2d_score(dets, person_map("girl"), person_map("frog"), "on the top of")
    assert r["score"] == pytest.approx(0.95)


def test_complex_pair_missing_scores_zero():
    dets = [Det("cup", (0, 0, 100, 100), 0.9)]
    assert rules.spatial_2d_score(dets, None, None, "next to")["score"] == 0.0


# ------------------------------------------------------------------ 3D
def _depth_rows(rows: slice) -> np.ndarray:
    d = np.zeros((479, 479), dtype=np.float32)
    d[rows, :] = 1.0
    return d


def test_3d_front_and_behind_with_transposed_depth_indexing():
    b1, b2 = (0, 0, 100, 100), (10, 0, 110, 100)  # iou 9000 / 11000 > 0.5
    near_first_rows = _depth_rows(slice(0, 5))  # upstream reads depth[x1:x2, y1:y2]: rows by x
    assert rules.determine_position("in front of", b1, b2, near_first_rows) == 1.0
    assert rules.determine_position("behind", b1, b2, near_first_rows) == 0.0
    assert rules.determine_position("hidden", b2, b1, near_first_rows) == 1.0
    # The same difference laid out along columns is invisible to the transposed read: equal means -> 0.
    cols = np.zeros((479, 479), dtype=np.float32)
    cols[:, 0:5] = 1.0
    assert rules.determine_position("in front of", b1, b2, cols) == 0.0
    assert rules.determine_position("behind", b1, b2, cols) == 0.0


def test_3d_partial_overlap_and_no_overlap():
    d = _depth_rows(slice(0, 5))
    b1, b2 = (0, 0, 100, 100), (60, 0, 160, 100)  # inter 4000, union 16000 -> iou 0.25
    assert rules.determine_position("in front of", b1, b2, d) == pytest.approx(0.25 / 0.5)
    assert rules.determine_position("behind", b1, b2, d) == 0.0
    assert rules.determine_position("in front of", (0, 0, 100, 100), (200, 0, 300, 100), d) == 0.0  # iou 0
    # iou exactly 0.5 falls in neither branch
    b2 = (0, 0, 100, 100)
    half = (0, 0, 100, 50)  # inter 5000 / union 10000
    assert rules.determine_position("in front of", half, b2, d) == 0.0
    with pytest.raises(rules.RuleError):
        rules.determine_position("behind", b1, b2, None)


def test_3d_empty_depth_region_scores_zero():
    d = _depth_rows(slice(0, 5))
    # a box starting beyond the map's rows gives an empty slice (nan mean): no order, score 0
    assert rules.determine_position("in front of", (500, 0, 600, 100), (510, 0, 610, 100), d) == 0.0


def test_3d_substring_match_and_overwrite_quirk():
    d = _depth_rows(slice(0, 5))
    dets = [Det("dog", (0, 0, 100, 100), 0.9), Det("dog", (300, 0, 400, 100), 0.8),
            Det("chair", (10, 0, 110, 100), 0.7)]
    r = rules.spatial_3d_score(dets, "dog", "chair", "in front of", d)
    # upstream's loop overwrites obj1_pos until both are found: the SECOND dog (score 0.8, box 300..400)
    assert r["score"] == pytest.approx(0.25 * 0.8 + 0.25 * 0.7 + rules.determine_position("in front of", dets[1].box, dets[2].box, d) / 2)
    wine = [Det("wine glass", (0, 0, 100, 100), 0.9)]
    r = rules.spatial_3d_score(wine, "glass", "table", "behind", d)
    assert r["found"] == "obj1" and r["score"] == pytest.approx(0.225)  # no 0.5 cut-off in 3D
    assert rules.spatial_3d_score([], "dog", "cat", "behind", d)["score"] == 0.0
    with pytest.raises(rules.RuleError):
        rules.spatial_3d_score(wine, None, None, "behind", d)


# ------------------------------------------------------------------ numeracy
def test_same_object_uses_plus_one_areas():
    # Without upstream's +1 the containment would be 90/100 = 0.9 (not > 0.9); with it 110/121 > 0.9.
    assert rules.same_object((0, 0, 10, 10), (1, 0, 11, 10))
    assert not rules.same_object((0, 0, 10, 10), (3, 0, 13, 10))
    assert rules.same_object((0, 0, 99, 99), (5, 5, 94, 94))  # contained
    assert not rules.same_object((0, 0, 10, 10), (50, 50, 60, 60))


def test_merge_duplicates_same_label_only():
    dets = [Det("dog", (0, 0, 100, 100), 0.9), Det("dog", (1, 1, 100, 100), 0.8),
            Det("cat", (0, 0, 100, 100), 0.7), Det("dog", (200, 0, 300, 100), 0.6)]
    assert [(d.label, d.score) for d in rules.merge_duplicates(dets)] == [("dog", 0.9), ("cat", 0.7), ("dog", 0.6)]


PAIRS = [("dog", "dogs"), ("cat", "cats"), ("hot dog", "hot dogs"), ("boy", "boys"), ("apple", "apples"),
         ("sheep", "sheep"), ("wine glass", "wine glasses"), ("glass", "glasses")]


@pytest.mark.parametrize(
    "words, objs, counts",
    [
        ("two boys", ["boy"], [2]),
        ("a dog and three cats", ["dog", "cat"], [1, 3]),
        ("two hot dogs", ["hot dog"], [2]),
        ("one hot dog", ["hot dog"], [1]),
        ("eight sheep", ["sheep"], [8]),
        ("a sheep", ["sheep"], [1]),
        ("Two dogs", [], []),  # case-sensitive number words
        ("an apples", ["apple"], []),  # word_to_num('an') fails upstream: the count is dropped
    ],
)
def test_parse_numeracy(words, objs, counts):
    assert rules.parse_numeracy(words.split(), PAIRS) == (objs, counts)


def test_parse_numeracy_where_upstream_stops():
    with pytest.raises(rules.RuleError):
        rules.parse_numeracy("two dog".split(), PAIRS)  # singular after a number > 1
    with pytest.raises(rules.RuleError):
        rules.parse_numeracy("cats two".split(), PAIRS)  # number word last


def _boxes(n, label, x0=0):
    return [Det(label, (x0 + 200 * i, 0, x0 + 200 * i + 100, 100), 0.9) for i in range(n)]


def test_numeracy_score_present_and_exact_count():
    dets = _boxes(2, "dog") + _boxes(2, "cat", x0=1000)
    r = rules.numeracy_score(["dog", "cat"], [2, 3], dets)
    assert r["score"] == pytest.approx(0.5 + 0.25)  # dog present + exact, cat present only
    assert rules.numeracy_score(["dog"], [2], [])["score"] == 0.0
    # duplicates are merged before counting
    dup = _boxes(1, "dog") + [Det("dog", (2, 2, 100, 100), 0.8)]
    assert rules.numeracy_score(["dog"], [1], dup)["score"] == 1.0
    assert rules.numeracy_score(["dog"], [2], dup)["score"] == 0.5


def test_numeracy_synonyms_and_renaming():
    assert rules.numeracy_score(["boy"], [2], _boxes(2, "person"))["score"] == 1.0
    assert rules.numeracy_score(["ship"], [1], _boxes(1, "boat"))["score"] == 1.0
    # "glass" not a label: every label containing it is renamed (in place, as upstream)
    assert rules.numeracy_score(["glass"], [2], _boxes(2, "wine glass"))["score"] == 1.0
    # ... only when the word is not already a label: then "wine glass" stays and just one glass counts
    assert rules.numeracy_score(["glass"], [2], _boxes(1, "wine glass") + _boxes(1, "glass", x0=1000))["score"] == 0.5
    with pytest.raises(rules.RuleError):
        rules.numeracy_score([], [], [])
    with pytest.raises(rules.RuleError):
        rules.numeracy_score(["apple"], [], _boxes(1, "apple"))  # misaligned counts, object found


# ------------------------------------------------------------------ 3-in-1
def test_three_in_one():
    assert rules.three_in_one("spatial", 0.6, 0.8, None) == pytest.approx(0.7)
    assert rules.three_in_one("action", 0.6, None, 0.3) == pytest.approx(0.45)
    assert rules.three_in_one("spatial_action", 0.6, 0.9, 0.3) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        rules.three_in_one("other", 0.1, 0.1, 0.1)
    assert not math.isnan(rules.three_in_one("spatial", 0.0, 0.0, None))


def test_scoring_frame_is_torchvision_resize_479_max_480():
    from unitoken_eval.tasks.t2i_compbench.detectors import scoring_size

    assert scoring_size(512, 512) == (479, 479)
    assert scoring_size(1024, 1024) == (479, 479)
    assert scoring_size(64, 48) == (480, 360)  # long side capped at 480: short = int(480 * 479 / 638)
    assert scoring_size(48, 64) == (360, 480)
    assert scoring_size(479, 479) == (479, 479)


def test_depth_map_post_processing_as_upstream_png_round_trip():
    """3D_spatial_eval.py: min-max normalise, bilinear align_corners=True to the image size, 255 * d written as
    an 8-bit PNG (PIL truncates), read back, resized like the detector input, / 255."""
    from unitoken_eval.tasks.t2i_compbench import depth

    levels = depth.to_png_levels(np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32), width=3, height=3)
    assert levels.dtype == np.uint8 and levels.shape == (3, 3)
    assert levels[0, 0] == 0 and levels[2, 2] == 255
    assert levels[1, 1] == 127  # 127.5 truncated, not rounded
    assert levels[0, 1] == 42  # halfway between 0 and 85 along the top row: 42.5 -> 42
    frame = depth.in_scoring_frame(np.full((512, 640), 200, dtype=np.uint8))
    assert frame.shape == (384, 480) and frame.dtype == np.float32  # Resize(479, max_size=480): short side int(480 * 479 / 598) = 384
    assert np.allclose(frame, 200 / 255)


def test_depth_model_runs_hybrid_dpt_at_480():
    from PIL import Image

    from unitoken_eval.tasks.t2i_compbench import smoke_models

    d = smoke_models.depth()  # BiT + ViT hybrid like Intel/dpt-hybrid-midas, 384-px position grid
    maps = d.depth_maps([Image.new("RGB", (512, 512), (90, 120, 30)), Image.new("RGB", (64, 48))])
    assert [m.shape for m in maps] == [(479, 479), (360, 480)]
    assert all(m.dtype == np.float32 and 0.0 <= m.min() <= m.max() <= 1.0 for m in maps)
