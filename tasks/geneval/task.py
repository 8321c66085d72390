"""The GenEval task: 553 prompts x 4 images, scored by a detector + CLIP colour classifier with GenEval's rules.

Output layout is GenEval's own (``<index:05d>/metadata.jsonl`` + ``<index:05d>/samples/<n:05d>.png``), so the
official evaluate_images.py could re-score a run's images.  Scoring writes, in the task's work directory:
``detections.jsonl`` (per image: kept boxes, scores and the colour chosen per detection; resumable and
re-scorable without a detector, ``score --detections``) and ``results.jsonl`` (the official per-image
fields, readable by GenEval's summary_scores.py).

Headline: ``overall`` = the mean over the six tags of per-image accuracy, on GenEval's 0-1 scale.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

from PIL import Image, ImageOps

from unitoken_eval.harness import faults
from unitoken_eval.harness.plan import unfinished_batches
from unitoken_eval.harness.store import JsonlAppender, sha256_file
from unitoken_eval.harness.plugin import (
    BenchmarkSize,
    GenerateRequest,
    Headline,
    Prediction,
    Sample,
    NotScored,
    ScoreContext,
    Task,
    TaskError,
    TaskResult,
    not_scored_reason,
    not_scored_record,
)
from unitoken_eval.tasks.geneval import prompts
from unitoken_eval.tasks.common.detection import CLASS_NAMES, ENV_CHECKPOINT, Detection, Detections
from unitoken_eval.tasks.geneval.rules import COLORS, MissingColor, RuleOptions, color_targets, evaluate, keep_detections

log = logging.getLogger("unitoken_eval.geneval")

SMOKE_DIR = Path(__file__).resolve().parent.parent / "smoke_data" / "geneval"
IMAGE_NAME = re.compile(r"\d+\.png")  # evaluate_images.py scores every samples/ file matching this
DETECTIONS_FILE = "detections.jsonl"
RESULTS_FILE = "results.jsonl"
# Task options (``options.geneval`` of a run config; ``score`` passes images_dir and detections).
OPTIONS = ("images_per_prompt", "verify_prompts", "detector", "detector_checkpoint", "detector_config", "device",
           "detector_batch_size", "detector_chunk", "color_model", "detections", "images_dir", "threshold",
           "counting_threshold", "max_objects", "max_overlap", "position_threshold", "request")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


def image_key(path: str | Path) -> str:
    """``<index>/samples/<name>.png``: an image's name relative to the output root (the detections key)."""
    parts = Path(path).parts
    if len(parts) < 3 or parts[-2] != "samples":
        raise TaskError(f"{path}: not in GenEval's layout <index>/samples/<n>.png")
    return "/".join(parts[-3:])


def detections_to_json(dets: Detections) -> dict[str, list[dict[str, Any]]]:
    return {cls: [{"box": [float(v) for v in d.box], "score": float(d.score), "color": d.color} for d in items]
            for cls, items in dets.items()}


def read_detections_file(path: Path) -> dict[str, Detections]:
    """``{"filename": ..., "detections": {class: [{"box", "score", "color"}]}}`` lines -> filename -> detections."""
    out: dict[str, Detections] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TaskError(f"detections file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("filename"), str) or not isinstance(
                obj.get("detections"), dict):
            raise TaskError(f"{where}: expected {{\"filename\": str, \"detections\": {{class: [...]}}}}")
        dets: Detections = {}
        for cls, items in obj["detections"].items():
            if cls not in CLASS_NAMES:
                raise TaskError(f"{where}: {cls!r} is not one of GenEval's 80 class names")
            if not isinstance(items, list):
                raise TaskError(f"{where}: detections of {cls!r} must be a list")
            parsed = []
            for k, it in enumerate(items):
                box, score, color = (it.get("box"), it.get("score"), it.get("color")) if isinstance(it, dict) else (None,) * 3
                if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                        or not isinstance(score, (int, float)) or isinstance(score, bool)):
                    raise TaskError(f"{where}: {cls}[{k}] needs 'box' [x1, y1, x2, y2] and a numeric 'score'")
                if color is not None and color not in COLORS:
                    raise TaskError(f"{where}: {cls}[{k}] colour {color!r} is not one of {', '.join(COLORS)}")
                parsed.append(Detection(box=[float(v) for v in box], score=float(score), color=color))
            if parsed:
                dets[cls] = parsed
        try:
            key = image_key(obj["filename"])
        except TaskError as exc:
            raise TaskError(f"{where}: filename {exc}") from None
        if key in out:
            raise TaskError(f"{where}: {key} appears more than once")
        out[key] = dets
    return out


