"""The suite does not depend on import names another installed package can take (``tests``, ``fake_plugins``)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GENERIC = ("tests", "fake_plugins", "fake_judge", "run_builder", "understanding_helpers", "helpers", "conftest")


def test_no_test_imports_a_generic_top_level_name():
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(GENERIC)})(\.|\s|$)", re.M)
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in sorted(TESTS.rglob("*.py"))
                 for m in pattern.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_no_test_fixture_ships_in_a_plugin_package():
    shipped = [p for d in ("harness", "tasks", "model_adapters", "results", "integrations")
               for p in (ROOT / d).rglob("*.py") if re.search(r"(^|_)(tiny_)?(fake|janus_tiny)", p.stem)]
    assert not shipped, shipped


@pytest.mark.slow
def test_collection_survives_a_site_packages_tests_package(tmp_path):
    """What lmms-eval's dependencies do: a top-level ``tests`` package (and generic modules) in site-packages."""
    site = tmp_path / "site"
    for name in ("tests", "fake_plugins", "run_builder"):
        pkg = site / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('the wrong package')\n" if name != "tests" else "")
    # keep what the environment already puts on the path (an offline GPU box's extra site folder)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    files = ["tests/test_tasks_mmstar.py", "tests/test_runner.py", "tests/test_report.py", "tests/test_judge.py"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and "error" not in proc.stdout.strip().splitlines()[-1], proc.stdout[-3000:]


def test_tests_that_read_shared_data_carry_the_marker():
    """Data outside the repository (../shared/data) is announced by the shared_data marker, never a bare skip."""
    reads = [p for p in sorted(TESTS.glob("test_*.py")) if p.name != Path(__file__).name
             and re.search(r'"shared"|shared_data\(|SHARED\b', p.read_text(encoding="utf-8"))]
    assert reads
    unmarked = [p.name for p in reads if "mark.shared_data" not in p.read_text(encoding="utf-8")]
    assert not unmarked, unmarked
