"""Projected GPU minutes of a suite on one GPU, from per-task rates and the suite's per-task sample counts.

    python bench/suite_budget.py                      # the ci suite, from the newest record in bench/records
    python bench/suite_budget.py --record R.json --suite ci --run results/runs/CI_RUN

Rates come from an end-to-end record (``tasks: {task: {samples, wall_s, samples_per_s}}``, written by the
end-to-end bench through ``unitoken-eval run``) when one exists; otherwise from the newest throughput record's
component projection (seconds per benchmark over the benchmark's sample count), and the output says so.
Counts come from a finished run's manifest (``--run``: the exact subset sizes) or from the suite's subset
sizes times the samples per unit of the grouped benchmarks (MMBench circular copies, MME pairs,
HallusionBench figures per question: the full benchmarks' ratios, an approximation until a run exists).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORDS = ROOT / "bench" / "records"
# Samples per subset unit in the full benchmarks (MMBench dev: 4,329 rows in 1,164 circular groups; MME: 2
# questions per image; HallusionBench: 951 questions, each asked of about two figures (original and edited)).
SAMPLES_PER_UNIT = {"mmbench_dev_en": 4329 / 1164, "mmbench_dev_cn": 4329 / 1164, "mme": 2.0, "hallusionbench": 2.0}
# Images per sample in the protocols the records measured (GenEval 4, T2I-CompBench++ 10).
RECORD_IMAGES_PER_SAMPLE = {"geneval": 4, "t2i_compbench": 10}


def project_minutes(rates: dict[str, float], counts: dict[str, float], one_time_s: float = 0.0) -> float:
    """GPU minutes for ``counts[task]`` samples at ``rates[task]`` samples/s each, plus one-time costs."""
    missing = sorted(set(counts) - set(rates))
    if missing:
        raise ValueError(f"no rate for {', '.join(missing)}")
    return (one_time_s + sum(n / rates[t] for t, n in counts.items())) / 60.0


def end_to_end_rates(record: dict[str, Any]) -> tuple[dict[str, float], float]:
    """samples/s per task (the rate the record's projection used) and the one-time seconds it counts (the
    start, and what each task pays once: see bench/end_to_end.py's ``project``)."""
    # generation: the warm whole-task rate, since a subset's generation task is one runner batch, as the
    # record's were (the record's whole-benchmark rate spreads each runner batch's tail over many images)
    rates = {t: float(v.get("warm_samples_per_s") or v.get("projection_samples_per_s") or v.get("steady_samples_per_s")
                      or v["samples_per_s"]) for t, v in record["tasks"].items()}
    one_time = record.get("one_time_s", {})
    return rates, float(one_time.get("counted_in_projection", one_time.get("start_load_compile_before_first_task", 0.0)))


def component_rates(record: dict[str, Any], exact: bool = True) -> tuple[dict[str, float], float]:
    """samples/s per task from a throughput record's projection, and its one-time seconds."""
    from bench.throughput import SUITE_IMAGES, SUITE_UNDERSTANDING

    proj = record["projection"]["exact" if exact else "opt_in"]
    secs = proj["seconds_per_benchmark"]
    rates = {t: n / secs[t] for t, (n, _, _) in SUITE_UNDERSTANDING.items()}
    rates["geneval"] = SUITE_IMAGES["geneval"] / RECORD_IMAGES_PER_SAMPLE["geneval"] / secs["geneval"]
    per_member = SUITE_IMAGES["t2i_compbench"] / RECORD_IMAGES_PER_SAMPLE["t2i_compbench"] / secs["t2i_compbench"]
    for member in ("color", "shape", "texture", "spatial", "3d_spatial", "non_spatial", "complex", "numeracy"):
        rates[f"t2i_compbench_{member}"] = per_member
    return rates, float(secs.get("one_time", 0.0))


def _image_scale(task: str, options: dict[str, Any]) -> float:
    """A generation task run with fewer images per prompt than the record measured costs proportionally less."""
    family = "t2i_compbench" if task.startswith("t2i_compbench") else task
    if family not in RECORD_IMAGES_PER_SAMPLE:
        return 1.0
    default = RECORD_IMAGES_PER_SAMPLE[family]
    return float(options.get(task, {}).get("images_per_prompt", default)) / default


def suite_counts(config: dict[str, Any], manifest: Optional[dict[str, Any]] = None) -> dict[str, float]:
    """Rate-equivalent samples per task of a suite: exact from a run's manifest, else from the subset sizes."""
    sizes = (config.get("subset") or {}).get("sizes") or {}
    options = config.get("options") or {}
    subsets = (manifest or {}).get("subsets") or {}
    out = {}
    for task, units in sizes.items():
        n = subsets[task]["n_samples"] if task in subsets else units * SAMPLES_PER_UNIT.get(task, 1.0)
        out[task] = n * _image_scale(task, options)
    return out


def newest(pattern: str, covering: Optional[set[str]] = None) -> Optional[Path]:
    """The newest record matching ``pattern`` (by the time in its name) of the exact paths (no opt-in model
    arguments) that measured every task in ``covering``."""
    for path in sorted(RECORDS.glob(pattern), key=lambda p: p.name[-20:], reverse=True):
        rec = json.loads(path.read_text())
        tasks = rec.get("tasks", {})
        if rec.get("model_args_extra"):
            continue
        if covering is None or all(tasks.get(t, {}).get("samples_per_s") for t in covering):
            return path
    return None


def main(argv: Optional[list[str]] = None) -> int:
    import yaml

    from unitoken_eval.harness import registry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="ci")
    ap.add_argument("--record", help="an end-to-end or throughput record (default: the newest end-to-end one, "
                                     "else the newest throughput one)")
    ap.add_argument("--run", help="a finished run of the suite: exact per-task sample counts from its manifest")
    args = ap.parse_args(argv)
    config = yaml.safe_load(Path(registry.suite_path(args.suite)).read_text(encoding="utf-8"))
    manifest = json.loads((Path(args.run) / "manifest.json").read_text()) if args.run else None
    counts = suite_counts(config, manifest)
    path = Path(args.record) if args.record else (newest("end-to-end-*.json", set(counts))
                                                  or newest("throughput-*.json"))
    record = json.loads(path.read_text())
    if "tasks" in record:
        (rates, one_time), basis = end_to_end_rates(record), "end-to-end"
    else:
        rates, one_time = component_rates(record)
        basis = "component-based (throughput projection; not an end-to-end measurement)"
    for task, n in counts.items():
        print(f"{task:28s} {n:8.1f} samples (at the record's images per prompt)  {n / rates[task]:7.1f} s")
    minutes = project_minutes(rates, counts, one_time)
    print(f"one-time {one_time:.1f} s; suite {args.suite}: {minutes:.2f} GPU minutes on one GPU, {basis}, "
          f"from {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
