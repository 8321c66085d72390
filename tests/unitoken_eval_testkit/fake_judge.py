"""A small OpenAI-compatible chat server on 127.0.0.1 for judge tests (started and stopped by the test).

``reply(prompt, temperature) -> str`` decides the answer (or returns ``(status, message)`` for an API error
reply); chat paths of OpenAI and Azure endpoints are served; ``fail_first`` makes the first N requests 500s;
``garbage`` makes every reply an invalid JSON body; ``delay_s`` holds each reply back (a slow endpoint).
``garbage`` and ``delay_s`` may be changed while the server runs.  Every request is logged in ``requests``,
its arrival time (``time.monotonic()``) in ``arrivals``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeJudgeServer:
    def __init__(self, reply: Callable[[str, float], str], fail_first: int = 0, garbage: bool = False,
                 model: str = "fake-judge", delay_s: float = 0.0):
        self.reply = reply
        self.fail_first = fail_first
        self.garbage = garbage
        self.delay_s = delay_s
        self.model = model
        self.requests: list[dict] = []
        self.arrivals: list[float] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def _send(self, code: int, body: bytes):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (delay_s beyond its timeout)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._send(200, json.dumps({"data": [{"id": outer.model}]}).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                # OpenAI paths (.../v1/chat/completions) and Azure ones (.../chat/completions?api-version=...)
                route = self.path.split("?", 1)[0]
                if not (route.endswith("/v1/chat/completions") or
                        ("/openai/deployments/" in route and route.endswith("/chat/completions"))):
                    self._send(404, b"{}")
                    return
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                with outer._lock:
                    outer.requests.append(body)
                    outer.arrivals.append(time.monotonic())
                    outer.headers.append(dict(self.headers))
                    k = len(outer.requests)
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if k <= outer.fail_first:
                    self._send(500, b'{"error": "boom"}')
                    return
                if outer.garbage:
                    self._send(200, b"<html>not json")
                    return
                prompt = body["messages"][-1]["content"]
                if isinstance(prompt, list):  # content parts, as the openai client sends them
                    prompt = "".join(part.get("text", "") for part in prompt if isinstance(part, dict))
                text = outer.reply(prompt, float(body.get("temperature", 0.0)))
                if isinstance(text, tuple):  # (HTTP status, error message): an API error reply
                    code, message = text
                    self._send(code, json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                           "code": None, "param": None}}).encode())
                    return
                self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeJudgeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was bound and released)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def judge_for(url: str, cache_dir, **kw):
    from unitoken_eval.harness.judge import Judge

    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("time_limit_s", 10.0)
    kw.setdefault("timeout_s", 5.0)
    return Judge.from_spec(url, cache_dir=cache_dir, **kw)

