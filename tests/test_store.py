from __future__ import annotations

import json

import pytest
from PIL import Image

from unitoken_eval.harness.store import JsonlAppender, RunStore, StoreError, read_jsonl, redact, safe_name
from unitoken_eval.harness.types import Headline, Prediction, TaskResult


def test_appender_cuts_a_torn_last_line_before_appending(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "predic')  # killed mid-write
    with JsonlAppender(path) as app:
        app.write([{"id": "c"}])
    assert [o["id"] for _, o in read_jsonl(path)] == ["a", "c"]
    assert path.read_bytes().endswith(b"\n")


def test_torn_line_with_no_newline_at_all_is_dropped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "half')
    with JsonlAppender(path) as app:
        app.write([{"id": "x"}])
    assert [o["id"] for _, o in read_jsonl(path)] == ["x"]


def test_reader_skips_torn_tail_but_rejects_garbage_in_the_middle(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"')
    assert [o["id"] for _, o in read_jsonl(path)] == ["a"]
    path.write_bytes(b'{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(StoreError, match=r"p.jsonl:2"):
        list(read_jsonl(path))


def test_predictions_merge_over_writers_first_record_wins(tmp_path):
    store = RunStore(tmp_path / "run")
    with store.prediction_writer("t", "rank0") as w:
        w.write([Prediction("1", text="A").to_json(), Prediction("2", text="B").to_json()])
    with store.prediction_writer("t", "rank1") as w:
        w.write([Prediction("2", text="other").to_json(), Prediction("3", text="C").to_json()])
    preds = store.read_predictions("t")
    assert {k: p.text for k, p in preds.items()} == {"1": "A", "2": "B", "3": "C"}


def test_lock_refuses_a_second_writer_with_the_same_id(tmp_path):
    a, b = RunStore(tmp_path / "run"), RunStore(tmp_path / "run")
    a.lock()
    with pytest.raises(StoreError, match="in use by pid"):
        b.lock()
    b.lock("rank1")  # a different shard writer may share the directory
    a.unlock()
    b.unlock()
    RunStore(tmp_path / "run").lock()


def test_images_stay_inside_the_run_directory(tmp_path):
    store = RunStore(tmp_path / "run")
    rel = store.save_image("t", "00001/samples/00000.png", Image.new("RGB", (2, 2)))
    assert (store.task_dir("t") / rel).exists()
    with pytest.raises(StoreError):
        store.save_image("t", "../../escape.png", Image.new("RGB", (2, 2)))
    with pytest.raises(StoreError):
        store.save_image("t", "/abs.png", Image.new("RGB", (2, 2)))


@pytest.mark.parametrize("raw", ["../../etc/passwd", "a/b", "x" * 300, "", "q\x00", "ok_id-1.2"])
def test_safe_name_is_a_single_harmless_path_component(raw):
    name = safe_name(raw)
    assert "/" not in name and "\x00" not in name and name not in ("", ".", "..") and len(name) <= 120
    if raw == "ok_id-1.2":
        assert name == raw
    assert safe_name("a/b") != safe_name("a_b")  # altered ids cannot collide with an existing plain id


def test_redact_hides_credentials_at_any_depth():
    out = redact({"model_args": {"path": "x", "api_key": "sk-123", "HF-Token": "h"}, "judge": [{"token": "t"}], "n": 1})
    assert out == {"model_args": {"path": "x", "api_key": "***", "HF-Token": "***"}, "judge": [{"token": "***"}], "n": 1}
    # Names that merely contain such letters stay readable.
    kept = {"unitoken-eval": "0.1.0", "max_tokens": 16, "keyword": "k", "monkey": 1}
    assert redact(kept) == kept


def test_manifest_and_metrics_round_trip(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_manifest({"run_id": "r", "config": {"model_args": {"secret": "s"}}})
    assert store.read_manifest()["config"]["model_args"]["secret"] == "***"
    res = TaskResult(task="t", profile="official", headline=Headline("accuracy", 50.0, "percent"), n=2)
    store.write_metrics(res)
    assert store.read_metrics("t") == res
    store.write_scores("t", {"1": {"score": 1}, "2": {"score": 0}})
    assert store.read_scores("t") == {"1": {"score": 1}, "2": {"score": 0}}
    assert json.loads((store.task_dir("t") / "metrics.json").read_text())["headline"]["scale"] == "percent"
