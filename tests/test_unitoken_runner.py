"""The registered ``tiny`` adapter (cached release-layout checkpoint, real loader) through the runner on the
fake plugin tasks; request grouping by image key; tiny checkpoint writer entry points and cache layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")
from unitoken_eval.harness import registry  # noqa: E402
from unitoken_eval.harness.config import load_config  # noqa: E402
from unitoken_eval.harness.manifest import start_run  # noqa: E402
from unitoken_eval.harness.runner import Runner  # noqa: E402
from unitoken_eval.harness.types import UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.unitoken import configuration as C  # noqa: E402


@pytest.fixture(scope="module")
def tiny(module_cache):
    return registry.adapter_class("tiny")(max_new_tokens="3")


def _img(seed, w=96, h=64):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def test_tiny_cache_layout_and_fingerprint(module_cache, tiny):
    dirs = list((module_cache / "tiny").iterdir())
    assert len(dirs) == 1 and not any(p.name.startswith(".tiny-") for p in (module_cache / "tiny").iterdir())
    idx = json.loads((dirs[0] / "model.safetensors.index.json").read_text())
    assert sorted(set(idx["weight_map"].values())) == ["model-00001-of-00002.safetensors",
                                                       "model-00002-of-00002.safetensors"]
    assert not any(k.startswith("model.vqmodel.") for k in idx["weight_map"])
    # every id a random model can emit decodes to text (the tokenizer spans the 65536-id vocabulary)
    tok = tiny.model.tokenizer
    assert tok.tok.get_vocab_size() > 65000 and tok.decode([60000]) and tok.decode([8710]) == "<reserved08706>"
    assert tok.encode("ab") == [tok.tok.token_to_id("a"), tok.tok.token_to_id("b")]  # fill tokens never encoded
    fp = tiny.fingerprint()
    assert fp["adapter"] == "tiny" and len(fp["config_sha256"]) == 16 and "hub_revision" not in fp
    # a second instance finds the cached checkpoint (same directory, same weights fingerprint)
    again = registry.adapter_class("tiny")(max_new_tokens="3")
    assert again.fingerprint() == fp and list((module_cache / "tiny").iterdir()) == dirs


def test_hub_revision_read_from_snapshot_path(tmp_path):
    snap = tmp_path / "hub" / "models--OceanJay--UniToken-AnyRes-StageII" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    assert C.hub_revision(snap) == "abc123" and C.hub_revision(tmp_path) is None


def test_answers_capped_stripped_and_grouped_by_image_key(tiny):
    a, b = _img(1), _img(2, 64, 96)
    reqs = [UnderstandRequest(sample_id="1", prompt="What is it?", images=[a], image_key="A", max_new_tokens=10),
            UnderstandRequest(sample_id="2", prompt="Color?", images=[b], image_key="B", max_new_tokens=10),
            UnderstandRequest(sample_id="3", prompt="Color?", images=[a], image_key="A", max_new_tokens=10)]
    prefixes, group, _ = tiny.build_prefixes(reqs)
    assert len(prefixes) == 2 and group == [0, 1, 0]
    out = tiny.understand_with_tokens(reqs)
    assert all(0 < len(o["token_ids"]) <= 3 for o in out)  # tiny caps max_new_tokens at its model arg
    texts = tiny.understand(reqs)
    assert texts == [o["text"] for o in out] and all(t == t.strip() for t in texts)
    # the shared prefix gives the same answers as asking each question alone
    assert [tiny.understand([r])[0] for r in reqs] == texts


def test_tiny_through_runner_on_plugin_tasks(plugins, module_cache, tmp_path):
    cfg = load_config({"model": "tiny", "model_args": "max_new_tokens=2,gen_batch_size=6",
                       "tasks": ["fake_echo", "fake_draw"], "options": {"fake_echo": {"n": 4}},
                       "limit": 2})
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert not outcome.failed and outcome.inferred == 4
    preds = store.read_predictions("fake_echo")
    assert set(preds) == {"q0", "q1"} and all(isinstance(p.text, str) for p in preds.values())
    draws = store.read_predictions("fake_draw")
    assert set(draws) == {"0", "1"}
    task_dir = store.images_dir("fake_draw").parent
    for p in draws.values():
        imgs = [Image.open(task_dir / q) for q in p.images]
        assert len(imgs) == 2 and all(im.size == (512, 512) for im in imgs)
        # image k of a sample is drawn with seed + k: the two differ
        assert not np.array_equal(np.asarray(imgs[0]), np.asarray(imgs[1]))
    assert outcome.results["fake_draw"].n == 2
    assert store.read_manifest()["model_fingerprint"]["adapter"] == "tiny"


def test_hub_id_goes_through_snapshot_download(tmp_path, monkeypatch):
    """A hub id is resolved by huggingface_hub.snapshot_download (offline here, from a hub-layout cache); the
    snapshot commit enters the fingerprint and ``anyres=auto`` reads the variant from the repo name."""
    from huggingface_hub import constants

    from unitoken_eval.model_adapters.unitoken import UniTokenAdapter
    from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_unitoken

    rev = {"AnyRes": "a" * 40, "base": "b" * 40}
    snaps = {}
    for variant, commit in rev.items():
        repo = tmp_path / f"models--OceanJay--UniToken-{variant}-StageII"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        snaps[variant] = repo / "snapshots" / commit
    write_tiny_unitoken(snaps["AnyRes"], seed=3)
    snaps["base"].mkdir(parents=True)
    for f in snaps["AnyRes"].iterdir():  # the hub cache links snapshot files to blobs
        (snaps["base"] / f.name).symlink_to(f)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    vq = str(snaps["AnyRes"] / "vqgan")
    for variant, anyres in (("AnyRes", True), ("base", False)):
        ad = UniTokenAdapter(path=f"OceanJay/UniToken-{variant}-StageII", vqgan=vq, device="cpu")
        fp = ad.fingerprint()
        assert ad.anyres is anyres and fp["hub_revision"] == rev[variant]
        n = ad.model.layout.n_tokens((500, 300))
        assert (n > 729) if anyres else (n == 729)


def test_runner_records_one_prefill_per_distinct_image_of_real_tasks(module_cache, tmp_path):
    """MMBench's circular copies and MME's question pairs, as the real tasks load them, cost one image prefill
    each in a real run: the adapter's counter, recorded per task by the runner, equals the distinct images."""
    cfg = load_config({"model": "tiny", "model_args": "max_new_tokens=1,batch_size=4",
                       "tasks": ["mmbench_dev_en", "mme"], "smoke": True})
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    runner = Runner(cfg, store, progress=False)
    outcome = runner.run()
    assert not outcome.failed
    stats = {r["task"]: r for r in store.read_inference_stats()}
    for tid in ("mmbench_dev_en", "mme"):
        samples = runner.samples[tid]
        images = {s.image_key for s in samples}
        assert len(images) < len(samples)
        assert stats[tid]["samples"] == stats[tid]["adapter"]["prompts"] == len(samples)
        assert stats[tid]["adapter"]["prefills"] == len(images), (tid, stats[tid])
        # each prefill runs an image block of hundreds of tokens; the prompts' own text is counted too
        assert stats[tid]["adapter"]["prefill_tokens"] > 100 * len(images)
        assert stats[tid]["seconds"] > 0 and stats[tid]["finished"] >= stats[tid]["started"]
