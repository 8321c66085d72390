"""harness.judge against a local OpenAI-compatible server started in each test (127.0.0.1, stops itself)."""

import json

import pytest

from harness.judge import Judge, JudgeUnavailable
from tests.fake_judge import FakeJudgeServer, free_port_url, judge_for


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
