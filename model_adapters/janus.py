"""Janus / Janus-Pro through transformers' ``JanusForConditionalGeneration`` (converted checkpoints such as
``deepseek-community/Janus-Pro-1B`` / ``-7B``, or a local directory in that layout).

Understanding prompts come in two named formats (model arg ``prompt_format``), both DeepSeek's ``deepseek``
conversation template for one user turn and an open assistant turn:

- ``deepseek`` (default; the authors' ``VLChatProcessor`` as their README and ``inference.py`` use it):
  ``{DeepSeek's default system prompt}\n\n<|User|>: <image_placeholder>\n{question}\n\n<|Assistant|>:``;
  several images put their placeholders first, then one newline.
- ``vlmevalkit`` (VLMEvalKit's Janus wrapper): plain role names, no newline after the placeholders, no
  system prompt except on MM-Vet (VLMEvalKit's step-by-step one):
  ``User: <image_placeholder>{question}\n\nAssistant:``.  VLMEvalKit's Janus-specific question wording
  (a leading newline and its own MCQ/yes-no suffixes) is the task's prompt, not reproduced here.

``request.options["system_prompt"]`` replaces the format's system prompt (``""`` drops it).  Greedy decoding.
Image generation uses DeepSeek's ``generation_inference.py`` prompt in either format (no system prompt,
``<begin_of_image>`` appended), transformers' image-mode ``generate`` (its unconditional branch: prompt masked
to padding except BOS/BOI, doubled batch, own cache) and its classifier-free-guidance formula
``uncond + cfg * (cond - uncond)``; the sampling step is ours so that every image has its own generator:
image k of a request with seed s is the same whatever else is in the batch.

The output layer: DeepSeek's Janus models have an ``lm_head`` separate from the input embeddings, while
transformers' conversion defaults to ``tie_word_embeddings=True``; its script (``convert_janus_weights_to_hf.py``)
then ties the weights before saving, so its output has no ``lm_head`` at all and cannot answer as DeepSeek's
model does (docs/model-parity.md).  Loading checks the config against the weight files: a tied config whose
weights hold a distinct ``lm_head`` is untied (with a warning, recorded in the fingerprint); an untied config
whose weights lack ``lm_head`` is refused; a tied config without one loads with a warning.

Checked against DeepSeek's own README Janus-Pro code on a tiny checkpoint in their layout, converted with
transformers' script (``lm_head`` kept): prompt, input ids and greedy ids equal; image codes under CFG with
``image_top_k=1`` (argmax) equal; pixels within 1 (``tests/test_janus_deepseek_parity.py``).

Model args: ``path=HUB_ID_OR_DIR[,prompt_format=deepseek|vlmevalkit][,dtype=bfloat16|float16|float32]
[,device=cuda|cpu|cuda:N][,batch_size=N][,gen_batch_size=N]``.  Request options: understanding
``system_prompt``; generation ``cfg`` (default 5, Janus's), ``temperature`` (1.0), ``image_top_k`` (none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from unitoken_eval.harness.plugin import AdapterError, GenerateRequest, Kind, ModelAdapter, UnderstandRequest

USER, ASSISTANT, SEP = "<|User|>", "<|Assistant|>", "\n\n"
DEFAULT_CFG = 5.0
_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "float32": "float32", "fp32": "float32"}


PROMPT_FORMATS = ("deepseek", "vlmevalkit")
# VLMEvalKit's Janus wrapper sets this system prompt on MM-Vet only
VLMEVALKIT_MMVET_SYSTEM_PROMPT = ("You are a helpful assistant. Please answer truthfully and write out your thinking "
                                  "step by step to be sure you get the right answer.")
LM_HEAD, EMBED = "lm_head.weight", "model.language_model.embed_tokens.weight"


def deepseek_system_prompt() -> str:
    """DeepSeek's ``VLChatProcessor.system_prompt`` (transformers carries the same text for Janus)."""
    from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

    return DEFAULT_SYSTEM_PROMPT.strip()


def build_prompt(question: str, n_images: int, image_token: str, system_prompt: str = "",
                 prompt_format: str = "deepseek") -> str:
    """One user turn and an open assistant turn in DeepSeek's template; images first; message stripped.

    ``deepseek`` uses Janus-Pro's role tags and a newline between the placeholders and the question;
    ``vlmevalkit`` uses the plain roles VLMEvalKit passes ("User", "Assistant") and no newline.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise AdapterError(f"janus: prompt_format={prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}")
    head = f"{system_prompt}{SEP}" if system_prompt else ""
    if prompt_format == "deepseek":
        user, assistant, message = USER, ASSISTANT, (image_token * n_images + "\n" if n_images else "") + question
    else:
        user, assistant, message = "User", "Assistant", image_token * n_images + question
    return f"{head}{user}: {message.strip()}{SEP}{assistant}:".strip()


def t2i_prompt(prompt: str) -> str:
    """DeepSeek's text-to-image prompt before ``<begin_of_image>``: no system prompt, message stripped."""
    return f"{USER}: {prompt.strip()}{SEP}{ASSISTANT}:"


