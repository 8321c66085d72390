"""The detector-based scoring rules of T2I-CompBench++ (2D spatial, 3D spatial, numeracy, complex 3-in-1).

Pure functions over constructed detections so tests can drive every branch.  Each rule follows upstream's
UniDet_eval scripts at commit 1b70949 (2D_spatial_eval.py, 3D_spatial_eval.py, numeracy_eval.py) and
3_in_1_eval/3_in_1.py, including their quirks (noted where they matter).  Where upstream would crash (no noun
in a prompt, a zero-area union) we raise :class:`RuleError` or take the stated safe value instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

SCORE_THRESHOLD = 0.5  # UniDet's --confidence-threshold (detectron2 keeps scores strictly above it)
IOU_THRESHOLD = 0.1
DISTANCE_THRESHOLD = 150  # pixels of the 479-px detection frame (see detectors.scoring_size)
IOU_THRESHOLD_3D = 0.5
VOCAB_2D = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of",
            "on the top of", "on top of")
VOCAB_3D = ("in front of", "behind", "hidden")
NUMBER_WORDS = ("a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight")
# word2number.w2n.word_to_num on NUMBER_WORDS: 'a'/'an' raise (upstream then appends no count).
_W2N = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
NUMERACY_SYNONYMS = {"boy": "person", "girl": "person", "man": "person", "woman": "person", "ship": "boat",
                     "telivision": "tv", "goldfish": "fish", "painting": "picture"}


class RuleError(Exception):
    """A prompt the official rule cannot score (upstream's script would stop with an exception)."""


@dataclass(frozen=True)
class Det:
    """One detection in the scoring frame: label as the detector names it, box x1, y1, x2, y2, score."""

    label: str
    box: tuple[float, float, float, float]
    score: float


def kept(dets: Sequence[Det], threshold: float = SCORE_THRESHOLD) -> list[Det]:
    """Detections above the confidence threshold, highest score first (detectron2's output order)."""
    return sorted((d for d in dets if d.score > threshold), key=lambda d: -d.score)


def locality(prompt: str, vocab: Sequence[str]) -> Optional[str]:
    """The first relation of ``vocab`` (in vocab order) found anywhere in the prompt as a substring."""
    for word in vocab:
        if word in prompt:
            return word
    return None


def _iou(b1, b2) -> float:
    x_overlap = max(0, min(b1[2], b2[2]) - max(b1[0], b2[0]))
    y_overlap = max(0, min(b1[3], b2[3]) - max(b1[1], b2[1]))
    inter = x_overlap * y_overlap
    union = (b1[2] - b1[0]) * (b1[3] - b1[1]) + (b2[2] - b2[0]) * (b2[3] - b2[1]) - inter
    # Upstream divides unguarded; two zero-area boxes would stop its run. They do not overlap: IoU 0.
    return inter / union if union > 0 else 0.0


def _mean_depth(depth: np.ndarray, box) -> float:
    # Upstream indexes depth[x_min:x_max, y_min:y_max] on an H x W map (rows by x): kept as it is.
    region = depth[int(box[0]) : int(box[2]), int(box[1]) : int(box[3])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.mean(region, dtype=np.float32)) if region.size else math.nan


def determine_position(rel: Optional[str], box1, box2, depth: Optional[np.ndarray] = None) -> float:
    """Soft position score of object 1 (``box1``) relative to object 2 (``box2``), in [0, 1]."""
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx = c2[0] - c1[0]
    dy = c2[1] - c1[1]
    iou = _iou(box1, box2)
    score = 0.0
    if rel in ("next to", "on side of", "near"):
        if abs(dx) < DISTANCE_THRESHOLD or abs(dy) < DISTANCE_THRESHOLD:
            score = 1.0
        else:
            score = DISTANCE_THRESHOLD / max(abs(dx), abs(dy))
    elif rel in ("on the right of", "on the left of"):
        ok = dx < 0 if rel == "on the right of" else dx > 0
        if ok and abs(dx) > abs(dy):
            score = 1.0 if iou < IOU_THRESHOLD else IOU_THRESHOLD / iou
    elif rel in ("on the bottom of", "on the top of"):
        ok = dy < 0 if rel == "on the bottom of" else dy > 0
        if ok and abs(dy) > abs(dx):
            score = 1.0 if iou < IOU_THRESHOLD else IOU_THRESHOLD / iou
    elif rel in ("in front of", "behind", "hidden"):
        if depth is None:
            raise RuleError(f"relation {rel!r} needs a depth map")
        diff = _mean_depth(depth, box1) - _mean_depth(depth, box2)
        # Depth maps are MiDaS inverse depth: larger is nearer, so "in front of" wants A > B.
        right_order = diff > 0 if rel == "in front of" else diff < 0
        if iou > IOU_THRESHOLD_3D:
            score = 1.0 if right_order else 0.0
        elif 0 < iou < IOU_THRESHOLD_3D:
            score = iou / IOU_THRESHOLD_3D if right_order else 0.0
    # "on top of" (without "the") and no relation at all score 0, as upstream's final else.
    return score


def spatial_2d_score(dets: Sequence[Det], obj1: Optional[str], obj2: Optional[str], rel: Optional[str]) -> dict:
    """2D_spatial_eval.py: 0.25 * s1 + 0.25 * s2 + position / 2 with the first detection of each label
    (labels matched exactly); one object only counts 0.25 * s; totals below 0.5 become 0."""
    labels = [d.label for d in dets]
    if obj1 in labels and obj2 in labels:
        d1, d2 = dets[labels.index(obj1)], dets[labels.index(obj2)]
        position = determine_position(rel, d1.box, d2.box)
        score = 0.25 * d1.score + 0.25 * d2.score
        score += position / 2
        found = "both"
    elif obj1 in labels:
        score, position, found = 0.25 * dets[labels.index(obj1)].score, None, "obj1"
    elif obj2 in labels:
        score, position, found = 0.25 * dets[labels.index(obj2)].score, None, "obj2"
    else:
        score, position, found = 0.0, None, "none"
    if score < 0.5:
        score = 0.0
    return {"score": score, "obj1": obj1, "obj2": obj2, "relation": rel, "found": found, "position": position}


def _substring_positions(labels: list[str], obj1: str, obj2: str) -> tuple[Optional[int], Optional[int]]:
    # 3D_spatial_eval.py's loop: each index whose label contains the word overwrites the position until both
    # are set (so with [A, A, B] object A is taken at index 1, not 0).
    p1 = p2 = None
    for i, lab in enumerate(labels):
        if obj1 in lab:
            p1 = i
        if obj2 in lab:
            p2 = i
        if p1 is not None and p2 is not None:
            break
    return p1, p2


def spatial_3d_score(dets: Sequence[Det], obj1: Optional[str], obj2: Optional[str], rel: Optional[str],
                     depth: np.ndarray) -> dict:
    """3D_spatial_eval.py: labels matched as substrings, the same 0.25/0.25/0.5 weighting, no 0.5 cut-off."""
    if obj1 is None or obj2 is None:
        raise RuleError("the prompt has no NOUN for the detector to look for")
    labels = [d.label for d in dets]
    joined = " ".join(labels)
    position = None
    if obj1 in joined and obj2 in joined:
        p1, p2 = _substring_positions(labels, obj1, obj2)
        if p1 is None or p2 is None:  # a match across two labels: upstream would fail on a None index
            return {"score": 0.0, "obj1": obj1, "obj2": obj2, "relation": rel, "found": "none", "position": None}
        position = determine_position(rel, dets[p1].box, dets[p2].box, depth)
        score = 0.25 * dets[p1].score + 0.25 * dets[p2].score
        score += position / 2
        found = "both"
    elif obj1 in joined:
        p1 = next(i for i, lab in enumerate(labels) if obj1 in lab)
        score, found = 0.25 * dets[p1].score, "obj1"
    elif obj2 in joined:
        p2 = next(i for i, lab in enumerate(labels) if obj2 in lab)
        score, found = 0.25 * dets[p2].score, "obj2"
    else:
        score, found = 0.0, "none"
    return {"score": score, "obj1": obj1, "obj2": obj2, "relation": rel, "found": found, "position": position}


# ---------------------------------------------------------------- numeracy
def same_object(b1, b2) -> bool:
    """numeracy_eval.py calculate_iou: +1-pixel areas; IoU > 0.9 or either box > 0.9 inside the other."""
    ix = max(0, min(b1[2], b2[2]) - max(b1[0], b2[0]) + 1)
    iy = max(0, min(b1[3], b2[3]) - max(b1[1], b2[1]) + 1)
    inter = ix * iy
    a1 = (b1[2] - b1[0] + 1) * (b1[3] - b1[1] + 1)
    a2 = (b2[2] - b2[0] + 1) * (b2[3] - b2[1] + 1)
    iou = inter / float(a1 + a2 - inter)
    return iou > 0.9 or inter / float(a1) > 0.9 or inter / float(a2) > 0.9


def merge_duplicates(dets: Sequence[Det]) -> list[Det]:
    """Drop a detection when an earlier kept one has the same label and is the same object (same_object)."""
    out: list[Det] = []
    for d in dets:
        if not any(d.label == e.label and same_object(d.box, e.box) for e in out):
            out.append(d)
    return out


def parse_numeracy(words: Sequence[str], pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[int]]:
    """numeracy_eval.py's reading of a prompt (spaCy token texts) into objects and their counts.

    A number word (case-sensitive, so a capitalised "Two" is not one) followed by a known object, one word
    or two, in singular or plural.  Upstream drops the count when word_to_num fails ("a" before a plural),
    which misaligns objects and counts; that is kept, and a count then missing for a found object raises.
    """
    singular = [s for s, _ in pairs]
    plural = [p for _, p in pairs]
    objs: list[str] = []
    counts: list[int] = []
    n = len(words)
    for i, w in enumerate(words):
        if w not in NUMBER_WORDS:
            continue
        bigram = words[i + 1] + " " + words[i + 2] if i < n - 2 else None
        if bigram is not None and (bigram in singular or bigram in plural):
            if bigram in plural and w not in ("a", "an", "one"):
                objs.append(singular[plural.index(bigram)])
                if w in _W2N:
                    counts.append(_W2N[w])
            else:
                counts.append(1)
                objs.append(bigram)
            continue
        if i + 1 >= n:
            raise RuleError(f"number word {w!r} ends the prompt (upstream reads past the last token)")
        nxt = words[i + 1]
        if nxt in singular or nxt in plural:
            if nxt in singular and w in ("a", "an", "one"):
                counts.append(1)
                objs.append(nxt)
            else:
                if nxt not in plural:
                    raise RuleError(f"{w!r} {nxt!r}: a singular object after a number above one")
                objs.append(singular[plural.index(nxt)])
                if w in _W2N:
                    counts.append(_W2N[w])
    return objs, counts


def numeracy_score(objs: Sequence[str], counts: Sequence[int], dets: Sequence[Det]) -> dict:
    """Per object (weight 1/len): 0.5 if its label is detected, another 0.5 if the merged count is exact."""
    if not objs:
        raise RuleError("no counted object found in the prompt")
    labels = [d.label for d in merge_duplicates(dets)]
    weight = 1.0 / len(objs)
    score = 0.0
    per_object = []
    for i, obj in enumerate(objs):
        obj = NUMERACY_SYNONYMS.get(obj, obj)
        if obj not in labels:
            # Upstream renames every label that contains the word (e.g. "wine glass" -> "glass"), in place.
            labels = [obj if obj in lab else lab for lab in labels]
        n_det = labels.count(obj)
        if obj in labels:
            score += 0.5 * weight
            if i >= len(counts):
                raise RuleError("object and count lists are misaligned (a count word was not a number)")
            if n_det == counts[i]:
                score += 0.5 * weight
        per_object.append({"object": obj, "want": counts[i] if i < len(counts) else None, "detected": n_det})
    return {"score": score, "objects": per_object}


# ---------------------------------------------------------------- complex (3-in-1)
def three_in_one(kind: str, blip: float, spatial: Optional[float], clip: Optional[float]) -> float:
    """3_in_1.py: spatial prompts (BLIP + 2D)/2, action prompts (BLIP + CLIP)/2, others the mean of three."""
    if kind == "spatial":
        return (spatial + blip) * 0.5
    if kind == "action":
        return (clip + blip) * 0.5
    if kind == "spatial_action":
        return (blip + spatial + clip) / 3
    raise ValueError(f"unknown complex kind {kind!r}")
