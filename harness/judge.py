"""A client for an LLM judge behind any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Some reference scorers ask a language model to grade or extract answers.  Users point us at a local vLLM
server or a hosted API; either way a re-run of the same scoring must cost nothing and give the same
answers, so every successful reply is cached on disk under a key made of the model, the prompt, the
temperature and the request parameters.  When the endpoint stays down the client raises
:class:`JudgeUnavailable`, and the caller records the sample as pending rather than wrong.

The API key is read from the environment only (``UNITOKEN_JUDGE_API_KEY``, else ``OPENAI_API_KEY``); it is
never part of the spec, the cache key, the cache files, or :attr:`Judge.name`.  TLS certificates are
verified (urllib's default context).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from unitoken_eval.harness.plugin import JudgeUnavailable

CACHE_ENV = "UNITOKEN_EVAL_CACHE"
MODEL_ENV = "UNITOKEN_JUDGE_MODEL"
KEY_ENVS = ("UNITOKEN_JUDGE_API_KEY", "OPENAI_API_KEY")
_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
log = logging.getLogger("unitoken_eval.judge")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 30x carrying the Authorization header to any host (or from https to http);
    an OpenAI-compatible endpoint has no reason to redirect, so a redirect is an error instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())




class _Transient(Exception):
    pass


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "unitoken-eval"
    return base / "judge"


def _api_key() -> Optional[str]:
    for name in KEY_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


class Judge:
    """Chat-completion client with bounded concurrency, retries with exponential backoff, and a disk cache."""

    def __init__(self, base_url: str, model: Optional[str] = None, *, timeout_s: float = 60.0, retries: int = 4,
                 backoff_s: float = 1.0, time_limit_s: float = 300.0, concurrency: int = 8,
                 cache_dir: Optional[Union[str, Path]] = None, max_tokens: int = 256):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"judge endpoint {base_url!r} is not an http(s) URL (expected e.g. http://host:8000/v1)")
        if parsed.username or parsed.password:
            raise ValueError("judge endpoint must not carry credentials; set UNITOKEN_JUDGE_API_KEY instead")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.time_limit_s = float(time_limit_s)
        self.concurrency = max(1, int(concurrency))
        self.max_tokens = int(max_tokens)
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root()
        self.calls = 0          # HTTP requests actually sent (cache hits excluded)
        self.cache_hits = 0
        self._down: Optional[str] = None
        self._lock = threading.Lock()

    # ----- construction
    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> "Judge":
        """``http://host:port/v1`` with an optional fragment ``#model=NAME&concurrency=8&retries=4&timeout=60``
        (also ``time_limit``, ``backoff`` in seconds, ``max_tokens``).

        The model may also come from ``$UNITOKEN_JUDGE_MODEL``; with neither, the endpoint's first listed
        model is used (a local vLLM server serves one).
        """
        url, _, frag = spec.partition("#")
        opts = dict(urllib.parse.parse_qsl(frag, keep_blank_values=False)) if frag else {}
        unknown = set(opts) - {"model", "concurrency", "retries", "timeout", "time_limit", "max_tokens", "backoff"}
        if unknown:
            raise ValueError(f"judge spec {spec!r}: unknown option(s) {sorted(unknown)}")
        model = opts.get("model") or os.environ.get(MODEL_ENV) or None
        conv = {"concurrency": ("concurrency", int), "retries": ("retries", int), "timeout": ("timeout_s", float),
                "time_limit": ("time_limit_s", float), "max_tokens": ("max_tokens", int),
                "backoff": ("backoff_s", float)}
        for k, (name, typ) in conv.items():
            if k in opts:
                kwargs.setdefault(name, typ(opts[k]))
        return cls(url, model, **kwargs)

    @property
    def name(self) -> str:
        """What results record about the judge: endpoint and model (never the key)."""
        u = urllib.parse.urlsplit(self.base_url)
        return f"{u.scheme}://{u.netloc}{u.path}#model={self.model or '?'}"  # no query string: it may hold a token

    # ----- HTTP
    def _post(self, path: str, body: Optional[dict[str, Any]], timeout: float) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = _api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                     method="POST" if body is not None else "GET")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in _RETRYABLE_STATUS:
                raise _Transient(f"HTTP {exc.code}") from None
            if 300 <= exc.code < 400:
                raise JudgeUnavailable(f"judge {self.base_url}{path}: HTTP {exc.code} redirect to "
                                       f"{exc.headers.get('Location')!r} refused (the API key is not sent on); "
                                       "give the final URL") from None
            raise JudgeUnavailable(f"judge {self.base_url}{path}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Transient("reply is not JSON") from None

    def _with_retries(self, what: str, fn) -> Any:
        """``fn(timeout)`` until it answers: ``retries`` more tries after the first, waiting ``backoff * 2**k``
        between them, all within ``time_limit`` seconds; each failure is logged, so a slow scoring step shows
        why it is slow."""
        start = time.monotonic()
        deadline = start + self.time_limit_s
        last, tries, stop = "no attempt", 0, f"{self.retries} retries used"
        for attempt in range(self.retries + 1):
            if self._down:
                raise JudgeUnavailable(self._down)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop = f"time limit {self.time_limit_s:g}s reached"
                break
            tries += 1
            try:
                return fn(min(self.timeout_s, remaining))
            except _Transient as exc:
                last = str(exc)
            sleep = self.backoff_s * (2 ** attempt)
            if attempt == self.retries:
                break
            if time.monotonic() + sleep >= deadline:
                stop = f"time limit {self.time_limit_s:g}s reached"
                break
            log.warning("judge %s: %s failed (%s), try %d of %d; retrying in %.2fs", self.base_url, what, last,
                        tries, self.retries + 1, sleep)
            time.sleep(sleep)
        msg = (f"judge {self.base_url} unavailable for {what}: {last} ({tries} tries in "
               f"{time.monotonic() - start:.1f}s, {stop})")
        with self._lock:
            self._down = msg  # later calls fail fast instead of waiting out the same outage again
        log.error("%s; the samples that need it are left pending judge (a later --resume scores them)", msg)
        raise JudgeUnavailable(msg)

    def _resolve_model(self) -> str:
        if self.model:
            return self.model
        with self._lock:
            if self.model:
                return self.model
        listing = self._with_retries("listing models", lambda t: self._post("/models", None, t))
        try:
            model = str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise JudgeUnavailable(f"judge {self.base_url}/models lists no model; pass #model=NAME "
                                   f"or set {MODEL_ENV}") from None
        with self._lock:
            self.model = model
        return model

    # ----- cache
    def cache_key(self, prompt: str, temperature: float, max_tokens: int) -> str:
        ident = json.dumps([self._resolve_model(), prompt, float(temperature), {"max_tokens": int(max_tokens)}],
                           ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> Optional[str]:
        try:
            obj = json.loads(self._cache_path(key).read_text(encoding="utf-8"))
            return str(obj["response"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _cache_put(self, key: str, response: str) -> None:
        path = self._cache_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"model": self.model, "response": response}, ensure_ascii=False),
                           encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs a repeated call

    # ----- calls
    def complete(self, prompt: str, temperature: float = 0.0, max_tokens: Optional[int] = None) -> str:
        """The judge's reply text for one user prompt (cached)."""
        max_tokens = int(max_tokens or self.max_tokens)
        key = self.cache_key(prompt, temperature, max_tokens)
        hit = self._cache_get(key)
        if hit is not None:
            with self._lock:
                self.cache_hits += 1
            return hit
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": float(temperature), "max_tokens": max_tokens}

        def call(timeout: float) -> str:
            with self._lock:
                self.calls += 1
            reply = self._post("/chat/completions", body, timeout)
            try:
                content = reply["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise _Transient("reply has no choices[0].message.content") from None
            if not isinstance(content, str):
                raise _Transient("reply content is not text")
            return content

        text = self._with_retries("a completion", call)
        self._cache_put(key, text)
        return text

    def complete_many(self, prompts: Sequence[str], temperature: float = 0.0, max_tokens: Optional[int] = None,
                      return_errors: bool = False) -> list[Union[str, JudgeUnavailable]]:
        """Replies in prompt order, at most ``concurrency`` requests in flight.

        With ``return_errors`` a prompt the judge could not answer yields its :class:`JudgeUnavailable`
        in place of the text, so callers can mark just those samples pending.
        """
        def one(p: str) -> Union[str, JudgeUnavailable]:
            try:
                return self.complete(p, temperature=temperature, max_tokens=max_tokens)
            except JudgeUnavailable as exc:
                if return_errors:
                    return exc
                raise

        if not prompts:
            return []
        try:
            self._resolve_model()  # once, before the threads fan out
        except JudgeUnavailable as exc:
            if not return_errors:
                raise
            return [exc for _ in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))
