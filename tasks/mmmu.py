"""MMMU validation (900 questions over 30 subjects): headline accuracy in percent, per-subject breakdown.

Two scorers, which differ by several points on the same predictions:
- ``official``: MMMU-Benchmark/MMMU (commit bb0b95a9) ``mmmu/utils/eval_utils.py`` as driven by
  ``mmmu/main_parse_and_eval.py``: ``parse_multi_choice_response`` for multiple choice (with a random
  letter when nothing parses), ``parse_open_response`` + ``eval_open`` for open questions (every
  ``question_type`` but 'multiple-choice'; a list gold accepts any element).  Option texts as written
  (``None`` is an option).  Agrees sample by sample with main_parse_and_eval.py on MMMU's published
  example outputs (docs/official-profiles.md).
- ``vlmevalkit``: VK e8e78f05 ``mcq_vanilla_eval`` with ``MMMU_preproc``: open questions become a
  two-option question (A = the gold answer, B = "Other Answers", gold 'A'); ``can_infer`` matching; the
  judge (when one is given) only when rules fail.

The random draw.  Upstream seeds Python's module-level ``random`` with 42 when eval_utils is imported and
draws only for multiple-choice responses in which nothing parses, one ``random.choice(all_choices)`` each,
in the order main_parse_and_eval visits them: subjects in ``CAT_SHORT2LONG`` order, then each subject's
samples in dataset order (the number at the end of the MMMU ``id``).  We replay that with one
``random.Random(42)`` over the scored samples in the same order, so per-sample results match upstream for
the same set of responses (scoring a subset replays the draws over that subset, as upstream would).

Splits: VK's MMMU_DEV_VAL holds dev and validation rows; the task scores validation (task option ``split``)
and lists the other rows in ``left_out``, so prediction files covering both are scored, not refused.

Images: MMMU questions may reference up to 7 images (``<image k>`` tags; VK interleaves them).  Our models
take one image, so the request carries the first image and the question text keeps its ``<image k>`` tags;
the number of multi-image samples is reported in the metrics.
"""

from __future__ import annotations

import ast
import random
import re
import string
from collections import defaultdict
from typing import Any, Optional

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskError, TaskResult
from unitoken_eval.tasks.common import mcq
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, MCQTask, mean100
from unitoken_eval.tasks.common.vlmeval_tsv import TsvRow

MMMU_COMMIT = "bb0b95a945998d91dfef37e969e07d49d1139438"
RANDOM_SEED = 42
PENDING = "pending judge"

# Subject visiting order of main_parse_and_eval.py ('--subject ALL' iterates CAT_SHORT2LONG) @ bb0b95a9.
SUBJECT_ORDER = (
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory", "Basic_Medical_Science",
    "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science", "Design", "Diagnostics_and_Laboratory_Medicine",
    "Economics", "Electronics", "Energy_and_Power", "Finance", "Geography", "History", "Literature", "Manage",
    "Marketing", "Materials", "Math", "Mechanical_Engineering", "Music", "Pharmacy", "Physics", "Psychology",
    "Public_Health", "Sociology",
)
_OPTION_LETTERS = "ABCDEFGHI"
_ID = re.compile(r"^(?:dev|validation|test)_(.+)_(\d+)$")


# ----- official MMMU parsing (eval_utils.py @ bb0b95a9), re-implemented

def parse_multi_choice(response: str, all_choices: list[str], index2ans: dict[str, str], rng: random.Random) -> str:
    """``parse_multi_choice_response``: '(X)' first, then ' X ', then option text (responses of more than five
    words only); several candidates -> the one found last; none -> ``rng.choice(all_choices)``."""
    for ch in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(ch)
    response = f" {response} "
    candidates: list[str] = []
    bracketed = False
    by_index = True
    for c in all_choices:
        if f"({c})" in response:
            candidates.append(c)
            bracketed = True
    if not candidates:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates and len(response.split()) > 5:
        low = response.lower()
        for k, text in index2ans.items():
            if text.lower() in low:
                candidates.append(k)
                by_index = False
    if not candidates:
        return rng.choice(all_choices)
    if len(candidates) == 1:
        return candidates[0]
    if by_index:
        pos = [response.rfind(f"({c})" if bracketed else f" {c} ") for c in candidates]
    else:
        low = response.lower()
        pos = [low.rfind(index2ans[c].lower()) for c in candidates]
    return candidates[pos.index(max(pos))]  # np.argmax: first of equal maxima


def _is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(s: str) -> list[Any]:
    """Numbers -> [float rounded to 2 places]; other text lower-cased, one-character text padded with a space."""
    s = s.strip()
    if _is_number(s):
        return [round(float(s.replace(",", "")), 2)]
    s = s.lower()
    return [" " + s, s + " "] if len(s) == 1 else [s]


