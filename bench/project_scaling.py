"""Projected wall time of the paper suite on N GPUs, from a throughput record's one-GPU projection and the
harness's own shard plan.  A projection, not a measurement (bench/scaling.py measures, on a machine with
several GPUs): it shows what the plan and the scheduling allow, assuming each GPU runs its shards as fast
as one GPU alone does (independent workers, no shared GPU link; CPU-side work overlapped as on one GPU).

    python bench/project_scaling.py bench/records/throughput-NVIDIA-H200-<time>.json [--gpus 1,2,4,8]

Every worker pays the one-time costs (compiling, first sessions) itself, in parallel with the others.
Two schedules: the local pool (``--gpus``: each shard, in plan order, to the first free worker) and
torchrun / Slurm (:func:`unitoken_eval.harness.plan.shards_for`, fixed in advance by estimated work).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_io import save_record  # noqa: E402
from bench.throughput import SUITE_UNDERSTANDING  # noqa: E402
from unitoken_eval.harness.plan import make_plan, shards_for  # noqa: E402
from unitoken_eval.harness.plan import IMAGE_WORK  # noqa: E402

# generation tasks as the harness runs them: (task, prompts, images per prompt, share of the benchmark's time)
GENERATION_TASKS = {"geneval": [("geneval", 553, 4, 1.0)],
                    "t2i_compbench": [(f"t2i_compbench_{c}", 300, 10, 1 / 3) for c in ("color", "shape", "texture")]}


def suite_tasks(seconds: dict[str, float]) -> tuple[list[tuple[str, int]], dict[str, float], dict[str, float]]:
    """(task, samples) in suite order, work per sample, seconds per sample, from per-benchmark seconds."""
    sizes, work, per_sample = [], {}, {}
    for name, (prompts, _, _) in SUITE_UNDERSTANDING.items():
        sizes.append((name, prompts))
        per_sample[name] = seconds[name] / prompts
    for name, tasks in GENERATION_TASKS.items():
        for task, prompts, images, share in tasks:
            sizes.append((task, prompts))
            work[task] = images * IMAGE_WORK
            per_sample[task] = seconds[name] * share / prompts
    return sizes, work, per_sample


def pool_makespan(durations: list[float], workers: int) -> float:
    """Shards in plan order, each to the worker that is free first."""
    free = [0.0] * workers
    heapq.heapify(free)
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def project(record: dict, gpus: list[int], which: str, shard_size: int) -> dict:
    proj = record["projection"][which]
    seconds = proj["seconds_per_benchmark"]
    once = seconds.get("one_time", 0.0)
    sizes, work, per_sample = suite_tasks(seconds)
    plan = make_plan(sizes, shard_size, work)
    durations = [(s.stop - s.start) * per_sample[s.task_id] for s in plan]
    out = {"source_projection": which, "shards": len(plan), "shard_size": shard_size,
           "one_time_seconds_per_worker": once, "by_gpus": {}}
    for n in gpus:
        pool = once + pool_makespan(durations, n)
        static = once + max(sum(durations[s.index] for s in shards_for(plan, r, n)) for r in range(n))
        out["by_gpus"][str(n)] = {"pool_minutes": pool / 60, "torchrun_minutes": static / 60}
    one = out["by_gpus"].get("1")
    if one:
        for n, row in out["by_gpus"].items():
            row["pool_speedup"] = one["pool_minutes"] / row["pool_minutes"]
            row["torchrun_speedup"] = one["torchrun_minutes"] / row["torchrun_minutes"]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("record", help="a bench/records/throughput-*.json with a projection")
    ap.add_argument("--gpus", default="1,2,4,8")
    ap.add_argument("--shard-size", type=int, default=256, help="the run config's shard_size (default 256)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "records"))
    args = ap.parse_args(argv)
    record = json.loads(Path(args.record).read_text())
    gpus = sorted({1, *(int(g) for g in args.gpus.split(","))})
    rec = {"kind": "projection, not a measurement", "from": Path(args.record).name, "gpu": record.get("gpu"),
           **{which: project(record, gpus, which, args.shard_size) for which in ("exact", "opt_in")
              if "total_minutes" in record.get("projection", {}).get(which, {})}}
    save_record(rec, args.out, "scaling-projection-" + Path(args.record).stem.replace("throughput-", ""))


if __name__ == "__main__":
    main()
