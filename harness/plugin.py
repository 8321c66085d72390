"""Everything a plugin author needs: import tasks, model adapters and their data types from this one module.

A task (a benchmark) subclasses :class:`Task` (or :class:`GroupTask` for a group that only combines its
members' results); a model adapter subclasses :class:`ModelAdapter`.  Both register through entry points
(``unitoken_eval.tasks``, ``unitoken_eval.model_adapters``).  The engine owns these contracts and never
imports a plugin: it finds plugins by entry point and talks to them only through what is declared here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol, Sequence, Union, runtime_checkable

from PIL import Image

from unitoken_eval.harness.types import (
    BenchmarkSize,
    GenerateRequest,
    Headline,
    Kind,
    Prediction,
    Request,
    Sample,
    TaskResult,
    UnderstandRequest,
)

__all__ = [
    "BenchmarkSize",
    # data types
    "Kind", "Sample", "UnderstandRequest", "GenerateRequest", "Request", "Prediction", "Headline", "TaskResult",
    # tasks
    "Task", "GroupTask", "ScoreContext", "TaskError", "tolerate", "NotScored", "not_scored_record",
    "not_scored_reason",
    # judges
    "Judge", "JudgeUnavailable",
    # model adapters
    "ModelAdapter", "AdapterError", "SampleErrors", "TokenIdsUnsupported", "parse_model_args",
]


# ============================================================================================ errors
class TaskError(Exception):
    """A problem with a task's inputs, stated with the file and row or sample it concerns."""


class NotScored(Exception):
    """The one "not scored" signal: what scoring needs (a judge, a detector, scorer weights) is missing.

    A task may raise it from ``score`` or ``aggregate``; the engine then reports the task as not scored with
    this reason (:meth:`Task.not_scored`), never as a zero.
    """


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


class JudgeUnavailable(RuntimeError):
    """The judge did not answer usefully within the retries and the time limit."""


def tolerate(message: str, skip_bad: bool) -> str:
    """The one rule for a bad sample: an error naming it, unless the user chose ``--skip-bad``.

    With ``skip_bad`` the message comes back for the caller to record as that sample's error, so the sample
    is counted in the results instead of vanishing (a silently shorter benchmark would look like a score).
    """
    if not skip_bad:
        raise TaskError(message)
    return message


# ============================================================================================ judges
@runtime_checkable
class Judge(Protocol):
    """What a task may call on ``ScoreContext.judge`` (harness/judge.py implements it over an
    OpenAI-compatible endpoint).  Failures raise :class:`JudgeUnavailable`."""

    @property
    def name(self) -> str:
        """Endpoint and model, recorded in results (never a key)."""

    def complete(self, prompt: str, temperature: float = 0.0, max_tokens: Optional[int] = None) -> str:
        """The reply text for one user prompt."""

    def complete_many(self, prompts: Sequence[str], temperature: float = 0.0, max_tokens: Optional[int] = None,
                      return_errors: bool = False) -> list[Union[str, JudgeUnavailable]]:
        """Replies in prompt order; with ``return_errors`` an unanswered prompt yields its JudgeUnavailable."""


# ============================================================================================ tasks
@dataclass
class ScoreContext:
    """What scoring may use besides predictions: the profile, an optional judge, a cache directory.

    ``judge`` is None when the user gave none; tasks that need one must then report "not scored" rather
    than a zero.  ``work_dir`` is the task's directory in the run store (caches such as detections live there).
    """

    profile: str
    work_dir: Optional[Path] = None
    judge: Optional[Judge] = None
    warnings: list[str] = field(default_factory=list)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("unitoken_eval.score"))

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log.warning(message)


def not_scored_record(reason: str) -> dict[str, Any]:
    """A per-sample score record for a sample that could not be scored (kept in scores.jsonl with its reason)."""
    return {"score": None, "status": "not_scored", "reason": reason}


def not_scored_reason(records: dict[str, dict[str, Any]]) -> Optional[str]:
    """The reason of the first :func:`not_scored_record` among ``records`` (None when every record is scored)."""
    return next((r["reason"] for r in records.values() if r.get("status") == "not_scored"), None)


