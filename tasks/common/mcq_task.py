"""Base classes for benchmarks distributed as VLMEvalKit TSVs, and for the VK-style multiple-choice ones.

A concrete task states its TSV name, the columns it needs, its Hugging Face mapping and its references;
loading (TSV or HF), the VK prompt, MCQ matching (with the opt-in judge fallback), circular grouping and the
per-category report live here once.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, Optional

from unitoken_eval.harness.plugin import Headline, Prediction, Sample, ScoreContext, Task, TaskError, TaskResult, UnderstandRequest
from unitoken_eval.tasks.common import circular as circ
from unitoken_eval.tasks.common import mcq
from unitoken_eval.tasks.common.hf_data import Mapping, load_hf_rows, looks_like_hf_source
from unitoken_eval.tasks.common.vk_catalog import CATALOG, fetch_tsv
from unitoken_eval.harness.store import sha256_file
from unitoken_eval.tasks.common.vlmeval_tsv import TsvRow, as_vlmevalkit_reads, lmu_data_root, load_tsv, resolve_tsv

SMOKE_DIR = Path(__file__).resolve().parent.parent / "smoke_data" / "understanding"
VK_COMMIT = "e8e78f05f3080fe28154f2130321f17951c3be94"


def _truthy(v: Any) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on") if not isinstance(v, bool) else v


def mean100(values: list[float]) -> Optional[float]:
    return 100.0 * sum(values) / len(values) if values else None


class VKTask(Task):
    """A benchmark read from VK's TSV (default) or a Hugging Face copy, prompted with one image."""

    kind = "understand"
    tsv_name: ClassVar[str]
    required_columns: ClassVar[tuple[str, ...]] = ("index", "image", "question", "answer")
    # Columns every row must fill (a header may carry a column some rows leave empty, e.g. MMMU's options).
    required_values: ClassVar[tuple[str, ...]] = ("question", "answer")
    hf_default: ClassVar[Optional[str]] = None      # hub id users may pass as --data
    hf_split: ClassVar[str] = "test"
    hf_config: ClassVar[Optional[str]] = None
    hf_index_column: ClassVar[Optional[str]] = "index"
    hf_image_key_column: ClassVar[Optional[str]] = None
    hf_image_column: ClassVar[Optional[str]] = "image"
    hf_mapping: ClassVar[Mapping] = {}
    max_new_tokens: ClassVar[int] = 128
    split_name: ClassVar[str] = "test"
    stratum_field = "category"

    def __init__(self, options: Optional[dict[str, Any]] = None):
        super().__init__(options)
        self.data_sha256: Optional[str] = None
        self.data_path: Optional[str] = None

    # ----- data
    def smoke_source(self) -> Optional[str]:
        return str(SMOKE_DIR / f"{self.tsv_name}.tsv")

    def describe_sources(self) -> list[dict[str, Any]]:
        entry = CATALOG[self.tsv_name]
        path = lmu_data_root() / f"{self.tsv_name}.tsv"
        note = f"VLMEvalKit TSV {self.tsv_name} from {entry.url} (MD5 {entry.md5})"
        if self.hf_default:
            note += f"; or --data {self.hf_default} (Hugging Face, split {self.hf_split})"
        from unitoken_eval.tasks.common.sources import row

        return [row(f"VLMEvalKit TSV {self.tsv_name} (MD5-checked)", str(path), path.is_file(), entry.url, True,
                    md5=entry.md5, note=note)]

    def fetch(self, dest_dir: Optional[str] = None) -> Path:
        """Download the TSV from VK's published URL into ``$LMUData`` and check its MD5."""
        return fetch_tsv(self.tsv_name, Path(dest_dir) if dest_dir else lmu_data_root())

    def filter_hf_row(self, row: TsvRow) -> bool:
        return True

    @staticmethod
    def is_hf_source(source: Optional[str]) -> bool:
        """Whether ``source`` names a Hugging Face dataset (hub id or local folder) rather than a VK TSV."""
        return bool(source) and not str(source).endswith(".tsv") and looks_like_hf_source(source)

    def read_rows(self, source: Optional[str]) -> list[TsvRow]:
        if self.is_hf_source(source):
            rows = load_hf_rows(source, self.hf_split, self.hf_mapping, image_column=self.hf_image_column,
                                index_column=self.hf_index_column, image_key_column=self.hf_image_key_column,
                                config=self.hf_config)
            self.data_path, self.data_sha256 = source, None
            return [r for r in rows if self.filter_hf_row(r)]
        path = resolve_tsv(self.tsv_name, source)
        self.data_path, self.data_sha256 = str(path), sha256_file(path)
        return load_tsv(path, self.required_columns)

    def needs_image(self, row: TsvRow) -> bool:
        """Whether ``row`` must carry an image (a benchmark with text-only questions says which)."""
        return True

    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        rows = self.read_rows(source)
        samples = [self.to_sample(r) for r in rows]
        return self.apply_limit(samples, limit)

    def apply_limit(self, samples: list[Sample], limit: Optional[int]) -> list[Sample]:
        return samples[:limit] if limit else samples

    def to_sample(self, row: TsvRow) -> Sample:
        fields = dict(row.fields)
        if row.n_images > 1:
            fields["_n_images"] = row.n_images  # we pass the first image only (single-image model)
        empty = [c for c in self.required_values if fields.get(c) is None]
        if self.needs_image(row) and not row.has_image():
            empty.insert(0, "image")
        if empty:  # an error naming the row, or (--skip-bad) a sample recorded as an error
            problem = f"{row.where}: empty {', '.join(repr(c) for c in empty)} (required in every row)"
            return Sample(id=row.index, fields=fields, error=self.tolerate(problem), image_key=row.image_key)
        return Sample(id=row.index, fields=fields, image=row.image if row.has_image() else None,
                      image_key=row.image_key)

    # ----- inference
    def prompt(self, fields: dict[str, Any]) -> str:
        """VK ``ImageBaseDataset.build_prompt``: the question alone."""
        return str(fields.get("question"))

    def request(self, sample: Sample) -> UnderstandRequest:
        """VK's prompt; task options ``prompt_suffix`` (appended) and, for MCQ, ``mcq_instruction`` override it per model."""
        img = sample.load_image()
        key = sample.image_key
        return UnderstandRequest(
            sample_id=sample.id,
            prompt=self.prompt(sample.fields) + str(self.options.get("prompt_suffix", "")),
            images=[img] if img is not None else [],
            image_key=f"{self.tsv_name}:{key}" if key is not None else None,
            max_new_tokens=int(self.options.get("max_new_tokens", self.max_new_tokens)),
        )

    # ----- helpers for scoring
    @staticmethod
    def profile_view(samples: list[Sample], profile: str) -> list[Sample]:
        """The samples as the profile's reference scorer sees them.

        ``official``: every cell's text as written.  ``vlmevalkit``: as VK's pandas read holds them, so an option
        whose text is an NA string (``None``, ``NA``...) is missing; the gold answer is kept as written.
        """
        if profile != "vlmevalkit":
            return samples
        out = []
        for s in samples:
            fields = as_vlmevalkit_reads(s.fields)
            fields["answer"] = s.fields.get("answer")
            out.append(dataclasses.replace(s, fields=fields))
        return out

    @staticmethod
    def text_of(pred: Optional[Prediction]) -> str:
        """VK scores ``str(prediction)``; a prediction recorded as an error scores as empty text."""
        if pred is None or pred.text is None:
            return ""
        return str(pred.text)

    def use_judge(self, ctx: ScoreContext) -> bool:
        want = _truthy(self.options.get("judge_fallback", False))
        if want and ctx.judge is None:
            ctx.warn(f"{self.id}: judge_fallback asked for but no judge given; exact matching only")
        return bool(want and ctx.judge is not None)

    def base_metrics(self) -> dict[str, Any]:
        return {"split": self.split_name, "data_sha256": self.data_sha256, "data": self.data_path}


