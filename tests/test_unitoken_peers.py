"""Lumina-mGPT and Chameleon through the UniToken loaders, on tiny checkpoints of their layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.chameleon import ChameleonAdapter, chameleon_pixels  # noqa: E402
from unitoken_eval.model_adapters.lumina_mgpt import LuminaMGPTAdapter  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.decoding import reference_greedy  # noqa: E402
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_chameleon, write_tiny_release  # noqa: E402


def _img(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


@pytest.fixture(scope="module")
def lumina(tmp_path_factory):
    ckpt = write_tiny_release(tmp_path_factory.mktemp("lm") / "Lumina-mGPT-7B-768", seed=3, vision=False)
    return LuminaMGPTAdapter(path=str(ckpt), device="cpu")


@pytest.fixture(scope="module")
def chameleon(tmp_path_factory):
    # VLMEvalKit's prompt format (the default, Meta's, is held against Meta's code in test_chameleon_reference.py)
    return ChameleonAdapter(path=str(write_tiny_chameleon(tmp_path_factory.mktemp("ch") / "chameleon-tiny", seed=4)),
                            device="cpu", prompt_format="vlmevalkit")


def test_lumina_layout_and_understanding(lumina):
    assert lumina.resolution == 768 and lumina.model.vit is None
    img = _img(500, 300)
    reqs = [UnderstandRequest("0", "Describe.", [img], "a", max_new_tokens=4),
            UnderstandRequest("1", "What colour dominates here?", [img], "a", max_new_tokens=4)]
    before, after = lumina.model.tokenizer.question(reqs[0].prompt, 1)
    block = lumina.vq.image_block(img)
    h, w = block[1] - 8804, block[2] - 8804  # size tokens in 32-pixel grids: a 768-budget crop
    assert h * w <= 24 * 24 and len(block) == 3 + 2 * h * (2 * w + 1) + 1
    prefix = lumina.model.image_prefix(before, block, img)
    assert prefix.shape[0] == 1 + len(block)  # discrete only: no SEP, no SigLIP tokens
    got = [x["token_ids"] for x in lumina.understand_with_tokens(reqs)]
    m = lumina.model
    want = [reference_greedy(m.llm, m.lm_head, torch.cat([prefix, m.embed_ids(m.tokenizer.question(r.prompt, 1)[1])]),
                             4, [8710]) for r in reqs]
    assert got == want


@pytest.mark.slow
def test_lumina_generation_at_768(lumina):
    req = GenerateRequest("g", "a red bus", n_images=1, seed=2, options={"image_top_k": 30})
    prompt = lumina.t2i_prompt(req)
    assert prompt[-1] == 8197 and "of 768x768 according" in lumina.model.tokenizer.decode(prompt)
    out = lumina.generate_with_tokens([req])[0]
    toks = out["token_ids"][0]
    assert toks[:3] == [8197, 8828, 8828] and toks[-1] == 8196 and len(toks) == 3 + 48 * 49 + 1
    body = torch.tensor(toks[3:-1]).view(48, 49)
    assert bool((body[:, 48] == 8803).all()) and bool(((body[:, :48] >= 4) & (body[:, :48] <= 8195)).all())
    assert out["images"][0].size == (768, 768)


def _pil_chameleon_processor():
    """The processor chameleon_pixels reproduces: transformers' PIL one, whatever else is installed.
    transformers 5 names it ChameleonImageProcessorPil (ChameleonImageProcessor is then the torchvision one, or
    falls back to the PIL one without torchvision); before 5 the PIL one was ChameleonImageProcessor itself."""
    import transformers

    cls = getattr(transformers, "ChameleonImageProcessorPil", None)
    if cls is None:
        cls = transformers.ChameleonImageProcessor
    proc = cls()
    assert "torchvision" not in type(proc).__mro__[1].__name__.lower(), type(proc).__mro__
    return proc


def test_chameleon_pixels_match_transformers_processor():
    proc = _pil_chameleon_processor()
    for size in ((500, 300), (300, 700)):
        img = _img(*size, seed=5)
        want = proc(images=[img], return_tensors="pt").pixel_values[0]
        torch.testing.assert_close(chameleon_pixels(img), want, rtol=0, atol=1e-6)


def test_chameleon_pixels_against_the_torchvision_processor():
    """Where torchvision is installed, transformers' default Chameleon processor is the torchvision one: it is
    not the one we match, and differs from it by the resize only (a bounded gap, not a layout change)."""
    pytest.importorskip("torchvision", reason="torchvision not installed: transformers' default Chameleon "
                                               "processor is then the PIL one, checked above")
    import torchvision
    from packaging.version import Version

    if Version(torchvision.__version__.split("+")[0]) < Version("0.27"):
        pytest.skip(f"torchvision {torchvision.__version__} < 0.27: transformers' torchvision processor then replaces "
                    "the LANCZOS resize by BICUBIC, so it is not the same resize at all")
    from transformers import ChameleonImageProcessor

    proc = ChameleonImageProcessor()
    for size in ((500, 300), (300, 700)):
        img = _img(*size, seed=5)
        want = proc(images=[img], return_tensors="pt").pixel_values[0]
        torch.testing.assert_close(chameleon_pixels(img), want, rtol=0, atol=0.02)


def test_chameleon_understanding(chameleon):
    img = _img(400, 300, 6)
    reqs = [UnderstandRequest("0", "What is it?", [img], "a", max_new_tokens=5),
            UnderstandRequest("1", "Count the things in view.", [img], "a", max_new_tokens=3),
            UnderstandRequest("2", "No picture here.", [], None, max_new_tokens=4)]
    prefixes, group, suffixes = chameleon.build_prefixes(reqs)
    assert group == [0, 0, 1] and prefixes[0].shape[0] == 1 + 1 + 1024 + 1
    before, after = chameleon.prompt_parts(reqs[0])
    assert before == [0] and chameleon.model.tokenizer.decode(after) == "\nWhat is it?<reserved08706>"
    # image ids = transformers' own get_image_tokens on the processor's pixels
    ids = chameleon.image_ids([img])[0]
    px = chameleon_pixels(img)[None].to(chameleon.device, chameleon.dtype)  # the adapter casts likewise
    assert ids == chameleon.model.llm.get_image_tokens(px).view(-1).tolist()
    got = [x["token_ids"] for x in chameleon.understand_with_tokens(reqs)]
    m = chameleon.model
    want = [reference_greedy(m.llm, m.lm_head, torch.cat([prefixes[g], m.embed_ids(s)]), r.max_new_tokens,
                             [2, 8710]) for r, g, s in zip(reqs, group, suffixes)]
    assert got == want
    with pytest.raises(Exception, match="cannot generate"):
        chameleon.generate([GenerateRequest("g", "x")])
