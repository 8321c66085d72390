"""Load Salesforce's original ``model_base_vqa_capfilt_large.pth`` (the file T2I-CompBench's vqa.yaml names)
into transformers' BLIP classes, for exact parity with the official scorer.

transformers' ``Salesforce/blip-vqa-capfilt-large`` was converted at 384 px: its ViT position embeddings were
interpolated from the 480-px original, and its vision LayerNorm eps is transformers' 1e-5 where BLIP's ViT
uses 1e-6.  Loading the original file keeps the 480-px embeddings and BLIP's eps.  Task option
``blip_model=/path/model_base_vqa_capfilt_large.pth`` selects this loader (tokenizer from ``blip_tokenizer``,
default the Salesforce repo id, whose vocabulary is BERT-base-uncased + [DEC] + [ENC] as BLIP's).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.tasks.common.scorer_models import ScorerUnavailable, load_pretrained

# The original BLIP ViT-B/16 + BERT-base (BLIPvqa_eval/configs/med_config.json, models/blip.py create_vit).
ORIGINAL_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       patch_size=16, image_size=480, layer_norm_eps=1e-6, hidden_act="gelu")
ORIGINAL_TEXT = dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, layer_norm_eps=1e-12, encoder_hidden_size=768,
                     max_position_embeddings=512, bos_token_id=30522, sep_token_id=102, pad_token_id=0)
# Buffers either side may hold that carry no weights.
_IGNORABLE = re.compile(r"(position_ids|attn_mask)$")

_VISION_RULES = (
    (r"^visual_encoder\.", "vision_model.encoder."),
    (r"\.blocks\.", ".layers."),
    (r"\.attn\.proj\.", ".self_attn.projection."),
    (r"\.attn\.", ".self_attn."),
    (r"\.norm1\.", ".layer_norm1."),
    (r"\.norm2\.", ".layer_norm2."),
    (r"^vision_model\.encoder\.norm\.", "vision_model.post_layernorm."),
    (r"^vision_model\.encoder\.patch_embed\.proj\.", "vision_model.embeddings.patch_embedding."),
    (r"^vision_model\.encoder\.pos_embed$", "vision_model.embeddings.position_embedding"),
    (r"^vision_model\.encoder\.cls_token$", "vision_model.embeddings.class_embedding"),
)


def hf_key(key: str) -> str:
    """An original BLIP parameter name as transformers' BlipForQuestionAnswering names it.

    The text encoder/decoder keep BLIP's BERT names; the ViT's timm names are mapped.
    """
    if not key.startswith("visual_encoder."):
        return key
    for pattern, repl in _VISION_RULES:
        key = re.sub(pattern, repl, key)
    return key


def convert_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    return {hf_key(k): v for k, v in state.items()}


def load_original(path: str, tokenizer_id: Optional[str] = None, device: Optional[str] = None,
                  vision: Optional[dict] = None, text: Optional[dict] = None):
    import torch
    from transformers import AutoTokenizer, BlipConfig, BlipForQuestionAnswering

    from unitoken_eval.tasks.t2i_compbench.blip_vqa import DEFAULT_MODEL, BlipVQA, default_device

    p = Path(path).expanduser()
    if not p.is_file():
        raise ScorerUnavailable(f"BLIP checkpoint {p} does not exist")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or "visual_encoder.pos_embed" not in state:
        raise ScorerUnavailable(f"{p} is not an original BLIP VQA checkpoint (no model.visual_encoder.pos_embed)")
    state = convert_state_dict(state)
    vcfg = dict(ORIGINAL_VISION, **(vision or {}))
    n_pos = state["vision_model.embeddings.position_embedding"].shape[1] - 1
    vcfg["image_size"] = int(math.isqrt(n_pos)) * int(vcfg["patch_size"])  # the checkpoint's native size
    config = BlipConfig(vision_config=vcfg, text_config=dict(ORIGINAL_TEXT, **(text or {})))
    model = BlipForQuestionAnswering(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not _IGNORABLE.search(k)]
    unexpected = [k for k in unexpected if not _IGNORABLE.search(k)]
    if missing or unexpected:
        raise ScorerUnavailable(
            f"{p}: does not fit BLIP VQA ViT-B (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    tok_id = tokenizer_id or DEFAULT_MODEL
    (tokenizer,) = load_pretrained("T2I-CompBench++ BLIP tokenizer", tok_id, "blip_tokenizer", DEFAULT_MODEL,
                                   AutoTokenizer.from_pretrained)
    return BlipVQA(model, tokenizer, device or default_device(), label=f"BLIP VQA original checkpoint {p.name}")
