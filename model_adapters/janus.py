"""Janus / Janus-Pro through transformers' ``JanusForConditionalGeneration`` (converted checkpoints such as
``deepseek-community/Janus-Pro-1B`` / ``-7B``, or a local directory in that layout).

Prompts follow DeepSeek's own ``deepseek`` conversation format, as VLMEvalKit's Janus wrapper builds it:
``[system + "\\n\\n"]<|User|>: <image_placeholder>...{question}\\n\\n<|Assistant|>:`` with an empty system prompt
by default (``request.options["system_prompt"]`` sets one), greedy decoding.  Image generation uses the
same format with ``<begin_of_image>`` appended, transformers' image-mode ``generate`` (its unconditional
branch: prompt masked to padding except BOS/BOI, doubled batch, own cache) and its classifier-free-guidance
formula ``uncond + cfg * (cond - uncond)``; the sampling step is ours so that every image has its own
generator: image k of a request with seed s is the same whatever else is in the batch.

Model args: ``path=HUB_ID_OR_DIR[,dtype=bfloat16|float16|float32][,device=cuda|cpu|cuda:N]
[,batch_size=N][,gen_batch_size=N]``.  Request options: understanding ``system_prompt``; generation
``cfg`` (default 5, Janus's), ``temperature`` (1.0), ``image_top_k`` (none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from harness.plugin import AdapterError, GenerateRequest, Kind, ModelAdapter, UnderstandRequest

USER, ASSISTANT, SEP = "<|User|>", "<|Assistant|>", "\n\n"
DEFAULT_CFG = 5.0
_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "float32": "float32", "fp32": "float32"}


def build_prompt(question: str, n_images: int, image_token: str, system_prompt: str = "") -> str:
    """DeepSeek's sft format for one user turn and an open assistant turn (images first, as VLMEvalKit)."""
    head = f"{system_prompt}{SEP}" if system_prompt else ""
    return f"{head}{USER}: {image_token * n_images}{question}{SEP}{ASSISTANT}:"


def _check_local_dir(path: Path) -> None:
    """Name the file a local checkpoint lacks before transformers fails with a less direct message."""
    if not (path / "config.json").is_file():
        raise AdapterError(f"{path}: no config.json (expected a transformers Janus checkpoint directory)")
    weights = list(path.glob("*.safetensors")) + list(path.glob("*.safetensors.index.json"))
    if not weights:
        raise AdapterError(f"{path}: no *.safetensors weights")
    for need in ("tokenizer_config.json",):
        if not (path / need).is_file():
            raise AdapterError(f"{path}: no {need} (the Janus processor/tokenizer files are missing)")
    if not ((path / "preprocessor_config.json").is_file() or (path / "processor_config.json").is_file()):
        raise AdapterError(f"{path}: no preprocessor_config.json / processor_config.json (image processor)")


class _SeededCFGSampler:
    """Guidance then one multinomial draw per image from its own generator.

    Receives the doubled batch's scores [2B, V] (conditional rows first, as Janus's generate stacks them) and
    returns [B, V] scores that are -inf except at the drawn token, so the greedy step of ``generate`` picks it.
    """

    def __init__(self, cfg: float, temperature: float, top_k: Optional[int], seeds: list[int], device):
        import torch
        from transformers.generation.logits_process import ClassifierFreeGuidanceLogitsProcessor

        self.torch = torch
        self.guide = ClassifierFreeGuidanceLogitsProcessor(cfg) if cfg > 1 else None
        self.cfg = cfg
        self.temperature = temperature
        self.top_k = top_k
        self.gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        torch = self.torch
        b = len(self.gens)
        if scores.shape[0] != 2 * b:
            raise AdapterError(f"janus: expected {2 * b} score rows (cond + uncond), got {scores.shape[0]}")
        if self.guide is not None:
            logits = self.guide(input_ids, scores)
        else:
            cond, uncond = scores[:b], scores[b:]
            logits = uncond + self.cfg * (cond - uncond)
        logits = logits.float() / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        drawn = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.gens)])
        out = torch.full_like(logits, float("-inf"))
        out.scatter_(1, drawn[:, None], 0.0)
        return out


