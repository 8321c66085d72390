"""Security rules a future change must not undo quietly: nothing loads by executing code, nothing is fetched
or executed from a configured location without saying so, and credentials never reach disk or logs."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unitoken_eval.harness import remote

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "tasks", "model_adapters")

# Calls that run code from data: unpickling, marshal, eval/exec, unsafe YAML, shells.
_FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("marshal", "load"), ("marshal", "loads"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("joblib", "load"),
    ("shelve", "open"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("yaml", "unsafe_load"),
    ("yaml", "full_load"), ("os", "system"), ("os", "popen"), ("jit", "load"),
}
_FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
_ALLOWED_IMPORT = {  # (file, builtin): why it is safe
    ("tasks/common/detection/checkpoint.py", "__import__"): "imports numpy's own module by a fixed name to allowlist it",
}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def violations(source: str, filename: str) -> list[str]:
    """Unsafe loading/execution in one file's code (string literals, e.g. a hint to the user, do not count)."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        if name[-2:] == ("torch", "load"):
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                out.append(f"{where}: torch.load without weights_only=True")
        if len(name) >= 2 and name[-2:] in _FORBIDDEN_CALLS:
            out.append(f"{where}: {'.'.join(name)}")
        if isinstance(node.func, ast.Name) and name[0] in _FORBIDDEN_BUILTINS \
                and (filename, name[0]) not in _ALLOWED_IMPORT:
            out.append(f"{where}: builtin {name[0]}()")
        if name[-2:] == ("yaml", "load"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or "Safe" not in ".".join(_dotted(loader)):
                out.append(f"{where}: yaml.load without a SafeLoader")
        if name[-1:] == ("load",) and name[-2:-1] in (("np",), ("numpy",)):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                out.append(f"{where}: numpy.load with allow_pickle")
        trc = _kw(node, "trust_remote_code")
        if isinstance(trc, ast.Constant) and trc.value is True:
            out.append(f"{where}: trust_remote_code=True (must come from an explicit user opt-in, not a constant)")
        shell = _kw(node, "shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            out.append(f"{where}: subprocess with shell=True")
    return out


def test_the_checker_catches_each_pattern():
    bad = '''
import torch, pickle, yaml, numpy as np, subprocess
torch.load(p)
torch.load(p, weights_only=False)
pickle.loads(b)
yaml.load(s)
yaml.load(s, Loader=yaml.FullLoader)
np.load(f, allow_pickle=True)
eval("1")
AutoModel.from_pretrained(x, trust_remote_code=True)
subprocess.run(c, shell=True)
torch.jit.load(p)
'''
    found = violations(bad, "x.py")
    assert [f.split(": ", 1)[0] for f in found] == [f"x.py:{n}" for n in range(3, 13)], found
    ok = '''
import torch, yaml
torch.load(p, map_location="cpu", weights_only=True)
yaml.load(s, Loader=yaml.SafeLoader)
yaml.safe_load(s)
model.eval()
model.to(d).eval()
AutoModel.from_pretrained(x, trust_remote_code=args.trust_remote_code)
hint = "torch.load(p, weights_only=False)"
'''
    assert violations(ok, "y.py") == []


def test_the_package_loads_nothing_by_executing_code():
    found = []
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 50
    for path in files:
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []


# ----- remote sources are announced before they are fetched, and recorded
@pytest.fixture
def fresh_remote(monkeypatch):
    monkeypatch.setattr(remote, "_seen", {})


def test_hub_dataset_is_announced_before_the_download(fresh_remote, monkeypatch, caplog):
    import datasets

    from unitoken_eval.tasks.common.hf_data import open_dataset

    def fake_load(source, config=None, split=None):
        # by the time the download starts, the user has been told and the manifest list holds it
        assert [r.getMessage() for r in caplog.records if "fetching" in r.getMessage()]
        assert remote.sources()[0]["source"] == "https://huggingface.co/datasets/someone/bench"
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with caplog.at_level(logging.WARNING, logger="unitoken_eval"):
        with pytest.raises(Exception, match="someone/bench"):
            open_dataset("someone/bench", "test")
    assert "fetching Hugging Face dataset someone/bench (split test) from https://huggingface.co/datasets/someone/bench" \
        in caplog.text


def test_official_file_downloads_are_announced(fresh_remote, monkeypatch, tmp_path, caplog):
    import urllib.request

    from unitoken_eval.harness.plugin import TaskError
    from unitoken_eval.tasks.common.vk_catalog import fetch_tsv
    from unitoken_eval.tasks.geneval import prompts

    def offline(url, *a, **k):
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with caplog.at_level(logging.WARNING, logger="unitoken_eval"):
        with pytest.raises(TaskError):
            prompts.fetch_metadata(dest=tmp_path / "meta.jsonl")
        with pytest.raises(TaskError):
            fetch_tsv("MMStar", tmp_path)
    urls = [s["source"] for s in remote.sources()]
    assert urls == [prompts.METADATA_URL, next(iter(u for u in urls if u.endswith("MMStar.tsv")))]
    assert f"from {prompts.METADATA_URL}" in caplog.text


def _subprocess_env(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def test_model_args_naming_a_hub_repo_are_announced_and_recorded_and_secrets_never_written(plugins, tmp_path):
    """One real command line: a hub id in the model args is logged before the adapter is built and lands in
    the manifest; an API key in the environment and a token in the model args appear in no file and no log."""
    out = tmp_path / "run"
    env = _subprocess_env(plugins, UNITOKEN_JUDGE_API_KEY="sk-env-SECRET-1", UNITOKEN_EVAL_CACHE=str(tmp_path / "c"))
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--model", "fake_echo_model", "--model-args",
           "path=someone/model,hf_token=hf-arg-SECRET-2", "--tasks", "fake_echo", "--out", str(out), "--no-progress",
           "--judge", "http://127.0.0.1:9/v1?api_key=url-SECRET-3#model=m&retries=0"]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fetching model fake_echo_model argument path= (a Hugging Face hub id, unless already cached) from " \
           "https://huggingface.co/someone/model" in res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["source"] for s in manifest["remote_sources"]] == ["https://huggingface.co/someone/model"]
    everything = res.stdout + res.stderr + "".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    for secret in ("SECRET-1", "SECRET-2", "SECRET-3"):
        assert secret not in everything, secret
    assert "hf_token=***" in json.dumps(manifest["argv"])


def test_user_named_detector_config_is_announced_as_code(fresh_remote, tmp_path, caplog):
    """mmengine executes a .py config: naming one in a run config must say so (before mmdet is even needed)."""
    pytest.importorskip("mmdet")
    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    cfg = tmp_path / "my_config.py"
    cfg.write_text("raise SystemExit('executed')\n")
    with caplog.at_level(logging.WARNING, logger="unitoken_eval"):
        with pytest.raises(BaseException):
            MMDetMask2Former(config=str(cfg), random_weights=True, device="cpu")
    assert f"from {cfg.resolve()}" in caplog.text and remote.sources()[0]["executes"] == "yes"
