"""The CUDA path of every adapter family on tiny models, each held against the same model on CPU in float32.

Marked ``gpu``: deselected where CUDA is not available; ``make test-gpu`` runs them alone, and
bench/gpu_tests.sh runs the whole suite on a GPU machine and writes its record (bench/records/gpu-tests-*).

Tolerances.  float32 on CUDA (TF32 off) differs from CPU float32 only in summation order (~1e-6 relative), so
greedy tokens must be identical, VQ codes may flip only at near-ties (>= 99% identical), activations stay
within 1e-4 of their spread (max |diff| / std), and sampled image streams agree for at least their first 64
tokens (same per-row noise; a near-tie later changes every later context).  bfloat16 paths: activations within
mean |diff| / std < 3e-2, next-token logits within twice what bfloat16 costs the same model on CPU.  The
approximate options on top of bf16: int8 KV cache logits mean |diff| / std < 1e-1 with the argmax kept at
>= 75% of steps (85% was measured on random 7B weights); float8 prefill < 0.35 (this random model: ~0.22 on
CPU, README: 0.4 on random 7B weights) and more than bf16 alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.decoders import CFGImageDecoder, PrefixSharingGreedyDecoder  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.decoding import ChameleonDecoders, reference_greedy  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.forward import SEPARATE_PROJECTIONS_FROM, LeanChameleon  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.grid import ImageGrid  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.kv_cache import MMA_DEPTH  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family.weights import fp8_unsupported  # noqa: E402
from unitoken_eval.model_adapters.unitoken import UniTokenAdapter  # noqa: E402
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_chameleon, write_tiny_release  # noqa: E402

pytestmark = pytest.mark.gpu
EOT = 8710


@pytest.fixture(autouse=True)
def no_tf32():
    """float32 comparisons need true float32 products (cuDNN convolutions default to TF32)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _img(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def max_rel(a, b) -> float:
    """max |a - b| / std(b), on CPU float32."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.std())


def mean_rel(a, b) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().mean() / b.std())


def _questions():
    a, b = _img(500, 300, 1), _img(200, 260, 2)
    return [UnderstandRequest("0", "What is in the picture? Answer briefly.", [a], "A", max_new_tokens=6),
            UnderstandRequest("1", "Color?", [a], "A", max_new_tokens=4),
            UnderstandRequest("2", "How many objects are there in this image?", [b], "B", max_new_tokens=6),
            UnderstandRequest("3", "Plain text question without an image.", [], None, max_new_tokens=5)]


def _image_structure_ok(toks: list[int], side: int, size_token: int) -> bool:
    body = torch.tensor(toks[3:-1]).view(side, side + 1)
    return (toks[:3] == [8197, size_token, size_token] and toks[-1] == 8196 and bool((body[:, side] == 8803).all())
            and bool(((body[:, :side] >= 4) & (body[:, :side] <= 8195)).all()))


# ---------------------------------------------------------------------------------------------- UniToken
@pytest.fixture(scope="module")
def ut_ckpt(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("ut") / "UniToken-AnyRes-tiny", seed=1)


@pytest.fixture(scope="module")
def ut_cpu(ut_ckpt):
    return UniTokenAdapter(path=str(ut_ckpt), device="cpu", dtype="float32", gen_batch_size="2")


@pytest.fixture(scope="module")
def ut_cuda32(ut_ckpt):
    """float32 on CUDA with everything compile=true turns on: CUDA-graph decoding and the compiled SigLIP."""
    return UniTokenAdapter(path=str(ut_ckpt), device="cuda", dtype="float32", compile="true", gen_batch_size="2")


@pytest.fixture(scope="module")
def ut_cuda(ut_ckpt):
    """What a user gets on a GPU by default: bfloat16, compile=auto (graphs + compiled SigLIP)."""
    ad = UniTokenAdapter(path=str(ut_ckpt), gen_batch_size="2")
    assert ad.device.type == "cuda" and ad.dtype == torch.bfloat16 and ad.use_graphs
    return ad


def test_unitoken_cuda_float32_answers_equal_cpu(ut_cpu, ut_cuda32):
    reqs = _questions()
    cpu_prefixes, group, suffixes = ut_cpu.build_prefixes(reqs)
    gpu_prefixes, group2, suffixes2 = ut_cuda32.build_prefixes(reqs)
    assert group == group2 and suffixes == suffixes2
    assert [p.shape for p in gpu_prefixes] == [p.shape for p in cpu_prefixes]
    assert all(p.device.type == "cuda" for p in gpu_prefixes)
    # the discrete block (VQ-GAN codes, float32 on both) and the continuous SigLIP tokens, image by image
    for img in (reqs[0].images[0], reqs[2].images[0]):
        a, b = ut_cuda32.vq.image_block(img), ut_cpu.vq.image_block(img)
        assert len(a) == len(b) and np.mean(np.array(a) == np.array(b)) >= 0.99
        assert max_rel(ut_cuda32.model.continuous_tokens(img), ut_cpu.model.continuous_tokens(img)) < 1e-4
    # the CUDA-graph decoder on the CPU's own prefixes gives the CPU's tokens, which equal transformers' loop
    limits = [r.max_new_tokens for r in reqs]
    on_gpu = ChameleonDecoders(ut_cuda32.model.llm, ut_cuda32.model.lm_head, use_graphs=True).greedy_answers(
        [p.cuda() for p in cpu_prefixes], suffixes, group, limits, [EOT])
    on_cpu = ChameleonDecoders(ut_cpu.model.llm, ut_cpu.model.lm_head).greedy_answers(
        cpu_prefixes, suffixes, group, limits, [EOT])
    assert on_gpu == on_cpu
    m = ut_cpu.model
    assert on_cpu[3] == reference_greedy(m.llm, m.lm_head, torch.cat([cpu_prefixes[group[3]], m.embed_ids(suffixes[3])]),
                                         limits[3], [EOT])
    # and end to end, from pixels
    assert [x["token_ids"] for x in ut_cuda32.understand_with_tokens(reqs)] == on_cpu


def test_unitoken_default_cuda_path_answers_within_bf16_of_cpu(ut_cpu, ut_cuda):
    reqs = _questions()
    cpu_prefixes, group, suffixes = ut_cpu.build_prefixes(reqs)
    gpu_prefixes, _, _ = ut_cuda.build_prefixes(reqs)
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cuda" for p in gpu_prefixes)
    for a, b in zip(gpu_prefixes, cpu_prefixes):
        assert mean_rel(a, b) < 3e-2
    # next-token logits of each whole prompt (up to ~3k tokens), bf16 CUDA against float32 CPU: within twice
    # what bfloat16 itself costs on CPU (0.02-0.07 of the logits' spread on this model)
    cpu16 = UniTokenAdapter(path=str(ut_cpu.ckpt), device="cpu", dtype="bfloat16")
    cpu16_prefixes, _, _ = cpu16.build_prefixes(reqs)

    def last_logits(ad, prefixes, g, s):
        emb = torch.cat([prefixes[g], ad.model.embed_ids(s)])
        with torch.no_grad():
            return ad.model.lm_head(ad.model.llm(inputs_embeds=emb[None]).last_hidden_state[:, -1])

    for g, s in zip(group, suffixes):
        lc = last_logits(ut_cpu, cpu_prefixes, g, s)
        bf16_cost = mean_rel(last_logits(cpu16, cpu16_prefixes, g, s), lc)
        assert mean_rel(last_logits(ut_cuda, gpu_prefixes, g, s), lc) < 2 * bf16_cost + 1e-2
    got = [x["token_ids"] for x in ut_cuda.understand_with_tokens(reqs)]
    assert [len(t) <= r.max_new_tokens for t, r in zip(got, reqs)] == [True] * 4
    dec = ut_cuda.decoders.answer_decoder
    assert dec.use_graphs and dec._session.runner.graphs  # decode steps replayed as CUDA graphs
    # graphs replay what eager bf16 computes on the same prefixes
    eager = ChameleonDecoders(ut_cuda.model.llm, ut_cuda.model.lm_head, use_graphs=False).greedy_answers(
        gpu_prefixes, suffixes, group, [r.max_new_tokens for r in reqs], [EOT])
    assert got == eager


def test_unitoken_cuda_images_follow_the_cpu_stream(ut_cpu, ut_cuda32):
    req = GenerateRequest("g", "a red cube", n_images=2, seed=5, options={"cfg": 3.0, "image_top_k": 50})
    cpu = ut_cpu.generate_with_tokens([req])[0]
    gpu = ut_cuda32.generate_with_tokens([req])[0]
    for a, b in zip(gpu["token_ids"], cpu["token_ids"]):
        assert _image_structure_ok(a, 32, 8820)
        assert a[:64] == b[:64]
    assert ut_cuda32.decoders.image_decoder._session.runner.graphs
    # the VQ-GAN decoder on CUDA draws the CPU's pixels from the same codes
    codes = ut_cpu.vq.bpe_to_codes(ut_cpu.image_grid().codes(torch.tensor([cpu["token_ids"][0][1:]])))
    px_gpu = np.asarray(ut_cuda32.vq.decode(codes)[0], dtype=np.int16)
    px_cpu = np.asarray(ut_cpu.vq.decode(codes)[0], dtype=np.int16)
    assert np.abs(px_gpu - px_cpu).max() <= 1


@pytest.mark.parametrize("kv_cache", ["bf16", "int8"])
def test_unitoken_default_cuda_images_exact_and_int8_kv(ut_ckpt, kv_cache):
    ad = UniTokenAdapter(path=str(ut_ckpt), gen_batch_size="2", kv_cache=kv_cache)
    req = GenerateRequest("g", "a red cube", n_images=2, seed=5, options={"cfg": 3.0, "image_top_k": 50})
    out = ad.generate_with_tokens([req])[0]
    assert [im.size for im in out["images"]] == [(512, 512)] * 2
    assert all(_image_structure_ok(t, 32, 8820) for t in out["token_ids"])
    assert out["token_ids"][0] != out["token_ids"][1]
    assert ad.generate_with_tokens([req])[0]["token_ids"] == out["token_ids"]  # a function of its seed
    lean = ad.decoders.image_decoder._session.lean
    assert lean.kv.quantized is (kv_cache == "int8")
    if kv_cache == "int8":
        # the tiny model's 16-wide heads are below the int8 MMA's depth: its decode steps take the dequantizing
        # path; the kernel itself is checked at 32- and 128-wide heads below
        assert lean.kv.kernel is (lean.kv.k[0].shape[-1] % MMA_DEPTH == 0)


def test_int8_kv_logits_on_cuda_are_near_the_cpu_float32_exact_cache(ut_cpu, ut_cuda):
    """Teacher-forced: a prompt, then 64 image tokens one decode step at a time (the Triton kernel on CUDA)."""
    steps = 64
    g = torch.Generator().manual_seed(5)
    prompt = torch.randint(10, 8000, (2, 64), generator=g)
    image = torch.randint(4, 8196, (2, steps), generator=g)

    def run(ad, kind):
        dev = ad.device
        lean = LeanChameleon(ad.model.llm, ad.model.lm_head, 2, 64 + steps, kv_cache=kind)
        lean.valid[:] = True
        pos = torch.arange(64 + steps, device=dev)[None].expand(2, -1)
        rows = [lean.forward(pos[:, :64], 0, 64, ids=prompt.to(dev), vocab=(4, 8196))]
        for s in range(steps - 1):
            rows.append(lean.forward(pos[:, 64 + s: 65 + s], torch.tensor([64 + s], device=dev), 65 + s,
                                     ids=image[:, s: s + 1].to(dev), vocab=(4, 8196)))
        return torch.stack(rows, 1).float().cpu(), lean

    exact, _ = run(ut_cpu, "bf16")
    approx, lean = run(ut_cuda, "int8")
    assert lean.kv.kernel is (lean.kv.k[0].shape[-1] % MMA_DEPTH == 0)
    assert mean_rel(approx, exact) < 1e-1
    assert float((approx.argmax(-1) == exact.argmax(-1)).float().mean()) >= 0.75


def test_int8_decode_kernel_compiled_matches_dequantized_sdpa():
    from unitoken_eval.model_adapters.chameleon_family.kv_cache import decode_attention_int8, dequantize_int8, make_kv, quantize_int8

    assert make_kv("int8", 1, 1, 1, 8, 32, "cuda", torch.bfloat16).kernel
    g = torch.Generator().manual_seed(2)
    with pytest.raises(ValueError, match="multiple of 32, not 16"):  # the tiny models' heads: refused, said why
        decode_attention_int8(*(torch.zeros(s, device="cuda", dtype=dt) for s, dt in (
            ((1, 1, 1, 16), torch.float32), ((1, 1, 8, 16), torch.int8), ((1, 1, 8), torch.float32),
            ((1, 1, 8, 16), torch.int8), ((1, 1, 8), torch.float32), ((1, 8), torch.bool))), 8, 0.25)
    for D in (32, 128):  # 7B heads are 128 wide
        R, H, L = 3, 2, 150  # three 64-column blocks, the last one partial
        k, v = torch.randn(R, H, L + 6, D, generator=g), torch.randn(R, H, L + 6, D, generator=g)
        (kc, ks), (vc, vs) = quantize_int8(k), quantize_int8(v)
        q = torch.randn(R, H, 1, D, generator=g)
        mask = torch.rand(R, L, generator=g) > 0.3
        mask[1, :100] = False  # a row whose first block is wholly masked
        ref = torch.nn.functional.scaled_dot_product_attention(
            q, dequantize_int8(kc[:, :, :L], ks[:, :, :L], torch.float32),
            dequantize_int8(vc[:, :, :L], vs[:, :, :L], torch.float32), attn_mask=mask[:, None, None, :], scale=0.17)
        got = decode_attention_int8(*(t.cuda() for t in (q, kc, ks, vc, vs, mask)), L, 0.17)
        assert got.is_cuda and bool(torch.isfinite(got).all())
        assert float((got.float().cpu() - ref).abs().max()) < 1e-3, D


@pytest.mark.skipif(not torch.cuda.is_available() or fp8_unsupported("cuda") is not None,
                    reason="prefill=fp8 needs float8 tensor cores (sm_89+)")
def test_fp8_prefill_on_cuda_is_near_cpu_float32_and_runs_through_the_adapter(ut_ckpt, ut_cpu, monkeypatch):
    from unitoken_eval.model_adapters.chameleon_family import forward as cf

    fast = UniTokenAdapter(path=str(ut_ckpt), prefill="fp8")
    R, T = 2, SEPARATE_PROJECTIONS_FROM // 2  # a wide (prefill) forward
    ids = torch.randint(4, 8000, (R, T), generator=torch.Generator().manual_seed(1))

    def logits(ad, prefill):
        lean = LeanChameleon(ad.model.llm, ad.model.lm_head, R, T, fused=False, prefill=prefill)
        lean.valid[:] = True
        pos = torch.arange(T, device=ad.device)[None].expand(R, T)
        return lean.forward(pos, 0, T, ids=ids.to(ad.device), dense_causal=True).float().cpu()

    exact = logits(ut_cpu, "bf16")
    approx = logits(fast, "fp8")
    bf16_only = logits(UniTokenAdapter(path=str(ut_ckpt)), "bf16")
    # float8 GEMMs cost this random model ~0.22 of the logits' spread on CPU too (float32 model, torch 2.13);
    # visibly more than bfloat16 alone, which shows the float8 path ran
    assert mean_rel(bf16_only, exact) < mean_rel(approx, exact) < 0.35
    calls, real = [], cf.fp8_linear
    monkeypatch.setattr(cf, "fp8_linear", lambda x, lin, w, q: calls.append(x.shape) or real(x, lin, w, q))
    reqs = [UnderstandRequest(str(i), "What is this?", [_img(96 + 8 * i, 64, seed=i)], f"i{i}", max_new_tokens=3)
            for i in range(4)]
    out = fast.understand_with_tokens(reqs)
    assert [len(o["token_ids"]) <= 3 for o in out] == [True] * 4
    assert len(calls) == 7 * len(fast.model.llm.layers)  # the wide prefill's GEMMs ran in float8


def test_cuda_graph_decoders_equal_eager_in_float32(ut_cuda32):
    m, h = ut_cuda32.model.llm, ut_cuda32.model.lm_head
    prompts = [[0, 5, 6, 7, 8710, 16853, 8197], [0, 9, 8710, 16853, 8197]]
    grid = ImageGrid(rows=4, cols=4)
    graphed = CFGImageDecoder(m, h, grid=grid, use_graphs=True)
    a = graphed.generate(prompts, [3, 4], cfg=5.0, image_top_k=100)
    b = CFGImageDecoder(m, h, grid=grid, use_graphs=False).generate(prompts, [3, 4], cfg=5.0, image_top_k=100)
    assert graphed._session.runner.graphs and torch.equal(a, b)
    g = torch.Generator().manual_seed(1)
    pre = [torch.randn(50, 64, generator=g).cuda() for _ in range(2)]
    suffixes, group = [[5, 8710], [6, 7, 8710], [9, 8710]], [0, 0, 1]
    x = PrefixSharingGreedyDecoder(m, h, use_graphs=True).answer(pre, suffixes, group, 40, [8710])
    y = PrefixSharingGreedyDecoder(m, h, use_graphs=False).answer(pre, suffixes, group, 40, [8710])
    assert x == y and len(x) == 3
    # the compiled prefill pieces against eager ones, on one wide forward
    e = torch.randn(3, 77, 64, generator=g).cuda()
    pos = torch.arange(77, device="cuda")[None].expand(3, 77)
    outs = []
    for comp in (False, True):
        lean = LeanChameleon(m, h, 3, 77, compile_prefill=comp)
        lean.valid[:] = True
        outs.append(lean.forward(pos, 0, 77, embeds=e, dense_causal=True))
    assert max_rel(outs[1], outs[0]) < 1e-4


def test_compiled_siglip_equals_eager_and_cpu(ut_cpu, ut_cuda32, ut_cuda):
    img = _img(500, 300, 1)
    views, _ = ut_cpu.model.siglip_views(img)
    with torch.no_grad():
        ref = ut_cpu.model.vit(views, interpolate_pos_encoding=True).last_hidden_state
        for ad, bound, measure in ((ut_cuda32, 1e-4, max_rel), (ut_cuda, 3e-2, mean_rel)):
            assert ad.model.vision_tower is not ad.model.vit  # compile=true/auto on CUDA compiled it
            px = views.to("cuda", ad.dtype)
            compiled = ad.model.vision_tower(px, interpolate_pos_encoding=True).last_hidden_state
            eager = ad.model.vit(px, interpolate_pos_encoding=True).last_hidden_state
            assert measure(compiled, ref) < bound and measure(compiled, eager) < bound


# ---------------------------------------------------------------------------------------------- peers
@pytest.fixture(scope="module")
def ch_ckpt(tmp_path_factory):
    return write_tiny_chameleon(tmp_path_factory.mktemp("ch") / "chameleon-tiny", seed=4)


@pytest.mark.parametrize("dtype,fmt", [("float32", "meta"), ("bfloat16", "meta"), ("bfloat16", "vlmevalkit")])
def test_chameleon_cuda_understanding(ch_ckpt, dtype, fmt):
    from unitoken_eval.model_adapters.chameleon import ChameleonAdapter, chameleon_pixels, meta_pixels

    cpu = ChameleonAdapter(path=str(ch_ckpt), device="cpu", dtype="float32", prompt_format=fmt)
    gpu = ChameleonAdapter(path=str(ch_ckpt), device="cuda", dtype=dtype, prompt_format=fmt)
    img = _img(400, 300, 6)
    reqs = [UnderstandRequest("0", "What is it?", [img], "a", max_new_tokens=5),
            UnderstandRequest("1", "Count the things in view.", [img], "a", max_new_tokens=3),
            UnderstandRequest("2", "No picture here.", [], None, max_new_tokens=4)]
    ids = gpu.image_ids([img])[0]
    # the checkpoint's own VQ encoder (transformers' code) in the adapter's dtype on the processor's pixels
    px = (meta_pixels if fmt == "meta" else chameleon_pixels)(img)[None].to(gpu.device, gpu.dtype)
    assert ids == gpu.model.llm.get_image_tokens(px).view(-1).tolist()
    got = [x["token_ids"] for x in gpu.understand_with_tokens(reqs)]
    want = [x["token_ids"] for x in cpu.understand_with_tokens(reqs)]
    if dtype == "float32":
        assert np.mean(np.array(ids) == np.array(cpu.image_ids([img])[0])) >= 0.99
        assert got == want
    else:
        assert [len(t) <= r.max_new_tokens for t, r in zip(got, reqs)] == [True] * 3
        # the text-only prompt: bf16 next-token logits near float32's
        before, after = cpu.prompt_parts(reqs[2])
        with torch.no_grad():
            lc = cpu.model.lm_head(cpu.model.llm(input_ids=torch.tensor([before + after])).last_hidden_state[:, -1])
            lg = gpu.model.lm_head(gpu.model.llm(input_ids=torch.tensor([before + after], device="cuda"))
                                   .last_hidden_state[:, -1])
        assert mean_rel(lg, lc) < 5e-2


def test_lumina_mgpt_cuda_answers_and_images_follow_cpu(tmp_path_factory):
    from unitoken_eval.model_adapters.lumina_mgpt import LuminaMGPTAdapter

    ckpt = write_tiny_release(tmp_path_factory.mktemp("lm") / "Lumina-mGPT-7B-512", seed=3, vision=False)
    cpu = LuminaMGPTAdapter(path=str(ckpt), device="cpu", dtype="float32")
    gpu = LuminaMGPTAdapter(path=str(ckpt), device="cuda", dtype="float32", compile="true")
    img = _img(500, 300)
    reqs = [UnderstandRequest("0", "Describe.", [img], "a", max_new_tokens=4),
            UnderstandRequest("1", "What colour dominates here?", [img], "a", max_new_tokens=4)]
    assert [x["token_ids"] for x in gpu.understand_with_tokens(reqs)] == \
        [x["token_ids"] for x in cpu.understand_with_tokens(reqs)]
    req = GenerateRequest("g", "a red bus", n_images=1, seed=2, options={"image_top_k": 30})
    a = gpu.generate_with_tokens([req])[0]["token_ids"][0]
    b = cpu.generate_with_tokens([req])[0]["token_ids"][0]
    size_token = gpu.vq.vocab.size_id(512 // 32)
    assert _image_structure_ok(a, 32, size_token) and a[:64] == b[:64]
    bf16 = LuminaMGPTAdapter(path=str(ckpt), gen_batch_size="1")
    assert bf16.dtype == torch.bfloat16
    assert _image_structure_ok(bf16.generate_with_tokens([req])[0]["token_ids"][0], 32, size_token)


def test_janus_cuda_understanding_and_images_follow_cpu(tmp_path_factory):
    from unitoken_eval.model_adapters.janus import JanusAdapter
    from unitoken_eval_testkit.janus_tiny import write_tiny_janus

    ckpt = write_tiny_janus(tmp_path_factory.mktemp("janus"), seed=0)
    cpu = JanusAdapter(path=str(ckpt), dtype="float32", device="cpu")
    gpu = JanusAdapter(path=str(ckpt), dtype="float32", device="cuda")
    reqs = [UnderstandRequest("a", "What?", [_img(90, 70, 1)], max_new_tokens=10),
            UnderstandRequest("c", "No image here, just text", [], max_new_tokens=10)]
    assert gpu.understand(reqs) == cpu.understand(reqs)
    # top-k 1: no draw from a device's generator, so the same image on both devices
    req = [GenerateRequest("x", "a bird", seed=1, options={"image_top_k": 1, "cfg": 3})]
    a, b = np.asarray(gpu.generate(req)[0][0], dtype=np.int16), np.asarray(cpu.generate(req)[0][0], dtype=np.int16)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1
    bf16 = JanusAdapter(path=str(ckpt), device="cuda")
    assert bf16.dtype == torch.bfloat16
    out = bf16.understand(reqs)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert bf16.generate(req)[0][0].size == gpu.generate(req)[0][0].size
