from __future__ import annotations

import pytest

from harness.plan import make_plan, ordered, parse_shard_spec, rank_from_environment, shards_for
from harness.types import Sample


def test_plan_cuts_tasks_into_numbered_shards():
    plan = make_plan([("a", 5), ("b", 0), ("c", 3)], 2)
    assert [(s.task_id, s.start, s.stop) for s in plan] == [("a", 0, 2), ("a", 2, 4), ("a", 4, 5), ("c", 0, 2), ("c", 2, 3)]
    assert [s.index for s in plan] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_ranks_partition_the_plan_exactly(world):
    plan = make_plan([("a", 100), ("b", 37)], 8)
    taken = [s.index for r in range(world) for s in shards_for(plan, r, world)]
    assert sorted(taken) == list(range(len(plan)))  # every shard once, none twice


def test_understanding_samples_about_one_image_stay_together():
    samples = [Sample(id=str(i), fields={"image_key": k}) for i, k in enumerate("babcab")]
    assert [s.fields["image_key"] for s in ordered(samples, "understand")] == list("aabbbc")
    assert [s.id for s in ordered(samples, "generate")] == [str(i) for i in range(6)]


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
