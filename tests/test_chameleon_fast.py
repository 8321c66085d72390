"""The batched CFG decoder against a plain transformers reference, on a tiny random Chameleon."""

from __future__ import annotations

import pytest
import torch

from unitoken_eval.model_adapters.chameleon_family.decoders import CFGImageDecoder
from unitoken_eval.model_adapters.chameleon_family.forward import LeanChameleon
from unitoken_eval.model_adapters.chameleon_family.grid import ImageGrid
from unitoken_eval.model_adapters.chameleon_family.sampling import cfg_mix, gumbel_topk_sample, token_uniforms

transformers = pytest.importorskip("transformers")
from transformers import ChameleonConfig, ChameleonModel  # noqa: E402

GRID = ImageGrid(rows=3, cols=4)  # 2 + 3*5 + 1 = 18 generated tokens


def _tiny():
    torch.manual_seed(0)
    vq = {"embed_dim": 8, "num_embeddings": 16, "base_channels": 32, "channel_multiplier": [1, 1],
          "num_res_blocks": 1, "attn_resolutions": [], "resolution": 32, "latent_channels": 8}
    cfg = ChameleonConfig(vocab_size=8830, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, vq_config=vq,
                          vocabulary_map={"<image>": 8711}, attn_implementation="eager")
    model = ChameleonModel(cfg).eval()
    head = torch.nn.Linear(64, 8830, bias=False)
    torch.nn.init.normal_(head.weight, std=0.5)
    for layer in model.layers:  # non-trivial q/k norms, as trained checkpoints have
        for norm in (layer.self_attn.q_norm, layer.self_attn.k_norm):
            torch.nn.init.normal_(norm.weight, 1.0, 0.3)
            torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    return model, head


def _hf_logits(model, head, ids):
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids])).last_hidden_state
    return head(h[:, -1]).float()[0]


def test_lean_forward_matches_transformers_with_left_padding():
    model, head = _tiny()
    prompts = [[5, 9, 100, 8197], [7, 8197], [300, 301, 302, 303, 304, 8197]]
    width = max(map(len, prompts))
    lean = LeanChameleon(model, head, max_rows=3, max_len=width + 2)
    ids = torch.zeros((3, width), dtype=torch.long)
    pad = torch.tensor([width - len(p) for p in prompts])
    for b, p in enumerate(prompts):
        ids[b, width - len(p):] = torch.tensor(p)
    lean.valid[:] = torch.arange(width + 2)[None, :] >= pad[:, None]
    pos = (torch.arange(width)[None, :] - pad[:, None]).clamp(min=0)
    got = lean.forward(pos, 0, width, ids=ids)
    for b, p in enumerate(prompts):
        torch.testing.assert_close(got[b], _hf_logits(model, head, p), rtol=1e-4, atol=1e-4)
    # One decode step on top of the cache equals a full forward of the extended prompt.
    nxt = torch.tensor([[11], [12], [13]])
    got = lean.forward((width - pad)[:, None], torch.tensor([width]), width + 1, ids=nxt)
    for b, p in enumerate(prompts):
        torch.testing.assert_close(got[b], _hf_logits(model, head, p + [11 + b]), rtol=1e-4, atol=1e-4)


