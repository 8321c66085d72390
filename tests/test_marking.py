"""Partial results and smoke runs are marked wherever a number is shown, and never take part in "best";
the report charts scores only."""

import csv
import io
import json
import re

import pytest

from unitoken_eval.harness.cli import main
from unitoken_eval.harness.compare import compare_runs, summary_markdown
from unitoken_eval.harness.report import build_report
from unitoken_eval.harness.tables import build_table, render, write_run_tables
from unitoken_eval.harness.aggregate import get_layout
from unitoken_eval_testkit.run_builder import add_task, binary_scores, full_understanding_run, make_run

FORMATS = ("md", "csv", "latex", "html")


def _bold(text, fmt, cell):
    return {"md": f"**{cell}**", "latex": f"\\textbf{{{cell}}}", "html": f"<strong>{cell}</strong>",
            "csv": None}[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_smoke_run_is_marked_in_every_format_and_never_best(tmp_path, fmt):
    run = full_understanding_run(tmp_path / "smoke-run", model="tiny", smoke=True)
    for task in ("mmbench_dev_en", "mmstar", "ai2d_test"):
        add_task(run, task, 99.9)
    table = build_table(get_layout("table3"), [run.root], "paper")
    text = render(table, fmt)
    assert "[smoke]" in text and "smoke run (embedded smoke data)" in text
    smoke_row = len(table.rows) - 1
    assert "99.9" in table.rows[smoke_row].cells.values()
    assert all(smoke_row not in best and best for best in table.best().values())
    if fmt != "csv":
        assert _bold(text, fmt, "99.9") not in text


def test_a_stand_in_model_marks_its_run_smoke_even_on_real_data(plugins, tmp_path, monkeypatch, capsys):
    from unitoken_eval_testkit import fake_plugins

    monkeypatch.setattr(fake_plugins.EchoModel, "stand_in", "random weights", raising=False)
    out = tmp_path / "run"
    assert main(["run", "--model", "fake_echo_model", "--tasks", "fake_echo", "--out", str(out),
                 "--no-progress"]) == 0
    assert "SMOKE RUN (model fake_echo_model: random weights)" in capsys.readouterr().out
    head = next(csv.DictReader((out / "tables" / "headlines.csv").open()))
    assert head["Status"] == "scored (smoke)" and "smoke run" in head["Reason"]
    html = build_report(out)
    assert "[smoke]" in html and "smoke run (model fake_echo_model: random weights)" in html


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_partial_result_is_marked_and_never_best(tmp_path, fmt):
    run = full_understanding_run(tmp_path / "run")
    add_task(run, "mmstar", 99.9, n_samples=10, n_missing=6)
    text = render(build_table(get_layout("table3"), [run.root], "paper"), fmt)
    assert "99.9 (partial)" in text and "mmstar: partial: 4 of 10 samples" in text
    if fmt != "csv":
        assert _bold(text, fmt, "99.9 (partial)") not in text


def test_partial_in_run_tables_report_and_compare(tmp_path):
    base = make_run(tmp_path / "base")
    add_task(base, "mmstar", 50.0, scores=binary_scores(10, 5))
    cand = make_run(tmp_path / "cand")
    add_task(cand, "mmstar", 50.0, scores=binary_scores(10, 5), n_samples=12, n_missing=2)
    write_run_tables(cand)
    head = next(csv.DictReader((cand.root / "tables" / "headlines.csv").open()))
    assert head["Status"] == "scored (partial)" and "partial: 10 of 12 samples" in head["Reason"]
    html = build_report(cand.root)
    assert "marked partial" in html and "scored (partial)" in html
    summary = summary_markdown(compare_runs(base.root, cand.root))
    assert "| mmstar (partial) |" in summary and "candidate is partial: 10 of 12 samples" in summary


def test_report_charts_only_scores(tmp_path):
    run = make_run(tmp_path / "run")
    add_task(run, "mmmu_val", 34.2, metrics={"overall": 34.2, "per_subject": {"Art": 40.0, "Math": 30.0},
                                             "per_subject_n": {"Art": 30, "Math": 30}, "random_seed": 42,
                                             "multi_image_samples": 7})
    add_task(run, "geneval", 0.5, scale="fraction", name="overall",
             metrics={"overall": 0.5, "counting": 0.25, "n_images": 553, "n_prompts": 553})
    html = build_report(run.root)
    charted = set(re.findall(r"<title>([^<:]+):", html))
    assert {"overall", "Art", "Math", "counting"} <= charted
    assert not charted & {"random_seed", "n_images", "n_prompts", "multi_image_samples"}
    assert "per_subject_n" not in html.split("Per-category breakdowns", 1)[1].split("<h2>", 1)[0]