class JanusAdapter(ModelAdapter):
    id = "janus"
    capabilities = frozenset({"understand", "generate"})

    def __init__(self, **model_args: Any):
        super().__init__(**model_args)
        import torch
        from transformers import JanusForConditionalGeneration, JanusProcessor

        path = model_args.get("path")
        if not path:
            raise AdapterError("janus: model argument 'path' (hub id such as deepseek-community/Janus-Pro-7B, or a directory) is required")
        self.path = str(path)
        device = model_args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype_name = model_args.get("dtype") or ("bfloat16" if str(device).startswith("cuda") else "float32")
        if dtype_name not in _DTYPES:
            raise AdapterError(f"janus: dtype={dtype_name!r} is not one of {sorted(set(_DTYPES))}")
        self.dtype = getattr(torch, _DTYPES[dtype_name])
        self.device = torch.device(device)
        self._batch = {
            "understand": int(model_args.get("batch_size", 8)),
            "generate": int(model_args.get("gen_batch_size", 4)),
        }
        local = Path(self.path).expanduser()
        if local.exists():
            if not local.is_dir():
                raise AdapterError(f"janus: path {local} is a file, expected a checkpoint directory or hub id")
            _check_local_dir(local)
            source = str(local)
        else:
            if self.path.startswith((".", "/", "~")) or self.path.count("/") != 1:
                raise AdapterError(f"janus: path {self.path!r} is neither an existing directory nor a hub id (owner/name)")
            source = self.path
        try:
            self.processor = JanusProcessor.from_pretrained(source)
            self.model = JanusForConditionalGeneration.from_pretrained(source, dtype=self.dtype)
        except (OSError, ValueError, KeyError) as e:
            raise AdapterError(f"janus: could not load {source}: {e}") from e
        self.model.to(self.device).eval()
        # prompts are built here in DeepSeek's format; the processor must not add its own system prompt
        self.processor.use_default_system_prompt = False
        tok = self.processor.tokenizer
        self.tokenizer = tok
        self.image_token = self.processor.image_token
        self.boi_token = self.processor.image_start_token
        self.boi_id = tok.convert_tokens_to_ids(self.boi_token)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.eos_id = tok.eos_token_id
        self.bos_id = tok.bos_token_id
        self.num_image_tokens = self.model.model.vision_model.config.num_image_tokens

    # ------------------------------------------------------------------ understanding
    def understand(self, requests: list[UnderstandRequest]) -> list[str]:
        import torch

        if not requests:
            return []
        texts, images = [], []
        for r in requests:
            texts.append(build_prompt(r.prompt, len(r.images), self.image_token, r.options.get("system_prompt", "")))
            images.extend(im.convert("RGB") for im in r.images)
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        max_new = max(r.max_new_tokens for r in requests)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                generation_mode="text",
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
            )
        new = out[:, inputs["input_ids"].shape[1]:]
        answers = []
        for row, r in zip(new.tolist(), requests):
            row = row[: r.max_new_tokens]
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            answers.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return answers

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[GenerateRequest]) -> list[list[Image.Image]]:
        import copy

        import torch
        from transformers import LogitsProcessorList

        if not requests:
            return []
        groups: dict[tuple, list[tuple[int, str, int]]] = {}
        for i, r in enumerate(requests):
            key = (float(r.options.get("cfg", DEFAULT_CFG)), float(r.options.get("temperature", 1.0)),
                   int(r.options["image_top_k"]) if r.options.get("image_top_k") else None)
            for k in range(r.n_images):
                groups.setdefault(key, []).append((i, build_prompt(r.prompt, 0, self.image_token) + self.boi_token, r.seed + k))
        results: list[list[Image.Image]] = [[] for _ in requests]
        for (cfg, temperature, top_k), rows in groups.items():
            enc = self.tokenizer([p for _, p, _ in rows], padding=True, padding_side="left", return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            gen_cfg = copy.deepcopy(self.model.generation_config)
            gen_cfg.generation_kwargs = {**(getattr(gen_cfg, "generation_kwargs", None) or {}), "boi_token_id": self.boi_id}
            gen_cfg.pad_token_id, gen_cfg.bos_token_id = self.pad_id, self.bos_id
            gen_cfg.guidance_scale = 1  # guidance is applied inside the sampler, after the doubled forward
            gen_cfg.do_sample = False
            gen_cfg.num_return_sequences = 1
            gen_cfg.max_length = enc["input_ids"].shape[1] + self.num_image_tokens
            for attr in ("temperature", "top_k", "top_p"):
                setattr(gen_cfg, attr, None)
            sampler = _SeededCFGSampler(cfg, temperature, top_k, [s for _, _, s in rows], self.device)
            with torch.inference_mode():
                tokens = self.model.generate(
                    **enc,
                    **self._cache_kwargs(),
                    generation_mode="image",
                    generation_config=gen_cfg,
                    logits_processor=LogitsProcessorList([sampler]),
                )
                pixels = self.model.decode_image_tokens(tokens)  # [B, H, W, C] in about [-1, 1]
            arr = np.clip((pixels.float().cpu().numpy() + 1) / 2 * 255, 0, 255).astype(np.uint8)
            for (i, _, _), a in zip(rows, arr):
                results[i].append(Image.fromarray(a, "RGB"))
        return results

    def _cache_kwargs(self) -> dict[str, Any]:
        """transformers releases whose Janus forward still names the cache ``past_key_values`` (5.17) fail to
        build their own static cache in image mode (a missing ``prefill_chunk_size`` argument); hand them one."""
        import inspect

        if "past_key_values" not in inspect.signature(self.model.forward).parameters:
            return {}
        from transformers import DynamicCache

        return {"past_key_values": DynamicCache(config=self.model.config.text_config)}

    def batch_size(self, kind: Kind) -> int:
        return self._batch[kind]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "adapter": self.id,
            "path": self.path,
            "revision": getattr(self.model.config, "_commit_hash", None),
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
