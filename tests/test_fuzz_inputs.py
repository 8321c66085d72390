"""Fuzzing the parsers of user-supplied files: whatever the bytes, only our own clear errors come out."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitoken_eval.harness.scoring import read_predictions_file
from unitoken_eval.harness.store import StoreError, read_jsonl
from unitoken_eval.harness.plugin import TaskError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
lines = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"index": json_values, "prediction": json_values}).map(lambda d: json.dumps(d).encode()),
)
files = st.lists(lines, max_size=6).map(lambda ls: b"\n".join(ls))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=files)
def test_predictions_reader_raises_only_task_errors(tmp_path, data):
    path = tmp_path / "p.jsonl"
    path.write_bytes(data)
    try:
        out = read_predictions_file(path)
    except TaskError as exc:
        assert str(path) in str(exc)  # the error names the file (and the line where there is one)
        return
    for sid, pred in out.items():
        assert isinstance(sid, str) and isinstance(pred.text, str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=files)
def test_store_reader_raises_only_store_errors(tmp_path, data):
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    try:
        for lineno, obj in read_jsonl(path):
            assert isinstance(obj, dict) and lineno >= 1
    except StoreError as exc:
        assert str(path) in str(exc)


# ----- VLMEvalKit TSVs and GenEval detections files (only our own clear errors come out)
tsv_cells = st.one_of(st.text(max_size=12), st.just(""), st.just("1"), st.just("iVBORw0KGgo="), st.just("[1, 2]"),
                      st.integers().map(str))
tsv_files = st.lists(st.lists(tsv_cells, min_size=1, max_size=5), min_size=0, max_size=5).map(
    lambda rows: "\n".join(["index\timage\tquestion\tanswer"] + ["\t".join(r) for r in rows]).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(tsv_files, st.binary(max_size=60)))
def test_tsv_loader_raises_only_task_errors(tmp_path, data):
    from unitoken_eval.tasks.common.vlmeval_tsv import load_tsv

    path = tmp_path / "X.tsv"
    path.write_bytes(data)
    try:
        rows = load_tsv(path, ["index", "image", "question", "answer"])
    except TaskError as exc:
        assert str(path) in str(exc)
        return
    for row in rows:
        try:
            row.image()
        except TaskError as exc:
            assert str(path) in str(exc)


detection_items = st.one_of(
    st.fixed_dictionaries({"box": st.lists(st.one_of(st.floats(allow_nan=False), st.text(max_size=2)), max_size=5),
                           "score": json_values, "color": json_values}),
    json_values,
)
detection_lines = st.one_of(
    lines,
    st.fixed_dictionaries({
        "filename": st.one_of(st.text(max_size=20), st.just("00001/samples/00000.png"), json_values),
        "detections": st.one_of(json_values, st.dictionaries(
            st.sampled_from(["dog", "cat", "tv remote", "unicorn", ""]), st.lists(detection_items, max_size=3),
            max_size=3)),
    }).map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(detection_lines, max_size=5).map(lambda ls: b"\n".join(ls)))
def test_geneval_detections_reader_raises_only_task_errors(tmp_path, data):
    from unitoken_eval.tasks.geneval.task import read_detections_file

    path = tmp_path / "detections.jsonl"
    path.write_bytes(data)
    try:
        read_detections_file(path)
    except TaskError as exc:
        assert str(path) in str(exc)
