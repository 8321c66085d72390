"""The two batched decoders over :class:`.forward.LeanChameleon`: greedy answers sharing image prefixes, and
classifier-free-guidance image token streams.

Each decode step (forward of every row, CFG mix, structure constraints, image top-k, sampling) is one
function of device tensors only; on CUDA it is captured as a CUDA graph per context bucket (:mod:`.graphs`),
and replaying a graph costs microseconds of CPU.  Each decoder keeps its KV cache, step state and graphs as a
session for the next batch of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .forward import LeanChameleon
from .graphs import GraphSteps, round_up
from .grid import ImageGrid
from .sampling import cfg_mix, gumbel_topk_sample, token_uniforms
from .weights import ModelWeights


@dataclass(frozen=True, eq=False)
class AnswerRules:
    """Logit rules applied before every greedy choice, as Meta's Chameleon text decoder applies them: only
    ``allowed`` ids can be chosen (None: any), and an id already present in the row (prompt or answer so far)
    has its logit divided by ``repetition_penalty`` when positive and multiplied by it when negative
    (transformers' ``RepetitionPenaltyLogitsProcessor``; 1.0 = off).  A session is kept per rules object."""

    allowed: Optional[tuple[int, ...]] = None
    repetition_penalty: float = 1.0


@dataclass
class AnswerSession:
    """What :class:`PrefixSharingGreedyDecoder` keeps between batches: a forward with its KV cache for up to
    ``rows`` prompts of ``length`` columns and ``new`` answer tokens, the answer buffer, the static state the
    decode step advances in place (so a captured graph can replay it), the step and its graphs, and the
    choice of a token from logits under the session's rules."""

    rows: int
    length: int
    new: int
    lean: LeanChameleon
    out: torch.Tensor
    state: dict[str, torch.Tensor]
    step: Callable[[int], None]
    runner: GraphSteps
    choose: Callable[[torch.Tensor], torch.Tensor]  # logits [R, V] -> ids [R], rules applied (seen ids noted)
    rules: Optional[AnswerRules] = None


@dataclass
class ImageSession:
    """What :class:`CFGImageDecoder` keeps for batches of one ``key`` (rows, prompt width, sampling settings):
    the forward with its KV cache, the forced-token schedule, per-batch seed and padding buffers, the token
    buffer, the step's static state, the step and its graphs."""

    key: tuple
    lean: LeanChameleon
    schedule: torch.Tensor
    seeds: torch.Tensor
    pad: torch.Tensor
    out: torch.Tensor
    state: dict[str, torch.Tensor]
    runner: GraphSteps
    step: Optional[Callable[[int], None]] = None


class PrefixSharingGreedyDecoder:
    """Greedy answers for prompts that share image prefixes, one prefill per distinct prefix.

    A prompt is ``prefix embeddings`` (everything up to the image's EOI: BOS, both image blocks) followed by
    its own text ids.  Groups of prompts about one image (MMBench's circular copies, MME's two questions)
    prefill the prefix once; its cache columns are copied to the other rows, then every row's text is
    prefilled after it and decoding is batched.  Text suffixes of different lengths are right-aligned, the
    gap in front of a shorter one is masked and skipped by the rotary positions, so each row computes
    exactly what it would alone.

    The KV cache, the decode state and the captured step graphs form a session kept for the next call: a
    benchmark is thousands of batches of the same size with prompts of similar length, and re-capturing
    per batch would cost about two eager steps per batch, as much as a short answer's whole decode.  A
    batch with fewer rows than the session runs with copies of its first prompt in the spare rows (their
    answers are dropped; rows never see each other); a longer batch grows the session.  ``release()`` frees it.
    """

    LEN_BUCKET = 256  # session cache length rounding, so that prompts of similar length share one session

    def __init__(self, model, lm_head, bucket: int = 64, use_graphs: Optional[bool] = None,
                 fused: Optional[bool] = None, compile_prefill: Optional[bool] = None, prefill: str = "bf16",
                 weights: Optional[ModelWeights] = None):
        self.model, self.lm_head, self.bucket = model, lm_head, bucket
        self.prefill = prefill
        device = next(model.parameters()).device
        self.use_graphs = (device.type == "cuda") if use_graphs is None else use_graphs
        self.fused, self.compile_prefill = fused, compile_prefill
        self.weights = weights if weights is not None else ModelWeights(model)
        self.stats = {"prefill_tokens": 0, "prompt_tokens": 0, "sessions": 0}
        self._session: Optional[AnswerSession] = None

    def release(self) -> None:
        """Drop the kept session (KV cache, graphs) so its memory can be used for something else."""
        self._session = None

    def _session_for(self, rows: int, length: int, new: int, rules: Optional[AnswerRules] = None) -> AnswerSession:
        sess = self._session
        if sess is not None and sess.rules is not rules:
            sess = self._session = None  # other logit rules: another step function
        if sess is not None and rows <= sess.rows and length <= sess.length and new <= sess.new:
            return sess
        if sess is not None:  # grow to cover both the old and the new shape
            rows, length, new = max(rows, sess.rows), max(length, sess.length), max(new, sess.new)
        self._session = None  # free the old cache before allocating the new one
        length = round_up(length, self.LEN_BUCKET, 1 << 30)
        lean = LeanChameleon(self.model, self.lm_head, rows, length, fused=self.fused,
                             compile_prefill=self.compile_prefill, prefill=self.prefill, weights=self.weights)
        dev = lean.device
        out = torch.zeros((rows, new), dtype=torch.long, device=dev)
        # Static state the step reads and advances in place (so a captured graph can replay it).
        state = {"tok": torch.zeros(rows, dtype=torch.long, device=dev),
                 "pos": torch.zeros(rows, dtype=torch.long, device=dev),
                 "col": torch.zeros(1, dtype=torch.long, device=dev),
                 "step": torch.ones(1, dtype=torch.long, device=dev)}
        shape = None
        if rules is not None:
            vocab = self.lm_head.weight.shape[0]
            bias = None
            if rules.allowed is not None:
                bias = torch.full((vocab,), float("-inf"), device=dev)
                bias[torch.tensor(list(rules.allowed), dtype=torch.long, device=dev)] = 0.0
            penalty = float(rules.repetition_penalty)
            if penalty != 1.0:
                state["seen"] = torch.zeros((rows, vocab), dtype=torch.bool, device=dev)

            def shape(logits: torch.Tensor) -> torch.Tensor:
                if bias is not None:
                    logits = logits + bias
                if penalty != 1.0:
                    logits = torch.where(state["seen"], torch.where(logits < 0, logits * penalty, logits / penalty),
                                         logits)
                return logits

        def choose(logits: torch.Tensor) -> torch.Tensor:
            if shape is None:
                return logits.argmax(-1)
            nxt = shape(logits).argmax(-1)
            if "seen" in state:
                state["seen"].scatter_(1, nxt[:, None], True)
            return nxt

        def step(length: int) -> None:
            tok, pos, col, stp = state["tok"], state["pos"], state["col"], state["step"]
            nxt = choose(lean.forward(pos[:, None], col, length, ids=tok[:, None]))
            out.index_copy_(1, stp, nxt[:, None])
            tok.copy_(nxt)
            pos.add_(1)
            col.add_(1)
            stp.add_(1)

        self._session = AnswerSession(rows, length, new, lean, out, state, step,
                                      GraphSteps(self.use_graphs, min_replays=1), choose=choose, rules=rules)
        self.stats["sessions"] += 1
        return self._session

    @torch.no_grad()
    def answer(self, prefixes: list[torch.Tensor], suffixes: list[list[int]], group: list[int],
               max_new_tokens: int, eos: Sequence[int], rules: Optional[AnswerRules] = None,
               prompt_ids: Optional[list[list[int]]] = None) -> list[list[int]]:
        """``prefixes[g]`` is [P_g, hidden]; row r is ``prefixes[group[r]]`` + ``suffixes[r]``.

        ``rules``: logit rules before each choice (:class:`AnswerRules`); with a repetition penalty,
        ``prompt_ids[r]`` are row r's prompt ids (the prefix's included), which count as already present."""
        G, R = len(prefixes), len(suffixes)
        if sorted(set(group)) != list(range(G)):
            raise ValueError("every prefix must be used by at least one prompt")
        # Row order: the first prompt of each group first (they hold the prefill), then the others.
        first = {}
        for r, g in enumerate(group):
            first.setdefault(g, r)
        order = [first[g] for g in range(G)] + [r for r in range(R) if first[group[r]] != r]
        P = max(p.shape[0] for p in prefixes)
        S = max(len(s) for s in suffixes)
        sess = self._session_for(R, P + S + max_new_tokens, max_new_tokens, rules)
        lean, out, state = sess.lean, sess.out, sess.state
        rows = sess.rows
        order += [order[0]] * (rows - R)  # spare rows: copies of the first prompt
        dev = lean.device
        hidden = prefixes[0].shape[1]
        lean.valid.zero_()  # the columns of the session's previous batch
        # 1. Prefixes on rows 0..G-1, right-padded to P: under causal attention a real token never sees the
        # padding after it, so the plain causal kernel is exact for every row; the padding's cache columns
        # are marked invalid for what follows.
        emb = torch.zeros((G, P, hidden), dtype=lean.dtype, device=dev)
        for g, p in enumerate(prefixes):
            emb[g, : p.shape[0]] = p.to(dev, lean.dtype)
            lean.valid[g, : p.shape[0]] = True
        positions = torch.arange(P, device=dev)[None].expand(G, P)
        lean.forward(positions, 0, P, embeds=emb, dense_causal=True)
        del emb
        # 2. Rows of the same group get the prefix columns of their group's first row.
        rep = torch.tensor([group[order[i]] for i in range(rows)], device=dev)
        if rows > G:
            lean.copy_rows(rep[G:], torch.arange(G, rows, device=dev), P)
        # 3. Every row's text, right-aligned in columns [P, P + S).
        ids = torch.zeros((rows, S), dtype=torch.long)
        for i, r in enumerate(order):
            ids[i, S - len(suffixes[r]):] = torch.tensor(suffixes[r])
            lean.valid[i, P + S - len(suffixes[r]): P + S] = True
        ids = ids.to(dev)
        lean.valid[:, P + S:] = True
        positions = (lean.valid[:, : P + S].long().cumsum(1) - 1).clamp(min=0)[:, P:]
        logits = lean.forward(positions, P, P + S, ids=ids)
        self.stats["prefill_tokens"] += sum(p.shape[0] for p in prefixes) + sum(len(s) for s in suffixes)
        self.stats["prompt_tokens"] += sum(prefixes[group[r]].shape[0] + len(suffixes[r]) for r in range(R))
        # 4. Greedy decoding, one graph per attention length (kept with the session).
        out.zero_()
        if "seen" in state:
            if prompt_ids is None:
                raise ValueError("a repetition penalty needs every row's prompt ids")
            state["seen"].zero_()
            for i, r in enumerate(order):
                state["seen"][i, torch.tensor(prompt_ids[r], dtype=torch.long, device=dev)] = True
        out[:, 0] = sess.choose(logits)
        state["tok"].copy_(out[:, 0])
        state["pos"].copy_(lean.valid[:, : P + S].sum(1))  # the position of the first generated token
        state["col"].fill_(P + S)
        state["step"].fill_(1)
        eos_t = torch.tensor(list(eos), device=dev)
        produced = 1
        lengths = [round_up(P + S + s, self.bucket, lean.max_len) for s in range(max_new_tokens)]
        for s in range(1, max_new_tokens):
            if s % 4 == 0 and bool(torch.isin(out[:R, :s], eos_t).any(1).all()):
                break  # every row has ended (checked every few steps: each check waits for the GPU)
            sess.runner(sess.step, lengths[s], state, remaining=lengths[s:].count(lengths[s]))
            produced = s + 1
        result: list[list[int]] = [[] for _ in range(R)]
        done = out[:R].cpu().tolist()
        eos_set = set(int(e) for e in eos)
        for i, r in enumerate(order[:R]):
            toks = done[i][:produced]
            cut = next((j for j, t in enumerate(toks) if t in eos_set), None)
            result[r] = toks[:cut] if cut is not None else toks
        return result


class CFGImageDecoder:
    """Generate image token streams for a batch of prompts with CFG, on CPU (eager) or CUDA (graphs).

    ``prompts`` are the conditional token ids up to and including BOI; the unconditional branch of each is
    ``[BOI]`` followed by the same generated tokens, i.e. the release's ``[8197, 8820, 8820]`` context.

    The KV cache, the step's state and the captured graphs form a session kept for the next call with the
    same shape and sampling settings: a benchmark's batches differ only in prompts and seeds, and
    re-capturing every length's graph (each after an eager warm-up step) per batch would be wasted time.
    Prompt widths are rounded up to ``WIDTH_BUCKET`` (left padding is masked, so this is exact) so that
    batches of similar prompts share a session.  ``release()`` frees it.
    """

    WIDTH_BUCKET = 32

    def __init__(self, model, lm_head, grid: ImageGrid = ImageGrid(), bucket: int = 32,
                 use_graphs: Optional[bool] = None, fused: Optional[bool] = None, kv_cache: str = "bf16",
                 weights: Optional[ModelWeights] = None):
        """``kv_cache``: "bf16" (the model's dtype, exact) or "int8" (:mod:`.kv_cache`: half the bytes per
        step and per row, so larger batches fit)."""
        self.model, self.lm_head, self.grid, self.bucket = model, lm_head, grid, bucket
        self.kv_cache = kv_cache
        device = next(model.parameters()).device
        self.use_graphs = (device.type == "cuda") if use_graphs is None else use_graphs
        self.fused = fused
        self.weights = weights if weights is not None else ModelWeights(model)
        self._session: Optional[ImageSession] = None

    def release(self) -> None:
        """Drop the kept session (KV cache, graphs) so its memory can be used for something else."""
        self._session = None

    def _open(self, key: tuple, B: int, width: int, guided: bool, cfg: float, image_top_k: int,
              temperature: float) -> ImageSession:
        grid = self.grid
        n = grid.n_tokens
        R = 2 * B if guided else B
        lean = LeanChameleon(self.model, self.lm_head, R, width + n, fused=self.fused, kv_cache=self.kv_cache,
                             weights=self.weights)
        dev = lean.device
        sess = ImageSession(
            key=key, lean=lean, runner=GraphSteps(self.use_graphs),
            schedule=grid.schedule().to(dev),
            seeds=torch.zeros(B, dtype=torch.long, device=dev),
            pad=torch.zeros(R, dtype=torch.long, device=dev),
            out=torch.empty((B, n), dtype=torch.long, device=dev),
            # Static state the step reads and advances in place (so a captured graph can replay it).
            state={"tok": torch.zeros(R, dtype=torch.long, device=dev),
                   "col": torch.tensor(width, device=dev), "step": torch.tensor(1, device=dev)},
        )
        # Only image ids can be sampled, so logits (and CFG, top-k) are computed over that id range alone.
        lo, hi = grid.image_lo, grid.image_hi + 1
        state, out, seeds, pad, schedule = sess.state, sess.out, sess.seeds, sess.pad, sess.schedule

        def step(length: int) -> None:
            tok, col, stp = state["tok"], state["col"], state["step"]
            pos = (col - pad)[:, None]
            logits = lean.forward(pos, col.reshape(1), length, ids=tok[:, None], vocab=(lo, hi))
            if guided:
                logits = cfg_mix(logits[:B], logits[B:], float(cfg))
            # noise keyed by token id (ids relative to lo), so tied logits in any order draw the same token
            sampled = gumbel_topk_sample(logits, image_top_k, temperature,
                                         lambda idx: token_uniforms(seeds, stp, idx)) + lo
            forced = schedule.index_select(0, stp.reshape(1))
            nxt = torch.where(forced >= 0, forced.expand(B), sampled)
            out.index_copy_(1, stp.reshape(1), nxt[:, None])
            tok.copy_(nxt.repeat(2) if guided else nxt)
            col.add_(1)
            stp.add_(1)

        sess.step = step
        return sess

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], seeds: Sequence[int], cfg: Optional[float] = 3.0,
                 image_top_k: int = 2000, temperature: float = 1.0, boi: int = 8197,
                 uncond: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Returns [B, n_tokens] generated ids (size tokens, rows with newlines, EOI).

        ``uncond``: the unconditional branch's context (default ``[boi]``; Meta's Chameleon: ``[BOS, BOI]``).
        A grid whose first token is not forced (no size tokens) draws it from the prefill's logits."""
        grid = self.grid
        B = len(prompts)
        guided = cfg is not None and cfg != 1.0
        R = 2 * B if guided else B
        width = round_up(max(len(p) for p in prompts), self.WIDTH_BUCKET, 1 << 30)
        n = grid.n_tokens
        image_top_k = min(int(image_top_k), grid.image_hi + 1 - grid.image_lo)
        key = (B, width, guided, float(cfg) if guided else None, image_top_k, float(temperature))
        if self._session is None or self._session.key != key:
            self._session = None  # free the old cache before allocating the new one
            self._session = self._open(key, B, width, guided, cfg, image_top_k, temperature)
        sess = self._session
        lean, state, out = sess.lean, sess.state, sess.out
        dev = lean.device
        # Prefill: cond rows left-padded to `width`; uncond rows hold their context (BOI) in the last columns.
        ids = torch.zeros((R, width), dtype=torch.long)
        pad = torch.zeros(R, dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p):] = torch.tensor(p)
            pad[b] = width - len(p)
        if guided:
            u = list(uncond) if uncond is not None else [boi]
            ids[B:, width - len(u):] = torch.tensor(u)
            pad[B:] = width - len(u)
        ids = ids.to(dev)
        sess.pad.copy_(pad)
        pad = sess.pad
        cols = torch.arange(width + n, device=dev)
        lean.valid[:R] = cols[None, :] >= pad[:, None]
        positions = (torch.arange(width, device=dev)[None, :] - pad[:, None]).clamp(min=0)
        logits = lean.forward(positions, 0, width, ids=ids, vocab=(grid.image_lo, grid.image_hi + 1))

        sess.seeds.copy_(torch.tensor([int(x) for x in seeds], dtype=torch.long))
        out.fill_(0)
        if int(sess.schedule[0]) >= 0:
            out[:, 0] = sess.schedule[0]
        else:  # the first image token comes from the prompt's own logits
            if guided:
                logits = cfg_mix(logits[:B], logits[B:], float(cfg))
            step0 = torch.zeros((), dtype=torch.long, device=dev)
            out[:, 0] = gumbel_topk_sample(logits, image_top_k, temperature,
                                           lambda idx: token_uniforms(sess.seeds, step0, idx)) + grid.image_lo
        state["tok"].copy_(out[:, 0].repeat(2 if guided else 1))
        state["col"].fill_(width)
        state["step"].fill_(1)
        runner = sess.runner
        # Columns 0..width+s-1 hold the context including the token fed at step s.
        lengths = [round_up(width + s, self.bucket, lean.max_len) for s in range(n)]
        for s in range(1, n):
            runner(sess.step, lengths[s], state, remaining=lengths[s:].count(lengths[s]))
        return out.cpu()
