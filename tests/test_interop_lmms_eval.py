"""lmms-eval interop: its sample logs read into our scorers, our adapters run as lmms-eval models.

Core tests (no lmms-eval): the importer on logs written in lmms-eval 0.7.3's line format, its errors, the
offline lmms-lab/MME-schema data, and that nothing in the core imports lmms_eval.  Extra tests (skipped
unless ``.[lmms-eval]`` is installed) run lmms-eval's own ``mme`` task end to end, offline, on that data with
our ``tiny`` model and with a scripted-answer adapter, and check that re-scoring lmms-eval's logged samples
with our ``mme`` gives the perception/cognition totals lmms-eval's scorer computed in the same test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unitoken_eval.harness.interop import InteropError
from unitoken_eval.harness.interop import lmms_eval_logs as lel
from unitoken_eval.integrations.lmms_eval import local_task as lt

ROOT = Path(__file__).resolve().parents[1]
SMOKE_MME = ROOT / "tasks" / "smoke_data" / "understanding" / "MME.tsv"


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def mme_rows():
    return lt.synthetic_mme_rows(images_per_category=1, seed=0)


@pytest.fixture(scope="module")
def mme_dir(tmp_path_factory, mme_rows):
    return lt.write_mme_dataset(mme_rows, tmp_path_factory.mktemp("mme") / "MME")


def log_line(doc_id: int, row: dict, text, **extra) -> dict:
    """A line as lmms-eval 0.7.3 writes it for mme (keys and nesting copied from a real run's log)."""
    key = "mme_perception_score" if row["category"] in lt.PERCEPTION else "mme_cognition_score"
    line = {"doc_id": doc_id, "target": row["answer"], "filtered_resps": text, "token_counts": [None],
            "doc_hash": "0" * 64, "input_media": [row["question_id"]],
            key: {"question_id": row["question_id"], "category": row["category"], "score": 0.0},
            "input": row["question"].replace(lt.SUFFIX, "") + "\nAnswer the question using a single word or phrase."}
    line.update(extra)
    return line


def write_log(path: Path, lines) -> Path:
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln, ensure_ascii=False)) + "\n"
                            for ln in lines), encoding="utf-8")
    return path


def right_answers(rows):
    return {i: r["answer"] for i, r in enumerate(rows)}


