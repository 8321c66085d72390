"""A tiny random Janus-Pro checkpoint in DeepSeek's original on-disk layout (what ``deepseek-ai/Janus-Pro-*`` ship
and DeepSeek's ``MultiModalityCausalLM.from_pretrained`` / ``VLChatProcessor.from_pretrained`` load), and the same
weights in transformers' converted layout.

Only the language model and the two aligners / generation head are shrunk.  The SigLIP-L tower (24 layers,
width 1024, 384 px, 576 image tokens) and the VQ-16 tokenizer keep their released sizes because both sides fix
them: DeepSeek's code builds ``VQ-16`` without arguments and SigLIP from a named preset, and transformers'
conversion script (``convert_janus_weights_to_hf.py``) reads only ``image_size`` / the aligner sizes from the
original config and loads strictly into default-sized vision and VQ configs.  About 390M parameters in fp32.

Nothing here imports DeepSeek's code or torchvision: the tensor names and shapes come from
``tests/data/janus_pro_tiny_deepseek_keys.json.gz`` (listed from DeepSeek's model by
``tests/parity/janus_reference.py``), the values from a per-tensor seed.  ``tests/parity/janus_reference.py``
runs DeepSeek's inference code on the original layout and transformers' official conversion script on it, and
checks that :func:`write_converted` writes the tensors and config that conversion writes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from unitoken_eval_testkit.paths import REPO

KEYS_FILE = REPO / "tests" / "data" / "janus_pro_tiny_deepseek_keys.json.gz"
REFERENCE_FILE = REPO / "tests" / "data" / "janus_pro_deepseek_reference.json"

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
IMAGE, BOI, EOI = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
USER, ASSISTANT = "<|User|>", "<|Assistant|>"
SPECIAL = (BOS, EOS, PAD, IMAGE, BOI, EOI, USER, ASSISTANT)  # ids 256.. in this order, after the 256 bytes
VOCAB = 256 + len(SPECIAL)
HIDDEN, INTERMEDIATE, LAYERS, HEADS = 64, 128, 2, 4
MAX_POSITIONS = 16384
IMAGE_SIZE, NUM_IMAGE_TOKENS, CODEBOOK = 384, 576, 16384


def original_config() -> dict:
    """config.json in DeepSeek's layout (Janus-Pro's, with the language model and aligners shrunk)."""
    return {
        "aligner_config": {"cls": "MlpProjector", "model_type": "aligner",
                           "params": {"depth": 2, "input_dim": 1024, "n_embed": HIDDEN, "projector_type": "mlp_gelu"}},
        "architectures": ["MultiModalityCausalLM"],
        "gen_aligner_config": {"cls": "MlpProjector", "model_type": "gen_aligner",
                               "params": {"depth": 2, "input_dim": 8, "n_embed": HIDDEN, "projector_type": "mlp_gelu"}},
        "gen_head_config": {"cls": "vision_head", "model_type": "gen_head",
                            "params": {"image_token_embed": HIDDEN, "image_token_size": CODEBOOK, "n_embed": HIDDEN}},
        "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision",
                              "params": {"image_token_size": CODEBOOK, "n_embed": 8}},
        "language_config": {"hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
                            "max_position_embeddings": MAX_POSITIONS, "model_type": "llama",
                            "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": HEADS,
                            "torch_dtype": "float32", "vocab_size": VOCAB},
        "model_type": "multi_modality",
        "torch_dtype": "float32",
        "transformers_version": "4.33.1",
        "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision",
                          "params": {"image_size": IMAGE_SIZE, "model_name": "siglip_large_patch16_384",
                                     "select_feature": "same", "select_layer": -1}},
    }


def key_spec() -> list[tuple[str, list[int]]]:
    return [(k, shape) for k, shape in json.loads(gzip.decompress(KEYS_FILE.read_bytes()))]


def _values(name: str, shape: list[int], seed: int):
    """Deterministic random values for one tensor.

    Norm weights 1; biases small; embeddings (token, codebook, position, pooling latent) unit variance; other
    matrices 1/sqrt(fan_in), so activations stay of order one through the random network and answers depend on
    the prompt and the pixels.
    """
    import torch

    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("codebook_used"):
        return torch.zeros(shape)
    if len(shape) == 1:
        if leaf == "weight" and ("norm" in name or "layernorm" in name):
            return torch.ones(shape)
        return torch.randn(shape, generator=g) * 0.02
    if any(s in name for s in ("embed_tokens", "gen_embed", "quantize.embedding", "pos_embed", "attn_pool.latent")):
        return torch.randn(shape, generator=g)
    fan_in = int(np.prod(shape[1:]))
    return torch.randn(shape, generator=g) / fan_in**0.5


def original_state_dict(seed: int = 0) -> dict:
    return {name: _values(name, shape, seed) for name, shape in key_spec()}


def _tokenizer_json() -> str:
    """A byte-level BPE without merges plus Janus's special tokens, BOS prepended (DeepSeek's tokenizer family)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 256)])
    return core.to_str()


