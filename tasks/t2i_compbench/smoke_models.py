"""Offline stand-ins of the T2I-CompBench++ scorer models for the smoke suite: real classes, random weights.

BLIP VQA, CLIP and DPT are built from small configs with tokenizers written on the spot, so the whole scoring
path (preprocessing, tokenisation, the [ENC]/[DEC] handling, feature normalisation, depth post-processing)
runs without any download.  Results produced with them are labelled "smoke scorer: random weights, numbers
meaningless".
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

SMOKE_LABEL = "smoke scorer: random weights, numbers meaningless"
_WORDS = (
    "a an the and on of in to is was with next near behind front side left right top bottom hidden "
    "red blue green yellow black white brown round square wooden metal glass plastic fluffy "
    "dog cat car bird apple cup book chair table person man woman girl boy bench bowl two three one four "
    "sits sitting holding looking ? . ,"
).split()


def _seed(torch):
    torch.manual_seed(0)


@lru_cache(maxsize=1)
def blip_vqa(device: str = "cpu"):
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering

    from unitoken_eval.tasks.t2i_compbench.blip_vqa import BlipVQA

    tmp = Path(tempfile.mkdtemp(prefix="t2i-smoke-bert-"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(_WORDS))
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer.from_pretrained(str(tmp))
    _seed(torch)
    config = BlipConfig(
        # 384-px position embeddings, as the converted Salesforce checkpoint: exercises the 480-px interpolation.
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=384, patch_size=32),
        text_config=dict(vocab_size=30524, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=16, max_position_embeddings=64,
                         bos_token_id=30522, sep_token_id=3, pad_token_id=0),
    )
    model = BlipForQuestionAnswering(config)
    return BlipVQA(model, tokenizer, device, label=SMOKE_LABEL)


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE vocabularies use for bytes (GPT-2's scheme)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    extra = 0
    out = {}
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def _clip_tokenizer(tmp: Path):
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(tmp)), vocab


@lru_cache(maxsize=1)
def clip(device: str = "cpu"):
    import torch
    from transformers import CLIPConfig, CLIPModel

    from unitoken_eval.tasks.t2i_compbench.clipscore import ClipScorer

    tmp = Path(tempfile.mkdtemp(prefix="t2i-smoke-clip-"))
    tokenizer, vocab = _clip_tokenizer(tmp)
    _seed(torch)
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=8,
    )
    return ClipScorer(CLIPModel(config), tokenizer, device, dtype="float32", label=SMOKE_LABEL)


@lru_cache(maxsize=1)
def depth(device: str = "cpu"):
    import torch
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

    from unitoken_eval.tasks.t2i_compbench.depth import MidasDepth

    _seed(torch)
    # A hybrid (BiT + ViT) DPT like Intel/dpt-hybrid-midas, with 384-px position embeddings run at 480 px.
    backbone = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[16, 32, 64],
                         embedding_size=8, out_features=["stage1", "stage2", "stage3"], num_groups=2)
    config = DPTConfig(is_hybrid=True, backbone_config=backbone, hidden_size=32, num_hidden_layers=4,
                       num_attention_heads=2, intermediate_size=32, image_size=384, patch_size=16,
                       backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 32, 32], fusion_hidden_size=16,
                       readout_type="project", reassemble_factors=[1, 1, 1, 0.5], backbone_featmap_shape=[1, 64, 24, 24],
                       neck_ignore_stages=[0, 1])
    return MidasDepth(DPTForDepthEstimation(config), device, label=SMOKE_LABEL)
