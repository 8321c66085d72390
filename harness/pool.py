"""Local scheduling: one worker process per GPU, pulling shards from a queue.

Workers are bound to one device each through CUDA_VISIBLE_DEVICES (set before torch is imported in the
child), so the adapter inside sees a single GPU and needs no device logic of its own.  Fast GPUs simply
pull more shards.  The parent scores each task as soon as its last shard is in, while the workers go on
with other tasks, so CPU-heavy scoring overlaps GPU inference.  A shard whose worker raises or dies is
queued again (up to ``retries`` times) and a dead worker is replaced; a shard that keeps failing is reported
and the others finish.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tqdm.auto import tqdm

log = logging.getLogger("unitoken_eval")


def parse_gpus(spec: str) -> list[str]:
    """``0,1,3`` or ``all`` (every visible device, per torch) or a count like ``4`` written ``n4``."""
    spec = (spec or "").strip()
    if spec == "all":
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError("--gpus all: no CUDA device is visible")
        return [str(i) for i in range(n)]
    ids = [x.strip() for x in spec.split(",") if x.strip()]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus expects distinct device ids like 0,1 or 'all', got {spec!r}")
    return ids


def _worker(config_raw: dict, root: str, gpu: str, tasks_q, events, env: dict[str, str]) -> None:
    # Bind the device before anything imports torch.
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    os.environ.update(env)
    from harness.config import load_config
    from harness.runner import Runner
    from harness.store import RunStore

    writer = f"gpu{gpu}"
    store = RunStore(Path(root))
    store.lock(writer)
    runner = Runner(load_config(config_raw), store, writer=writer, progress=False)
    runner.prepare()
    try:
        while True:
            index = tasks_q.get()
            if index is None:
                break
            shard = runner.plan[index]
            events.put(("start", gpu, index, 0, ""))
            try:
                n = runner.infer(runner.tasks[shard.task_id], runner.shard_samples(shard))
                events.put(("done", gpu, index, n, ""))
            except Exception:
                events.put(("error", gpu, index, 0, traceback.format_exc(limit=8)))
    finally:
        runner.close()
        store.unlock()


@dataclass
class PoolReport:
    inferred: int = 0
    failed_shards: dict[str, str] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    per_worker: dict[str, int] = field(default_factory=dict)


def run_pool(runner, gpus: list[str], retries: int = 2, outcome=None, progress: bool = True,
             worker_env: Optional[dict[str, str]] = None) -> PoolReport:
    """Infer every unfinished shard of ``runner``'s plan on ``gpus``; score tasks as they complete."""
    runner.prepare()
    report = PoolReport()
    stored = {tid: set(runner.store.read_predictions(tid)) for tid in runner.samples}
    todo = [sh for sh in runner.plan if any(s.id not in stored[sh.task_id] for s in runner.shard_samples(sh))]
    remaining_by_task: dict[str, set[int]] = {tid: set() for tid in runner.samples}
    for sh in todo:
        remaining_by_task[sh.task_id].add(sh.index)
    failed_tasks: set[str] = set()

    def maybe_score(tid: str) -> None:
        if outcome is None or remaining_by_task[tid] or tid in failed_tasks:
            return
        runner.score_all(outcome, only=[tid])
        # Group tasks whose members are all in.
        for gid, task in runner.tasks.items():
            if task.subtasks and gid not in outcome.results and all(m in outcome.results for m in task.subtasks):
                runner.score_all(outcome, only=[gid])

    ctx = mp.get_context("spawn")
    tasks_q, events = ctx.Queue(), ctx.Queue()
    config_raw = runner.config.model_dump()
    env = dict(worker_env or {})
    for sh in todo:
        tasks_q.put(sh.index)
    procs: dict[str, Any] = {}
    in_flight: dict[str, Optional[int]] = {}
    deaths: dict[str, int] = {}

    def spawn(gpu: str) -> None:
        p = ctx.Process(target=_worker, args=(config_raw, str(runner.store.root), gpu, tasks_q, events, env),
                        name=f"unitoken-eval-gpu{gpu}", daemon=False)
        p.start()
        procs[gpu], in_flight[gpu] = p, None

    for tid in runner.samples:
        maybe_score(tid)  # tasks already complete before this run
    open_shards = len(todo)
    bar = tqdm(total=sum(sh.stop - sh.start for sh in todo), desc=f"{len(gpus)} workers", unit="sample",
               disable=not progress, dynamic_ncols=True)
    try:
        for g in gpus:
            spawn(g)

        def settle(index: int, ok: bool, why: str = "") -> None:
            nonlocal open_shards
            sh = runner.plan[index]
            if ok:
                remaining_by_task[sh.task_id].discard(index)
                open_shards -= 1
                maybe_score(sh.task_id)
                return
            report.attempts[index] = report.attempts.get(index, 0) + 1
            if report.attempts[index] <= retries:
                log.warning("shard %s failed (attempt %d), retrying: %s", sh.key, report.attempts[index], why.strip())
                tasks_q.put(index)
            else:
                log.error("shard %s failed %d times, giving up: %s", sh.key, report.attempts[index], why.strip())
                report.failed_shards[sh.key] = why.strip().splitlines()[-1] if why.strip() else "failed"
                failed_tasks.add(sh.task_id)
                open_shards -= 1

        while open_shards > 0:
            try:
                kind, gpu, index, n, text = events.get(timeout=0.5)
            except queue.Empty:
                kind = None
            if kind == "start":
                in_flight[gpu] = index
            elif kind == "done":
                in_flight[gpu] = None
                report.inferred += n
                report.per_worker[gpu] = report.per_worker.get(gpu, 0) + n
                bar.update(runner.plan[index].stop - runner.plan[index].start)
                settle(index, True)
            elif kind == "error":
                in_flight[gpu] = None
                settle(index, False, text)
            # A worker that died (killed, segfault, OOM-killer) loses its shard: queue it again, replace it.
            for g, p in list(procs.items()):
                if p.exitcode is not None and open_shards > 0:
                    lost = in_flight.get(g)
                    in_flight[g] = None
                    del procs[g]
                    if lost is not None:
                        settle(lost, False, f"worker on GPU {g} died with exit code {p.exitcode}")
                    deaths[g] = deaths.get(g, 0) + 1
                    if deaths[g] > retries + 1:
                        log.error("worker on GPU %s keeps dying (exit code %s); not restarting it", g, p.exitcode)
                    elif open_shards > 0:
                        log.warning("worker on GPU %s exited (%s); starting a new one", g, p.exitcode)
                        spawn(g)
            if not procs and open_shards > 0:
                # Every worker is gone for good: report what is left instead of waiting forever.
                while True:
                    try:
                        index = tasks_q.get_nowait()
                    except queue.Empty:
                        break
                    if index is not None:
                        report.failed_shards[runner.plan[index].key] = "no worker left to run it"
                        failed_tasks.add(runner.plan[index].task_id)
                break
    finally:
        bar.close()
        for _ in procs:
            tasks_q.put(None)
        for p in procs.values():
            p.join(timeout=60)
            if p.exitcode is None:
                p.terminate()
    return report
