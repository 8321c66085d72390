"""The CI recipe's logic on CPU (ci/gate.sh, which the example workflows call), with the tiny model:
two seeds of the same model pass; a candidate that answers worse on purpose fails, naming the task."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "ci" / "gate.sh"
SMOKE = ROOT / "tasks" / "smoke_data" / "understanding" / "MMStar.tsv"
N = 60


def _data(tmp: Path) -> tuple[Path, list[dict]]:
    """60 MMStar-schema rows cycling the smoke rows (real images, questions and answers), as a benchmark file."""
    csv.field_size_limit(1 << 30)
    with open(SMOKE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for i in range(N):
        r = dict(rows[i % len(rows)])
        r["index"] = str(i)
        r["category"] = ("coarse perception", "fine-grained perception", "math")[i % 3]
        out.append(r)
    path = tmp / "MMStar.tsv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(out)
    return path, out


def _env(tmp: Path) -> dict:
    return dict(os.environ, UNITOKEN_EVAL=f"{sys.executable} -m unitoken_eval.harness.cli", UNITOKEN_EVAL_CACHE=str(tmp / "cache"),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=_env(tmp), capture_output=True, text=True, timeout=900)


def _answers(path: Path, rows: list[dict], wrong_every: int = 0) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            right = r["answer"]
            ans = ("B" if right == "A" else "A") if wrong_every and i % wrong_every == 0 else right
            fh.write(json.dumps({"id": r["index"], "prediction": ans}) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_gate_script_passes_two_seeds_and_fails_a_planted_regression(tmp_path):
    tsv, rows = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"model: tiny\ntasks: [mmstar]\nprofile: official\ndata: {{mmstar: {tsv}}}\n"
                     "subset: {seed: 0, sizes: {mmstar: 45}}\n")

    # two seeds of the same model: the same answers, so the gate passes (and says what it could detect)
    base = _run([sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--config", str(suite), "--out",
                 str(tmp_path / "base"), "--seed", "0", "--no-progress"], tmp_path)
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]
    seeds = _run(["bash", str(GATE), "--suite", str(suite), "--baseline", str(tmp_path / "base"),
                  "--out", str(tmp_path / "seed1"), "--summary", str(tmp_path / "step-summary.md"),
                  "--", "--seed", "1"], tmp_path)
    assert seeds.returncode == 0, seeds.stdout[-3000:] + seeds.stderr[-3000:]
    summary = (tmp_path / "seed1" / "gate" / "summary.md").read_text()
    assert summary.startswith("## unitoken-eval compare: PASS") and "| mmstar |" in summary
    assert (tmp_path / "step-summary.md").read_text().strip() == summary.strip()
    subset = json.loads((tmp_path / "seed1" / "run" / "manifest.json").read_text())["subsets"]["mmstar"]
    assert subset["n_selected"] == 45 and subset["n_available"] == N
    metrics = json.loads((tmp_path / "seed1" / "run" / "tasks" / "mmstar" / "metrics.json").read_text())
    assert metrics["metrics"]["subset"] == subset and metrics["n_samples"] == 45
    assert any("scored on a subset of the benchmark: 45 of 60 units" in w for w in metrics["warnings"])

    # a candidate that answers a third of the subset wrong on purpose (replayed answers) fails, naming the task
    gold = _answers(tmp_path / "gold.jsonl", rows)
    worse = _answers(tmp_path / "worse.jsonl", rows, wrong_every=3)
    replay = ["--model", "replay", "--model-args"]
    base2 = _run([sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--config", str(suite), "--out",
                  str(tmp_path / "base2"), "--no-progress", *replay, f"source={gold},format=jsonl,task=mmstar"], tmp_path)
    assert base2.returncode == 0, base2.stdout[-2000:] + base2.stderr[-2000:]
    bad = _run(["bash", str(GATE), "--suite", str(suite), "--baseline", str(tmp_path / "base2"),
                "--out", str(tmp_path / "worse"), "--", *replay, f"source={worse},format=jsonl,task=mmstar"], tmp_path)
    assert bad.returncode == 1, bad.stdout[-3000:] + bad.stderr[-3000:]
    assert "compare: REGRESSION" in bad.stdout and "| mmstar |" in bad.stdout
    suite_xml = ET.parse(tmp_path / "worse" / "gate" / "junit.xml").getroot().find("testsuite")
    case = suite_xml.find("testcase")
    assert case.get("name") == "mmstar" and case.find("failure") is not None
    assert "flips.html" in (tmp_path / "worse" / "gate" / "summary.md").read_text()

    # the baseline of another subset is refused, not compared
    other = tmp_path / "other.yaml"
    other.write_text(suite.read_text().replace("seed: 0", "seed: 1"))
    refused = _run(["bash", str(GATE), "--suite", str(other), "--baseline", str(tmp_path / "base2"),
                    "--out", str(tmp_path / "other"), "--", *replay, f"source={gold},format=jsonl,task=mmstar"], tmp_path)
    assert refused.returncode == 2 and "different sample subsets" in refused.stdout


def test_gate_script_refuses_a_missing_baseline(tmp_path):
    res = _run(["bash", str(GATE), "--baseline", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")], tmp_path)
    assert res.returncode == 2 and "not a run directory" in res.stderr


@pytest.mark.parametrize("workflow", ["github-gate.yml", "gitlab-gate.yml"])
def test_example_workflows_call_the_gate_with_flags_it_takes(workflow):
    """The workflows are not run here; what they pass to ci/gate.sh must be what the script parses."""
    import re

    import yaml

    text = (ROOT / "ci" / workflow).read_text()
    yaml.safe_load(text)
    call = text[text.index("ci/gate.sh"):]
    call = call[:call.index(" -- ")]
    flags = set(re.findall(r"(--[a-z-]+)", call))
    parsed = set(re.findall(r"^\s+(--[a-z-]+)\)", GATE.read_text(), re.M))
    assert {"--suite", "--baseline", "--out", "--policy"} <= flags <= parsed
    assert "--suite ci" in call and "ci/policy.yaml" in call
