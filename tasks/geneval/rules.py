"""GenEval's correctness rules, re-implemented from evaluation/evaluate_images.py (djghosh13/geneval @ af4902f).

Three steps, each mirroring one part of the reference:
  * :func:`keep_detections` (``evaluate_image``'s filtering loop): per class, sort by score, keep scores
    strictly above the threshold (0.9 for the ``counting`` tag, else 0.3), cap at ``max_objects`` (16), then
    greedy IoU suppression when ``max_overlap`` < 1 (off by default);
  * :func:`evaluate` (``evaluate``): include clauses (top-``count`` detections, colour, position), then
    exclude clauses;
  * :func:`relative_position` (``relative_position``): centre offset shrunk by ``position_threshold`` times
    the summed box sizes, normalised by the raw offset's length, compared with 0.5.

Colours are not computed here: each kept detection carries the colour the CLIP classifier chose for it
(``Detection.color``), so the same rules run on live detections and on a cached detections file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from unitoken_eval.tasks.common.detection import Detection, Detections

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


@dataclass(frozen=True)
class RuleOptions:
    """evaluate_images.py's ``--options`` with its defaults."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0
    position_threshold: float = 0.1

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "RuleOptions":
        return cls(
            threshold=float(options.get("threshold", cls.threshold)),
            counting_threshold=float(options.get("counting_threshold", cls.counting_threshold)),
            max_objects=int(options.get("max_objects", cls.max_objects)),
            max_overlap=float(options.get("max_overlap", cls.max_overlap)),
            position_threshold=float(options.get("position_threshold", cls.position_threshold)),
        )

    def confidence_threshold(self, tag: str) -> float:
        return self.counting_threshold if tag == "counting" else self.threshold

    def floor(self) -> float:
        """The lowest score any tag keeps: what a detections cache must hold to re-score every tag."""
        return min(self.threshold, self.counting_threshold)


def box_iou(a: list[float], b: list[float]) -> float:
    """IoU with the reference's inclusive-pixel areas ((x2 - x1 + 1) * (y2 - y1 + 1)).

    Upstream's boxes are float32 scalars under NumPy 1.23: coordinate differences are float32, the ``+ 1``
    and everything after it float64.  We reproduce that arithmetic so suppression decisions match.
    """
    f = np.float32

    def area(x1, y1, x2, y2) -> float:
        return max(float(f(x2) - f(x1)) + 1, 0) * max(float(f(y2) - f(y1)) + 1, 0)

    inter = area(max(f(a[0]), f(b[0])), max(f(a[1]), f(b[1])), min(f(a[2]), f(b[2])), min(f(a[3]), f(b[3])))
    union = area(*a[:4]) + area(*b[:4]) - inter
    return inter / union if union else 0


def keep_detections(detections: Detections, tag: str, opts: RuleOptions) -> Detections:
    """The detections the rules look at, per class, in descending score order (classes with none omitted)."""
    threshold = opts.confidence_threshold(tag)
    kept: Detections = {}
    for name, dets in detections.items():
        # Detectors hand over each class already in the reference's order (np.argsort(...)[::-1] over the
        # head's output, see detector.sort_by_class); a stable descending sort keeps that order for ties.
        order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
        # Upstream compares float32 scores with the threshold as float32 (NumPy casts the Python float to the
        # array's type): a score of exactly float32(0.3) is not above 0.3.
        order = [i for i in order if np.float32(dets[i].score) > np.float32(threshold)][: opts.max_objects]
        chosen: list[Detection] = []
        while order:
            best = order.pop(0)
            chosen.append(dets[best])
            if opts.max_overlap != 1:
                order = [i for i in order if box_iou(dets[best].box, dets[i].box) < opts.max_overlap]
        if chosen:
            kept[name] = chosen
    return kept


def relative_position(box_a: list[float], box_b: list[float], position_threshold: float = 0.1) -> set[str]:
    """Where A is relative to B ("left of", "right of", "above", "below"; y grows downwards)."""
    # float32 throughout, as upstream's mmdet boxes are (NumPy keeps float32 when mixed with Python floats)
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float32).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


class MissingColor(Exception):
    """A colour clause needs a detection whose colour was never classified."""


def evaluate(objects: Detections, metadata: dict[str, Any], opts: RuleOptions = RuleOptions(),
             classify: Optional[Callable[[str, list[Detection]], list[str]]] = None) -> tuple[bool, str]:
    """(correct, reason) for one image, as the reference's ``evaluate``.

    ``objects`` are the kept detections (:func:`keep_detections`).  Colours come from each detection's
    ``color``; ``classify(class_name, detections)`` fills in any that are missing (live scoring), and with
    neither the clause raises :class:`MissingColor`.
    """
    correct = True
    reason: list[str] = []
    matched_groups: list[Optional[list[Detection]]] = []
    for req in metadata.get("include", []):
        classname = req["class"]
        matched = True
        found = objects.get(classname, [])[: req["count"]]
        if len(found) < req["count"]:
            correct = matched = False
            reason.append(f"expected {classname}>={req['count']}, found {len(found)}")
        else:
            if "color" in req:
                colors = _colors_of(classname, found, classify)
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
                    reason.append(
                        f"expected {req['color']} {classname}>={req['count']}, found "
                        f"{colors.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    )
            if "position" in req and matched:
                expected_rel, target_group = req["position"]
                if matched_groups[target_group] is None:
                    correct = matched = False
                    reason.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found:
                        for target in matched_groups[target_group]:
                            true_rels = relative_position(obj.box, target.box, opts.position_threshold)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reason.append(
                                    f"expected {classname} {expected_rel} target, found "
                                    f"{' and '.join(sorted(true_rels))} target"
                                )
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(objects.get(classname, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {classname}<{req['count']}, found {len(objects[classname])}")
    return correct, "\n".join(reason)


def color_targets(objects: Detections, metadata: dict[str, Any]) -> dict[str, int]:
    """Class -> how many of its top detections a colour clause of this prompt looks at."""
    need: dict[str, int] = {}
    for req in metadata.get("include", []):
        if "color" in req and req["class"] in objects:
            need[req["class"]] = max(need.get(req["class"], 0), int(req["count"]))
    return need


def _colors_of(classname: str, found: list[Detection], classify) -> list[str]:
    missing = [d for d in found if d.color is None]
    if missing:
        if classify is None:
            raise MissingColor(f"no colour recorded for a '{classname}' detection that a colour clause needs")
        for det, color in zip(missing, classify(classname, missing)):
            det.color = color
    return [d.color for d in found]
