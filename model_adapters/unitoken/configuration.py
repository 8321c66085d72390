"""Finding and reading a UniToken-layout checkpoint (also Lumina-mGPT's, which shares the vendored layout).

The release is a transformers-4.43 ``ChameleonForConditionalGeneration`` subclass saved with extra modules
(``vit.*`` SigLIP tower, ``adapter.{0,2}.*`` MLP) and the vendored q/k LayerNorm shape ``[1, head_dim]``.
Current transformers cannot load it as is, so we read the safetensors ourselves, reshape the norms and hand
each part to the module that owns it.  Every problem is reported as an :class:`AdapterError` naming the file
or key, because a silently random weight would produce plausible-looking but meaningless scores.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from unitoken_eval.harness.plugin import AdapterError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# Keys the vendored config adds to ChameleonConfig; transformers ignores them but we keep them for the record.
_VENDORED_KEYS = ("z_loss_weight", "mask_image_logits", "dropout")


def resolve_checkpoint(path: str, *, what: str = "path") -> Path:
    """A local directory, or a hub id fetched with ``huggingface_hub.snapshot_download`` (cached by the hub)."""
    if not path:
        raise AdapterError(f"model argument {what}= is required (a checkpoint directory or a Hugging Face hub id)")
    local = Path(os.path.expanduser(path))
    if local.exists():
        if not local.is_dir():
            raise AdapterError(f"{what}={path}: not a directory")
        return local
    if path.startswith((".", "/", "~")) or path.count("/") != 1:
        raise AdapterError(f"{what}={path}: no such directory (and not a hub id of the form owner/name)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise AdapterError(f"{what}={path}: huggingface_hub is needed to download hub checkpoints") from exc
    try:
        return Path(snapshot_download(repo_id=path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.yaml",
                                                                     "*.ckpt", "*.txt"]))
    except Exception as exc:
        raise AdapterError(f"{what}={path}: could not download from the Hugging Face hub: {exc}") from exc


def hub_revision(ckpt: Path) -> Optional[str]:
    """The commit of a ``snapshot_download`` directory (``.../models--owner--name/snapshots/<commit>``)."""
    for parts in (ckpt.parts, ckpt.resolve().parts):
        for i in range(len(parts) - 2):
            if parts[i].startswith("models--") and parts[i + 1] == "snapshots":
                return parts[i + 2]
    return None


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AdapterError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc})") from exc


def read_release_config(ckpt: Path) -> dict[str, Any]:
    cfg = read_json(ckpt / "config.json")
    if not isinstance(cfg.get("vocabulary_map"), dict) or not cfg["vocabulary_map"]:
        raise AdapterError(f"{ckpt / 'config.json'}: no vocabulary_map (expected a Chameleon-family config)")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if key not in cfg:
            raise AdapterError(f"{ckpt / 'config.json'}: missing key {key!r}")
    return cfg


def chameleon_config(release: dict[str, Any]):
    """transformers' ChameleonConfig for the LLM; vendored extras dropped, attention on sdpa."""
    from transformers import ChameleonConfig

    kw = {k: v for k, v in release.items() if k not in _VENDORED_KEYS and not k.startswith("_")
          and k not in ("architectures", "transformers_version", "model_type", "torch_dtype", "dtype")}
    cfg = ChameleonConfig(**kw)
    cfg._attn_implementation = "sdpa"
    return cfg


