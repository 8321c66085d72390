"""Scoring GenEval from a detections file (no detector), through unitoken_eval.harness.scoring.score_files and the CLI.

The detections are built per image from the prompt's metadata: satisfying every clause, or deliberately
breaking one, so the expected per-tag accuracies, Overall (mean over the six tags, summary_scores.py) and
"% correct prompts" (any image of a prompt correct) are known exactly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from unitoken_eval.harness.scoring import score_files
from unitoken_eval.harness.plugin import TaskError
from unitoken_eval_testkit.paths import SHARED_DATA

SHARED = SHARED_DATA / "geneval"
OFFICIAL = SHARED / "evaluation_metadata.jsonl"
pytestmark = pytest.mark.shared_data

PLACES = {"left of": [20, 200, 60, 240], "right of": [380, 200, 420, 240], "above": [200, 20, 240, 60],
          "below": [200, 380, 240, 420]}
CENTRE = [200, 200, 240, 240]


def satisfying(meta):
    dets = {}
    for req in meta["include"]:
        box = PLACES[req["position"][0]] if "position" in req else CENTRE
        dets[req["class"]] = [{"box": box, "score": 0.95, "color": req.get("color")} for _ in range(req["count"])]
    return dets


def breaking(meta):
    """Fail the prompt's own kind of clause (the one its tag tests)."""
    dets = satisfying(meta)
    tag, inc = meta["tag"], meta["include"]
    if tag == "counting":
        dets[inc[0]["class"]].append({"box": CENTRE, "score": 0.95, "color": None})  # one too many
    elif tag in ("colors", "color_attr"):
        wrong = "black" if inc[-1]["color"] != "black" else "white"
        dets[inc[-1]["class"]][0]["color"] = wrong
    elif tag == "position":
        dets[inc[1]["class"]][0]["box"] = CENTRE  # on top of the target: no relation
    else:
        dets[inc[-1]["class"]][0]["score"] = 0.3  # not strictly above the threshold
    return dets


def build(tmp_path, broken):
    """2,212 (empty) image files in GenEval's layout and a detections file; ``broken(index, n)`` picks failures."""
    images = tmp_path / "images"
    metas = [json.loads(line) for line in OFFICIAL.read_text().splitlines()]
    lines = []
    for i, meta in enumerate(metas):
        d = images / f"{i:05d}" / "samples"
        d.mkdir(parents=True)
        (d.parent / "metadata.jsonl").write_text(json.dumps(meta))
        for n in range(4):
            (d / f"{n:05d}.png").write_bytes(b"")
            dets = breaking(meta) if broken(i, n, meta) else satisfying(meta)
            lines.append(json.dumps({"filename": f"{i:05d}/samples/{n:05d}.png", "detections": dets}))
    det_file = tmp_path / "detections.jsonl"
    det_file.write_text("\n".join(lines) + "\n")
    return images, det_file, metas


def expected(metas, broken):
    per_tag, per_prompt = defaultdict(list), []
    for i, meta in enumerate(metas):
        ok = [not broken(i, n, meta) for n in range(4)]
        per_tag[meta["tag"]] += ok
        per_prompt.append(any(ok))
    tags = {t: sum(v) / len(v) for t, v in per_tag.items()}
    return tags, sum(tags.values()) / len(tags), sum(per_prompt) / len(per_prompt)


