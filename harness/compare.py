"""Regression gate: a candidate run against a baseline run, task by task, on paired per-sample scores.

Two runs are only compared where they measured the same thing: the same tasks, data sources, limits, sample
subsets, scoring profile, headline and sample ids.  Anything else is *incomparable* (exit 2) and the summary
says which; a difference in a number is never reported over different data.

Per task, the paired test that fits the scores (harness/paired_stats.py: exact McNemar on 0/1 scores, a
sign-flip permutation test otherwise, over the groups the task declares with ``pairing_groups``); Holm's
correction across the tested tasks.  A drop fails the gate when it is larger than the policy allows and the
corrected test rejects.  A task whose test cannot tell (too few units, too few changed) is *not enough
evidence*, never significant, and every task states the smallest drop it could have detected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import yaml

from unitoken_eval.harness import registry
from unitoken_eval.harness.paired_stats import (PairedResult, binom_two_sided_half, detectable_drop, holm_adjust,  # noqa: F401
                                  mcnemar_exact, paired_bootstrap_ci, paired_test)
from unitoken_eval.harness.store import RunStore, StoreError, manifest_smoke
from unitoken_eval.harness.types import TaskResult

from unitoken_eval.harness.exit_codes import ExitCode

EXIT_PASS, EXIT_REGRESSION, EXIT_INCOMPARABLE = ExitCode.OK, ExitCode.REGRESSION, ExitCode.INCOMPARABLE


class CompareError(Exception):
    """A policy file or run that cannot be used for a comparison; the message names the file and line."""


# ------------------------------------------------------------------------------------------------ policy
@dataclass
class TaskPolicy:
    """``max_drop`` is in the task's headline units (e.g. 0.5 = half a point of a percent headline).

    ``min_n``: fewer paired units than this is "not enough evidence", whatever the numbers say.
    """

    max_drop: float = 0.0
    significance: bool = True
    alpha: float = 0.05
    skip: bool = False
    min_n: int = 20


@dataclass
class Policy:
    default: TaskPolicy = field(default_factory=TaskPolicy)
    tasks: dict[str, TaskPolicy] = field(default_factory=dict)
    resamples: int = 2000
    seed: int = 0
    confidence: float = 0.95
    power: float = 0.8
    # "fail" makes a task whose test could not tell fail the gate (exit 1) instead of passing with a note.
    insufficient_evidence: str = "pass"
    origin: str = "default policy"

    def for_task(self, task: str) -> TaskPolicy:
        return self.tasks.get(task, self.default)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# key -> (what the value must be, check); the description goes into the error message
_TASK_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "max_drop": ("a number >= 0 (headline units)", lambda v: _number(v) and v >= 0),
    "significance": ("true or false", lambda v: isinstance(v, bool)),
    "alpha": ("a number in (0, 1)", lambda v: _number(v) and 0 < v < 1),
    "skip": ("true or false", lambda v: isinstance(v, bool)),
    "min_n": ("an integer >= 1", lambda v: _int(v) and v >= 1),
}
_RESAMPLING_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "resamples": ("an integer >= 100", lambda v: _int(v) and v >= 100),
    "seed": ("an integer", _int),
    "confidence": ("a number in (0, 1)", lambda v: _number(v) and 0 < v < 1),
}
_TOP_KEYS = ("default", "tasks", "bootstrap", "power", "insufficient_evidence")


class _PolicyReader:
    """Walks the YAML node tree so every error names the file and line of the offending entry."""

    def __init__(self, path: Path, known_tasks: Optional[list[str]]):
        self.path = path
        self.known_tasks = known_tasks

    def error(self, node: yaml.Node, message: str) -> CompareError:
        return CompareError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def value(self, node: yaml.Node) -> Any:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{where} must be a mapping (key: value lines)")
        out, seen = [], {}
        for k, v in node.value:
            key = self.value(k)
            if not isinstance(key, str):
                raise self.error(k, f"{where}: keys must be names, got {key!r}")
            if key in seen:
                raise self.error(k, f"{where}: {key!r} given twice (first on line {seen[key]})")
            seen[key] = k.start_mark.line + 1
            out.append((key, k, v))
        return out

    def fields(self, node: yaml.Node, where: str, spec: dict[str, tuple[str, Callable[[Any], bool]]]) -> dict:
        out = {}
        for key, knode, vnode in self.mapping(node, where):
            if key not in spec:
                raise self.error(knode, f"{where}: unknown key {key!r} (known: {', '.join(spec)})")
            val = self.value(vnode)
            what, ok = spec[key]
            if not ok(val):
                raise self.error(vnode, f"{where}.{key} must be {what}, got {val!r}")
            out[key] = val
        return out

    def task_id(self, key: str, knode: yaml.Node) -> str:
        if self.known_tasks is not None and key not in self.known_tasks:
            import difflib

            close = difflib.get_close_matches(key, self.known_tasks, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.error(knode, f"tasks: unknown task id {key!r}{hint} (see `unitoken-eval list`)")
        return key

    def read(self) -> Policy:
        try:
            root = yaml.compose(self.path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except FileNotFoundError:
            raise CompareError(f"policy file {self.path} not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise CompareError(f"{self.path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        pol = Policy(origin=str(self.path))
        if root is None:
            return pol
        top = {key: (knode, vnode) for key, knode, vnode in self.mapping(root, "the policy")}
        for key, (knode, _) in top.items():
            if key not in _TOP_KEYS:
                raise self.error(knode, f"unknown top-level key {key!r} (known: {', '.join(_TOP_KEYS)})")
        if "default" in top:
            pol.default = TaskPolicy(**self.fields(top["default"][1], "default", _TASK_KEYS))
        if "tasks" in top:
            for key, knode, vnode in self.mapping(top["tasks"][1], "tasks"):
                tid = self.task_id(key, knode)
                given = self.fields(vnode, f"tasks.{tid}", _TASK_KEYS)
                pol.tasks[tid] = TaskPolicy(**{**pol.default.__dict__, **given})
        if "bootstrap" in top:
            given = self.fields(top["bootstrap"][1], "bootstrap", _RESAMPLING_KEYS)
            pol.resamples = given.get("resamples", pol.resamples)
            pol.seed = given.get("seed", pol.seed)
            pol.confidence = float(given.get("confidence", pol.confidence))
        if "power" in top:
            v = self.value(top["power"][1])
            if not (_number(v) and 0 < v < 1):
                raise self.error(top["power"][1], f"power must be a number in (0, 1), got {v!r}")
            pol.power = float(v)
        if "insufficient_evidence" in top:
            v = self.value(top["insufficient_evidence"][1])
            if v not in ("pass", "fail"):
                raise self.error(top["insufficient_evidence"][1], f"insufficient_evidence must be pass or fail, got {v!r}")
            pol.insufficient_evidence = v
        return pol


def load_policy(path: Union[str, Path, None], known_tasks: Optional[list[str]] = None) -> Policy:
    """Read and validate a policy file; task ids are checked against ``known_tasks`` (default: the registry)."""
    if path is None:
        return Policy()
    if known_tasks is None:
        known_tasks = registry.task_ids()
    return _PolicyReader(Path(path), known_tasks).read()


# ------------------------------------------------------------------------------------------------ comparison
@dataclass
class Flip:
    """A sample whose score changed between the runs (for 0/1 scores: whose verdict changed)."""

    sample_id: str
    baseline: float
    candidate: float


@dataclass
class TaskComparison:
    task: str
    verdict: str  # pass | regression | insufficient | incomparable | not_scored | skipped
    headline: str = ""
    scale: str = ""
    baseline: Optional[float] = None
    candidate: Optional[float] = None
    delta: Optional[float] = None
    allowed_drop: float = 0.0
    n_paired: int = 0
    n_units: int = 0
    test: str = ""
    p_value: Optional[float] = None
    p_adjusted: Optional[float] = None
    ci: Optional[tuple[float, float]] = None
    mean_diff: Optional[float] = None
    b: Optional[int] = None
    c: Optional[int] = None
    detectable_drop: Optional[float] = None  # in mean per-sample score (0-1 scores: a fraction)
    binary: bool = False
    flips: list[Flip] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    partial: bool = False  # either run scored the task over part of its samples
    stats: Optional[PairedResult] = field(default=None, repr=False)


@dataclass
class Comparison:
    baseline: Path
    candidate: Path
    policy: Policy
    tasks: list[TaskComparison]
    run_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_tested: int = 0  # the Holm family: tasks with a paired test

    @property
    def exit_code(self) -> int:
        if self.run_problems or any(t.verdict == "incomparable" for t in self.tasks):
            return EXIT_INCOMPARABLE
        if any(t.verdict == "regression" for t in self.tasks):
            return EXIT_REGRESSION
        if self.policy.insufficient_evidence == "fail" and self.insufficient:
            return EXIT_REGRESSION
        return EXIT_PASS

    @property
    def insufficient(self) -> list[str]:
        return [t.task for t in self.tasks if t.verdict == "insufficient"]

    @property
    def verdict(self) -> str:
        code = self.exit_code
        if code == EXIT_INCOMPARABLE:
            return "INCOMPARABLE"
        if code == EXIT_REGRESSION:
            if any(t.verdict == "regression" for t in self.tasks):
                return "REGRESSION"
            return "FAIL (not enough evidence: " + ", ".join(self.insufficient) + ")"
        if self.insufficient:
            return "PASS (not enough evidence for " + ", ".join(self.insufficient) + ")"
        return "PASS"


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


def _subset_problem(base_manifest: dict, cand_manifest: dict, task: str) -> Optional[str]:
    """Two runs that drew different subsets of a benchmark (another suite, seed or size) measured other samples."""
    b = (base_manifest.get("subsets") or {}).get(task)
    c = (cand_manifest.get("subsets") or {}).get(task)
    if b == c:
        return None

    def say(s: Optional[dict]) -> str:
        if not s:
            return "the whole benchmark"
        return f"{s.get('n_selected')} of {s.get('n_available')} (seed {s.get('seed')}, ids sha256 {str(s.get('ids_sha256'))[:12]})"

    return (f"different sample subsets: baseline {say(b)} vs candidate {say(c)}; run both with the same suite "
            "(the subset spec is in each run's manifest.json under 'subsets')")


# Keys a task may put in its metrics to say which data it scored; any of them differing makes two runs
# incomparable even when the data path is the same (a file replaced in place, another split of one source).
DATA_IDENTITY_KEYS = ("split", "data_split", "data_version", "data_fingerprint", "data_sha256")
MAX_FLIPS = 200  # per task, kept for the flipped-samples page


def _pairing_groups(task: str, records: dict[str, dict[str, Any]]) -> tuple[Optional[dict[str, str]], Optional[str]]:
    """The task's own grouping of its samples for the paired test, or None (each sample its own unit)."""
    try:
        groups = registry.make_task(task).pairing_groups(records)
    except registry.RegistryError as exc:
        return None, f"task not installed here ({exc}); samples paired one by one"
    return groups, None


