"""GenEval end to end through the runner, offline: smoke prompts, tiny random detector and CLIP, resume from cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import unitoken_eval.tasks.common.detection.loading as detector_mod
from unitoken_eval.harness.config import load_config
from unitoken_eval.harness.manifest import start_run
from unitoken_eval.harness.runner import Runner
from unitoken_eval.harness.plugin import ModelAdapter

SMOKE_YAML = Path(__file__).resolve().parents[1] / "tasks" / "suites" / "smoke.yaml"


class Painter(ModelAdapter):
    """Draws seeded noise; enough for the detector and colour crops to run on real pixels."""

    id = "painter"
    capabilities = frozenset({"generate"})

    def generate(self, requests):
        out = []
        for r in requests:
            rs = np.random.RandomState(r.seed % 2**31)
            out.append([Image.fromarray((rs.rand(96, 128, 3) * 255).astype("uint8")) for _ in range(r.n_images)])
        return out

    def batch_size(self, kind):
        return 3


def _smoke_options():
    return yaml.safe_load(SMOKE_YAML.read_text())["options"]["geneval"]


def test_smoke_suite_configures_the_random_smoke_models():
    assert _smoke_options() == {"detector": "smoke", "color_model": "smoke"}


def test_runner_generates_in_official_layout_and_scores_with_smoke_models(tmp_path, monkeypatch):
    cfg = load_config({"model": "painter", "tasks": ["geneval"], "smoke": True, "options": {"geneval": _smoke_options()}})
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    outcome = Runner(cfg, store, adapter_factory=Painter, progress=False).run()
    assert not outcome.failed
    r = outcome.results["geneval"]
    assert r.status == "scored" and r.headline.name == "overall" and r.headline.scale == "fraction"
    assert r.n == 24 and r.metrics["n_prompts"] == 6
    assert set(r.metrics) >= {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    assert r.headline.value == pytest.approx(np.mean([r.metrics[t] for t in (
        "single_object", "two_object", "counting", "colors", "position", "color_attr")]))
    assert "smoke detector: random weights, numbers meaningless" in r.warnings
    task_dir = store.task_dir("geneval")
    meta = json.loads((task_dir / "images" / "00003" / "metadata.jsonl").read_text())
    assert meta["tag"] == "colors"
    assert sorted(p.name for p in (task_dir / "images" / "00003" / "samples").iterdir()) == [
        "00000.png", "00001.png", "00002.png", "00003.png"]
    cache = [json.loads(x) for x in (task_dir / "detections.jsonl").read_text().splitlines()]
    assert len(cache) == 24 and cache[12]["filename"] == "00003/samples/00000.png"
    # the colour clause's class got a colour per stored detection
    hyd = cache[12]["detections"].get("fire hydrant", [])
    assert all(d["color"] is not None for d in hyd)
    results = [json.loads(x) for x in (task_dir / "results.jsonl").read_text().splitlines()]
    assert len(results) == 24

    # re-scoring reuses the cache: no detector is built
    def no_detector(*a, **k):
        raise AssertionError("detector loaded although every image is cached")

    monkeypatch.setattr(detector_mod, "load_detector", no_detector)
    runner = Runner(cfg, store, adapter_factory=Painter, progress=False)
    runner.load_plan()
    again = runner.score(runner.tasks["geneval"], runner.samples["geneval"], {})
    assert again.headline.value == r.headline.value and again.metrics == r.metrics
    assert (task_dir / "results.jsonl").read_text().splitlines() == [json.dumps(x) for x in results]


def test_interrupted_cache_is_resumed(tmp_path):
    from unitoken_eval.harness.plugin import ScoreContext, TaskError
    from unitoken_eval.tasks.geneval.task import GenEval

    task = GenEval(_smoke_options())
    samples = task.load(task.smoke_source())[:2]
    images = tmp_path / "images"
    preds = {}
    for s in samples:
        task.write_sample_files(images, s)
        for k in range(4):
            p = images / task.image_path(s, k)
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (40 * k, 90, 200)).save(p)
    preds = task.predictions_from_images(images, samples)
    ctx = ScoreContext(profile="official", work_dir=tmp_path)
    full = task.score(samples, preds, ctx)
    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    # a run killed mid-write: 5 complete lines and half of the sixth
    (tmp_path / "detections.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    again = task.score(samples, preds, ScoreContext(profile="official", work_dir=tmp_path))
    assert {k: v["correct"] for k, v in again.items()} == {k: v["correct"] for k, v in full.items()}
    assert (tmp_path / "detections.jsonl").read_text().splitlines() == lines[:5] + lines[5:]
    # another detector setting invalidates the cache instead of mixing detections
    ctx = ScoreContext(profile="official", work_dir=tmp_path)
    GenEval({**task.options, "threshold": 0.5}).score(samples, preds, ctx)
    assert any("another detector or thresholds" in w for w in ctx.warnings)
    assert (tmp_path / "detections.jsonl.old").read_text().splitlines() == lines
    # a detections.jsonl the scorer did not write is never overwritten
    (tmp_path / "detections.jsonl.meta.json").unlink()
    with pytest.raises(TaskError, match="not written by this scorer"):
        task.score(samples, preds, ScoreContext(profile="official", work_dir=tmp_path))
