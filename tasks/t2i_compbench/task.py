"""The T2I-CompBench++ tasks: one per category (``t2i_compbench_<category>``) and the group ``t2i_compbench``.

Each category task generates ``images_per_prompt`` (10, the official protocol) images per val prompt in the
official layout and scores them with that category's official scorer (see the modules beside this one).
What a run used is recorded in its metrics: prompt file + sha256 (+ colour-file version), images per prompt,
the scorer models, the noun parser, the detector (and that it is not the official UniDet by default).

Task options (``options.<task>`` in a run config, ``unitoken-eval score --option KEY=VALUE``):
  images_per_prompt (10), color_file_version ("current" | "before-3310c2f"), device,
  blip_model (hub id / directory, or Salesforce's original .pth), blip_tokenizer,
  clip_model, clip_dtype, depth_model, detector ("mmdet" | "mmdet:CKPT" | "unidet:UniDet_eval DIR" | "smoke"),
  detector_checkpoint (the mmdet checkpoint, same as "mmdet:CKPT"),
  spacy_model, smoke_scorers (random-weight scorers for the offline smoke suite), request (request options).
"""

from __future__ import annotations

import logging
import os
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from PIL import Image

from unitoken_eval.harness.plugin import BenchmarkSize, GenerateRequest, Headline, Prediction, Sample, TaskResult
from unitoken_eval.harness.plugin import (GroupTask, NotScored, ScoreContext, Task, TaskError, not_scored_reason,
                            not_scored_record)
from unitoken_eval.tasks.t2i_compbench import naming, nouns, prompts, rules

_UPSTREAM = "Karine-Huang/T2I-CompBench @1b70949"
SMOKE_DIR = Path(__file__).resolve().parent.parent / "smoke_data" / "t2i_compbench"
DEFAULT_IMAGES_PER_PROMPT = 10

# Scorer models are shared by the category tasks of one process (BLIP serves four of them).
_CACHE: dict[tuple, Any] = {}
OPTIONS = ("images_per_prompt", "color_file_version", "device", "blip_model", "blip_tokenizer", "clip_model",
           "clip_dtype", "depth_model", "detector", "detector_checkpoint", "spacy_model", "smoke_scorers",
           "images_dir", "request")


