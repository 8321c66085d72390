"""The Task interface: what a benchmark must say for the engine to run and score it.

A task's whole contract is visible in its own module: where its data comes from, the prompt it builds,
how it scores, which reference scorer each profile reproduces, and its headline metric with its scale.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from harness.types import Kind, Prediction, Request, Sample, TaskResult


class TaskError(Exception):
    """A problem with a task's inputs, stated with the file and row or sample it concerns."""


def tolerate(message: str, skip_bad: bool) -> str:
    """The one rule for a bad sample: an error naming it, unless the user chose ``--skip-bad``.

    With ``skip_bad`` the message comes back for the caller to record as that sample's error, so the sample
    is counted in the results instead of vanishing (a silently shorter benchmark would look like a score).
    """
    if not skip_bad:
        raise TaskError(message)
    return message


@dataclass
class ScoreContext:
    """What scoring may use besides predictions: the profile, an optional judge, a cache directory.

    ``judge`` is None when the user gave none; tasks that need one must then report "not scored" rather
    than a zero.  ``work_dir`` is the task's directory in the run store (caches such as detections live there).
    """

    profile: str
    work_dir: Optional[Path] = None
    judge: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("unitoken_eval.score"))

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log.warning(message)


# One 512x512 image with CFG against one understanding prompt, in GPU time on an H200: ~0.26 s (3.9 images/s,
# bf16 KV) against ~0.10 s (the paper suite's understanding prompts, 59 min for 34.9k of them), both from
# bench/records/throughput-NVIDIA-H200-20261129-084902.json.  Only the order of magnitude matters here.
IMAGE_WORK = 2.5


class Task(ABC):
    """Base class of every benchmark.

    Class attributes every task sets:
      id: the registry id (``mmbench_dev_en``)
      kind: "understand" or "generate"
      headline: (metric name, scale)
      references: profile -> the scorer that profile reproduces (with commit), recorded in results
    """

    id: ClassVar[str]
    kind: ClassVar[Kind]
    headline: ClassVar[tuple[str, str]]
    references: ClassVar[dict[str, str]] = {}
    default_profile: ClassVar[str] = "official"
    # A group task (t2i_compbench) runs its members and reports their combination.
    subtasks: ClassVar[tuple[str, ...]] = ()
    # What load() read, for the run manifest: a rerun must be able to check it reads the same bytes.
    data_path: Optional[str] = None
    data_sha256: Optional[str] = None

    def __init__(self, options: Optional[dict[str, Any]] = None):
        self.options = dict(options or {})
        # Set by the engine from --skip-bad before load(): bad rows then become samples with ``error`` set.
        self.skip_bad = False

    def tolerate(self, message: str) -> str:
        """:func:`tolerate` with this task's ``--skip-bad`` setting."""
        return tolerate(message, self.skip_bad)

    def work_per_sample(self) -> float:
        """A sample's GPU time relative to one understanding prompt, to order and balance shards
        (harness/plan.py); generation tasks count their images."""
        return 1.0

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

    # ----- scoring
    @abstractmethod
    def score(
        self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext
    ) -> dict[str, dict[str, Any]]:
        """Per-sample score records keyed by sample id (each holds at least ``score``)."""

    @abstractmethod
    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        """Metrics with one named headline on a stated scale."""

    def combine(self, members: dict[str, TaskResult], ctx: ScoreContext) -> TaskResult:
        """A group task's result from its members' results (only group tasks override this)."""
        raise NotImplementedError(f"{self.id} is not a group task")

    def profile(self, ctx_profile: Optional[str]) -> str:
        p = ctx_profile or self.default_profile
        if self.references and p not in self.references:
            raise TaskError(f"task {self.id}: unknown scoring profile {p!r}; choose from {sorted(self.references)}")
        return p
