"""The run directory's record of what ran: its manifest (identity, config, versions, host, the model's
fingerprint, the data read, downloads) and its log.

A resumed run is checked against this record, so two different runs never mix in one directory.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness import registry, remote
from unitoken_eval.harness.config import RunConfig
from unitoken_eval.harness.store import RunStore, StoreError, new_run_id, now_iso, redact

# The fields of a config that must match for --resume to continue a run rather than mix two runs.
IDENTITY_FIELDS = ("model", "model_args", "profile", "limit", "smoke", "seed", "data", "options", "subset")
# Fields that only change how work is spread or reported may differ between a run and its resumption.


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("unitoken-eval", "torch", "transformers", "tokenizers", "huggingface-hub", "datasets", "pandas",
                 "numpy", "pillow", "safetensors", "scipy", "mmdet", "mmengine", "mmcv-lite", "spacy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def runtime_info() -> dict[str, Any]:
    """What besides versions changes float results on "the same hardware": device, thread count, kernels."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # imported by the adapter by now; never imported just for the manifest
    if torch is not None:
        info.update(torch_threads=torch.get_num_threads(),
                    deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
                    cuda=torch.version.cuda, cuda_devices=[torch.cuda.get_device_name(i)
                                                           for i in range(torch.cuda.device_count())])
        if torch.backends.cudnn.is_available():
            info["cudnn"] = torch.backends.cudnn.version()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var) is not None:
            info[var] = os.environ[var]
    return info


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


def check_fingerprint(store: RunStore, fingerprint: Any) -> None:
    """Refuse a resumed run whose model's fingerprint is not the one the manifest recorded when it started
    (a replayed file edited, a checkpoint re-uploaded): its records would mix two models."""
    now = json.loads(json.dumps(redact(fingerprint), default=str))
    before = store.read_manifest().get("model_fingerprint")
    if before is not None and before != now:
        keys = sorted(k for k in {*before, *now} if before.get(k) != now.get(k)) \
            if isinstance(before, dict) and isinstance(now, dict) else []
        raise StoreError(f"{store.root} was started with another model fingerprint (differs in "
                         f"{', '.join(keys) or 'value'}: {before} vs now {now}); a resumed run must use the same "
                         "model, so start a new run")


def smoke_reason(config: RunConfig) -> Optional[str]:
    """Why a run's numbers say nothing about a model (smoke data, a stand-in model), or None."""
    why = []
    if config.smoke:
        why.append("embedded smoke data")
    try:
        stand_in = getattr(registry.adapter_class(config.model), "stand_in", None)
    except registry.RegistryError:  # a Runner given its adapter directly (adapter_factory) names no plugin
        stand_in = None
    if stand_in:
        why.append(f"model {config.model}: {stand_in}")
    return "; ".join(why) or None


def start_run(config: RunConfig, out: Optional[Path], resume: bool, runs_root: Path, writer: str = "main") -> RunStore:
    """Create a new run directory or reopen one for --resume, refusing to mix two different runs.

    ``--resume`` on a directory that holds no run yet starts one there, so one command line serves the
    first attempt and every retry (what a preemptible job wants).
    """
    identity = {k: v for k, v in config.model_dump().items() if k in IDENTITY_FIELDS}
    remote.reset()
    if out is None:
        if resume:
            raise StoreError("--resume needs --out RUN_DIR (the run to continue)")
        out = runs_root / new_run_id(config.model)
    store = RunStore(out)
    # A run that failed before inferring anything (a typo in the model args) does not block its own retry.
    if store.exists() and (store.holds_records() or writer != "main"):
        if not resume:
            raise StoreError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        manifest = store.read_manifest()
        before = manifest.get("identity", {})
        now = redact(identity)
        diffs = [k for k in IDENTITY_FIELDS if before.get(k) != now.get(k)]
        if diffs:
            raise StoreError(
                f"{out} was started with different {', '.join(diffs)}; a resumed run must use the same model, "
                f"data and options: resume with the run's own settings (in {store.manifest_path}) or choose "
                "another --out for a new run"
            )
        tasks = list(dict.fromkeys(manifest.get("tasks", []) + config.tasks))
        store.lock(writer)
        store.update_manifest(tasks=tasks, resumed=manifest.get("resumed", []) + [now_iso()], finished=None)
        return store
    store.lock(writer)
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
            "smoke": smoke_reason(config),
            "started": now_iso(),
            "finished": None,
        }
    )
    return store


def record_model(store: RunStore, fingerprint: Any) -> None:
    """Check the model against the run's record (:func:`check_fingerprint`), then record it with the runtime."""
    check_fingerprint(store, fingerprint)
    manifest = store.read_manifest()
    store.update_manifest(model_fingerprint=fingerprint, runtime=runtime_info(),
                          remote_sources=remote.merge(manifest.get("remote_sources")))


def record_data(store: RunStore, data_files: dict[str, dict[str, Any]],
                subsets: Optional[dict[str, dict[str, Any]]] = None) -> None:
    """Record what each task's load() read (path and digest), the subsets drawn from it, and the downloads so far."""
    manifest = store.read_manifest()
    store.update_manifest(data_files={**manifest.get("data_files", {}), **data_files},
                          subsets={**manifest.get("subsets", {}), **(subsets or {})},
                          remote_sources=remote.merge(manifest.get("remote_sources")))


def record_downloads(store: RunStore) -> None:
    store.update_manifest(remote_sources=remote.merge(store.read_manifest().get("remote_sources")))


def record_finished(store: RunStore, failed: dict[str, str]) -> None:
    store.update_manifest(finished=now_iso(), failed_tasks=failed)


def attach_log(store: RunStore) -> logging.Handler:
    handler = logging.FileHandler(store.root / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("unitoken_eval").addHandler(handler)
    logging.getLogger("unitoken_eval").setLevel(logging.INFO)
    return handler
