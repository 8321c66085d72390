"""Execute a run: load tasks, send batches to the adapter, append predictions, score, aggregate, tabulate.

The runner never knows the model: it asks the adapter for a batch size per request kind and hands it
batches.  Everything produced is appended to the store as it is produced, so a killed run resumes where it
stopped and never repeats (or duplicates) a finished sample.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

from tqdm.auto import tqdm

from harness import registry
from harness.config import RunConfig
from harness.store import RunStore, StoreError, new_run_id, now_iso
from harness.types import GenerateRequest, Prediction, Sample, TaskResult, UnderstandRequest
from tasks.base import ScoreContext, Task, TaskError

log = logging.getLogger("unitoken_eval")

# The fields of a config that must match for --resume to continue a run rather than mix two runs.
_IDENTITY_FIELDS = ("model", "model_args", "profile", "limit", "smoke", "seed", "data", "options")


def derive_seed(base: int, task_id: str, sample_id: str) -> int:
    """A per-sample seed independent of order and sharding, so any worker draws the same image."""
    digest = hashlib.sha256(f"{base}\0{task_id}\0{sample_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("unitoken-eval", "torch", "transformers", "datasets", "pandas", "numpy", "pillow", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = res.stdout.strip()
    if res.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5, check=False,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


@dataclass
class RunOutcome:
    store: RunStore
    results: dict[str, TaskResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    inferred: int = 0


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

    # ----- the adapter is created only when there is inference to do: a finished run resumes without it
    @property
    def adapter(self):
        if self._adapter is None:
            if self._adapter_factory is not None:
                self._adapter = self._adapter_factory()
            else:
                cls = registry.adapter_class(self.config.model)
                self._adapter = cls(**self.config.model_args)
            self.store.update_manifest(model_fingerprint=self._adapter.fingerprint())
        return self._adapter

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
        samples = task.load(source, self.config.limit)
        seen: set[str] = set()
        for s in samples:
            if s.id in seen:
                raise TaskError(f"task {task.id}: sample id {s.id!r} appears twice in its data")
            seen.add(s.id)
        return samples

    def _build_request(self, task: Task, sample: Sample):
        req = task.request(sample)
        extra = self.config.options.get(task.id, {}).get("request", {})
        req.options = {**req.options, **extra}
        if isinstance(req, GenerateRequest):
            req.seed = derive_seed(self.config.seed, task.id, sample.id)
        return req

    def infer(self, task: Task, samples: list[Sample], bar: Optional[tqdm] = None) -> int:
        """Run inference on the samples that have no stored prediction yet; return how many were run."""
        done = self.store.read_predictions(task.id)
        todo = [s for s in samples if s.id not in done]
        if not todo:
            return 0
        if task.kind not in self.adapter.capabilities:
            raise TaskError(f"model {self.config.model} cannot run {task.id} (needs '{task.kind}')")
        size = self.config.batch_size or max(1, int(self.adapter.batch_size(task.kind)))
        if task.kind == "understand":
            # Neighbouring requests about one image let the adapter share that image's prefill.
            todo.sort(key=lambda s: (str(s.fields.get("image_key", s.id))))
        out_dir = self.store.images_dir(task.id)
        with self.store.prediction_writer(task.id, self.writer) as appender:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                records = self._run_batch(task, batch, out_dir)
                appender.write(r.to_json() for r in records)
                if bar is not None:
                    bar.update(len(batch))
        return len(todo)

    def _run_batch(self, task: Task, batch: list[Sample], out_dir: Path) -> list[Prediction]:
        requests, ready, failed = [], [], []
        for s in batch:
            try:
                requests.append(self._build_request(task, s))
                ready.append(s)
            except TaskError as exc:
                if not self.config.skip_bad:
                    raise
                log.warning("%s: sample %s skipped: %s", task.id, s.id, exc)
                failed.append(Prediction(sample_id=s.id, error=str(exc)))
        if not requests:
            return failed
        t0 = time.perf_counter()
        if task.kind == "understand":
            texts = self.adapter.understand(requests)
            if len(texts) != len(requests):
                raise RuntimeError(f"adapter returned {len(texts)} answers for {len(requests)} requests")
            secs = (time.perf_counter() - t0) / len(requests)
            preds = [Prediction(sample_id=s.id, text=t, meta={"seconds": round(secs, 4)}) for s, t in zip(ready, texts)]
        else:
            images = self.adapter.generate(requests)
            if len(images) != len(requests):
                raise RuntimeError(f"adapter returned {len(images)} image lists for {len(requests)} requests")
            secs = (time.perf_counter() - t0) / len(requests)
            preds = []
            for s, req, imgs in zip(ready, requests, images):
                paths = [self.store.save_image(task.id, task.image_path(s, k), im) for k, im in enumerate(imgs)]
                task.write_sample_files(out_dir, s)
                preds.append(Prediction(sample_id=s.id, images=paths, meta={"seed": req.seed, "seconds": round(secs, 4)}))
        return failed + preds

    def score(self, task: Task, samples: list[Sample], results: dict[str, TaskResult]) -> TaskResult:
        ctx = ScoreContext(
            profile=task.profile(self.config.profile),
            work_dir=self.store.task_dir(task.id),
            judge=make_judge(self.config.judge),
            options=dict(self.config.options.get(task.id, {})),
        )
        if task.subtasks:
            result = task.combine({k: v for k, v in results.items() if k in task.subtasks}, ctx)
        else:
            preds = self.store.read_predictions(task.id)
            errors = {k: p for k, p in preds.items() if p.error is not None}
            usable = {k: p for k, p in preds.items() if p.error is None}
            missing = [s.id for s in samples if s.id not in preds]
            if missing:
                ctx.warn(f"{task.id}: {len(missing)} samples have no prediction (first: {missing[0]})")
            records = task.score([s for s in samples if s.id in usable], usable, ctx)
            self.store.write_scores(task.id, records)
            result = task.aggregate(records, ctx)
            result.n_errors = len(errors)
        result.warnings = list(dict.fromkeys(result.warnings + ctx.warnings))
        self.store.write_metrics(result)
        return result

    def run(self) -> RunOutcome:
        outcome = RunOutcome(store=self.store)
        task_ids = registry.expand_task_ids(self.config.tasks)
        tasks = {tid: self.make_task(tid) for tid in task_ids}
        loaded: dict[str, list[Sample]] = {}
        for tid, task in tasks.items():
            if not task.subtasks:
                loaded[tid] = self.load_samples(task)
        total = sum(len(v) for v in loaded.values())
        overall = tqdm(total=total, desc="all tasks", unit="sample", disable=not self.progress, position=0)
        try:
            for tid, samples in loaded.items():
                done_before = len(self.store.read_predictions(tid))
                overall.update(min(done_before, len(samples)))
                bar = tqdm(total=len(samples), initial=min(done_before, len(samples)), desc=tid, unit="sample",
                           disable=not self.progress, position=1, leave=False)
                try:
                    n = self.infer(tasks[tid], samples, bar)
                    outcome.inferred += n
                    overall.update(n)
                    log.info("%s: %d samples inferred, %d already stored", tid, n, done_before)
                finally:
                    bar.close()
        finally:
            overall.close()
            self.close()
        for tid, task in tasks.items():
            try:
                outcome.results[tid] = self.score(task, loaded.get(tid, []), outcome.results)
                r = outcome.results[tid]
                log.info("%s: %s = %s (%s)", tid, r.headline.name, r.headline.value, r.headline.scale)
            except Exception as exc:  # one task's scoring failure must not lose the others
                outcome.failed[tid] = f"{type(exc).__name__}: {exc}"
                log.error("%s: scoring failed: %s\n%s", tid, exc, traceback.format_exc())
        return outcome


def make_judge(spec: Optional[str]):
    """The judge client for ``--judge`` (None or 'none' means no judge)."""
    if spec in (None, "", "none"):
        return None
    from harness.judge import Judge

    return Judge.from_spec(spec)


def start_run(config: RunConfig, out: Optional[Path], resume: bool, runs_root: Path) -> RunStore:
    """Create a new run directory or reopen one for --resume, refusing to mix two different runs.

    ``--resume`` on a directory that holds no run yet starts one there, so one command line serves the
    first attempt and every retry (what a preemptible job wants).
    """
    identity = {k: v for k, v in config.model_dump().items() if k in _IDENTITY_FIELDS}
    if out is None:
        if resume:
            raise StoreError("--resume needs --out RUN_DIR (the run to continue)")
        out = runs_root / new_run_id(config.model)
    store = RunStore(out)
    if store.exists():
        if not resume:
            raise StoreError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        manifest = store.read_manifest()
        before = manifest.get("identity", {})
        from harness.store import redact

        now = redact(identity)
        diffs = [k for k in _IDENTITY_FIELDS if before.get(k) != now.get(k)]
        if diffs:
            raise StoreError(
                f"{out} was started with different {', '.join(diffs)}; "
                "a resumed run must use the same model, data and options (start a new run instead)"
            )
        tasks = list(dict.fromkeys(manifest.get("tasks", []) + config.tasks))
        store.lock()
        store.update_manifest(tasks=tasks, resumed=manifest.get("resumed", []) + [now_iso()], finished=None)
        return store
    store.lock()
    store.write_manifest(
        {
            "run_id": store.root.name,
            "identity": identity,
            "tasks": config.tasks,
            "config": config.model_dump(),
            "versions": package_versions(),
            "git_commit": git_commit(),
            "seed": config.seed,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "argv": sys.argv,
            "started": now_iso(),
            "finished": None,
        }
    )
    return store


def attach_log(store: RunStore) -> logging.Handler:
    handler = logging.FileHandler(store.root / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("unitoken_eval").addHandler(handler)
    logging.getLogger("unitoken_eval").setLevel(logging.INFO)
    return handler