def weight_files(ckpt: Path) -> dict[str, Path]:
    """Key -> shard file, from the index (sharded release) or the single file; missing shards are named."""
    index = ckpt / INDEX_FILE
    if index.is_file():
        data = read_json(index)
        wm = data.get("weight_map")
        if not isinstance(wm, dict) or not wm:
            raise AdapterError(f"{index}: no weight_map")
        out = {}
        for key, shard in wm.items():
            p = ckpt / shard
            out[key] = p
        missing = sorted({str(p) for p in out.values() if not p.is_file()})
        if missing:
            raise AdapterError(f"{index} names shard {missing[0]} which does not exist"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return out
    single = ckpt / SINGLE_FILE
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            return {k: single for k in f.keys()}
    raise AdapterError(f"{ckpt}: neither {INDEX_FILE} nor {SINGLE_FILE} (safetensors weights) found")


def read_weights(files: dict[str, Path], prefix: str, *, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """All tensors whose key starts with ``prefix`` (prefix stripped), read shard by shard."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for key, f in files.items():
        if key.startswith(prefix):
            by_file.setdefault(f, []).append(key)
    out = {}
    for f, keys in by_file.items():
        with safe_open(str(f), framework="pt") as h:
            present = set(h.keys())
            for key in keys:
                if key not in present:
                    raise AdapterError(f"{f}: missing weight {key} (listed in the index but not in this shard)")
                t = h.get_tensor(key)
                out[key[len(prefix):]] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


def convert_qk_norms(state: dict[str, torch.Tensor], num_heads: int) -> dict[str, torch.Tensor]:
    """Vendored q_norm/k_norm are ``[model_parallel, head_dim]`` (``[1, 128]``); transformers wants
    ``[num_heads, head_dim]``: each model-parallel row serves ``num_heads // rows`` heads."""
    for key, t in list(state.items()):
        if (".q_norm." in key or ".k_norm." in key) and t.dim() == 2 and t.shape[0] != num_heads:
            if num_heads % t.shape[0]:
                raise AdapterError(f"weight {key} has shape {tuple(t.shape)}, not divisible into {num_heads} heads")
            state[key] = t.repeat_interleave(num_heads // t.shape[0], dim=0)
    return state


def check_keys(got: dict[str, Any], expected: dict[str, torch.Tensor], source: str, prefix: str = "",
               ignore: tuple[str, ...] = ()) -> None:
    """Missing or mis-shaped keys are errors naming the first one; unexpected keys too."""
    missing = [k for k in expected if k not in got and not k.startswith(ignore)]
    if missing:
        raise AdapterError(f"{source}: missing weight {prefix}{missing[0]}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = [k for k in got if k not in expected and not k.startswith(ignore)]
    if extra:
        raise AdapterError(f"{source}: unexpected weight {prefix}{extra[0]}"
                           + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for k, v in got.items():
        if k in expected and tuple(expected[k].shape) != tuple(v.shape):
            raise AdapterError(f"{source}: weight {prefix}{k} has shape {tuple(v.shape)}, "
                               f"expected {tuple(expected[k].shape)}")


def siglip_heads(hidden: int) -> int:
    """The head count the weights cannot tell us.  so400m (1152) has 16; SigLIP base/large use 64-wide heads;
    anything else (tiny test towers) gets the largest of 4/2/1 heads that divides the width."""
    if hidden == 1152:
        return 16
    if hidden % 64 == 0:
        return hidden // 64
    for h in (4, 2, 1):
        if hidden % h == 0:
            return h
    return 1  # pragma: no cover


def siglip_config(vit_state: dict[str, torch.Tensor], vision_config: Optional[str], source: str):
    """SigLIP vision config from a directory (``config.json``, full SigLIP or vision-only) or from the weights."""
    from transformers import SiglipVisionConfig

    if vision_config:
        p = Path(os.path.expanduser(vision_config))
        p = p / "config.json" if p.is_dir() else p
        data = read_json(p)
        data = data.get("vision_config", data)
        data = {k: v for k, v in data.items() if k not in ("model_type", "architectures", "transformers_version")}
        return SiglipVisionConfig(**data)
    need = ["embeddings.patch_embedding.weight", "embeddings.position_embedding.weight",
            "encoder.layers.0.mlp.fc1.weight"]
    for k in need:
        if k not in vit_state:
            raise AdapterError(f"{source}: missing weight vit.{k} (needed to infer the SigLIP config; "
                               "or pass vision_config=DIR)")
    pe = vit_state["embeddings.patch_embedding.weight"]
    hidden, channels, patch = pe.shape[0], pe.shape[1], pe.shape[2]
    n_pos = vit_state["embeddings.position_embedding.weight"].shape[0]
    side = math.isqrt(n_pos)
    if side * side != n_pos:
        raise AdapterError(f"{source}: vit.embeddings.position_embedding has {n_pos} rows, not a square grid")
    # so400m-patch14-384: 27 x 27 positions but image_size 384 (27 * 14 = 378); the release's images are
    # multiples of 16, so take the first such size with the same patch count
    image_size = side * patch
    up = -(-image_size // 16) * 16
    if up // patch == side:
        image_size = up
    layers = 1 + max(int(k.split(".")[2]) for k in vit_state if k.startswith("encoder.layers."))
    return SiglipVisionConfig(
        hidden_size=hidden, intermediate_size=vit_state["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers, num_attention_heads=siglip_heads(hidden), num_channels=channels,
        image_size=image_size, patch_size=patch, vision_use_head=any(k.startswith("head.") for k in vit_state),
    )


@dataclass
class ModelArgs:
    """Parsed ``--model-args`` shared by the Chameleon-family adapters."""

    path: str
    vqgan: Optional[str] = None
    vision_config: Optional[str] = None
    dtype: str = "auto"
    device: str = "auto"
    anyres: str = "auto"
    compile: str = "auto"
    # "auto": from the GPU's free memory after loading (model_adapters/chameleon_family/batching.py); 8 on CPU
    batch_size: Any = "auto"
    gen_batch_size: Any = "auto"
    # KV cache of image generation: bf16 = the model's dtype (exact); int8 = model_adapters/chameleon_family/kv_cache.py
    # (more images per batch and per second, logits not exact).
    kv_cache: str = "bf16"
    # Understanding prefill GEMMs: bf16 = the model's dtype; fp8 = float8 with per-token/per-channel scales.
    prefill: str = "bf16"
    extra: dict[str, str] = field(default_factory=dict)

    KNOWN = ("path", "vqgan", "vision_config", "dtype", "device", "anyres", "compile", "batch_size", "gen_batch_size",
             "kv_cache", "prefill")

    @classmethod
    def parse(cls, args: dict[str, Any], allowed_extra: tuple[str, ...] = ()) -> "ModelArgs":
        unknown = [k for k in args if k not in cls.KNOWN and k not in allowed_extra]
        if unknown:
            raise AdapterError(f"unknown model argument {unknown[0]!r} (known: {', '.join(cls.KNOWN + allowed_extra)})")
        kw = {k: args[k] for k in cls.KNOWN if k in args}
        for k in ("batch_size", "gen_batch_size"):
            if k in kw and str(kw[k]).lower() == "auto":
                kw[k] = "auto"
            elif k in kw:
                try:
                    kw[k] = int(kw[k])
                except ValueError as exc:
                    raise AdapterError(f"model argument {k}={kw[k]!r} is not an integer or auto") from exc
                if kw[k] < 1:
                    raise AdapterError(f"model argument {k} must be >= 1")
        if "path" not in kw:
            raise AdapterError("model argument path= is required (checkpoint directory or hub id)")
        for k, allowed in (("dtype", ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16", "float64")),
                           ("anyres", ("auto", "true", "false")), ("compile", ("auto", "true", "false")),
                           ("kv_cache", ("bf16", "int8")), ("prefill", ("bf16", "fp8"))):
            if k in kw and str(kw[k]).lower() not in allowed:
                raise AdapterError(f"model argument {k}={kw[k]!r}: expected one of {', '.join(allowed)}")
        return cls(**kw, extra={k: args[k] for k in allowed_extra if k in args})

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise AdapterError(f"model argument device={self.device}: CUDA is not available")
        return dev

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        d = self.dtype.lower()
        if d == "auto":
            return torch.bfloat16 if device.type == "cuda" else torch.float32
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16, "float64": torch.float64}[d]
