"""Fuzzing the parsers of user-supplied files: whatever the bytes, only our own clear errors come out."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.scoring import read_predictions_file
from harness.store import StoreError, read_jsonl
from tasks.base import TaskError

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