def output_layer_state(source: str) -> tuple[bool, Optional[bool], str]:
    """(config ties, weights hold an lm_head distinct from the embeddings or None if absent, config file).

    Reads the config and the safetensors headers only, plus a strided sample of rows of both matrices when
    both are stored (a separate trained output layer differs from the embeddings in every row).
    """
    import json

    from safetensors import safe_open
    from transformers.utils import cached_file

    def find(name):
        return cached_file(source, name, _raise_exceptions_for_missing_entries=False)

    config_file = find("config.json")
    if config_file is None:
        raise AdapterError(f"janus: {source}: no config.json")
    config = json.loads(Path(config_file).read_text())
    tied = bool(config.get("tie_word_embeddings", True))  # transformers' JanusConfig default
    index = find("model.safetensors.index.json")
    if index is not None:
        weight_map = json.loads(Path(index).read_text()).get("weight_map", {})
        files = {k: find(v) for k, v in weight_map.items() if k in (LM_HEAD, EMBED)}
    else:
        single = find("model.safetensors")
        if single is None:
            raise AdapterError(f"janus: {source}: no model.safetensors or model.safetensors.index.json")
        with safe_open(single, "pt") as f:
            files = {k: single for k in f.keys() if k in (LM_HEAD, EMBED)}
    if LM_HEAD not in files:
        return tied, None, config_file
    if EMBED not in files:
        return tied, True, config_file

    def rows(key):
        with safe_open(files[key], "pt") as f:
            t = f.get_slice(key)
            n = t.get_shape()[0]
            return t[0:n:max(1, n // 256)]

    import torch

    return tied, not torch.equal(rows(LM_HEAD), rows(EMBED)), config_file


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
        self.prompt_format = model_args.get("prompt_format") or "deepseek"
        if self.prompt_format not in PROMPT_FORMATS:
            raise AdapterError(f"janus: prompt_format={self.prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}")
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
            overrides = self._output_layer_overrides(source)
            self.model = JanusForConditionalGeneration.from_pretrained(source, dtype=self.dtype, **overrides)
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

    def _output_layer_overrides(self, source: str) -> dict[str, Any]:
        """Hold the config's ``tie_word_embeddings`` against the weights (see the module docstring)."""
        import warnings

        tied, distinct_head, config_file = output_layer_state(source)
        self.output_layer = "tied" if tied else "separate"
        if distinct_head is None and not tied:
            raise AdapterError(
                f"janus: {config_file} sets tie_word_embeddings=false but the weights hold no {LM_HEAD}: the output "
                "layer is missing (a conversion with tying drops it); reconvert with tie_word_embeddings=False")
        if tied and distinct_head is None:
            warnings.warn(
                f"janus: {config_file} ties the output layer to the input embeddings; DeepSeek's Janus models have a "
                "separate lm_head, so answers will differ from the authors' model if this came from their weights "
                "(transformers' convert_janus_weights_to_hf.py writes such checkpoints; convert with "
                "tie_word_embeddings=False to keep the lm_head)",
                stacklevel=3)
        if tied and distinct_head:
            self.output_layer = "separate (config said tied; untied to match the weights)"
            warnings.warn(
                f"janus: {config_file} sets tie_word_embeddings=true but the weights hold a separate {LM_HEAD}; "
                "loading it untied, as DeepSeek's model is (set tie_word_embeddings to false there to silence this)",
                stacklevel=3)
            return {"tie_word_embeddings": False}
        return {}

    # ------------------------------------------------------------------ understanding
    def understanding_prompt(self, request: UnderstandRequest) -> str:
        system = request.options.get("system_prompt")
        if system is None and self.prompt_format == "deepseek":
            system = deepseek_system_prompt()
        elif system is None:
            system = VLMEVALKIT_MMVET_SYSTEM_PROMPT if (request.task_id or "").startswith("mmvet") else ""
        return build_prompt(request.prompt, len(request.images), self.image_token, system, self.prompt_format)

    def understanding_inputs(self, requests: list[UnderstandRequest]):
        """The processor's batch (left-padded ids with each image expanded to BOI + image tokens + EOI)."""
        texts = [self.understanding_prompt(r) for r in requests]
        images = [im.convert("RGB") for r in requests for im in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def understand(self, requests: list[UnderstandRequest]) -> list[str]:
        return [r["text"] for r in self.understand_with_tokens(requests)]

    def understand_with_tokens(self, requests: list[UnderstandRequest]) -> list[dict[str, Any]]:
        import torch

        if not requests:
            return []
        inputs = self.understanding_inputs(requests)
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
            answers.append({"text": self.tokenizer.decode(row, skip_special_tokens=True).strip(), "token_ids": row})
        return answers

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[GenerateRequest]) -> list[list[Image.Image]]:
        return [r["images"] for r in self.generate_with_tokens(requests)]

    def generate_with_tokens(self, requests: list[GenerateRequest]) -> list[dict[str, Any]]:
        """Each image with its ``num_image_tokens`` VQ codes (the ids the generation head drew)."""
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
                groups.setdefault(key, []).append((i, t2i_prompt(r.prompt) + self.boi_token, r.seed + k))
        results: list[dict[str, Any]] = [{"images": [], "token_ids": []} for _ in requests]
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
            for (i, _, _), a, codes in zip(rows, arr, tokens.tolist()):
                results[i]["images"].append(Image.fromarray(a, "RGB"))
                results[i]["token_ids"].append(codes)
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
            "prompt_format": self.prompt_format,
            "output_layer": self.output_layer,
        }

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
