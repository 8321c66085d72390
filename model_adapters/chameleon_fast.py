"""Batched classifier-free-guidance image decoding for Chameleon-family LLMs, fast on a GPU.

Why a loop of our own instead of ``model.generate``: the eager HF loop is CPU-bound (~77 ms a step at
batch 2 on an H200, gpu-throughput.md) and its dynamic cache grows by reallocation.  Here the KV cache is a
preallocated buffer, each decode step (forward of cond and uncond rows together, CFG mix, structure
constraints, image top-k, sampling) is one function of device tensors only, and on CUDA that function is
captured as a CUDA graph per context bucket: attention reads only the filled part of the cache (rounded up
to the bucket), so per-step cost follows the real context length, and replaying a graph costs microseconds
of CPU.  The same function runs eagerly on CPU, which is how the tests check it against transformers.

Sampling uses the Gumbel-max trick over the top-k candidates with noise drawn from each row's own seeded
generator: the same distribution as softmax + multinomial over the top-k, and an image depends only on its
own seed, never on which other prompts share its batch.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from model_adapters.kv_cache import make_kv, quantize_int8


@dataclass(frozen=True)
class ImageGrid:
    """The token layout of one generated image (Chameleon/UniToken 512x512: 32x32 codes)."""

    rows: int = 32
    cols: int = 32
    size_token: int = 8820  # <reserved08820>: 16 (x32 px) for 512
    newline: int = 8803
    eoi: int = 8196
    image_lo: int = 4
    image_hi: int = 8195  # inclusive

    @property
    def n_tokens(self) -> int:
        """Generated tokens after BOI: height, width, rows x (cols + newline), EOI."""
        return 2 + self.rows * (self.cols + 1) + 1

    def schedule(self) -> torch.Tensor:
        """Per generated step: the forced token, or -1 where an image token is sampled."""
        out = torch.full((self.n_tokens,), -1, dtype=torch.long)
        out[0] = out[1] = self.size_token
        for p in range(self.rows * (self.cols + 1)):
            if p % (self.cols + 1) == self.cols:
                out[2 + p] = self.newline
        out[-1] = self.eoi
        return out

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, n_tokens] generated ids -> [B, rows, cols] BPE ids of the image (size, newlines, EOI dropped)."""
        body = tokens[:, 2 : 2 + self.rows * (self.cols + 1)].reshape(-1, self.rows, self.cols + 1)
        return body[:, :, : self.cols]


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """The release's guidance on raw logits: scale * (cond - uncond) + uncond."""
    return scale * (cond - uncond) + uncond


def gumbel_topk_sample(logits: torch.Tensor, k: int, temperature: float, uniform: torch.Tensor) -> torch.Tensor:
    """Sample from softmax(top-k(logits) / T) with the Gumbel-max trick; ``uniform`` is [B, k] in (0, 1)."""
    vals, idx = torch.topk(logits, k, dim=-1)
    gumbel = -torch.log(-torch.log(uniform))
    choice = torch.argmax(vals / temperature + gumbel, dim=-1, keepdim=True)
    return idx.gather(-1, choice).squeeze(-1)


def row_noise(seeds: Sequence[int], n_steps: int, k: int, device) -> torch.Tensor:
    """[B, n_steps, k] uniforms, row b from its own generator seeded with seeds[b] (batch-independent)."""
    rows = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s))
        u = torch.rand((n_steps, k), generator=g, dtype=torch.float32)
        rows.append(u.clamp_(min=1e-10, max=1.0 - 1e-7))
    return torch.stack(rows).to(device)


def fuse_projections(model) -> bool:
    """Store each layer's q/k/v and gate/up weights as one matrix each, the modules keeping views into it.

    One wide GEMM instead of three (or two) narrow ones: fewer kernels per decode step and better GEMM
    efficiency in prefill, with no extra memory (the old tensors are released).  Idempotent; returns False
    (and does nothing) for layers with biases.
    """
    if getattr(model, "_lean_fused", False):
        return True
    for layer in model.layers:
        a, m = layer.self_attn, layer.mlp
        if any(x.bias is not None for x in (a.q_proj, a.k_proj, a.v_proj, m.gate_proj, m.up_proj)):
            return False
    with torch.no_grad():
        for layer in model.layers:
            a, m = layer.self_attn, layer.mlp
            qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).contiguous()
            nq, nk = a.q_proj.weight.shape[0], a.k_proj.weight.shape[0]
            a.q_proj.weight = torch.nn.Parameter(qkv[:nq], requires_grad=False)
            a.k_proj.weight = torch.nn.Parameter(qkv[nq : nq + nk], requires_grad=False)
            a.v_proj.weight = torch.nn.Parameter(qkv[nq + nk :], requires_grad=False)
            a._lean_qkv = qkv
            gu = torch.cat([m.gate_proj.weight, m.up_proj.weight]).contiguous()
            ng = m.gate_proj.weight.shape[0]
            m.gate_proj.weight = torch.nn.Parameter(gu[:ng], requires_grad=False)
            m.up_proj.weight = torch.nn.Parameter(gu[ng:], requires_grad=False)
            m._lean_gate_up = gu
    model._lean_fused = True
    return True


