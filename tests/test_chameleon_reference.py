"""Our ``chameleon`` adapter against Meta's own Chameleon inference code, on a tiny random checkpoint in Meta's
release layout converted to transformers' layout (as users load facebook/chameleon-7b).

tests/data/chameleon_reference.json holds what Meta's code produced and what transformers' official conversion
script wrote (tests/parity/chameleon_reference.py made it; docs/peer-references.md lists the patches).  Here
the Meta checkpoint is rewritten from the same seed (its tensors must hash as recorded), converted by
tests/unitoken_eval_testkit/chameleon_meta.py, whose output must hash tensor by tensor as the official
script's did, and the adapter runs on that: understanding greedy ids, and (with vqgan=, opt-in) image tokens
under CFG with argmax; Meta's decoded pixels through the engine's VQ-GAN decoder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from unitoken_eval.harness.plugin import AdapterError  # noqa: E402
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.chameleon import ChameleonAdapter  # noqa: E402
from unitoken_eval_testkit.chameleon_meta import (  # noqa: E402
    convert, converted_state, meta_state, tensor_hashes, write_meta_checkpoint)
from unitoken_eval_testkit.pixel_reference import assert_pixels_match  # noqa: E402

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "data" / "chameleon_reference.json").read_text())
_spec = importlib.util.spec_from_file_location("chameleon_reference", HERE / "parity" / "chameleon_reference.py")
GEN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GEN)


@pytest.fixture(scope="module")
def meta_root(tmp_path_factory):
    assert tensor_hashes(meta_state(REF["seed"])) == REF["meta_checkpoint_tensors_sha256"], \
        "the Meta-layout writer changed: regenerate the reference (tests/parity/chameleon_reference.py)"
    return write_meta_checkpoint(tmp_path_factory.mktemp("meta") / "data", seed=REF["seed"])


@pytest.fixture(scope="module")
def converted(meta_root, tmp_path_factory):
    return convert(meta_root, tmp_path_factory.mktemp("hf") / "chameleon-tiny", REF["converted"]["config"])


@pytest.fixture(scope="module")
def adapter(converted):
    a = ChameleonAdapter(path=str(converted), device="cpu", dtype="float32")
    yield a
    a.close()


def test_reference_was_made_by_the_listed_patches_only():
    assert REF["upstream"] == "github.com/facebookresearch/chameleon" and len(REF["commit"]) == 40
    assert [(p["file"], p["old"], p["new"], p["count"]) for p in REF["patches"]] == [tuple(p) for p in GEN.PATCHES]


def test_conversion_gives_the_official_scripts_tensors(meta_root, converted):
    from safetensors.torch import load_file

    ours = tensor_hashes(load_file(str(converted / "model.safetensors")))
    assert ours == REF["converted"]["tensors_sha256"]
    vocab = json.loads((converted / "config.json").read_text())["vocabulary_map"]
    assert hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest() == \
        REF["converted"]["vocabulary_map_sha256"]
    assert vocab["<image>"] == REF["converted"]["image_token_id"]
    assert set(tensor_hashes(converted_state(meta_root))) >= set(ours)


def test_tokenizer_encodes_as_the_official_conversion(adapter):
    for text, ids in REF["converted"]["encodings"].items():
        assert adapter.model.tokenizer.encode(text) == ids, text


def _prompt(case: dict) -> str:
    return "".join("<image>" if p == "IMG" else p for p in case["pattern"] if p != "<END-OF-TURN>")


def _request(i: int, case: dict) -> UnderstandRequest:
    images = [GEN.sample_image(*case["image_size"], seed=i)] if case["image_size"] else []
    return UnderstandRequest(case["name"], _prompt(case), images, max_new_tokens=case["max_new_tokens"])


@pytest.mark.parametrize("i", range(len(REF["understand"])), ids=[c["name"] for c in REF["understand"]])
def test_prompt_ids_equal_metas_token_manager(adapter, i):
    case = REF["understand"][i]
    req = _request(i, case)
    before, after = adapter.prompt_parts(req)
    block = [adapter.boi] + adapter.image_ids(req.images)[0] + [adapter.eoi] if req.images else []
    assert before + block + after == case["prompt_ids"]


@pytest.mark.parametrize("i", range(len(REF["understand"])), ids=[c["name"] for c in REF["understand"]])
def test_greedy_answer_ids_equal_metas(adapter, i):
    case = REF["understand"][i]
    out = adapter.understand_with_tokens([_request(i, case)])[0]
    assert out["token_ids"] == case["token_ids"]


def test_batched_answers_equal_metas_too(adapter):
    reqs = [_request(i, c) for i, c in enumerate(REF["understand"])]
    assert [o["token_ids"] for o in adapter.understand_with_tokens(reqs)] == [c["token_ids"] for c in REF["understand"]]


def test_vlmevalkit_format_is_a_named_option(converted):
    a = ChameleonAdapter(path=str(converted), device="cpu", dtype="float32", prompt_format="vlmevalkit")
    try:
        before, after = a.prompt_parts(UnderstandRequest("v", "What?", [GEN.sample_image(64, 64, 0)]))
        assert after[-1] == 8710 and a.answer_rules() is None and a.fingerprint()["prompt_format"] == "vlmevalkit"
        assert a.model.tokenizer.decode(after).startswith("\n")  # "<image>\n" + question
    finally:
        a.close()
    with pytest.raises(AdapterError, match="prompt_format"):
        ChameleonAdapter(path=str(converted), device="cpu", prompt_format="llava")


def test_the_engines_vq_decoder_gives_metas_pixels_for_metas_image_tokens(meta_root):
    """Meta's code can draw images (Meta's public release disabled it in the weights); its decoded pixels for the
    reference's argmax tokens are reproduced by the VQ-GAN decoder our Chameleon-family engine uses.

    Meta's ``VocabTranslation.convert_bpe2img`` pairs the image ids and the codes each sorted on their own (the
    k-th smallest image id is code k), while its encoder side (``convert_img2bp2``) and ours map by the
    ``IMGIMG`` names.  The two agree only if ids ascend with codes; the tiny vocabulary assigns ids in the
    names' lexicographic order, so here the decode side's codes are the ranks, as Meta's code computes them."""
    from unitoken_eval.model_adapters.chameleon_family.vq import VQImageTokenizer
    from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import vocabulary

    vocab = vocabulary()
    vq = VQImageTokenizer.from_files(meta_root / "tokenizer", vocab, device=torch.device("cpu"),
                                     dtype=torch.float32)
    image_ids = torch.tensor(sorted(v for k, v in vocab.items() if k.startswith("IMGIMG")))
    s = REF["pixel_stride"]
    for case in REF["generate"]:
        ids = torch.tensor(case["token_ids"])
        assert bool(torch.isin(ids, image_ids).all()) and len(ids) == 1024
        codes = torch.searchsorted(image_ids, ids).view(1, 32, 32)  # rank among image ids, as Meta decodes
        assert_pixels_match(np.asarray(vq.decode(codes)[0].convert("RGB")), case, s)