def write_original(out_dir: str | Path, seed: int = 0) -> Path:
    """The files of a DeepSeek Janus-Pro release: config.json, pytorch_model.bin, tokenizer and processor files."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(original_config(), indent=2))
    torch.save(original_state_dict(seed), out / "pytorch_model.bin")
    (out / "tokenizer.json").write_text(_tokenizer_json())
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": MAX_POSITIONS,
        "tokenizer_class": "LlamaTokenizerFast", "use_default_system_prompt": False,
    }, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": [IMAGE, USER, ASSISTANT], "bos_token": BOS, "eos_token": EOS,
        "pad_token": PAD,
    }, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "background_color": [127, 127, 127], "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "VLMImageProcessor", "image_size": IMAGE_SIZE, "image_std": [0.5, 0.5, 0.5],
        "min_size": 14, "processor_class": "VLChatProcessor", "rescale_factor": 1 / 255,
    }, indent=2))
    (out / "processor_config.json").write_text(json.dumps({
        "add_special_token": False, "ignore_id": -100, "image_tag": IMAGE, "mask_prompt": True,
        "num_image_tokens": NUM_IMAGE_TOKENS, "processor_class": "VLChatProcessor", "sft_format": "deepseek",
    }, indent=2))
    return out


SEED = 0


def _smooth_image(seed: int, width: int, height: int):
    """A smooth random RGB image (random 8x8 colour grid, bilinear upsampling)."""
    from PIL import Image

    grid = (np.random.RandomState(seed).rand(8, 8, 3) * 255).astype(np.uint8)
    return Image.fromarray(grid, "RGB").resize((width, height), Image.BILINEAR)


def reference_cases(image_dir: str | Path) -> dict:
    """The understanding cases (question + one image written to ``image_dir``) and the generation prompts."""
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    specs = [(1, 384, 384, "Describe this image."), (2, 512, 320, "What is in the center of the picture?")]
    und = []
    for seed, w, h, question in specs:
        img = _smooth_image(seed, w, h)
        path = image_dir / f"image_{seed}_{w}x{h}.png"
        img.save(path)
        und.append({"question": question, "image": {"seed": seed, "width": w, "height": h},
                    "image_sha256": hashlib.sha256(np.asarray(img).tobytes()).hexdigest(), "image_path": str(path)})
    return {"understanding": und}


def case_image(spec: dict):
    return _smooth_image(spec["seed"], spec["width"], spec["height"])


def pixel_digest(img) -> dict:
    """uint8 [H, W, 3]: sha256 of the whole array, its per-channel sums, and every 8th pixel (rows and columns)."""
    import base64

    a = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    sub = np.ascontiguousarray(a[::8, ::8])
    return {"shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
            "channel_sums": [int(s) for s in a.reshape(-1, a.shape[-1]).sum(0)],
            "stride8_shape": list(sub.shape), "stride8_b64": base64.b64encode(sub.tobytes()).decode()}


def stride8(digest: dict):
    import base64

    return np.frombuffer(base64.b64decode(digest["stride8_b64"]), np.uint8).reshape(digest["stride8_shape"])


def state_dict_digest(sd: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].contiguous()
        h.update(f"{k}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ transformers' converted layout
CONVERTED_FILES_DIR = REPO / "tests" / "data" / "janus_pro_tiny_converted"
# the non-weight files transformers' conversion script writes (its chat_template.jinja is left out: unused here)
CONVERTED_FILES = ("config.json", "generation_config.json", "processor_config.json", "tokenizer_config.json",
                   "tokenizer.json")

_VQ_RENAMES = [(r"\.res\.", ".block."), (r"\.mid\.0\.", ".mid.block_1."),
               (r"\.mid\.1\.", ".mid.attn_1."), (r"\.mid\.2\.", ".mid.block_2.")]


def converted_name(name: str) -> str | None:
    """The transformers name of one DeepSeek tensor (None: dropped).  Our own rules; the generator checks them
    against what transformers' conversion script writes."""
    import re

    if name.startswith("vision_model.vision_tower."):
        rest = name[len("vision_model.vision_tower."):]
        if rest.startswith("attn_pool."):
            return None
        if rest == "pos_embed":
            return "model.vision_model.embeddings.position_embedding.weight"
        if rest.startswith("patch_embed.proj."):
            return "model.vision_model.embeddings.patch_embedding." + rest.rsplit(".", 1)[1]
        if rest.startswith("norm."):
            return "model.vision_model.post_layernorm." + rest.rsplit(".", 1)[1]
        m = re.match(r"blocks\.(\d+)\.(.+)$", rest)
        layer, sub = m.group(1), m.group(2)
        sub = (re.sub(r"^attn\.proj\.", "attn.projection_layer.", sub).replace("attn.", "self_attn.")
               .replace("norm1.", "layer_norm1.").replace("norm2.", "layer_norm2."))
        return f"model.vision_model.encoder.layers.{layer}.{sub}"
    if name.startswith("gen_vision_model."):
        if name.endswith("quantize.codebook_used"):
            return None
        new = "model.vqmodel." + name[len("gen_vision_model."):]
        new = new.replace("encoder.conv_blocks.", "encoder.down.").replace("decoder.conv_blocks.", "decoder.up.")
        for old, rep in _VQ_RENAMES:
            new = re.sub(old, rep, new)
        return new
    for prefix, target in (("gen_aligner.", "model.generation_aligner."), ("aligner.", "model.aligner.")):
        if name.startswith(prefix):
            rest = name[len(prefix):].replace("layers.0.", "fc1.").replace("layers.2.", "hidden_layers.0.")
            return target + rest
    if name.startswith("gen_head."):
        return "model.generation_head." + name[len("gen_head."):].replace("output_mlp_projector.", "proj_out.")
    if name.startswith("gen_embed."):
        return "model.generation_embeddings." + name[len("gen_embed."):]
    if name == "language_model.lm_head.weight":
        return "lm_head.weight"
    if name.startswith("language_model.model."):
        return "model.language_model." + name[len("language_model.model."):]
    raise KeyError(name)


