"""VQ decoding of generated images in a worker thread, on its own CUDA stream, while the GPU samples the
next chunk's tokens.  The adapter and bench/throughput.py both use this, so the benchmark's figure for the
overlap is the adapter's."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import torch
from PIL import Image


class BackgroundDecoder:
    """``submit(codes)`` returns a future of the images; one image per decoder call, because batched
    convolutions may pick other kernels (other rounding) and an image must not depend on its batch-mates.
    Use as a context manager: leaving it waits for what was submitted."""

    def __init__(self, vq, device: torch.device):
        self.vq = vq
        self.stream = torch.cuda.Stream(device) if torch.device(device).type == "cuda" else None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vq-decode")

    def submit(self, codes: torch.Tensor) -> "Future[list[Image.Image]]":
        """``codes`` [B, h, w] on the CPU (so the caller's tensors can be reused at once)."""
        if self.stream is not None:
            # the codes' producer (the sampling stream) must be done before the side stream reads them
            self.stream.wait_stream(torch.cuda.current_stream())
        return self.pool.submit(self._decode, codes)

    def _decode(self, codes: torch.Tensor) -> list[Image.Image]:
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            return [self.vq.decode(codes[j: j + 1])[0] for j in range(codes.shape[0])]

    def __enter__(self) -> "BackgroundDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)