class Task(ABC):
    """Base class of every benchmark.

    Class attributes every task sets:
      id: the registry id (``mmbench_dev_en``)
      kind: "understand" or "generate"
      headline: (metric name, scale)
      references: profile -> the scorer that profile reproduces (with commit), recorded in results

    Task options (``options.<task>`` of a run config; ``score --option``) come in through the constructor
    only; a task validates them there.  The ``request`` option (a mapping, e.g. ``{cfg: 5.0}``) is merged
    into every request the task makes (:attr:`request_options`).
    """

    id: ClassVar[str]
    kind: ClassVar[Kind]
    headline: ClassVar[tuple[str, str]]
    references: ClassVar[dict[str, str]] = {}
    default_profile: ClassVar[str] = "official"
    # The whole benchmark's size (None: not declared): `unitoken-eval list` sums it per suite, and speed
    # projections multiply measured rates by it.
    full_size: ClassVar[Optional[BenchmarkSize]] = None
    # Set by GroupTask: the member task ids a group runs before combining them.
    subtasks: ClassVar[tuple[str, ...]] = ()
    # What load() read, for the run manifest: a rerun must be able to check it reads the same bytes.
    data_path: Optional[str] = None
    data_sha256: Optional[str] = None

    def __init__(self, options: Optional[dict[str, Any]] = None):
        self.options = dict(options or {})
        request = self.options.get("request", {})
        if not isinstance(request, dict):
            raise TaskError(f"task {self.id}: option 'request' must be a mapping of request options, got {request!r}")
        self.request_options: dict[str, Any] = dict(request)
        # Set by the engine from --skip-bad before load(): bad rows then become samples with ``error`` set.
        self.skip_bad = False
        # Set by load(): ids of rows the data holds but this task leaves out (another split), id -> why.
        # Predictions for them are reported as left out, not as unknown samples.
        self.left_out: dict[str, str] = {}

    def tolerate(self, message: str) -> str:
        """:func:`tolerate` with this task's ``--skip-bad`` setting."""
        return tolerate(message, self.skip_bad)

    # ----- statistics and subsets (the regression gate, harness/compare.py; quick suites, harness/subset.py)
    # The sample field holding the benchmark's own category: subsets are drawn stratified by it.
    stratum_field: ClassVar[Optional[str]] = None

    def pairing_groups(self, records: dict[str, dict[str, Any]]) -> Optional[dict[str, str]]:
        """Score-record id -> group, where the benchmark scores samples together (two questions about one
        image); the gate's paired test then treats each group as one unit.  None: every record stands alone."""
        return None

    def subset_unit(self, sample: Sample) -> str:
        """What a subset keeps or drops whole (a circular group, an image's question pair); default the sample."""
        return sample.id

    def images_per_sample(self) -> int:
        """How many images the model draws for one sample (0 for understanding tasks); the plan weighs shards
        by it (harness/plan.py)."""
        return 1 if self.kind == "generate" else 0

    def data_identity(self) -> dict[str, Any]:
        """Where the loaded data came from and its digest (None where the source has no single file)."""
        return {"path": self.data_path, "sha256": self.data_sha256}

    # ----- data
    @abstractmethod
    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        """Read the benchmark's samples from ``source`` (a path, hub id, or None for the default location)."""

    def smoke_source(self) -> Optional[str]:
        """Path of this task's embedded smoke data (built by the project in the benchmark's real schema)."""
        return None

    def describe_sources(self) -> list[dict[str, Any]]:
        """Where the data is looked for and whether it is there (for ``unitoken-eval data``)."""
        return []

    def fetch(self) -> Any:
        """Download and verify the official data files (``unitoken-eval data --fetch``); the default has nothing
        to fetch (data that comes from the hub or from a path the user gives)."""
        return None

    # ----- inference
    @abstractmethod
    def request(self, sample: Sample) -> Request:
        """The model request for one sample (prompt built as the reference harness builds it)."""

    def image_path(self, sample: Sample, k: int) -> str:
        """Relative path, in the benchmark's official layout, of generated image ``k`` of ``sample``."""
        raise NotImplementedError(f"{self.id} does not generate images")

    def write_sample_files(self, out_dir: Path, sample: Sample) -> None:
        """Side files the official layout needs next to the images (GenEval's metadata.jsonl)."""

    def predictions_from_images(self, images_dir: Path, samples: list[Sample]) -> dict[str, Prediction]:
        """Generation tasks: rebuild predictions from a folder in the official layout (for ``score --images``)."""
        raise NotImplementedError(f"{self.id} does not score image folders")

    def read_native_predictions(self, path: Path) -> Optional[dict[str, Prediction]]:
        """Predictions from the benchmark's own output format when ``path`` is such a file, else None
        (``score`` then reads our predictions lines)."""
        return None

    # ----- scoring
    @abstractmethod
    def score(
        self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext
    ) -> dict[str, dict[str, Any]]:
        """Per-sample score records keyed by sample id (each holds at least ``score``)."""

    @abstractmethod
    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        """Metrics with one named headline on a stated scale."""

    def profile(self, ctx_profile: Optional[str]) -> str:
        p = ctx_profile or self.default_profile
        if self.references and p not in self.references:
            raise TaskError(f"task {self.id}: unknown scoring profile {p!r}; choose from {sorted(self.references)}")
        return p

    def not_scored(self, profile: str, reason: str, **fields: Any) -> TaskResult:
        """This task's result when it cannot be scored: the headline has no value (never a zero) and ``reason``
        says why; ``fields`` fill the rest of the :class:`TaskResult` (metrics, n, warnings)."""
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], None, self.headline[1]),
                          status="not_scored", reason=reason, reference=self.references.get(profile), **fields)


