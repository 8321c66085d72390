"""Columns and averages of a results table, computed from a run's stored metrics by a layout held as data.

A layout (what a paper prints: which task, which metric, on which scale, which averages with which
divisors) is data in a YAML file beside the tasks, so this module stays free of benchmark names and a new
paper's table is a new YAML entry.  The one rule that matters for honesty lives here: an average whose
member is missing or unscored is *incomplete* and has no value; it is never computed over fewer members.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from unitoken_eval.harness.types import TaskResult

LAYOUTS_ENV = "UNITOKEN_EVAL_LAYOUTS"
DATA_PACKAGE = "unitoken_eval.results"


class AggregateError(Exception):
    """A layout file or a stored metric that cannot be used; the message names the file and the entry."""


# ----------------------------------------------------------------------------------------------- scales
_POINTS = re.compile(r"^points_0_(\d+(?:\.\d+)?)$")
_FIXED = {"percent": 100.0, "fraction": 1.0}


def scale_max(scale: str) -> float:
    """The top of a scale: percent 100, fraction 1, points_0_N N."""
    if scale in _FIXED:
        return _FIXED[scale]
    m = _POINTS.match(scale or "")
    if m:
        return float(m.group(1))
    raise AggregateError(f"unknown scale {scale!r} (known: percent, fraction, points_0_N)")


def convert(value: float, from_scale: str, to_scale: str, divisor: Optional[float] = None) -> float:
    """Put ``value`` on ``to_scale``: by ``divisor`` when one is given, else proportionally between the tops."""
    if divisor is not None:
        return value / divisor
    if from_scale == to_scale:
        return value
    return value * scale_max(to_scale) / scale_max(from_scale)


# Metric names that hold counts or settings, not scores (n_images, per_subject_n, random_seed, judged, ...).
_NOT_A_SCORE = re.compile(r"(^|[_ .])(n|num|count|counts|seed|samples|judged|pending|size|version)($|[_ .])", re.I)


def is_score_metric(name: str, value: Any) -> bool:
    """Whether a (dotted) metric is a score that may be charted, not a counter or a setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # Only the top-level key decides: below it are category names ("subtasks.count" is MME's count score).
    return not _NOT_A_SCORE.search(name.split(".", 1)[0])


# ----------------------------------------------------------------------------------------------- layouts
@dataclass
class Member:
    task: str
    metric: Optional[str] = None
    metric_scale: Optional[str] = None
    divisor: Optional[float] = None
    label: Optional[str] = None

    @property
    def name(self) -> str:
        base = self.label or self.task
        return f"{base}.{self.metric}" if self.metric else base


@dataclass
class Column:
    id: str
    label: str
    scale: str
    digits: int = 1
    group: Optional[str] = None
    task: Optional[str] = None
    metric: Optional[str] = None
    metric_scale: Optional[str] = None
    average: list[Member] = field(default_factory=list)
    higher_is_better: bool = True

    @property
    def is_average(self) -> bool:
        return bool(self.average)

    @property
    def tasks(self) -> list[str]:
        return [m.task for m in self.average] if self.average else [self.task] if self.task else []


@dataclass
class LabelColumn:
    id: str
    label: str


@dataclass
class Layout:
    id: str
    title: str
    columns: list[Column]
    labels: list[LabelColumn] = field(default_factory=list)
    baselines: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    origin: str = ""

    def column(self, cid: str) -> Column:
        for c in self.columns:
            if c.id == cid:
                return c
        raise KeyError(cid)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for c in self.columns for t in c.tasks))

    def divisor_notes(self) -> list[str]:
        """One line per average naming its members and how each was put on the average's scale."""
        out = []
        for c in self.columns:
            if not c.is_average:
                continue
            parts = []
            for m in c.average:
                parts.append(f"{m.name} / {_num(m.divisor)}" if m.divisor is not None else m.name)
            out.append(f"{c.label} = mean({', '.join(parts)}) on {c.scale}")
        return out


