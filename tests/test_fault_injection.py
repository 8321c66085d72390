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
    return [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--model", "fake_echo_model",
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


def test_batches_are_fixed_so_a_resumed_run_answers_as_an_uninterrupted_one(plugins, tmp_path):
    """A kill in the middle of writing batch 2 leaves some of its answers on disk; the resumed run must hand
    the model batch 2 whole again (not the leftovers plus the start of batch 3), store only the missing answers,
    and so end identical to an uninterrupted run even for a model whose answers depend on their batch."""
    env = _env(plugins)
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--model", "fake_echo_model", "--model-args",
           "batch=4,batch_echo=1", "--tasks", "fake_echo", "--no-progress", "--resume", "--out"]
    subprocess.run(cmd + [str(tmp_path / "clean")], env=env, check=True, capture_output=True, timeout=120)
    run = tmp_path / "killed"
    killed = subprocess.run(cmd + [str(run)], env=dict(env, UNITOKEN_EVAL_KILL_AT="torn_write@fake_echo#2"),
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    raw = (run / "tasks" / "fake_echo" / "predictions-main.jsonl").read_bytes()
    assert not raw.endswith(b"\n") and 3 <= raw.count(b"\n") < 6  # batch 1 whole, part of batch 2, a torn line
    subprocess.run(cmd + [str(run)], env=env, check=True, capture_output=True, timeout=120)
    got, want = _state(run), _state(tmp_path / "clean")
    assert got == want
    answers = {r["id"]: r["prediction"] for r in got[0]["fake_echo"]}
    # batches of up to 4 never split a picture's three questions (q0 q1 q2 | q3 q4 q5 | q6 q7 q8 q9):
    # batch 2 is the interrupted one
    assert answers["q4"] == "q4 in [q3+q4+q5]" and answers["q9"] == "q9 in [q6+q7+q8+q9]"


def test_unfinished_batches_keeps_batch_boundaries():
    from unitoken_eval.harness.plan import unfinished_batches

    items = list(range(10))
    done = {0, 1, 2, 3, 4, 5, 8}
    assert list(unfinished_batches(items, 4, done.__contains__)) == [[4, 5, 6, 7], [8, 9]]
    assert list(unfinished_batches(items, 4, lambda x: True)) == []
    with pytest.raises(ValueError):
        list(unfinished_batches(items, 0, done.__contains__))
