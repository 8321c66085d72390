"""A tiny random Chameleon checkpoint in Meta's original release layout, and its conversion to transformers' layout.

Meta's layout (what ``chameleon.inference.loader.load_model`` and transformers' ``convert_chameleon_weights_to_hf.py``
read)::

    ROOT/models/7b/params.json             {"model": {dim, n_layers, n_heads, vocab_size, ...}}
    ROOT/models/7b/consolidate_params.json {"model_parallel_size": 1}
    ROOT/models/7b/consolidated.pth        layers.N.attention.{wq,wk,wv,wo}, .q_normalization/.k_normalization
                                           (LayerNorm over head_dim, weight + bias), .feed_forward.{w1,w2,w3},
                                           .attention_norm/.ffn_norm, tok_embeddings, norm, output, rope.freqs
    ROOT/tokenizer/text_tokenizer.json     a ``tokenizers`` file whose model.vocab has Chameleon's ids
    ROOT/tokenizer/vqgan.yaml, vqgan.ckpt  Meta's VQ-GAN

:func:`convert` writes the transformers layout from it the way the official conversion script does for a 7B
(one shard); tests/parity/chameleon_reference.py runs the official script and records per-tensor hashes of its
output, and tests/test_chameleon_reference.py checks that :func:`convert` gives exactly those tensors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

SHAPE = dict(dim=64, n_layers=2, n_heads=4, vocab_size=65536, multiple_of=32, ffn_dim_multiplier=1.0, norm_eps=1e-5,
             rope_theta=10000.0, qk_normalization=True, swin_norm=False)


def _hidden(dim: int, multiple_of: int, mult: float) -> int:
    h = int(mult * int(2 * 4 * dim / 3))
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


def meta_state(seed: int) -> dict[str, torch.Tensor]:
    """Random weights at unit scale (answers then depend on the input), as write_tiny_release draws them."""
    s = SHAPE
    d, hd = s["dim"], s["dim"] // s["n_heads"]
    ff = _hidden(d, s["multiple_of"], s["ffn_dim_multiplier"])
    g = torch.Generator().manual_seed(seed)

    def mat(out_f, in_f, std=1.0):
        return torch.randn(out_f, in_f, generator=g) * (std / in_f ** 0.5)

    st: dict[str, torch.Tensor] = {"tok_embeddings.weight": torch.randn(s["vocab_size"], d, generator=g)}
    for i in range(s["n_layers"]):
        p = f"layers.{i}."
        st[p + "attention.wq.weight"] = mat(d, d)
        st[p + "attention.wk.weight"] = mat(d, d)
        st[p + "attention.wv.weight"] = mat(d, d)
        st[p + "attention.wo.weight"] = mat(d, d)
        for qk in ("q", "k"):  # sharp attention, as write_tiny_release's q/k norms
            st[p + f"attention.{qk}_normalization.weight"] = 3.0 + 0.5 * torch.randn(hd, generator=g)
            st[p + f"attention.{qk}_normalization.bias"] = 0.1 * torch.randn(hd, generator=g)
        st[p + "feed_forward.w1.weight"] = mat(ff, d)
        st[p + "feed_forward.w2.weight"] = mat(d, ff)
        st[p + "feed_forward.w3.weight"] = mat(ff, d)
        st[p + "attention_norm.weight"] = 1.0 + 0.2 * torch.randn(d, generator=g)
        st[p + "ffn_norm.weight"] = 1.0 + 0.2 * torch.randn(d, generator=g)
    st["norm.weight"] = 1.0 + 0.2 * torch.randn(d, generator=g)
    st["output.weight"] = mat(s["vocab_size"], d, std=2.0)
    st["rope.freqs"] = 1.0 / (s["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    return st


def tensor_hashes(state: dict[str, torch.Tensor]) -> dict[str, str]:
    return {k: hashlib.sha256(v.detach().contiguous().cpu().numpy().tobytes()).hexdigest()
            for k, v in sorted(state.items())}


def write_meta_checkpoint(root: str | Path, seed: int = 0) -> Path:
    from unitoken_eval.model_adapters.chameleon_family.vq import write_tiny_vqgan
    from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import vocabulary, write_tokenizer

    root = Path(root)
    model_dir, tok_dir = root / "models" / "7b", root / "tokenizer"
    model_dir.mkdir(parents=True, exist_ok=True)
    tok_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "params.json").write_text(json.dumps({"model": SHAPE}, indent=1))
    (model_dir / "consolidate_params.json").write_text(json.dumps({"model_parallel_size": 1}))
    torch.save(meta_state(seed), model_dir / "consolidated.pth")
    write_tokenizer(tok_dir, vocabulary(), extra_specials=("<reserved08707>",))  # the converter's <image>
    (tok_dir / "tokenizer.json").rename(tok_dir / "text_tokenizer.json")
    for extra in ("tokenizer_config.json", "special_tokens_map.json"):
        (tok_dir / extra).unlink()
    write_tiny_vqgan(tok_dir, seed=seed)
    return root


def converted_state(root: Path) -> dict[str, torch.Tensor]:
    """The transformers state dict of a one-shard (7B-style) Meta checkpoint: rotary halves instead of adjacent
    pairs in q/k projections and norms (q/k norms repeated per head), ``model.vqmodel.*`` = the VQ-GAN without
    its decoder."""
    s = json.loads((root / "models" / "7b" / "params.json").read_text())["model"]
    loaded = torch.load(root / "models" / "7b" / "consolidated.pth", map_location="cpu")
    d, h = s["dim"], s["n_heads"]
    hd = d // h

    def halves(w):  # [h*hd, d] adjacent pairs -> first/second halves per head
        return w.view(h, hd // 2, 2, w.shape[1]).transpose(1, 2).reshape(w.shape)

    def norm(v):
        return v.view(hd // 2, 2).t().reshape(1, -1).repeat_interleave(h, 0)

    out = {}
    for i in range(s["n_layers"]):
        src, dst = f"layers.{i}.", f"model.layers.{i}."
        out[dst + "self_attn.q_proj.weight"] = halves(loaded[src + "attention.wq.weight"])
        out[dst + "self_attn.k_proj.weight"] = halves(loaded[src + "attention.wk.weight"])
        out[dst + "self_attn.v_proj.weight"] = loaded[src + "attention.wv.weight"]
        out[dst + "self_attn.o_proj.weight"] = loaded[src + "attention.wo.weight"]
        out[dst + "mlp.gate_proj.weight"] = loaded[src + "feed_forward.w1.weight"]
        out[dst + "mlp.down_proj.weight"] = loaded[src + "feed_forward.w2.weight"]
        out[dst + "mlp.up_proj.weight"] = loaded[src + "feed_forward.w3.weight"]
        out[dst + "input_layernorm.weight"] = loaded[src + "attention_norm.weight"]
        out[dst + "post_attention_layernorm.weight"] = loaded[src + "ffn_norm.weight"]
        for qk in ("q", "k"):
            for part in ("weight", "bias"):
                out[dst + f"self_attn.{qk}_norm.{part}"] = norm(loaded[src + f"attention.{qk}_normalization.{part}"])
    out["model.embed_tokens.weight"] = loaded["tok_embeddings.weight"]
    out["model.norm.weight"] = loaded["norm.weight"]
    out["lm_head.weight"] = loaded["output.weight"]
    vq = torch.load(root / "tokenizer" / "vqgan.ckpt", map_location="cpu")["state_dict"]
    for k, v in vq.items():
        if "decoder" not in k:
            out["model.vqmodel." + k] = v
    return out


def convert(root: str | Path, out_dir: str | Path, config_doc: dict) -> Path:
    """Write the transformers layout our ``chameleon`` adapter loads: ``model.safetensors`` (the converted
    tensors a ChameleonForConditionalGeneration keeps), ``config.json`` = ``config_doc`` (the official
    converter's, from the reference fixture, with the vocabulary map rebuilt here) and ``tokenizer.json``
    (Meta's text tokenizer with ``<reserved08707>`` renamed ``<image>``, as the converter does)."""
    from safetensors.torch import save_file

    root, out = Path(root), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = json.loads((root / "tokenizer" / "text_tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["<image>"] = vocab.pop("<reserved08707>")
    for t in tok["added_tokens"]:
        if t["content"] == "<reserved08707>":
            t["content"] = "<image>"
    (out / "tokenizer.json").write_text(json.dumps(tok))
    doc = dict(config_doc, vocabulary_map=vocab)
    (out / "config.json").write_text(json.dumps(doc, indent=1))
    state = converted_state(root)
    # the official script loads into a ChameleonForConditionalGeneration and saves that: the VQ-GAN's
    # training-only ``loss.*`` tensors have no place in it and are dropped
    keep = {k: v for k, v in state.items() if not k.startswith("model.vqmodel.loss.")}
    save_file({k: v.contiguous() for k, v in keep.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