def _num(x: float) -> str:
    return f"{x:g}"


def published_dir() -> Path:
    """The one home of the papers' layouts and published rows: ``results/published/``, shipped as package data.

    Found by module spec, without running the package: the engine reads the data and imports no plugin.
    """
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AggregateError(f"the data package {DATA_PACKAGE!r} is not installed (it holds published/)")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "published"


def default_layouts_path() -> Path:
    env = os.environ.get(LAYOUTS_ENV)
    if env:
        return Path(env)
    return published_dir() / "paper_layouts.yaml"


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise AggregateError(f"{where}: missing '{key}'")
    return d[key]


def _member(raw: Any, where: str) -> Member:
    if not isinstance(raw, dict):
        raise AggregateError(f"{where}: expected a mapping with 'task'")
    unknown = set(raw) - {"task", "metric", "metric_scale", "divisor", "label"}
    if unknown:
        raise AggregateError(f"{where}: unknown keys {sorted(unknown)}")
    div = raw.get("divisor")
    if div is not None:
        try:
            div = float(div)
        except (TypeError, ValueError):
            raise AggregateError(f"{where}: divisor must be a number, got {div!r}") from None
        if div <= 0:
            raise AggregateError(f"{where}: divisor must be positive, got {div}")
    if raw.get("metric_scale"):
        scale_max(raw["metric_scale"])
    return Member(task=str(_need(raw, "task", where)), metric=raw.get("metric"), metric_scale=raw.get("metric_scale"),
                  divisor=div, label=raw.get("label"))


def _column(raw: Any, where: str) -> Column:
    if not isinstance(raw, dict):
        raise AggregateError(f"{where}: expected a mapping")
    allowed = {"id", "label", "scale", "digits", "group", "task", "metric", "metric_scale", "average",
               "higher_is_better"}
    unknown = set(raw) - allowed
    if unknown:
        raise AggregateError(f"{where}: unknown keys {sorted(unknown)}")
    cid = str(_need(raw, "id", where))
    scale = str(_need(raw, "scale", where))
    try:
        scale_max(scale)
        if raw.get("metric_scale"):
            scale_max(raw["metric_scale"])
    except AggregateError as exc:
        raise AggregateError(f"{where} ({cid}): {exc}") from None
    average = [_member(m, f"{where} ({cid}).average[{i}]") for i, m in enumerate(raw.get("average") or [])]
    if bool(average) == bool(raw.get("task")):
        raise AggregateError(f"{where} ({cid}): give exactly one of 'task' or 'average'")
    return Column(id=cid, label=str(raw.get("label", cid)), scale=scale, digits=int(raw.get("digits", 1)),
                  group=raw.get("group"), task=raw.get("task"), metric=raw.get("metric"),
                  metric_scale=raw.get("metric_scale"), average=average,
                  higher_is_better=bool(raw.get("higher_is_better", True)))


def load_layouts(path: Union[str, Path, None] = None) -> dict[str, Layout]:
    path = Path(path) if path else default_layouts_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AggregateError(f"{path}: layout file not found") from None
    except yaml.YAMLError as exc:
        raise AggregateError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("layouts"), dict):
        raise AggregateError(f"{path}: expected a top-level 'layouts' mapping")
    out = {}
    for lid, spec in raw["layouts"].items():
        where = f"{path}: layouts.{lid}"
        if not isinstance(spec, dict):
            raise AggregateError(f"{where}: expected a mapping")
        cols = [_column(c, f"{where}.columns[{i}]") for i, c in enumerate(spec.get("columns") or [])]
        if not cols:
            raise AggregateError(f"{where}: no columns")
        ids = [c.id for c in cols]
        if len(set(ids)) != len(ids):
            raise AggregateError(f"{where}: duplicate column ids")
        labels = [LabelColumn(id=str(_need(lc, "id", f"{where}.labels")), label=str(lc.get("label", lc["id"])))
                  for lc in spec.get("labels") or []]
        baselines = {str(k): list(v) for k, v in (spec.get("baselines") or {}).items()}
        out[str(lid)] = Layout(id=str(lid), title=str(spec.get("title", lid)), columns=cols, labels=labels,
                               baselines=baselines, notes=[str(n) for n in spec.get("notes") or []],
                               origin=str(path))
    return out


