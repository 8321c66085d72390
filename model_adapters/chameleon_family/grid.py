"""Where the tokens of one generated image go: size tokens, rows of codes with newlines, EOI."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageGrid:
    """The token layout of one generated image (Chameleon/UniToken 512x512: 32x32 codes)."""

    rows: int = 32
    cols: int = 32
    size_token: int = 8820  # <reserved08820>: 16 (x32 px) for 512
    newline: int = 8803
    eoi: int = 8196
    image_lo: int = 4
    image_hi: int = 8195  # inclusive

    @property
    def n_tokens(self) -> int:
        """Generated tokens after BOI: height, width, rows x (cols + newline), EOI."""
        return 2 + self.rows * (self.cols + 1) + 1

    def schedule(self) -> torch.Tensor:
        """Per generated step: the forced token, or -1 where an image token is sampled."""
        out = torch.full((self.n_tokens,), -1, dtype=torch.long)
        out[0] = out[1] = self.size_token
        for p in range(self.rows * (self.cols + 1)):
            if p % (self.cols + 1) == self.cols:
                out[2 + p] = self.newline
        out[-1] = self.eoi
        return out

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, n_tokens] generated ids -> [B, rows, cols] BPE ids of the image (size, newlines, EOI dropped)."""
        body = tokens[:, 2 : 2 + self.rows * (self.cols + 1)].reshape(-1, self.rows, self.cols + 1)
        return body[:, :, : self.cols]
