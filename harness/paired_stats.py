"""Paired tests for the regression gate, on per-sample scores of two runs over the same samples.

The unit of the test is what the benchmark treats as independent: a sample, or a group of samples the task
declares (``Task.pairing_groups``: MME's two questions about one image, HallusionBench's question asked of
several figures).  Per unit, d = sum over its samples of (candidate - baseline).
- 0/1 scores, one sample per unit: the exact McNemar test (two-sided binomial on the discordant pairs).
- anything else: the paired sign-flip permutation test on the unit sums (exact enumeration up to
  ``EXACT_UNITS`` non-zero units, otherwise seeded Monte Carlo with the +1 correction).  McNemar is that
  same test for +-1 differences, so both answer "is the mean per-sample change zero?".
A test that cannot reach ``alpha`` at the run's size (too few units, or too few of them changed) is reported
as *not enough evidence*, never as significant.  The detectable drop is the normal-approximation drop the
test finds with the stated power at the run's size and observed variability.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Optional, Sequence

import numpy as np

EXACT_UNITS = 16  # 2**16 sign patterns: exact enumeration stays below a second


@dataclass
class PairedResult:
    test: str
    n_samples: int
    n_units: int
    mean_diff: float
    p_value: float
    min_p: float                       # the smallest p this test could give at this many units
    ci: Optional[tuple[float, float]]  # cluster bootstrap interval of the mean per-sample change
    b: Optional[int] = None            # McNemar: right in the baseline only
    c: Optional[int] = None            # McNemar: right in the candidate only
    sum_sq: float = 0.0                # sum of squared unit differences (the permutation variance of the sum)


def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n trials at p = 1/2 (the exact McNemar test on b, c)."""
    if n == 0:
        return 1.0
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar_exact(base: np.ndarray, cand: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): b = right in the baseline only, c = right in the candidate only."""
    b = int(np.sum((base == 1) & (cand == 0)))
    c = int(np.sum((base == 0) & (cand == 1)))
    return b, c, binom_two_sided_half(b, b + c)


def sign_flip_p(unit_diffs: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided p of |sum(d)| under independent random signs of the units' differences."""
    d = unit_diffs[unit_diffs != 0].astype(np.float64)
    if d.size == 0:
        return 1.0
    observed = abs(d.sum()) - 1e-12 * max(1.0, float(np.abs(d).sum()))
    if d.size <= EXACT_UNITS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) >= observed))
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    chunk = max(1, min(resamples, 4_000_000 // d.size))
    while done < resamples:
        k = min(chunk, resamples - done)
        signs = rng.integers(0, 2, size=(k, d.size)) * 2.0 - 1.0
        hits += int(np.sum(np.abs(signs @ d) >= observed))
        done += k
    return (hits + 1) / (resamples + 1)


def cluster_bootstrap_ci(unit_diffs: np.ndarray, unit_sizes: np.ndarray, resamples: int, seed: int,
                         confidence: float) -> tuple[float, float]:
    """Percentile interval of the mean per-sample change, resampling whole units (fixed seed)."""
    n = unit_diffs.size
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // n))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = unit_diffs[idx].sum(axis=1) / unit_sizes[idx].sum(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def paired_bootstrap_ci(base: np.ndarray, cand: np.ndarray, resamples: int, seed: int,
                        confidence: float) -> tuple[float, float]:
    """Percentile interval of mean(cand - base) over resamples of the paired samples (fixed seed)."""
    diff = (cand - base).astype(np.float64)
    return cluster_bootstrap_ci(diff, np.ones_like(diff), resamples, seed, confidence)


def unit_sums(ids: Sequence[str], diffs: np.ndarray, groups: Optional[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit sums of the differences and unit sizes; an id the grouping does not name is its own unit."""
    if not groups:
        return diffs.astype(np.float64), np.ones(len(ids))
    index: dict[str, int] = {}
    keys = [index.setdefault(groups.get(i, f"\0{i}"), len(index)) for i in ids]
    sums = np.bincount(keys, weights=diffs, minlength=len(index))
    sizes = np.bincount(keys, minlength=len(index)).astype(np.float64)
    return sums, sizes


def paired_test(ids: Sequence[str], base: np.ndarray, cand: np.ndarray, groups: Optional[dict[str, str]],
                resamples: int, seed: int, confidence: float) -> PairedResult:
    diffs = (cand - base).astype(np.float64)
    d, sizes = unit_sums(ids, diffs, groups)
    n = len(ids)
    binary = bool(np.all(np.isin(base, (0.0, 1.0))) and np.all(np.isin(cand, (0.0, 1.0))))
    # Even if every unit had moved the same way: below alpha or the test cannot tell at this size.
    min_p = min(1.0, 2.0 ** (1 - d.size)) if d.size else 1.0
    ci = cluster_bootstrap_ci(d, sizes, resamples, seed, confidence) if n else None
    common = dict(n_samples=n, n_units=int(d.size), mean_diff=float(diffs.mean()) if n else 0.0, ci=ci,
                  sum_sq=float(np.sum(d * d)))
    if binary and d.size == n:
        b, c, p = mcnemar_exact(base, cand)
        return PairedResult(test="McNemar exact", p_value=p, min_p=min_p, b=b, c=c, **common)
    name = "sign-flip permutation" + (" over groups" if d.size < n else "")
    if d.size > EXACT_UNITS:
        min_p = max(min_p, 1 / (resamples + 1))
    return PairedResult(test=name, p_value=sign_flip_p(d, resamples, seed), min_p=min_p, **common)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control over the given tests)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def detectable_drop(n_samples: int, sum_sq: float, alpha: float, power: float, binary: bool) -> Optional[float]:
    """Smallest mean per-sample drop the two-sided test at ``alpha`` finds with probability ``power``.

    Normal approximation with the permutation variance of the observed unit differences; for 0/1 scores a
    drop of delta needs at least delta * n discordant samples, so the variance is floored there (two identical
    runs still state what they could have detected).  None when nothing can be said (no samples, or
    continuous scores that did not move at all).
    """
    if n_samples <= 0:
        return None
    k = z(1 - alpha / 2) + z(power)
    delta = k * math.sqrt(sum_sq) / n_samples
    if binary:
        delta = max(delta, k * k / n_samples)  # delta = k sqrt(delta n) / n at the floor
    elif sum_sq == 0:
        return None
    return delta


def design_drop(n: int, discordance: float, alpha: float, power: float) -> float:
    """Detectable drop (fraction of accuracy) of the exact McNemar test on n paired 0/1 samples whose share
    ``discordance`` changes verdict between two checkpoints (Connor's normal approximation)."""
    k = z(1 - alpha / 2) + z(power)
    return max(k * math.sqrt(discordance / n), k * k / n)


def design_n(drop: float, discordance: float, alpha: float, power: float) -> int:
    """Paired 0/1 samples the exact McNemar test needs to find ``drop`` (Connor 1987)."""
    za, zb = z(1 - alpha / 2), z(power)
    n = (za * math.sqrt(discordance) + zb * math.sqrt(max(discordance - drop * drop, 0.0))) ** 2 / (drop * drop)
    return int(math.ceil(n))
