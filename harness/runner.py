"""Execute a run: load tasks, send batches to the adapter, append predictions, score, aggregate, tabulate.

:func:`execute_run` is the one way a run runs, in this process, as one rank of a torchrun/Slurm job, or on a
local pool of GPU workers (harness/pool.py); what follows inference (scoring, tables, the finished mark) is
decided here for all three.  The runner never knows the model: it asks the adapter for a batch size per
request kind and hands it batches.  Everything produced is appended to the store as it is produced, so a
killed run resumes where it stopped and never repeats (or duplicates) a finished sample.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Optional

from tqdm.auto import tqdm

from unitoken_eval.harness import faults, manifest, registry, remote, subset
from unitoken_eval.harness.config import RunConfig
from unitoken_eval.harness.plan import Shard, make_plan, ordered, sample_work, shards_for, unfinished_batches
from unitoken_eval.harness.plugin import GroupTask, SampleErrors, ScoreContext, Task, TaskError
from unitoken_eval.harness.scoring import make_judge, score_predictions
from unitoken_eval.harness.store import RunStore
from unitoken_eval.harness.types import GenerateRequest, Prediction, Sample, TaskResult

log = logging.getLogger("unitoken_eval")


# Threads that encode and write a generation batch's PNGs (the encoder releases the GIL).
IMAGE_WRITERS = max(1, min(8, (os.cpu_count() or 2) - 1))


def derive_seed(base: int, task_id: str, sample_id: str) -> int:
    """A per-sample seed independent of order and sharding, so any worker draws the same image."""
    digest = hashlib.sha256(f"{base}\0{task_id}\0{sample_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class RunOutcome:
    store: RunStore
    results: dict[str, TaskResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    inferred: int = 0
    tables: list[Path] = field(default_factory=list)


class Runner:
    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        adapter_factory: Optional[Callable[[], Any]] = None,
        writer: str = "main",
        progress: bool = True,
    ):
        self.config = config
        self.store = store
        self.writer = writer
        self.progress = progress
        self._adapter_factory = adapter_factory
        self._adapter = None
        self.data_sources: dict[str, dict[str, Any]] = {}
        self.subsets: dict[str, dict[str, Any]] = {}

    # ----- the adapter is created only when there is inference to do: a finished run resumes without it
    @property
    def adapter(self):
        if self._adapter is None:
            if self._adapter_factory is not None:
                self._adapter = self._adapter_factory()
            else:
                cls = registry.adapter_class(self.config.model)
                remote.announce_model_args(self.config.model, self.config.model_args)
                self._adapter = cls(**self.config.model_args)
            manifest.record_model(self.store, self._adapter.fingerprint())
        return self._adapter

    def _understand(self, task: Task, ready: list[Sample], requests: list) -> tuple[list, dict[str, str]]:
        """The adapter's answers, and (under --skip-bad) the samples it reported unanswerable with
        :class:`SampleErrors` as sample id -> reason, to be recorded as errors while the others are kept."""
        try:
            return self.adapter.understand(requests), {}
        except SampleErrors as exc:
            if not self.config.skip_bad:
                raise
            bad = {ready[i].id: why for i, why in exc.errors.items()}
            for sid, why in bad.items():
                log.warning("%s: sample %s recorded as an error (--skip-bad): %s", task.id, sid, why)
            return exc.answers, bad

    def close(self) -> None:
        if self._adapter is not None:
            self._adapter.close()

    # ----- tasks
    def make_task(self, task_id: str) -> Task:
        return registry.make_task(task_id, self.config.options.get(task_id))

    def load_samples(self, task: Task) -> list[Sample]:
        source = self.config.data.get(task.id)
        if source is None and self.config.smoke:
            source = task.smoke_source()
            if source is None:
                raise TaskError(f"task {task.id} has no embedded smoke data")
        task.skip_bad = self.config.skip_bad
        try:
            samples = task.load(source, self.config.limit)
        except TaskError as exc:
            if self.config.skip_bad:  # bad rows come back as error samples: what still raises is not one
                raise TaskError(f"{exc} (a problem with the whole file, or a row with no usable index, so not a "
                                "sample that could be recorded: --skip-bad cannot skip it)") from None
            raise
        self.data_sources[task.id] = {"source": source, **task.data_identity()}
        bad = [s for s in samples if s.error is not None]
        if bad:
            log.warning("%s: %d bad samples will be recorded as errors (--skip-bad); first: %s",
                        task.id, len(bad), bad[0].error)
        seen: set[str] = set()
        for s in samples:
            if s.id in seen:
                raise TaskError(f"task {task.id}: sample id {s.id!r} appears twice in its data")
            seen.add(s.id)
        spec = self.config.subset
        if spec is not None and task.id in spec.sizes:
            samples, self.subsets[task.id] = subset.select(task.id, samples, spec.sizes[task.id], spec.seed,
                                                           task.subset_unit, task.stratum_field)
            log.info("%s: subset of %d samples (%d of %d units, seed %d)", task.id, len(samples),
                     self.subsets[task.id]["n_selected"], self.subsets[task.id]["n_available"], spec.seed)
        return samples

    def _build_request(self, task: Task, sample: Sample):
        if sample.error is not None:  # a bad row kept by --skip-bad: recorded, never sent to the model
            raise TaskError(sample.error)
        req = task.request(sample)
        req.options = {**req.options, **task.request_options}
        req.task_id = task.id
        if isinstance(req, GenerateRequest):
            req.seed = derive_seed(self.config.seed, task.id, sample.id)
        return req

    def finished(self, task_id: str) -> dict[str, Prediction]:
        """Stored records that count as done: error records too, unless ``retry_errors`` asks to run them again."""
        preds = self.store.read_predictions(task_id)
        if self.config.retry_errors:
            preds = {k: p for k, p in preds.items() if p.error is None}
        return preds

    def infer(self, task: Task, samples: list[Sample], bar: Optional[tqdm] = None) -> int:
        """Run inference on the samples that have no stored prediction yet; return how many were stored.

        ``samples`` is one shard in plan order; batches are cut from it at fixed positions
        (:func:`unfinished_batches`), so a resumed run hands the model the same batches as an uninterrupted one.
        """
        done = self.finished(task.id)
        if all(s.id in done for s in samples):
            return 0
        if task.kind not in self.adapter.capabilities:
            raise TaskError(f"model {self.config.model} cannot run {task.id} (needs '{task.kind}')")
        size = self.config.batch_size or max(1, int(self.adapter.batch_size(task.kind)))
        out_dir = self.store.images_dir(task.id)
        stored = 0

        def commit(records: list[Prediction]) -> None:
            nonlocal stored
            appender.write(r.to_json() for r in records)
            faults.failpoint("batch_written", task.id)
            stored += len(records)
            if bar is not None:
                bar.update(len(records))

        # Generated images are encoded and written (PNG encoding is slow CPU work, ~50 ms an image, and releases
        # the GIL) by a pool of threads while the model draws the next batch, so a task's last batch is not a long
        # serial tail; a batch's records are appended only once all its images are on disk, so
        # a kill loses at most that batch, which a resumed run draws again whole (the same images).
        # Requests (image files and base64 cells decoded to pixels) are built one batch ahead in another thread,
        # so decoding overlaps the model's work on the current batch; a bad sample's error surfaces when its
        # batch's turn comes, after every earlier batch is stored.
        batches = list(unfinished_batches(samples, size, lambda s: s.id in done,
                                          group=(lambda s: s.image_key) if task.kind == "understand" else None))
        with self.store.prediction_writer(task.id, self.writer) as appender, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-save") as saver, \
                ThreadPoolExecutor(max_workers=IMAGE_WRITERS, thread_name_prefix="png") as encoders, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="requests") as builder:
            pending: Optional[Future] = None
            ahead = builder.submit(self._build_batch, task, batches[0]) if batches else None
            try:
                for i, batch in enumerate(batches):
                    prepared = ahead.result()
                    ahead = builder.submit(self._build_batch, task, batches[i + 1]) if i + 1 < len(batches) else None
                    work = self._run_batch(task, batch, out_dir, skip=done, saver=saver, prepared=prepared,
                                           encoders=encoders)
                    if pending is not None:
                        commit(pending.result())
                        pending = None
                    if isinstance(work, Future):
                        pending = work
                    else:
                        commit(work)
            except BaseException:
                # A later batch failed: the previous batch's images are being written; keep its records.
                if pending is not None and pending.exception() is None:
                    commit(pending.result())
                raise
            if pending is not None:
                commit(pending.result())
        return stored

    def _build_batch(self, task: Task, batch: list[Sample]) -> tuple[list, list[Sample], dict[str, Prediction]]:
        """The batch's requests (with the adapter's ``preprocess`` done), the samples they are for, and error records
        of samples that could not be built (``--skip-bad``; without it the first such error is raised)."""
        requests, ready, failed = [], [], {}
        for s in batch:
            try:
                requests.append(self._build_request(task, s))
                ready.append(s)
            except TaskError as exc:
                if not self.config.skip_bad:
                    raise
                log.warning("%s: sample %s recorded as an error (--skip-bad): %s", task.id, s.id, exc)
                failed[s.id] = Prediction(sample_id=s.id, error=str(exc))
        if requests and task.kind == "understand":
            self.adapter.preprocess(requests)  # the adapter's CPU preprocessing, also off the critical path
        return requests, ready, failed

    def _run_batch(self, task: Task, batch: list[Sample], out_dir: Path, skip: Container[str],
                   saver: ThreadPoolExecutor, prepared: tuple,
                   encoders: ThreadPoolExecutor) -> "list[Prediction] | Future":
        """Records, in batch order, of the batch's samples not in ``skip`` (stored by an interrupted attempt).

        The whole batch goes to the model either way, so the outputs do not depend on how far that attempt got.
        ``prepared``: :meth:`_build_batch`'s result for the batch.  A generation batch's images are written by
        ``saver`` (its PNGs encoded by ``encoders``) and a Future of its records is returned.
        """
        requests, ready, failed = prepared
        made: dict[str, Prediction] = {}

        def in_order() -> list[Prediction]:
            return [r for s in batch if s.id not in skip for r in [failed.get(s.id) or made[s.id]]]

        if not requests:
            return in_order()
        t0 = time.perf_counter()
        if task.kind == "understand":
            texts, bad = self._understand(task, ready, requests)
            if len(texts) != len(requests):
                raise RuntimeError(f"adapter returned {len(texts)} answers for {len(requests)} requests")
            secs = (time.perf_counter() - t0) / len(requests)
            for s, t in zip(ready, texts):
                made[s.id] = Prediction(sample_id=s.id, text=t, meta={"seconds": round(secs, 4)})
            for sid, why in bad.items():
                made[sid] = Prediction(sample_id=sid, error=why)
            return in_order()
        images = self.adapter.generate(requests)
        if len(images) != len(requests):
            raise RuntimeError(f"adapter returned {len(images)} image lists for {len(requests)} requests")
        secs = (time.perf_counter() - t0) / len(requests)

        def save() -> list[Prediction]:
            todo = [(s, req, imgs) for s, req, imgs in zip(ready, requests, images)
                    if s.id not in skip]  # a skipped sample's images and record are on disk already
            writes = [[encoders.submit(self.store.save_image, task.id, task.image_path(s, k), im) for k, im in enumerate(imgs)]
                      for s, _, imgs in todo]
            for (s, req, _), futures in zip(todo, writes):
                paths = [f.result() for f in futures]
                task.write_sample_files(out_dir, s)
                made[s.id] = Prediction(sample_id=s.id, images=paths, meta={"seed": req.seed, "seconds": round(secs, 4)})
            return in_order()

        return saver.submit(save)

    def score(self, task: Task, samples: list[Sample], results: dict[str, TaskResult]) -> TaskResult:
        ctx = ScoreContext(
            profile=task.profile(self.config.profile),
            work_dir=self.store.task_dir(task.id),
            judge=make_judge(self.config.judge),
        )
        if isinstance(task, GroupTask):
            result = task.combine({k: v for k, v in results.items() if k in task.subtasks}, ctx)
            result.warnings = list(dict.fromkeys(result.warnings + ctx.warnings))
        else:
            def keep(records: dict[str, dict[str, Any]]) -> None:
                self.store.write_scores(task.id, records)
                faults.failpoint("before_metrics", task.id)

            result, _ = score_predictions(task, samples, self.store.read_predictions(task.id), ctx, keep_records=keep)
        if task.id in self.subsets:  # a quick suite's number is not the benchmark's: say so wherever it is shown
            sub = self.subsets[task.id]
            result.metrics["subset"] = sub
            result.warnings.append(
                f"{task.id}: scored on a subset of the benchmark: {sub['n_selected']} of {sub['n_available']} "
                f"units, {sub['n_samples']} samples (seed {sub['seed']}), not the full benchmark's score")
        self.store.write_metrics(result)
        return result

    def load_plan(self) -> None:
        """Load every task and its samples in plan order, and cut the plan into shards."""
        task_ids = registry.expand_task_ids(self.config.tasks)
        unknown = sorted(set(self.config.subset.sizes) - set(task_ids)) if self.config.subset else []
        if unknown:
            raise TaskError(f"subset.sizes names tasks this run does not have: {', '.join(unknown)}")
        self.tasks = {tid: self.make_task(tid) for tid in task_ids}
        self.samples: dict[str, list[Sample]] = {}
        for tid, task in self.tasks.items():
            if not task.subtasks:
                self.samples[tid] = ordered(self.load_samples(task), task.kind)
        self.plan = make_plan([(tid, len(v)) for tid, v in self.samples.items()], self.config.shard_size,
                              {tid: sample_work(self.tasks[tid].images_per_sample()) for tid in self.samples})
        if self.writer in ("main", "rank0"):  # one process per run directory writes these (no racing writers)
            manifest.record_data(self.store, self.data_sources, self.subsets)

    def shard_samples(self, shard: Shard) -> list[Sample]:
        return self.samples[shard.task_id][shard.start : shard.stop]

    def infer_shards(self, shards: list[Shard]) -> int:
        """Run the given shards in this process, with per-task and overall progress bars."""
        total = sum(s.stop - s.start for s in shards)
        done_ids = {tid: set(self.finished(tid)) for tid in {s.task_id for s in shards}}
        already = sum(1 for sh in shards for x in self.shard_samples(sh) if x.id in done_ids[sh.task_id])
        overall = tqdm(total=total, initial=already, desc="all tasks", unit="sample", disable=not self.progress,
                       position=0, dynamic_ncols=True)
        inferred = 0
        try:
            for tid in dict.fromkeys(s.task_id for s in shards):
                mine = [s for s in shards if s.task_id == tid]
                n_task = sum(s.stop - s.start for s in mine)
                n_done = sum(1 for sh in mine for x in self.shard_samples(sh) if x.id in done_ids[tid])
                bar = tqdm(total=n_task, initial=n_done, desc=tid, unit="sample", disable=not self.progress,
                           position=1, leave=False, dynamic_ncols=True)
                t0, started = time.perf_counter(), time.time()
                before = self._adapter.counters() if self._adapter is not None else {}
                n = 0
                try:
                    for sh in mine:
                        k = self.infer(self.tasks[tid], self.shard_samples(sh), bar)
                        n += k
                        overall.update(k)
                finally:
                    bar.close()
                inferred += n
                if n:
                    secs = time.perf_counter() - t0
                    log.info("%s: %d samples inferred (%.2f samples/s), %d already stored", tid, n, n / max(secs, 1e-9),
                             n_done)
                    after = self.adapter.counters()
                    self.store.append_inference_stats(
                        {"task": tid, "samples": n, "seconds": round(secs, 3), "started": started,
                         "finished": time.time(),
                         "adapter": {k: v - before.get(k, 0) for k, v in after.items()}}, self.writer)
        finally:
            overall.close()
        return inferred

    def score_all(self, outcome: RunOutcome, only: Optional[list[str]] = None) -> None:
        """Score tasks (group tasks after their members); one task's failure does not lose the others."""
        for tid, task in self.tasks.items():
            if only is not None and tid not in only:
                continue
            try:
                outcome.results[tid] = self.score(task, self.samples.get(tid, []), outcome.results)
                r = outcome.results[tid]
                log.info("%s: %s = %s (%s)", tid, r.headline.name, r.headline.value, r.headline.scale)
            except Exception as exc:
                outcome.failed[tid] = f"{type(exc).__name__}: {exc}"
                log.error("%s: scoring failed: %s\n%s", tid, exc, traceback.format_exc())

    def score_completed(self, outcome: RunOutcome, task_id: str) -> None:
        """Score a task whose samples are all in, then every group task whose members are all scored now."""
        self.score_all(outcome, only=[task_id])
        for gid, task in self.tasks.items():
            if isinstance(task, GroupTask) and gid not in outcome.results \
                    and all(m in outcome.results for m in task.subtasks):
                self.score_all(outcome, only=[gid])

    def run(self, rank: int = 0, world: int = 1, infer_only: bool = False, gpus: Optional[list[str]] = None,
            retries: int = 2) -> RunOutcome:
        """Infer, then (unless ``infer_only``) score, tabulate and mark the run finished.

        Inference runs this process's shards of a ``world``-process job (all of them when world is 1), or with
        ``gpus`` every shard on a local pool of workers, which scores each task as its last shard comes in.
        A task with a failed shard is left unscored and named in ``outcome.failed``.
        """
        outcome = RunOutcome(store=self.store)
        if gpus:
            from unitoken_eval.harness.pool import run_pool

            report = run_pool(self, gpus, retries=retries, progress=self.progress,
                              on_task_done=None if infer_only else lambda tid: self.score_completed(outcome, tid))
            outcome.inferred = report.inferred
            for key, why in report.failed_shards.items():
                outcome.failed[key] = f"shard failed: {why}"
        else:
            self.load_plan()
            try:
                outcome.inferred = self.infer_shards(shards_for(self.plan, rank, world))
            finally:
                self.close()
        if infer_only:
            return outcome
        unfinished = {key.split("[", 1)[0] for key in outcome.failed if "[" in key}  # tasks with a failed shard
        self.score_all(outcome, only=[t for t in self.tasks if t not in outcome.results and t not in unfinished])
        manifest.record_downloads(self.store)
        from unitoken_eval.harness.tables import write_run_tables

        outcome.tables = write_run_tables(self.store)
        manifest.record_finished(self.store, outcome.failed)
        return outcome


def execute_run(config: RunConfig, out: Optional[Path], *, resume: bool, runs_root: Path, rank: int = 0,
                world: int = 1, gpus: Optional[list[str]] = None, retries: int = 2, infer_only: bool = False,
                progress: bool = True) -> RunOutcome:
    """Run ``config`` into the run directory ``out`` (a new one under ``runs_root`` when None).

    ``world`` > 1: this process is rank ``rank`` of a torchrun/Slurm job sharing ``out``; it only infers.
    ``gpus``: a local pool, one worker per GPU.  Otherwise everything runs in this process.
    """
    sharded = world > 1
    writer = f"rank{rank}" if sharded else "main"
    store = manifest.start_run(config, out, resume or sharded, runs_root, writer=writer)
    manifest.attach_log(store)
    try:
        return Runner(config, store, writer=writer, progress=progress).run(
            rank=rank, world=world, infer_only=infer_only or sharded, gpus=gpus, retries=retries)
    finally:
        store.unlock()
