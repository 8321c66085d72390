"""Batch sizes for ``batch_size=auto`` and ``gen_batch_size=auto``: as many rows as the GPU's free memory
holds once the weights are loaded, up to the sizes bench/throughput.py measured as fastest.

A fixed default is wrong on both ends: a small image batch leaves a large GPU far below its image rate, and
one that fills a large GPU does not fit a smaller card.  The estimate counts the KV cache, which dominates
(0.5 MB per column per row for a 7B model in bf16), plus what scales with it, and keeps a reserve for
everything else (graph pools, VQ decoding, the allocator's fragmentation).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from unitoken_eval.harness.plugin import AdapterError

UNDERSTAND_CAP = 16   # the batch bench/throughput.py measures understanding at; prefill is compute-bound by then
GENERATE_CAP = 192    # the largest image batch measured (int8 KV); larger ones were never measured
CPU_BATCH = 8
ANSWER_COLUMNS = 5120  # an AnyRes prompt (~4.7k tokens) and its answer, at the session's 256-column rounding
T2I_COLUMNS = 64       # a T2I prompt's columns (GenEval / T2I-CompBench++ prompts take 30-55 tokens)
GIB = 1 << 30
log = logging.getLogger(__name__)


def kv_bytes_per_column(config, kv_cache: str, dtype: torch.dtype) -> float:
    """Bytes one cache column (one token of one row) takes over all layers, K and V."""
    head_dim = config.hidden_size // config.num_attention_heads
    per_element = 1 + 4 / head_dim if kv_cache == "int8" else torch.finfo(dtype).bits / 8  # int8: + fp32 scale per head
    return config.num_hidden_layers * 2 * config.hidden_size * per_element


def _fit(usable: float, per_row: float, cap: int) -> int:
    n = min(cap, int(usable // per_row))
    return n - n % 8 if n >= 8 else n


def auto_batch_sizes(config, device: torch.device, dtype: torch.dtype, kv_cache: str, image_tokens: int,
                     memory: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """(understanding prompts, generated images) per batch; 0 where not even one fits.  ``memory``: (free,
    total) bytes, by default the device's now."""
    if device.type != "cuda":
        return CPU_BATCH, CPU_BATCH
    free, total = memory if memory is not None else torch.cuda.mem_get_info(device)
    usable = free - 3 * GIB - 0.05 * total
    col = kv_bytes_per_column(config, kv_cache, dtype)
    # answers: the exact (model-dtype) cache, plus ~15% for the prefill's activations at that width
    per_prompt = ANSWER_COLUMNS * kv_bytes_per_column(config, "bf16", dtype) * 1.15
    # images: cond + uncond rows (the sampling noise is computed per step, not stored)
    per_image = 2 * (T2I_COLUMNS + image_tokens) * col
    return _fit(usable, per_prompt, UNDERSTAND_CAP), _fit(usable, per_image, GENERATE_CAP)


def resolve(args, config, device: torch.device, dtype: torch.dtype, image_tokens: Optional[int],
            memory: Optional[tuple[int, int]] = None) -> None:
    """Replace ``auto`` in ``args.batch_size`` / ``args.gen_batch_size`` (``image_tokens`` None: the model
    draws no images).  Raises AdapterError when a batch of one does not fit."""
    if "auto" not in (args.batch_size, args.gen_batch_size):
        return
    if device.type == "cuda" and memory is None:
        memory = torch.cuda.mem_get_info(device)
    und, gen = auto_batch_sizes(config, device, dtype, args.kv_cache, image_tokens or 0, memory=memory)
    for name, n, what in (("batch_size", und, "prompt"), ("gen_batch_size", gen, "image")):
        if getattr(args, name) != "auto" or (name == "gen_batch_size" and image_tokens is None):
            continue
        if n < 1:
            free = memory[0] / GIB
            raise AdapterError(f"{device}: {free:.1f} GiB free after loading the model is too little for one {what}'s "
                               f"KV cache; pass {name}=1 to try anyway, or use a larger GPU")
        setattr(args, name, n)
    if args.gen_batch_size == "auto":
        args.gen_batch_size = CPU_BATCH  # never used: the model draws no images
    log.info("batch sizes on %s: %s prompts, %s images", device, args.batch_size, args.gen_batch_size)