@pytest.fixture(scope="module")
def drawing(converted, meta_root):
    """The adapter with Meta's VQ-GAN (vqgan=): image generation is opt-in for Chameleon."""
    a = ChameleonAdapter(path=str(converted), device="cpu", dtype="float32", vqgan=str(meta_root / "tokenizer"))
    yield a
    a.close()


def test_t2i_prompt_ids_equal_metas(drawing):
    for case in REF["generate"]:
        # Meta's ImageDecoder appends <racm3:break> to the prompt it is given
        assert drawing.t2i_prompt(GenerateRequest(case["name"], case["prompt"])) == case["prompt_ids"] + [8197]


@pytest.mark.slow
def test_cfg_argmax_image_tokens_equal_metas(drawing):
    """Meta's ImageDecoder with greedy=True (argmax; instruct-CFG text 3.0, image 1.2: for a text prompt its
    image-conditioned row is the unconditional one) against ours with cfg 3.0 and image_top_k=1."""
    for case in REF["generate"]:
        req = GenerateRequest(case["name"], case["prompt"], options={"cfg": case["cfg_text"], "image_top_k": 1})
        out = drawing.generate_with_tokens([req])[0]
        assert out["token_ids"][0] == [8197] + case["token_ids"] + [8196]  # BOI, 1024 codes, EOI
        assert out["images"][0].size == tuple(case["image_size"])


def test_drawing_needs_metas_vqgan(adapter):
    with pytest.raises(AdapterError, match="vqgan="):
        adapter.generate_with_tokens([GenerateRequest("g", "a cat")])
    assert "generate" not in adapter.capabilities  # never scheduled for text-to-image by a suite
