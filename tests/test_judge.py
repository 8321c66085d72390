"""unitoken_eval.harness.judge against a local OpenAI-compatible server started in each test (127.0.0.1, stops itself)."""

import json
import re
from pathlib import Path

import pytest

from unitoken_eval.harness.judge import Judge, JudgeUnavailable
from unitoken_eval_testkit.fake_judge import FakeJudgeServer, free_port_url, judge_for


def echo(prompt, temperature):
    return f"echo:{prompt}:{temperature}"


def test_success_sends_model_and_params_and_key_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_JUDGE_API_KEY", "sk-test-secret")
    with FakeJudgeServer(echo) as srv:
        j = judge_for(srv.url + "#model=m1", tmp_path)
        assert j.complete("hi", temperature=0.5, max_tokens=7) == "echo:hi:0.5"
        body = srv.requests[0]
        assert body["model"] == "m1" and body["max_tokens"] == 7 and body["temperature"] == 0.5
        assert srv.headers[0]["Authorization"] == "Bearer sk-test-secret"
        assert "secret" not in j.name
    # the key is never written into the cache
    for f in tmp_path.rglob("*.json"):
        assert "secret" not in f.read_text()


def test_model_from_env_then_from_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_JUDGE_MODEL", "env-model")
    assert Judge.from_spec("http://127.0.0.1:1/v1", cache_dir=tmp_path).model == "env-model"
    monkeypatch.delenv("UNITOKEN_JUDGE_MODEL")
    with FakeJudgeServer(echo, model="served") as srv:
        j = judge_for(srv.url, tmp_path)
        j.complete("x")
        assert j.model == "served" and srv.requests[0]["model"] == "served"


def test_bad_specs():
    with pytest.raises(ValueError, match="not an http"):
        Judge.from_spec("localhost:8000")
    with pytest.raises(ValueError, match="credentials"):
        Judge.from_spec("http://user:pw@host/v1")
    with pytest.raises(ValueError, match="unknown option"):
        Judge.from_spec("http://host/v1#modle=x")


def test_retry_after_500s(tmp_path):
    with FakeJudgeServer(echo, fail_first=2) as srv:
        j = judge_for(srv.url + "#model=m&retries=3", tmp_path)
        assert j.complete("p") == "echo:p:0.0"
        assert len(srv.requests) == 3 and j.calls == 3


def test_garbage_reply_is_retried_then_unavailable_and_not_cached(tmp_path):
    with FakeJudgeServer(echo, garbage=True) as srv:
        j = judge_for(srv.url + "#model=m&retries=2", tmp_path)
        with pytest.raises(JudgeUnavailable, match="not JSON"):
            j.complete("p")
        assert len(srv.requests) == 3
    assert not list(tmp_path.rglob("*.json"))


def test_cache_hit_does_not_call_server_and_key_depends_on_params(tmp_path):
    with FakeJudgeServer(echo) as srv:
        j = judge_for(srv.url + "#model=m", tmp_path)
        outs = j.complete_many([f"q{i}" for i in range(6)])
        assert outs == [f"echo:q{i}:0.0" for i in range(6)]
        assert len(srv.requests) == 6
        j2 = judge_for(srv.url + "#model=m", tmp_path)          # a re-run: new client, same cache
        assert j2.complete_many([f"q{i}" for i in range(6)]) == outs
        assert len(srv.requests) == 6 and j2.cache_hits == 6 and j2.calls == 0
        j2.complete("q0", temperature=1.0)                        # another temperature is another key
        judge_for(srv.url + "#model=other", tmp_path).complete("q0")  # another model too
        assert len(srv.requests) == 8


