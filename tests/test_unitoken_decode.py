"""UniToken decoding on the tiny release-layout checkpoint: batched/prefix-shared answers equal the plain
transformers loop one prompt at a time; generated streams obey the structure; CFG + top-k by hand; seeds."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.weights import fp8_unsupported  # noqa: E402
from unitoken_eval.model_adapters.unitoken import UniTokenAdapter  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.decoding import reference_greedy  # noqa: E402
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_release  # noqa: E402


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    ckpt = write_tiny_release(tmp_path_factory.mktemp("ut") / "UniToken-AnyRes-tiny", seed=1)
    return UniTokenAdapter(path=str(ckpt), device="cpu", gen_batch_size="4")


def _img(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def _reference(adapter, req):
    m = adapter.model
    before, after = m.tokenizer.question(req.prompt, len(req.images))
    if req.images:
        prefix = m.image_prefix(before, adapter.vq.image_block(req.images[0]), req.images[0])
    else:
        prefix = m.embed_ids(before)
    emb = torch.cat([prefix, m.embed_ids(after)])
    return reference_greedy(m.llm, m.lm_head, emb, req.max_new_tokens, [8710])


def test_batched_shared_prefix_answers_equal_one_by_one(adapter):
    a, b = _img(500, 300, 1), _img(200, 260, 2)
    reqs = [
        UnderstandRequest("0", "What is in the picture? Answer briefly.", [a], "A", max_new_tokens=6),
        UnderstandRequest("1", "Color?", [a], "A", max_new_tokens=4),
        UnderstandRequest("2", "How many objects are there in this image?", [b], "B", max_new_tokens=6),
        UnderstandRequest("3", "Plain text question without an image.", [], None, max_new_tokens=5),
        UnderstandRequest("4", "Color?", [b], "B", max_new_tokens=6),
    ]
    batched = adapter.understand_with_tokens(reqs)
    alone = [_reference(adapter, r) for r in reqs]
    assert [x["token_ids"] for x in batched] == alone
    assert [len(x["token_ids"]) for x in batched] == [6, 4, 6, 5, 6]
    assert len({tuple(x) for x in alone}) >= 4  # answers depend on the prompt, so the check can fail
    # no sharing (every prompt its own image key) gives the same answers
    unshared = [UnderstandRequest(r.sample_id, r.prompt, r.images, f"u{i}", r.max_new_tokens)
                for i, r in enumerate(reqs)]
    assert [x["token_ids"] for x in adapter.understand_with_tokens(unshared)] == alone
    assert adapter.understand(reqs[:1])[0] == adapter.model.tokenizer.decode(alone[0])


def test_generated_stream_obeys_structure(adapter):
    out = adapter.generate_with_tokens([GenerateRequest("g", "a red cube", n_images=2, seed=5,
                                                        options={"cfg": 3.0, "image_top_k": 50})])[0]
    assert len(out["images"]) == 2 and all(im.size == (512, 512) for im in out["images"])
    for toks in out["token_ids"]:
        assert len(toks) == 1 + 2 + 32 * 33 + 1
        assert toks[:3] == [8197, 8820, 8820] and toks[-1] == 8196
        body = torch.tensor(toks[3:-1]).view(32, 33)
        assert bool((body[:, 32] == 8803).all())
        assert bool(((body[:, :32] >= 4) & (body[:, :32] <= 8195)).all())
    assert out["token_ids"][0] != out["token_ids"][1]  # seeds 5 and 6


def _png(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_same_seed_same_image_on_rerun(adapter):
    req = GenerateRequest("x", "a dog", n_images=1, seed=11, options={"cfg": 2.0, "image_top_k": 100})
    a, b = adapter.generate_with_tokens([req])[0], adapter.generate_with_tokens([req])[0]
    assert a["token_ids"] == b["token_ids"] and _png(a["images"][0]) == _png(b["images"][0])


@pytest.mark.slow
def test_same_seed_same_image_whatever_the_batch(adapter):
    """Per-row noise makes an image depend on its seed only.  In float32 a different batch shape changes
    reduction order and can flip a near-tie hundreds of steps in, so this runs the model in float64."""
    adapter = UniTokenAdapter(path=str(adapter.ckpt), device="cpu", dtype="float64", gen_batch_size="4")
    opts = {"cfg": 2.0, "image_top_k": 100}
    alone = adapter.generate_with_tokens([GenerateRequest("x", "a dog", n_images=1, seed=11, options=opts)])[0]
    mixed = adapter.generate_with_tokens([
        GenerateRequest("y", "something else entirely", n_images=1, seed=3, options=opts),
        GenerateRequest("x", "a dog", n_images=1, seed=11, options=opts),
    ])[1]
    assert alone["token_ids"] == mixed["token_ids"]
    assert _png(alone["images"][0]) == _png(mixed["images"][0])


def test_cfg_mix_and_top_k_by_hand(adapter):
    """With image_top_k=1 the first sampled image token is the argmax over image ids of
    cfg * (cond - uncond) + uncond, cond = prompt + [8820, 8820], uncond = [8197, 8820, 8820]."""
    m = adapter.model
    req = GenerateRequest("h", "a blue sphere", n_images=1, seed=0, options={"cfg": 4.0, "image_top_k": 1})
    prompt = adapter.t2i_prompt(req)
    assert prompt[-2:] == [16853, 8197] and prompt[0] == 0 and 8710 in prompt

    def last_logits(ids):
        with torch.no_grad():
            h = m.llm(input_ids=torch.tensor([ids])).last_hidden_state
        return m.lm_head(h[:, -1]).float()[0]

    cond = last_logits(prompt + [8820, 8820])
    uncond = last_logits([8197, 8820, 8820])
    mix = 4.0 * (cond - uncond) + uncond
    want = 4 + int(mix[4:8196].argmax())
    got = adapter.generate_with_tokens([req])[0]["token_ids"][0][3]
    assert got == want
    assert want != 4 + int(cond[4:8196].argmax()) or want != 4 + int(uncond[4:8196].argmax())
    # top-k: every sampled code of a k=5 image is among the 5 best of its step's guided logits (first step)
    req5 = GenerateRequest("h", "a blue sphere", n_images=1, seed=1, options={"cfg": 4.0, "image_top_k": 5})
    first = adapter.generate_with_tokens([req5])[0]["token_ids"][0][3]
    top5 = set((4 + torch.topk(mix[4:8196], 5).indices).tolist())
    assert first in top5


def test_kv_cache_int8_is_a_named_generation_option_with_its_own_fingerprint(adapter):
    from unitoken_eval.harness.plugin import AdapterError

    fast = UniTokenAdapter(path=str(adapter.ckpt), device="cpu", gen_batch_size="4", kv_cache="int8")
    assert fast.fingerprint()["kv_cache"] == "int8" and "kv_cache" not in adapter.fingerprint()
    req = GenerateRequest("g", "a red cube", n_images=2, seed=5, options={"cfg": 3.0, "image_top_k": 50})
    exact, approx = adapter.generate_with_tokens([req])[0], fast.generate_with_tokens([req])[0]
    dec = fast.decoders.image_decoder
    assert dec.kv_cache == "int8" and dec._session.lean.kv.quantized
    for toks in approx["token_ids"]:
        body = torch.tensor(toks[3:-1]).view(32, 33)
        assert toks[:3] == [8197, 8820, 8820] and toks[-1] == 8196 and bool((body[:, 32] == 8803).all())
    # Not the same images: once one sampled token differs, every later context differs (tests/test_kv_cache.py
    # bounds the logit error instead).  Each is still a function of its seed.
    assert fast.generate_with_tokens([req])[0]["token_ids"] == approx["token_ids"]
    assert len(exact["token_ids"]) == 2
    # understanding is untouched by the option: the exact cache, the same answers
    q = [UnderstandRequest("0", "Color?", [_img(64, 64, 3)], "A", max_new_tokens=4)]
    assert fast.understand_with_tokens(q)[0]["token_ids"] == adapter.understand_with_tokens(q)[0]["token_ids"]
    with pytest.raises(AdapterError, match="kv_cache"):
        UniTokenAdapter(path=str(adapter.ckpt), device="cpu", kv_cache="fp8")


def test_background_vq_decode_returns_each_chunks_images_in_request_order(adapter):
    """Images are decoded in a worker thread while the next chunk samples: 2 requests x 3 images in chunks
    of 4 must still pair every image with its own token stream."""
    reqs = [GenerateRequest("a", "a red cube", n_images=3, seed=20, options={"cfg": 3.0, "image_top_k": 50}),
            GenerateRequest("b", "two cats", n_images=3, seed=40, options={"cfg": 3.0, "image_top_k": 50})]
    out = adapter.generate_with_tokens(reqs)
    grid = adapter.image_grid()
    seen = set()
    for res in out:
        assert len(res["images"]) == len(res["token_ids"]) == 3
        for toks, img in zip(res["token_ids"], res["images"]):
            codes = adapter.vq.bpe_to_codes(grid.codes(torch.tensor([toks[1:]])))
            assert _png(adapter.vq.decode(codes)[0]) == _png(img)
            seen.add(tuple(toks))
    assert len(seen) == 6  # six distinct seeds, six distinct streams


def test_prepare_ahead_gives_the_same_prefixes_with_no_pixel_work_left_in_line(adapter, monkeypatch):
    a, b = _img(500, 300, 1), _img(200, 260, 2)

    def requests():
        return [UnderstandRequest("0", "Color?", [a], "A", max_new_tokens=4),
                UnderstandRequest("1", "Shape?", [a.copy()], "A", max_new_tokens=4),  # same key, own object
                UnderstandRequest("2", "Color?", [b], "B", max_new_tokens=4),
                UnderstandRequest("3", "Text only.", [], None, max_new_tokens=4)]

    plain = adapter.build_prefixes(requests())
    ahead = requests()
    adapter.preprocess(ahead)
    assert ahead[0].prepared is ahead[1].prepared and not ahead[3].prepared
    assert set(ahead[2].prepared) == {"vq_pixels", "siglip_views"}

    def in_line(*_):
        raise AssertionError("pixel work done in line although prepared")

    monkeypatch.setattr(adapter.vq, "preprocess", in_line)
    monkeypatch.setattr(adapter.model, "siglip_views", in_line)
    got = adapter.build_prefixes(ahead)
    assert got[1:] == plain[1:] and all(torch.equal(x, y) for x, y in zip(got[0], plain[0]))


@pytest.mark.skipif(fp8_unsupported("cpu") is not None, reason=str(fp8_unsupported("cpu")))
def test_prefill_fp8_is_a_named_understanding_option_with_its_own_fingerprint(adapter, monkeypatch):
    from unitoken_eval.harness.plugin import AdapterError
    from unitoken_eval.model_adapters.chameleon_family import decoding

    fast = UniTokenAdapter(path=str(adapter.ckpt), device="cpu", prefill="fp8")
    assert fast.fingerprint()["prefill"] == "fp8" and "prefill" not in adapter.fingerprint()
    seen = []
    real = decoding.PrefixSharingGreedyDecoder

    def spy(*a, **kw):
        seen.append(kw.get("prefill"))
        return real(*a, **kw)

    monkeypatch.setattr(decoding, "PrefixSharingGreedyDecoder", spy)
    q = [UnderstandRequest("0", "Color?", [_img(64, 64, 3)], "A", max_new_tokens=4)]
    # this prompt is narrow (< SEPARATE_PROJECTIONS_FROM tokens), so float8 GEMMs do not engage: same answer
    assert fast.understand_with_tokens(q)[0]["token_ids"] == adapter.understand_with_tokens(q)[0]["token_ids"]
    assert seen == ["fp8", "bf16"]
    with pytest.raises(AdapterError, match="prefill"):
        UniTokenAdapter(path=str(adapter.ckpt), device="cpu", prefill="int8")


@pytest.mark.skipif(fp8_unsupported("cpu") is not None, reason=str(fp8_unsupported("cpu")))
def test_prefill_fp8_engages_on_wide_prompt_batches_through_the_adapter(adapter, monkeypatch):
    """Four distinct images (~1.1k-token prefixes each) make a prefill of >= 4096 tokens: the float8 GEMMs run,
    answers keep their shape, and the next image batch frees the float8 weights again."""
    fast = UniTokenAdapter(path=str(adapter.ckpt), device="cpu", prefill="fp8")
    reqs = [UnderstandRequest(str(i), "What is this?", [_img(96 + 8 * i, 64, seed=i)], f"i{i}", max_new_tokens=3)
            for i in range(4)]
    prefixes, _, _ = fast.build_prefixes(reqs)
    assert sum(p.shape[0] for p in prefixes) >= 4096
    from unitoken_eval.model_adapters.chameleon_family import forward as cf

    calls, real = [], cf.fp8_linear
    monkeypatch.setattr(cf, "fp8_linear", lambda x, lin, w, q: calls.append(x.shape) or real(x, lin, w, q))
    out = fast.understand_with_tokens(reqs)
    assert [len(o["token_ids"]) <= 3 for o in out] == [True] * 4
    llm = fast.model.llm
    # 7 GEMMs per layer in the one wide forward (the prefixes); the text suffixes and answer steps are narrow
    assert len(calls) == 7 * len(llm.layers) and all(c[0] * c[1] >= 4096 for c in calls)
    assert llm.layers[0].mlp.up_proj in fast.decoders.weights.fp8
    fast.generate_with_tokens([GenerateRequest("g", "a cube", n_images=1, seed=1, options={"image_top_k": 5})])
    assert fast.decoders.weights.fp8 is None


def test_answer_session_serves_the_next_batch_and_image_generation_frees_it(adapter):
    llm = adapter.model.llm
    reqs = [UnderstandRequest(str(i), q, [_img(120, 90, seed=i)], f"s{i}", max_new_tokens=4)
            for i, q in enumerate(["Color?", "What is this?", "How many?"])]
    first = [x["token_ids"] for x in adapter.understand_with_tokens(reqs)]
    dec = adapter.decoders.answer_decoder
    opened = dec.stats["sessions"]
    assert dec._session is not None and dec._session.rows >= 3
    # a smaller batch afterwards runs in the same session (no new cache, graphs kept), with the same answers
    assert [x["token_ids"] for x in adapter.understand_with_tokens(reqs[1:])] == first[1:]
    assert adapter.decoders.answer_decoder is dec and dec.stats["sessions"] == opened
    adapter.generate_with_tokens([GenerateRequest("g", "a cube", n_images=1, seed=1, options={"image_top_k": 5})])
    assert adapter.decoders.answer_decoder is None and dec._session is None  # its cache made room for the images
    assert not any(k.startswith("_lean") for m in llm.modules() for k in vars(m))  # nothing parked on the model
    assert [x["token_ids"] for x in adapter.understand_with_tokens(reqs)] == first


def test_an_understanding_batch_frees_the_image_session_before_its_encoders_run(adapter, monkeypatch):
    # The VQ-GAN and SigLIP encoders of an understanding batch run before its answers; on a GPU a kept image
    # batch's KV cache (~120 GB at 100 images) leaves them no memory, which is how a real run died.
    adapter.generate_with_tokens([GenerateRequest("g", "a cube", n_images=1, seed=1, options={"image_top_k": 5})])
    kept = adapter.decoders.image_decoder
    assert kept is not None and kept._session is not None
    seen = []
    real = adapter.build_prefixes

    def spy(requests):
        seen.append((adapter.decoders.image_decoder, kept._session))
        return real(requests)

    monkeypatch.setattr(adapter, "build_prefixes", spy)
    adapter.understand_with_tokens([UnderstandRequest("0", "Color?", [_img(120, 90, seed=3)], "k", max_new_tokens=2)])
    assert seen == [(None, None)]
