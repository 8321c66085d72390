"""The Chameleon decoder layers over transformers' weights, on a preallocated KV cache.

Why a forward of our own instead of ``model.generate``: the eager transformers loop is CPU-bound and its
dynamic cache grows by reallocation.  Here the KV cache is a preallocated buffer and a forward is a function
of device tensors only, so a decode step can be captured as a CUDA graph (:mod:`.graphs`); attention reads
only the filled part of the cache, so per-step cost follows the real context length.  The same code runs
eagerly on CPU, which is how the tests check it against transformers.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F

from .kv_cache import make_kv, quantize_int8
from .weights import ModelWeights, fp8_rows, fp8_unsupported


def _rms_norm(x, weight, eps: float):
    """ChameleonRMSNorm's arithmetic (float32 statistics, weight applied in the input dtype)."""
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _add_rms_norm(x, delta, weight, eps: float):
    """The residual add and the next RMSNorm as one piece (one fused kernel when compiled)."""
    x = x + delta
    return x, _rms_norm(x, weight, eps)


def _head_norm_rope(proj, weight, bias, cos, sin):
    """Per-head LayerNorm (ChameleonLayerNorm: statistics over head_dim, per-head affine) and rotary, over
    tokens flattened to rows: ``proj`` [N, H*D], ``weight``/``bias`` [H, D], ``cos``/``sin`` [N, D] -> [N, H, D]."""
    D = weight.shape[-1]
    x = F.layer_norm(proj.unflatten(-1, (-1, D)), (D,), None, None, 1e-5) * weight + bias
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    half = D // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * c + rot * s


def _swiglu(gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return _swiglu_pair(gate, up)


def _swiglu_pair(gate, up):
    return F.silu(gate) * up


def _silu_mlp(config) -> bool:
    """Whether the MLP is SwiGLU with SiLU, which our own MLP paths (fused, float8) compute."""
    return getattr(config, "hidden_act", "silu") == "silu"


def fp8_linear(x: torch.Tensor, lin, weight: tuple[torch.Tensor, torch.Tensor], quantize) -> torch.Tensor:
    """``lin(x)`` through torch._scaled_mm with ``weight`` = lin's float8 copy (codes, per-output-channel
    scales) and x quantized per token (``quantize`` = :func:`fp8_rows` or its compiled form); products
    accumulate in float32, output in x's dtype."""
    codes, w_scale = weight
    x8, x_scale = quantize(x.reshape(-1, x.shape[-1]))
    out = torch._scaled_mm(x8, codes.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)
    if lin.bias is not None:
        out = out + lin.bias
    return out.reshape(*x.shape[:-1], out.shape[-1])


# From this many tokens in one forward (R x T) the fused QKV and gate/up GEMMs give way to separate ones:
# wide prefill GEMMs are efficient on their own, while decode steps (a few hundred rows) gain from fewer,
# wider GEMMs.
SEPARATE_PROJECTIONS_FROM = 4096


_PIECES: dict[str, object] = {}


def _piece(name: str, fn, compiled: bool, rows: Optional[tuple[int, ...]] = (0,)):
    """``fn`` itself, or its torch.compile'd form when ``compiled``.

    Only the elementwise pieces are compiled, not the layer loop: unfused elementwise work is a large share
    of eager prefill time, while compiling the whole stack takes minutes and recompiles on new batch shapes.
    The pieces see tokens flattened to rows ([R*T, ...]), and only the row dimension of the arguments listed
    in ``rows`` is dynamic: with every dimension symbolic, the kernels' index arithmetic divides by runtime
    sizes, which made the prefill's rotary kernel several times slower.  Dynamic shapes still specialise a
    size of 1, so with [R, T, ...] a batch of one image (R=1) or a decode step (T=1) would compile again
    mid-run; as rows, only a decode step of a single row does (once per process).  ``rows=None``: every
    dimension dynamic (pieces whose inputs are not rows).
    Set UNITOKEN_EVAL_COMPILE=0 to keep everything eager.
    """
    if not compiled or os.environ.get("UNITOKEN_EVAL_COMPILE", "1") == "0":
        return fn
    if name not in _PIECES:
        if rows is None:
            _PIECES[name] = torch.compile(fn, dynamic=True)
        else:
            inner = torch.compile(fn)

            def call(*args, _inner=inner, _rows=rows):
                for i in _rows:
                    torch._dynamo.maybe_mark_dynamic(args[i], 0)
                return _inner(*args)

            _PIECES[name] = call
    return _PIECES[name]


def _run_layers(model, x, cos, sin, write, mask, kv, length: int, dense: bool, weights: Optional[ModelWeights],
                compiled: bool = False, fp8: Optional[ModelWeights] = None):
    """The decoder layers over hidden states ``x`` [R, T, hidden], writing K/V at columns ``write`` (a tensor of
    columns, or a slice).

    Each residual add is fused with the RMSNorm that follows it: in a decode step the elementwise work,
    not the GEMMs, is what grows the kernel count.  ``weights``: use its fused projections (None: the
    model's separate ones).  ``fp8``: the wide forwards' GEMMs through its float8 copies; narrow ones
    (decode steps) stay in the model's dtype.
    """
    R, T = x.shape[:2]
    H = model.config.num_attention_heads
    D = model.config.hidden_size // H
    # Rows are tokens (see _piece).  Copies, not views: the compiler would guard on a view's base [R, T, ...]
    # and so specialise R=1 or T=1 after all.  Positions may broadcast over rows.
    x = x.reshape(R * T, -1).clone()
    cos, sin = (t.expand(R, T, -1).reshape(R * T, -1).clone() for t in (cos, sin))
    rms, add_rms = _piece("rms", _rms_norm, compiled), _piece("add_rms", _add_rms_norm, compiled, (0, 1))
    norm_rope, swiglu = _piece("rope", _head_norm_rope, compiled, (0, 3, 4)), _piece("swiglu", _swiglu, compiled)
    swiglu_pair = _piece("swiglu_pair", _swiglu_pair, compiled, (0, 1))
    # fused weights exist and the activation is SiLU; wide forwards still use separate GEMMs.
    # Any other activation goes through transformers' MLP module (never float8).
    wide = R * T >= SEPARATE_PROJECTIONS_FROM
    silu, fused = _silu_mlp(model.config), weights is not None and not wide
    if fp8 is not None and wide:
        quant, copies = _piece("fp8", fp8_rows, compiled, None), fp8.fp8
        lin = lambda h, module: fp8_linear(h, module, copies[module], quant)  # noqa: E731
    else:
        lin = lambda h, module: module(h)  # noqa: E731
    layers = model.layers
    first = layers[0].input_layernorm
    h = rms(x, first.weight, first.variance_epsilon)
    for i, layer in enumerate(layers):
        attn, mlp = layer.self_attn, layer.mlp
        if fused:
            qp, kp, vp = F.linear(h, weights.qkv[i]).split([H * D, H * D, H * D], dim=-1)
        else:
            qp, kp, vp = lin(h, attn.q_proj), lin(h, attn.k_proj), lin(h, attn.v_proj)
        q = norm_rope(qp, attn.q_norm.weight, attn.q_norm.bias, cos, sin).reshape(R, T, H, D).transpose(1, 2)
        k = norm_rope(kp, attn.k_norm.weight, attn.k_norm.bias, cos, sin).reshape(R, T, H, D).transpose(1, 2)
        v = vp.reshape(R, T, H, D).transpose(1, 2)
        kv.write(i, write, k, v)
        if dense:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=attn.scaling)
        else:
            o = kv.attend(i, q, mask, length, attn.scaling)
        post = layer.post_attention_layernorm
        x, h = add_rms(x, lin(o.transpose(1, 2).reshape(R * T, H * D), attn.o_proj), post.weight,
                       post.variance_epsilon)
        if fused:
            m = mlp.down_proj(swiglu(F.linear(h, weights.gate_up[i])))
        elif silu:
            m = lin(swiglu_pair(lin(h, mlp.gate_proj), lin(h, mlp.up_proj)), mlp.down_proj)
        else:
            m = mlp(h)
        if i + 1 < len(layers):
            nxt = layers[i + 1].input_layernorm
            x, h = add_rms(x, m, nxt.weight, nxt.variance_epsilon)
        else:
            x = x + m
    return x.reshape(R, T, -1)


