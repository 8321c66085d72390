"""A suite through ``unitoken-eval run`` end to end, on data in each benchmark's real schema and proportions.

GPU:       python bench/end_to_end.py --checkpoint /tmp/ut7b --gen-min-batches 2   (writes the random UniToken-7B
           there if absent; docs/performance.md has the commands of the committed records)
CPU check: python bench/end_to_end.py --quick --only mmbench_dev_en,mme   (tiny model; figures meaningless)

What it does, as a user would:
1. takes the suite (``paper`` by default) and each task's declared whole-benchmark size (``Task.full_size``);
2. writes a fixed fraction of each benchmark (at least ``--min-batches`` full batches per task) in its real
   schema: VLMEvalKit TSVs built from the rows of tasks/smoke_data (their columns, answers, options) with new
   JPEG images of the benchmark's typical size, MMBench as circular groups in the real copies-per-question
   ratio, MME as question pairs about one image, one image per question elsewhere; GenEval metadata and
   T2I-CompBench++ prompt files from the smoke prompts;
3. runs ``python -m unitoken_eval.harness.cli run --config ...`` (the real CLI, store and scorers; generation is scored by
   the smoke scorers) with the release-layout random UniToken-7B, while a thread samples the GPU's
   utilisation through NVML;
4. reads back what the run recorded (``inference-*.jsonl``: per task samples, wall time and the adapter's
   prefill and image counters; predictions' per-batch seconds; run.log) and writes
   bench/records/end-to-end[-opt-in]-<device>-<time>.json with, per task, samples, prefills, wall time, samples/s
   (also without the task's first batch), GPU-busy share, and the one-time costs apart (torch.compile's
   recompiles counted from its own log); and a projection of
   the suite's whole-benchmark minutes from these rates beside bench/throughput.py's component projection.

Random weights never emit the end-of-turn token, so each task's answers are capped at its benchmark's typical
answer length (``BenchmarkSize.answer_tokens``) through the task option ``max_new_tokens``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import io
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import yaml
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records_io import save_record  # noqa: E402
from unitoken_eval.harness import registry  # noqa: E402
from unitoken_eval.harness.config import load_config  # noqa: E402
from unitoken_eval.harness.store import RunStore  # noqa: E402
from unitoken_eval.tasks.common import circular as circ  # noqa: E402

SMOKE = ROOT / "tasks" / "smoke_data"
csv.field_size_limit(1 << 30)

# Typical image sizes (width, height) of each benchmark's pictures, roughly: what the CPU side decodes and
# resizes (the model sees fixed-size crops and views whatever the input size).
IMAGE_SIZE = {"MMBench_DEV_EN": (512, 384), "MMBench_DEV_CN": (512, 384), "SEEDBench_IMG": (1024, 768),
              "AI2D_TEST": (800, 600), "MME": (640, 480), "MMMU_DEV_VAL": (700, 500), "MathVista_MINI": (640, 480),
              "OCRBench": (400, 300), "HallusionBench": (900, 600), "MMStar": (640, 480), "MMVet": (1024, 768)}


# ----------------------------------------------------------------------------------------------- data
def picture(seed: int, size: tuple[int, int]) -> str:
    """A base64 JPEG with smooth colour fields, shapes and text: compresses like a photo or a chart would."""
    w, h = size
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    r, g, b = (seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256
    img = Image.merge("RGB", [c.point(lambda v, k=k: (v + k) % 256) for c, k in zip(img.split(), (r, g, b))])
    d = ImageDraw.Draw(img)
    for k in range(6):
        x, y = (seed * 13 + k * 97) % w, (seed * 29 + k * 61) % h
        d.ellipse((x, y, x + w // 6, y + h // 6), fill=((r + 80 * k) % 256, (g + 40 * k) % 256, b))
        d.text((x % (w - 60), y % (h - 20)), f"#{seed}-{k}", fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in columns])


def _image_cell(template: str, seed: int, size: tuple[int, int]) -> str:
    if template.startswith("["):  # a list-of-images cell (MMMU): the same shape, new pictures
        return str([picture(seed, size), picture(seed + 7919, size)])
    return picture(seed, size)


def circular_tsv(tsv: str, n_rows: int, ratio: float) -> tuple[list[str], list[dict]]:
    """MMBench: questions with one circular copy per option (index + k*1e6, image cell = the main index), as
    many 2-option (2-copy) questions beside 4-option ones as give the real rows-per-question ``ratio``."""
    cols, rows = read_rows(SMOKE / "understanding" / f"{tsv}.tsv")
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(circ.group_of(r["index"]), []).append(r)
    by_copies = {len(g): g for g in groups.values()}
    four, two = by_copies[4], by_copies[2]
    n_groups = max(1, round(n_rows / ratio))
    n_two = round(n_groups * (4 - ratio) / 2)
    out = []
    for q in range(n_groups):
        template = two if n_two and q % max(1, round(n_groups / n_two)) == 0 and q // max(1, round(n_groups / n_two)) < n_two else four
        base = sorted(template, key=lambda r: int(r["index"]))
        for k, r in enumerate(base):
            row = dict(r, index=str(q + k * int(circ.OFFSET)))
            row["image"] = picture(q, IMAGE_SIZE[tsv]) if k == 0 else str(q)
            out.append(row)
    return cols, out


def pairs_tsv(tsv: str, n_rows: int) -> tuple[list[str], list[dict]]:
    """MME: two yes/no questions about one image (the second row's image cell names the first row)."""
    cols, rows = read_rows(SMOKE / "understanding" / f"{tsv}.tsv")
    templates = [rows[i:i + 2] for i in range(0, len(rows) - 1, 2)]
    out = []
    for p in range(max(1, n_rows // 2)):
        a, b = templates[p % len(templates)]
        path = f"MME/{a['category']}/{p:04d}.png"
        out.append(dict(a, index=str(2 * p), image=picture(p, IMAGE_SIZE[tsv]), image_path=path))
        out.append(dict(b, index=str(2 * p + 1), image=str(2 * p), image_path=path))
    return cols, out


def single_tsv(tsv: str, n_rows: int) -> tuple[list[str], list[dict]]:
    """One image per question: the smoke rows cycled, each with its own new picture and a fresh index."""
    cols, rows = read_rows(SMOKE / "understanding" / f"{tsv}.tsv")
    if "split" in cols:  # MMMU's val task reads the validation rows only
        rows = [r for r in rows if r.get("split") != "dev"]
    with_pixels = [r for r in rows if len(r["image"]) > 64]
    out = []
    for i in range(n_rows):
        t = dict(rows[i % len(rows)])
        t["image"] = _image_cell(t["image"] if len(t["image"]) > 64 else with_pixels[0]["image"], i, IMAGE_SIZE[tsv])
        if re.fullmatch(r"-?\d+", t["index"]):
            t["index"] = str(i + 1)
        else:  # HallusionBench: category_subcategory_set_figure_question; a new set per cycle of the templates
            parts = t["index"].split("_")
            parts[2] = str(i // len(rows) * 100 + int(parts[2]))
            t["index"] = "_".join(parts)
        if "id" in cols and t.get("id"):  # MMMU's own id: split_subject_number
            t["id"] = f"validation_{t.get('category') or 'Art'}_{i + 1}"
        if "img_width" in cols:
            t["img_width"], t["img_height"] = IMAGE_SIZE[tsv]
        out.append(t)
    return cols, out


def write_understanding(task, n_rows: int, out_dir: Path) -> Path:
    tsv = task.tsv_name
    size = task.full_size
    if getattr(task, "circular", False):
        cols, rows = circular_tsv(tsv, n_rows, size.samples / size.input_images)
    elif size.images is not None and size.samples == 2 * size.images:
        cols, rows = pairs_tsv(tsv, n_rows)
    else:
        cols, rows = single_tsv(tsv, n_rows)
    path = out_dir / f"{tsv}.tsv"
    write_rows(path, cols, rows)
    return path


def write_geneval(n: int, out_dir: Path) -> Path:
    lines = [ln for ln in (SMOKE / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines() if ln.strip()]
    path = out_dir / "geneval" / "evaluation_metadata.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines[i % len(lines)] + "\n" for i in range(n)))
    return path


def write_t2i(category: str, n: int, out_dir: Path) -> Path:
    name = f"{category}_val.txt"
    src = [ln for ln in (SMOKE / "t2i_compbench" / name).read_text().splitlines() if ln.strip()]
    folder = out_dir / "t2i_compbench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(src[i % len(src)] + "\n" for i in range(n)))
    return folder / name


# ----------------------------------------------------------------------------------------------- GPU busy
class GpuSampler(threading.Thread):
    """NVML utilisation ("a kernel was running during the last sample period") every ``period`` seconds,
    stamped with wall time; nvidia-smi when the NVML binding is missing; nothing without a GPU."""

    def __init__(self, period: float = 0.1):
        super().__init__(daemon=True)
        self.period, self.samples, self.stop, self.source = period, [], threading.Event(), None

    def run(self) -> None:
        read = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            read, self.source = (lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), "nvml"
        except Exception:  # noqa: BLE001 - fall back to the CLI
            def read():
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            self.source = "nvidia-smi"
            try:
                read()
            except Exception:  # noqa: BLE001 - no GPU
                self.source = None
                return
        while not self.stop.is_set():
            try:
                self.samples.append((time.time(), float(read())))
            except Exception:  # noqa: BLE001 - a missed sample
                pass
            self.stop.wait(self.period)

    def busy(self, t0: float, t1: float) -> Optional[float]:
        vals = [u for t, u in self.samples if t0 <= t <= t1]
        return round(sum(vals) / len(vals) / 100.0, 3) if vals else None


# ----------------------------------------------------------------------------------------------- analysis
def first_batch(store: RunStore, task_id: str) -> dict[str, Any]:
    """Per-batch adapter seconds from the predictions: a batch's records are adjacent and each holds the
    batch's seconds per sample, so a batch is a run of equal values."""
    secs = []
    for path in store.prediction_files(task_id):
        with open(path, encoding="utf-8") as fh:
            secs += [float(json.loads(ln).get("meta", {}).get("seconds", 0.0)) for ln in fh if ln.strip()]
    batches: list[list[float]] = []
    for v in secs:
        if batches and batches[-1][0] == v:
            batches[-1].append(v)
        else:
            batches.append([v])
    per_batch = [sum(b) for b in batches]
    return {"batches": len(batches), "first_batch_adapter_s": round(per_batch[0], 2) if per_batch else None,
            "first_batch_samples": len(batches[0]) if batches else 0,
            "adapter_s": round(sum(per_batch), 2),
            "batch_adapter_s": [round(x, 3) for x in per_batch], "batch_samples": [len(b) for b in batches]}


# torch's log lines: "V1203 18:08:03.070000 <pid> torch/_dynamo/guards.py:N] [0/1] [__recompiles] Recompiling
# function NAME in PATH:LINE" (month, day and local time of the process that ran the model).
RECOMPILE = re.compile(r"^[A-Z](\d{4}) (\d\d:\d\d:\d\d)(\.\d+)? .*?Recompiling function (\w+) in (\S+?):\d+", re.M)


def recompiles_from_log(log_text: str, task_spans: Optional[dict[str, tuple[float, float]]] = None,
                        year: Optional[int] = None) -> dict[str, Any]:
    """torch.compile's recompiles during the run (the run sets TORCH_LOGS=recompiles): a recompile after the
    first batches stalls the GPU for seconds, which a short run would project over a whole benchmark.
    ``task_spans``: each task's (started, finished) epoch seconds, to say which task paid each recompile."""
    events = []
    for mmdd, hms, frac, fn, path in RECOMPILE.findall(log_text):
        when = None
        if year is not None:
            when = time.mktime(time.strptime(f"{year}{mmdd} {hms}", "%Y%m%d %H:%M:%S")) + float(frac or 0)
        events.append((f"{Path(path).name}:{fn}", when))
    names = [n for n, _ in events]
    out: dict[str, Any] = {"count": len(events), "by_function": {f: names.count(f) for f in sorted(set(names))}}
    if task_spans is not None:
        out["by_task"] = {tid: n for tid, (t0, t1) in task_spans.items()
                          if (n := sum(1 for _, w in events if w is not None and t0 <= w <= t1))}
    return out


def batch_sizes_from_log(log_text: str) -> tuple[Optional[int], Optional[int]]:
    m = re.search(r"batch sizes on \S+: (\d+) prompts, (\d+) images", log_text)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def component_rates(record: Path, answer_tokens: int, images_per_prompt: float = 1.0,
                    prefill_tokens_per_prompt: Optional[float] = None) -> dict[str, Any]:
    """bench/throughput.py's rates for the same prompts: a batch of 16 prompts at this answer length, plus SigLIP
    (5 views) and VQ encoding of each distinct image; and bf16-KV images/s.

    The prefill: ``prefill_tokens_per_prompt`` (what the run's prompts prefilled, sharing included) on the line
    through the record's two timed prefills; without it, prompts of ~4.7k tokens less the prefills that prompts
    sharing an image skip (slope from its prefix-sharing run: 16 prompts about 4 images)."""
    r = json.loads(record.read_text())
    by = r["understanding_decode_by_answer_tokens"]
    lens = sorted(int(k) for k in by["by_answer_tokens"])
    near = min(lens, key=lambda n: abs(n - answer_tokens))
    batch = by["prompts_per_batch"]
    ps, ours, vis = r["prefix_sharing"], r["understanding_ours"], r["vision"]
    saved_per_share = (ours["seconds"] - ps["seconds"]) / (1 - ps["groups"] / ps["prompts"])
    images = batch * images_per_prompt
    vision_s = images * (1 / vis["siglip_5_views_per_s"] + 1 / vis["vqgan_encode_fp32_per_s"])
    batch_s = by["by_answer_tokens"][str(near)]["batch_seconds"] + vision_s
    if prefill_tokens_per_prompt:
        # A batch's prefill as a fixed cost plus a cost per token, through the two prefills the record timed:
        # 16 prompts of 4.7k tokens each, and the prefix-sharing batch (its answers' time taken off).
        big_tokens, big_s = ours["prompts"] * ours["prompt_tokens_each"], ours["prefill_only_seconds"]
        small_s = ps["seconds"] - (ours["seconds"] - big_s)
        per_token = (big_s - small_s) / (big_tokens - ps["prefill_tokens"])
        prefill_s = big_s + per_token * (batch * prefill_tokens_per_prompt - big_tokens)
        batch_s += prefill_s - big_s
    else:
        batch_s -= saved_per_share * (1 - images_per_prompt)
    out = {"record": record.name, "und_batch": batch, "und_answer_tokens": near, "und_batch_seconds": round(batch_s, 3),
           "und_prompts_per_s": batch / batch_s}
    gen = r.get("generation_ours_bf16_kv") or {}
    bg = gen.get("with_background_decode", {})
    out.update(gen_batch=gen.get("images"), gen_images_per_s=bg.get("images_per_s", gen.get("images_per_s")))
    return out


def first_batch_excess_s(row: dict[str, Any], rate: Optional[float] = None) -> float:
    """What a task's first batch took beyond its steady rate (graph capture, compiles, first sessions)."""
    rate = rate or row.get("steady_samples_per_s")
    secs, n = row.get("first_batch_adapter_s"), row.get("first_batch_samples")
    if not rate or secs is None or not n:
        return 0.0  # no steady rate: the task's whole time is in its rate already
    return max(0.0, secs - n / rate)


# A later batch taking this many times the median seconds per sample of its task's later batches paid for
# something once (a compile for a batch shape the process had not seen).
ONE_TIME_BATCH_FACTOR = 3.0


def understanding_steady(row: dict[str, Any]) -> Optional[dict[str, float]]:
    """An understanding task's steady rate inside the adapter's model calls, first batch apart, and what a
    whole-size task pays once: the first batch's excess, later batches' one-time excess (see
    ``ONE_TIME_BATCH_FACTOR``; needs the per-batch seconds) and the task's time outside the model calls.

    Outside the model calls the runner loads the task, builds the first batch's requests before the GPU can
    start, and closes the task; the batches after that are prepared while the GPU works.  The records show
    that time is per task, not per batch (SEED-Bench, 9 batches, 0.7 s; the 3-batch tasks 0.3-0.9 s), so a
    whole benchmark pays it once rather than in proportion to its batches."""
    ad = row.get("adapter") or {}
    model_s, n = ad.get("answer_model_s"), row.get("samples")
    fn, fb = row.get("first_batch_samples"), row.get("first_batch_adapter_s")
    if not model_s or not n or not fn or fb is None or n <= fn or model_s <= fb:
        return None
    later, sizes = row.get("batch_adapter_s", [])[1:], row.get("batch_samples", [])[1:]
    later_once = 0.0
    if later and len(later) == len(sizes):
        per = sorted(t / k for t, k in zip(later, sizes))
        median = per[(len(per) - 1) // 2]
        later_once = sum(t - median * k for t, k in zip(later, sizes) if t > ONE_TIME_BATCH_FACTOR * median * k)
    rate = (n - fn) / (model_s - fb - later_once)
    return {"rate": rate, "first_batch_excess_s": first_batch_excess_s(row, rate), "later_batches_one_time_s": later_once,
            "outside_model_calls_s": max(0.0, row["wall_s"] - model_s)}


def project(rec: dict[str, Any], suite_id: str, options: dict[str, Any], comp_path: Optional[Path]) -> None:
    """Whole-suite minutes from the record's per-task rates (understanding: :func:`understanding_steady`;
    generation: the warm decoder-only rate and one tail per runner batch), plus the one-time costs counted once: the start before the first task and what
    each task pays once.  Also the component projection for the same tasks, and the other suites."""
    per_task = rec["tasks"]
    if rec.get("model_args_extra"):
        comp_path = None  # the component rates are the exact paths'; an opt-in run has no like to compare with
    suite = load_config(registry.suite_path(suite_id), origin=f"suite {suite_id}")
    size = registry.run_size(suite.tasks, suite.options)
    excess = {t: round(first_batch_excess_s(r), 1) for t, r in per_task.items()}
    for t, r in per_task.items():
        st = understanding_steady(r) if r.get("kind") == "understand" else None
        if st:
            r["steady_model_samples_per_s"] = round(st["rate"], 3)
            r["once_per_task_s"] = {k: round(v, 2) for k, v in st.items() if k != "rate"}
            excess[t] = round(sum(r["once_per_task_s"].values()), 1)
    # A generation task drawn in one runner batch has no steady rate of its own, and the first task on a new
    # decoder session (another CFG scale or prompt width) also captures its CUDA graphs.  The fastest whole-task
    # images/s among the generation tasks is the warm rate (what a suite of one-batch tasks, like `ci`, runs at).
    # A whole benchmark is many runner batches of `gen_batch` prompts: each draws its images at the warm
    # decoder-only rate and then waits for its last chunk's VQ decoding (the tail, the smallest measured);
    # each task's time beyond that is a one-time cost.
    gen_rows = {t: r for t, r in per_task.items()
                if r.get("kind") == "generate" and r.get("generated_images") and not r.get("steady_samples_per_s")}
    warm = max(r["generated_images"] / r["wall_s"] for r in gen_rows.values()) if len(gen_rows) >= 2 else None
    if warm:
        rec["warm_generation_images_per_s"] = round(warm, 3)
        for row in gen_rows.values():
            row["warm_samples_per_s"] = round(warm * row["samples"] / row["generated_images"], 4)
        given = re.search(r"gen_batch_size=(\d+)", rec.get("command", ""))  # the log names it only when auto
        runner_batch = (rec.get("batch_sizes") or {}).get("images") or (int(given.group(1)) if given else None)
        decoder_s = {t: (r.get("adapter") or {}).get("image_decoder_s") for t, r in gen_rows.items()}
        if runner_batch and all(decoder_s.values()):
            warm_dec = max(r["generated_images"] / decoder_s[t] for t, r in gen_rows.items())
            tail = min((r["wall_s"] - decoder_s[t]) / r["batches"] for t, r in gen_rows.items())
            rec["generation_model"] = {"decoder_only_images_per_s": round(warm_dec, 3),
                                       "tail_per_runner_batch_s": round(tail, 2), "runner_batch_prompts": runner_batch}
            for t, r in gen_rows.items():
                excess[t] = round(max(0.0, r["wall_s"] - r["generated_images"] / warm_dec - r["batches"] * tail), 1)
                full = size["tasks"][t]
                secs = full["generated_images"] / warm_dec + math.ceil(full["samples"] / runner_batch) * tail
                r["whole_benchmark_samples_per_s"] = round(full["samples"] / secs, 4)
        else:
            for t, r in gen_rows.items():
                excess[t] = round(max(0.0, r["wall_s"] - r["generated_images"] / warm), 1)
    rec["one_time_s"]["once_per_task"] = excess
    one_time = rec["one_time_s"]["start_load_compile_before_first_task"] + sum(excess.values())
    rec["one_time_s"]["counted_in_projection"] = round(one_time, 1)
    proj, comp_proj, rate_used = {}, {}, {}
    for tid, row in per_task.items():
        choices = (("steady_model_samples_per_s", "steady inside the model calls (first batch apart); the task's "
                    "time outside them, its first batch's excess and later one-time batches counted once"),
                   ("whole_benchmark_samples_per_s", "warm decoder-only images/s plus one tail per runner batch "
                    "(generation_model); the rest one-time"),
                   ("steady_samples_per_s", "steady (first batch apart)"),
                   ("warm_samples_per_s", "warm generation rate (the fastest generation task's images/s; the rest one-time)"),
                   ("samples_per_s", "whole task (one batch: one-time costs included)"))
        rate, how = next(((row[k], how) for k, how in choices if row.get(k)), (None, None))
        if not rate:
            continue
        rate_used[tid] = how
        row["projection_samples_per_s"] = rate
        full = size["tasks"][tid]["samples"]
        proj[tid] = round(full / rate, 1)
        if comp_path is not None:
            c = component_rates(comp_path, row.get("answer_tokens", 4), row.get("distinct_images_per_prompt", 1.0),
                                row.get("prefill_tokens_per_prompt"))
            if row["kind"] == "understand":
                comp_rate = c["und_prompts_per_s"]
                row["component_prompts_per_s"] = round(comp_rate, 3)
            else:
                per = registry.make_task(tid, options.get(tid)).images_per_sample()
                comp_rate = c["gen_images_per_s"] / per
                row["component_images_per_s"] = round(c["gen_images_per_s"], 3)
                row["component_batch"] = c["gen_batch"]
            # the whole benchmark through the runner, its once-per-task costs included, against the components
            row["end_to_end_vs_component"] = round(full / (proj[tid] + excess.get(tid, 0.0)) / comp_rate, 3)
            if row.get("steady_samples_per_s"):  # this run's own tasks (a few batches each), wall clock
                row["run_steady_vs_component"] = round(row["steady_samples_per_s"] / comp_rate, 3)
            comp_proj[tid] = round(full / comp_rate, 1)
    missing = [t for t in size["tasks"] if t not in proj]
    rec["projection"] = {
        "suite": suite_id, "suite_size": size["total"], "seconds_per_task": proj, "rate_used": rate_used,
        "tasks_not_measured": missing,
        "minutes_total": round((sum(proj.values()) + one_time) / 60, 1) if proj and not missing else None,
        "component_seconds_per_task": comp_proj,
        "component_minutes_total": (round((sum(comp_proj.values()) + one_time) / 60, 1)
                                    if comp_proj and not missing else None),
        "how": "whole-benchmark samples (Task.full_size) / this run's samples/s per task (rate_used: understanding "
               "inside the model calls after the first batch; generation the warm decoder-only rate plus one tail per "
               "runner batch, generation_model), plus what is paid once, "
               "counted once: the start, and per task (once_per_task) its time outside the model calls, its first "
               "batch's excess over its rate and later one-time batches; component: bench/throughput.py's rates for "
               "the run's prompt lengths (prefill tokens per prompt) at the same answer length, and its bf16-KV images/s"}
    # Other suites from the same rates: a task this run did not measure takes the images/s that the projection
    # above used for the T2I-CompBench++ categories it ran (the same decoder on prompts of the same kind; their
    # one-time costs are counted once already), said per task.
    t2i_rates = [size["tasks"][t]["generated_images"] / proj[t] for t in proj
                 if t.startswith("t2i_compbench_") and size["tasks"][t].get("generated_images")]
    for other in ("paper", "full"):
        osize = registry.suite_size(other)
        secs, borrowed, unknown = {}, [], []
        for tid, t in osize["tasks"].items():
            if tid in proj:
                secs[tid] = proj[tid]
            elif tid.startswith("t2i_compbench_") and t2i_rates:
                secs[tid] = round(t["generated_images"] / (sum(t2i_rates) / len(t2i_rates)), 1)
                borrowed.append(tid)
            else:
                unknown.append(tid)
        rec["projection"][f"suite_{other}"] = {
            "size": osize["total"], "seconds_per_task": secs, "rate_from_measured_t2i_categories": borrowed,
            "not_measured": unknown,
            "minutes_total": round((sum(secs.values()) + one_time) / 60, 1) if not unknown else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="paper")
    ap.add_argument("--fraction", type=float, default=0.01, help="of each benchmark's real size")
    ap.add_argument("--min-batches", type=int, default=3, help="full batches per task at least")
    ap.add_argument("--gen-min-batches", type=int, default=None,
                    help="full decoder batches per generation task at least (default: --min-batches)")
    ap.add_argument("--und-batch", type=int, default=16, help="prompts per batch the floor counts (auto on an H200)")
    ap.add_argument("--gen-batch", type=int, default=100,
                    help="images per decoder batch (given to the adapter: GenEval's 4 and T2I-CompBench++'s 10 "
                         "images per prompt then fill whole batches; auto is ~104 in bf16 on an H200)")
    ap.add_argument("--only", help="comma-separated task ids (default: the whole suite)")
    ap.add_argument("--work", default="/tmp/unitoken-e2e", help="data and run directory")
    ap.add_argument("--checkpoint", default="/tmp/unitoken-7b-release-layout")
    ap.add_argument("--model-args", default="", help="extra adapter arguments (kv_cache=int8,prefill=fp8)")
    ap.add_argument("--quick", action="store_true", help="tiny random model: checks the script only")
    ap.add_argument("--component", default=None,
                    help="bench/throughput.py record to compare with (default: the newest in bench/records)")
    ap.add_argument("--records", help="where the record goes (default bench/records; --quick: --work)")
    ap.add_argument("--deadline-s", type=float, default=None,
                    help="interrupt the run after this many seconds and record the tasks it finished")
    ap.add_argument("--analyze", metavar="WORK", help="only redo the analysis of an earlier --work folder")
    ap.add_argument("--reproject", metavar="RECORD", help="only redo the projection of a saved record, in place")
    a = ap.parse_args(argv)
    if a.gen_min_batches is None:
        a.gen_min_batches = a.min_batches
    if a.analyze:
        return analyze(Path(a.analyze), a.records)
    if a.reproject:
        path = Path(a.reproject)
        rec = json.loads(path.read_text())
        comp = ROOT / "bench" / "records" / rec.get("component_record", "-")
        project(rec, rec["suite"], rec.get("task_options", {}), comp if comp.is_file() and not rec.get("quick") else None)
        path.write_text(json.dumps(rec, indent=2) + "\n")
        return None
    import torch

    cuda = torch.cuda.is_available()
    work = Path(a.work)
    data_dir, run_dir = work / "data", work / "run"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists: choose another --work")
    suite = load_config(registry.suite_path(a.suite), origin=f"suite {a.suite}")
    size = registry.run_size(suite.tasks, suite.options)
    only = set(a.only.split(",")) if a.only else None
    rec: dict[str, Any] = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "host": platform.node(),
                           "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                           "suite": a.suite, "fraction": a.fraction, "min_batches": a.min_batches,
                           "floor": {"understanding_prompts": a.min_batches * a.und_batch,
                                     "generated_images": a.gen_min_batches * a.gen_batch},
                           "quick": a.quick, "model_args_extra": a.model_args}

    # 1-2: the data
    data, options, planned = {}, {}, {}
    for tid, t in size["tasks"].items():
        if only and tid not in only:
            continue
        task = registry.make_task(tid, suite.options.get(tid))
        opts = dict(suite.options.get(tid, {}))
        if t["kind"] == "understand":
            n = max(math.ceil(a.fraction * t["samples"]), a.min_batches * a.und_batch)
            data[tid] = str(write_understanding(task, n, data_dir))
            opts["max_new_tokens"] = task.full_size.answer_tokens
        else:
            per = task.images_per_sample()
            n = max(math.ceil(a.fraction * t["samples"]), math.ceil(a.gen_min_batches * a.gen_batch / per))
            if tid == "geneval":
                data[tid] = str(write_geneval(n, data_dir))
                opts.update(verify_prompts=False, detector="smoke", color_model="smoke")
            else:
                data[tid] = str(write_t2i(task.category, n, data_dir))
                opts["smoke_scorers"] = True
        options[tid] = opts
        planned[tid] = {"kind": t["kind"], "full_samples": t["samples"], "bench_rows_written": n}
    rec["data_bytes"] = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())

    # the model
    ckpt = Path(a.checkpoint)
    from bench.unitoken_release_layout import ensure_checkpoint

    write_s = ensure_checkpoint(ckpt, a.quick, cuda)
    if write_s is not None:
        rec["checkpoint_write_s"] = write_s
        if cuda:
            torch.cuda.empty_cache()
    model_args = f"path={ckpt},dtype={'bfloat16' if cuda else 'float32'},device={'cuda' if cuda else 'cpu'}"
    model_args += f",gen_batch_size={a.gen_batch}"
    if a.quick:
        model_args += f",batch_size={a.und_batch}"
    if a.model_args:
        model_args += "," + a.model_args
    tasks = [t for t in suite.tasks if not only or t in only]
    config = {"model": "unitoken", "tasks": tasks, "profile": suite.profile, "data": data, "options": options}
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    # 3: the run
    sampler = GpuSampler()
    sampler.start()
    cmd = [sys.executable, "-m", "unitoken_eval.harness.cli", "run", "--config", str(work / "config.yaml"), "--model-args",
           model_args, "--out", str(run_dir), "--no-progress"]
    rec["command"] = " ".join(cmd[1:])
    t_start = time.time()
    with open(work / "run.out", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={"TORCH_LOGS": "recompiles", **os.environ, "PYTHONUNBUFFERED": "1",
                                     "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
        try:
            proc.wait(timeout=a.deadline_s)
        except subprocess.TimeoutExpired:
            rec["interrupted_at_deadline_s"] = a.deadline_s
            proc.send_signal(signal.SIGINT)  # the runner keeps every finished batch
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    t_end = time.time()
    sampler.stop.set()
    rec["exit_status"] = proc.returncode
    if proc.returncode != 0:  # what stopped the run, in the record itself
        rec["run_out_tail"] = (work / "run.out").read_text(errors="replace").splitlines()[-40:]
    rec["wall_s"] = round(t_end - t_start, 1)
    rec["gpu_sampler"] = sampler.source
    state = {"rec": rec, "planned": planned, "data": data, "options": options, "t_start": t_start, "t_end": t_end,
             "gpu": sampler.samples, "args": vars(a)}
    (work / "bench-state.json").write_text(json.dumps(state))
    analyze(work)


def analyze(work: Path, records: Optional[str] = None) -> None:
    """Step 4 from what step 3 left in ``work`` (rerun with ``--analyze WORK`` to redo it)."""
    state = json.loads((work / "bench-state.json").read_text())
    rec, planned, data, options = state["rec"], state["planned"], state["data"], state["options"]
    t_start, t_end = state["t_start"], state["t_end"]
    a = argparse.Namespace(**{**state["args"], **({"records": records} if records else {})})
    sampler = GpuSampler()
    sampler.samples = [tuple(x) for x in state["gpu"]]
    run_dir = work / "run"
    store = RunStore(run_dir)
    # torch logs to the process's stderr, which only run.out holds
    run_log, run_out = ((p.read_text(errors="replace") if p.exists() else "")
                        for p in (run_dir / "run.log", work / "run.out"))
    log_text = run_log + run_out
    und_batch, gen_batch = batch_sizes_from_log(log_text)
    rec["batch_sizes"] = {"prompts": und_batch, "images": gen_batch}
    stats = {s["task"]: s for s in store.read_inference_stats()} if run_dir.exists() else {}
    spans = {tid: (s["started"], s["finished"]) for tid, s in stats.items()}
    rec["recompiles"] = recompiles_from_log(run_out, spans, time.localtime(t_start).tm_year)
    per_task = {}
    for tid, p in planned.items():
        s = stats.get(tid)
        if s is None:
            per_task[tid] = {**p, "status": "not run (see run.out)"}
            continue
        kind = p["kind"]
        fb = first_batch(store, tid)
        n, secs = s["samples"], s["seconds"]
        row = {**p, "samples": n, "wall_s": secs, "samples_per_s": round(n / secs, 3), **fb,
               "gpu_busy_share": sampler.busy(s["started"], s["finished"]), "adapter": s["adapter"]}
        steady_n = n - fb["first_batch_samples"]
        steady_s = secs - (fb["first_batch_adapter_s"] or 0.0)
        if steady_n > 0 and steady_s > 0:
            row["steady_samples_per_s"] = round(steady_n / steady_s, 3)
        if kind == "understand":
            ad = s["adapter"]
            row["prefills_per_prompt"] = round(ad.get("prefills", 0) / max(1, ad.get("prompts", 1)), 4)
            if ad.get("prefill_tokens"):  # what the component rate is scaled to ("the same prompts")
                row["prefill_tokens_per_prompt"] = round(ad["prefill_tokens"] / max(1, ad.get("prompts", 1)), 1)
            samples = registry.make_task(tid, options[tid]).load(data[tid])
            row["distinct_images_per_prompt"] = round(len({x.image_key for x in samples}) / len(samples), 4)
            row["answer_tokens"] = options[tid]["max_new_tokens"]
            if ad.get("answer_model_s"):  # the adapter's model calls alone, in this run: the runner's overhead
                row["in_adapter_prompts_per_s"] = round(n / ad["answer_model_s"], 3)
                row["model_share_of_wall"] = round(ad["answer_model_s"] / secs, 3)
        else:
            row["generated_images"] = s["adapter"].get("generated_images")
            row["images_per_s"] = round(row["generated_images"] / secs, 3) if row["generated_images"] else None
            if s["adapter"].get("image_decoder_s"):  # decoder-only images/s at this batch, in this run
                row["decoder_only_images_per_s"] = round(row["generated_images"] / s["adapter"]["image_decoder_s"], 3)
                row["model_share_of_wall"] = round(s["adapter"]["image_decoder_s"] / secs, 3)
            if steady_n > 0 and steady_s > 0:
                per = registry.make_task(tid, options[tid]).images_per_sample()
                row["steady_images_per_s"] = round(steady_n * per / steady_s, 3)
        per_task[tid] = row
    rec["tasks"] = per_task
    first_start = min((s["started"] for s in stats.values()), default=t_end)
    last_end = max((s["finished"] for s in stats.values()), default=t_end)
    rec["one_time_s"] = {"start_load_compile_before_first_task": round(first_start - t_start, 1),
                         "first_batches_total": round(sum(r.get("first_batch_adapter_s") or 0 for r in per_task.values()), 1),
                         "scoring_and_exit_after_last_task": round(t_end - last_end, 1)}
    metrics = {m: r.status for m, r in store.all_metrics().items()} if run_dir.exists() else {}
    rec["scored"] = metrics
    newest = sorted((ROOT / "bench" / "records").glob("throughput-*.json"))  # names end in their time
    comp_path = Path(a.component) if a.component else (newest[-1] if newest else Path("-"))
    rec["component_record"] = comp_path.name
    rec["task_options"] = options
    project(rec, a.suite, options, comp_path if comp_path.is_file() and not a.quick else None)
    # end-to-end[-opt-in]-<device>-<time>: the exact paths' records are what suite budgets read
    stem = "end-to-end" + ("-opt-in" if rec.get("model_args_extra") else "") + "-" + re.sub(r"\W+", "-", rec["device"]).strip("-")
    save_record(rec, a.records or (work if a.quick else ROOT / "bench" / "records"), stem)


if __name__ == "__main__":
    main()
