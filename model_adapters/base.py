"""The ModelAdapter interface.

Batching, KV-cache reuse, CFG and compilation live inside an adapter; the runner hands it batches and never
knows the model.  Options come as lmms-eval style strings (``path=...,dtype=bfloat16``) parsed once here.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

from PIL import Image

from harness.types import GenerateRequest, Kind, UnderstandRequest


class AdapterError(Exception):
    """A model could not be loaded or run; the message names the file, key or option at fault."""


class SampleErrors(AdapterError):
    """Some requests of a batch have no answer while the others do (a replayed file lacks those samples).

    ``answers`` has one entry per request (None where there is none); ``errors`` maps a request's position to
    the reason, naming the file and sample.  Under ``--skip-bad`` the runner records those samples as errors
    and keeps the other answers; otherwise the run stops with this message.
    """

    def __init__(self, message: str, answers: list, errors: dict[int, str]):
        super().__init__(message)
        self.answers = list(answers)
        self.errors = dict(errors)


class TokenIdsUnsupported(AdapterError):
    """The adapter does not report generated token ids (``*_with_tokens``); callers fall back to plain calls."""


def parse_model_args(text: str | None) -> dict[str, str]:
    """Parse ``key=value,key=value`` (lmms-eval's --model_args convention) into a dict.

    Values may not contain commas; a bare key without ``=`` is an error naming it.
    """
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise AdapterError(f"model argument {part!r} has no '=': expected key=value[,key=value...]")
        key, value = part.split("=", 1)
        key = key.strip()
        if not key:
            raise AdapterError(f"model argument {part!r} has an empty key")
        out[key] = value.strip()
    return out


class ModelAdapter(ABC):
    """Base class of every model adapter.

    Subclasses set ``id`` and ``capabilities`` and implement the methods their capabilities name.
    ``fingerprint()`` identifies the checkpoint (for run manifests and for refusing to resume a run with a
    different model).
    """

    id: ClassVar[str]
    capabilities: ClassVar[frozenset[Kind]] = frozenset()

    def __init__(self, **model_args: Any):
        self.model_args = dict(model_args)

    def understand(self, requests: list[UnderstandRequest]) -> list[str]:
        raise AdapterError(f"model {self.id} cannot answer questions about images")

    def generate(self, requests: list[GenerateRequest]) -> list[list[Image.Image]]:
        raise AdapterError(f"model {self.id} cannot generate images")

    def understand_with_tokens(self, requests: list[UnderstandRequest]) -> list[dict[str, Any]]:
        """Like :meth:`understand`, with the generated token ids: ``[{"text": str, "token_ids": list[int]}]``.

        Optional: the default raises :class:`TokenIdsUnsupported` and ``unitoken-eval predict`` then reports
        the text without ids.
        """
        raise TokenIdsUnsupported(f"model {self.id} does not report generated token ids")

    def generate_with_tokens(self, requests: list[GenerateRequest]) -> list[dict[str, Any]]:
        """Like :meth:`generate`, with each image's token ids: ``[{"images": [...], "token_ids": [[int]]}]``.

        Optional, as :meth:`understand_with_tokens`.
        """
        raise TokenIdsUnsupported(f"model {self.id} does not report image token ids")

    def fingerprint(self) -> dict[str, Any]:
        return {"adapter": self.id, "args": {k: v for k, v in self.model_args.items()}}

    def prepare(self, requests: list[UnderstandRequest]) -> None:
        """CPU work on a batch's requests done ahead: the runner calls this in a background thread while the
        model works on the previous batch.  It may only fill ``request.prepared`` (pixels, crops) and must not
        touch the device or the model's state; whatever it leaves out is computed in line as before.
        """

    def batch_size(self, kind: Kind) -> int:
        """How many requests of ``kind`` the runner should hand over at once."""
        return 1

    def close(self) -> None:
        """Release devices and files."""
