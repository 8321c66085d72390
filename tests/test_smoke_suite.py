"""The embedded default end to end: `unitoken-eval run --suite smoke` offline on CPU, then `--resume`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_registry import PROJECT_TASKS


@pytest.mark.slow
# The first run is `make demo` itself: about a minute on 2 idle cores, over 15 minutes on 2 cores shared by
# many jobs; the resume does no inference.  Limits for the loaded case, so only a hang fails on time.
@pytest.mark.timeout(3600)
def test_smoke_suite_runs_every_task_and_resume_does_no_new_inference(tmp_path):
    out = tmp_path / "smoke"
    env = dict(os.environ, UNITOKEN_EVAL_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--suite", "smoke", "--out", str(out), "--no-progress"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=2700)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] and manifest["model_fingerprint"]["adapter"] == "tiny"
    for task in PROJECT_TASKS:
        metrics = json.loads((out / "tasks" / task / "metrics.json").read_text())
        # Scored, or explicitly not scored with a reason (MM-Vet without a judge): never a silent zero.
        assert metrics["status"] == "scored" or (metrics["reason"] and metrics["headline"]["value"] is None), task
        if task != "t2i_compbench":
            assert any((out / "tasks" / task).glob("predictions-*.jsonl")), task
    # Generated images in the official layouts.
    assert list((out / "tasks" / "geneval" / "images").glob("*/samples/*.png"))
    assert list((out / "tasks" / "geneval" / "images").glob("*/metadata.jsonl"))
    assert list((out / "tasks" / "t2i_compbench_color" / "images" / "samples").glob("*_000000.png"))
    tables = out / "tables"
    assert list(tables.glob("*.csv")) and list(tables.glob("*.tex"))
    assert "General" in "".join(p.read_text() for p in tables.glob("*.csv"))

    again = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "inferred this time: 0 samples" in again.stdout
