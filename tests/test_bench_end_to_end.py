"""bench/end_to_end.py writes data the real tasks load, in the benchmarks' proportions, and the plan batches
it so each image is prefilled once (what the end-to-end record's prefill bar checks on the GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import end_to_end as e2e
from unitoken_eval.harness import registry
from unitoken_eval.harness.plan import ordered, unfinished_batches

RECORDS = Path(__file__).resolve().parents[1] / "bench" / "records"


@pytest.mark.parametrize("task_id", ["mmbench_dev_en", "mmbench_dev_cn", "mme", "seedbench_img", "ai2d_test",
                                     "hallusionbench", "mmmu_val", "mathvista_testmini", "mmstar", "ocrbench",
                                     "mmvet"])
def test_written_data_loads_in_the_real_tasks_in_proportion(task_id, tmp_path):
    task = registry.make_task(task_id, {})
    size = task.full_size
    path = e2e.write_understanding(task, 40, tmp_path)
    samples = task.load(str(path))
    assert not any(s.error for s in samples)
    assert abs(len(samples) - 40) <= 2
    images = {s.image_key for s in samples}
    want = size.input_images / size.samples  # distinct images per prompt in the whole benchmark
    assert len(images) / len(samples) == pytest.approx(want, rel=0.12), (len(images), len(samples))
    first = samples[0].load_image()
    assert first.size == e2e.IMAGE_SIZE[task.tsv_name]
    batches = list(unfinished_batches(ordered(samples, "understand"), 16, lambda s: False,
                                      group=lambda s: s.image_key))
    assert sum(len({s.image_key for s in b}) for b in batches) == len(images)  # one prefill per image


def test_generation_prompt_files_load(tmp_path):
    gen = registry.make_task("geneval", {"verify_prompts": False})
    assert len(gen.load(str(e2e.write_geneval(50, tmp_path)))) == 50
    color = registry.make_task("t2i_compbench_color", {})
    assert len(color.load(str(e2e.write_t2i("color", 20, tmp_path)))) == 20


def test_projection_of_a_real_record_counts_each_cost_once(tmp_path):
    rec = json.loads(next(iter(sorted(RECORDS.glob("end-to-end-NVIDIA-*.json")))).read_text())
    e2e.project(rec, rec["suite"], rec.get("task_options", {}), None)
    proj, one_time = rec["projection"], rec["one_time_s"]["counted_in_projection"]
    assert proj["minutes_total"] == pytest.approx((sum(proj["seconds_per_task"].values()) + one_time) / 60, abs=0.06)
    full = proj["suite_full"]
    assert full["rate_from_measured_t2i_categories"] and not full["not_measured"]
    size = registry.suite_size("full")["tasks"]
    # the categories the run did not draw take the measured categories' projected images/s (one-time costs apart)
    measured = [size[t]["generated_images"] / proj["seconds_per_task"][t]
                for t in proj["seconds_per_task"] if t.startswith("t2i_compbench_")]
    for t in full["rate_from_measured_t2i_categories"]:
        rate = size[t]["generated_images"] / full["seconds_per_task"][t]
        assert rate == pytest.approx(sum(measured) / len(measured), rel=1e-3)


def test_component_rate_scales_with_the_prompts_prefill_tokens():
    comp = next(iter(sorted(RECORDS.glob("throughput-*.json"))))
    default = e2e.component_rates(comp, 4)["und_prompts_per_s"]
    # the component bench's own prompts (4.7k tokens) give its own rate; shorter prompts a faster one
    assert e2e.component_rates(comp, 4, prefill_tokens_per_prompt=4700)["und_prompts_per_s"] == pytest.approx(default, rel=1e-3)
    shorter = e2e.component_rates(comp, 4, prefill_tokens_per_prompt=3000)["und_prompts_per_s"]
    assert 1.3 < shorter / default < 4700 / 3000


def test_a_later_batch_that_paid_once_is_counted_once_not_in_the_rate():
    # MMBench-like: 14, 16, 16 prompts at a steady pace, then a one-group batch that paid a recompile
    row = {"kind": "understand", "samples": 48, "wall_s": 9.4, "first_batch_samples": 14, "first_batch_adapter_s": 2.0,
           "batch_adapter_s": [2.0, 0.64, 0.62, 6.0], "batch_samples": [14, 16, 16, 2],
           "adapter": {"answer_model_s": 9.26}}
    st = e2e.understanding_steady(row)
    per_sample = 0.64 / 16  # the median of the later batches' seconds per sample
    assert st["later_batches_one_time_s"] == pytest.approx(6.0 - 2 * per_sample)
    assert st["rate"] == pytest.approx(34 / (9.26 - 2.0 - st["later_batches_one_time_s"]))
    assert st["outside_model_calls_s"] == pytest.approx(9.4 - 9.26)
    # without the per-batch seconds (older records) the batch stays in the rate
    old = {k: v for k, v in row.items() if k not in ("batch_adapter_s", "batch_samples")}
    assert e2e.understanding_steady(old)["rate"] == pytest.approx(34 / (9.26 - 2.0))


def test_generation_projection_pays_one_tail_per_runner_batch():
    import math

    rec = json.loads(sorted(RECORDS.glob("end-to-end-NVIDIA-*.json"))[-1].read_text())
    e2e.project(rec, rec["suite"], rec.get("task_options", {}), None)
    model, once = rec["generation_model"], rec["one_time_s"]["once_per_task"]
    size = registry.suite_size(rec["suite"])["tasks"]
    for t, r in rec["tasks"].items():
        if r["kind"] != "generate":
            continue
        # this run's task = its images at the warm decoder rate + its runner batches' tails + what it paid once
        parts = r["generated_images"] / model["decoder_only_images_per_s"] + r["batches"] * model["tail_per_runner_batch_s"]
        assert parts + once[t] == pytest.approx(r["wall_s"], abs=0.1)
        full = size[t]
        want = (full["generated_images"] / model["decoder_only_images_per_s"]
                + math.ceil(full["samples"] / model["runner_batch_prompts"]) * model["tail_per_runner_batch_s"])
        assert rec["projection"]["seconds_per_task"][t] == pytest.approx(want, abs=0.5)  # inputs shown rounded
        # whole benchmarks spread each tail over more images than this run's one-batch tasks
        assert r["whole_benchmark_samples_per_s"] > r["warm_samples_per_s"]


def test_recompiles_are_counted_from_torchs_own_log(tmp_path):
    """The record counts recompiles from what TORCH_LOGS=recompiles really prints (the run sets it)."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "piece.py"
    script.write_text("import torch\n"
                      "def scale(x):\n    return x * 2\n"
                      "f = torch.compile(scale, dynamic=True, backend='eager')\n"
                      "f(torch.ones(4, 3)); f(torch.ones(5, 3)); f(torch.ones(1, 3))\n")
    t0 = time.time()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TORCH_LOGS": "recompiles"})
    t1 = time.time()
    assert done.returncode == 0, done.stderr[-2000:]
    spans = {"before": (t0 - 3600, t0 - 1), "this_run": (t0 - 1, t1 + 1)}  # the log's times are whole microseconds
    found = e2e.recompiles_from_log(done.stdout + done.stderr, spans, time.localtime(t0).tm_year)
    # (1, 3) after (4, 3) and (5, 3): a size of 1 is specialised, one recompile, paid during this run
    assert found == {"count": 1, "by_function": {"piece.py:scale": 1}, "by_task": {"this_run": 1}}
    assert e2e.recompiles_from_log("no compiler output") == {"count": 0, "by_function": {}}
