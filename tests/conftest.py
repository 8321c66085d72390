from __future__ import annotations

from pathlib import Path

import pytest

from unitoken_eval.harness import registry

from unitoken_eval_testkit.paths import SHARED_DATA

_SHARED_REASON = (f"needs the upstream data copies in {SHARED_DATA}, outside the repository "
                  "(tests marked shared_data; deselect them with -m 'not shared_data')")


def pytest_runtest_setup(item):
    if item.get_closest_marker("shared_data") and not SHARED_DATA.exists():
        pytest.skip(_SHARED_REASON)


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _SHARED_REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} tests skipped: they {_SHARED_REASON}", yellow=True)


def pytest_collection_modifyitems(config, items):
    """gpu-marked tests run where CUDA is; elsewhere they are deselected (not skipped one by one)."""
    import torch

    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Install tests/unitoken_eval_testkit/fake_plugins.py as a third-party distribution would: a dist-info with entry points."""
    site = tmp_path / "site"
    info = site / "fake_unitoken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-unitoken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[unitoken_eval.tasks]\n"
        "fake_echo = unitoken_eval_testkit.fake_plugins:EchoQA\n"
        "fake_draw = unitoken_eval_testkit.fake_plugins:TwoPictures\n"
        "fake_broken = fake_plugins_missing:Nothing\n"
        "[unitoken_eval.model_adapters]\n"
        "fake_echo_model = unitoken_eval_testkit.fake_plugins:EchoModel\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    from unitoken_eval_testkit import fake_plugins

    fake_plugins.EchoModel.calls = 0
    fake_plugins.EchoModel.fail_after = None
    fake_plugins.EchoModel.instances = 0
    yield site
    registry.clear_cache()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data; a test using it must also carry the shared_data marker (checked by test_test_layout)."""
    if not SHARED_DATA.exists():
        pytest.skip(_SHARED_REASON)
    return SHARED_DATA


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """A fresh UNITOKEN_EVAL_CACHE shared by one test module (the tiny checkpoint is written once per module)."""
    root = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("UNITOKEN_EVAL_CACHE", str(root))
    yield root
    mp.undo()
