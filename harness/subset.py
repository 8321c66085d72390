"""Fixed, seeded, stratified subsets of a benchmark (the quick ``ci`` suite), recorded so runs can be checked.

Units are what the task keeps whole (``Task.subset_unit``: an MMBench circular group, an MME image pair);
strata are the benchmark's own categories (``Task.stratum_field``).  Each stratum gets its proportional share
of the requested size (largest remainders), and within a stratum the units with the smallest
sha256(seed, task, unit) are kept: the choice depends on the ids alone, not on the file's row order, and
the same spec always selects the same samples.  The record (spec, counts per stratum and a hash of the
selected ids) goes into the run's manifest; ``compare`` refuses two runs whose records differ.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional

from unitoken_eval.harness.types import Sample

NO_STRATUM = "(none)"


def _rank(seed: int, task_id: str, unit: str) -> str:
    return hashlib.sha256(f"{seed}\0{task_id}\0{unit}".encode("utf-8")).hexdigest()


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Proportional shares of ``total`` over strata of the given sizes (largest remainders, ties by name)."""
    n = sum(sizes.values())
    if total >= n:
        return dict(sizes)
    exact = {s: total * k / n for s, k in sizes.items()}
    share = {s: int(v) for s, v in exact.items()}
    left = total - sum(share.values())
    for s in sorted(sizes, key=lambda s: (-(exact[s] - share[s]), s))[:left]:
        share[s] += 1
    return share


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def select(task_id: str, samples: list[Sample], size: int, seed: int, unit_of: Callable[[Sample], str],
           stratum_field: Optional[str]) -> tuple[list[Sample], dict[str, Any]]:
    """The kept samples (in their original order) and the record of what was kept."""
    units: dict[str, list[Sample]] = {}
    for s in samples:
        units.setdefault(unit_of(s), []).append(s)
    strata: dict[str, list[str]] = {}
    for unit, members in units.items():
        value = members[0].fields.get(stratum_field) if stratum_field else None
        strata.setdefault(NO_STRATUM if value in (None, "") else str(value), []).append(unit)
    share = allocate({k: len(v) for k, v in strata.items()}, size)
    keep_units: set[str] = set()
    for name, members in strata.items():
        keep_units.update(sorted(members, key=lambda u: _rank(seed, task_id, u))[:share[name]])
    kept = [s for s in samples if unit_of(s) in keep_units]
    record = {"seed": seed, "size": size, "stratum_field": stratum_field, "n_available": len(units),
              "n_selected": len(keep_units), "n_samples": len(kept),
              "strata": {k: share[k] for k in sorted(share)}, "ids_sha256": ids_digest([s.id for s in kept])}
    return kept, record
