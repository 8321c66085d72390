"""Where the tokens of one generated image go: size tokens, rows of codes with newlines, EOI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class ImageGrid:
    """The token layout of one generated image (Chameleon/UniToken 512x512: 32x32 codes).

    ``size_token`` / ``newline`` None: no size tokens / no newline after each row (Meta's Chameleon: 1024 codes
    then EOI)."""

    rows: int = 32
    cols: int = 32
    size_token: Optional[int] = 8820  # <reserved08820>: 16 (x32 px) for 512
    newline: Optional[int] = 8803
    eoi: int = 8196
    image_lo: int = 4
    image_hi: int = 8195  # inclusive

    @property
    def _head(self) -> int:
        return 0 if self.size_token is None else 2

    @property
    def _row(self) -> int:
        return self.cols + (0 if self.newline is None else 1)

    @property
    def n_tokens(self) -> int:
        """Generated tokens after BOI: height, width, rows x (cols + newline), EOI."""
        return self._head + self.rows * self._row + 1

    def schedule(self) -> torch.Tensor:
        """Per generated step: the forced token, or -1 where an image token is sampled."""
        out = torch.full((self.n_tokens,), -1, dtype=torch.long)
        if self.size_token is not None:
            out[0] = out[1] = self.size_token
        if self.newline is not None:
            for p in range(self.rows * self._row):
                if p % self._row == self.cols:
                    out[self._head + p] = self.newline
        out[-1] = self.eoi
        return out

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, n_tokens] generated ids -> [B, rows, cols] BPE ids of the image (size, newlines, EOI dropped)."""
        body = tokens[:, self._head : self._head + self.rows * self._row].reshape(-1, self.rows, self._row)
        return body[:, :, : self.cols]
