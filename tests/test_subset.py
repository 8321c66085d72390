"""The quick suite's subsets: fixed, seeded, stratified, whole units, recorded in the manifest, checked by compare."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from unitoken_eval.harness import registry
from unitoken_eval.harness.compare import compare_runs
from unitoken_eval.harness.config import ConfigError, RunConfig, load_config
from unitoken_eval.harness.manifest import start_run
from unitoken_eval.harness.runner import Runner
from unitoken_eval.harness.subset import allocate, select
from unitoken_eval.harness.types import Sample
from unitoken_eval_testkit.run_builder import add_task, binary_scores, make_run
from unitoken_eval.harness.plugin import TaskError


def _samples(per_stratum: dict[str, int]) -> list[Sample]:
    out = []
    for cat, n in per_stratum.items():
        out += [Sample(id=f"{cat}-{i}", fields={"category": cat}) for i in range(n)]
    return out


def test_allocation_is_proportional_and_exact():
    assert allocate({"a": 600, "b": 300, "c": 100}, 100) == {"a": 60, "b": 30, "c": 10}
    share = allocate({"a": 5, "b": 5, "c": 5}, 10)
    assert sum(share.values()) == 10 and max(share.values()) - min(share.values()) <= 1
    assert allocate({"a": 3, "b": 1}, 10) == {"a": 3, "b": 1}


def test_selection_is_stratified_seeded_and_independent_of_row_order():
    samples = _samples({"x": 500, "y": 300, "z": 200})
    kept, rec = select("t", samples, 100, 0, lambda s: s.id, "category")
    assert Counter(s.fields["category"] for s in kept) == {"x": 50, "y": 30, "z": 20}
    assert rec["strata"] == {"x": 50, "y": 30, "z": 20} and rec["n_available"] == 1000 and rec["n_samples"] == 100
    again, rec2 = select("t", list(reversed(samples)), 100, 0, lambda s: s.id, "category")
    assert {s.id for s in again} == {s.id for s in kept} and rec2["ids_sha256"] == rec["ids_sha256"]
    other, rec3 = select("t", samples, 100, 1, lambda s: s.id, "category")
    assert {s.id for s in other} != {s.id for s in kept} and rec3["ids_sha256"] != rec["ids_sha256"]
    assert [s.id for s in kept] == [s.id for s in samples if s in kept]  # original order kept


@pytest.mark.parametrize("task_id, unit_size", [("mmbench_dev_en", None), ("mme", 2), ("hallusionbench", None)])
def test_real_tasks_keep_their_units_whole(task_id, unit_size):
    task = registry.make_task(task_id)
    samples = task.load(task.smoke_source())
    kept, rec = select(task_id, samples, 2, 0, task.subset_unit, task.stratum_field)
    units = Counter(task.subset_unit(s) for s in kept)
    everything = Counter(task.subset_unit(s) for s in samples)
    assert len(units) == 2 and all(units[u] == everything[u] for u in units)
    if unit_size:
        assert set(units.values()) == {unit_size}
    if task_id == "mmbench_dev_en":  # circular copies of one question travel together
        assert any(n > 1 for n in units.values())


def test_run_records_the_subset_and_rejects_unknown_tasks(tmp_path):
    cfg = RunConfig(model="tiny", tasks=["mme", "mmbench_dev_en"], smoke=True,
                    subset={"seed": 3, "sizes": {"mme": 2, "mmbench_dev_en": 1}})
    store = start_run(cfg, tmp_path / "run", False, tmp_path)
    runner = Runner(cfg, store, progress=False)
    runner.load_plan()
    store.unlock()
    subsets = json.loads((tmp_path / "run" / "manifest.json").read_text())["subsets"]
    assert subsets["mme"]["n_selected"] == 2 and subsets["mme"]["n_samples"] == 4 and subsets["mme"]["seed"] == 3
    assert len(runner.samples["mme"]) == 4
    bad = RunConfig(model="tiny", tasks=["mme"], smoke=True, subset={"sizes": {"mmstar": 5}})
    store = start_run(bad, tmp_path / "bad", False, tmp_path)
    with pytest.raises(TaskError, match="subset.sizes names tasks this run does not have: mmstar"):
        Runner(bad, store, progress=False).load_plan()
    store.unlock()


def test_subset_spec_is_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny\ntasks: [mme]\nsubset: {sizes: {mme: 0}}\n")
    with pytest.raises(ConfigError, match="subset.sizes"):
        load_config(path)


def test_compare_refuses_runs_of_different_subsets(tmp_path):
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    for store, digest in ((base, "aa" * 32), (cand, "bb" * 32)):
        add_task(store, "mmstar", 80.0, scores=binary_scores(200, 160))
        store.update_manifest(subsets={"mmstar": {"seed": 0, "size": 200, "n_available": 1500, "n_selected": 200,
                                                  "n_samples": 200, "ids_sha256": digest}})
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2
    assert any(r.startswith("different sample subsets: baseline 200 of 1500 (seed 0, ids sha256 aaaaaaaaaaaa) vs "
                            "candidate 200 of 1500") for r in comp.tasks[0].reasons)
    cand.update_manifest(subsets={})
    assert "vs candidate the whole benchmark" in compare_runs(base.root, cand.root).tasks[0].reasons[0]


def test_ci_suite_is_registered_and_each_task_has_a_subset():
    path = Path(__file__).resolve().parents[1] / "tasks" / "suites" / "ci.yaml"
    cfg = load_config(path)
    assert set(cfg.subset.sizes) == set(cfg.tasks)
    for tid in cfg.tasks:
        registry.task_class(tid)  # every id is a real task
    assert "ci" in registry.suite_ids()


def test_ci_suite_projection_is_within_ten_minutes():
    """From the newest end-to-end record (a real `unitoken-eval run` on the H200), as bench/suite_budget.py does."""
    from bench.suite_budget import end_to_end_rates, newest, project_minutes, suite_counts

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "tasks" / "suites" / "ci.yaml").read_text())
    counts = suite_counts(config)
    record = json.loads(newest("end-to-end-NVIDIA-*.json", set(counts)).read_text())
    rates, one_time = end_to_end_rates(record)
    assert one_time == record["one_time_s"]["counted_in_projection"] > 60  # compiles and graph captures, once
    # generation tasks ran one runner batch each: their rate is the warm one, below their whole-task rate
    assert rates["geneval"] > record["tasks"]["geneval"]["samples_per_s"]
    assert counts["mme"] == 340 and counts["t2i_compbench_color"] == pytest.approx(6.4)  # 32 prompts x 2 of 10 images
    minutes = project_minutes(rates, counts, one_time)
    # "under ten GPU minutes" (docs/gating.md): the newest record gives 8.8
    assert 5 < minutes <= 10
    assert project_minutes({"a": 2.0}, {"a": 120}, 60) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no rate for b"):
        project_minutes({"a": 1.0}, {"b": 1})
