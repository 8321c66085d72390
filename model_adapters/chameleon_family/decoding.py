"""The decoders of one loaded model, their kept sessions and derived weights, in one object; and the plain
transformers loop the tests hold the fast path against.

:class:`ChameleonDecoders` runs on :mod:`.decoders` (preallocated KV cache; CUDA graphs on GPU, the same code
eagerly on CPU).  :func:`reference_greedy` is the transformers loop (dynamic cache, one prompt at a time).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .decoders import AnswerRules, CFGImageDecoder, PrefixSharingGreedyDecoder
from .grid import ImageGrid
from .weights import ModelWeights


class ChameleonDecoders:
    """The answer and image decoders of one model (a ``ChameleonModel`` and its ``lm_head``), created on first
    use and kept with their sessions (KV cache, graphs) for the next batch, and the model's derived weights
    (fused projections, float8 copies) they share.

    Answers and images never hold memory at once: each frees the other's session first, and images also
    free the float8 copies of ``prefill=fp8`` (~1 byte per parameter), which the next fp8 answer rebuilds.
    """

    def __init__(self, model, lm_head, use_graphs: Optional[bool] = None):
        self.model, self.lm_head = model, lm_head
        self.use_graphs = (next(model.parameters()).device.type == "cuda") if use_graphs is None else use_graphs
        self.weights = ModelWeights(model)
        self.answer_decoder: Optional[PrefixSharingGreedyDecoder] = None
        self.image_decoder: Optional[CFGImageDecoder] = None

    def make_room_for_answers(self) -> None:
        """Free the image session before an understanding batch: its encoders (VQ-GAN, SigLIP) run before
        :meth:`greedy_answers` and need memory that a kept image batch's KV cache would still hold."""
        self._release_images()

    def greedy_answers(self, prefixes: list[torch.Tensor], suffixes: list[list[int]], group: list[int],
                       max_new_tokens: Sequence[int], eos: Sequence[int], prefill: str = "bf16",
                       rules: Optional[AnswerRules] = None,
                       prompt_ids: Optional[list[list[int]]] = None) -> list[list[int]]:
        """Row r = prefixes[group[r]] + suffixes[r]; each row stops at eos or its own max_new_tokens.
        ``prefill="fp8"``: the prompt's wide GEMMs in float8 (:class:`.weights.ModelWeights`), not exact.
        ``rules`` / ``prompt_ids``: see :meth:`.decoders.PrefixSharingGreedyDecoder.answer`."""
        self._release_images()
        dec = self.answer_decoder
        if dec is None or dec.prefill != prefill:
            self._release_answers()
            dec = PrefixSharingGreedyDecoder(self.model, self.lm_head, use_graphs=self.use_graphs, prefill=prefill,
                                             weights=self.weights)
            self.answer_decoder = dec
        out = dec.answer(prefixes, suffixes, group, max(max_new_tokens), eos, rules=rules, prompt_ids=prompt_ids)
        return [o[: m] for o, m in zip(out, max_new_tokens)]

    def image_tokens(self, prompts: list[list[int]], seeds: Sequence[int], cfg: float, image_top_k: int,
                     temperature: float, grid: ImageGrid = ImageGrid(), boi: int = 8197,
                     kv_cache: str = "bf16", uncond: Optional[Sequence[int]] = None) -> torch.Tensor:
        """[B, grid.n_tokens] generated ids after BOI for prompts ending in BOI (cond + uncond rows in one batch)."""
        self._release_answers()
        self.weights.release_fp8()
        dec = self.image_decoder
        if dec is None or dec.grid != grid or dec.kv_cache != kv_cache:
            self._release_images()
            dec = CFGImageDecoder(self.model, self.lm_head, grid=grid, use_graphs=self.use_graphs, kv_cache=kv_cache,
                                  weights=self.weights)
            self.image_decoder = dec
        return dec.generate(prompts, seeds, cfg=cfg, image_top_k=image_top_k, temperature=temperature, boi=boi,
                            uncond=uncond)

    def release(self) -> None:
        """Free every session and the float8 copies (the fused projections are views of the model's own)."""
        self._release_answers()
        self._release_images()
        self.weights.release_fp8()

    def _release_images(self) -> None:
        if self.image_decoder is not None:
            self.image_decoder.release()
            self.image_decoder = None
            _return_cached_memory()

    def _release_answers(self) -> None:
        if self.answer_decoder is not None:
            self.answer_decoder.release()
            self.answer_decoder = None
            _return_cached_memory()


def _return_cached_memory() -> None:
    # A released session's KV cache (~100 GB for a 7B image batch) would stay in torch's cache; what the next
    # kind of work allocates outside that cache (kernel modules, library workspaces) then finds no memory.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


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