def _causal_attention(q, k, v, scale, backends):
    if not backends:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backends):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


def _rms_norm(x, weight, eps: float):
    """ChameleonRMSNorm's arithmetic (float32 statistics, weight applied in the input dtype)."""
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _add_rms_norm(x, delta, weight, eps: float):
    """The residual add and the next RMSNorm as one piece (one fused kernel when compiled)."""
    x = x + delta
    return x, _rms_norm(x, weight, eps)


def _head_norm_rope(proj, weight, bias, cos, sin, R: int, T: int, H: int, D: int):
    """Per-head LayerNorm (ChameleonLayerNorm: statistics over head_dim, per-head affine) and rotary."""
    x = F.layer_norm(proj.reshape(R, T, H, D), (D,), None, None, 1e-5) * weight + bias
    x = x.transpose(1, 2)
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    half = D // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * c + rot * s


def _swiglu(gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return _swiglu_pair(gate, up)


def _swiglu_pair(gate, up):
    return F.silu(gate) * up


FP8_MAX = 448.0  # largest finite float8 e4m3fn


def fp8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float8 e4m3 codes of ``x`` [M, K] with one float32 scale per row (row absmax / 448): [M, K], [M, 1]."""
    xf = x.float()
    scale = xf.abs().amax(-1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    return (xf / scale).to(torch.float8_e4m3fn), scale


@functools.lru_cache(maxsize=None)
def _cpu_scaled_mm_takes_row_scales() -> bool:
    """Whether this torch's CPU ``_scaled_mm`` accepts per-row / per-column scales (torch 2.11's CPU backend
    takes per-tensor scales only; 2.13's takes both)."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.float32)
    except Exception:  # noqa: BLE001 - any refusal of the call means no
        return False
    return True


def fp8_unsupported(device) -> Optional[str]:
    """Why float8 GEMMs cannot run on ``device``, or None.  ``torch._scaled_mm`` needs float8 tensor cores on a
    GPU (compute capability 8.9+: L4/L40S, H100/H200 and later); on CPU it runs (slowly), which the tests use,
    where the torch build's CPU backend takes per-row scales."""
    device = torch.device(device)
    if device.type != "cuda":
        if _cpu_scaled_mm_takes_row_scales():
            return None
        return (f"prefill=fp8 on CPU needs torch._scaled_mm with per-row scales, which torch {torch.__version__}'s "
                "CPU backend lacks (per-tensor scales only)")
    cap = torch.cuda.get_device_capability(device)
    if cap >= (8, 9):
        return None
    return (f"prefill=fp8 needs float8 tensor cores (compute capability 8.9+, e.g. L40S, H100, H200); "
            f"{torch.cuda.get_device_name(device)} is sm_{cap[0]}{cap[1]}")


def _decoder_linears(model):
    """The seven projections of every decoder layer (attention q/k/v/o, MLP gate/up/down)."""
    for layer in model.layers:
        a, m = layer.self_attn, layer.mlp
        yield from (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)


def _silu_mlp(config) -> bool:
    """Whether the MLP is SwiGLU with SiLU, which our own MLP paths (fused, float8) compute."""
    return getattr(config, "hidden_act", "silu") == "silu"


def fp8_weights(model) -> None:
    """Give each decoder linear a float8 copy of its weight (per output channel scale), once per model.

    For ``prefill=fp8``: the wide prefill GEMMs then run on the GPU's float8 tensor cores (twice the bf16
    rate on an H100/H200); the bf16 weights stay, and every other forward uses them."""
    if getattr(model, "_lean_fp8", False):
        return
    for lin in _decoder_linears(model):
        codes, scale = fp8_rows(lin.weight)
        lin._lean_fp8 = (codes, scale.reshape(1, -1))
    model._lean_fp8 = True


def release_fp8_weights(model) -> None:
    """Free the float8 weight copies (~1 byte per parameter) of :func:`fp8_weights`, e.g. before image
    generation, whose batch size is bounded by memory."""
    for lin in _decoder_linears(model):
        lin.__dict__.pop("_lean_fp8", None)
    model._lean_fp8 = False


def _fp8_linear(x: torch.Tensor, lin, quantize) -> torch.Tensor:
    """``lin(x)`` through torch._scaled_mm: x quantized per token (``quantize`` = :func:`fp8_rows` or its
    compiled form), the weight per output channel; products accumulate in float32, output in x's dtype."""
    codes, w_scale = lin._lean_fp8
    x8, x_scale = quantize(x.reshape(-1, x.shape[-1]))
    out = torch._scaled_mm(x8, codes.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)
    if lin.bias is not None:
        out = out + lin.bias
    return out.reshape(*x.shape[:-1], out.shape[-1])


# From this many tokens in one forward (R x T), the fused QKV and gate/up GEMMs give way to separate ones:
# on an H200 separate projections prefilled 16 x 4.7k-token prompts ~2% faster (prefill_variants in
# bench/records/throughput-NVIDIA-H200-20261129-*.json), while decode steps (a few hundred rows) gain from
# fewer, wider GEMMs.
SEPARATE_PROJECTIONS_FROM = 4096


_PIECES: dict[str, object] = {}


def _piece(name: str, fn, compiled: bool):
    """``fn`` itself, or its torch.compile'd form (dynamic shapes) when ``compiled``.

    Only the elementwise pieces are compiled, not the layer loop: about 40% of eager prefill time on an
    H200 is unfused elementwise work (bench/profile_paths.py), while compiling the whole stack took
    minutes and recompiled on new batch shapes.  Set UNITOKEN_EVAL_COMPILE=0 to keep everything eager.
    """
    if not compiled or os.environ.get("UNITOKEN_EVAL_COMPILE", "1") == "0":
        return fn
    if name not in _PIECES:
        _PIECES[name] = torch.compile(fn, dynamic=True)
    return _PIECES[name]


def _run_layers(model, x, cos, sin, write, mask, kv, length: int, dense: bool, fused: bool, backends,
                compiled: bool = False, fp8: bool = False):
    """The decoder layers over hidden states ``x`` [R, T, hidden], writing K/V at columns ``write``.

    Each residual add is fused with the RMSNorm that follows it: in a decode step the elementwise work,
    not the GEMMs, is what grows the kernel count (bench/profile_decode.py).  ``fp8``: the wide forwards'
    GEMMs in float8 (:func:`fp8_weights`); narrow ones (decode steps) stay in the model's dtype.
    """
    R, T = x.shape[:2]
    H = model.config.num_attention_heads
    D = model.config.hidden_size // H
    rms, add_rms = _piece("rms", _rms_norm, compiled), _piece("add_rms", _add_rms_norm, compiled)
    norm_rope, swiglu = _piece("rope", _head_norm_rope, compiled), _piece("swiglu", _swiglu, compiled)
    swiglu_pair = _piece("swiglu_pair", _swiglu_pair, compiled)
    # ``fused``: the fused weights exist and the activation is SiLU; wide forwards still use separate GEMMs.
    # Any other activation goes through transformers' MLP module (never float8).
    wide = R * T >= SEPARATE_PROJECTIONS_FROM
    silu, fused = _silu_mlp(model.config), fused and not wide
    if fp8 and wide:
        quant = _piece("fp8", fp8_rows, compiled)
        lin = lambda h, module: _fp8_linear(h, module, quant)  # noqa: E731
    else:
        lin = lambda h, module: module(h)  # noqa: E731
    layers = model.layers
    first = layers[0].input_layernorm
    h = rms(x, first.weight, first.variance_epsilon)
    for i, layer in enumerate(layers):
        attn, mlp = layer.self_attn, layer.mlp
        if fused:
            qp, kp, vp = F.linear(h, attn._lean_qkv).split([H * D, H * D, H * D], dim=-1)
        else:
            qp, kp, vp = lin(h, attn.q_proj), lin(h, attn.k_proj), lin(h, attn.v_proj)
        q = norm_rope(qp, attn.q_norm.weight, attn.q_norm.bias, cos, sin, R, T, H, D)
        k = norm_rope(kp, attn.k_norm.weight, attn.k_norm.bias, cos, sin, R, T, H, D)
        v = vp.reshape(R, T, H, D).transpose(1, 2)
        kv.write(i, write, k, v)
        if dense:
            o = _causal_attention(q, k, v, attn.scaling, backends)
        else:
            o = kv.attend(i, q, mask, length, attn.scaling)
        post = layer.post_attention_layernorm
        x, h = add_rms(x, lin(o.transpose(1, 2).reshape(R, T, H * D), attn.o_proj), post.weight,
                       post.variance_epsilon)
        if fused:
            m = mlp.down_proj(swiglu(F.linear(h, mlp._lean_gate_up)))
        elif silu:
            m = lin(swiglu_pair(lin(h, mlp.gate_proj), lin(h, mlp.up_proj)), mlp.down_proj)
        else:
            m = mlp(h)
        if i + 1 < len(layers):
            nxt = layers[i + 1].input_layernorm
            x, h = add_rms(x, m, nxt.weight, nxt.variance_epsilon)
        else:
            x = x + m
    return x


class LeanChameleon:
    """A Chameleon forward over transformers' weights with a preallocated KV cache.

    Works on any ``ChameleonModel`` (standard pre-norm layers; swin-norm checkpoints are refused).  Each row
    has a ``valid`` mask over cache columns (left padding, gaps) and explicit rotary positions, so rows of
    different lengths, and rows that continue a shared prefix, live in one batch.
    """

    def __init__(self, model, lm_head, max_rows: int, max_len: int, fused: Optional[bool] = None,
                 prefill_backends: Optional[list] = None, compile_prefill: Optional[bool] = None,
                 kv_cache: str = "bf16", prefill: str = "bf16"):
        """``prefill``: "bf16" (the model's dtype) or "fp8" (wide forwards' GEMMs in float8, not exact)."""
        if prefill not in ("bf16", "fp8"):
            raise ValueError(f"prefill={prefill!r}: expected bf16 or fp8")
        if getattr(model.config, "swin_norm", False):
            raise ValueError("LeanChameleon supports Chameleon's pre-norm layers only (swin_norm=False)")
        self.model, self.lm_head = model, lm_head
        cfg = model.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        if self.n_kv != self.n_heads:
            raise ValueError("LeanChameleon expects multi-head attention (num_key_value_heads == num_attention_heads)")
        self.head_dim = cfg.hidden_size // self.n_heads
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.compile_prefill = (self.device.type == "cuda") if compile_prefill is None else compile_prefill
        self.kv = make_kv(kv_cache, len(model.layers), max_rows, self.n_heads, max_len, self.head_dim, self.device,
                          self.dtype, quantize=_piece("quant", quantize_int8, self.compile_prefill))
        self.valid = torch.zeros((max_rows, max_len), dtype=torch.bool, device=self.device)
        self.max_rows, self.max_len = max_rows, max_len
        if fused is None:
            fused = self.device.type == "cuda"
        # The fused MLP path applies SiLU itself: only for the activation Chameleon checkpoints use.
        self.fused = fused and _silu_mlp(cfg) and fuse_projections(model)
        self.prefill_backends = prefill_backends
        self.fp8 = prefill == "fp8"
        if self.fp8:
            why = fp8_unsupported(self.device)
            if why:
                raise ValueError(why)
            fp8_weights(model)

    def copy_rows(self, src: torch.Tensor, dst: torch.Tensor, upto: int) -> None:
        """Give rows ``dst`` the cache columns [0, upto) of rows ``src`` (a shared prefix, computed once)."""
        for buf in self.kv.buffers():
            buf[:, :, :upto].index_copy_(0, dst, buf[:, :, :upto].index_select(0, src))
        self.valid[:, :upto].index_copy_(0, dst, self.valid[:, :upto].index_select(0, src))

    @torch.no_grad()
    def forward(self, positions: torch.Tensor, start, length: int, ids: Optional[torch.Tensor] = None,
                embeds: Optional[torch.Tensor] = None, dense_causal: bool = False,
                vocab: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Run tokens (``ids`` [R, T] or ``embeds`` [R, T, H]) written at columns start..start+T-1 of cache rows
        0..R-1; attend over columns [0, length).

        ``start`` is an int or a 1-element long tensor (the decode step keeps it on the device for graph
        capture).  ``dense_causal`` says the rows start at column 0 and any padding comes after their real
        tokens, so the plain causal kernel (flash attention) is exact without a mask.  On CUDA every path's
        elementwise pieces run compiled (``compile_prefill``).  Returns the last position's logits [R, V], float32.
        """
        model = self.model
        x = model.embed_tokens(ids) if embeds is None else embeds.to(self.dtype)
        R, T = x.shape[:2]
        cos, sin = model.rotary_emb(x, positions)
        if isinstance(start, torch.Tensor):
            write = start + torch.arange(T, device=self.device)
        else:
            write = torch.arange(start, start + T, device=self.device)
        mask = None
        if not dense_causal:
            cols = torch.arange(length, device=self.device)
            # [R, 1, T, L]: a query at column write[t] sees valid columns up to itself.  Every query also
            # sees its own column, so padding queries stay finite (a fully masked row gives NaN, and NaN
            # values in the cache poison even masked-out products).
            here = cols[None, None, None, :] == write[None, None, :, None]
            upto = cols[None, None, None, :] <= write[None, None, :, None]
            mask = (self.valid[:R, :length][:, None, None, :] & upto) | here
        # Compiled elementwise pieces on every CUDA forward: in prefill they fuse ~40% of the time away, in
        # decode steps (graphs captured after a warm-up step) they cut the kernels per step.
        compiled = self.compile_prefill
        x = _run_layers(model, x, cos, sin, write, mask, self.kv, length, dense_causal, self.fused,
                        self.prefill_backends, compiled, self.fp8)
        h = model.norm(x[:, -1])
        if vocab is not None:
            return F.linear(h, self.lm_head.weight[vocab[0] : vocab[1]]).float()
        return self.lm_head(h).float()


def _bucket(need: int, bucket: int, cap: int) -> int:
    return min(cap, int(math.ceil(need / bucket) * bucket))


class _GraphSteps:
    """Run a state-advancing step function eagerly, or as one captured CUDA graph per attention length.

    Capturing costs about two eager steps (a warm-up run, then recording ~1000 kernels), and on an H200 an
    eager 7B step at 16 rows x 4.8k columns takes ~50 ms against ~17 ms replayed (bench/profile_decode.py):
    a length is captured when at least ``min_replays`` steps will use it, counting the one about to run and,
    for a session kept across batches, the batches to come (``min_replays=1``: capture on first use).
    """

    MIN_REPLAYS = 4

    def __init__(self, use_graphs: bool, min_replays: int = MIN_REPLAYS):
        self.use_graphs = use_graphs
        self.min_replays = min_replays
        self.graphs: dict[int, "torch.cuda.CUDAGraph"] = {}
        # One memory pool for all of a loop's graphs: they replay one after another, never at once.
        self.pool = torch.cuda.graph_pool_handle() if use_graphs else None

    def __call__(self, step, length: int, state: dict, remaining: int) -> None:
        """``remaining``: how many steps, this one included, will run at this length."""
        if length in self.graphs:
            self.graphs[length].replay()
        elif not self.use_graphs or remaining < self.min_replays:
            step(length)
        else:
            self.graphs[length] = self._capture(step, length, state, self.pool)

    @staticmethod
    def _capture(step, length: int, state: dict, pool) -> "torch.cuda.CUDAGraph":
        # Warm up on a side stream (as capture requires), undo the state advance, capture, then replay once:
        # capturing records without executing.
        saved = {k: v.clone() for k, v in state.items()}
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            step(length)
        torch.cuda.current_stream().wait_stream(s)
        for k, v in state.items():
            v.copy_(saved[k])
        g = torch.cuda.CUDAGraph()
        # thread_local: the adapter decodes the previous batch's images in another thread meanwhile; its
        # synchronising calls are not part of this capture and must not invalidate it.
        with torch.cuda.graph(g, pool=pool, capture_error_mode="thread_local"):
            step(length)
        g.replay()
        return g


class PrefixSharingGreedyDecoder:
    """Greedy answers for prompts that share image prefixes, one prefill per distinct prefix.

    A prompt is ``prefix embeddings`` (everything up to the image's EOI: BOS, both image blocks) followed by
    its own text ids.  Groups of prompts about one image (MMBench's circular copies, MME's two questions)
    prefill the prefix once; its cache columns are copied to the other rows, then every row's text is
    prefilled after it and decoding is batched.  Text suffixes of different lengths are right-aligned, the
    gap in front of a shorter one is masked and skipped by the rotary positions, so each row computes
    exactly what it would alone.

    The KV cache, the decode state and the captured step graphs form a session kept for the next call: a
    benchmark is thousands of batches of the same size with prompts of similar length, and re-capturing
    per batch cost about two eager steps (~100 ms) per batch, as much as a short answer's whole decode.  A
    batch with fewer rows than the session runs with copies of its first prompt in the spare rows (their
    answers are dropped; rows never see each other); a longer batch grows the session.  ``release()`` frees it.
    """

    LEN_BUCKET = 256  # session cache length rounding, so that prompts of similar length share one session

    def __init__(self, model, lm_head, bucket: int = 64, use_graphs: Optional[bool] = None,
                 fused: Optional[bool] = None, prefill_backends: Optional[list] = None,
                 compile_prefill: Optional[bool] = None, prefill: str = "bf16"):
        self.model, self.lm_head, self.bucket = model, lm_head, bucket
        self.prefill = prefill
        device = next(model.parameters()).device
        self.use_graphs = (device.type == "cuda") if use_graphs is None else use_graphs
        self.fused, self.prefill_backends, self.compile_prefill = fused, prefill_backends, compile_prefill
        self.stats = {"prefill_tokens": 0, "prompt_tokens": 0, "sessions": 0}
        self._session: Optional[dict] = None

    def release(self) -> None:
        """Drop the kept session (KV cache, graphs) so its memory can be used for something else."""
        self._session = None

    def _session_for(self, rows: int, length: int, new: int) -> dict:
        sess = self._session
        if sess is not None and rows <= sess["rows"] and length <= sess["len"] and new <= sess["new"]:
            return sess
        if sess is not None:  # grow to cover both the old and the new shape
            rows, length, new = max(rows, sess["rows"]), max(length, sess["len"]), max(new, sess["new"])
        self._session = None  # free the old cache before allocating the new one
        length = _bucket(length, self.LEN_BUCKET, 1 << 30)
        lean = LeanChameleon(self.model, self.lm_head, rows, length, fused=self.fused,
                             prefill_backends=self.prefill_backends, compile_prefill=self.compile_prefill,
                             prefill=self.prefill)
        dev = lean.device
        out = torch.zeros((rows, new), dtype=torch.long, device=dev)
        # Static state the step reads and advances in place (so a captured graph can replay it).
        state = {"tok": torch.zeros(rows, dtype=torch.long, device=dev),
                 "pos": torch.zeros(rows, dtype=torch.long, device=dev),
                 "col": torch.zeros(1, dtype=torch.long, device=dev),
                 "step": torch.ones(1, dtype=torch.long, device=dev)}

        def step(length: int) -> None:
            tok, pos, col, stp = state["tok"], state["pos"], state["col"], state["step"]
            nxt = lean.forward(pos[:, None], col, length, ids=tok[:, None]).argmax(-1)
            out.index_copy_(1, stp, nxt[:, None])
            tok.copy_(nxt)
            pos.add_(1)
            col.add_(1)
            stp.add_(1)

        self._session = {"rows": rows, "len": length, "new": new, "lean": lean, "out": out, "state": state,
                         "step": step, "runner": _GraphSteps(self.use_graphs, min_replays=1)}
        self.stats["sessions"] += 1
        return self._session

    @torch.no_grad()
    def answer(self, prefixes: list[torch.Tensor], suffixes: list[list[int]], group: list[int],
               max_new_tokens: int, eos: Sequence[int]) -> list[list[int]]:
        """``prefixes[g]`` is [P_g, hidden]; row r is ``prefixes[group[r]]`` + ``suffixes[r]``."""
        G, R = len(prefixes), len(suffixes)
        if sorted(set(group)) != list(range(G)):
            raise ValueError("every prefix must be used by at least one prompt")
        # Row order: the first prompt of each group first (they hold the prefill), then the others.
        first = {}
        for r, g in enumerate(group):
            first.setdefault(g, r)
        order = [first[g] for g in range(G)] + [r for r in range(R) if first[group[r]] != r]
        P = max(p.shape[0] for p in prefixes)
        S = max(len(s) for s in suffixes)
        sess = self._session_for(R, P + S + max_new_tokens, max_new_tokens)
        lean, out, state = sess["lean"], sess["out"], sess["state"]
        rows = sess["rows"]
        order += [order[0]] * (rows - R)  # spare rows: copies of the first prompt
        dev = lean.device
        hidden = prefixes[0].shape[1]
        lean.valid.zero_()  # the columns of the session's previous batch
        # 1. Prefixes on rows 0..G-1, right-padded to P: under causal attention a real token never sees the
        # padding after it, so the plain causal kernel is exact for every row; the padding's cache columns
        # are marked invalid for what follows.
        emb = torch.zeros((G, P, hidden), dtype=lean.dtype, device=dev)
        for g, p in enumerate(prefixes):
            emb[g, : p.shape[0]] = p.to(dev, lean.dtype)
            lean.valid[g, : p.shape[0]] = True
        positions = torch.arange(P, device=dev)[None].expand(G, P)
        lean.forward(positions, 0, P, embeds=emb, dense_causal=True)
        del emb
        # 2. Rows of the same group get the prefix columns of their group's first row.
        rep = torch.tensor([group[order[i]] for i in range(rows)], device=dev)
        if rows > G:
            lean.copy_rows(rep[G:], torch.arange(G, rows, device=dev), P)
        # 3. Every row's text, right-aligned in columns [P, P + S).
        ids = torch.zeros((rows, S), dtype=torch.long)
        for i, r in enumerate(order):
            ids[i, S - len(suffixes[r]):] = torch.tensor(suffixes[r])
            lean.valid[i, P + S - len(suffixes[r]): P + S] = True
        ids = ids.to(dev)
        lean.valid[:, P + S:] = True
        positions = (lean.valid[:, : P + S].long().cumsum(1) - 1).clamp(min=0)[:, P:]
        logits = lean.forward(positions, P, P + S, ids=ids)
        self.stats["prefill_tokens"] += sum(p.shape[0] for p in prefixes) + sum(len(s) for s in suffixes)
        self.stats["prompt_tokens"] += sum(prefixes[group[r]].shape[0] + len(suffixes[r]) for r in range(R))
        # 4. Greedy decoding, one graph per attention length (kept with the session).
        out.zero_()
        out[:, 0] = logits.argmax(-1)
        state["tok"].copy_(out[:, 0])
        state["pos"].copy_(lean.valid[:, : P + S].sum(1))  # the position of the first generated token
        state["col"].fill_(P + S)
        state["step"].fill_(1)
        eos_t = torch.tensor(list(eos), device=dev)
        produced = 1
        lengths = [_bucket(P + S + s, self.bucket, lean.max_len) for s in range(max_new_tokens)]
        for s in range(1, max_new_tokens):
            if s % 4 == 0 and bool(torch.isin(out[:R, :s], eos_t).any(1).all()):
                break  # every row has ended (checked every few steps: each check waits for the GPU)
            sess["runner"](sess["step"], lengths[s], state, remaining=lengths[s:].count(lengths[s]))
            produced = s + 1
        result: list[list[int]] = [[] for _ in range(R)]
        done = out[:R].cpu().tolist()
        eos_set = set(int(e) for e in eos)
        for i, r in enumerate(order[:R]):
            toks = done[i][:produced]
            cut = next((j for j, t in enumerate(toks) if t in eos_set), None)
            result[r] = toks[:cut] if cut is not None else toks
        return result


class CFGImageDecoder:
    """Generate image token streams for a batch of prompts with CFG, on CPU (eager) or CUDA (graphs).

    ``prompts`` are the conditional token ids up to and including BOI; the unconditional branch of each is
    ``[BOI]`` followed by the same generated tokens, i.e. the release's ``[8197, 8820, 8820]`` context.

    The KV cache, the step's state and the captured graphs form a session kept for the next call with the
    same shape and sampling settings: a benchmark's batches differ only in prompts and seeds, and
    re-capturing ~17 graphs (each after an eager warm-up step) per batch cost ~8% of a batch's time.
    Prompt widths are rounded up to ``WIDTH_BUCKET`` (left padding is masked, so this is exact) so that
    batches of similar prompts share a session.  ``release()`` frees it.
    """

    WIDTH_BUCKET = 32

    def __init__(self, model, lm_head, grid: ImageGrid = ImageGrid(), bucket: int = 32,
                 use_graphs: Optional[bool] = None, fused: Optional[bool] = None, kv_cache: str = "bf16"):
        """``kv_cache``: "bf16" (the model's dtype, exact) or "int8" (model_adapters/kv_cache.py: half the
        bytes per step and per row, so larger batches fit)."""
        self.model, self.lm_head, self.grid, self.bucket = model, lm_head, grid, bucket
        self.kv_cache = kv_cache
        device = next(model.parameters()).device
        self.use_graphs = (device.type == "cuda") if use_graphs is None else use_graphs
        self.fused = fused
        self._session: Optional[dict] = None

    def release(self) -> None:
        """Drop the kept session (KV cache, graphs) so its memory can be used for something else."""
        self._session = None

    def _open(self, key: tuple, B: int, width: int, guided: bool, cfg: float, image_top_k: int,
              temperature: float) -> dict:
        grid = self.grid
        n = grid.n_tokens
        R = 2 * B if guided else B
        lean = LeanChameleon(self.model, self.lm_head, R, width + n, fused=self.fused, kv_cache=self.kv_cache)
        dev = lean.device
        sess = {
            "key": key, "lean": lean, "runner": _GraphSteps(self.use_graphs),
            "schedule": grid.schedule().to(dev),
            "noise": torch.empty((B, n, image_top_k), dtype=torch.float32, device=dev),
            "pad": torch.zeros(R, dtype=torch.long, device=dev),
            "out": torch.empty((B, n), dtype=torch.long, device=dev),
            # Static state the step reads and advances in place (so a captured graph can replay it).
            "state": {"tok": torch.zeros(R, dtype=torch.long, device=dev),
                      "col": torch.tensor(width, device=dev), "step": torch.tensor(1, device=dev)},
        }
        # Only image ids can be sampled, so logits (and CFG, top-k) are computed over that id range alone.
        lo, hi = grid.image_lo, grid.image_hi + 1
        state, out, noise, pad, schedule = sess["state"], sess["out"], sess["noise"], sess["pad"], sess["schedule"]

        def step(length: int) -> None:
            tok, col, stp = state["tok"], state["col"], state["step"]
            pos = (col - pad)[:, None]
            logits = lean.forward(pos, col.reshape(1), length, ids=tok[:, None], vocab=(lo, hi))
            if guided:
                logits = cfg_mix(logits[:B], logits[B:], float(cfg))
            u = noise.index_select(1, stp.reshape(1)).squeeze(1)
            sampled = gumbel_topk_sample(logits, image_top_k, temperature, u) + lo
            forced = schedule.index_select(0, stp.reshape(1))
            nxt = torch.where(forced >= 0, forced.expand(B), sampled)
            out.index_copy_(1, stp.reshape(1), nxt[:, None])
            tok.copy_(nxt.repeat(2) if guided else nxt)
            col.add_(1)
            stp.add_(1)

        sess["step"] = step
        return sess

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], seeds: Sequence[int], cfg: Optional[float] = 3.0,
                 image_top_k: int = 2000, temperature: float = 1.0, boi: int = 8197) -> torch.Tensor:
        """Returns [B, n_tokens] generated ids (size tokens, rows with newlines, EOI)."""
        grid = self.grid
        B = len(prompts)
        guided = cfg is not None and cfg != 1.0
        R = 2 * B if guided else B
        width = _bucket(max(len(p) for p in prompts), self.WIDTH_BUCKET, 1 << 30)
        n = grid.n_tokens
        image_top_k = min(int(image_top_k), grid.image_hi + 1 - grid.image_lo)
        key = (B, width, guided, float(cfg) if guided else None, image_top_k, float(temperature))
        if self._session is None or self._session["key"] != key:
            self._session = None  # free the old cache before allocating the new one
            self._session = self._open(key, B, width, guided, cfg, image_top_k, temperature)
        sess = self._session
        lean, state, out = sess["lean"], sess["state"], sess["out"]
        dev = lean.device
        # Prefill: cond rows left-padded to `width`; uncond rows hold BOI in the last prompt column.
        ids = torch.zeros((R, width), dtype=torch.long)
        pad = torch.zeros(R, dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p):] = torch.tensor(p)
            pad[b] = width - len(p)
        if guided:
            ids[B:, -1] = boi
            pad[B:] = width - 1
        ids = ids.to(dev)
        sess["pad"].copy_(pad)
        pad = sess["pad"]
        cols = torch.arange(width + n, device=dev)
        lean.valid[:R] = cols[None, :] >= pad[:, None]
        positions = (torch.arange(width, device=dev)[None, :] - pad[:, None]).clamp(min=0)
        lean.forward(positions, 0, width, ids=ids)

        sess["noise"].copy_(row_noise(seeds, n, image_top_k, dev))
        out.fill_(0)
        out[:, 0] = sess["schedule"][0]
        state["tok"].copy_(out[:, 0].repeat(2 if guided else 1))
        state["col"].fill_(width)
        state["step"].fill_(1)
        runner = sess["runner"]
        # Columns 0..width+s-1 hold the context including the token fed at step s.
        lengths = [_bucket(width + s, self.bucket, lean.max_len) for s in range(n)]
        for s in range(1, n):
            runner(sess["step"], lengths[s], state, remaining=lengths[s:].count(lengths[s]))
        return out.cpu()