def test_fused_projections_compute_the_same_and_keep_the_module_working():
    model, head = _tiny()
    ids = torch.tensor([[5, 9, 100, 8197]])
    before = _hf_logits(model, head, ids[0].tolist())
    lean = LeanChameleon(model, head, max_rows=1, max_len=4, fused=True)
    assert lean.fused and lean.weights.fused
    assert not any(k.startswith("_lean") for m in model.modules() for k in vars(m))  # nothing parked on the model
    lean.valid[:] = True
    got = lean.forward(torch.arange(4)[None], 0, 4, ids=ids, dense_causal=True)
    torch.testing.assert_close(got[0], before, rtol=1e-4, atol=1e-4)
    # transformers' own forward still runs on the fused weights (the modules hold views).
    torch.testing.assert_close(_hf_logits(model, head, ids[0].tolist()), before, rtol=1e-5, atol=1e-5)
    # another forward over the same model views the joined matrices again instead of copying them
    again = LeanChameleon(model, head, max_rows=1, max_len=4, fused=True)
    assert again.weights is not lean.weights
    assert again.weights.qkv[0].data_ptr() == lean.weights.qkv[0].data_ptr()
    assert again.weights.gate_up[1].data_ptr() == lean.weights.gate_up[1].data_ptr()
    assert torch.equal(again.weights.qkv[0], lean.weights.qkv[0])
    again.valid[:] = True
    torch.testing.assert_close(again.forward(torch.arange(4)[None], 0, 4, ids=ids, dense_causal=True), got)


def _reference_generate(model, head, prompt, seed, cfg, k, temperature, grid):
    """The release's procedure written plainly: full forwards, separate cond and uncond contexts."""
    sched = grid.schedule()
    mask = torch.full((head.out_features,), float("-inf"))
    mask[grid.image_lo : grid.image_hi + 1] = 0
    gen: list[int] = []
    for step in range(grid.n_tokens):
        if sched[step] >= 0:
            gen.append(int(sched[step]))
            continue
        cond = _hf_logits(model, head, prompt + gen)
        uncond = _hf_logits(model, head, [8197] + gen)
        logits = cfg_mix(cond, uncond, cfg) + mask
        noise = lambda idx, step=step: token_uniforms(torch.tensor([seed]), torch.tensor(step), idx - grid.image_lo)
        gen.append(int(gumbel_topk_sample(logits[None], k, temperature, noise)[0]))
    return gen


def test_decoder_reproduces_the_plain_cfg_procedure_and_obeys_the_layout():
    model, head = _tiny()
    prompts = [[5, 9, 100, 8197], [300, 301, 302, 303, 304, 8197]]
    seeds = [123, 456]
    dec = CFGImageDecoder(model, head, grid=GRID, bucket=4, use_graphs=False)
    out = dec.generate(prompts, seeds, cfg=3.0, image_top_k=50, temperature=1.0)
    assert out.shape == (2, GRID.n_tokens)
    for b in range(2):
        ref = _reference_generate(model, head, prompts[b], seeds[b], 3.0, 50, 1.0, GRID)
        assert out[b].tolist() == ref
    toks = out[0].tolist()
    assert toks[:2] == [8820, 8820] and toks[-1] == 8196
    rows = [toks[2 + r * 5 : 2 + (r + 1) * 5] for r in range(3)]
    assert all(r[-1] == 8803 and all(4 <= t <= 8195 for t in r[:-1]) for r in rows)
    assert GRID.codes(out).shape == (2, 3, 4)


def test_an_image_depends_only_on_its_seed_not_on_its_batch():
    model, head = _tiny()
    dec = CFGImageDecoder(model, head, grid=GRID, bucket=8, use_graphs=False)
    alone = dec.generate([[5, 9, 100, 8197]], [7], cfg=5.0, image_top_k=20)
    batched = dec.generate([[300, 8197], [5, 9, 100, 8197], [1, 2, 3, 4, 5, 6, 7, 8197]], [1, 7, 2], cfg=5.0,
                           image_top_k=20)
    assert torch.equal(alone[0], batched[1])
    other_seed = dec.generate([[5, 9, 100, 8197]], [8], cfg=5.0, image_top_k=20)
    assert not torch.equal(alone[0], other_seed[0])


