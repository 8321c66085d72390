"""Decoding loops: batched greedy answers with one prefill per shared image prefix, and batched CFG images.

Both run on :mod:`model_adapters.chameleon_fast` (preallocated KV cache; CUDA graphs on GPU, the same code
eagerly on CPU).  :func:`reference_greedy` is the plain transformers loop (dynamic cache, one prompt at a
time) the tests hold the fast path against.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from model_adapters.chameleon_fast import CFGImageDecoder, ImageGrid, PrefixSharingGreedyDecoder, release_fp8_weights


def greedy_answers(model, lm_head, prefixes: list[torch.Tensor], suffixes: list[list[int]], group: list[int],
                   max_new_tokens: Sequence[int], eos: Sequence[int], use_graphs: Optional[bool] = None,
                   prefill: str = "bf16") -> list[list[int]]:
    """Row r = prefixes[group[r]] + suffixes[r]; each row stops at eos or its own max_new_tokens.
    ``prefill="fp8"``: the prompt's wide GEMMs in float8 (chameleon_fast.fp8_weights), not exact."""
    _release_image_session(model)  # an image batch's KV cache would otherwise hold memory answers need
    dec = getattr(model, "_lean_answer_decoder", None)
    graphs = (next(model.parameters()).device.type == "cuda") if use_graphs is None else use_graphs
    if dec is None or dec.lm_head is not lm_head or dec.use_graphs != graphs or dec.prefill != prefill:
        _release_answer_session(model)
        dec = PrefixSharingGreedyDecoder(model, lm_head, use_graphs=use_graphs, prefill=prefill)
        model._lean_answer_decoder = dec  # its session (cache, graphs) serves the next batch too
    out = dec.answer(prefixes, suffixes, group, max(max_new_tokens), eos)
    return [o[: m] for o, m in zip(out, max_new_tokens)]


@torch.no_grad()
def reference_greedy(model, lm_head, embeds: torch.Tensor, max_new_tokens: int, eos: Sequence[int]) -> list[int]:
    """One prompt ([T, hidden] embeddings) through ChameleonModel with transformers' DynamicCache."""
    import inspect

    from transformers import DynamicCache

    cache = DynamicCache()
    # the cache keyword is ``past_key_values`` up to transformers 5.2x and ``cache`` after the rename
    kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(inputs_embeds=embeds[None], use_cache=True, **{kw: cache})
    toks: list[int] = []
    nxt = int(lm_head(out.last_hidden_state[:, -1]).float().argmax(-1))
    while True:
        toks.append(nxt)
        if nxt in eos or len(toks) >= max_new_tokens:
            break
        out = model(input_ids=torch.tensor([[nxt]], device=embeds.device), use_cache=True, **{kw: cache})
        nxt = int(lm_head(out.last_hidden_state[:, -1]).float().argmax(-1))
    return toks[:-1] if toks and toks[-1] in eos else toks


def image_tokens(model, lm_head, prompts: list[list[int]], seeds: Sequence[int], cfg: float, image_top_k: int,
                 temperature: float, grid: ImageGrid = ImageGrid(), use_graphs: Optional[bool] = None,
                 boi: int = 8197, kv_cache: str = "bf16") -> torch.Tensor:
    """[B, grid.n_tokens] generated ids after BOI for prompts ending in BOI (cond + uncond rows in one batch).

    The decoder (and its KV cache and CUDA graphs) is kept on the model for the next batch of the same shape.
    Float8 weight copies of ``prefill=fp8`` are freed first (~1 byte per parameter, which the image batch
    needs more); the next fp8 prefill rebuilds them.
    """
    _release_answer_session(model)  # its KV cache, and float8 weights that the next fp8 session rebuilds
    if getattr(model, "_lean_fp8", False):
        release_fp8_weights(model)
    dec = getattr(model, "_lean_image_decoder", None)
    graphs = (next(model.parameters()).device.type == "cuda") if use_graphs is None else use_graphs
    if (dec is None or dec.lm_head is not lm_head or dec.grid != grid or dec.use_graphs != graphs
            or dec.kv_cache != kv_cache):
        _release_image_session(model)
        dec = CFGImageDecoder(model, lm_head, grid=grid, use_graphs=use_graphs, kv_cache=kv_cache)
        model._lean_image_decoder = dec
    return dec.generate(prompts, seeds, cfg=cfg, image_top_k=image_top_k, temperature=temperature, boi=boi)


def _release_image_session(model) -> None:
    dec = getattr(model, "_lean_image_decoder", None)
    if dec is not None:
        dec.release()


def _release_answer_session(model) -> None:
    dec = getattr(model, "_lean_answer_decoder", None)
    if dec is not None:
        dec.release()
        model._lean_answer_decoder = None
