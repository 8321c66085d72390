"""Regression gate: a candidate run against a baseline run, task by task, on paired per-sample scores.

Two runs are only compared where they measured the same thing: the same tasks, data sources, limits,
scoring profile, headline and sample ids.  Anything else is *incomparable* (exit 2) and the summary says
which; a difference in a number is never reported over different data.  A drop fails the gate when it is
larger than the policy allows and, where the policy asks for significance, the paired test rejects
(exact McNemar on binary per-sample outcomes, a paired bootstrap interval otherwise).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import yaml

from harness.store import RunStore, StoreError, manifest_smoke
from harness.types import TaskResult

from harness.exit_codes import ExitCode

EXIT_PASS, EXIT_REGRESSION, EXIT_INCOMPARABLE = ExitCode.OK, ExitCode.REGRESSION, ExitCode.INCOMPARABLE


class CompareError(Exception):
    """A policy file or run that cannot be used for a comparison; the message names the file and entry."""


# ------------------------------------------------------------------------------------------------ policy
@dataclass
class TaskPolicy:
    """``max_drop`` is in the task's headline units (e.g. 0.5 = half a point of a percent headline)."""

    max_drop: float = 0.0
    significance: bool = True
    alpha: float = 0.05
    skip: bool = False


@dataclass
class Policy:
    default: TaskPolicy = field(default_factory=TaskPolicy)
    tasks: dict[str, TaskPolicy] = field(default_factory=dict)
    resamples: int = 2000
    seed: int = 0
    confidence: float = 0.95
    origin: str = "default policy"

    def for_task(self, task: str) -> TaskPolicy:
        return self.tasks.get(task, self.default)


_POLICY_KEYS = {"max_drop", "significance", "alpha", "skip"}


def _task_policy(raw: Any, base: TaskPolicy, where: str) -> TaskPolicy:
    if not isinstance(raw, dict):
        raise CompareError(f"{where}: expected a mapping of {sorted(_POLICY_KEYS)}")
    unknown = set(raw) - _POLICY_KEYS
    if unknown:
        raise CompareError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_POLICY_KEYS)})")
    try:
        pol = TaskPolicy(
            max_drop=float(raw.get("max_drop", base.max_drop)),
            significance=bool(raw.get("significance", base.significance)),
            alpha=float(raw.get("alpha", base.alpha)),
            skip=bool(raw.get("skip", base.skip)),
        )
    except (TypeError, ValueError) as exc:
        raise CompareError(f"{where}: {exc}") from None
    if pol.max_drop < 0:
        raise CompareError(f"{where}: max_drop must be >= 0, got {pol.max_drop}")
    if not 0 < pol.alpha < 1:
        raise CompareError(f"{where}: alpha must be in (0, 1), got {pol.alpha}")
    return pol


def load_policy(path: Union[str, Path, None]) -> Policy:
    if path is None:
        return Policy()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CompareError(f"policy file {path} not found") from None
    except yaml.YAMLError as exc:
        raise CompareError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise CompareError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - {"default", "tasks", "bootstrap"}
    if unknown:
        raise CompareError(f"{path}: unknown top-level keys {sorted(unknown)} (known: default, tasks, bootstrap)")
    default = _task_policy(raw.get("default") or {}, TaskPolicy(), f"{path}: default")
    tasks_raw = raw.get("tasks") or {}
    if not isinstance(tasks_raw, dict):
        raise CompareError(f"{path}: 'tasks' must map task ids to policies")
    tasks = {str(t): _task_policy(v or {}, default, f"{path}: tasks.{t}") for t, v in tasks_raw.items()}
    boot = raw.get("bootstrap") or {}
    if not isinstance(boot, dict) or set(boot) - {"resamples", "seed", "confidence"}:
        raise CompareError(f"{path}: 'bootstrap' takes resamples, seed, confidence")
    pol = Policy(default=default, tasks=tasks, resamples=int(boot.get("resamples", 2000)),
                 seed=int(boot.get("seed", 0)), confidence=float(boot.get("confidence", 0.95)), origin=str(path))
    if pol.resamples < 100 or not 0 < pol.confidence < 1:
        raise CompareError(f"{path}: bootstrap needs resamples >= 100 and 0 < confidence < 1")
    return pol