def compare_task(task: str, base_store: RunStore, cand_store: RunStore, base_r: TaskResult, cand_r: TaskResult,
                 base_manifest: dict, cand_manifest: dict, policy: Policy) -> TaskComparison:
    """Identity checks and the paired test of one task; the verdict waits for the Holm family (:func:`decide`)."""
    pol = policy.for_task(task)
    tc = TaskComparison(task=task, verdict="pending", headline=base_r.headline.name, scale=base_r.headline.scale,
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
    subset = _subset_problem(base_manifest, cand_manifest, task)
    if subset:
        problems.append(subset)
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

    bnum, cnum = _numeric_scores(base_scores), _numeric_scores(cand_scores)
    ids = sorted(set(bnum) & set(cnum))
    tc.n_paired = len(ids)
    skipped = len(base_scores) - len(ids)
    if skipped:
        tc.reasons.append(f"{skipped} samples without a numeric score in one run left out of the paired test")
    if not ids:
        return tc
    b = np.array([bnum[i] for i in ids])
    c = np.array([cnum[i] for i in ids])
    groups, note = _pairing_groups(task, base_scores)
    if note:
        tc.reasons.append(f"note: {note}")
    st = paired_test(ids, b, c, groups, policy.resamples, policy.seed, policy.confidence)
    tc.stats, tc.test, tc.p_value, tc.ci, tc.mean_diff = st, st.test, st.p_value, st.ci, st.mean_diff
    tc.n_units, tc.b, tc.c = st.n_units, st.b, st.c
    tc.binary = bool(np.all(np.isin(b, (0.0, 1.0))) and np.all(np.isin(c, (0.0, 1.0))))
    changed = [Flip(i, float(x), float(y)) for i, x, y in zip(ids, b, c) if x != y]
    changed.sort(key=lambda f: (f.candidate - f.baseline, f.sample_id))  # worst changes first
    tc.flips = changed[:MAX_FLIPS]
    return tc


def decide(comp: Comparison) -> None:
    """Holm's correction over the tasks with a paired test, then each pending task's verdict."""
    policy = comp.policy
    tested = [t for t in comp.tasks if t.verdict == "pending" and t.p_value is not None]
    comp.n_tested = len(tested)
    for t, adj in zip(tested, holm_adjust([t.p_value for t in tested])):
        t.p_adjusted = adj
    for t in comp.tasks:
        if t.verdict == "pending":
            _verdict(t, policy.for_task(t.task), policy, max(comp.n_tested, 1))


def _verdict(t: TaskComparison, pol: TaskPolicy, policy: Policy, family: int) -> None:
    st = t.stats
    if st is not None:
        # What a regression on this task alone must beat: Holm's first step, alpha / family size.
        t.detectable_drop = detectable_drop(st.n_samples, st.sum_sq, pol.alpha / family, policy.power, t.binary)
    drop = -t.delta
    allowed = f"drop {drop:.4g} > allowed {pol.max_drop:g}"
    if st is not None and st.n_units < pol.min_n:
        t.verdict = "insufficient"
        t.reasons.append(f"not enough evidence: {st.n_units} paired units < min_n {pol.min_n} "
                         f"(headline change {t.delta:+.4g} neither passes nor fails)")
        return
    if drop <= pol.max_drop + 1e-12:
        t.verdict = "pass"
        if st is None:
            t.reasons.append("no per-sample scores: decided by the headline alone, nothing tested")
        return
    if not pol.significance:
        t.verdict = "regression"
        t.reasons.append(f"{allowed} (significance off in the policy)")
        return
    if st is None:
        t.verdict = "insufficient"
        t.reasons.append(f"{allowed} but not enough evidence: no per-sample scores to test")
        return
    why = f"{st.test} p = {st.p_value:.3g}, Holm-adjusted over {family} task(s) {t.p_adjusted:.3g}, alpha {pol.alpha:g}"
    if t.p_adjusted < pol.alpha:
        t.verdict = "regression"
        t.reasons.append(f"{allowed}; {why}")
    elif st.min_p >= pol.alpha:
        t.verdict = "insufficient"
        t.reasons.append(f"{allowed} but not enough evidence: with {st.n_units} units the smallest p this test "
                         f"can give is {st.min_p:.3g} >= alpha ({why})")
    else:
        t.verdict = "pass"
        t.reasons.append(f"{allowed} but not significant: {why}")


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
    decide(comp)
    bf, cf = bm.get("model_fingerprint"), cm.get("model_fingerprint")
    if bf is not None and bf == cf:
        comp.warnings.append("both runs have the same model fingerprint")
    return comp


# ------------------------------------------------------------------------------------------------ summary
def _f(x: Optional[float], digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


_ICON = {"pass": "pass", "regression": "**REGRESSION**", "incomparable": "**incomparable**",
         "insufficient": "not enough evidence", "not_scored": "not scored", "skipped": "skipped"}
# Worst first: the order of the flipped-samples page and of the inline examples.
_SEVERITY = {"regression": 0, "incomparable": 1, "insufficient": 2, "pass": 3, "not_scored": 4, "skipped": 5}


def worst_first(tasks: list[TaskComparison]) -> list[TaskComparison]:
    return sorted(tasks, key=lambda t: (_SEVERITY.get(t.verdict, 9), t.mean_diff if t.mean_diff is not None else 0.0,
                                        t.task))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _run_label(p: Path) -> str:
    try:
        man = RunStore(p).read_manifest()
        model = (man.get("identity") or {}).get("model", "?")
        return f"{model} (`{p}`)"
    except StoreError:
        return f"`{p}`"


def methods_text(comp: Comparison) -> list[str]:
    pol = comp.policy
    return [
        f"- policy: {pol.origin}",
        "- tests: exact McNemar on 0/1 scores; paired sign-flip permutation test on other scores "
        f"({pol.resamples} resamples, seed {pol.seed}, exact below 17 changed units); units are the groups a "
        "benchmark scores together (MME image pairs, HallusionBench question pairs, GenEval prompts; MMBench "
        "scores are per circular group)",
        f"- Holm correction across the {comp.n_tested} tested task(s) (family-wise alpha); fewer than min_n "
        "paired units, or a test that cannot reach alpha at its size, is *not enough evidence*, never significant",
        f"- detectable drop: the drop of the mean per-sample score (points, 0/1 scores: accuracy points) the test "
        f"finds with {pol.power:.0%} power at alpha / {max(comp.n_tested, 1)} at this run's n; "
        f"{pol.confidence:.0%} cluster bootstrap interval of the mean per-sample change",
    ]


def summary_markdown(comp: Comparison, flips_page: Optional[str] = None, inline_flips: int = 5) -> str:
    out = [f"## unitoken-eval compare: {comp.verdict}", "",
           f"- baseline: {_run_label(comp.baseline)}", f"- candidate: {_run_label(comp.candidate)}",
           *methods_text(comp), ""]
    if comp.run_problems:
        out += ["### Incomparable runs", ""] + [f"- {_md(p)}" for p in comp.run_problems] + [""]
    if comp.tasks:
        out += ["| Task | Headline | Baseline | Candidate | Δ | Allowed drop | Paired n (units) | Test | p (Holm) | "
                f"Mean Δ per sample [{comp.policy.confidence:.0%} CI] | Detectable drop (pts) | Verdict |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | --- |"]
        for t in comp.tasks:
            ci = "-" if t.ci is None else f"{t.mean_diff:+.4g} [{t.ci[0]:+.4g}, {t.ci[1]:+.4g}]"
            delta = "-" if t.delta is None else f"{t.delta:+.4g}"
            test = t.test + (f" (b={t.b}, c={t.c})" if t.b is not None else "")
            head = f"{t.headline} ({t.scale})" if t.headline else "-"
            n = f"{t.n_paired}" + (f" ({t.n_units})" if t.n_units and t.n_units != t.n_paired else "")
            p = "-" if t.p_value is None else f"{t.p_value:.3g} ({_f(t.p_adjusted, 3)})"
            # beyond 100 points no drop of a 0-1 score could be detected at all
            mde = "-" if t.detectable_drop is None else "> 100" if t.detectable_drop > 1 else f"{100 * t.detectable_drop:.3g}"
            out.append(f"| {_md(t.task)}{' (partial)' if t.partial else ''} | {_md(head)} | {_f(t.baseline)} | {_f(t.candidate)} | {delta} | "
                       f"{t.allowed_drop:g} | {n} | {test or '-'} | {p} | {ci} | {mde} | {_ICON[t.verdict]} |")
        out.append("")
    detail = [(t.task, r) for t in comp.tasks for r in t.reasons]
    if detail:
        out += ["### Details", ""] + [f"- **{_md(task)}**: {_md(r)}" for task, r in detail] + [""]
    flipped = [t for t in worst_first(comp.tasks) if t.flips]
    if flipped:
        out += ["### Samples that changed", ""]
        if flips_page:
            out += [f"All of them, with images, questions and both answers: [{Path(flips_page).name}]({flips_page})", ""]
        for t in flipped[:3]:
            n_down = sum(f.candidate < f.baseline for f in t.flips)
            shown = ", ".join(f"`{_md(f.sample_id)}` {f.baseline:g}→{f.candidate:g}" for f in t.flips[:inline_flips])
            out.append(f"- **{_md(t.task)}**: {n_down} worse, {len(t.flips) - n_down} better; e.g. {shown}")
        out.append("")
    if comp.warnings:
        out += ["### Warnings", ""] + [f"- {_md(w)}" for w in comp.warnings] + [""]
    return "\n".join(out)
