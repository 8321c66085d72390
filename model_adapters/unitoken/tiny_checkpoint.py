"""Write a deterministic random tiny checkpoint in the UniToken release layout (or Lumina-mGPT's).

What makes it the release layout: config.json = ChameleonConfig fields + ``vocabulary_map`` + the vendored
extras; two safetensors shards with an index; keys ``model.*`` (no ``model.vqmodel.*``), ``lm_head.weight``,
``vit.*`` (SigLIP vision transformer incl. ``head``), ``adapter.{0,2}.*``; q/k norms saved ``[1, head_dim]``;
``tokenizer.json`` (a real ``tokenizers`` byte-level BPE with Chameleon's special tokens at their ids) and its
companions; and Meta's VQ-GAN files in ``vqgan/``.  The loader reads it exactly as a downloaded release.

    python -m unitoken_eval.model_adapters.unitoken.tiny_checkpoint OUT_DIR [--seed N] [--no-vision]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from unitoken_eval.model_adapters.chameleon_family.vq import build_vocabulary_map, write_tiny_vqgan

TEXT_BASE = 17000  # byte-level text tokens live above the reserved range, as real text ids do
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<eoss>", "<racm3:break>", "<reserved08706>", "<reserved08799>")
TINY = dict(vocab_size=65536, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                   image_size=384, patch_size=14)


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def vocabulary(extra_text: bool = True, size: int = 65536) -> dict[str, int]:
    """Chameleon's fixed ids + the 256 byte-level characters + two-character tokens up to ``size``.

    The pairs have no merges, so encoding still yields single bytes; they exist so that every id a random
    model can emit decodes to some text (as every id of the real 65536-entry tokenizer does), and answers
    of the tiny model exercise answer parsing instead of being empty."""
    alphabet = _byte_alphabet()
    text = {ch: TEXT_BASE + i for i, ch in enumerate(alphabet)} if extra_text else None
    vocab = build_vocabulary_map(n_codes=8192, text_tokens=text, image_placeholder=False)
    if extra_text:
        nxt = max(vocab.values()) + 1
        pairs = (a + b for a in alphabet for b in alphabet)
        for i in range(nxt, size):
            vocab[next(pairs)] = i
    return vocab


def write_tokenizer(out: Path, vocab: dict[str, int], extra_specials: tuple[str, ...] = ()) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab=dict(vocab), merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS + extra_specials])
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": False}, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=1))


def _randomise(module: nn.Module, gen: torch.Generator, std: float) -> None:
    """Unit-scale weights (not transformers' 0.02): answers then depend on the input, ties are unlikely.

    Values are drawn on ``gen``'s device (a CUDA generator fills a 7B model in seconds)."""
    def randn(shape):
        return torch.randn(shape, generator=gen, device=gen.device)

    with torch.no_grad():
        for name, p in module.named_parameters():
            if ("q_norm" in name or "k_norm" in name) and name.endswith("weight"):
                # sharp attention: over a ~4k-token image prefix the text must still matter
                p.copy_(3.0 + 0.5 * randn(p.shape))
            elif name.endswith("weight") and p.dim() == 1:  # norms
                p.copy_(1.0 + 0.2 * randn(p.shape))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(randn(p.shape) * (std / fan_in ** 0.5 if "embed" not in name else std))
            else:
                p.copy_(0.1 * randn(p.shape))


def write_tiny_release(out_dir: str | Path, seed: int = 0, vision: bool = True, *, vqgan: bool = True,
                       llm: dict | None = None, vision_shape: dict | None = None, dtype: torch.dtype = torch.float32,
                       device: str = "cpu", vqgan_shape: dict | None = None, overwrite: bool = True) -> Path:
    """Write the checkpoint to ``out_dir`` (created; written in a temporary directory then moved in place).

    ``llm`` / ``vision_shape`` / ``vqgan_shape`` override the tiny shapes (a full-size random UniToken-7B for
    GPU benchmarks: see bench/unitoken_release_layout.py); ``device``/``dtype`` say where weights are made."""
    from transformers import ChameleonConfig, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.chameleon.modeling_chameleon import ChameleonModel
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out.parent))
    vocab = vocabulary()
    shape = dict(llm or TINY)
    cfg_doc = dict(shape, num_key_value_heads=shape["num_attention_heads"], max_position_embeddings=4096,
                   rope_theta=10000.0, rms_norm_eps=1e-5, hidden_act="silu", qk_layernorm=True, swin_norm=False,
                   model_parallel_size=1, attention_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=1,
                   tie_word_embeddings=False, z_loss_weight=1e-5, mask_image_logits=False, dropout=0.05,
                   architectures=["ChameleonXLLMXForConditionalGeneration"], model_type="chameleon",
                   torch_dtype=str(dtype).replace("torch.", ""), vocabulary_map=vocab)
    gen = torch.Generator(device=device).manual_seed(seed)
    cfg = ChameleonConfig(**{k: v for k, v in cfg_doc.items() if k not in ("z_loss_weight", "mask_image_logits",
                                                                            "dropout", "architectures")})
    with torch.device(device):
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = ChameleonModel(cfg)
            del model.vqmodel
            head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        finally:
            torch.set_default_dtype(old)
    llm = model
    _randomise(llm, gen, 1.0)
    _randomise(head, gen, 2.0)
    state = {}
    hd = cfg.hidden_size // cfg.num_attention_heads
    for k, v in llm.state_dict().items():
        if k.startswith("rotary_emb."):
            continue
        if ".q_norm." in k or ".k_norm." in k:  # vendored shape [model_parallel_size, head_dim]
            v = v[:1].clone() if v.dim() == 2 else v.reshape(-1, hd)[:1].clone()
        state["model." + k] = v.contiguous().cpu()
    state["lm_head.weight"] = head.weight.detach().contiguous().cpu()
    shard2 = {"lm_head.weight"}
    if vision:
        vcfg = SiglipVisionConfig(**(vision_shape or TINY_VISION))
        vit = SiglipVisionModel(vcfg).to(device=device, dtype=dtype)
        vit = getattr(vit, "vision_model", vit)  # transformers < 5.2x wraps the tower
        _randomise(vit, gen, 1.0)
        for k, v in vit.state_dict().items():
            if k == "embeddings.position_ids":
                continue
            state["vit." + k] = v.contiguous().cpu()
            shard2.add("vit." + k)
        adapter = nn.Sequential(nn.Linear(vcfg.hidden_size, cfg.hidden_size), nn.GELU(),
                                nn.Linear(cfg.hidden_size, cfg.hidden_size)).to(device=device, dtype=dtype)
        _randomise(adapter, gen, 1.0)
        for k, v in adapter.state_dict().items():
            state["adapter." + k] = v.contiguous().cpu()
            shard2.add("adapter." + k)
    names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    shards = ({k: v for k, v in state.items() if k not in shard2}, {k: state[k] for k in shard2})
    del model, head
    weight_map = {}
    for name, part in zip(names, shards):
        save_file({k: v.detach().clone() for k, v in part.items()}, str(tmp / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    (tmp / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=1))
    (tmp / "config.json").write_text(json.dumps(cfg_doc, indent=1))
    write_tokenizer(tmp, vocab)
    if vqgan:
        write_tiny_vqgan(tmp / "vqgan", seed=seed, **(vqgan_shape or {}))
    if out.exists() and (out / "model.safetensors.index.json").is_file() and not overwrite:
        shutil.rmtree(tmp)  # another process (a parallel worker) finished the same checkpoint first
        return out
    if out.exists():
        shutil.rmtree(out)
    try:
        tmp.rename(out)
    except OSError:
        if not (out / "model.safetensors.index.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_tiny_unitoken(out_dir: str | Path, seed: int = 0, anyres: bool = True, **kw) -> Path:
    """UniToken-{AnyRes,base} tiny checkpoint.  Both variants have the same modules and keys (the release
    differs only in training), so ``anyres`` changes nothing on disk: the adapter picks the SigLIP views from
    its ``anyres`` model argument (``auto`` = ``-base-`` in the checkpoint name means one squashed view)."""
    del anyres
    return write_tiny_release(out_dir, seed=seed, vision=True, **kw)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-vision", action="store_true", help="Lumina-mGPT layout: no vit.* / adapter.*")
    a = ap.parse_args(argv)
    print(write_tiny_release(a.out_dir, a.seed, vision=not a.no_vision))


if __name__ == "__main__":
    main()


def write_tiny_chameleon(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny checkpoint in transformers' converted Chameleon layout (``facebook/chameleon-7b``): one
    model.safetensors with ``model.*`` incl. the VQ encoder ``model.vqmodel.*``, ``lm_head.weight``, q/k norms
    ``[num_heads, head_dim]``, ``<image>`` at 8711 in vocabulary_map, tokenizer.json."""
    from transformers import ChameleonConfig
    from transformers.models.chameleon.modeling_chameleon import ChameleonModel
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocabulary_map(n_codes=8192, image_placeholder=True,
                                 text_tokens={ch: TEXT_BASE + i for i, ch in enumerate(_byte_alphabet())})
    vq = dict(embed_dim=8, num_embeddings=8192, double_latent=False, latent_channels=8, resolution=512,
              in_channels=3, base_channels=32, channel_multiplier=[1, 1, 1, 1, 2], num_res_blocks=1,
              attn_resolutions=[], dropout=0.0)
    doc = dict(TINY, num_key_value_heads=TINY["num_attention_heads"], max_position_embeddings=4096,
               rope_theta=10000.0, rms_norm_eps=1e-5, hidden_act="silu", qk_layernorm=True, swin_norm=False,
               model_parallel_size=1, attention_bias=False, bos_token_id=0, eos_token_id=2, pad_token_id=1,
               tie_word_embeddings=False, vq_config=vq, vocabulary_map=vocab, model_type="chameleon",
               architectures=["ChameleonForConditionalGeneration"], torch_dtype="float32")
    cfg = ChameleonConfig(**{k: v for k, v in doc.items() if k != "architectures"})
    gen = torch.Generator().manual_seed(seed)
    llm = ChameleonModel(cfg)
    vq_state = {k: v.clone() for k, v in llm.vqmodel.state_dict().items()}
    _randomise(llm, gen, 1.0)
    llm.vqmodel.load_state_dict(vq_state)  # keep transformers' init for the conv encoder (stable activations)
    head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
    _randomise(head, gen, 2.0)
    state = {"model." + k: v.contiguous() for k, v in llm.state_dict().items() if not k.startswith("rotary_emb.")}
    state["lm_head.weight"] = head.weight.detach().contiguous()
    save_file({k: v.detach().clone() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(doc, indent=1))
    write_tokenizer(out, vocab, extra_specials=("<image>",))
    return out