_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCI = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def extract_numbers(s: str) -> list[str]:
    return _NUM_COMMAS.findall(s) + _NUM_SCI.findall(s) + _NUM_SIMPLE.findall(s)


_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    parts = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys: list[str] = []
    indicators = list(_KEY_INDICATORS)
    for i, part in enumerate(parts):
        if i == len(parts) - 1:
            indicators.append("=")
        shortest: Optional[str] = None
        for ind in indicators:
            if ind in part:
                tail = part.split(ind)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[Any]:
    """``parse_open_response``: key sub-responses plus the numbers in them, each normalised, deduplicated."""
    keys = _key_subresponses(response)
    preds: list[Any] = list(keys)
    for k in keys:
        preds.extend(extract_numbers(k))
    out: list[Any] = []
    for p in preds:
        out.extend(normalize_str(p))
    return list(dict.fromkeys(out))  # upstream list(set(...)): order does not matter to eval_open


def eval_open(gold: Any, preds: list[Any]) -> bool:
    """``eval_open``: a text prediction must contain a text gold; a number must equal a numeric gold."""
    golds: list[Any] = []
    for g in (gold if isinstance(gold, list) else [gold]):
        golds.extend(normalize_str(str(g)))
    for p in preds:
        if isinstance(p, str):
            if any(isinstance(g, str) and g in p for g in golds):
                return True
        elif p in golds:
            return True
    return False


def gold_answers(gold: Any) -> Any:
    """An open question's gold as eval_open takes it: MMMU stores several accepted answers as a list
    (``['24/7', '3.429']``; the TSV and Hugging Face copies hold its text), any of which is correct."""
    if isinstance(gold, (list, tuple)):
        return [str(g) for g in gold]
    text = str(gold).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, (list, tuple)):
            return [str(g) for g in value]
    return text


def subject_of(fields: dict[str, Any]) -> str:
    m = _ID.match(str(fields.get("id") or ""))
    if m:
        return m.group(1)
    return str(fields.get("category") or "unknown")


def _id_number(fields: dict[str, Any]) -> int:
    m = _ID.match(str(fields.get("id") or ""))
    return int(m.group(2)) if m else 0


def _hf_option(letter: str):
    def get(rec: dict[str, Any]) -> Optional[str]:
        raw = rec.get("options")
        try:
            opts = ast.literal_eval(raw) if isinstance(raw, str) else list(raw or [])
        except (ValueError, SyntaxError):
            raise TaskError(f"MMMU row {rec.get('id')}: options {str(raw)[:60]!r} is not a list literal") from None
        i = _OPTION_LETTERS.index(letter)
        return str(opts[i]) if i < len(opts) else None
    return get


