from __future__ import annotations

import json
from collections import defaultdict

from unitoken_eval.harness.config import load_config
from unitoken_eval.harness.pool import run_pool
from unitoken_eval.harness.manifest import start_run
from unitoken_eval.harness.runner import RunOutcome, Runner


def _setup(tmp_path, **args):
    trace = tmp_path / "trace"
    trace.mkdir()
    cfg = load_config({
        "model": "fake_echo_model", "model_args": {"trace_dir": str(trace), "batch": "2", **args},
        "tasks": ["fake_echo", "fake_draw"], "options": {"fake_echo": {"n": 24}}, "shard_size": 4,
    })
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    return cfg, store, trace


def _pool(runner, gpus, outcome, **kw):
    """The pool as a run drives it: the runner scores each task as its last shard comes in."""
    return run_pool(runner, gpus, on_task_done=lambda tid: runner.score_completed(outcome, tid), **kw)


def _bindings(trace):
    seen = defaultdict(set)  # pid -> devices it saw
    for f in trace.glob("worker-*.txt"):
        for line in f.read_text().splitlines():
            dev, _ = line.split(" ", 1)
            seen[f.name].add(dev)
    return seen


def test_three_fake_gpus_share_the_work_each_bound_to_its_own_device(plugins, tmp_path):
    cfg, store, trace = _setup(tmp_path)
    outcome = RunOutcome(store=store)
    report = _pool(Runner(cfg, store, progress=False), ["0", "1", "2"], outcome, progress=False)
    assert report.inferred == 27 and not report.failed_shards
    # Each worker process saw exactly one device, and the devices were the ones asked for.
    bindings = _bindings(trace)
    assert all(len(devs) == 1 for devs in bindings.values())
    assert set().union(*bindings.values()) <= {"0", "1", "2"}
    files = {p.name for p in store.task_dir("fake_echo").glob("predictions-*.jsonl")}
    assert files <= {"predictions-gpu0.jsonl", "predictions-gpu1.jsonl", "predictions-gpu2.jsonl"}
    preds = store.read_predictions("fake_echo")
    assert len(preds) == 24
    # Scored by the parent as tasks completed.
    assert outcome.results["fake_echo"].headline.value == 100.0 and outcome.results["fake_draw"].n == 3


def test_a_killed_worker_loses_no_sample_and_duplicates_none(plugins, tmp_path):
    cfg, store, trace = _setup(tmp_path, die_on="q13")
    outcome = RunOutcome(store=store)
    report = _pool(Runner(cfg, store, progress=False), ["0", "1"], outcome, progress=False)
    assert (trace / "died-once").exists()
    assert not report.failed_shards and sum(report.attempts.values()) == 1
    ids = []
    for f in store.task_dir("fake_echo").glob("predictions-*.jsonl"):
        ids += [json.loads(x)["id"] for x in f.read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(24))
    assert outcome.results["fake_echo"].headline.value == 100.0


def test_a_shard_that_keeps_failing_is_reported_and_the_rest_finish(plugins, tmp_path):
    cfg, store, trace = _setup(tmp_path, die_on="q5")
    runner = Runner(cfg, store, progress=False)
    outcome = RunOutcome(store=store)
    # With no retries, the first death is final for that shard.
    report = _pool(runner, ["0"], outcome, retries=0, progress=False)
    (bad,) = [sh for sh in runner.plan if any(s.id == "q5" for s in runner.shard_samples(sh))]
    assert list(report.failed_shards) == [bad.key]
    assert "fake_draw" in outcome.results and "fake_echo" not in outcome.results
    assert len(store.read_predictions("fake_echo")) == 24 - (bad.stop - bad.start)
