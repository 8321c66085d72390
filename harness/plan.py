"""Planning: a run's tasks cut into shards that any process can pick up by number.

A shard is a contiguous slice of a task's samples in a fixed order (understanding samples grouped by
``Sample.image_key`` so requests about one image stay together and share a prefill).  Every process computes the same plan
from the same config, so torchrun ranks and Slurm array tasks need no coordination beyond the results store:
process ``r`` of ``w`` takes the shards a greedy balance of estimated work gives it (:func:`shards_for`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, TypeVar

from unitoken_eval.harness.types import Sample

T = TypeVar("T")

# GPU time of one generated image (512x512, CFG) in understanding prompts, from the throughput record in
# bench/records/; only its order of magnitude matters for ordering and balancing shards.
IMAGE_WORK = 2.5


def sample_work(images_per_sample: int) -> float:
    """A sample's GPU time in understanding prompts: its images (Task.images_per_sample), or one prompt."""
    return images_per_sample * IMAGE_WORK if images_per_sample > 0 else 1.0


@dataclass(frozen=True)
class Shard:
    task_id: str
    index: int  # position in the whole plan
    start: int
    stop: int
    work: float  # estimated GPU work, in understanding prompts (see sample_work)

    @property
    def key(self) -> str:
        return f"{self.task_id}[{self.start}:{self.stop}]"


def ordered(samples: list[Sample], kind: str) -> list[Sample]:
    """Understanding samples with one ``image_key`` moved up next to the first of them (a sample without a key
    stays where it is); otherwise the task's own order.  Whole groups then fall in one batch unless a batch
    boundary cuts one, so MMBench's four circular copies of a question cost one image prefill, not four."""
    if kind != "understand":
        return list(samples)
    groups: dict[object, list[Sample]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(("key", s.image_key) if s.image_key is not None else ("row", i), []).append(s)
    return [s for members in groups.values() for s in members]


def make_plan(task_sizes: list[tuple[str, int]], shard_size: int,
              work_per_sample: Optional[dict[str, float]] = None) -> list[Shard]:
    """Cut each task into shards of at most ``shard_size`` samples, heaviest shards first.

    A shard of T2I-CompBench++ prompts (10 images each) takes many times the GPU time of a shard of MCQ
    prompts; if it came last, one GPU would finish it while the others idle.  Ordering by estimated work (``work_per_sample``, default 1 per sample) lets the pool's queue and
    :func:`shards_for` fill in around the big shards with small ones.  Equal shards keep task order.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    weights = work_per_sample or {}
    cut: list[tuple[str, int, int, float]] = []
    for task_id, n in task_sizes:
        for start in range(0, n, shard_size):
            stop = min(n, start + shard_size)
            cut.append((task_id, start, stop, (stop - start) * float(weights.get(task_id, 1.0))))
    cut.sort(key=lambda c: -c[3])  # stable: equal work keeps the tasks' order
    return [Shard(task_id, i, start, stop, work) for i, (task_id, start, stop, work) in enumerate(cut)]


def unfinished_batches(items: Sequence[T], size: int, is_done: Callable[[T], bool],
                       group: Optional[Callable[[T], object]] = None) -> Iterator[list[T]]:
    """The fixed batches of at most ``size`` items that still hold an unfinished item, whole.

    Batched float math (padding, kernel choice, reduction order) can depend on what else is in a batch, so a
    resumed run that batched only the leftovers could compute other numbers than an uninterrupted run.
    Batches are therefore cut from the shard's full, fixed sample order and an interrupted batch is run
    again whole; callers store only the items that were not done.  Without ``group`` the cuts fall every
    ``size`` items; with it, a run of adjacent items with one non-None key (prompts about one image) is never
    cut in two unless it alone exceeds ``size``, so each image is prefilled once.
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for batch in _cut(items, size, group):
        if not all(is_done(x) for x in batch):
            yield batch


def _cut(items: Sequence[T], size: int, group: Optional[Callable[[T], object]]) -> Iterator[list[T]]:
    if group is None:
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
        return
    runs: list[list[T]] = []
    for x in items:
        k = group(x)
        if runs and k is not None and group(runs[-1][0]) == k:
            runs[-1].append(x)
        else:
            runs.append([x])
    batch: list[T] = []
    for run in runs:
        if len(batch) + len(run) > size and batch:
            yield batch
            batch = []
        while len(run) > size:  # a group larger than a batch: whole batches of it
            yield run[:size]
            run = run[size:]
        batch.extend(run)
    if batch:
        yield batch


def shards_for(plan: list[Shard], rank: int, world: int) -> list[Shard]:
    """Rank ``rank``'s shards under torchrun or a Slurm array: each shard, heaviest first, goes to the rank
    with the least work so far (lowest rank on ties).  Every process computes the same assignment from the
    same plan, so nothing is coordinated at run time; unlike every world-th shard, the loads stay within
    about one small shard of each other when a few shards are much heavier than the rest."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    load = [0.0] * world
    mine = []
    for sh in plan:  # make_plan's order: heaviest first
        r = min(range(world), key=lambda i: (load[i], i))
        load[r] += sh.work
        if r == rank:
            mine.append(sh)
    return mine


_SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard_spec(spec: str) -> tuple[int, int]:
    """``I/N`` (0-based I) as given to ``--shard``."""
    m = _SHARD_SPEC.match(spec or "")
    if not m:
        raise ValueError(f"--shard expects I/N with 0 <= I < N, got {spec!r}")
    rank, world = int(m.group(1)), int(m.group(2))
    if world < 1 or rank >= world:
        raise ValueError(f"--shard expects I/N with 0 <= I < N, got {spec!r}")
    return rank, world


def rank_from_environment(env: Optional[dict[str, str]] = None) -> Optional[tuple[int, int]]:
    """The (rank, world) a launcher gave this process: torchrun's RANK/WORLD_SIZE, else a Slurm array's
    SLURM_ARRAY_TASK_ID over SLURM_ARRAY_TASK_COUNT (offset by SLURM_ARRAY_TASK_MIN)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        base = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(env["SLURM_ARRAY_TASK_ID"]) - base, int(env["SLURM_ARRAY_TASK_COUNT"])
    return None