# ------------------------------------------------------------------------------------------------ statistics
def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n trials at p = 1/2 (the exact McNemar test on b, c)."""
    if n == 0:
        return 1.0
    try:
        from scipy.stats import binomtest  # optional; the exact sum below gives the same value

        return float(binomtest(k, n, 0.5).pvalue)
    except ImportError:
        pass
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar_exact(base: np.ndarray, cand: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): b = right in the baseline only, c = right in the candidate only."""
    b = int(np.sum((base == 1) & (cand == 0)))
    c = int(np.sum((base == 0) & (cand == 1)))
    return b, c, binom_two_sided_half(b, b + c)


def paired_bootstrap_ci(base: np.ndarray, cand: np.ndarray, resamples: int, seed: int,
                        confidence: float) -> tuple[float, float]:
    """Percentile interval of mean(cand - base) over resamples of the paired samples (fixed seed)."""
    diff = (cand - base).astype(np.float64)
    n = diff.size
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // max(n, 1)))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------------ comparison
@dataclass
class TaskComparison:
    task: str
    verdict: str  # pass | regression | incomparable | not_scored | skipped
    headline: str = ""
    scale: str = ""
    baseline: Optional[float] = None
    candidate: Optional[float] = None
    delta: Optional[float] = None
    allowed_drop: float = 0.0
    n_paired: int = 0
    test: str = ""
    p_value: Optional[float] = None
    ci: Optional[tuple[float, float]] = None
    mean_diff: Optional[float] = None
    b: Optional[int] = None
    c: Optional[int] = None
    reasons: list[str] = field(default_factory=list)
    partial: bool = False  # either run scored the task over part of its samples


@dataclass
class Comparison:
    baseline: Path
    candidate: Path
    policy: Policy
    tasks: list[TaskComparison]
    run_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.run_problems or any(t.verdict == "incomparable" for t in self.tasks):
            return EXIT_INCOMPARABLE
        if any(t.verdict == "regression" for t in self.tasks):
            return EXIT_REGRESSION
        return EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "PASS", EXIT_REGRESSION: "REGRESSION", EXIT_INCOMPARABLE: "INCOMPARABLE"}[self.exit_code]


def _numeric_scores(records: dict[str, dict[str, Any]]) -> dict[str, float]:
    out = {}
    for sid, rec in records.items():
        s = rec.get("score")
        if isinstance(s, bool):
            out[sid] = float(s)
        elif isinstance(s, (int, float)) and math.isfinite(s):
            out[sid] = float(s)
    return out


def _data_identity(manifest: dict[str, Any], task: str) -> dict[str, Any]:
    """What must be equal for two runs of a task to have seen the same samples."""
    cfg = manifest.get("config") or manifest.get("identity") or {}
    return {"data source": (cfg.get("data") or {}).get(task), "limit": cfg.get("limit"),
            "smoke data": bool(cfg.get("smoke", False))}


# Keys a task may put in its metrics to say which data it scored; any of them differing makes two runs
# incomparable even when the data path is the same (a file replaced in place, another split of one source).
DATA_IDENTITY_KEYS = ("split", "data_split", "data_version", "data_fingerprint", "data_sha256")


