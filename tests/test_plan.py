from __future__ import annotations

import pytest

from unitoken_eval.harness.plan import make_plan, ordered, parse_shard_spec, rank_from_environment, shards_for, unfinished_batches
from unitoken_eval.harness.types import Sample


def test_plan_cuts_tasks_into_numbered_shards_heaviest_first():
    plan = make_plan([("a", 5), ("b", 0), ("c", 3)], 2)
    # equal work keeps the tasks' order; the short tail shards go last
    assert [(s.task_id, s.start, s.stop) for s in plan] == [("a", 0, 2), ("a", 2, 4), ("c", 0, 2), ("a", 4, 5), ("c", 2, 3)]
    assert [s.index for s in plan] == [0, 1, 2, 3, 4]
    # a generation task's samples weigh their images: its shards come before the understanding ones
    plan = make_plan([("mcq", 6), ("t2i", 3)], 2, {"t2i": 25.0})
    assert [(s.task_id, s.start, s.work) for s in plan] == [
        ("t2i", 0, 50.0), ("t2i", 2, 25.0), ("mcq", 0, 2.0), ("mcq", 2, 2.0), ("mcq", 4, 2.0)]


def _suite_plan():
    """The paper suite's shape: 11 understanding tasks, GenEval (4 images per prompt) and the three T2I
    categories (10 each), 256-sample shards, images weighted as harness/plan.py weighs them."""
    from unitoken_eval.harness.plan import IMAGE_WORK

    und = [("mmmu", 900), ("mmb_en", 4329), ("mmb_cn", 4329), ("seed", 14233), ("mmstar", 1500), ("mathvista", 1000),
           ("hallusion", 951), ("ai2d", 3088), ("ocr", 1000), ("mme", 2374), ("mmvet", 218)]
    gen = [("geneval", 553), ("t2i_color", 300), ("t2i_shape", 300), ("t2i_texture", 300)]
    work = {"geneval": 4 * IMAGE_WORK, **{t: 10 * IMAGE_WORK for t, _ in gen[1:]}}
    return make_plan(und + gen, 256, work)


@pytest.mark.parametrize("world", [2, 3, 4, 8])
def test_ranks_get_balanced_work_when_a_few_shards_are_heavy(world):
    plan = _suite_plan()
    loads = [sum(s.work for s in shards_for(plan, r, world)) for r in range(world)]
    total = sum(s.work for s in plan)
    # within one understanding shard (256) of perfect balance; taking every world-th shard of the same plan
    # instead leaves 2 ranks 20% apart (the three big T2I shards land on ranks 0, 1, 0)
    assert max(loads) - min(loads) <= 256
    assert max(loads) <= total / world + 256
    modulo = [sum(s.work for s in plan if s.index % world == r) for r in range(world)]
    assert max(loads) < max(modulo)


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_ranks_partition_the_plan_exactly(world):
    plan = make_plan([("a", 100), ("b", 37)], 8)
    taken = [s.index for r in range(world) for s in shards_for(plan, r, world)]
    assert sorted(taken) == list(range(len(plan)))  # every shard once, none twice


def test_understanding_samples_about_one_image_stay_together():
    samples = [Sample(id=str(i), image_key=k) for i, k in enumerate("babcab")] + [Sample(id="6"), Sample(id="7")]
    assert [s.image_key for s in ordered(samples, "understand")] == list("bbbaac") + [None, None]
    assert [s.id for s in ordered(samples, "understand")] == ["0", "2", "5", "1", "4", "3", "6", "7"]
    assert [s.id for s in ordered(samples, "generate")] == [str(i) for i in range(8)]


def _batches_by_image(task_id, batch):
    """The image keys of each batch of a real task's smoke samples in plan order, as the adapter receives them."""
    from unitoken_eval.harness import registry

    task = registry.make_task(task_id, {})
    samples = ordered(task.load(task.smoke_source()), task.kind)
    cut = unfinished_batches(samples, batch, lambda s: False, group=lambda s: s.image_key)
    return samples, [[task.request(s).image_key for s in b] for b in cut]


def test_mmbench_circular_copies_share_a_batch_in_the_real_task():
    samples, batches = _batches_by_image("mmbench_dev_en", 6)  # groups of 4 and 2 copies
    assert len({s.image_key for s in samples}) < len(samples)  # the smoke data holds circular copies
    groups = {}
    for s in samples:
        groups.setdefault(s.image_key, []).append(s.id)
    assert all(len(ids) > 1 for ids in groups.values())
    # no image is split between batches: one prefill per question, as many as distinct images
    assert sum(len(set(k)) for k in batches) == len(groups), batches
    assert all(len(keys) <= 6 for keys in batches) and max(len(k) for k in batches) == 6


def test_batches_never_split_a_group_unless_it_is_larger_than_a_batch():
    keys = list("aaabbcccccd") + [None, None, "e"]
    cut = list(unfinished_batches(keys, 4, lambda k: False, group=lambda k: k))
    assert cut == [list("aaa"), list("bb"), list("cccc"), ["c", "d", None, None], ["e"]]
    # without a key function: fixed slices, as before
    assert list(unfinished_batches(keys, 4, lambda k: False))[0] == list("aaab")
    # the cut depends on the order alone: a resumed run re-runs the same whole batches
    assert list(unfinished_batches(keys, 4, lambda k: k in "abc" if k else False, group=lambda k: k)) == cut[3:]


def test_mme_pairs_share_a_batch_in_the_real_task():
    samples, batches = _batches_by_image("mme", 2)
    assert all(len(set(keys)) == 1 for keys in batches), batches
    assert len(batches) == len({s.image_key for s in samples})


def test_launcher_environments():
    assert rank_from_environment({"RANK": "3", "WORLD_SIZE": "8"}) == (3, 8)
    slurm = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}
    assert rank_from_environment(slurm) == (2, 4)
    assert rank_from_environment({}) is None


@pytest.mark.parametrize("spec", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_specs_are_refused(spec):
    with pytest.raises(ValueError, match="I/N"):
        parse_shard_spec(spec)
    assert parse_shard_spec(" 2 / 5 ") == (2, 5)


def test_suite_projection_on_two_gpus_keeps_the_plan_balanced():
    """bench/project_scaling.py on the committed H200 record: one GPU reproduces the record's own total, and
    the plan (heaviest shards first) lets 2 workers finish within ~3% of half of it, one-time costs included.
    In task order the pool reached 1.82x and every-other-shard assignment 1.59x."""
    import json
    from pathlib import Path

    from bench.project_scaling import project
    from bench.records_io import latest_record

    path = latest_record(Path(__file__).resolve().parents[1] / "bench" / "records", "throughput-NVIDIA-H200")
    record = json.loads(path.read_text())
    out = project(record, [1, 2], "exact", 256)
    assert out["by_gpus"]["1"]["pool_minutes"] == pytest.approx(record["projection"]["exact"]["total_minutes"], rel=1e-3)
    assert out["by_gpus"]["2"]["pool_speedup"] >= 1.9 and out["by_gpus"]["2"]["torchrun_speedup"] >= 1.9
