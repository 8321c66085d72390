"""batch_size=auto / gen_batch_size=auto: rows from free GPU memory, checked against what the H200 ran."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
from transformers import ChameleonConfig  # noqa: E402

from unitoken_eval.harness.plugin import AdapterError  # noqa: E402
from unitoken_eval.model_adapters.chameleon_family import batching  # noqa: E402
from unitoken_eval.model_adapters.unitoken.configuration import ModelArgs  # noqa: E402

SEVEN_B = ChameleonConfig()  # Chameleon-7B's shape: hidden 4096, 32 layers, 32 heads
CUDA = torch.device("cuda")
H200 = (134_700_000_000, 150_700_000_000)  # free after loading UniToken-7B, total (bytes)


def test_an_h200_with_the_llm_alone_gets_the_batches_the_benchmark_measured():
    """bench/records/throughput-NVIDIA-H200-*.json (LLM weights only, ~16 GB): 104 images fill the GPU in bf16
    (128 did not fit), int8 halves the cache and 192 is the largest batch measured; answers stop at 16."""
    assert batching.auto_batch_sizes(SEVEN_B, CUDA, torch.bfloat16, "bf16", 1059, memory=H200) == (16, 104)
    assert batching.auto_batch_sizes(SEVEN_B, CUDA, torch.bfloat16, "int8", 1059, memory=H200) == (16, 192)


def test_smaller_gpus_get_smaller_batches_in_multiples_of_eight():
    und, gen = batching.auto_batch_sizes(SEVEN_B, CUDA, torch.bfloat16, "bf16", 1059, memory=(63 * 10**9, 85 * 10**9))
    assert und == 16 and gen == 40
    und, gen = batching.auto_batch_sizes(SEVEN_B, CUDA, torch.bfloat16, "bf16", 1059, memory=(24 * 10**9, 42 * 10**9))
    assert (und, gen) == (6, 8)
    # the int8 cache takes 1 + 4/128 bytes per element against 2: about twice the images
    assert batching.kv_bytes_per_column(SEVEN_B, "int8", torch.bfloat16) / batching.kv_bytes_per_column(
        SEVEN_B, "bf16", torch.bfloat16) == pytest.approx((1 + 4 / 128) / 2)


def test_resolve_fills_in_auto_keeps_numbers_and_refuses_a_gpu_too_small():
    args = ModelArgs.parse({"path": "x", "gen_batch_size": "AUTO", "batch_size": "12"})
    batching.resolve(args, SEVEN_B, CUDA, torch.bfloat16, 1059, memory=H200)
    assert (args.batch_size, args.gen_batch_size) == (12, 104)
    args = ModelArgs.parse({"path": "x"})
    with pytest.raises(AdapterError, match="1.9 GiB free .* too little for one prompt.*batch_size=1"):
        batching.resolve(args, SEVEN_B, CUDA, torch.bfloat16, 1059, memory=(2 * 10**9, 42 * 10**9))
    args = ModelArgs.parse({"path": "x"})  # an understanding-only model needs no image batch
    batching.resolve(args, SEVEN_B, CUDA, torch.bfloat16, None, memory=H200)
    assert args.batch_size == 16 and args.gen_batch_size == batching.CPU_BATCH
    args = ModelArgs.parse({"path": "x"})
    batching.resolve(args, SEVEN_B, torch.device("cpu"), torch.float32, 1059)
    assert (args.batch_size, args.gen_batch_size) == (8, 8)
    with pytest.raises(AdapterError, match="not an integer or auto"):
        ModelArgs.parse({"path": "x", "batch_size": "big"})