def test_every_tag_scored_from_detections_matches_hand_computed_summary(tmp_path):
    # image 0 of every prompt broken; all four images broken for every 5th prompt; counting untouched
    def broken(i, n, meta):
        return meta["tag"] != "counting" and (n == 0 or i % 5 == 0)

    images, det_file, metas = build(tmp_path, broken)
    out = score_files("geneval", str(OFFICIAL), images=str(images), detections=str(det_file))
    tags, overall, prompts_ok = expected(metas, broken)
    assert out["status"] == "scored"
    assert out["headline"] == {"name": "overall", "value": pytest.approx(overall), "scale": "fraction"}
    for tag, acc in tags.items():
        assert out["metrics"][tag] == pytest.approx(acc)
    assert out["metrics"]["counting"] == 1.0 and out["metrics"]["single_object"] < 0.75
    assert out["metrics"]["correct_prompts"] == pytest.approx(prompts_ok)
    assert out["n"] == 2212 and len(out["per_sample"]) == 2212
    assert out["per_sample"]["00005/samples/00001.png"] == 0.0  # prompt 5: all broken
    assert out["per_sample"]["00001/samples/00001.png"] == 1.0
    assert out["metrics"]["data_sha256"] == "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
    # the official results file next to the images, readable by summary_scores.py (one record per image)
    rows = [json.loads(x) for x in (images / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2212 and set(rows[0]) == {"filename", "tag", "prompt", "correct", "reason", "metadata",
                                                  "details"}
    by_name = {r["filename"]: r for r in rows}
    r = by_name["00000/samples/00000.png"]
    assert r["correct"] is False and r["reason"] == "expected bench>=1, found 0"
    assert json.loads(r["metadata"])["prompt"] == "a photo of a bench"


def test_breaking_each_tag_fails_for_its_own_reason(tmp_path):
    images, det_file, metas = build(tmp_path, lambda i, n, meta: n == 0)
    score_files("geneval", str(OFFICIAL), images=str(images), detections=str(det_file))
    rows = {json.loads(x)["filename"]: json.loads(x) for x in (images / "results.jsonl").read_text().splitlines()}
    first = {}
    for i, meta in enumerate(metas):
        first.setdefault(meta["tag"], i)
    reasons = {tag: rows[f"{i:05d}/samples/00000.png"]["reason"] for tag, i in first.items()}
    assert reasons["counting"].startswith("expected clock<3, found 3")
    assert "found 0 " in reasons["colors"] and "found 0 " in reasons["color_attr"]
    assert reasons["position"].endswith("found  target")
    assert reasons["single_object"] == "expected bench>=1, found 0"
    assert all(rows[f"{i:05d}/samples/00001.png"]["correct"] for i in first.values())


def test_cli_prints_the_score_json(tmp_path, capsys):
    from unitoken_eval.harness.cli import main

    images, det_file, _ = build(tmp_path, lambda i, n, meta: False)
    rc = main(["score", "--task", "geneval", "--data", str(OFFICIAL), "--images", str(images),
               "--detections", str(det_file), "--format", "json"])
    assert rc in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert out["headline"] == {"name": "overall", "value": 1.0, "scale": "fraction"}
    assert out["metrics"]["correct_images"] == 1.0 and out["task"] == "geneval"


def test_without_detector_or_detections_it_is_not_scored_never_zero(tmp_path, monkeypatch):
    monkeypatch.delenv("UNITOKEN_GENEVAL_DETECTOR", raising=False)
    images, _, _ = build(tmp_path, lambda i, n, meta: False)
    out = score_files("geneval", str(OFFICIAL), images=str(images))
    assert out["status"] == "not_scored" and out["headline"]["value"] is None
    assert "needs the GenEval detector" in out["reason"] and "c9d0c4f2" in out["reason"]
    assert set(out["per_sample"].values()) == {None}


def test_detections_file_errors_name_file_and_line(tmp_path):
    images, det_file, _ = build(tmp_path, lambda i, n, meta: False)
    lines = det_file.read_text().splitlines()
    bad = json.loads(lines[6])
    bad["detections"] = {"automobile": [{"box": [0, 0, 1, 1], "score": 0.9}]}
    det_file.write_text("\n".join(lines[:6] + [json.dumps(bad)] + lines[7:]) + "\n")
    with pytest.raises(TaskError, match=r"detections.jsonl:7: 'automobile' is not one of GenEval's 80"):
        score_files("geneval", str(OFFICIAL), images=str(images), detections=str(det_file))
    det_file.write_text("\n".join(lines[:100]) + "\n")
    with pytest.raises(TaskError, match=r"no detections for 2112 images \(first: 00025/samples/00000.png\)"):
        score_files("geneval", str(OFFICIAL), images=str(images), detections=str(det_file))


def test_colour_clause_without_recorded_colour_is_an_error(tmp_path):
    images, det_file, metas = build(tmp_path, lambda i, n, meta: False)
    idx = next(i for i, m in enumerate(metas) if m["tag"] == "colors")
    lines = det_file.read_text().splitlines()
    obj = json.loads(lines[idx * 4])
    for items in obj["detections"].values():
        for it in items:
            it["color"] = None
    lines[idx * 4] = json.dumps(obj)
    det_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskError, match=rf"{idx:05d}/samples/00000.png: no colour recorded"):
        score_files("geneval", str(OFFICIAL), images=str(images), detections=str(det_file))