# ------------------------------------------------------------------ data in lmms-lab/MME's schema
def test_synthetic_mme_is_lmms_lab_schema_and_loads_as_our_mme(mme_dir, mme_rows):
    import datasets

    ds = datasets.load_dataset(str(mme_dir), split="test")  # how lmms-eval opens a local dataset_path
    assert ds.column_names == ["question_id", "image", "question", "answer", "category"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert all(ds.features[c].dtype == "string" for c in ("question_id", "question", "answer", "category"))
    assert len(ds) == 28 and sorted(set(ds["category"])) == sorted((*lt.PERCEPTION, *lt.COGNITION))

    from unitoken_eval.harness import registry

    samples = registry.make_task("mme", {}).load(str(mme_dir))
    assert [s.id for s in samples] == [str(i) for i in range(28)]
    assert [s.fields["image_path"] for s in samples] == [r["question_id"] for r in mme_rows]
    pairs = {}
    for s in samples:
        pairs.setdefault(s.fields["image_path"], []).append(s.fields["answer"])
    assert all(sorted(v) == ["No", "Yes"] for v in pairs.values())


def test_vk_tsv_converts_to_lmms_lab_schema(tmp_path):
    rows = lt.mme_rows_from_tsv(SMOKE_MME)
    assert len(rows) == 6 and rows[0]["question_id"] == "MME/existence/0000.png"
    out = lt.write_mme_dataset(rows, tmp_path / "from_tsv")
    from unitoken_eval.harness import registry

    samples = registry.make_task("mme", {}).load(str(out))
    assert [s.fields["question"] for s in samples] == [r["question"] for r in rows]


# ------------------------------------------------------------------ the importer
def test_log_lines_join_our_samples_by_doc_id(tmp_path, mme_dir, mme_rows):
    texts = {i: f"answer {i}" for i in range(len(mme_rows))}
    order = list(range(len(mme_rows)))[::-1]  # a multi-GPU gather writes docs out of order
    path = write_log(tmp_path / "20260101_000000_samples_mme_local.jsonl",
                     [log_line(i, mme_rows[i], texts[i]) for i in order])
    assert lel.sniff(path)
    got = lel.load_predictions(path, "mme", source=str(mme_dir))
    assert got == {str(i): texts[i] for i in range(len(mme_rows))}

    from unitoken_eval.harness import registry

    task = registry.make_task("mme", {})
    samples = task.load(str(mme_dir))
    assert lel.load_predictions(path, task, samples=samples) == got
    # the task remembers the data it read last: no source needed then
    assert lel.load_predictions(path, task) == got


def test_partial_log_and_nested_responses(tmp_path, mme_dir, mme_rows):
    # --limit 4: the first docs only; responses as lmms-eval nests them before flattening
    lines = [log_line(0, mme_rows[0], ["Yes"]), log_line(1, mme_rows[1], [["No"]]),
             log_line(2, mme_rows[2], "Yes", resps=[["<think>hm</think>Yes"]]), log_line(3, mme_rows[3], "")]
    got = lel.load_predictions(write_log(tmp_path / "l.jsonl", lines), "mme", source=str(mme_dir))
    assert got == {"0": "Yes", "1": "No", "2": "Yes", "3": ""}


@pytest.mark.parametrize("case", ["bad_json", "unknown_doc", "duplicate", "other_data", "other_image", "repeats",
                                  "no_doc_id", "no_response", "not_utf8", "json_document", "torn_tail"])
def test_bad_logs_name_file_and_line(tmp_path, mme_dir, mme_rows, case):
    good = [log_line(i, mme_rows[i], "Yes") for i in range(3)]
    path = tmp_path / "samples.jsonl"
    line, expect = 3, None
    if case == "bad_json":
        write_log(path, good[:2] + ['{"doc_id": 2, "filtered_resps": "Yes"'])
        expect = "not valid JSON"
    elif case == "unknown_doc":
        write_log(path, good[:2] + [log_line(28, mme_rows[0], "Yes")])
        expect = "doc_id 28 is not a sample of mme"
    elif case == "duplicate":
        write_log(path, good + [log_line(1, mme_rows[1], "No")])
        line, expect = 4, "doc_id 1 repeats line 2"
    elif case == "other_data":  # the same doc_id but another document: its target disagrees
        other = dict(mme_rows[2], answer="No" if mme_rows[2]["answer"] == "Yes" else "Yes")
        write_log(path, good[:2] + [log_line(2, other, "Yes")])
        expect = "does not match sample '2'"
    elif case == "other_image":
        other = dict(mme_rows[2], question_id="landmark/9999.png")
        write_log(path, good[:2] + [log_line(2, other, "Yes")])
        expect = "question_id 'landmark/9999.png'"
    elif case == "repeats":
        write_log(path, good[:2] + [log_line(2, mme_rows[2], ["Yes", "No"])])
        expect = "2 responses for one document"
    elif case == "no_doc_id":
        write_log(path, good[:2] + [{"filtered_resps": "Yes"}])
        expect = "no 'doc_id'"
    elif case == "no_response":
        write_log(path, good[:2] + [{"doc_id": 2, "target": "Yes"}])
        expect = "no 'filtered_resps' or 'resps'"
    elif case == "not_utf8":
        write_log(path, good[:2])
        with open(path, "ab") as fh:
            fh.write(b'{"doc_id": 2, "filtered_resps": "\xff"}\n')
        expect = "not UTF-8"
    elif case == "json_document":
        path.write_text(json.dumps({"logs": good}, indent=2), encoding="utf-8")
        line, expect = 1, "a JSON document, not JSON lines"
    elif case == "torn_tail":
        write_log(path, good[:2])
        with open(path, "a", encoding="utf-8") as fh:
            fh.write('{"doc_id": 2, "filtered_re')
        expect = "partial line"
    with pytest.raises(InteropError) as err:
        lel.load_predictions(path, "mme", source=str(mme_dir))
    assert f"{path}:{line}:" in str(err.value)
    assert expect in str(err.value)


def test_missing_log_is_an_interop_error(tmp_path):
    with pytest.raises(InteropError, match="does not exist"):
        lel.read_log(tmp_path / "nope.jsonl")


def test_sniff_tells_lmms_eval_logs_from_other_files(tmp_path, mme_rows):
    ours = tmp_path / "pred.jsonl"
    ours.write_text('{"index": "0", "prediction": "Yes"}\n', encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\xff\xfe")
    real = write_log(tmp_path / "s.jsonl", [log_line(0, mme_rows[0], "Yes")])
    assert lel.sniff(real)
    assert not any(lel.sniff(p) for p in (ours, empty, binary, tmp_path / "missing.jsonl"))


def test_converted_log_scores_through_unitoken_eval_score(tmp_path, mme_dir, mme_rows, capsys):
    """All right = MME's maxima (2000 / 800); one wrong answer in ``count`` costs acc 50 and acc+ 100 there."""
    answers = right_answers(mme_rows)
    wrong = next(i for i, r in enumerate(mme_rows) if r["category"] == "count")
    answers[wrong] = "No" if answers[wrong] == "Yes" else "Yes"
    log = write_log(tmp_path / "x_samples_mme_local.jsonl", [log_line(i, mme_rows[i], t) for i, t in answers.items()])
    pred = tmp_path / "pred.jsonl"
    assert lel.main([str(log), "--task", "mme", "--data", str(mme_dir), "--out", str(pred)]) == 0
    from unitoken_eval.harness.cli import main as cli

    capsys.readouterr()
    assert cli(["score", "--task", "mme", "--data", str(mme_dir), "--predictions", str(pred), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["perception"] == pytest.approx(2000 - 150)
    assert out["metrics"]["cognition"] == pytest.approx(800)
    assert out["metrics"]["subtasks"]["count"]["score"] == pytest.approx(50)


def test_converter_reports_errors_on_one_line(tmp_path, mme_dir, capsys):
    bad = write_log(tmp_path / "bad.jsonl", ['{"doc_id": 0'])
    assert lel.main([str(bad), "--task", "mme", "--data", str(mme_dir), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert f"{bad}:1:" in capsys.readouterr().err


# ------------------------------------------------------------------ the core stays free of lmms_eval
def test_core_never_imports_lmms_eval():
    """Import every core module that imports here, run ``unitoken-eval list`` and the lmms-eval importer."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys, io, contextlib
        for pkg in ("harness", "tasks", "model_adapters"):
            mod = importlib.import_module(pkg)
            for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
                try:
                    importlib.import_module(info.name)
                except ImportError:
                    pass  # a module behind another optional extra (geneval's mmdet, ...)
        # the bridge's own modules that run without lmms-eval (models.py is imported by lmms-eval only)
        for name in ("unitoken_eval.integrations.lmms_eval", "unitoken_eval.integrations.lmms_eval.plugin", "unitoken_eval.integrations.lmms_eval.local_task",
                     "unitoken_eval.harness.interop.lmms_eval_logs"):
            importlib.import_module(name)
        from unitoken_eval.harness.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["list"]) == 0
        bad = sorted(m for m in sys.modules if m == "lmms_eval" or m.startswith("lmms_eval."))
        print("LMMS", bad)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LMMS []" in out.stdout, out.stdout[-2000:]


def test_missing_extra_says_which_to_install(monkeypatch):
    from unitoken_eval.integrations import lmms_eval as bridge
    from unitoken_eval.integrations.lmms_eval import plugin

    monkeypatch.setitem(sys.modules, "lmms_eval", None)  # import lmms_eval now fails as if not installed
    for call in (lambda: bridge.require_lmms_eval("x"), plugin.manifests):
        with pytest.raises(bridge.LmmsEvalMissing, match=r"pip install 'unitoken-eval\[lmms-eval\]'"):
            call()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(bridge.LmmsEvalMissing, match=r"unitoken-eval\[lmms-eval\]"):
        lt.lmms_eval_task_yaml("mme")


# ================================================================== with the extra installed
SCRIPTED = '''
"""A test adapter whose answers depend only on the prompt: mixed right/wrong pairs, several answer styles."""
import hashlib
from unitoken_eval.harness.plugin import ModelAdapter

STYLES = ["Yes", "No", "yes, it is.", "No.", "Not sure", "maybe", "YES", "no"]


class Scripted(ModelAdapter):
    id = "scripted"
    capabilities = frozenset({"understand"})

    def understand(self, requests):
        out = []
        for r in requests:
            k = int(hashlib.sha1(r.prompt.encode("utf-8")).hexdigest(), 16)
            out.append(STYLES[k % len(STYLES)] + "\\n\\nanything after lmms-eval's stop string")
        return out

    def batch_size(self, kind):
        return 5
'''


@pytest.fixture
def scripted_site(tmp_path, monkeypatch):
    """The scripted adapter as an installed third-party plugin (dist-info + module), also for subprocesses."""
    from unitoken_eval.harness import registry

    site = tmp_path / "site"
    info = site / "scripted_adapter-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scripted-adapter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[unitoken_eval.model_adapters]\nscripted = scripted_adapter:Scripted\n")
    (site / "scripted_adapter.py").write_text(SCRIPTED, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    yield site
    registry.clear_cache()


def lmms_mme_utils():
    """lmms-eval's own mme scorer module (tasks/mme/utils.py of the installed lmms-eval)."""
    path = lt.lmms_eval_task_yaml("mme").parent / "utils.py"
    spec = importlib.util.spec_from_file_location("lmms_eval_mme_utils", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_plugin_registers_our_models_in_lmms_eval():
    pytest.importorskip("lmms_eval")
    from lmms_eval.models import get_model

    from unitoken_eval.integrations.lmms_eval.models import UniToken, UnitokenEval

    assert get_model("unitoken") is UniToken
    assert get_model("unitoken_eval") is UnitokenEval


def test_generate_until_batches_cuts_at_until_and_keeps_order(scripted_site):
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.instance import Instance
    from PIL import Image

    from unitoken_eval.integrations.lmms_eval.models import UnitokenEval, cut_at_stop, image_key

    lm = UnitokenEval.create_from_arg_string("adapter=scripted", {"batch_size": "auto", "device": None})
    assert lm.requests_per_call == 5
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    docs = [{"img": red}, {"img": red}, {"img": blue}] * 4
    lm.task_dict = {"t": {"test": docs}}
    seen = []
    orig = lm.adapter.understand

    def spy(reqs):
        seen.append(reqs)
        return orig(reqs)

    lm.adapter.understand = spy
    reqs = [Instance("generate_until", (f"q{i}", {"max_new_tokens": 7, "until": ["\n\n"]}, lambda d: [d["img"]], i,
                                        "t", "test"), idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1})
            for i in range(len(docs))]
    got = lm.generate_until(reqs)
    assert [len(b) for b in seen] == [5, 5, 2]
    flat = [r for b in seen for r in b]
    assert [r.prompt for r in flat] == [f"q{i}" for i in range(12)] and {r.max_new_tokens for r in flat} == {7}
    assert flat[0].image_key == flat[1].image_key == image_key(red) != flat[2].image_key
    assert got == [cut_at_stop(t, ["\n\n"]) for t in orig(flat)] and all("\n" not in t for t in got)
    assert cut_at_stop("a.b\nc", [".", "\n"]) == "a" and cut_at_stop("abc", None) == "abc"
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        lm.loglikelihood(reqs)


def run_lmms_eval(tmp_path, mme_dir, model_args, extra_path=None, timeout=900):
    """lmms-eval's CLI, offline, on lmms-eval's own mme task pointed at ``mme_dir``; returns (results, log path)."""
    tasks = tmp_path / "tasks"
    lt.write_task_yaml(tasks, mme_dir, name="mme_local")
    out = tmp_path / "out"
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"), WANDB_MODE="disabled")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    exe = Path(sys.executable).with_name("lmms-eval")
    cmd = [str(exe), "--model", "unitoken_eval", "--model_args", model_args, "--tasks", "mme_local",
           "--include_path", str(tasks), "--batch_size", "auto", "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    results = sorted(out.rglob("*_results.json"))
    logs = sorted(out.rglob("*_samples_mme_local.jsonl"))
    # lmms-eval logs an evaluation error and still exits 0: the files are the evidence of a finished run
    assert proc.returncode == 0 and results and logs, (proc.stdout[-4000:], proc.stderr[-4000:])
    return json.loads(results[-1].read_text(encoding="utf-8"))["results"]["mme_local"], logs[-1]


def ours_on_log(log, mme_dir, tmp_path):
    """Our side: importer -> predictions file -> ``unitoken-eval score`` (official profile), in a subprocess."""
    pred = tmp_path / "ours.jsonl"
    lel.write_predictions_file(lel.load_predictions(log, "mme", source=str(mme_dir)), pred)
    exe = Path(sys.executable).with_name("unitoken-eval")
    proc = subprocess.run([str(exe), "score", "--task", "mme", "--data", str(mme_dir), "--predictions", str(pred),
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def lmms_per_category(log, mme_dir):
    """lmms-eval's mme_process_results + mme_aggregate_results, category by category, on the logged answers."""
    import datasets

    utils = lmms_mme_utils()
    docs = datasets.load_dataset(str(mme_dir), split="test").remove_columns("image")
    by_cat = {}
    for line in lel.read_log(log):
        doc = docs[line.doc_id]
        for rec in utils.mme_process_results(doc, [line.text]).values():
            by_cat.setdefault(rec["category"], []).append(rec)
    return {cat: utils.mme_aggregate_results(recs) for cat, recs in by_cat.items()}


@pytest.mark.slow
@pytest.mark.extra
def test_scripted_answers_through_lmms_eval_mme_score_the_same(tmp_path, mme_dir, scripted_site):
    pytest.importorskip("lmms_eval")
    theirs, log = run_lmms_eval(tmp_path, mme_dir, "adapter=scripted", extra_path=scripted_site)
    ours = ours_on_log(log, mme_dir, tmp_path)
    lines = lel.read_log(log)
    assert len(lines) == 28 and all("\n" not in ln.text for ln in lines)  # answers were cut at until
    perception, cognition = theirs["mme_perception_score,none"], theirs["mme_cognition_score,none"]
    assert 0 < perception < 2000 and 0 < cognition < 800  # mixed right and wrong: the check has teeth
    assert ours["metrics"]["perception"] == pytest.approx(perception, abs=1e-9)
    assert ours["metrics"]["cognition"] == pytest.approx(cognition, abs=1e-9)
    assert ours["headline"]["value"] == pytest.approx(perception + cognition, abs=1e-9)
    per_cat = lmms_per_category(log, mme_dir)
    assert {c: ours["metrics"]["subtasks"][c]["score"] for c in per_cat} == pytest.approx(per_cat, abs=1e-9)

    # The other way in: the replay adapter turns the same log into a run of ours (store, metrics.json).
    from unitoken_eval.harness import registry

    if "replay" in registry.adapter_ids():
        run_dir = tmp_path / "replayed"
        exe = Path(sys.executable).with_name("unitoken-eval")
        proc = subprocess.run([str(exe), "run", "--model", "replay", "--model-args",
                               f"source={log},data={mme_dir},task=mme", "--tasks", "mme", "--data", f"mme={mme_dir}",
                               "--out", str(run_dir), "--no-progress"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics = json.loads((run_dir / "tasks" / "mme" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
        assert metrics["perception"] == pytest.approx(perception, abs=1e-9)
        assert metrics["cognition"] == pytest.approx(cognition, abs=1e-9)


@pytest.mark.slow
@pytest.mark.extra
def test_tiny_unitoken_through_lmms_eval_mme_offline(tmp_path, mme_dir, module_cache):
    """The issue's acceptance run: our tiny UniToken-layout checkpoint answering lmms-eval's mme offline."""
    pytest.importorskip("lmms_eval")
    theirs, log = run_lmms_eval(tmp_path, mme_dir, "adapter=tiny")
    ours = ours_on_log(log, mme_dir, tmp_path)
    assert ours["n"] == 28 and len(lel.read_log(log)) == 28
    assert ours["metrics"]["perception"] == pytest.approx(theirs["mme_perception_score,none"], abs=1e-9)
    assert ours["metrics"]["cognition"] == pytest.approx(theirs["mme_cognition_score,none"], abs=1e-9)
    per_cat = lmms_per_category(log, mme_dir)
    assert {c: ours["metrics"]["subtasks"][c]["score"] for c in per_cat} == pytest.approx(per_cat, abs=1e-9)


def test_where_lmms_eval_and_mme_official_parsing_differ():
    """lmms-eval's mme ``parse_pred_ans`` strips, drops periods and reads a lone y/n; MME's official one does not.

    Our ``official`` profile is MME's rule, so answers like these would score differently there; the
    scripted and tiny runs above contain none of them.  Pinned here so a change on either side is noticed.
    """
    pytest.importorskip("lmms_eval")
    from unitoken_eval.tasks.common.yesno import mme_parse_pred_ans

    theirs = lmms_mme_utils().parse_pred_ans
    agree = ["Yes", "No", "yes, it is.", "No.", "Not sure", "maybe", "YES", "no", " yes", "Yes\n"]
    differ = ["y", "N", "  yes", "...no", "Y."]
    assert all(theirs(a) == mme_parse_pred_ans(a) for a in agree)
    assert [(theirs(a), mme_parse_pred_ans(a)) for a in differ] == \
        [("yes", "other"), ("no", "other"), ("yes", "other"), ("no", "other"), ("yes", "other")]
