"""Our ``lumina_mgpt`` adapter against Lumina-mGPT's own inference code (FlexARInferenceSolver), on a tiny random
checkpoint in the release layout.

tests/data/lumina_mgpt_reference.json holds what the authors' code produced (tests/parity/lumina_mgpt_reference.py
made it; docs/peer-references.md lists the patches): greedy answer ids for understanding prompts (image first,
image after the text, a non-square image, text only), and for text-to-image under CFG with argmax sampling the
image token stream and the decoded pixels.  The checkpoint is rewritten here from the same seed; its file
hashes must be the recorded ones.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.lumina_mgpt import LuminaMGPTAdapter  # noqa: E402
from unitoken_eval_testkit.pixel_reference import assert_pixels_match  # noqa: E402

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "data" / "lumina_mgpt_reference.json").read_text())
_spec = importlib.util.spec_from_file_location("lumina_mgpt_reference", HERE / "parity" / "lumina_mgpt_reference.py")
GEN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GEN)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = GEN.write_checkpoint(tmp_path_factory.mktemp("lumina-ref"))
    assert path.name == REF["checkpoint_name"]
    assert GEN.checkpoint_hashes(path) == REF["checkpoint_sha256"], \
        "the tiny checkpoint writer changed: regenerate the reference (tests/parity/lumina_mgpt_reference.py)"
    return path


@pytest.fixture(scope="module")
def adapter(ckpt):
    a = LuminaMGPTAdapter(path=str(ckpt), device="cpu", dtype="float32")
    yield a
    a.close()


def _request(i: int, case: dict) -> UnderstandRequest:
    images = [GEN.sample_image(*case["image_size"], seed=i)] if case["image_size"] else []
    return UnderstandRequest(case["name"], case["question"], images, max_new_tokens=case["max_new_tokens"])


def test_reference_was_made_by_the_listed_patches_only():
    assert REF["upstream"] == "github.com/Alpha-VLLM/Lumina-mGPT" and len(REF["commit"]) == 40
    assert [(p["file"], p["old"], p["new"], p["count"]) for p in REF["patches"]] == [tuple(p) for p in GEN.PATCHES]


@pytest.mark.parametrize("i", range(len(REF["understand"])), ids=[c["name"] for c in REF["understand"]])
def test_prompt_ids_equal_the_authors_item_processor(adapter, i):
    case = REF["understand"][i]
    req = _request(i, case)
    before, after = adapter.prompt_parts(req)
    block = adapter.vq.image_block(req.images[0]) if req.images else []
    assert before + block + after == case["prompt_ids"]


@pytest.mark.parametrize("i", range(len(REF["understand"])), ids=[c["name"] for c in REF["understand"]])
def test_greedy_answer_ids_equal_the_authors(adapter, i):
    case = REF["understand"][i]
    out = adapter.understand_with_tokens([_request(i, case)])[0]
    assert out["token_ids"] == case["token_ids"]


def test_batched_answers_equal_the_authors_too(adapter):
    reqs = [_request(i, c) for i, c in enumerate(REF["understand"])]
    got = [o["token_ids"] for o in adapter.understand_with_tokens(reqs)]
    assert got == [c["token_ids"] for c in REF["understand"]]


@pytest.fixture(scope="module")
def generated(adapter):
    reqs = [GenerateRequest(c["name"], c["prompt"], n_images=1, seed=0, options={"cfg": c["cfg"], "image_top_k": 1})
            for c in REF["generate"]]
    return reqs, adapter.generate_with_tokens(reqs)


def test_t2i_prompt_ids_equal_the_authors(adapter, generated):
    reqs, _ = generated
    for req, case in zip(reqs, REF["generate"]):
        # the authors' prompt ends with the end of turn; the model then emits BOI (ours appends it)
        assert adapter.t2i_prompt(req) == case["prompt_ids"] + [REF["boi"]]


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(REF["generate"])), ids=[c["name"] for c in REF["generate"]])
def test_cfg_argmax_image_tokens_equal_the_authors(generated, i):
    _, outs = generated
    assert outs[i]["token_ids"][0] == REF["generate"][i]["token_ids"]


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(REF["generate"])), ids=[c["name"] for c in REF["generate"]])
def test_decoded_pixels_equal_the_authors_within_rounding(generated, i):
    _, outs = generated
    case = REF["generate"][i]
    img = outs[i]["images"][0]
    assert list(img.size) == case["image_size"]
    assert_pixels_match(np.asarray(img.convert("RGB")), case, REF["pixel_stride"])


# ------------------------------------------- BOI and size tokens: forced by us, emitted by the model in the release
@pytest.fixture(scope="module")
def free_run(ckpt, tmp_path_factory):
    """The checkpoint that emits BOI and the 512x512 size tokens by itself after its prompt (as a trained model
    does), and our adapter's image for that prompt (the adapter forces those three tokens).  The VQ-GAN is the
    first checkpoint's: the authors' item processor reads Meta's one VQ-GAN from ./ckpts/chameleon/tokenizer
    whatever the model, and the reference run put the first checkpoint's there."""
    path = GEN.write_emitting_checkpoint(tmp_path_factory.mktemp("lumina-free"))
    assert GEN.checkpoint_hashes(path) == REF["free_checkpoint_sha256"]
    a = LuminaMGPTAdapter(path=str(path), device="cpu", dtype="float32", vqgan=str(ckpt / "vqgan"))
    try:
        case = REF["generate_free"][0]
        req = GenerateRequest(case["name"], case["prompt"], seed=0, options={"cfg": case["cfg"], "image_top_k": 1})
        return a.t2i_prompt(req), a.generate_with_tokens([req])[0]
    finally:
        a.close()


@pytest.mark.slow
def test_forced_start_equals_the_authors_unforced_run_on_a_model_that_emits_it(free_run):
    """The authors' code, nothing forced, on a model that emits BOI, <reserved08816>, <reserved08816> itself: it
    draws the same stream and pixels as our adapter, which forces those tokens (so forcing changes nothing for
    a model that emits them, as a trained one does after the release's prompt)."""
    prompt, out = free_run
    case = REF["generate_free"][0]
    assert case["token_ids"][:3] == [REF["boi"], REF["size_token"], REF["size_token"]] and case["n_images"] == 1
    assert prompt == case["prompt_ids"] + [REF["boi"]]
    assert out["token_ids"][0] == case["token_ids"]
    assert_pixels_match(np.asarray(out["images"][0].convert("RGB")), case, REF["pixel_stride"])
