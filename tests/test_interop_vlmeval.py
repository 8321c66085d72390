"""VLMEvalKit prediction files: reading (as VK's evaluators read them), writing (``export``), and with the
``vlmeval`` extra installed, the whole loop through VLMEvalKit's own run.py and evaluate (e8e78f05):

- tiny runs through VK's ``MME`` (ImageYORNDataset via our Local variant, on a 14-category MME.tsv built here
  in VK's schema under a temporary $LMUData); VK's own MME_rating scores are read from the files VK writes;
- VK's prediction file replayed into our store scores the same per category, perception and cognition;
- our own run exported with ``unitoken-eval export`` is scored by VK's evaluate to our numbers;
- the same with scripted answers (so the numbers are not all zero), written by VK's own ``dump``.

Core CI has neither openpyxl nor vlmeval: the xlsx tests skip, the rest runs on TSV/JSON.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unitoken_eval.harness.interop import InteropError, detect_format, load_predictions
from unitoken_eval.harness.interop import vlmeval_io as vio
from unitoken_eval.harness.interop.vlmeval_io import find_prediction_file

REPO = Path(__file__).resolve().parents[1]
SMOKE_MME = REPO / "tasks" / "smoke_data" / "understanding" / "MME.tsv"
HAS_OPENPYXL = importlib.util.find_spec("openpyxl") is not None
HAS_VLMEVAL = importlib.util.find_spec("vlmeval") is not None
PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def vk_tsv(path: Path, records: list[dict]) -> Path:
    """A prediction file as VK's ``dump`` writes TSV (pandas, every field quoted)."""
    pd.DataFrame.from_records(records).to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    return path


def smoke_rows() -> list[dict]:
    df = pd.read_csv(SMOKE_MME, sep="\t")
    return [{k: v for k, v in r.items() if k != "image"} for r in df.to_dict("records")]