def get_layout(layout_id: str, path: Union[str, Path, None] = None) -> Layout:
    layouts = load_layouts(path)
    if layout_id not in layouts:
        raise AggregateError(f"unknown layout {layout_id!r}; known: {', '.join(sorted(layouts))}")
    return layouts[layout_id]


# ----------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One table cell of a run: a value on the column's scale, or None with the reason in ``note``.

    ``status``: "ok", "missing" (task not in the run / metric absent), "not_scored" (the task says why),
    "incomplete" (an average with a missing or unscored member), "partial" (a value over part of a task's
    samples, or an average with such a member: shown, marked, never "best").
    """

    value: Optional[float]
    status: str = "ok"
    note: str = ""


def _lookup(metrics: dict[str, Any], path: str) -> Any:
    cur: Any = metrics
    if path in metrics:
        return metrics[path]
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def task_value(results: dict[str, TaskResult], task: str, metric: Optional[str], to_scale: str,
               metric_scale: Optional[str] = None, divisor: Optional[float] = None) -> Cell:
    """A task's headline (or named metric) from stored results, put on ``to_scale``."""
    r = results.get(task)
    if r is None:
        return Cell(None, "missing", f"{task}: not in the run")
    if r.status != "scored":
        return Cell(None, "not_scored", f"{task}: not scored ({r.reason or 'no reason given'})")
    if metric:
        raw = _lookup(r.metrics or {}, metric)
        from_scale = metric_scale or r.headline.scale
        if raw is None:
            return Cell(None, "missing", f"{task}: metric '{metric}' not in metrics.json")
    else:
        raw = r.headline.value
        from_scale = r.headline.scale
        if raw is None:
            return Cell(None, "missing", f"{task}: headline '{r.headline.name}' has no value")
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise AggregateError(f"{task}: {metric or r.headline.name} is not a number ({raw!r})")
    try:
        value = convert(float(raw), from_scale, to_scale, divisor)
    except AggregateError as exc:
        raise AggregateError(f"{task}: {exc}") from None
    if r.partial:
        return Cell(value, "partial", f"{task}: {r.coverage()}")
    return Cell(value)


def column_value(col: Column, results: dict[str, TaskResult]) -> Cell:
    if not col.is_average:
        return task_value(results, col.task, col.metric, col.scale, col.metric_scale)
    values, problems, partial = [], [], []
    for m in col.average:
        c = task_value(results, m.task, m.metric, col.scale, m.metric_scale, m.divisor)
        if c.value is None:
            problems.append(c.note)
        else:
            values.append(c.value)
            if c.status == "partial":
                partial.append(c.note)
    if problems:
        return Cell(None, "incomplete",
                    f"{col.label} incomplete ({len(values)} of {len(col.average)} members): " + "; ".join(problems))
    if partial:
        return Cell(sum(values) / len(values), "partial", f"{col.label} averages partial members: " + "; ".join(partial))
    return Cell(sum(values) / len(values))


def run_cells(layout: Layout, results: dict[str, TaskResult]) -> dict[str, Cell]:
    """Every column of ``layout`` for one run's results."""
    return {c.id: column_value(c, results) for c in layout.columns}


def applicable_layouts(results: dict[str, TaskResult], layouts: dict[str, Layout]) -> list[Layout]:
    """Layouts that have at least one task of the run (what a run's own tables directory should hold)."""
    have = set(results)
    return [lay for lay in layouts.values() if have & set(lay.tasks)]