def test_a_kept_session_gives_the_next_batch_what_a_fresh_decoder_gives():
    """The KV cache and step state are reused across calls of one shape: nothing of batch 1 may leak into 2."""
    model, head = _tiny()
    kept = CFGImageDecoder(model, head, grid=GRID, bucket=4, use_graphs=False)
    kept.generate([[5, 9, 100, 8197], [300, 301, 8197]], [1, 2], cfg=3.0, image_top_k=30)
    first = kept._session
    second = kept.generate([[7, 8, 8197], [40, 41, 42, 43, 8197]], [3, 4], cfg=3.0, image_top_k=30)
    assert kept._session is first  # same shape and settings: reused, not reallocated
    fresh = CFGImageDecoder(model, head, grid=GRID, bucket=4, use_graphs=False)
    assert torch.equal(second, fresh.generate([[7, 8, 8197], [40, 41, 42, 43, 8197]], [3, 4], cfg=3.0,
                                              image_top_k=30))
    kept.generate([[7, 8, 8197]], [3], cfg=3.0, image_top_k=30)
    assert kept._session is not first  # another batch size opens a new session
    kept.release()
    assert kept._session is None


def test_cfg_mix_and_gumbel_topk_numerically():
    cond, uncond = torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[1.0, 1.0, 1.0]])
    torch.testing.assert_close(cfg_mix(cond, uncond, 3.0), torch.tensor([[4.0, -2.0, 1.0]]))
    # Top-2 keeps ids 0 and 2; with uniform noise the winner is argmax(v/T + g): check against hand values.
    logits = torch.tensor([[4.0, -2.0, 1.0]])
    u = torch.tensor([[0.5, 0.999]])  # g = -log(-log u): 0.3665, 6.907
    assert gumbel_topk_sample(logits, 2, 1.0, lambda idx: u).item() == 2  # 4+0.367 < 1+6.907
    assert gumbel_topk_sample(logits, 2, 0.1, lambda idx: u).item() == 0  # 40+0.367 > 10+6.907
    # Over many draws the frequencies follow softmax over the top-k only.
    g = torch.Generator().manual_seed(0)
    u = torch.rand((20000, 2), generator=g).clamp(1e-10, 1 - 1e-7)
    draws = gumbel_topk_sample(logits.expand(20000, 3), 2, 1.0, lambda idx: u)
    p0 = (draws == 0).float().mean().item()
    assert abs(p0 - torch.softmax(torch.tensor([4.0, 1.0]), 0)[0].item()) < 0.01
    assert not (draws == 1).any()


def test_sampling_noise_follows_the_token_not_topks_order_of_ties():
    """CUDA's topk returns tied logits in a varying order; the noise is keyed by token id, so the draw is the same."""
    seeds, step = torch.tensor([7, 8]), torch.tensor(3)
    logits = torch.zeros(2, 64)
    logits[:, 10:30] = 1.0  # twenty tied candidates, top-20
    draw = gumbel_topk_sample(logits, 20, 1.0, lambda idx: token_uniforms(seeds, step, idx))
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    permuted = gumbel_topk_sample(logits[:, perm], 20, 1.0, lambda idx: token_uniforms(seeds, step, perm[idx]))
    assert torch.equal(perm[permuted], draw)
    assert draw[0] != draw[1] or token_uniforms(seeds, step, draw[:, None]).unique().numel() == 2
    u = token_uniforms(torch.arange(50), torch.tensor(0), torch.arange(1000).expand(50, -1))
    assert u.dtype == torch.float32 and 0 < float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float((u < 0.1).float().mean()) - 0.1) < 0.01
    assert not torch.equal(u[0], u[1])  # seeds differ
    assert not torch.equal(u[0], token_uniforms(torch.tensor([0]), torch.tensor(1), torch.arange(1000)[None])[0])


def _hf_greedy(model, head, embeds, max_new, eos):
    """Greedy decoding by full forwards over inputs_embeds (no cache): the slow, obviously right way."""
    x = embeds[None]
    out = []
    for _ in range(max_new):
        with torch.no_grad():
            h = model(inputs_embeds=x).last_hidden_state
        t = int(head(h[:, -1]).argmax(-1))
        if t in eos:
            break
        out.append(t)
        x = torch.cat([x, model.embed_tokens(torch.tensor([[t]]))], 1)
    return out