def converted_state_dict(original: dict, keep_lm_head: bool) -> dict:
    """DeepSeek's tensors under transformers' names: fused qkv / kv split, the position embedding unbatched,
    the pooling head and codebook usage counter dropped.  The official script saves a tied model, so the
    separate ``lm_head`` is dropped unless ``keep_lm_head`` (its config then says ``tie_word_embeddings=false``)."""
    out = {}
    for name, t in original.items():
        new = converted_name(name)
        if new is None or (new == "lm_head.weight" and not keep_lm_head):
            continue
        if ".self_attn.qkv." in new:
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), t.chunk(3, dim=0)):
                out[new.replace("qkv", part)] = chunk.contiguous()
        elif new.endswith("position_embedding.weight"):
            out[new] = t.squeeze(0).contiguous()
        else:
            out[new] = t
    return out


def write_converted(out_dir: str | Path, seed: int = 0, keep_lm_head: bool = False) -> Path:
    """The tiny checkpoint as transformers' conversion script writes it (``keep_lm_head``: as that script writes it
    with ``tie_word_embeddings=False`` given to ``JanusConfig``, see ``tests/parity/janus_reference.py``)."""
    import shutil

    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in CONVERTED_FILES:
        shutil.copyfile(CONVERTED_FILES_DIR / name, out / name)
    if keep_lm_head:
        cfg = json.loads((out / "config.json").read_text())
        cfg["tie_word_embeddings"] = False
        (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_file(converted_state_dict(original_state_dict(seed), keep_lm_head), out / "model.safetensors",
              metadata={"format": "pt"})
    return out


def converted_fingerprint(ckpt: str | Path) -> dict:
    """What a converted checkpoint holds: its tensors' digest and its config / generation / processor files."""
    from safetensors.torch import load_file

    ckpt = Path(ckpt)
    drop = {"transformers_version"}
    files = {}
    for name in CONVERTED_FILES:
        text = (ckpt / name).read_text()
        if name == "tokenizer.json":
            files[name] = hashlib.sha256(text.encode()).hexdigest()
        else:
            files[name] = {k: v for k, v in json.loads(text).items() if k not in drop}
    return {"tensors": state_dict_digest(load_file(ckpt / "model.safetensors")), "files": files}
