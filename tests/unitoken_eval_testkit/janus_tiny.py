"""Write a tiny random Janus checkpoint in the layout of the converted hub checkpoints
(``deepseek-community/Janus-Pro-*``: config.json, model.safetensors, tokenizer + processor files,
generation_config.json), so the adapter's real loading path can be exercised offline.

The tokenizer is a byte-level BPE without merges plus the special tokens Janus uses (DeepSeek's BOS/EOS/pad,
``<image_placeholder>``, ``<begin_of_image>``, ``<end_of_image>``, the ``<|User|>``/``<|Assistant|>`` roles).
"""

from __future__ import annotations

from pathlib import Path

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
IMAGE, BOI, EOI = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
ROLES = ("<|User|>", "<|Assistant|>")


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI},
    )
    tok.add_special_tokens({"additional_special_tokens": list(ROLES)})
    from tokenizers.processors import TemplateProcessing

    core = tok.backend_tokenizer
    core.post_processor = TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.convert_tokens_to_ids(BOS))]
    )
    return tok


def write_tiny_janus(
    out_dir: str | Path,
    seed: int = 0,
    image_size: int = 64,
    gen_patches: int = 4,
    gen_channel_multiplier: tuple[int, ...] = (1, 1, 2),
) -> Path:
    """A Janus model small enough for CPU tests.

    Understanding tiles ``image_size`` with 16-pixel patches; generation draws ``gen_patches``^2 tokens (the
    same count, as Janus ties the two) and decodes them to ``gen_patches * 2^(len(multiplier)-1)`` pixels.
    """
    import torch
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusProcessor,
        JanusVisionConfig,
        JanusVQVAEConfig,
        LlamaConfig,
    )
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer()
    n_tokens = (image_size // 16) ** 2
    if gen_patches**2 != n_tokens:
        raise ValueError(f"gen_patches^2 ({gen_patches**2}) must equal the understanding token count ({n_tokens})")
    hidden = 64
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    vision = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=image_size, patch_size=16,
        mlp_ratio=2.0, projection_dim=hidden, depth=2, num_image_tokens=n_tokens,
    )
    vq = JanusVQVAEConfig(
        embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32,
        channel_multiplier=list(gen_channel_multiplier), num_res_blocks=1, num_patches=gen_patches,
        projection_dim=hidden, image_token_embed_dim=hidden, num_hidden_layers=1,
    )
    config = JanusConfig(
        text_config=text, vision_config=vision, vq_config=vq,
        image_token_id=tok.convert_tokens_to_ids(IMAGE),
        tie_word_embeddings=False,  # Janus ships its own lm_head; tied random weights would echo the input
    )
    torch.manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config).eval()
        # transformers' init (std 0.02) makes every logit nearly equal, so any input gives the same answer;
        # unit-variance activations make answers and images depend on the prompt and the pixels
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2 and "norm" not in name:
                    p.normal_(0.0, 1.0 / p[0].numel() ** 0.5 if "embed" not in name else 1.0)
    gc = model.generation_config
    gc.pad_token_id, gc.bos_token_id, gc.eos_token_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
    gc.generation_kwargs = {"boi_token_id": tok.convert_tokens_to_ids(BOI), "num_image_tokens": n_tokens}
    gc.guidance_scale = 5
    gc._from_model_config = False  # as the converted checkpoints: the file, not the model config, rules
    model.save_pretrained(out)
    image_processor = JanusImageProcessorPil(size={"height": image_size, "width": image_size})
    JanusProcessor(image_processor=image_processor, tokenizer=tok, num_image_tokens=n_tokens).save_pretrained(out)
    return out