def compare_task(task: str, base_store: RunStore, cand_store: RunStore, base_r: TaskResult, cand_r: TaskResult,
                 base_manifest: dict, cand_manifest: dict, policy: Policy) -> TaskComparison:
    pol = policy.for_task(task)
    tc = TaskComparison(task=task, verdict="pass", headline=base_r.headline.name, scale=base_r.headline.scale,
                        allowed_drop=pol.max_drop)
    problems = []
    if base_r.profile != cand_r.profile:
        problems.append(f"scoring profile differs: {base_r.profile} vs {cand_r.profile}")
    if (base_r.headline.name, base_r.headline.scale) != (cand_r.headline.name, cand_r.headline.scale):
        problems.append(f"headline differs: {base_r.headline.name} ({base_r.headline.scale}) vs "
                        f"{cand_r.headline.name} ({cand_r.headline.scale})")
    bi, ci_ = _data_identity(base_manifest, task), _data_identity(cand_manifest, task)
    for key in bi:
        if bi[key] != ci_[key]:
            problems.append(f"{key} differs: {bi[key]!r} vs {ci_[key]!r}")
    bm_, cm_ = base_r.metrics or {}, cand_r.metrics or {}
    for key in DATA_IDENTITY_KEYS:
        if bm_.get(key) != cm_.get(key):
            problems.append(f"{key} differs: {bm_.get(key)!r} vs {cm_.get(key)!r}")
    if base_r.status != "scored" or cand_r.status != "scored":
        if base_r.status == cand_r.status:
            tc.verdict = "not_scored"
            tc.reasons.append(f"not scored in either run ({base_r.reason or cand_r.reason or 'no reason given'})")
        else:
            which = "baseline" if base_r.status != "scored" else "candidate"
            why = (base_r if which == "baseline" else cand_r).reason
            problems.append(f"scored in one run only ({which}: not scored: {why})")
    base_scores = base_store.read_scores(task)
    cand_scores = cand_store.read_scores(task)
    if base_scores and cand_scores and set(base_scores) != set(cand_scores):
        only_b = sorted(set(base_scores) - set(cand_scores))
        only_c = sorted(set(cand_scores) - set(base_scores))
        problems.append(f"sample sets differ: {len(only_b)} ids only in the baseline (e.g. {only_b[:3]}), "
                        f"{len(only_c)} only in the candidate (e.g. {only_c[:3]})")
    elif bool(base_scores) != bool(cand_scores):
        problems.append("per-sample scores exist in one run only")
    if base_r.reference != cand_r.reference and base_r.reference and cand_r.reference:
        tc.reasons.append(f"note: reference scorer text differs ({base_r.reference!r} vs {cand_r.reference!r})")
    if problems:
        tc.verdict = "incomparable"
        tc.reasons = problems + tc.reasons
        return tc
    if tc.verdict == "not_scored":
        return tc

    tc.baseline, tc.candidate = base_r.headline.value, cand_r.headline.value
    tc.partial = base_r.partial or cand_r.partial
    tc.reasons += [f"{which} is {r.coverage()}" for which, r in (("baseline", base_r), ("candidate", cand_r))
                   if r.partial]
    if tc.baseline is None or tc.candidate is None:
        tc.verdict = "incomparable"
        tc.reasons.append("a headline has no value")
        return tc
    tc.delta = tc.candidate - tc.baseline

    # Paired statistics on the samples both runs scored with a number.
    bnum, cnum = _numeric_scores(base_scores), _numeric_scores(cand_scores)
    ids = sorted(set(bnum) & set(cnum))
    tc.n_paired = len(ids)
    if ids:
        b = np.array([bnum[i] for i in ids])
        c = np.array([cnum[i] for i in ids])
        tc.mean_diff = float(np.mean(c - b))
        tc.ci = paired_bootstrap_ci(b, c, policy.resamples, policy.seed, policy.confidence)
        binary = bool(np.all(np.isin(b, (0.0, 1.0))) and np.all(np.isin(c, (0.0, 1.0))))
        if binary:
            tc.test = "McNemar exact"
            tc.b, tc.c, tc.p_value = mcnemar_exact(b, c)
        else:
            tc.test = "paired bootstrap"
    skipped = len(base_scores) - len(ids)
    if skipped:
        tc.reasons.append(f"{skipped} samples without a numeric score in one run left out of the paired test")

    drop = -tc.delta
    if drop <= pol.max_drop + 1e-12:
        return tc
    if not pol.significance:
        tc.verdict = "regression"
        tc.reasons.append(f"drop {drop:.4g} > allowed {pol.max_drop:g}")
        return tc
    if tc.test == "McNemar exact":
        significant = tc.p_value is not None and tc.p_value < pol.alpha
        why = f"McNemar p = {tc.p_value:.3g} (alpha {pol.alpha:g})"
    elif tc.test == "paired bootstrap":
        significant = tc.ci is not None and tc.ci[1] < 0
        why = f"{policy.confidence:.0%} bootstrap interval of the mean per-sample change {tc.ci[0]:+.4g} .. {tc.ci[1]:+.4g}"
    else:
        significant = True
        why = "no per-sample scores to test; decided by the headline drop alone"
    if significant:
        tc.verdict = "regression"
        tc.reasons.append(f"drop {drop:.4g} > allowed {pol.max_drop:g}; {why}")
    else:
        tc.reasons.append(f"drop {drop:.4g} > allowed {pol.max_drop:g} but not significant: {why}")
    return tc


