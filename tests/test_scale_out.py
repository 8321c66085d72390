"""torchrun / Slurm sharding end to end on CPU: the launchers' environments pick the shards, the run
directory is the only thing the processes share, and one resumed run merges and scores."""

from __future__ import annotations

import shlex

from unitoken_eval.harness.cli import main


def _run_line(script):
    line = [x for x in script.read_text().splitlines() if x.startswith("unitoken-eval run")][0]
    return shlex.split(line)[1:]


def test_slurm_array_then_scoring_job(plugins, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["slurm", "--model", "fake_echo_model", "--tasks", "fake_echo,fake_draw", "--out", str(out),
                 "--array", "3", "--partition", "gpu", "--sbatch-option=--account=abc"]) == 0
    infer, score = out / "slurm" / "infer.sbatch", out / "slurm" / "score.sbatch"
    text = infer.read_text()
    assert "#SBATCH --array=0-2" in text and "#SBATCH --partition=gpu" in text and "#SBATCH --account=abc" in text
    args = _run_line(infer)
    assert "--infer-only" in args
    for task_id in range(3):  # what the three array tasks would do, each in its own process
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task_id))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
        assert main(args) == 0
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT")
    # One shard per task: fake_draw (3 prompts x 2 images, work 15) is heavier than fake_echo (10 prompts), so
    # rank 0 takes fake_draw and rank 1 fake_echo; rank 2 has no work.
    assert {p.name for p in (out / "tasks" / "fake_echo").glob("predictions-*.jsonl")} == {"predictions-rank1.jsonl"}
    assert {p.name for p in (out / "tasks" / "fake_draw").glob("predictions-*.jsonl")} == {"predictions-rank0.jsonl"}
    capsys.readouterr()
    assert main(_run_line(score)) == 0
    summary = capsys.readouterr().out
    assert "inferred this time: 0 samples" in summary and "fake_echo" in summary and "100.0" in summary


def test_slurm_sbatch_option_as_documented_and_a_configurable_gpu_request(plugins, tmp_path, capsys):
    """`--sbatch-option --account=abc` (the form --help shows) works; --gres sets or drops the GPU request."""
    out = tmp_path / "run"
    base = ["slurm", "--model", "fake_echo_model", "--tasks", "fake_echo", "--out", str(out), "--array", "2"]
    assert main(base + ["--sbatch-option", "--account=abc", "--sbatch-option", "--qos=low"]) == 0
    text = (out / "slurm" / "infer.sbatch").read_text()
    assert "#SBATCH --account=abc" in text and "#SBATCH --qos=low" in text and "#SBATCH --gres=gpu:1" in text
    assert main(base + ["--gres", "gpu:a100:2"]) == 0
    assert "#SBATCH --gres=gpu:a100:2" in (out / "slurm" / "score.sbatch").read_text()
    assert main(base + ["--gres", "none", "--sbatch-option", "--gpus-per-task=1"]) == 0
    text = (out / "slurm" / "infer.sbatch").read_text()
    assert "--gres" not in text and "#SBATCH --gpus-per-task=1" in text
    assert main(base + ["--sbatch-option", "account=abc"]) == 2
    assert "expected an sbatch option" in capsys.readouterr().err


def test_torchrun_ranks_split_the_shards(plugins, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    base = ["run", "--model", "fake_echo_model", "--tasks", "fake_echo", "--out", str(out), "--no-progress"]
    # shard_size comes from the config; use a config file to make several shards of 10 samples.
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: fake_echo_model\ntasks: [fake_echo]\nshard_size: 3\n")
    base = ["run", "--config", str(cfg), "--out", str(out), "--no-progress"]
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(base) == 0
    import json

    per_rank = {p.name: [json.loads(x)["id"] for x in p.read_text().splitlines()]
                for p in (out / "tasks" / "fake_echo").glob("predictions-*.jsonl")}
    # shards of 3 over 10 samples: indices 0,2 -> rank0 (6 samples), 1,3 -> rank1 (4 samples)
    assert sorted(len(v) for v in per_rank.values()) == [4, 6]
    assert not set(per_rank["predictions-rank0.jsonl"]) & set(per_rank["predictions-rank1.jsonl"])
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    capsys.readouterr()
    assert main(base + ["--resume"]) == 0
    assert "inferred this time: 0 samples" in capsys.readouterr().out


def test_sharded_run_needs_a_shared_run_directory(plugins, capsys):
    assert main(["run", "--model", "fake_echo_model", "--tasks", "fake_echo", "--shard", "0/2"]) == 2
    assert "needs --out" in capsys.readouterr().err