class GroupTask(Task):
    """A task that runs its members (``subtasks``) and reports their combination (T2I-CompBench++).

    It has no samples of its own: the engine runs and scores the members, then calls :meth:`combine`.
    """

    subtasks: ClassVar[tuple[str, ...]]

    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        return []

    def request(self, sample: Sample) -> Request:
        raise TaskError(f"{self.id} is a group task: its members ({', '.join(self.subtasks)}) make the requests")

    def score(self, samples, predictions, ctx):
        raise TaskError(f"{self.id} is a group task: score its members ({', '.join(self.subtasks)}) one by one")

    def aggregate(self, records, ctx):
        raise TaskError(f"{self.id} is a group task: its result comes from combine()")

    @abstractmethod
    def combine(self, members: dict[str, TaskResult], ctx: ScoreContext) -> TaskResult:
        """The group's result from its members' results (a member may be missing or not scored)."""


# ============================================================================================ adapters
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

    Batching, KV-cache reuse, CFG and compilation live inside an adapter; the runner hands it batches and
    never knows the model.  Subclasses set ``id`` and ``capabilities`` and implement the methods their
    capabilities name.  ``fingerprint()`` identifies the checkpoint (for run manifests and for refusing to
    resume a run with a different model).  Options come as lmms-eval style strings (``path=...,dtype=bf16``)
    parsed once by :func:`parse_model_args`.
    """

    id: ClassVar[str]
    capabilities: ClassVar[frozenset[Kind]] = frozenset()
    # Set by a model whose numbers say nothing about any real model (random weights): why, in a few words.
    # Its runs are marked smoke in every table and report and never take part in "best".
    stand_in: ClassVar[Optional[str]] = None

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

    def preprocess(self, requests: list[UnderstandRequest]) -> None:
        """CPU work on a batch's requests done ahead: the runner calls this in a background thread while the
        model works on the previous batch.  It may only fill ``request.prepared`` (pixels, crops) and must not
        touch the device or the model's state; whatever it leaves out is computed in line as before.
        """

    def batch_size(self, kind: Kind) -> int:
        """How many requests of ``kind`` the runner should hand over at once."""
        return 1

    def counters(self) -> dict[str, float]:
        """Running totals of the adapter's work (e.g. image prefills, generated images) since it was made; the
        runner records each task's share beside its wall time (``inference.jsonl`` in the run directory)."""
        return {}

    def close(self) -> None:
        """Release devices and files."""