@pytest.mark.parametrize("second_len", [6, 9])  # unequal prefixes (masked path), equal (flash causal path)
def test_prefix_sharing_gives_each_prompt_what_it_would_get_alone(second_len):
    from unitoken_eval.model_adapters.chameleon_family.decoders import PrefixSharingGreedyDecoder

    model, head = _tiny()
    g = torch.Generator().manual_seed(3)
    prefixes = [torch.randn(9, 64, generator=g), torch.randn(second_len, 64, generator=g)]
    suffixes = [[40, 41, 8710], [50, 8710], [60, 61, 62, 63, 8710], [70, 71, 8710]]
    group = [0, 1, 0, 0]  # three questions about image 0 (like circular copies), one about image 1
    eos = [8710]
    dec = PrefixSharingGreedyDecoder(model, head, bucket=4, use_graphs=False)
    got = dec.answer(prefixes, suffixes, group, max_new_tokens=6, eos=eos)
    for r in range(4):
        emb = torch.cat([prefixes[group[r]], model.embed_tokens(torch.tensor(suffixes[r])).detach()])
        assert got[r] == _hf_greedy(model, head, emb, 6, eos)
    # Three prompts shared image 0's prefill: 9 + n prefix tokens computed instead of 9 * 3 + n.
    assert dec.stats["prefill_tokens"] == 9 + second_len + 13
    assert dec.stats["prompt_tokens"] == 9 * 3 + second_len + 13


def test_answer_session_is_kept_across_batches_of_other_sizes_and_lengths():
    """One decoder answers a stream of batches: fewer rows than its session (spare rows), then a longer prompt
    and answer (the session grows), then a short batch again (reused); every answer is what the prompt gets
    alone, and stale cache columns of an earlier batch never leak into a later one."""
    from unitoken_eval.model_adapters.chameleon_family.decoders import PrefixSharingGreedyDecoder

    model, head = _tiny()
    g = torch.Generator().manual_seed(5)
    eos = [8710]
    dec = PrefixSharingGreedyDecoder(model, head, bucket=4, use_graphs=False)
    dec.LEN_BUCKET = 8
    batches = [
        ([torch.randn(9, 64, generator=g), torch.randn(7, 64, generator=g)],
         [[40, 41, 8710], [50, 8710], [60, 61, 8710]], [0, 1, 0], 5),
        ([torch.randn(6, 64, generator=g)], [[70, 8710], [71, 72, 8710]], [0, 0], 4),  # 2 rows in a 3-row session
        ([torch.randn(20, 64, generator=g)], [[80, 81, 82, 8710]], [0], 9),  # longer: the session grows
        ([torch.randn(5, 64, generator=g), torch.randn(8, 64, generator=g)], [[90, 8710], [91, 8710]], [1, 0], 3),
    ]
    sessions = []
    for prefixes, suffixes, group, new in batches:
        got = dec.answer(prefixes, suffixes, group, max_new_tokens=new, eos=eos)
        sessions.append((dec.stats["sessions"], dec._session.rows, dec._session.length))
        for r in range(len(suffixes)):
            emb = torch.cat([prefixes[group[r]], model.embed_tokens(torch.tensor(suffixes[r])).detach()])
            assert got[r] == _hf_greedy(model, head, emb, new, eos), (len(sessions), r)
    assert sessions == [(1, 3, 24), (1, 3, 24), (2, 3, 40), (2, 3, 40)]
    dec.release()
    assert dec._session is None


