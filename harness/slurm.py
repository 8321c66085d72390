"""``unitoken-eval slurm``: write sbatch scripts for a job array of shard workers plus a scoring step.

Slurm does the scheduling; the array tasks only share the run directory (on a shared filesystem).  Each
array task runs ``unitoken-eval run`` and takes shard SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT; the
scoring script, submitted with an ``afterany`` dependency, merges and scores with ``run --resume``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional


def _sbatch_header(name: str, log_dir: Path, partition: Optional[str], time: str, gres: Optional[str],
                   cpus: int, mem: Optional[str], extra: list[str]) -> list[str]:
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name={name}", f"#SBATCH --time={time}",
             f"#SBATCH --cpus-per-task={cpus}"]
    if gres:
        lines.append(f"#SBATCH --gres={gres}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if mem:
        lines.append(f"#SBATCH --mem={mem}")
    lines += [f"#SBATCH {x}" for x in extra]
    return lines


def write_scripts(run_args: list[str], out: Path, array: int, script_dir: Path, partition: Optional[str] = None,
                  time: str = "04:00:00", cpus: int = 8, mem: Optional[str] = None,
                  extra: Optional[list[str]] = None, setup: Optional[str] = None,
                  gres: Optional[str] = "gpu:1") -> tuple[Path, Path]:
    """Write ``infer.sbatch`` (the array) and ``score.sbatch``; return their paths.

    ``gres`` is each job's generic-resource request (``gpu:1``); None or "none" writes no ``--gres`` line,
    for clusters that take GPUs another way (``--sbatch-option --gpus-per-task=1``)."""
    if array < 1:
        raise ValueError("--array must be at least 1")
    gres = None if gres in (None, "", "none") else gres
    for option in extra or []:
        if not option.startswith("-"):
            raise ValueError(f"--sbatch-option {option!r}: expected an sbatch option such as --account=abc")
    script_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out / "slurm"
    base = ["unitoken-eval", "run", *run_args, "--out", str(out), "--no-progress"]
    pre = [setup] if setup else []
    infer = _sbatch_header("unitoken-eval-infer", log_dir, partition, time, gres, cpus, mem, extra or [])
    infer += [f"#SBATCH --array=0-{array - 1}", f"#SBATCH --output={log_dir}/infer-%A_%a.log", "set -euo pipefail",
              f"mkdir -p {shlex.quote(str(log_dir))}", *pre,
              "# The shard comes from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT.",
              shlex.join(base + ["--infer-only"])]
    score = _sbatch_header("unitoken-eval-score", log_dir, partition, time, gres, cpus, mem, extra or [])
    score += [f"#SBATCH --output={log_dir}/score-%j.log", "set -euo pipefail", *pre,
              "# Merges every shard's predictions, re-runs any gap left by a failed array task (hence a GPU), and scores.",
              shlex.join(base + ["--resume"])]
    infer_path, score_path = script_dir / "infer.sbatch", script_dir / "score.sbatch"
    infer_path.write_text("\n".join(infer) + "\n")
    score_path.write_text("\n".join(score) + "\n")
    return infer_path, score_path
