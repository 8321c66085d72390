"""What `pip install` sees: the wheel's contents and warnings."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_the_published_rows_without_a_packaging_warning(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "tests", "bench", "results/runs",
                                                            "build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), "-v"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "would be ignored" not in log and "absent from the `packages` configuration" not in log
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    published = {p.name for p in (ROOT / "results" / "published").iterdir()}
    assert {f"unitoken_eval/results/published/{n}" for n in published} <= set(names)
    # installed names live under one namespace: nothing generic such as `tasks` lands in site-packages
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"unitoken_eval"}
    assert "unitoken_eval/tasks/mmmu.py" in names and "unitoken_eval/harness/plugin.py" in names


def _pins(lines):
    import re

    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*((?:==|<|<=|>=|~=)\s*[^;\s]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2).replace(" ", "")
    return out


def test_the_lmms_eval_constraints_pin_what_the_extra_and_the_docs_say():
    import tomllib

    constraints = _pins((ROOT / "docs" / "constraints" / "lmms-eval.txt").read_text().splitlines())
    extra = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
                  ["lmms-eval"])
    assert extra and all(constraints.get(name) == pin for name, pin in extra.items()), (extra, constraints)
    docs = (ROOT / "docs" / "interop.md").read_text()
    assert "pip install -c docs/constraints/lmms-eval.txt -e '.[lmms-eval]'" in docs
    for name in ("torch", "torchvision"):
        assert f"`{name}{constraints[name]}`" in docs, name


def test_the_installed_lmms_eval_is_the_pinned_one_and_its_cli_imports():
    """Run in the lmms-eval environment the docs describe; elsewhere there is nothing to check."""
    from importlib import metadata

    try:
        version = metadata.version("lmms-eval")
    except metadata.PackageNotFoundError:
        pytest.skip("lmms-eval is not installed (pip install -c docs/constraints/lmms-eval.txt -e '.[lmms-eval]')")
    constraints = _pins((ROOT / "docs" / "constraints" / "lmms-eval.txt").read_text().splitlines())
    assert f"=={version}" == constraints["lmms-eval"]
    assert int(metadata.version("filelock").split(".")[0]) < 4
    import importlib

    # The `lmms-eval` command, and the evaluator behind it (where filelock 4 breaks the import).
    (script,) = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "lmms-eval"]
    assert callable(script.load())
    importlib.import_module("lmms_eval.__main__")
    importlib.import_module("lmms_eval.evaluator")
