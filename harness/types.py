"""The data that crosses the boundary between tasks, adapters and the engine.

Tasks produce :class:`Sample` and requests; adapters turn requests into text or images; the engine stores
:class:`Prediction` records and hands them back to the task for scoring.  Keeping these plain dataclasses
(no model or benchmark specifics) is what lets a third-party task run against any adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Union

from PIL import Image

Kind = Literal["understand", "generate"]


@dataclass
class Sample:
    """One benchmark item.

    ``id`` is the benchmark's own identifier as a string (VLMEvalKit ``index``, GenEval line number, ...);
    it keys every stored record, so it must be unique within a task.  ``image`` is either a PIL image or a
    zero-argument loader, so a 15k-row TSV does not hold every decoded image in memory at once.
    ``error`` is set on a bad row kept under ``--skip-bad`` (it names the file and row): the engine records it
    as an error instead of sending it to the model, so it is counted rather than silently dropped.
    ``image_key`` is the identity of the sample's image within its task (same key => same pixels: MMBench's
    circular copies, MME's question pairs); the plan keeps samples with one key in one batch so the adapter
    prefills that image once, and the task passes it on as the request's ``image_key``.
    """

    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    image: Union[Image.Image, Callable[[], Image.Image], None] = None
    error: Optional[str] = None
    image_key: Optional[str] = None

    def load_image(self) -> Optional[Image.Image]:
        if self.image is None or isinstance(self.image, Image.Image):
            return self.image
        return self.image()


@dataclass(frozen=True)
class BenchmarkSize:
    """How big a whole benchmark is under the protocol its task reproduces, as the task declares it (so a
    suite's size is known without its data present).

    ``samples``: the task's samples (rows / prompts).  ``images``: distinct input images among them
    (understanding; prompts about one image share a prefill), None when every sample has its own.
    ``answer_tokens``: the typical answer length, in tokens, of a model answering as the prompt asks: what a
    speed estimate decodes (a random-weight model never stops by itself).
    """

    samples: int
    images: Optional[int] = None
    answer_tokens: Optional[int] = None

    @property
    def input_images(self) -> int:
        return self.samples if self.images is None else self.images


@dataclass
class UnderstandRequest:
    """Answer ``prompt`` about ``images``.

    ``image_key`` names the image's identity (same key => same pixels) so an adapter may share one prefill
    of the image prefix between prompts about the same image (MMBench circular copies, MME pairs).
    """

    sample_id: str
    prompt: str
    images: list[Image.Image] = field(default_factory=list)
    image_key: Optional[str] = None
    max_new_tokens: int = 512
    options: dict[str, Any] = field(default_factory=dict)
    # The task the sample belongs to (set by the runner): sample ids repeat across benchmarks, so an adapter
    # that looks answers up (replay) needs both.
    task_id: Optional[str] = None
    # What the adapter's preprocess() computed ahead on the CPU (pixel tensors): scratch, never serialised.
    prepared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class GenerateRequest:
    """Draw ``n_images`` images for ``prompt``; image ``k`` uses seed ``seed + k`` so reruns are identical."""

    sample_id: str
    prompt: str
    n_images: int = 1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    task_id: Optional[str] = None


Request = Union[UnderstandRequest, GenerateRequest]


@dataclass
class Prediction:
    """What the store keeps per sample: the model's text or the paths of its images, relative to the task dir."""

    sample_id: str
    text: Optional[str] = None
    images: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        d = {"id": self.sample_id}
        if self.text is not None:
            d["prediction"] = self.text
        if self.images:
            d["images"] = list(self.images)
        if self.meta:
            d["meta"] = self.meta
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Prediction":
        return cls(
            sample_id=str(d["id"]),
            text=d.get("prediction"),
            images=list(d.get("images", [])),
            meta=dict(d.get("meta", {})),
            error=d.get("error"),
        )


@dataclass
class Headline:
    """The one number a benchmark is reported by, with its scale so nobody mixes 0-1 with 0-100."""

    name: str
    value: Optional[float]
    scale: str  # e.g. "percent", "points_0_1000", "points_0_2800", "fraction"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TaskResult:
    """Aggregated metrics of one task on one run.

    ``status`` is "scored", or "not_scored" with ``reason`` (e.g. MM-Vet without a judge): an unscored task
    is never a zero.  ``n`` counts what the metrics average over (samples, images or circular groups, as the
    benchmark counts); ``n_samples`` the task's samples in this run, of which ``n_errors`` were recorded as
    errors (bad input under --skip-bad) and ``n_missing`` have no prediction yet: a reader can tell a metric
    over the whole benchmark from one over part of it.
    """

    task: str
    profile: str
    headline: Headline
    metrics: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    n_errors: int = 0
    n_samples: Optional[int] = None
    n_missing: int = 0
    status: str = "scored"
    reason: Optional[str] = None
    reference: Optional[str] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def n_covered(self) -> Optional[int]:
        """Samples the metrics cover: the task's samples less those with an error or no prediction."""
        if self.n_samples is None:
            return None
        return self.n_samples - self.n_errors - self.n_missing

    @property
    def partial(self) -> bool:
        """Scored over part of the task's samples; every place that shows the number says so."""
        return self.status == "scored" and (self.n_missing > 0 or self.n_errors > 0)

    def coverage(self) -> str:
        """``"partial: 4 of 10 samples"`` for a partial result, else ``""``."""
        if not self.partial:
            return ""
        of = f" of {self.n_samples}" if self.n_samples is not None else ""
        covered = self.n_covered if self.n_covered is not None else self.n
        return f"partial: {covered}{of} samples"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["headline"] = self.headline.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TaskResult":
        d = dict(d)
        d["headline"] = Headline(**d["headline"])
        return cls(**d)
