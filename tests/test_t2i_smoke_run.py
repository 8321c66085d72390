"""The T2I-CompBench++ part of the smoke suite through the real runner: smoke prompts, the suite's options,
official image names in the store, scores per category, the group's combination, the "meaningless" labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from unitoken_eval.harness.config import load_config
from unitoken_eval.harness.manifest import start_run
from unitoken_eval.harness.runner import Runner
from unitoken_eval.harness.types import GenerateRequest
from unitoken_eval.harness.plugin import ModelAdapter
from unitoken_eval.tasks.suites import SMOKE


class _Painter(ModelAdapter):
    """Draws noise from the request seed (stands in for a model; the scorers are what is tested here)."""

    id = "painter"
    capabilities = frozenset({"generate"})
    seen: list[GenerateRequest] = []

    def generate(self, requests):
        out = []
        for r in requests:
            _Painter.seen.append(r)
            rng = np.random.RandomState(r.seed % (2**31))
            out.append([Image.fromarray((rng.rand(32, 32, 3) * 255).astype("uint8")) for _ in range(r.n_images)])
        return out

    def batch_size(self, kind):
        return 4


def _smoke_config(model="tiny"):
    raw = yaml.safe_load(open(SMOKE, encoding="utf-8"))
    raw["tasks"] = ["t2i_compbench"]
    raw["model"] = model
    raw["options"] = {k: v for k, v in raw["options"].items() if k.startswith("t2i_compbench")}
    return load_config(raw)


def test_t2i_part_of_the_smoke_suite_runs_end_to_end(tmp_path):
    cfg = _smoke_config()
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    _Painter.seen = []
    outcome = Runner(cfg, store, adapter_factory=_Painter, progress=False).run()
    assert not outcome.failed, outcome.failed
    assert set(outcome.results) == {"t2i_compbench"} | {f"t2i_compbench_{c}" for c in (
        "color", "shape", "texture", "spatial", "3d_spatial", "non_spatial", "complex", "numeracy")}
    group = outcome.results["t2i_compbench"]
    cats = ("color", "shape", "texture", "spatial", "3d_spatial", "non_spatial", "complex", "numeracy")
    assert all(group.metrics["category_status"][c] == "scored" for c in cats), group.metrics["category_status"]
    assert group.status == "scored" and group.headline.value == pytest.approx(
        sum(group.metrics[c] for c in ("color", "shape", "texture")) / 3)
    assert all(r.n_images == 1 for r in _Painter.seen)  # images_per_prompt from the suite
    color = outcome.results["t2i_compbench_color"]
    assert color.metrics["smoke_scorer"] == "random weights, numbers meaningless"
    assert color.metrics["images_per_prompt"] == 1
    # images in the official layout, named by prompt and running counter
    names = sorted(p.name for p in (store.images_dir("t2i_compbench_color") / "samples").iterdir())
    assert names == ["a green apple and a black chair_000001.png", "a red dog and a blue cup_000000.png"]
    metrics = json.loads((store.task_dir("t2i_compbench") / "metrics.json").read_text())
    assert metrics["headline"]["name"] == "mean_color_shape_texture"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # builds and runs the tiny model: over 10 minutes on 2 loaded cores
def test_smoke_with_the_tiny_model_if_available(tmp_path):
    from unitoken_eval.harness import registry

    try:
        cls = registry.adapter_class("tiny")
        cls()
    except Exception as exc:  # the tiny adapter is another engineer's; it may not be there yet
        pytest.skip(f"tiny adapter not usable here: {exc}")
    cfg = _smoke_config("tiny")
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert not outcome.failed, outcome.failed
    assert outcome.results["t2i_compbench"].status == "scored"