def build_mme_tsv(folder: Path) -> Path:
    """MME.tsv in VK's schema: each of MME's 14 categories with one image and a Yes and a No question; the
    second row of a pair references the first row's image by index, as VK's file does."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, i = [], 0
    for k, cat in enumerate(PERCEPTION + COGNITION):
        buf = io.BytesIO()
        Image.new("RGB", (48, 40), ((37 * k) % 256, (91 * k) % 256, (53 * k + 20) % 256)).save(buf, format="PNG")
        b64 = base64.b64encode(buf.getvalue()).decode()
        first = i
        for q, a in ((f"Is this a picture about {cat}? Please answer yes or no.", "Yes"),
                     ("Is this picture empty? Please answer yes or no.", "No")):
            rows.append([i, b64 if i == first else str(first), q, a, cat, f"MME/{cat}/{k:04d}.png"])
            i += 1
    path = folder / "MME.tsv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "image", "question", "answer", "category", "image_path"])
        w.writerows(rows)
    return path


# ----------------------------------------------------------------------------- reading
def test_tsv_read_exactly_as_vk_evaluators_read_it(tmp_path):
    answers = ["Yes", "None", "", "NA", "3.50", "=1+1"]
    rows = smoke_rows()
    for r, a in zip(rows, answers):
        r["prediction"] = a
    path = vk_tsv(tmp_path / "m_MME.tsv", rows)
    got = load_predictions(path, "mme")
    # VK: data = load(file) (pd.read_csv(sep='\t')); data['prediction'] = [str(x) for x in ...]
    df = pd.read_csv(path, sep="\t")
    expected = {str(i): str(p) for i, p in zip(df["index"], df["prediction"])}
    assert got == expected
    assert got["1"] == "nan" and got["2"] == "nan" and got["5"] == "=1+1"  # pandas' NA reading, as in VK
    assert detect_format(path) == "vlmevalkit" and vio.sniff(path)


def test_json_records_and_split_orient(tmp_path):
    rows = smoke_rows()
    for r in rows:
        r["prediction"] = f"answer {r['index']}"
    a = tmp_path / "m_MME.json"
    a.write_text(json.dumps(rows), encoding="utf-8")
    b = tmp_path / "split_MME.json"
    b.write_text(pd.DataFrame.from_records(rows).to_json(orient="split"), encoding="utf-8")
    want = {str(r["index"]): f"answer {r['index']}" for r in rows}
    assert load_predictions(a, "mme") == want == load_predictions(b, "mme", fmt="vlmevalkit")
    assert detect_format(a) == "vlmevalkit"


@pytest.mark.parametrize("mutate, message", [
    (lambda rs: [{k: v for k, v in r.items() if k != "prediction"} for r in rs], "no 'prediction' column"),
    (lambda rs: rs[:2] + [dict(rs[2], index=rs[0]["index"])] + rs[3:], "row 4: index '0' repeats row 2"),
    (lambda rs: rs[:1] + [dict(rs[1], index=None)] + rs[2:], "row 3: empty 'index'"),
    (lambda rs: rs[:1] + [dict(rs[1], index=1.5)] + rs[2:], "row 3: 'index' 1.5 is not an integer"),
])
def test_bad_rows_name_file_and_row(tmp_path, mutate, message):
    rows = [dict(r, prediction="Yes") for r in smoke_rows()]
    path = vk_tsv(tmp_path / "m_MME.tsv", mutate(rows))
    with pytest.raises(InteropError) as err:
        load_predictions(path, "mme", fmt="vlmevalkit")
    assert str(path) in str(err.value) and message in str(err.value)


def test_pickle_is_refused_and_unknown_files_named(tmp_path):
    pkl = tmp_path / "m_MME.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    with pytest.raises(InteropError, match="pickle files are not read"):
        load_predictions(pkl, "mme", fmt="vlmevalkit")
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(InteropError, match=r"notes\.txt: not a predictions file of any known format"):
        detect_format(other)
    assert not vio.sniff(other)


def test_rows_checked_against_the_task_data(tmp_path):
    from unitoken_eval.harness import registry

    task = registry.make_task("mme", {})
    samples = task.load(str(SMOKE_MME))
    rows = [dict(r, prediction="Yes") for r in smoke_rows()]
    good = vk_tsv(tmp_path / "good_MME.tsv", rows)
    assert set(load_predictions(good, task, samples=samples)) == {s.id for s in samples}
    rows[3]["question"] = "Is this another benchmark?"
    bad = vk_tsv(tmp_path / "bad_MME.tsv", rows)
    with pytest.raises(InteropError, match=r"row 5: index '3': question .* differs .* made on other data"):
        load_predictions(bad, task, samples=samples)
    extra = vk_tsv(tmp_path / "extra_MME.tsv", [dict(r, prediction="No") for r in smoke_rows()]
                   + [dict(smoke_rows()[0], index=99, prediction="No")])
    with pytest.raises(InteropError, match="row 8: index '99' is not a sample of mme"):
        load_predictions(extra, task, samples=samples)


def test_rows_of_another_split_are_left_out(tmp_path):
    # VK's MMMU_DEV_VAL predictions hold the dev rows; mmmu_val scores validation, so they are not samples.
    from unitoken_eval.harness import registry

    data = REPO / "tasks" / "smoke_data" / "understanding" / "MMMU_DEV_VAL.tsv"
    task = registry.make_task("mmmu_val", {})
    samples = task.load(str(data))
    rows = pd.read_csv(data, sep="\t").drop(columns=["image"]).to_dict("records")
    assert len(rows) == len(samples) + 1 and len(task.left_out) == 1
    path = vk_tsv(tmp_path / "M_MMMU_DEV_VAL.tsv", [dict(r, prediction="A") for r in rows])
    assert set(load_predictions(path, task, samples=samples)) == {s.id for s in samples}


# ----------------------------------------------------------------------------- writing (export)
def _replay_run(tmp_path, answers: dict[str, str], name="run"):
    """A run of ours on the smoke MME data, its answers replayed from our JSONL (no model needed)."""
    from unitoken_eval.harness.cli import main

    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in answers.items()))
    out = tmp_path / name
    rc = main(["run", "--model", "replay", "--model-args", f"source={src},task=mme", "--tasks", "mme",
               "--data", f"mme={SMOKE_MME}", "--profile", "vlmevalkit", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


ANSWERS = {"0": "Yes", "1": "no, it is not", "2": "=SUM(A1)", "3": "No.", "4": "tab\there", "5": "Not sure"}


def test_export_works_by_default_without_openpyxl(tmp_path, monkeypatch, capsys):
    """No documented install brings openpyxl: the default must not need it (xlsx only when it is there)."""
    from unitoken_eval.harness.cli import main

    run = _replay_run(tmp_path, ANSWERS)
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "openpyxl" else object())
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "vk")]) == 0
    assert [p.suffix for p in (tmp_path / "vk").iterdir()] == [".tsv"]
    assert "openpyxl is not installed" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["tsv", "json"] + (["xlsx"] if HAS_OPENPYXL else []))
def test_export_writes_vk_layout_and_replays_back(tmp_path, fmt):
    from unitoken_eval.harness.cli import main

    run = _replay_run(tmp_path, ANSWERS)
    out = tmp_path / "vk"
    assert main(["export", "--format", "vlmevalkit", "--run", str(run), "--out", str(out), "--vk-format", fmt,
                 "--model-name", "my/../model"]) == 0
    path = out / f"my_.._model-{__import__('hashlib').sha1(b'my/../model').hexdigest()[:8]}_MME.{fmt}"
    files = list(out.iterdir())
    assert files == [path], files  # the model name cannot lead outside --out
    # Read as VK reads it: the TSV's columns without 'image', integer index, then prediction.
    df = pd.read_json(path) if fmt == "json" else (pd.read_excel(path) if fmt == "xlsx" else pd.read_csv(path, sep="\t"))
    src = pd.read_csv(SMOKE_MME, sep="\t")
    assert list(df.columns) == [c for c in src.columns if c != "image"] + ["prediction"]
    assert df["index"].tolist() == src["index"].tolist()
    assert df["image_path"].tolist() == src["image_path"].tolist()
    assert dict(zip(df["index"].astype(str), df["prediction"])) == ANSWERS
    # and back in through the replay adapter: the same answers, the same metrics
    back = tmp_path / "back"
    assert main(["run", "--model", "replay", "--model-args", f"source={path}", "--tasks", "mme", "--data",
                 f"mme={SMOKE_MME}", "--profile", "vlmevalkit", "--out", str(back), "--no-progress"]) == 0
    from unitoken_eval.harness.store import RunStore

    assert {k: p.text for k, p in RunStore(back).read_predictions("mme").items()} == ANSWERS
    m1 = json.loads((run / "tasks/mme/metrics.json").read_text())["metrics"]
    m2 = json.loads((back / "tasks/mme/metrics.json").read_text())["metrics"]
    assert m1["subtasks"] == m2["subtasks"] and m1["total"] == m2["total"]


@pytest.mark.skipif(not HAS_OPENPYXL, reason="needs openpyxl (the vlmeval extra)")
def test_xlsx_text_matches_what_vk_writer_produces(tmp_path):
    """Control characters: VK's writer (xlsxwriter) stores ESC as _x001B_, read back as those characters;
    ours reads back identically, and a leading '=' stays text."""
    columns = ["index", "prediction"]
    texts = ["a\x1bb\x00c", "=1+1", "lit _x0041_ here", "line\r\nnext", "plain"]
    ours = vio.write_prediction_file(columns, [[i, t] for i, t in enumerate(texts)], tmp_path / "ours_MME.xlsx")
    got = pd.read_excel(ours)["prediction"].tolist()
    assert got[1] == "=1+1" and got[4] == "plain" and got[0] == "a_x001B_b_x0000_c"
    if importlib.util.find_spec("xlsxwriter") is None:
        pytest.skip("xlsxwriter (VK's writer) not installed: compared with the escape rule only")
    theirs = tmp_path / "theirs_MME.xlsx"
    with pd.ExcelWriter(theirs, engine="xlsxwriter", engine_kwargs={"options": {"strings_to_formulas": False}}) as w:
        pd.DataFrame({"index": range(len(texts)), "prediction": texts}).to_excel(w, index=False)
    assert pd.read_excel(theirs)["prediction"].tolist() == got


@pytest.mark.skipif(HAS_OPENPYXL, reason="openpyxl is installed")
def test_xlsx_without_openpyxl_says_what_to_install(tmp_path):
    path = tmp_path / "m_MME.xlsx"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InteropError, match=r"needs openpyxl: pip install 'unitoken-eval\[vlmeval\]'"):
        load_predictions(path, "mme", fmt="vlmevalkit")


def test_export_marks_errors_and_skips_generation_tasks(tmp_path):
    from unitoken_eval.harness.export import export_vlmevalkit
    from unitoken_eval.harness.store import RunStore

    run = _replay_run(tmp_path, {k: v for k, v in ANSWERS.items() if k != "4"} | {"4": "x"})
    # a sample recorded as an error (what --skip-bad stores) and one without any record
    store = RunStore(run)
    path = store.prediction_files("mme")[0]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines = [dict(id=x["id"], error="bad image at row 6") if x["id"] == "4" else x for x in lines if x["id"] != "5"]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = export_vlmevalkit(run, tmp_path / "vk", file_format="tsv")
    (item,) = report.files
    assert (item.rows, item.errors, item.missing) == (5, 1, 1)
    df = pd.read_csv(item.path, sep="\t")
    assert df.set_index("index").loc[4, "prediction"] == f"{vio.FAIL_MARKER}: bad image at row 6"
    assert 5 not in df["index"].tolist()


_NA_LIKE = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1,
                      max_size=8))
def test_fuzz_written_tsv_reads_back_as_vk_reads_it(tmp_path_factory, texts):
    """Any text (tabs, newlines, quotes, CR, control characters) written by our TSV writer reads back as VK
    reads it; where pandas keeps the column as text and no cell is NA-like, that is the original text."""
    path = tmp_path_factory.mktemp("fuzz") / "m_MME.tsv"
    vio.write_prediction_file(["index", "prediction"], [[i, t] for i, t in enumerate(texts)], path)
    got = load_predictions(path, "mme", fmt="vlmevalkit")
    df = pd.read_csv(path, sep="\t")
    assert got == {str(i): str(p) for i, p in zip(df["index"], df["prediction"])}
    if df["prediction"].dtype == object and not any(t in _NA_LIKE for t in texts):
        assert got == {str(i): t for i, t in enumerate(texts)}


# ----------------------------------------------------------------------------- the core never imports vlmeval
def test_core_and_bridge_init_never_import_vlmeval(tmp_path):
    code = textwrap.dedent("""
        import importlib, io, contextlib, ssl, sys
        before = ssl._create_default_https_context
        for name in ("unitoken_eval.harness.cli", "unitoken_eval.harness.export", "unitoken_eval.harness.interop", "unitoken_eval.harness.interop.vlmeval_io",
                     "unitoken_eval.harness.interop.jsonl_io", "unitoken_eval.model_adapters.replay", "unitoken_eval.integrations.vlmeval",
                     "unitoken_eval.integrations.vlmeval.run", "unitoken_eval.integrations.vlmeval.evaluate"):
            importlib.import_module(name)
        from unitoken_eval.harness.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["list"]) == 0
        assert "vlmeval" not in sys.modules, sorted(m for m in sys.modules if m.startswith("vlmeval"))
        assert ssl._create_default_https_context is before
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.skipif(HAS_VLMEVAL, reason="vlmeval is installed")
def test_bridge_without_vlmeval_says_how_to_install(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unitoken_eval.harness.cli", "vlmeval", "eval", "MME", "x.xlsx"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "needs VLMEvalKit" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "unitoken_eval.integrations.vlmeval.run", "--config", "cfg.json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "needs VLMEvalKit" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- with VLMEvalKit installed
def _vk_env(lmu: Path, cache: Path) -> dict:
    env = dict(os.environ, LMUData=str(lmu), UNITOKEN_EVAL_CACHE=str(cache), PYTHONPATH=str(REPO))
    env.pop("PRED_FORMAT", None)
    return env


def _ours(run: Path) -> dict:
    m = json.loads((run / "tasks" / "mme" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    return {"perception": m["perception"], "reasoning": m["cognition"],
            **{c: v["score"] for c, v in m["subtasks"].items()}}


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "unitoken_eval.harness.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.extra
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not HAS_VLMEVAL, reason="needs the vlmeval extra (VLMEvalKit installed)")
def test_tiny_through_vlmevalkit_mme_and_back(tmp_path):
    lmu = tmp_path / "LMUData"
    data = build_mme_tsv(lmu)
    env = _vk_env(lmu, tmp_path / "cache")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({
        "model": {"unitoken-tiny": {"class": "UniTokenEval", "model": "tiny", "model_args": "seed=0"}},
        "data": {"MME": {"class": "LocalImageYORNDataset", "dataset": "MME"}}}))
    work = tmp_path / "vk_out"
    # 1. VLMEvalKit's run.py, unmodified, with our class: inference + its own MME evaluation (exact matching)
    proc = _cli("vlmeval", "run", "--config", str(cfg), "--work-dir", str(work), "--judge", "exact_matching",
                env=env)
    pred = find_prediction_file(work, "unitoken-tiny", "MME")
    score_csv = pred.with_name("unitoken-tiny_MME_score.csv")
    vk = pd.read_csv(score_csv).to_dict("records")[0]
    assert set(vk) >= {"perception", "reasoning", *PERCEPTION, *COGNITION}, (vk, proc.stdout[-2000:])

    # 2. VK's predictions replayed into our store, scored by our vlmevalkit profile: VK's numbers
    replayed = tmp_path / "replayed"
    _cli("run", "--model", "replay", "--model-args", f"source={pred},data={data}", "--tasks", "mme",
         "--data", f"mme={data}", "--profile", "vlmevalkit", "--out", str(replayed), "--no-progress", env=env)
    assert _ours(replayed) == pytest.approx({k: float(v) for k, v in vk.items()}, abs=1e-9)

    # 3. tiny in our own runner, exported (VK's layout and xlsx text); tiny answered the same inside VK
    ours = tmp_path / "ours"
    _cli("run", "--model", "tiny", "--tasks", "mme", "--data", f"mme={data}", "--profile", "vlmevalkit",
         "--out", str(ours), "--no-progress", env=env)
    _cli("export", "--format", "vlmevalkit", "--run", str(ours), "--out", str(tmp_path / "exp"),
         "--model-name", "tiny", env=env)
    from unitoken_eval.harness.store import RunStore

    mine = {k: vio.xlsx_text(p.text) for k, p in RunStore(ours).read_predictions("mme").items()}
    vk_df = pd.read_excel(pred)
    assert mine == {str(i): p for i, p in zip(vk_df["index"], vk_df["prediction"])}

    # 4. answers that score (tiny's do not): scripted, written by VK's own dump (xlsxwriter); then VK's
    #    evaluate on both files in one process (importing vlmeval takes ~25 s)
    script = ["Yes", "No", "yes, it is.", "No.", "Not sure", "The answer is no", "YES", "no idea", "no", "yes"]
    scripted = tmp_path / "vk_scripted" / "scripted_MME.xlsx"
    scripted.parent.mkdir()
    code = textwrap.dedent(f"""
        import ssl, sys
        from unitoken_eval.integrations.vlmeval import require_vlmeval
        require_vlmeval()
        # vlmeval's import switched TLS verification off process-wide; the bridge put it back
        assert ssl._create_default_https_context is ssl.create_default_context
        from vlmeval.smp import dump, load
        from unitoken_eval.integrations.vlmeval.evaluate import main
        data = load({str(pred)!r})
        script = {script!r}
        data['prediction'] = [script[(7 * i + i // 3) % len(script)] for i in range(len(data))]
        dump(data, {str(scripted)!r})
        sys.exit(main(["MME", {str(tmp_path / "exp" / "tiny_MME.xlsx")!r}, {str(scripted)!r}, "--local"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, timeout=600, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (vk_exported,), (vk_scripted,) = [json.loads(x)["result"] for x in proc.stdout.strip().splitlines()[-2:]]
    assert vk_exported == pytest.approx(_ours(ours), abs=1e-9)
    assert vk_scripted["perception"] > 0 and vk_scripted["reasoning"] > 0  # not a trivial comparison
    again = tmp_path / "replayed_scripted"
    _cli("run", "--model", "replay", "--model-args", f"source={scripted}", "--tasks", "mme", "--data",
         f"mme={data}", "--profile", "vlmevalkit", "--out", str(again), "--no-progress", env=env)
    assert _ours(again) == pytest.approx(vk_scripted, abs=1e-9)


def test_prediction_files_are_found_in_both_run_py_layouts(tmp_path):
    """VLMEvalKit's repository writes WORK/MODEL/T<eval id>/..., ms-vlmeval from PyPI writes WORK/MODEL/...."""
    flat = tmp_path / "flat" / "m"
    flat.mkdir(parents=True)
    (flat / "m_MME.xlsx").write_bytes(b"x")
    assert find_prediction_file(tmp_path / "flat", "m", "MME") == flat / "m_MME.xlsx"
    nested = tmp_path / "nested" / "m"
    for eval_id in ("T20260101_Gabc", "T20260202_Gdef"):
        (nested / eval_id).mkdir(parents=True)
        (nested / eval_id / "m_MME.tsv").write_text("index\tprediction\n")
    assert find_prediction_file(tmp_path / "nested", "m", "MME") == nested / "T20260202_Gdef" / "m_MME.tsv"
    with pytest.raises(InteropError, match="no VLMEvalKit prediction file m_SEED"):
        find_prediction_file(tmp_path / "nested", "m", "SEED")


def test_run_py_is_found_inside_the_ms_vlmeval_package(tmp_path, monkeypatch):
    """ms-vlmeval (VLMEvalKit on PyPI) ships run.py as vlmeval/run.py; it is run as the module vlmeval.run."""
    from unitoken_eval.integrations.vlmeval import run as launcher

    site = tmp_path / "site"
    (site / "vlmeval").mkdir(parents=True)
    (site / "vlmeval" / "__init__.py").write_text("")
    (site / "vlmeval" / "run.py").write_text(
        "import sys\nfrom vlmeval import marker\nif __name__ == '__main__':\n    marker.seen.append(sys.argv[1:])\n")
    (site / "vlmeval" / "marker.py").write_text("seen = []\n")
    monkeypatch.syspath_prepend(str(site))
    for name in [m for m in sys.modules if m == "vlmeval" or m.startswith("vlmeval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delenv("VLMEVAL_RUN_PY", raising=False)
    run_py = launcher.find_run_py()
    assert run_py == (site / "vlmeval" / "run.py").resolve()
    assert launcher.run_module_name(run_py) == "vlmeval.run"
    import types

    fake_model = types.ModuleType("unitoken_eval.integrations.vlmeval.model")
    fake_model.register = lambda: None  # the real one needs vlmeval.dataset and vlmeval.vlm
    monkeypatch.setitem(sys.modules, "unitoken_eval.integrations.vlmeval.model", fake_model)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert launcher.main(["--config", "cfg.json"]) == 0
    import vlmeval.marker

    assert vlmeval.marker.seen == [["--config", "cfg.json"]]