class LeanChameleon:
    """A Chameleon forward over transformers' weights with a preallocated KV cache.

    Works on any ``ChameleonModel`` (standard pre-norm layers; swin-norm checkpoints are refused).  Each row
    has a ``valid`` mask over cache columns (left padding, gaps) and explicit rotary positions, so rows of
    different lengths, and rows that continue a shared prefix, live in one batch.
    """

    def __init__(self, model, lm_head, max_rows: int, max_len: int, fused: Optional[bool] = None,
                 compile_prefill: Optional[bool] = None, kv_cache: str = "bf16", prefill: str = "bf16",
                 weights: Optional[ModelWeights] = None):
        """``prefill``: "bf16" (the model's dtype) or "fp8" (wide forwards' GEMMs in float8, not exact).
        ``weights``: the model's derived weights, shared with other forwards of the same model (default: own)."""
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
                          self.dtype, quantize=_piece("quant", quantize_int8, self.compile_prefill, None))
        self.valid = torch.zeros((max_rows, max_len), dtype=torch.bool, device=self.device)
        self.max_rows, self.max_len = max_rows, max_len
        if fused is None:
            fused = self.device.type == "cuda"
        self.weights = weights if weights is not None else ModelWeights(model)
        # The fused MLP path applies SiLU itself: only for the activation Chameleon checkpoints use.
        self.fused = fused and _silu_mlp(cfg) and self.weights.fuse()
        self.fp8 = prefill == "fp8"
        if self.fp8:
            why = fp8_unsupported(self.device)
            if why:
                raise ValueError(why)
            self.weights.make_fp8()

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
            kv_cols = write
        else:
            write = torch.arange(start, start + T, device=self.device)
            kv_cols = slice(start, start + T)  # a prefill's columns: a slice copy is faster than index_copy_
        mask = None
        if not dense_causal:
            cols = torch.arange(length, device=self.device)
            # [R, 1, T, L]: a query at column write[t] sees valid columns up to itself.  Every query also
            # sees its own column, so padding queries stay finite (a fully masked row gives NaN, and NaN
            # values in the cache poison even masked-out products).
            here = cols[None, None, None, :] == write[None, None, :, None]
            upto = cols[None, None, None, :] <= write[None, None, :, None]
            mask = (self.valid[:R, :length][:, None, None, :] & upto) | here
        # Compiled elementwise pieces on every CUDA forward: in prefill they fuse much of the time away, in
        # decode steps (graphs captured after a warm-up step) they cut the kernels per step.
        compiled = self.compile_prefill
        x = _run_layers(model, x, cos, sin, kv_cols, mask, self.kv, length, dense_causal,
                        self.weights if self.fused else None, compiled, self.weights if self.fp8 else None)
        h = model.norm(x[:, -1])
        if vocab is not None:
            return F.linear(h, self.lm_head.weight[vocab[0] : vocab[1]]).float()
        return self.lm_head(h).float()
