"""Replaying a decode step as captured CUDA graphs, one per attention length."""

from __future__ import annotations

import math

import torch


def round_up(need: int, step: int, cap: int) -> int:
    """``need`` rounded up to a multiple of ``step``, at most ``cap``: lengths that share one graph."""
    return min(cap, int(math.ceil(need / step) * step))


class GraphSteps:
    """Run a state-advancing step function eagerly, or as one captured CUDA graph per attention length.

    Capturing costs about two eager steps (a warm-up run, then recording every kernel of the step), and a
    replayed step is several times faster than an eager one: a length is captured when at least
    ``min_replays`` steps will use it, counting the one about to run and, for a session kept across batches,
    the batches to come (``min_replays=1``: capture on first use).
    """

    MIN_REPLAYS = 4

    def __init__(self, use_graphs: bool, min_replays: int = MIN_REPLAYS):
        self.use_graphs = use_graphs
        self.min_replays = min_replays
        self.graphs: dict[int, "torch.cuda.CUDAGraph"] = {}
        # One memory pool for all of a loop's graphs: they replay one after another, never at once.
        self.pool = torch.cuda.graph_pool_handle() if use_graphs else None

    def __call__(self, step, length: int, state: dict, remaining: int) -> None:
        """``remaining``: how many steps, this one included, will run at this length."""
        if length in self.graphs:
            self.graphs[length].replay()
        elif not self.use_graphs or remaining < self.min_replays:
            step(length)
        else:
            self.graphs[length] = self._capture(step, length, state, self.pool)

    @staticmethod
    def _capture(step, length: int, state: dict, pool) -> "torch.cuda.CUDAGraph":
        # Warm up on a side stream (as capture requires), undo the state advance, capture, then replay once:
        # capturing records without executing.
        saved = {k: v.clone() for k, v in state.items()}
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            step(length)
        torch.cuda.current_stream().wait_stream(s)
        for k, v in state.items():
            v.copy_(saved[k])
        g = torch.cuda.CUDAGraph()
        # thread_local: the adapter decodes the previous batch's images in another thread meanwhile; its
        # synchronising calls are not part of this capture and must not invalidate it.
        with torch.cuda.graph(g, pool=pool, capture_error_mode="thread_local"):
            step(length)
        g.replay()
        return g
