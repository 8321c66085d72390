from __future__ import annotations

import json

import pytest

from harness.cli import main

from test_registry import PROJECT_TASKS


def test_list_shows_every_project_task_and_adapter(capsys):
    assert main(["list", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert PROJECT_TASKS <= {t["id"] for t in info["tasks"]}
    assert {"unitoken", "tiny"} <= {a["id"] for a in info["adapters"]}
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for tid in PROJECT_TASKS:
        assert tid in text


def test_run_via_cli_then_resume_does_no_new_inference(plugins, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--model", "fake_echo_model", "--tasks", "fake_echo,fake_draw", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "inferred this time: 13 samples" in first
    assert (out / "tables").is_dir() and any((out / "tables").glob("*.csv")) and any((out / "tables").glob("*.tex"))
    assert main(args + ["--resume"]) == 0
    assert "inferred this time: 0 samples" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--model", "fake_echo_model", "--tasks", "no_such_task"], "unknown task 'no_such_task'"),
        (["run", "--model", "nope", "--tasks", "fake_echo"], "unknown model adapter 'nope'"),
        (["run", "--tasks", "fake_echo"], "run needs --suite, --config, or both --model and --tasks"),
        (["run", "--suite", "smoke", "--config", "x.yaml"], "not both"),
        (["run", "--config", "/nonexistent.yaml"], "/nonexistent.yaml: no such file"),
        (["run", "--model", "fake_echo_model", "--tasks", "fake_echo", "--resume"], "--resume needs --out"),
        (["run", "--model", "fake_echo_model", "--tasks", "fake_echo", "--data", "oops"], "TASK=VALUE"),
        (["table", "--runs", "/nonexistent"], "not a run directory"),
        (["table"], "table needs --runs"),
        (["compare", "--baseline", "/a", "--candidate", "/b"], "/a is not a run directory"),
        (["report", "/nonexistent"], "not a run directory"),
        (["score", "--task", "fake_echo", "--predictions", "/nonexistent.jsonl"], "does not exist"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(plugins, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_score_reads_a_predictions_file_and_names_bad_lines(plugins, tmp_path, capsys):
    pred = tmp_path / "p.jsonl"
    pred.write_text('{"index": "q0", "prediction": "q0"}\n{"index": "q1", "prediction": "wrong"}\n')
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["headline"] == {"name": "accuracy", "value": 50.0, "scale": "percent"}
    assert out["per_sample"] == {"q0": 1, "q1": 0} and out["n"] == 2
    pred.write_text('{"index": "q0", "prediction": "q0"}\n{"index": "q1", "prediction": 3}\n')
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred)]) == 2
    assert "p.jsonl:2: 'prediction' must be a string" in capsys.readouterr().err
    pred.write_text('{"index": "zz", "prediction": "q0"}\n')
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred)]) == 2
    assert "not in the data of fake_echo" in capsys.readouterr().err


def test_list_shows_each_suites_size_from_the_tasks(capsys):
    assert main(["list", "--format", "json"]) == 0
    suites = {s["id"]: s for s in json.loads(capsys.readouterr().out)["suites"]}
    assert suites["paper"]["size"]["total"]["generated_images"] == 11212
    assert suites["full"]["size"]["total"]["generated_images"] == 26212
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "33922 prompts about 26405 images; 1453 prompts -> 11212 generated images" in text
