"""The real smoke path (tiny UniToken, embedded MMBench + GenEval data, smoke detector) killed with SIGKILL at
named points, then resumed: each must end with exactly the records, images, scores and metrics of an
uninterrupted run.  Also: two fresh runs of one config are identical, and the manifest says how to redo them.

Kills use the harness's fail points (harness/faults.py) so each lands in the window it is meant to test
(half a batch on disk, detections half done, scores without metrics) whatever the machine's speed.
Processes run with one torch thread: on a shared 2-core machine that is 3x faster than oversubscribed
threads, and lets two runs proceed side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDLESS = re.compile(rb',?"seconds":[0-9.eE+-]+')  # wall time per sample: the only field allowed to differ

CONFIG = """\
model: tiny
model_args: {batch_size: 4, gen_batch_size: 2, anyres: "false", max_new_tokens: 8}
tasks: [mmbench_dev_en, geneval]
smoke: true
limit: 3
seed: 7
profile: official
options:
  geneval: {detector: smoke, color_model: smoke, images_per_prompt: 1, detector_chunk: 2}
"""
# mmbench_dev_en: 10 rows (3 circular groups) in understanding batches of 4; geneval: 3 prompts in generation
# batches of 2 and detector chunks of 2, so every kill below leaves a batch or chunk half done.


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke-faults")
    cache = root / "cache"
    e = dict(os.environ, UNITOKEN_EVAL_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e.pop("UNITOKEN_EVAL_KILL_AT", None)
    # write the tiny checkpoint once, before runs in parallel could race to write it
    subprocess.run([sys.executable, "-c", "from unitoken_eval.model_adapters.tiny import tiny_checkpoint; tiny_checkpoint(0)"],
                   env=e, cwd=ROOT, check=True, timeout=300)
    (root / "config.yaml").write_text(CONFIG)
    return root, e


def _run(root: Path, env: dict, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    e = dict(env)
    if kill_at:
        e["UNITOKEN_EVAL_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--config", str(root / "config.yaml"), "--out", str(out),
           "--no-progress", "--resume"]
    return subprocess.run(cmd, env=e, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _state(run: Path) -> dict:
    """Everything a run leaves that a resume must reproduce, wall times removed."""
    state: dict = {}
    for task_dir in sorted((run / "tasks").iterdir()):
        files = sorted(task_dir.glob("predictions-*.jsonl"))
        raw = b"".join(p.read_bytes() for p in files)
        assert raw.endswith(b"\n"), f"{task_dir.name}: torn last line left behind"
        lines = [SEEDLESS.sub(b"", ln) for ln in raw.split(b"\n")[:-1]]
        ids = [json.loads(ln)["id"] for ln in lines]
        assert len(ids) == len(set(ids)), f"{task_dir.name}: duplicate records {sorted(ids)}"
        t = state[task_dir.name] = {"predictions": sorted(lines)}
        for name in ("scores.jsonl", "metrics.json", "detections.jsonl", "results.jsonl"):
            if (task_dir / name).exists():
                t[name] = (task_dir / name).read_text()
        t["images"] = {str(p.relative_to(task_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in sorted(task_dir.glob("images/**/*")) if p.is_file()}
    return state


@pytest.fixture(scope="module")
def clean(env):
    """Two uninterrupted runs of the same config in fresh directories (side by side)."""
    root, e = env
    outs = [root / "clean-a", root / "clean-b"]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda o: _run(root, e, o), outs))
    for p in done:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return outs


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_fresh_runs_give_identical_predictions_images_and_metrics(clean):
    a, b = (_state(x) for x in clean)
    assert set(a) == {"mmbench_dev_en", "geneval"}
    assert a == b
    metrics = json.loads(a["mmbench_dev_en"]["metrics.json"])
    assert metrics["status"] == "scored" and metrics["n_samples"] == 10 and metrics["n_errors"] == 0
    assert len(a["geneval"]["images"]) == 3 + 3  # three PNGs and their metadata.jsonl


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_manifest_records_what_a_rerun_needs(clean):
    from unitoken_eval.harness.store import sha256_file

    m = json.loads((clean[0] / "manifest.json").read_text())
    assert m["config"]["seed"] == 7 and m["seed"] == 7 and m["config"]["model_args"]["batch_size"] == 4
    assert m["config"]["options"]["geneval"]["detector"] == "smoke"
    fp = m["model_fingerprint"]
    assert fp["adapter"] == "tiny" and fp["seed"] == 0
    for pkg in ("python", "torch", "transformers", "numpy", "pillow", "safetensors"):
        assert m["versions"].get(pkg), pkg
    assert m["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", m["git_commit"])
    assert m["runtime"]["torch_threads"] == 1 and m["runtime"]["OMP_NUM_THREADS"] == "1"
    tsv = ROOT / "tasks" / "smoke_data" / "understanding" / "MMBench_DEV_EN.tsv"
    assert m["data_files"]["mmbench_dev_en"]["sha256"] == sha256_file(tsv)
    assert Path(m["data_files"]["mmbench_dev_en"]["path"]).resolve() == tsv
    gen = ROOT / "tasks" / "smoke_data" / "geneval" / "evaluation_metadata.jsonl"
    assert m["data_files"]["geneval"]["sha256"] == sha256_file(gen)
    assert m["remote_sources"] == []  # everything came from the local disk


KILLS = [
    # (fail point, what must be on disk when the process dies)
    ("torn_write@mmbench_dev_en#2", "understanding inference: batch 2 half written, last line torn"),
    ("batch_written@geneval#1", "generation: first batch of images stored, second not started"),
    ("detections@geneval#1", "scoring: first detector chunk cached, second not run"),
    ("before_metrics@mmbench_dev_en", "after every prediction: scores written, metrics not"),
]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_each_point_then_resume_matches_the_uninterrupted_run(env, clean):
    root, e = env
    expected = _state(clean[0])

    def scenario(kill_at: str):
        out = root / ("killed-" + re.sub(r"\W+", "-", kill_at))
        killed = _run(root, e, out, kill_at)
        seen = _partial(out)
        resumed = _run(root, e, out)
        return kill_at, killed, seen, resumed, out

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(scenario, [k for k, _ in KILLS]))
    for kill_at, killed, seen, resumed, out in results:
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.returncode, killed.stderr[-2000:])
        _check_partial(kill_at, seen)
        assert resumed.returncode == 0, (kill_at, resumed.stderr[-3000:])
        assert _state(out) == expected, kill_at


def _partial(run: Path) -> dict:
    t = run / "tasks"
    mm, ge = t / "mmbench_dev_en", t / "geneval"
    raw = b"".join(p.read_bytes() for p in mm.glob("predictions-*.jsonl"))
    return {
        "mm_raw": raw,
        "mm_metrics": (mm / "metrics.json").exists(), "mm_scores": (mm / "scores.jsonl").exists(),
        "ge_preds": sum(1 for p in ge.glob("predictions-*.jsonl") for _ in p.read_text().splitlines()),
        "ge_dets": len((ge / "detections.jsonl").read_text().splitlines()) if (ge / "detections.jsonl").exists() else 0,
        "ge_metrics": (ge / "metrics.json").exists(),
    }


def _check_partial(kill_at: str, s: dict) -> None:
    """The kill happened where it was meant to: otherwise the resume would prove nothing."""
    if kill_at.startswith("torn_write"):
        complete = s["mm_raw"].count(b"\n")
        assert not s["mm_raw"].endswith(b"\n") and 4 < complete < 8, s["mm_raw"][-200:]
        assert s["ge_preds"] == 0 and not s["mm_metrics"]
    elif kill_at.startswith("batch_written@geneval"):
        assert s["mm_raw"].count(b"\n") == 10 and s["ge_preds"] == 2 and not s["mm_metrics"]
    elif kill_at.startswith("detections"):
        assert s["ge_preds"] == 3 and s["ge_dets"] == 2 and s["mm_metrics"] and not s["ge_metrics"]
    else:
        assert s["ge_preds"] == 3 and s["mm_scores"] and not s["mm_metrics"] and not s["ge_metrics"]
