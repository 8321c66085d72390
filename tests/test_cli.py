from __future__ import annotations

import json

import pytest

from unitoken_eval.harness.cli import main

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
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred), "--format", "json", "--partial"]) == 0
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


def test_score_refuses_a_partial_predictions_file_unless_asked_and_then_says_partial(plugins, tmp_path, capsys):
    """4 of 10 samples, all right: not a silent 100.0."""
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(f'{{"index": "q{i}", "prediction": "q{i}"}}\n' for i in range(4)))
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "covers 4 of 10 samples" in err and "--partial" in err
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred), "--partial"]) == 0
    out = capsys.readouterr().out
    assert "accuracy = 100" in out and "PARTIAL: the metrics cover 4 of 10 samples" in out
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred), "--partial", "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["partial"], res["n_missing"], res["coverage"]) == (True, 6, "partial: 4 of 10 samples")
    assert any("6 samples have no prediction" in w for w in res["warnings"])


def test_a_broken_config_yaml_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\ntasks: [mmstar\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: not valid YAML at line") and "Traceback" not in err


def test_a_bad_value_from_the_command_line_is_blamed_on_its_flag(capsys):
    assert main(["run", "--suite", "smoke", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "command line: --limit" in err and "smoke.yaml" not in err


def test_every_option_has_help_and_shows_its_default(capsys):
    import argparse

    from unitoken_eval.harness.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--retries RETRIES times a failed shard is run again (pool) (default: 2)" in text
    assert "(default: None)" not in text


def test_the_run_flags_exist_once_and_slurm_writes_them_back(plugins):
    from unitoken_eval.harness.cli import FLAGS, RUN_SPEC, build_parser, run_spec_argv

    argv = ["--model", "fake_echo_model", "--tasks", "fake_echo", "--limit", "3", "--seed", "7", "--data",
            "fake_echo=a", "--data", "fake_draw=b", "--skip-bad", "--model-args", "batch=2"]
    args = build_parser().parse_args(["slurm", *argv, "--out", "/x", "--array", "2"])
    again = build_parser().parse_args(["run", *run_spec_argv(args)])
    for key in RUN_SPEC:
        dest = FLAGS[key][1].get("dest", key)
        assert getattr(again, dest) == getattr(args, dest), key


def test_a_closed_pipe_ends_quietly(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(__import__("pathlib").Path(__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "unitoken_eval.harness.cli", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_text_output_rounds_numbers(plugins, tmp_path, capsys):
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(f'{{"index": "q{i}", "prediction": "{"q%d" % i if i % 3 else "no"}"}}\n'
                            for i in range(10)))
    assert main(["score", "--task", "fake_echo", "--predictions", str(pred)]) == 0
    assert "accuracy = 60.0 (percent)" in capsys.readouterr().out
    from unitoken_eval.harness.cli import _rounded

    assert _rounded({"a": 2 / 3, "b": [1 / 7]}) == "{a: 0.6667, b: [0.1429]}"


def test_predict_json_keeps_token_ids_on_one_line():
    from unitoken_eval.harness.predict import record_json

    text = record_json({"model": "tiny", "image_token_ids": list(range(1030)), "text": None})
    assert len(text.splitlines()) == 5 and json.loads(text)["image_token_ids"] == list(range(1030))


def test_data_covers_every_task_with_location_state_and_how_to_get_it(capsys):
    assert main(["data", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for tid in PROJECT_TASKS - {"t2i_compbench"}:
        mine = [r for r in rows if r["task"] == tid]
        assert mine, tid
        assert all({"what", "location", "present", "get", "fetchable"} <= set(r) for r in mine), tid
        assert any(r["what"].startswith("embedded smoke data") and r["present"] for r in mine), tid
    geneval = {r["what"].split(" (")[0].split(" mask2former")[0]: r for r in rows if r["task"] == "geneval"}
    assert {"GenEval prompts", "detector checkpoint", "colour classifier"} <= set(geneval)
    assert main(["data", "t2i_compbench"]) == 0
    text = capsys.readouterr().out
    assert "t2i_compbench_color" in text and "BLIP-VQA scorer" in text and "spaCy model" in text


def test_data_fetch_says_what_it_could_not_get_and_exits_2(monkeypatch, capsys):
    from unitoken_eval.tasks.common import sources
    from unitoken_eval.tasks.geneval import prompts

    fetched = []
    monkeypatch.setattr(prompts, "fetch_metadata", lambda *a, **k: fetched.append("prompts"))
    monkeypatch.setattr(sources, "fetch_hub_model", lambda mid: fetched.append(mid))
    monkeypatch.delenv("UNITOKEN_GENEVAL_DETECTOR", raising=False)
    assert main(["data", "geneval", "--fetch"]) == 2
    err = capsys.readouterr().err
    assert fetched[0] == "prompts"
    assert err.startswith("error: data --fetch left these missing:") and "detector checkpoint" in err
    assert "UNITOKEN_GENEVAL_DETECTOR=PATH" in err


def test_list_documents_each_adapters_model_args(capsys):
    assert main(["list", "--format", "json"]) == 0
    adapters = {a["id"]: a for a in json.loads(capsys.readouterr().out)["adapters"]}
    assert "seed" in adapters["tiny"]["model_args"] and "max_new_tokens" in adapters["tiny"]["model_args"]
    assert adapters["tiny"]["stand_in"] and not adapters["unitoken"]["stand_in"]
    assert all(adapters[a]["model_args"] for a in ("unitoken", "chameleon", "lumina_mgpt", "janus", "replay"))