class MMMUVal(MCQTask):
    id = "mmmu_val"
    tsv_name = "MMMU_DEV_VAL"
    split_name = "validation"
    headline = ("accuracy", "percent")
    required_columns = ("index", "image", "question", "answer", "A")
    references = {
        "official": f"MMMU-Benchmark/MMMU {MMMU_COMMIT[:8]} mmmu/utils/eval_utils.py (parse_multi_choice_response "
                    f"with random.seed(42), parse_open_response, eval_multi_choice, eval_open) as run by "
                    f"main_parse_and_eval.py",
        "vlmevalkit": f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate: mcq_vanilla_eval with MMMU_preproc "
                      f"(open -> A=gold/B='Other Answers'), can_infer; judge fallback only when a judge is given",
    }
    hf_default = "lmms-lab/MMMU"
    hf_split = "validation"
    hf_index_column = "id"
    hf_image_column = "image_1"
    hf_mapping = {"question": "question", "answer": "answer", "id": "id", "question_type": "question_type",
                  **{k: _hf_option(k) for k in _OPTION_LETTERS}}
    max_new_tokens = 128
    full_size = BenchmarkSize(900, answer_tokens=8)

    # ----- data
    def read_rows(self, source: Optional[str]) -> list[TsvRow]:
        rows = super().read_rows(source)
        if self.is_hf_source(source):
            for r in rows:
                r.fields.setdefault("split", self.hf_split)
                r.fields["category"] = subject_of(r.fields)
        return rows

    def load(self, source: Optional[str] = None, limit: Optional[int] = None) -> list[Sample]:
        """VK's MMMU_DEV_VAL holds dev and validation rows; the benchmark (and headline) is validation.

        Task option ``split``: ``validation`` (default), ``dev`` or ``all``.
        """
        want = str(self.options.get("split", "validation"))
        self.split_name = want
        samples = [self.to_sample(r) for r in self.read_rows(source)]
        if want != "all":
            self.left_out = {s.id: f"split {s.fields.get('split')}" for s in samples
                             if s.fields.get("split") not in (None, want)}
            samples = [s for s in samples if s.id not in self.left_out]
        return self.apply_limit(samples, limit)

    # ----- scoring
    @staticmethod
    def is_open(fields: dict[str, Any]) -> bool:
        """main_parse_and_eval: anything but 'multiple-choice' (VK's TSV says 'open', MMMU's files 'short-answer')
        is open; without the column, VK MMMU_preproc's test (no option A)."""
        qt = fields.get("question_type")
        if qt is not None:
            return str(qt) != "multiple-choice"
        return fields.get("A") is None

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        profile = self.profile(ctx.profile)
        scored = self.profile_view([s for s in samples if s.id in predictions], profile)
        if profile == "official":
            return self._score_official(scored, predictions)
        from unitoken_eval.harness.plugin import JudgeUnavailable

        judge = ctx.judge
        out: dict[str, dict[str, Any]] = {}
        for s in scored:
            fields = dict(s.fields)
            gold = str(fields.get("answer"))
            if fields.get("A") is None:  # MMMU_preproc
                fields["A"], fields["B"] = gold, "Other Answers"
            gt = gold if len(gold) == 1 and gold in string.ascii_uppercase else "A"  # VK answer_map
            try:
                got, judged = self._extract(Sample(id=s.id, fields=fields), self.text_of(predictions[s.id]), judge)
            except JudgeUnavailable:
                out[s.id] = self._record(s, None, status=PENDING, answer=gt)
                continue
            rec = self._record(s, int(got == gt), extracted=got, answer=gt)
            if judged:
                rec["judged"] = True
            out[s.id] = rec
        return out

    def _record(self, s: Sample, hit: Optional[int], **extra: Any) -> dict[str, Any]:
        rec = {"score": hit, "subject": subject_of(s.fields), **extra}
        for f in ("split", "category", "l2-category"):
            if s.fields.get(f) is not None:
                rec[f] = s.fields[f]
        if s.fields.get("_n_images"):
            rec["n_images"] = s.fields["_n_images"]
        return rec

    def _score_official(self, samples: list[Sample], predictions: dict[str, Prediction]):
        order = {name: i for i, name in enumerate(SUBJECT_ORDER)}
        position = {s.id: i for i, s in enumerate(samples)}
        visit = sorted(samples, key=lambda s: (order.get(subject_of(s.fields), len(order)), subject_of(s.fields),
                                               _id_number(s.fields), position[s.id]))
        rng = random.Random(RANDOM_SEED)
        out: dict[str, dict[str, Any]] = {}
        for s in visit:
            response = self.text_of(predictions[s.id])
            gold = s.fields.get("answer")
            if gold is None:
                raise TaskError(f"{self.id}: sample {s.id} has no answer")
            if self.is_open(s.fields):
                parsed = parse_open(response)
                golds = gold_answers(gold)
                out[s.id] = self._record(s, int(eval_open(golds, parsed)), parsed=[str(p) for p in parsed],
                                         answer=golds, question_type="open")
            else:
                index2ans = {k: str(v) for k, v in mcq.build_choices(s.fields).items() if k in _OPTION_LETTERS}
                all_choices = list(index2ans)
                if not all_choices:
                    raise TaskError(f"{self.id}: multiple-choice sample {s.id} has no options")
                parsed = parse_multi_choice(response, all_choices, index2ans, rng)
                out[s.id] = self._record(s, int(parsed == str(gold)), parsed=parsed, answer=str(gold),
                                         question_type="multiple-choice")
        return {s.id: out[s.id] for s in samples}

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        all_records = records
        records = {k: r for k, r in records.items() if r.get("score") is not None}
        pending = len(all_records) - len(records)
        overall = mean100([r["score"] for r in records.values()])
        per_subject: dict[str, list[int]] = defaultdict(list)
        by_split: dict[str, list[int]] = defaultdict(list)
        for r in records.values():
            per_subject[r["subject"]].append(r["score"])
            by_split[str(r.get("split") or "none")].append(r["score"])
        metrics = {
            "overall": overall,
            "per_subject": {k: mean100(v) for k, v in sorted(per_subject.items())},
            "per_subject_n": {k: len(v) for k, v in sorted(per_subject.items())},
            "overall_by_split": {k: mean100(v) for k, v in sorted(by_split.items())},
            "multi_image_samples": sum(1 for r in records.values() if r.get("n_images", 1) > 1),
            "multi_image_policy": "first image only; <image k> tags left in the question text",
            **self.base_metrics(),
        }
        if profile == "official":
            metrics["random_seed"] = RANDOM_SEED
        else:
            metrics["judge"] = getattr(ctx.judge, "name", None)
            metrics["judged"] = sum(1 for r in records.values() if r.get("judged"))
        if pending:
            metrics["pending_judge"] = pending
            metrics["accuracy_scored_samples"] = overall
            return self.not_scored(profile, f"{pending} samples pending judge (the judge was unavailable)",
                                   metrics=metrics, n=len(records))
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], overall, self.headline[1]),
                          metrics=metrics, n=len(records), reference=self.references[profile])