class GenEval(Task):
    id = "geneval"
    kind = "generate"
    stratum_field = "tag"
    headline = ("overall", "fraction")
    references = {
        "official": "djghosh13/geneval evaluation/evaluate_images.py + summary_scores.py @ af4902f "
                    "(Mask2Former Swin-S mmdet 3.x checkpoint; CLIP ViT-L/14 OpenAI weights via transformers)",
    }
    default_profile = "official"
    full_size = BenchmarkSize(553)  # prompts of evaluation_metadata.jsonl @ af4902f

    def __init__(self, options: Optional[dict[str, Any]] = None):
        super().__init__(options)
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise TaskError(f"geneval: unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
        try:
            self.n_images = int(self.options.get("images_per_prompt", 4))
            self.rule_options = RuleOptions.from_options(self.options)
            self.detector_chunk = max(1, int(self.options.get("detector_chunk", 16)))
        except (TypeError, ValueError) as exc:
            raise TaskError(f"geneval: a numeric option has a non-numeric value ({exc})") from None
        if self.n_images < 1:
            raise TaskError("geneval: images_per_prompt must be at least 1")
        self.data_sha256: Optional[str] = None

    # ----- data
    def smoke_source(self) -> Optional[str]:
        return str(SMOKE_DIR / "evaluation_metadata.jsonl")

    def describe_sources(self) -> list[dict[str, Any]]:
        from unitoken_eval.tasks.common.sources import hub_model, row
        from unitoken_eval.tasks.geneval.colors import DEFAULT_MODEL as CLIP_MODEL
        from unitoken_eval.tasks.common.detection import CHECKPOINT_NAME

        cached = prompts.cache_dir() / "evaluation_metadata.jsonl"
        checkpoint = self.options.get("detector_checkpoint") or os.environ.get(ENV_CHECKPOINT)
        return [
            row(f"GenEval prompts (evaluation_metadata.jsonl @ {prompts.COMMIT[:7]}, sha256-verified)", str(cached),
                cached.exists(), prompts.METADATA_URL, True),
            row(f"detector checkpoint {CHECKPOINT_NAME} (mmdet 3.x Mask2Former Swin-S)",
                checkpoint or f"${ENV_CHECKPOINT} (not set)", bool(checkpoint) and Path(checkpoint).is_file(),
                "download it from mmdet 3.3's configs/mask2former/metafile.yml and set "
                f"${ENV_CHECKPOINT}=PATH (or task option detector_checkpoint=PATH)", False),
            hub_model("colour classifier (CLIP ViT-L/14)", self.options.get("color_model"), CLIP_MODEL,
                      "color_model"),
        ]

    def fetch(self) -> None:
        """Fetch the prompts and the CLIP colour model (``unitoken-eval data --fetch``)."""
        from unitoken_eval.tasks.common.sources import fetch_rows

        prompts.fetch_metadata()
        fetch_rows(self.describe_sources())

    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        smoke = source is not None and Path(source).resolve() == Path(self.smoke_source()).resolve()
        check = not smoke and _truthy(self.options.get("verify_prompts", True))
        path = prompts.resolve_source(source, check_sha=check)
        self.data_path, self.data_sha256 = str(path), sha256_file(path)
        metas = prompts.read_metadata(path)
        samples = [Sample(id=f"{i:05d}", fields={"index": i, "metadata": m, "tag": m["tag"], "prompt": m["prompt"]})
                   for i, m in enumerate(metas)]
        return samples[:limit] if limit else samples

    # ----- inference
    def images_per_sample(self) -> int:
        return self.n_images

    def request(self, sample: Sample) -> GenerateRequest:
        return GenerateRequest(sample_id=sample.id, prompt=sample.fields["prompt"], n_images=self.n_images)

    def image_path(self, sample: Sample, k: int) -> str:
        return f"{sample.fields['index']:05d}/samples/{k:05d}.png"

    def write_sample_files(self, out_dir: Path, sample: Sample) -> None:
        folder = Path(out_dir) / f"{sample.fields['index']:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
            json.dump(sample.fields["metadata"], fh)  # one object, as GenEval's generation script writes it

    def predictions_from_images(self, images_dir: Path, samples: list[Sample]) -> dict[str, Prediction]:
        images_dir = Path(images_dir)
        out = {}
        for s in samples:
            try:
                out[s.id] = self._prediction_from_folder(images_dir, s)
            except TaskError as exc:  # raised again unless --skip-bad, then counted as that prompt's error
                out[s.id] = Prediction(sample_id=s.id, error=self.tolerate(str(exc)))
        return out

    def _prediction_from_folder(self, images_dir: Path, s: Sample) -> Prediction:
        folder = images_dir / f"{s.fields['index']:05d}"
        sample_dir = folder / "samples"
        if not sample_dir.is_dir():
            raise TaskError(f"{folder}: no samples/ folder for prompt {s.id} ({s.fields['prompt']!r})")
        names = sorted(p.name for p in sample_dir.iterdir() if p.is_file() and IMAGE_NAME.fullmatch(p.name))
        if not names:
            raise TaskError(f"{sample_dir}: no <n>.png images for prompt {s.id} ({s.fields['prompt']!r})")
        meta_file = folder / "metadata.jsonl"
        if meta_file.exists():
            try:
                theirs = json.loads(meta_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{meta_file}: not valid JSON ({exc.msg})") from None
            if theirs != s.fields["metadata"]:
                raise TaskError(f"{meta_file}: metadata differs from prompt {s.id} of the prompt file "
                                f"({theirs.get('prompt')!r} vs {s.fields['prompt']!r})")
        return Prediction(sample_id=s.id, images=[str(sample_dir / n) for n in names])

    # ----- scoring
    def score(self, samples: list[Sample], predictions: dict[str, Prediction],
              ctx: ScoreContext) -> dict[str, dict[str, Any]]:
        opts = self.rule_options
        base = Path(ctx.work_dir) if ctx.work_dir else Path(".")
        jobs = []  # (image key, absolute path, sample)
        for s in samples:
            pred = predictions.get(s.id)
            if pred is None:
                continue
            if len(pred.images) != self.n_images:
                ctx.warn(f"geneval: prompt {s.id} has {len(pred.images)} images, expected {self.n_images}")
            for rel in pred.images:
                jobs.append((image_key(rel), base / rel, s))
        given = self.options.get("detections")
        scorer = Scorer(self, ctx, opts)
        if given:
            cached = read_detections_file(Path(given))
            missing = [k for k, _, _ in jobs if k not in cached]
            if missing:
                raise TaskError(f"{given}: no detections for {len(missing)} images (first: {missing[0]})")
            scorer.scorer = f"detections file {given}"
        else:
            cached = scorer.cached()
            if any(k not in cached for k, _, _ in jobs):
                try:
                    scorer.detect_all(jobs, cached)
                except NotScored as exc:  # no detector or colour model: never scored as zero
                    reason = f"needs the GenEval detector: {exc}"
                    ctx.warn(f"geneval not scored: {reason}")
                    return {k: not_scored_record(reason) for k, _, _ in jobs}
        records = {}
        for key, path, s in jobs:
            records[key] = scorer.judge(key, path, s, cached[key], given)
        scorer.write_results(records)
        return records

    def pairing_groups(self, records: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Records are per image; a prompt's images are one unit of the gate's paired test."""
        return {key: str(r.get("prompt_id", key)) for key, r in records.items()}

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        prof = self.profile(ctx.profile)
        warnings: list[str] = []
        reason = not_scored_reason(records)
        if reason is not None or not records:
            return self.not_scored(prof, reason or "no images to score", n=len(records))
        by_tag: dict[str, list[bool]] = {}
        by_prompt: dict[str, list[bool]] = {}
        for r in records.values():
            by_tag.setdefault(r["tag"], []).append(bool(r["correct"]))
            by_prompt.setdefault(r["metadata"], []).append(bool(r["correct"]))  # summary_scores groups by metadata
        tag_acc = {t: sum(v) / len(v) for t, v in by_tag.items()}
        overall = sum(tag_acc.values()) / len(tag_acc)
        n_correct = sum(bool(r["correct"]) for r in records.values())
        metrics: dict[str, Any] = {
            "overall": overall,
            **tag_acc,
            "correct_images": n_correct / len(records),
            "correct_prompts": sum(any(v) for v in by_prompt.values()) / len(by_prompt),
            "n_images": len(records),
            "n_prompts": len(by_prompt),
        }
        missing_tags = [t for t in prompts.TAGS if t not in tag_acc]
        if missing_tags:
            warnings.append(f"overall averages {len(tag_acc)} tags; none scored for: {', '.join(missing_tags)}")
        scorers = sorted({r.get("scorer", "") for r in records.values()} - {""})
        if scorers:
            metrics["scorer"] = scorers[0] if len(scorers) == 1 else scorers
        caveats = sorted({c for r in records.values() for c in r.get("caveats", [])})
        warnings += caveats
        if self.data_sha256:
            metrics["data_sha256"] = self.data_sha256
            if self.data_sha256 != prompts.METADATA_SHA256:
                warnings.append("prompts are not GenEval's official evaluation_metadata.jsonl (sha256 differs)")
        return TaskResult(task=self.id, profile=prof, headline=Headline("overall", overall, "fraction"),
                          metrics=metrics, n=len(records), reference=self.references[prof], warnings=warnings)


class Scorer:
    """One scoring pass: the detector and colour model (loaded on first need) and the detections cache."""

    def __init__(self, task: GenEval, ctx: ScoreContext, opts: RuleOptions):
        self.task, self.ctx, self.opts = task, ctx, opts
        self.work_dir = Path(ctx.work_dir) if ctx.work_dir else None
        self.detector = None
        self.colors = None
        self.scorer = ""
        self.caveats: list[str] = []

    def opt(self, key: str, default: Any = None) -> Any:
        return self.task.options.get(key, default)

    # --- cache
    def _cache_identity(self) -> dict[str, Any]:
        checkpoint = self.opt("detector_checkpoint") or os.environ.get(ENV_CHECKPOINT)
        return {"detector": self.opt("detector", "mmdet"), "detector_checkpoint": checkpoint,
                "color_model": self.opt("color_model") or "default",
                "min_score": self.opts.floor(), "max_objects": self.opts.max_objects}

    def cached(self) -> dict[str, Detections]:
        """Detections stored by an earlier (possibly interrupted) pass with the same detector and thresholds."""
        if self.work_dir is None:
            return {}
        path, meta_path = self.work_dir / DETECTIONS_FILE, self.work_dir / (DETECTIONS_FILE + ".meta.json")
        if not path.exists():
            return {}
        ident = self._cache_identity()
        if not meta_path.exists():
            raise TaskError(f"{path} was not written by this scorer (no {meta_path.name}): pass it with "
                            "--detections to score from it, or move it away to detect again")
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in ident} != ident:
            old = path.with_name(DETECTIONS_FILE + ".old")
            self.ctx.warn(f"{path} was made with another detector or thresholds: moved to {old.name}, detecting again")
            path.replace(old)
            return {}
        # who made the cache travels with it, so a smoke cache keeps its "numbers meaningless" label
        self.scorer = meta.get("scorer", f"cached detections {path}")
        self.caveats = list(meta.get("caveats", []))
        JsonlAppender(path, fsync=False).close()  # cuts a line an interrupted pass left unfinished
        return read_detections_file(path)

    def _load_models(self) -> None:
        from unitoken_eval.tasks.common.detection.loading import load_detector
        from unitoken_eval.tasks.geneval.loading import load_color_classifier

        if self.detector is None:
            kwargs = {k: v for k, v in {
                "checkpoint": self.opt("detector_checkpoint"), "config": self.opt("detector_config"),
                "device": self.opt("device"), "batch_size": self.opt("detector_batch_size")}.items() if v}
            self.detector = load_detector(self.opt("detector", "mmdet"), **kwargs)
            if self.detector.caveat and self.detector.caveat not in self.caveats:
                self.caveats.append(self.detector.caveat)
        if self.colors is None:
            self.colors = load_color_classifier(self.opt("color_model"), self.opt("device"))
            if self.colors.caveat and self.colors.caveat not in self.caveats:
                self.caveats.append(self.colors.caveat)
        self.scorer = f"{self.detector.name}; colours: {self.colors.name}"

    def detect_all(self, jobs: list[tuple[str, Path, Sample]], cached: dict[str, Detections]) -> None:
        """Detect + colour the images not in the cache, appending each to the cache as it is done.

        Chunks are fixed over all of ``jobs`` and an interrupted one is detected again whole, so a resumed
        pass feeds the detector the same batches as an uninterrupted one (``unfinished_batches``).
        """
        self._load_models()
        appender = None
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            meta = {**self._cache_identity(), "scorer": self.scorer, "caveats": self.caveats}
            (self.work_dir / (DETECTIONS_FILE + ".meta.json")).write_text(json.dumps(meta))
            appender = JsonlAppender(self.work_dir / DETECTIONS_FILE)
        chunk = self.task.detector_chunk
        had = set(cached)
        try:
            for part in unfinished_batches(jobs, chunk, lambda job: job[0] in had):
                images = [self._open(p) for _, p, _ in part]
                found = self.detector.detect(images, min_score=self.opts.floor())
                for (key, _, s), im, dets in zip(part, images, found):
                    if key in had:
                        continue
                    dets = self._prune(dets)
                    self._classify_colors(im, dets, s.fields["metadata"])
                    cached[key] = dets
                    if appender is not None:
                        appender.write([{"filename": key, "detections": detections_to_json(dets)}])
                faults.failpoint("detections", self.task.id)
        finally:
            if appender is not None:
                appender.close()

    @staticmethod
    def _open(path: Path) -> Image.Image:
        try:
            with Image.open(path) as im:
                return ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError) as exc:
            raise TaskError(f"{path}: cannot read image ({exc})") from None

    def _prune(self, dets: Detections) -> Detections:
        """Keep what any tag could use: scores above the lowest threshold, top ``max_objects`` per class."""
        floor, out = self.opts.floor(), {}
        for cls, items in dets.items():
            keep = sorted((d for d in items if d.score > floor), key=lambda d: -d.score)[: self.opts.max_objects]
            if keep:
                out[cls] = keep
        return out

    def _classify_colors(self, image: Image.Image, dets: Detections, metadata: dict[str, Any]) -> None:
        # Every stored detection of a class a colour clause names gets its colour, so the cache can be
        # re-scored at any threshold; only the top-`count` kept ones decide, as in the reference.
        for cls in color_targets(dets, metadata):
            for det, color in zip(dets[cls], self.colors.classify(image, cls, dets[cls])):
                det.color = color
        for items in dets.values():
            for det in items:
                det.mask = None  # masks are only needed for the colour crops

    def judge(self, key: str, path: Path, sample: Sample, dets: Detections, given: Optional[str]) -> dict[str, Any]:
        meta = sample.fields["metadata"]
        kept = keep_detections(dets, meta["tag"], self.opts)
        try:
            correct, reason = evaluate(kept, meta, self.opts)
        except MissingColor as exc:
            where = given or (self.work_dir / DETECTIONS_FILE if self.work_dir else "detections")
            raise TaskError(f"{where}: {key}: {exc}") from None
        rec = {
            "score": 1.0 if correct else 0.0,
            "filename": key,
            "tag": meta["tag"],
            "prompt": meta["prompt"],
            "correct": correct,
            "reason": reason,
            "metadata": json.dumps(meta),
            "details": json.dumps({c: [d.row() for d in v] for c, v in kept.items()}),
            "prompt_id": sample.id,
            "scorer": self.scorer,
        }
        if self.caveats:
            rec["caveats"] = list(self.caveats)
        return rec

    def write_results(self, records: dict[str, dict[str, Any]]) -> None:
        """results.jsonl with evaluate_images.py's fields, so GenEval's summary_scores.py reads it as is."""
        if self.work_dir is None or not records:
            return
        fields = ("filename", "tag", "prompt", "correct", "reason", "metadata", "details")
        lines = "".join(json.dumps({f: r[f] for f in fields}) + "\n" for r in records.values())
        (self.work_dir / RESULTS_FILE).write_text(lines, encoding="utf-8")