def test_wide_forwards_use_separate_projections_with_the_same_result(monkeypatch):
    import unitoken_eval.model_adapters.chameleon_family.forward as cf

    model, head = _tiny()
    ids = torch.tensor([[5, 9, 100, 8197], [7, 8, 9, 8197]])
    lean = LeanChameleon(model, head, max_rows=2, max_len=4, fused=True)
    lean.valid[:] = True
    narrow = lean.forward(torch.arange(4)[None].expand(2, -1), 0, 4, ids=ids, dense_causal=True)
    calls = []
    real = model.layers[0].mlp.gate_proj.forward
    monkeypatch.setattr(model.layers[0].mlp.gate_proj, "forward", lambda h: calls.append(h.shape) or real(h))
    monkeypatch.setattr(cf, "SEPARATE_PROJECTIONS_FROM", 8)  # 2 rows x 4 tokens is "wide" now
    wide = lean.forward(torch.arange(4)[None].expand(2, -1), 0, 4, ids=ids, dense_causal=True)
    assert calls  # the separate gate projection ran
    torch.testing.assert_close(wide, narrow, rtol=1e-5, atol=1e-5)
    for b in range(2):
        torch.testing.assert_close(wide[b], _hf_logits(model, head, ids[b].tolist()), rtol=1e-4, atol=1e-4)


def _inductor_available() -> bool:
    import shutil
    return shutil.which("cc") is not None or shutil.which("gcc") is not None


@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_pieces_compile_once_across_batch_shapes(monkeypatch, backend):
    """A batch of one image (R=1) or a decode step (T=1) after wide batches reuses the compiled pieces:
    a mid-run recompile stalls the GPU for seconds (docs/performance.md).  Only a one-row decode step
    (R*T = 1) may add graphs.  Only the row dimension is symbolic (a symbolic head size made the GPU's
    rotary kernel several times slower).  Logits stay those of the eager forward."""
    import torch._dynamo

    from unitoken_eval.model_adapters.chameleon_family import forward as fw

    if backend == "inductor" and not _inductor_available():
        pytest.skip("torch.compile's inductor backend needs a C compiler on CPU")
    graphs, symbolic_dims = [], []

    def counting(gm, example_inputs):
        graphs.append(gm)
        for node in gm.graph.nodes:  # the traced inputs' shapes: ints, or symbols for dynamic dimensions
            t = node.meta.get("example_value") if node.op == "placeholder" else None
            if isinstance(t, torch.Tensor):
                symbolic_dims.append([d for d in range(t.dim()) if not isinstance(t.shape[d], int)])
        if backend == "inductor":
            from torch._inductor.compile_fx import compile_fx
            return compile_fx(gm, example_inputs)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, dynamic=None, **kw: real_compile(fn, dynamic=dynamic,
                                                                                       backend=counting))
    monkeypatch.setattr(fw, "_PIECES", {})
    monkeypatch.delenv("UNITOKEN_EVAL_COMPILE", raising=False)
    torch._dynamo.reset()
    try:
        model, head = _tiny()
        eager = LeanChameleon(model, head, max_rows=6, max_len=48, compile_prefill=False, fused=True)
        compiled = LeanChameleon(model, head, max_rows=6, max_len=48, compile_prefill=True, fused=True)
        new_graphs = {}
        for R, T in [(4, 40), (3, 1), (2, 30), (1, 40), (6, 12), (1, 1)]:
            before = len(graphs)
            ids = torch.randint(0, 8000, (R, T), generator=torch.Generator().manual_seed(R * 100 + T))
            positions = torch.arange(T)[None].expand(R, T)
            want = eager.forward(positions, 0, T, ids=ids, dense_causal=True)
            got = compiled.forward(positions, 0, T, ids=ids, dense_causal=True)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            new_graphs[(R, T)] = len(graphs) - before
    finally:
        torch._dynamo.reset()
    pieces = {"rms", "rope", "add_rms", "swiglu"}
    assert set(fw._PIECES) >= pieces
    assert new_graphs[(4, 40)] == len(pieces)  # each piece compiled on first use
    assert all(new_graphs[shape] == 0 for shape in [(3, 1), (2, 30), (1, 40), (6, 12)]), new_graphs
    assert new_graphs[(1, 1)] <= len(pieces)  # the single-row decode step: a size of 1 is always specialised
    assert any(dims == [0] for dims in symbolic_dims)  # rows are dynamic ...
    assert all(dims in ([], [0]) for dims in symbolic_dims), symbolic_dims  # ... and nothing else is