def test_cache_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "root"))
    with FakeJudgeServer(echo) as srv:
        Judge.from_spec(srv.url + "#model=m").complete("z")
    files = list((tmp_path / "root" / "judge").rglob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["response"] == "echo:z:0.0"


def test_server_down_raises_unavailable_and_fails_fast_after(tmp_path):
    j = judge_for(free_port_url() + "#model=m&retries=2&backoff=0.01", tmp_path)
    with pytest.raises(JudgeUnavailable, match="unavailable"):
        j.complete("a")
    outs = j.complete_many(["b", "c"], return_errors=True)
    assert all(isinstance(o, JudgeUnavailable) for o in outs)


def test_client_error_is_not_retried(tmp_path):
    with FakeJudgeServer(echo) as srv:
        j = judge_for(srv.url.replace("/v1", "/nope") + "#model=m", tmp_path)
        with pytest.raises(JudgeUnavailable, match="HTTP 404"):
            j.complete("a")
        assert j.calls == 1


def test_redirect_is_refused_and_key_not_forwarded(tmp_path, monkeypatch):
    """urllib follows 30x with Authorization to any host; the client must refuse instead (judge.py _NoRedirect)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        monkeypatch.setenv("UNITOKEN_JUDGE_API_KEY", "sk-test-secret")
        j = judge_for(f"http://127.0.0.1:{srv.server_port}/v1#model=m&retries=3&backoff=0.01", tmp_path)
        with pytest.raises(JudgeUnavailable, match="redirect"):
            j.complete("a")
        assert [p for p, _ in seen] == ["/v1/chat/completions"]  # not retried, never followed
    finally:
        srv.shutdown()
        srv.server_close()


# ----- a whole run against a failing judge: retries with backoff, pending (never a zero), resume scores them
def _judged_run(tmp_path, judge_url: str, resume: bool, retries: int = 3):
    import contextlib
    import io

    from unitoken_eval.harness.cli import main

    data = Path(__file__).resolve().parents[1] / "tasks" / "smoke_data" / "understanding" / "MathVista_MINI.tsv"
    spec = judge_url + f"#model=m&retries={retries}&backoff=0.1&timeout=0.3&time_limit=2&concurrency=1"
    argv = ["run", "--model", "fake_echo_model", "--tasks", "mathvista_testmini", "--data",
            f"mathvista_testmini={data}", "--judge", spec, "--out", str(tmp_path / "run"), "--no-progress"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv + (["--resume"] if resume else []))
    assert code == 0, out.getvalue()
    task = tmp_path / "run" / "tasks" / "mathvista_testmini"
    metrics = json.loads((task / "metrics.json").read_text())
    scores = [json.loads(x) for x in (task / "scores.jsonl").read_text().splitlines()]
    return out.getvalue(), metrics, scores


def _assert_pending(metrics, scores) -> int:
    pending = [r for r in scores if r.get("status") == "pending judge"]
    assert pending and all(r["score"] is None for r in pending)
    assert metrics["status"] == "not_scored" and metrics["headline"]["value"] is None  # never a silent zero
    assert metrics["metrics"]["pending_judge"] == len(pending)
    assert metrics["reason"] == f"{len(pending)} samples pending judge (the judge was unavailable)"
    return len(pending)


def test_run_with_judge_down_slow_then_garbage_leaves_samples_pending_and_resume_scores_them(
        plugins, tmp_path, monkeypatch):
    from unitoken_eval_testkit import fake_plugins

    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    run_log = tmp_path / "run" / "run.log"

    # 1. nothing listens: connection refused, three retries at doubling waits, then pending
    text, metrics, scores = _judged_run(tmp_path, free_port_url(), resume=False)
    n_pending = _assert_pending(metrics, scores)
    waits = [float(w) for w in re.findall(r"retrying in ([0-9.]+)s", run_log.read_text())]
    assert waits == [0.1, 0.2, 0.4]
    assert "Connection refused" in run_log.read_text() or "ConnectionRefused" in run_log.read_text()
    preds_file = tmp_path / "run" / "tasks" / "mathvista_testmini" / "predictions-main.jsonl"
    preds = preds_file.read_bytes()
    calls = fake_plugins.EchoModel.calls
    assert f"inferred this time: {len(preds.splitlines())} samples" in text

    with FakeJudgeServer(lambda p, t: "2", delay_s=1.0) as srv:
        # 2. slower than the 0.3 s timeout: tries spaced by timeout + growing backoff (0.4, 0.5, 0.7 s)
        # until the 2 s time limit ends them, well before the 9 tries 8 retries would allow
        text, metrics, scores = _judged_run(tmp_path, srv.url, resume=True, retries=8)
        assert _assert_pending(metrics, scores) == n_pending and "inferred this time: 0 samples" in text
        gaps = [b - a for a, b in zip(srv.arrivals, srv.arrivals[1:])]
        assert 3 <= len(srv.arrivals) <= 4, gaps
        assert gaps[0] >= 0.3 and all(b > a + 0.05 for a, b in zip(gaps, gaps[1:])), gaps  # backoff grows
        assert srv.arrivals[-1] - srv.arrivals[0] < 2.0
        assert "time limit 2s reached" in run_log.read_text()

        # 3. answers garbage: every try fails to parse, the first prompt's 4 tries, then the rest fail fast
        srv.delay_s, srv.garbage = 0.0, True
        before = len(srv.requests)
        text, metrics, scores = _judged_run(tmp_path, srv.url, resume=True)
        assert _assert_pending(metrics, scores) == n_pending
        assert len(srv.requests) - before == 4 and "reply is not JSON" in run_log.read_text()

        # 4. healthy: --resume scores exactly the pending samples, from stored predictions only
        srv.garbage = False
        before = len(srv.requests)
        text, metrics, scores = _judged_run(tmp_path, srv.url, resume=True)
        assert "inferred this time: 0 samples" in text
        assert len(srv.requests) - before == n_pending
    assert metrics["status"] == "scored" and metrics["headline"]["value"] is not None
    assert metrics["metrics"]["pending_judge"] == 0 and metrics["metrics"]["extracted_by"]["judge"] == n_pending
    assert not [r for r in scores if r.get("status") == "pending judge"]
    assert preds_file.read_bytes() == preds and fake_plugins.EchoModel.calls == calls  # no re-inference