def _cached(key: tuple, build: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


class T2ICategory(Task):
    kind: ClassVar[str] = "generate"
    category: ClassVar[str]
    metric: ClassVar[str]
    scorer: ClassVar[str]
    headline: ClassVar[tuple[str, str]]
    # val split: 300 prompts per category (upstream's later de-duplicated colour file may hold a few fewer)
    full_size = BenchmarkSize(300)

    def __init__(self, options: Optional[dict[str, Any]] = None):
        super().__init__(options)
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise TaskError(f"{self.id}: unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
        try:
            self.images_per_prompt = int(self.opt("images_per_prompt", DEFAULT_IMAGES_PER_PROMPT))
        except (TypeError, ValueError):
            raise TaskError(f"{self.id}: images_per_prompt must be an integer") from None
        if self.images_per_prompt < 1:
            raise TaskError(f"{self.id}: images_per_prompt must be at least 1")
        self.color_version = str(self.opt("color_file_version", "current"))
        self.smoke = bool(self.options.get("smoke_scorers", False))
        self.prompt_set: Optional[prompts.PromptSet] = None
        self._used: dict[str, str] = {}

    def opt(self, name: str, default: Any = None) -> Any:
        """A task option given to the constructor, else ``default``."""
        value = self.options.get(name)
        return default if value is None else value

    # ----------------------------------------------------------------- data
    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        ps = prompts.load_prompts(self.category, source, self.color_version)
        self.prompt_set = ps
        self.data_path, self.data_sha256 = ps.path, ps.sha256
        samples = []
        for i, prompt in enumerate(ps.prompts):
            fields = {"prompt": prompt, "line": i, "category": self.category}
            if self.category == "complex":
                fields["complex_kind"] = prompts.complex_kind(prompt, ps.complex_spatial, ps.complex_action)
            samples.append(Sample(id=str(i), fields=fields))
        return samples[:limit] if limit else samples

    def smoke_source(self) -> Optional[str]:
        return str(SMOKE_DIR)

    def _official_files(self) -> list[tuple[str, str]]:
        name = prompts.val_file(self.category)
        files = [(name, self.color_version if self.category == "color" else "current")]
        if self.category == "complex":
            files += [("complex_val_spatial.txt", "current"), ("complex_val_action.txt", "current")]
        if self.category == "numeracy":
            files.append(("new_objects.txt", "current"))
        return files

    # The scorer models each category loads (T2I-CompBench++'s per-category protocol).
    scorers: tuple[str, ...] = ()

    def describe_sources(self) -> list[dict[str, Any]]:
        from unitoken_eval.tasks.common.sources import hub_model, row

        out = []
        for name, version in self._official_files():
            path = prompts.cache_dir() / prompts.cache_name(name, version)
            out.append(row(f"prompts {name} ({version})", str(path), path.exists(), prompts._url(name, version),
                           True, sha256=prompts.SHA256[(name, version)]))
        if "blip_vqa" in self.scorers:
            from unitoken_eval.tasks.t2i_compbench.blip_vqa import DEFAULT_MODEL

            out.append(hub_model("BLIP-VQA scorer", self.opt("blip_model"), DEFAULT_MODEL, "blip_model"))
        if "clip" in self.scorers:
            from unitoken_eval.tasks.t2i_compbench.clipscore import DEFAULT_MODEL

            out.append(hub_model("CLIPScore model", self.opt("clip_model"), DEFAULT_MODEL, "clip_model"))
        if "depth" in self.scorers:
            from unitoken_eval.tasks.t2i_compbench.depth import DEFAULT_MODEL

            out.append(hub_model("depth model (DPT-hybrid MiDaS)", self.opt("depth_model"), DEFAULT_MODEL,
                                 "depth_model"))
        if "detector" in self.scorers:
            from unitoken_eval.tasks.common.detection import CHECKPOINT_NAME, ENV_CHECKPOINT

            spec = str(self.opt("detector", "mmdet"))
            ckpt = self.opt("detector_checkpoint") or (spec[6:] if spec.startswith("mmdet:") else None) \
                or os.environ.get(ENV_CHECKPOINT)
            out.append(row(f"detector checkpoint {CHECKPOINT_NAME} (shared with GenEval; or detector=unidet:DIR)",
                           ckpt or f"${ENV_CHECKPOINT} (not set)", bool(ckpt) and Path(ckpt).is_file(),
                           f"see `unitoken-eval data geneval`; set ${ENV_CHECKPOINT}=PATH or detector_checkpoint=PATH",
                           False))
        from unitoken_eval.tasks.t2i_compbench.nouns import SPACY_MODEL

        try:
            import importlib.util

            found = importlib.util.find_spec(SPACY_MODEL) is not None
        except (ImportError, ValueError):
            found = False
        out.append(row(f"spaCy model {SPACY_MODEL} (prompt parsing)", f"Python package {SPACY_MODEL}", found,
                       f"python -m spacy download {SPACY_MODEL}", False))
        return out

    def fetch(self) -> None:
        """Fetch and verify the official files and the hub scorer models (``unitoken-eval data --fetch``)."""
        from unitoken_eval.tasks.common.sources import fetch_rows

        for name, version in self._official_files():
            prompts.official_file(name, version)
        fetch_rows(self.describe_sources())

    # ----------------------------------------------------------------- generation
    def images_per_sample(self) -> int:
        return self.images_per_prompt

    def request(self, sample: Sample) -> GenerateRequest:
        return GenerateRequest(sample_id=sample.id, prompt=sample.fields["prompt"], n_images=self.images_per_prompt)

    def image_path(self, sample: Sample, k: int) -> str:
        counter = naming.counter_for(int(sample.fields["line"]), k, self.images_per_prompt)
        return naming.image_relpath(sample.fields["prompt"], counter)

    def predictions_from_images(self, images_dir: Path, samples: list[Sample]) -> dict[str, Prediction]:
        """Find each prompt's images by the official names; a prompt without its images is an error."""
        folder = naming.samples_folder(images_dir)
        index = naming.index_folder(folder)
        n = self.images_per_prompt
        by_prompt: dict[str, list[Sample]] = {}
        for s in sorted(samples, key=lambda s: int(s.fields["line"])):
            by_prompt.setdefault(s.fields["prompt"], []).append(s)
        out: dict[str, Prediction] = {}
        problems: list[str] = []
        for prompt, group in by_prompt.items():
            files = index.get(prompt, [])
            by_counter = {c: p for c, p in files}
            want = {s.id: [naming.counter_for(int(s.fields["line"]), k, n) for k in range(n)] for s in group}
            if all(c in by_counter for cs in want.values() for c in cs):
                chosen = {sid: [by_counter[c] for c in cs] for sid, cs in want.items()}
            elif len(files) >= n * len(group):
                # Another counter origin (e.g. a folder generated in another order): take them in counter order.
                chosen = {s.id: [p for _, p in files[j * n : (j + 1) * n]] for j, s in enumerate(group)}
            else:
                first = group[0]
                expect = naming.image_name(prompt, want[first.id][0])
                problems.append(f"{prompt!r}: {len(files)} of {n * len(group)} images (e.g. {expect})")
                continue
            for sid, paths in chosen.items():
                out[sid] = Prediction(sample_id=sid, images=[str(p) for p in paths])
        if problems:
            raise TaskError(
                f"{folder}: images missing for {len(problems)} of {len(by_prompt)} prompts of {self.id} "
                f"(images_per_prompt={n}); first: {problems[0]}"
            )
        return out

    # ----------------------------------------------------------------- scorer parts
    def _device(self) -> Optional[str]:
        return self.opt("device")

    def _parser(self) -> nouns.Parser:
        model = self.opt("spacy_model")
        try:
            p = _cached(("nlp", model), lambda: nouns.load_nlp(model))
        except nouns.NLPUnavailable as exc:
            if not self.smoke:
                raise NotScored(str(exc)) from None
            p = nouns.SmokeParser()
            self._used["nlp_unavailable"] = str(exc)
            logging.getLogger("unitoken_eval.score").warning("%s: %s; smoke stand-in chunker used", self.id, exc)
        self._used["noun_parser"] = p.label
        return p

    def _scorer(self, name: str, smoke_factory: str, key: tuple, build: Callable[[], Any]):
        """The scorer model ``name``: the labelled random-weight one in smoke runs, else the real one (loaded once
        per process); missing weights or packages make the category not scored, never zero."""
        if self.smoke:
            from unitoken_eval.tasks.t2i_compbench import smoke_models

            m = getattr(smoke_models, smoke_factory)()
        else:
            try:
                m = _cached((name, *key), build)
            except ImportError as exc:  # a missing extra; missing weights raise ScorerUnavailable (NotScored)
                raise NotScored(str(exc)) from None
        self._used[name] = m.label
        return m

    def _blip(self):
        from unitoken_eval.tasks.t2i_compbench import blip_vqa

        mid, tok, dev = self.opt("blip_model"), self.opt("blip_tokenizer"), self._device()
        if mid and str(mid).endswith((".pth", ".pt")):
            from unitoken_eval.tasks.t2i_compbench.blip_original import load_original

            build = lambda: load_original(mid, tok, dev)  # noqa: E731
        else:
            build = lambda: blip_vqa.BlipVQA.load(mid, dev)  # noqa: E731
        return self._scorer("blip_vqa", "blip_vqa", (mid, tok, dev), build)

    def _clip(self):
        from unitoken_eval.tasks.t2i_compbench import clipscore

        mid, dt, dev = self.opt("clip_model"), self.opt("clip_dtype"), self._device()
        return self._scorer("clip", "clip", (mid, dev, dt), lambda: clipscore.ClipScorer.load(mid, dev, dt))

    def _depth(self):
        from unitoken_eval.tasks.t2i_compbench import depth

        mid, dev = self.opt("depth_model"), self._device()
        return self._scorer("depth", "depth", (mid, dev), lambda: depth.MidasDepth.load(mid, dev))

    def _detector(self, ckpt: str = "RS200"):
        from unitoken_eval.tasks.t2i_compbench import detectors

        spec = "smoke" if self.smoke else str(self.opt("detector", "mmdet"))
        if spec == "mmdet" and self.opt("detector_checkpoint"):
            spec = f"mmdet:{self.opt('detector_checkpoint')}"
        try:
            d = _cached(("det", spec, ckpt), lambda: detectors.load(spec, ckpt))
        except detectors.DetectorUnavailable as exc:
            raise NotScored(str(exc)) from None
        self._used["detector"] = d.label
        return d

    # ----------------------------------------------------------------- scoring
    def _images(self, pred: Prediction, ctx: ScoreContext) -> list[Path]:
        out = []
        for p in pred.images:
            path = Path(p)
            if not path.is_absolute():
                if ctx.work_dir is None:
                    raise TaskError(f"{self.id}: sample {pred.sample_id}: relative image path {p} without a run dir")
                path = ctx.work_dir / path
            out.append(path)
        return out

    @staticmethod
    def _open(path: Path) -> Image.Image:
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise TaskError(f"generated image {path} is missing") from None
        except OSError as exc:
            raise TaskError(f"generated image {path} cannot be read ({exc})") from None

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext) -> dict:
        items = []
        for s in samples:
            pred = predictions.get(s.id)
            if pred is None or not pred.images:
                continue
            items.append((s, self._images(pred, ctx)))
        self._used = {}
        try:
            per_image = self.score_images(items)
        except NotScored as exc:
            ctx.warn(f"{self.id}: not scored: {exc}")
            return {s.id: not_scored_record(str(exc)) for s, _ in items}
        records = {}
        for s, paths in items:
            recs = per_image[s.id]
            good = [r["score"] for r in recs if r.get("score") is not None]
            rec = {"score": _mean(good), "prompt": s.fields["prompt"], "image_scores": [r.get("score") for r in recs],
                   "images": [p.name for p in paths], "details": [{k: v for k, v in r.items() if k != "score"} for r in recs]}
            if "complex_kind" in s.fields:
                rec["complex_kind"] = s.fields["complex_kind"]
            errors = [r["error"] for r in recs if r.get("error")]
            if errors:
                rec["error"] = errors[0]
            records[s.id] = rec
        return records

    def score_images(self, items: list[tuple[Sample, list[Path]]]) -> dict[str, list[dict]]:
        raise NotImplementedError

    # ----------------------------------------------------------------- aggregation
    def provenance(self) -> dict[str, Any]:
        d: dict[str, Any] = {"images_per_prompt": self.images_per_prompt, "upstream": _UPSTREAM}
        if self.prompt_set is not None:
            d.update(self.prompt_set.describe())
        if self.category == "color":
            d["color_file_version"] = (self.prompt_set.version if self.prompt_set and self.prompt_set.version
                                       else f"user file (option {self.color_version})")
        d.update(self._used)
        return d

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        prof = self.profile(ctx.profile)
        reason = not_scored_reason(records)
        meta = self.provenance()
        if reason is not None or not records:
            return self.not_scored(prof, reason or "no predictions to score", metrics=meta, n=0)
        scores = [x for r in records.values() for x in r.get("image_scores", []) if x is not None]
        n_bad = sum(1 for r in records.values() for x in r.get("image_scores", []) if x is None)
        warnings = []
        if n_bad:
            first = next(r["error"] for r in records.values() if r.get("error"))
            warnings.append(f"{self.id}: {n_bad} images could not be scored by the official rule (first: {first})")
        short = sum(1 for r in records.values() if len(r.get("image_scores", [])) != self.images_per_prompt)
        if short:
            warnings.append(f"{self.id}: {short} prompts do not have images_per_prompt={self.images_per_prompt} images")
        value = _mean(scores)
        metrics = {self.category: value, "n_images": len(scores), "n_prompts": len(records), **meta}
        if self.smoke:
            metrics["smoke_scorer"] = "random weights, numbers meaningless"
        if meta.get("nlp_unavailable"):
            warnings.append(f"{self.id}: {meta['nlp_unavailable']}; noun parsing used the smoke stand-in chunker")
        det = meta.get("detector")
        if det and not det.startswith("UniDet") and not self.smoke:
            warnings.append(f"{self.id}: detector: {det}; not comparable with published T2I-CompBench++ numbers")
        metrics.update(self.extra_metrics(records))
        return TaskResult(task=self.id, profile=prof, headline=Headline(self.metric, value, "fraction"),
                          metrics=metrics, n=len(records), reference=self.references.get(prof),
                          warnings=warnings, n_errors=0)

    def extra_metrics(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {}


# ===================================================================== the categories
class _BlipCategory(T2ICategory):
    metric = "blip_vqa"

    def score_images(self, items):
        from unitoken_eval.tasks.t2i_compbench.blip_vqa import score_prompt_images

        parser = self._parser()
        blip = self._blip()
        out = {}
        for s, paths in items:
            questions = nouns.blip_questions(parser.noun_chunks(s.fields["prompt"]))
            recs = score_prompt_images(questions, [self._open(p) for p in paths], blip.yes_prob)
            for r in recs:
                r["questions"] = questions
            out[s.id] = recs
        return out


class T2IColor(_BlipCategory):
    scorers = ('blip_vqa',)
    id = "t2i_compbench_color"
    category = "color"
    headline = ("blip_vqa", "fraction")
    references = {"official": f"BLIPvqa_eval/BLIP_vqa.py, {_UPSTREAM}"}


class T2IShape(_BlipCategory):
    scorers = ('blip_vqa',)
    id = "t2i_compbench_shape"
    category = "shape"
    headline = ("blip_vqa", "fraction")
    references = {"official": f"BLIPvqa_eval/BLIP_vqa.py, {_UPSTREAM}"}


class T2ITexture(_BlipCategory):
    scorers = ('blip_vqa',)
    id = "t2i_compbench_texture"
    category = "texture"
    headline = ("blip_vqa", "fraction")
    references = {"official": f"BLIPvqa_eval/BLIP_vqa.py, {_UPSTREAM}"}


class T2INonSpatial(T2ICategory):
    scorers = ('clip',)
    id = "t2i_compbench_non_spatial"
    category = "non_spatial"
    metric = "clip_score"
    headline = ("clip_score", "fraction")
    references = {"official": f"CLIPScore_eval/CLIP_similarity.py, {_UPSTREAM}"}

    def score_images(self, items):
        clip = self._clip()
        out = {}
        for s, paths in items:
            ims = [self._open(p) for p in paths]
            out[s.id] = [{"score": v} for v in clip.scores(ims, [s.fields["prompt"]] * len(ims))]
        return out


def _detect_all(detector, paths: list[Path], opener, batch: int = 16) -> list[list[rules.Det]]:
    out: list[list[rules.Det]] = []
    for i in range(0, len(paths), batch):
        out.extend(detector.detect([opener(p) for p in paths[i : i + batch]]))
    return out


def _dets_json(dets: list[rules.Det]) -> list[list]:
    return [[d.label, [round(float(v), 2) for v in d.box], round(d.score, 4)] for d in dets]


def _detection_record(prompt: str, dets: list[rules.Det], rule) -> dict:
    """One image's record: ``rule`` applied to its kept detections, or an error record where upstream's script
    would have stopped (the image is then left out of the mean, with a warning)."""
    dets = rules.kept(dets)
    try:
        r = rule(dets)
    except rules.RuleError as exc:
        return {"score": None, "error": f"prompt {prompt!r}: {exc}"}
    r["detections"] = _dets_json(dets)
    return r


class T2ISpatial(T2ICategory):
    scorers = ('detector',)
    id = "t2i_compbench_spatial"
    category = "spatial"
    metric = "spatial_2d"
    headline = ("spatial_2d", "fraction")
    references = {"official": f"UniDet_eval/2D_spatial_eval.py, {_UPSTREAM} (detector replaceable; default is not UniDet)"}

    def score_images(self, items):
        parser = self._parser()
        det = self._detector("RS200")
        out = {}
        for s, paths in items:
            prompt = s.fields["prompt"]
            o1, o2 = nouns.first_last_noun(parser.tokens(prompt))
            rel = rules.locality(prompt, rules.VOCAB_2D)
            def rule(dets, o1=o1, o2=o2, rel=rel, prompt=prompt):
                if o1 is None:
                    raise rules.RuleError("has no NOUN (upstream would stop)")
                return rules.spatial_2d_score(dets, nouns.person_map(o1), nouns.person_map(o2), rel)

            out[s.id] = [_detection_record(prompt, d, rule) for d in _detect_all(det, paths, self._open)]
        return out


class T2ISpatial3D(T2ICategory):
    scorers = ('detector', 'depth')
    id = "t2i_compbench_3d_spatial"
    category = "3d_spatial"
    metric = "spatial_3d"
    headline = ("spatial_3d", "fraction")
    references = {"official": f"UniDet_eval/3D_spatial_eval.py, {_UPSTREAM} (detector replaceable; default is not UniDet)"}

    def score_images(self, items):
        parser = self._parser()
        det = self._detector("RS200")
        depth = self._depth()
        out = {}
        for s, paths in items:
            prompt = s.fields["prompt"]
            o1, o2 = nouns.first_last_noun(parser.tokens(prompt))
            o1, o2 = nouns.person_map(o1), nouns.person_map(o2)
            rel = rules.locality(prompt, rules.VOCAB_3D)
            all_dets = _detect_all(det, paths, self._open)
            maps = depth.depth_maps([self._open(p) for p in paths])
            out[s.id] = [
                _detection_record(prompt, d, lambda k, m=dmap: rules.spatial_3d_score(k, o1, o2, rel, m))
                for d, dmap in zip(all_dets, maps)
            ]
        return out


class T2INumeracy(T2ICategory):
    scorers = ('detector',)
    id = "t2i_compbench_numeracy"
    category = "numeracy"
    metric = "numeracy"
    headline = ("numeracy", "fraction")
    references = {"official": f"UniDet_eval/numeracy_eval.py, {_UPSTREAM} (detector replaceable; default is not UniDet)"}

    def score_images(self, items):
        parser = self._parser()
        det = self._detector("R50")
        pairs = self.prompt_set.object_pairs if self.prompt_set else None
        if pairs is None:
            raise TaskError(f"{self.id}: new_objects.txt was not loaded (call load() first)")
        out = {}
        for s, paths in items:
            prompt = s.fields["prompt"]
            words = [t.text for t in parser.tokens(prompt)]
            def rule(dets, words=words):
                objs, counts = rules.parse_numeracy(words, pairs)
                return rules.numeracy_score(objs, counts, dets)

            out[s.id] = [_detection_record(prompt, d, rule) for d in _detect_all(det, paths, self._open)]
        return out


class T2IComplex(T2ICategory):
    scorers = ('blip_vqa', 'clip', 'detector')
    id = "t2i_compbench_complex"
    category = "complex"
    metric = "3_in_1"
    headline = ("3_in_1", "fraction")
    references = {"official": f"3_in_1_eval/3_in_1.py (BLIP-VQA + 2D spatial --complex + CLIP --complex), {_UPSTREAM}"}

    def score_images(self, items):
        from unitoken_eval.tasks.t2i_compbench.blip_vqa import score_prompt_images

        parser = self._parser()
        blip = self._blip()
        kinds = {s.fields["complex_kind"] for s, _ in items}
        clip = self._clip() if kinds & {"action", "spatial_action"} else None
        det = self._detector("RS200") if kinds & {"spatial", "spatial_action"} else None
        out = {}
        for s, paths in items:
            prompt, kind = s.fields["prompt"], s.fields["complex_kind"]
            toks = parser.tokens(prompt)
            ims = [self._open(p) for p in paths]
            questions = nouns.blip_questions(parser.noun_chunks(prompt))
            blip_recs = score_prompt_images(questions, ims, blip.yes_prob)
            clip_vals = clip.scores(ims, [nouns.without_adjectives(toks)] * len(ims)) if kind != "spatial" else None
            spatial_vals = None
            if kind != "action":
                o1, o2 = nouns.complex_objects(toks)
                rel = rules.locality(prompt, rules.VOCAB_2D)
                spatial_vals = [
                    rules.spatial_2d_score(rules.kept(d), nouns.person_map(o1), nouns.person_map(o2), rel)["score"]
                    for d in det.detect(ims)
                ]
            recs = []
            for i, b in enumerate(blip_recs):
                sp = spatial_vals[i] if spatial_vals is not None else None
                cl = clip_vals[i] if clip_vals is not None else None
                recs.append({"score": rules.three_in_one(kind, b["score"], sp, cl), "blip_vqa": b["score"],
                             "spatial_2d": sp, "clip": cl, "questions": questions})
            out[s.id] = recs
        return out

    def extra_metrics(self, records):
        by_kind: dict[str, list[float]] = {}
        for r in records.values():
            by_kind.setdefault(r.get("complex_kind", "?"), []).extend(x for x in r.get("image_scores", []) if x is not None)
        return {f"complex_{k}": _mean(v) for k, v in sorted(by_kind.items())} | {
            f"n_prompts_{k}": sum(1 for r in records.values() if r.get("complex_kind") == k) for k in sorted(by_kind)
        }


CATEGORY_TASKS = (T2IColor, T2IShape, T2ITexture, T2ISpatial, T2ISpatial3D, T2INonSpatial, T2IComplex, T2INumeracy)
PAPER_COLUMNS = ("color", "shape", "texture")


class T2ICompBench(GroupTask):
    """The group: runs the eight categories; headline = mean of Color, Shape, Texture (the UniToken paper's
    three T2I-CompBench++ columns), every category in metrics."""

    id = "t2i_compbench"
    kind = "generate"
    headline = ("mean_color_shape_texture", "fraction")
    references = {"official": f"per category, {_UPSTREAM}"}
    subtasks = tuple(c.id for c in CATEGORY_TASKS)

    def combine(self, members: dict[str, TaskResult], ctx: ScoreContext) -> TaskResult:
        prof = self.profile(ctx.profile)
        metrics: dict[str, Any] = {}
        status: dict[str, str] = {}
        for cls in CATEGORY_TASKS:
            r = members.get(cls.id)
            metrics[cls.category] = r.headline.value if r is not None and r.status == "scored" else None
            status[cls.category] = "missing" if r is None else (r.status if r.status != "not_scored" else
                                                                 f"not_scored: {r.reason}")
        metrics["category_status"] = status
        metrics["headline_definition"] = "mean of color, shape, texture (BLIP-VQA; the UniToken paper's columns)"
        cols = [metrics[c] for c in PAPER_COLUMNS]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in cols):
            missing = [c for c in PAPER_COLUMNS if metrics[c] is None]
            return self.not_scored(prof, f"categories not scored: {', '.join(missing)}", metrics=metrics)
        n = sum(members[c.id].n for c in CATEGORY_TASKS if c.id in members)
        return TaskResult(task=self.id, profile=prof, headline=Headline(self.headline[0], sum(cols) / 3, "fraction"),
                          metrics=metrics, n=n, reference=self.references[prof])