def category_report(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """VK ``report_acc`` (multiple_choice.py @ e8e78f05): overall per split, then per l2-category and category.

    Values are percentages (VK reports fractions; the x100 is the leaderboard's).
    """
    out: dict[str, Any] = {}
    by_split: dict[str, list[int]] = defaultdict(list)
    for r in records.values():
        by_split[str(r.get("split") or "none")].append(r["score"])
    if len(by_split) > 1:
        out["overall_by_split"] = {k: mean100(v) for k, v in sorted(by_split.items())}
    for group in ("l2-category", "category"):
        buckets: dict[str, list[int]] = defaultdict(list)
        for r in records.values():
            if r.get(group) is not None:
                buckets[str(r[group])].append(r["score"])
        if buckets:
            out[group] = {k: mean100(v) for k, v in sorted(buckets.items())}
    return out


class MCQTask(VKTask):
    """VK ``ImageMCQDataset``: hint/question/options prompt, ``can_infer`` matching, 'Z' when unmatched."""

    headline = ("accuracy", "percent")
    references = {
        "official": f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate, exact matching (the benchmark's own scorer)",
        "vlmevalkit": f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate, exact matching",
    }
    circular: ClassVar[bool] = False
    max_new_tokens = 64
    record_fields: ClassVar[tuple[str, ...]] = ("category", "l2-category", "split")

    def prompt(self, fields: dict[str, Any]) -> str:
        return mcq.mcq_prompt(fields, self.options.get("mcq_instruction"))

    def apply_limit(self, samples: list[Sample], limit: Optional[int]) -> list[Sample]:
        if not limit or not self.circular:
            kept = super().apply_limit(samples, limit)
        else:
            mains = [s.id for s in samples if int(s.id) < circ.OFFSET][:limit]
            keep = {int(m) for m in mains}
            kept = [s for s in samples if circ.group_of(s.id) in keep]
        if self.circular:
            # copies per group in the data, so scoring can say when predictions cover only part of a group
            self._copies_in_data: dict[int, int] = {}
            for s in kept:
                g = circ.group_of(s.id)
                self._copies_in_data[g] = self._copies_in_data.get(g, 0) + 1
        return kept

    def subset_unit(self, sample: Sample) -> str:
        """A circular question's rotated copies are kept or dropped together (their score is one group's)."""
        return str(circ.group_of(sample.id)) if self.circular else sample.id

    # Circular scores are already one record per group (keyed by the main index), so the default pairing holds.

    def _extract(self, sample: Sample, text: str, judge: Any) -> tuple[str, bool]:
        choices = mcq.build_choices(sample.fields)
        got = mcq.can_infer(text, choices)
        if got:
            return got, False
        if judge is not None:
            return mcq.judge_extract(judge, sample.fields.get("question"), choices, text), True
        return mcq.UNMATCHED, False

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        samples = self.profile_view(samples, self.profile(ctx.profile))
        judge = ctx.judge if self.use_judge(ctx) else None
        if self.circular:
            return self._score_circular(samples, predictions, judge, ctx)
        out: dict[str, dict[str, Any]] = {}
        for s in samples:
            if s.id not in predictions:
                continue
            gt = s.fields.get("answer")
            if gt is None:
                raise TaskError(f"{self.id}: sample {s.id} has no answer")
            got, judged = self._extract(s, self.text_of(predictions[s.id]), judge)
            rec = {"score": int(got == str(gt)), "extracted": got, "answer": str(gt)}
            if judged:
                rec["judged"] = True
            for f in self.record_fields:
                if s.fields.get(f) is not None:
                    rec[f] = s.fields[f]
            out[s.id] = rec
        return out

    def _score_circular(self, samples: list[Sample], predictions: dict[str, Prediction], judge: Any,
                        ctx: Optional[ScoreContext] = None):
        by_id = {s.id: s for s in samples if s.id in predictions}
        for sid in by_id:
            try:
                int(sid)
            except ValueError:
                raise TaskError(f"{self.id}: circular evaluation needs integer indices; got {sid!r}") from None
        out: dict[str, dict[str, Any]] = {}
        for main, members in circ.circular_groups(list(by_id)).items():
            rows = [by_id[m] for m in members]
            answers = [str(r.fields.get("answer")) for r in rows]
            texts = [self.text_of(predictions[m]) for m in members]
            pre = [mcq.can_infer(t, mcq.build_choices(r.fields)) for t, r in zip(texts, rows)]
            def ask_judge(i: int, rows=rows, texts=texts) -> str:
                return mcq.judge_extract(judge, rows[i].fields.get("question"), mcq.build_choices(rows[i].fields), texts[i])

            hit, why = circ.score_group(answers, pre, ask_judge if judge is not None else None)
            rec = {"score": hit, "copies": len(members), "why": why,
                   "extracted": [p if p else None for p in pre], "answer": answers[0]}
            for f in self.record_fields:
                if rows[0].fields.get(f) is not None:
                    rec[f] = rows[0].fields[f]
            out[main] = rec
        # VK (mcq_circular_eval) scores a group on the copies present in the predictions; a group with copies
        # missing is easier to get right, so it is scored the same way but said.
        in_data = getattr(self, "_copies_in_data", {})
        partial = [g for g, r in out.items() if r["copies"] < in_data.get(int(g), 0)]
        if partial and ctx is not None:
            ctx.warn(f"{self.id}: {len(partial)} circular group(s) scored on fewer copies than the data holds, "
                     f"as VLMEvalKit does (first: main index {partial[0]})")
        return out

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        overall = mean100([r["score"] for r in records.values()])
        metrics = {"overall": overall, **category_report(records), **self.base_metrics()}
        metrics.update(self.extra_metrics(records))
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], overall, self.headline[1]),
                          metrics=metrics, n=len(records), reference=self.references.get(profile))

    def extra_metrics(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {}
