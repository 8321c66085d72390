"""The Janus-Pro adapter reproduces DeepSeek's own inference code on a tiny random checkpoint.

The reference (``tests/data/janus_pro_deepseek_reference.json``) was made by ``tests/parity/janus_reference.py``:
DeepSeek's README Janus-Pro understanding and text-to-image code, run on the checkpoint in DeepSeek's layout
with the patches the fixture lists (CPU, float32, argmax instead of multinomial, one image per prompt); the
checkpoint then converted with transformers' ``convert_janus_weights_to_hf.py``.  Here the converted checkpoint
is rebuilt (same seed, checked against the conversion's digest) and run through ``unitoken-eval predict --model
janus`` as a user runs it: understanding greedy ids, image codes under CFG 5 with top-k 1 (argmax), and the
decoded pixels.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from unitoken_eval_testkit import janus_deepseek_tiny as tiny

pytestmark = pytest.mark.slow

REF = json.loads(tiny.REFERENCE_FILE.read_text())
UNDERSTANDING = REF["understanding"]
GENERATION = REF["generation"]


def _until_eos(ids, eos=tiny.SPECIAL.index(tiny.EOS) + 256):
    return ids[: ids.index(eos)] if eos in ids else ids


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The conversion with DeepSeek's lm_head kept (``tie_word_embeddings=False``): the checkpoint to compare."""
    return tiny.write_converted(tmp_path_factory.mktemp("janus_pro_converted"), seed=tiny.SEED, keep_lm_head=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("janus_pro_images")
    paths = []
    for i, case in enumerate(UNDERSTANDING):
        img = tiny.case_image(case["image"])
        assert hashlib.sha256(np.asarray(img).tobytes()).hexdigest() == case["image_sha256"]
        paths.append(root / f"case{i}.png")
        img.save(paths[-1])
    return paths


def _predict(capsys, *argv):
    from unitoken_eval.harness.cli import main

    capsys.readouterr()
    assert main(["predict", "--model", "janus", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_rebuilt_checkpoint_is_what_the_conversion_wrote(converted):
    assert tiny.state_dict_digest(tiny.original_state_dict(tiny.SEED)) == REF["original_state_dict_sha256"]
    assert tiny.converted_fingerprint(converted) == REF["converted"]["keep_lm_head"]


def test_prompt_and_input_ids_equal_deepseeks(converted, images):
    from unitoken_eval.harness.types import UnderstandRequest
    from unitoken_eval.model_adapters.janus import JanusAdapter

    adapter = JanusAdapter(path=str(converted), device="cpu", dtype="float32")
    for case, path in zip(UNDERSTANDING, images):
        req = UnderstandRequest("r", case["question"], [Image.open(path)])
        assert adapter.understanding_prompt(req) == case["sft_format"]
        assert adapter.understanding_inputs([req])["input_ids"][0].tolist() == case["input_ids"]


@pytest.mark.parametrize("i", range(len(UNDERSTANDING)))
def test_understanding_greedy_ids_equal_deepseeks(converted, images, capsys, i):
    case = UNDERSTANDING[i]
    out = _predict(capsys, "--model-args", f"path={converted},device=cpu,dtype=float32", "--image", str(images[i]),
                   "--prompt", case["question"], "--max-new-tokens", str(len(case["output_ids"])))
    assert out["generated_token_ids"] == _until_eos(case["output_ids"])


@pytest.mark.parametrize("i", range(len(GENERATION)))
def test_image_tokens_and_pixels_equal_deepseeks_under_cfg_with_argmax(converted, capsys, tmp_path, i):
    case = GENERATION[i]
    png = tmp_path / "g.png"
    out = _predict(capsys, "--model-args", f"path={converted},device=cpu,dtype=float32", "--generate",
                   "--prompt", case["prompt"], "--cfg", "5", "--image-top-k", "1", "--out", str(png))
    assert out["image_token_ids"] == case["image_tokens"]
    ours = np.asarray(Image.open(png).convert("RGB"), dtype=np.uint8)
    ref = case["pixels"]
    assert list(ours.shape) == ref["shape"]
    # within rounding: every 8th pixel at most 1 apart, channel sums at most 1 per pixel apart
    diff = np.abs(ours[::8, ::8].astype(int) - tiny.stride8(ref).astype(int))
    assert diff.max() <= 1, f"stride-8 pixels differ by up to {diff.max()}"
    sums = ours.reshape(-1, 3).sum(0).astype(int)
    assert np.all(np.abs(sums - np.array(ref["channel_sums"])) <= ours.shape[0] * ours.shape[1])


def test_official_conversion_drops_deepseeks_lm_head_and_the_adapter_says_so(tmp_path):
    """transformers' conversion script, unpatched, saves a tied model: DeepSeek's separate output layer is lost,
    so understanding cannot match DeepSeek's.  The adapter loads it with a warning naming the cause."""
    from unitoken_eval.harness.types import UnderstandRequest
    from unitoken_eval.model_adapters.janus import JanusAdapter

    ckpt = tiny.write_converted(tmp_path / "official", seed=tiny.SEED, keep_lm_head=False)
    assert tiny.converted_fingerprint(ckpt) == REF["converted"]["official"]
    assert REF["converted"]["official"]["files"]["config.json"]["tie_word_embeddings"] is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapter = JanusAdapter(path=str(ckpt), device="cpu", dtype="float32")
    assert any("ties the output layer" in str(w.message) for w in caught)
    assert adapter.fingerprint()["output_layer"] == "tied"
    case = UNDERSTANDING[0]
    req = UnderstandRequest("r", case["question"], [tiny.case_image(case["image"])], max_new_tokens=16)
    assert adapter.understand_with_tokens([req])[0]["token_ids"] != _until_eos(case["output_ids"])[:16]
