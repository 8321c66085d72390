"""Local scheduling: one worker process per GPU, fed shards one at a time by the parent.

Workers are bound to one device each through CUDA_VISIBLE_DEVICES (set before torch is imported in the
child), so the adapter inside sees a single GPU and needs no device logic of its own.  A worker asks for
the next shard when it finishes one, so fast GPUs take more.  The parent scores each task as soon as its
last shard is in, while the workers go on with other tasks: CPU-heavy scoring overlaps GPU inference.

Each worker talks to the parent over its own pair of pipes, with messages far below the pipe's atomic
write size and no feeder thread: a worker killed at any instant (SIGKILL, the OOM killer, a segfault) can
neither leave half a message behind nor hold a lock another process needs.  Its shard is queued again (up
to ``retries`` times) and a new worker replaces it; a shard that keeps failing is reported and the others
finish.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Optional

from tqdm.auto import tqdm

log = logging.getLogger("unitoken_eval")

_MAX_TEXT = 2000  # error text per message: keeps every message well under PIPE_BUF (4096 bytes)


def parse_gpus(spec: str) -> list[str]:
    """``0,1,3`` or ``all`` (every visible device, per torch)."""
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


def _worker(runner_cls: type, config_raw: dict, root: str, gpu: str, inbox, outbox, env: dict[str, str]) -> None:
    # Bind the device before anything imports torch.
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    os.environ.update(env)
    from unitoken_eval.harness.config import load_config
    from unitoken_eval.harness.store import RunStore

    writer = f"gpu{gpu}"
    store = RunStore(Path(root))
    store.lock(writer)
    runner = runner_cls(load_config(config_raw), store, writer=writer, progress=False)
    runner.load_plan()
    outbox.send(("ready", -1, 0, ""))
    try:
        while True:
            index = inbox.recv()
            if index is None:
                break
            shard = runner.plan[index]
            try:
                n = runner.infer(runner.tasks[shard.task_id], runner.shard_samples(shard))
                outbox.send(("done", index, n, ""))
            except Exception:
                outbox.send(("error", index, 0, traceback.format_exc(limit=6)[-_MAX_TEXT:]))
    finally:
        runner.close()
        store.unlock()


@dataclass
class PoolReport:
    inferred: int = 0
    failed_shards: dict[str, str] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    per_worker: dict[str, int] = field(default_factory=dict)


@dataclass
class _Worker:
    gpu: str
    proc: Any
    inbox: Any  # parent's end for sending shard indices
    outbox: Any  # parent's end for receiving messages
    shard: Optional[int] = None
    ready: bool = False


def run_pool(runner, gpus: list[str], retries: int = 2, on_task_done: Optional[Callable[[str], None]] = None,
             progress: bool = True, worker_env: Optional[dict[str, str]] = None) -> PoolReport:
    """Infer every unfinished shard of ``runner``'s plan on ``gpus``; call ``on_task_done(task_id)`` as each
    task's last shard comes in (the runner scores it there while the workers go on)."""
    runner.load_plan()
    report = PoolReport()
    stored = {tid: set(runner.store.read_predictions(tid)) for tid in runner.samples}
    todo = [sh for sh in runner.plan if any(s.id not in stored[sh.task_id] for s in runner.shard_samples(sh))]
    remaining_by_task: dict[str, set[int]] = {tid: set() for tid in runner.samples}
    for sh in todo:
        remaining_by_task[sh.task_id].add(sh.index)
    failed_tasks: set[str] = set()

    def maybe_score(tid: str) -> None:
        if on_task_done is None or remaining_by_task[tid] or tid in failed_tasks:
            return
        on_task_done(tid)

    ctx = mp.get_context("spawn")
    config_raw = runner.config.model_dump()
    env = dict(worker_env or {})
    pending = deque(sh.index for sh in todo)
    open_shards = len(todo)
    workers: dict[str, _Worker] = {}
    deaths: dict[str, int] = {}

    def spawn(gpu: str) -> None:
        to_child_r, to_child_w = ctx.Pipe(duplex=False)
        from_child_r, from_child_w = ctx.Pipe(duplex=False)
        # The runner's class goes by reference (spawn pickles it by name), so this module needs no runner import.
        p = ctx.Process(target=_worker, args=(type(runner), config_raw, str(runner.store.root), gpu, to_child_r,
                                              from_child_w, env),
                        name=f"unitoken-eval-gpu{gpu}")
        p.start()
        to_child_r.close()
        from_child_w.close()
        workers[gpu] = _Worker(gpu, p, to_child_w, from_child_r)

    def dispatch(w: _Worker) -> None:
        if pending and w.shard is None:
            w.shard = pending.popleft()
            w.inbox.send(w.shard)

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
            pending.append(index)
        else:
            log.error("shard %s failed %d times, giving up: %s", sh.key, report.attempts[index], why.strip())
            report.failed_shards[sh.key] = why.strip().splitlines()[-1] if why.strip() else "failed"
            failed_tasks.add(sh.task_id)
            open_shards -= 1

    def bury(w: _Worker, why: str) -> None:
        """A worker is gone: settle its shard, replace it unless it keeps dying."""
        w.proc.join(timeout=5)
        for conn in (w.inbox, w.outbox):
            conn.close()
        del workers[w.gpu]
        if w.shard is not None:
            settle(w.shard, False, f"worker on GPU {w.gpu} died ({why})")
        deaths[w.gpu] = deaths.get(w.gpu, 0) + 1
        if deaths[w.gpu] > retries + 1:
            log.error("worker on GPU %s keeps dying (%s); not restarting it", w.gpu, why)
        elif open_shards > 0:
            log.warning("worker on GPU %s died (%s); starting a new one", w.gpu, why)
            spawn(w.gpu)

    for tid in runner.samples:
        maybe_score(tid)  # tasks already complete before this run
    bar = tqdm(total=sum(sh.stop - sh.start for sh in todo), desc=f"all tasks, {len(gpus)} workers",
               unit="sample", disable=not progress, dynamic_ncols=True)
    # One bar per task under the overall one: rate and ETA per benchmark, as a single-process run shows.
    task_totals: dict[str, int] = {}
    for sh in todo:
        task_totals[sh.task_id] = task_totals.get(sh.task_id, 0) + sh.stop - sh.start
    task_bars = {tid: tqdm(total=n, desc=tid, unit="sample", position=i + 1, leave=False, disable=not progress,
                           dynamic_ncols=True) for i, (tid, n) in enumerate(task_totals.items())}
    try:
        if open_shards:
            for g in gpus:
                spawn(g)
        while open_shards > 0 and workers:
            by_conn = {w.outbox: w for w in workers.values()}
            sentinels = {w.proc.sentinel: w for w in workers.values()}
            ready = wait(list(by_conn) + list(sentinels), timeout=1.0)
            for obj in ready:
                w = by_conn.get(obj) or sentinels.get(obj)
                if w is None or w.gpu not in workers or workers[w.gpu] is not w:
                    continue
                if obj is w.outbox:
                    try:
                        kind, index, n, text = w.outbox.recv()
                    except (EOFError, OSError):
                        bury(w, f"exit code {w.proc.exitcode}")
                        continue
                    if kind == "ready":
                        w.ready = True
                    elif kind == "done":
                        w.shard = None
                        report.inferred += n
                        report.per_worker[w.gpu] = report.per_worker.get(w.gpu, 0) + n
                        sh = runner.plan[index]
                        bar.update(sh.stop - sh.start)
                        task_bars[sh.task_id].update(sh.stop - sh.start)
                        settle(index, True)
                    elif kind == "error":
                        w.shard = None
                        settle(index, False, text)
                    if w.gpu in workers:
                        dispatch(w)
                elif not w.outbox.poll():
                    # Process ended with nothing left to read from it.
                    bury(w, f"exit code {w.proc.exitcode}")
            # Shards re-queued by a failure go to whichever workers are idle.
            for w in list(workers.values()):
                if w.ready:
                    dispatch(w)
        if open_shards > 0:
            # Every worker is gone for good: report what is left instead of waiting forever.
            for w in workers.values():
                if w.shard is not None:
                    pending.append(w.shard)
            for index in pending:
                report.failed_shards[runner.plan[index].key] = "no worker left to run it"
                failed_tasks.add(runner.plan[index].task_id)
    finally:
        for tb in task_bars.values():
            tb.close()
        bar.close()
        for w in list(workers.values()):
            try:
                w.inbox.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in list(workers.values()):
            w.proc.join(timeout=60)
            if w.proc.exitcode is None:
                w.proc.terminate()
    return report
