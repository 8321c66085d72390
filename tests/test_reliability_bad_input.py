"""Bad input, through the command line as a user meets it: each kind is one clear error naming the file and
the row (or sample); with ``--skip-bad`` the run goes on, the sample is recorded as an error and counted in
metrics.json, the tables and the report.  Whole-file problems (wrong columns) are not skippable and say so."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from unitoken_eval.harness.cli import main

SMOKE = Path(__file__).resolve().parents[1] / "tasks" / "smoke_data"
MMSTAR = SMOKE / "understanding" / "MMStar.tsv"
csv.field_size_limit(1 << 30)


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8"), delimiter="\t"))


def _write(path: Path, rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _mmstar(tmp_path: Path, *, bad_image: bool = False, empty_answer: bool = False, drop: str | None = None) -> Path:
    """MMStar smoke TSV (4 rows) with row index 1's image undecodable and/or index 2's answer empty."""
    rows = _rows(MMSTAR)
    head = rows[0]
    if bad_image:
        rows[2][head.index("image")] = "A" * 100 + "=="  # long enough not to be a row reference; decodes to zeros
    if empty_answer:
        rows[3][head.index("answer")] = ""
    if drop:
        k = head.index(drop)
        rows = [r[:k] + r[k + 1:] for r in rows]
    return _write(tmp_path / "MMStar.tsv", rows)


def _run(tmp_path: Path, data: str, *extra: str, task: str = "mmstar") -> tuple[int, Path]:
    out = tmp_path / "run"
    code = main(["run", "--model", "fake_echo_model", "--tasks", task, "--data", f"{task}={data}", "--out", str(out),
                 "--no-progress", *extra])
    return code, out


def test_bad_row_without_skip_bad_is_an_error_naming_file_row_and_column(plugins, tmp_path, capsys):
    data = _mmstar(tmp_path, empty_answer=True)
    code, _ = _run(tmp_path, str(data))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}: row 4 (index 2): empty 'answer'" in err


def test_undecodable_image_without_skip_bad_names_file_and_row(plugins, tmp_path, capsys):
    data = _mmstar(tmp_path, bad_image=True)
    code, _ = _run(tmp_path, str(data))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}: row 3 (index 1): image cell is not a decodable base64 image" in err


def test_skip_bad_records_bad_rows_as_errors_and_counts_them_everywhere(plugins, tmp_path, capsys):
    data = _mmstar(tmp_path, bad_image=True, empty_answer=True)
    code, run = _run(tmp_path, str(data), "--skip-bad")
    assert code == 0, capsys.readouterr().err
    preds = [json.loads(x) for x in (run / "tasks" / "mmstar" / "predictions-main.jsonl").read_text().splitlines()]
    errors = {p["id"]: p["error"] for p in preds if "error" in p}
    assert set(errors) == {"1", "2"} and len(preds) == 4
    assert f"{data}: row 3 (index 1)" in errors["1"] and f"{data}: row 4 (index 2): empty 'answer'" in errors["2"]
    m = json.loads((run / "tasks" / "mmstar" / "metrics.json").read_text())
    assert (m["n"], m["n_samples"], m["n_errors"], m["n_missing"]) == (2, 4, 2, 0)
    assert m["status"] == "scored" and any("2 of 4 samples recorded as errors" in w for w in m["warnings"])
    assert set(json.loads(x)["id"] for x in (run / "tasks" / "mmstar" / "scores.jsonl").read_text().splitlines()) \
        == {"0", "3"}
    head = next(r for r in csv.DictReader((run / "tables" / "headlines.csv").open()) if r["Task"] == "mmstar")
    assert (head["N"], head["Samples"], head["Errors"]) == ("2", "4", "2")
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "mmstar: 2 of 4 samples recorded as errors and 0 without a prediction" in html
    # a resume keeps the error records (no retry, no duplicate) and the counts
    assert main(["run", "--model", "fake_echo_model", "--tasks", "mmstar", "--data", f"mmstar={data}", "--out",
                 str(run), "--no-progress", "--skip-bad", "--resume"]) == 0
    assert len((run / "tasks" / "mmstar" / "predictions-main.jsonl").read_text().splitlines()) == 4
    assert json.loads((run / "tasks" / "mmstar" / "metrics.json").read_text())["n_errors"] == 2


def test_retry_errors_reruns_only_the_error_samples_once_the_input_is_fixed(plugins, tmp_path, capsys):
    data = _mmstar(tmp_path, bad_image=True, empty_answer=True)
    code, run = _run(tmp_path, str(data), "--skip-bad")
    assert code == 0, capsys.readouterr().err
    preds = run / "tasks" / "mmstar" / "predictions-main.jsonl"
    assert len(preds.read_text().splitlines()) == 4
    _write(data, _rows(MMSTAR))  # the data owner fixes the two rows in place
    assert main(["run", "--model", "fake_echo_model", "--tasks", "mmstar", "--data", f"mmstar={data}", "--out",
                 str(run), "--no-progress", "--skip-bad", "--resume", "--retry-errors"]) == 0
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [x["id"] for x in lines[4:]] == ["1", "2"] and all("error" not in x for x in lines[4:])
    m = json.loads((run / "tasks" / "mmstar" / "metrics.json").read_text())
    assert (m["n"], m["n_errors"]) == (4, 0)
    # a further resume has nothing left to do: the answers now stand for those samples
    assert main(["run", "--model", "fake_echo_model", "--tasks", "mmstar", "--data", f"mmstar={data}", "--out",
                 str(run), "--no-progress", "--resume", "--retry-errors"]) == 0
    assert len(preds.read_text().splitlines()) == 6


def test_tsv_with_wrong_columns_is_a_whole_file_error_even_with_skip_bad(plugins, tmp_path, capsys):
    data = _mmstar(tmp_path, drop="answer")
    code, _ = _run(tmp_path, str(data), "--skip-bad")
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}: header (line 1) lacks column(s) ['answer']" in err
    assert "--skip-bad cannot skip it" in err


def test_unknown_task_id_lists_the_known_ids(plugins, tmp_path, capsys):
    code = main(["run", "--model", "fake_echo_model", "--tasks", "mmstr", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown task 'mmstr'; did you mean mmstar" in err
    known = err.split("known: ", 1)[1]
    for tid in ("mmstar", "mmbench_dev_en", "geneval", "t2i_compbench_color", "fake_echo"):
        assert tid in known


def test_malformed_predictions_file_for_score(tmp_path, capsys):
    preds = tmp_path / "pred.jsonl"
    preds.write_text('{"index": 0, "prediction": "A"}\n{"index": 1, "prediction": "B"\n')
    assert main(["score", "--task", "mmstar", "--data", str(MMSTAR), "--predictions", str(preds)]) == 2
    assert f"{preds}:2: not valid JSON" in capsys.readouterr().err
    # a line that names no sample cannot be counted as one: still an error with --skip-bad
    assert main(["score", "--task", "mmstar", "--data", str(MMSTAR), "--predictions", str(preds), "--skip-bad"]) == 2
    assert f"{preds}:2: not valid JSON" in capsys.readouterr().err
    # a readable index with an unusable prediction is that sample's error under --skip-bad
    preds.write_text('{"index": 0, "prediction": "C"}\n{"index": 1, "prediction": 7}\n{"index": 2, "prediction": "B"}\n')
    assert main(["score", "--task", "mmstar", "--data", str(MMSTAR), "--predictions", str(preds)]) == 2
    assert f"{preds}:2: 'prediction' must be a string (index '1')" in capsys.readouterr().err
    assert main(["score", "--task", "mmstar", "--data", str(MMSTAR), "--predictions", str(preds), "--skip-bad",
                 "--format", "json", "--partial"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 2 and out["n_errors"] == 1 and out["n_samples"] == 4 and out["n_missing"] == 1
    assert out["partial"] and out["coverage"] == "partial: 2 of 4 samples"
    assert out["per_sample"] == {"0": 1, "2": 1} and out["headline"]["value"] == 100.0
    assert f"{preds}:2:" in out["errors"]["1"]


def _mme_parquet(folder: Path) -> Path:
    """MME in the lmms-lab schema, four rows; row 2's image is a file path that no longer exists."""
    import datasets
    from PIL import Image

    folder.mkdir()
    gone = folder / "gone.png"
    Image.new("RGB", (8, 8), "red").save(gone)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, format="PNG")
    ok = {"bytes": buf.getvalue(), "path": None}
    feats = datasets.Features({"question_id": datasets.Value("string"), "image": datasets.Image(),
                               "question": datasets.Value("string"), "answer": datasets.Value("string"),
                               "category": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({
        "question_id": [f"img{i // 2}.png" for i in range(4)], "image": [ok, ok, {"bytes": None, "path": str(gone)}, ok],
        "question": ["Is it blue? Please answer yes or no."] * 4, "answer": ["Yes", "No", "Yes", "No"],
        "category": ["color"] * 4}, features=feats)
    ds.to_parquet(str(folder / "test-00000-of-00001.parquet"))
    gone.unlink()
    return gone


def test_missing_image_file_in_hf_data(plugins, tmp_path, capsys):
    gone = _mme_parquet(tmp_path / "mme")
    code, _ = _run(tmp_path, str(tmp_path / "mme"), task="mme")
    err = capsys.readouterr().err
    assert code == 2
    assert f"{tmp_path / 'mme'} (test): row 2: image cannot be read (FileNotFoundError" in err and str(gone) in err
    code, run = _run(tmp_path, str(tmp_path / "mme"), "--skip-bad", "--resume", task="mme")
    assert code == 0, capsys.readouterr().err
    m = json.loads((run / "tasks" / "mme" / "metrics.json").read_text())
    assert (m["n_samples"], m["n_errors"]) == (4, 1)
    preds = [json.loads(x) for x in (run / "tasks" / "mme" / "predictions-main.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds if "error" in p] == ["2"]


def _geneval_folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A GenEval output folder for the smoke prompts (one image each) and a detections file covering it."""
    from PIL import Image

    meta = SMOKE / "geneval" / "evaluation_metadata.jsonl"
    prompts = [json.loads(x) for x in meta.read_text().splitlines() if x.strip()]
    images, dets = tmp_path / "images", []
    for i, m in enumerate(prompts):
        d = images / f"{i:05d}"
        (d / "samples").mkdir(parents=True)
        (d / "metadata.jsonl").write_text(json.dumps(m))
        Image.new("RGB", (16, 16), "white").save(d / "samples" / "00000.png")
        dets.append(json.dumps({"filename": f"{i:05d}/samples/00000.png", "detections": {}}))
    det_file = tmp_path / "detections.jsonl"
    det_file.write_text("\n".join(dets) + "\n")
    return meta, images, det_file


@pytest.mark.parametrize("what", ["folder", "image"])
def test_geneval_folder_with_a_missing_sample(tmp_path, capsys, what):
    import shutil

    meta, images, det_file = _geneval_folder(tmp_path)
    if what == "folder":
        shutil.rmtree(images / "00003")
        named = f"{images / '00003'}: no samples/ folder for prompt 00003"
    else:
        (images / "00003" / "samples" / "00000.png").unlink()
        named = f"{images / '00003' / 'samples'}: no <n>.png images for prompt 00003"
    args = ["score", "--task", "geneval", "--data", str(meta), "--images", str(images), "--detections", str(det_file)]
    assert main(args) == 2
    assert named in capsys.readouterr().err
    assert main(args + ["--skip-bad", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    n_prompts = len(meta.read_text().splitlines())
    assert out["n_errors"] == 1 and out["n_samples"] == n_prompts and named in out["errors"]["00003"]
    assert out["n"] == n_prompts - 1 and out["metrics"]["n_prompts"] == n_prompts - 1
    assert any(f"1 of {n_prompts} samples recorded as errors" in w for w in out["warnings"])
