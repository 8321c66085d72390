"""Kill a run with SIGKILL at several points; ``--resume`` must end with exactly the records and metrics of
an uninterrupted run: no duplicate, no torn line, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--model", "fake_echo_model",
            "--model-args", "batch=2,sleep=0.03", "--tasks", "fake_echo,fake_draw", "--out", str(out),
            "--no-progress", "--resume"]


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _lines(run: Path, task: str) -> int:
    return sum(len(p.read_bytes().split(b"\n")) - 1 for p in (run / "tasks" / task).glob("predictions-*.jsonl"))


def _state(run: Path) -> tuple[dict, dict]:
    records, metrics = {}, {}
    for task_dir in sorted((run / "tasks").iterdir()):
        recs = []
        for p in task_dir.glob("predictions-*.jsonl"):
            for line in p.read_text().splitlines():
                obj = json.loads(line)
                obj.get("meta", {}).pop("seconds", None)  # wall time differs between runs
                recs.append(obj)
        ids = [r["id"] for r in recs]
        assert len(ids) == len(set(ids)), f"duplicate records in {task_dir.name}"
        records[task_dir.name] = sorted(recs, key=lambda r: r["id"])
        metrics[task_dir.name] = json.loads((task_dir / "metrics.json").read_text())
    return records, metrics


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_identical_results(plugins, tmp_path):
    env = _env(plugins)
    clean = tmp_path / "clean"
    subprocess.run(_cmd(clean), env=env, check=True, capture_output=True, timeout=120)
    expected = _state(clean)

    for after in (1, 3, 7):  # kill once this many answers are on disk
        run = tmp_path / f"killed-{after}"
        proc = subprocess.Popen(_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (run / "tasks" / "fake_echo").exists() and _lines(run, "fake_echo") >= after:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert not (run / "tasks" / "fake_echo" / "metrics.json").exists()
        subprocess.run(_cmd(run), env=env, check=True, capture_output=True, timeout=120)
        assert _state(run) == expected