def compare_runs(baseline: Path, candidate: Path, policy: Optional[Policy] = None) -> Comparison:
    policy = policy or Policy()
    bs, cs = RunStore(Path(baseline)), RunStore(Path(candidate))
    bm, cm = bs.read_manifest(), cs.read_manifest()
    b_res, c_res = bs.all_metrics(), cs.all_metrics()
    comp = Comparison(Path(baseline), Path(candidate), policy, [])
    skip = {t for t, p in policy.tasks.items() if p.skip}
    b_tasks, c_tasks = set(b_res) - skip, set(c_res) - skip
    if b_tasks != c_tasks:
        only_b, only_c = sorted(b_tasks - c_tasks), sorted(c_tasks - b_tasks)
        comp.run_problems.append(
            "task sets differ: " + "; ".join(x for x in (
                f"only in the baseline: {', '.join(only_b)}" if only_b else "",
                f"only in the candidate: {', '.join(only_c)}" if only_c else "") if x))
    if not (b_tasks & c_tasks):
        comp.run_problems.append("no task was scored in both runs")
    for task in sorted(skip & (set(b_res) | set(c_res))):
        comp.tasks.append(TaskComparison(task=task, verdict="skipped", reasons=["skipped by the policy"]))
    for task in sorted(b_tasks & c_tasks):
        comp.tasks.append(compare_task(task, bs, cs, b_res[task], c_res[task], bm, cm, policy))
    comp.warnings += [f"the {which} is a smoke run ({why}): its numbers test the harness, not a model"
                      for which, why in (("baseline", manifest_smoke(bm)), ("candidate", manifest_smoke(cm))) if why]
    bf, cf = bm.get("model_fingerprint"), cm.get("model_fingerprint")
    if bf is not None and bf == cf:
        comp.warnings.append("both runs have the same model fingerprint")
    return comp


# ------------------------------------------------------------------------------------------------ summary
def _f(x: Optional[float], digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


_ICON = {"pass": "pass", "regression": "**REGRESSION**", "incomparable": "**incomparable**",
         "not_scored": "not scored", "skipped": "skipped"}


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(comp: Comparison) -> str:
    def label(p: Path) -> str:
        try:
            man = RunStore(p).read_manifest()
            model = (man.get("identity") or {}).get("model", "?")
            return f"{model} (`{p}`)"
        except StoreError:
            return f"`{p}`"

    out = [f"## unitoken-eval compare: {comp.verdict}", "",
           f"- baseline: {label(comp.baseline)}", f"- candidate: {label(comp.candidate)}",
           f"- policy: {comp.policy.origin}; paired bootstrap {comp.policy.resamples} resamples, seed "
           f"{comp.policy.seed}, {comp.policy.confidence:.0%} interval", ""]
    if comp.run_problems:
        out += ["### Incomparable runs", ""] + [f"- {_md(p)}" for p in comp.run_problems] + [""]
    if comp.tasks:
        out += ["| Task | Headline | Baseline | Candidate | Δ | Allowed drop | Paired n | Test | p | Mean Δ per sample "
                f"[{comp.policy.confidence:.0%} CI] | Verdict |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |"]
        for t in comp.tasks:
            ci = "-" if t.ci is None else f"{t.mean_diff:+.4g} [{t.ci[0]:+.4g}, {t.ci[1]:+.4g}]"
            delta = "-" if t.delta is None else f"{t.delta:+.4g}"
            test = t.test + (f" (b={t.b}, c={t.c})" if t.b is not None else "")
            head = f"{t.headline} ({t.scale})" if t.headline else "-"
            out.append(f"| {_md(t.task)}{' (partial)' if t.partial else ''} | {_md(head)} | {_f(t.baseline)} | "
                       f"{_f(t.candidate)} | {delta} | "
                       f"{t.allowed_drop:g} | {t.n_paired} | {test or '-'} | {_f(t.p_value, 3)} | {ci} | "
                       f"{_ICON[t.verdict]} |")
        out.append("")
    detail = [(t.task, r) for t in comp.tasks for r in t.reasons]
    if detail:
        out += ["### Details", ""] + [f"- **{_md(task)}**: {_md(r)}" for task, r in detail] + [""]
    if comp.warnings:
        out += ["### Warnings", ""] + [f"- {_md(w)}" for w in comp.warnings] + [""]
    return "\n".join(out)


def compare_command(baseline: Path, candidate: Path, policy: Optional[str] = None,
                    summary: Optional[str] = None) -> int:
    comp = compare_runs(Path(baseline), Path(candidate), load_policy(policy))
    text = summary_markdown(comp)
    sys.stdout.write(text + "\n")
    if summary:
        path = Path(summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Appending lets several compare steps share one CI job summary file.
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return comp.exit_code
