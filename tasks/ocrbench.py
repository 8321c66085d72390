"""OCRBench: 1,000 questions, one point each when any ground-truth string occurs in the prediction.

Rule of OCRBench's own scorer as VLMEvalKit e8e78f05 ``OCRBench.evaluate`` (vlmeval/dataset/image_vqa.py)
re-implements it: ground truths and prediction lower-cased and stripped, newlines turned into spaces;
for 'Handwritten Mathematical Expression Recognition' nothing is lower-cased and all spaces are removed.
Headline: total points 0-1000 ("Final Score"); VK's /10 is in the metrics.
"""

from __future__ import annotations

import ast
from typing import Any

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskError, TaskResult
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, VKTask

HME = "Handwritten Mathematical Expression Recognition"
_TEXT_RECOGNITION = ("Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
                     "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition")
_OTHERS = ("Scene Text-centric VQA", "Doc-oriented VQA", "Key Information Extraction", HME)


def parse_answers(cell: Any, where: str) -> list[str]:
    """The answer cell is a Python list literal upstream (``eval``-ed there); a bare string is one answer."""
    if isinstance(cell, list):
        return [str(a) for a in cell]
    text = str(cell)
    if text.startswith("["):
        try:
            val = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise TaskError(f"{where}: answer {text[:60]!r} is not a list literal") from None
        return [str(a) for a in val]
    return [text]


def ocrbench_hit(prediction: str, answers: list[str], category: str) -> int:
    if category == HME:
        pred = prediction.strip().replace("\n", " ").replace(" ", "")
        return int(any(a.strip().replace("\n", " ").replace(" ", "") in pred for a in answers))
    pred = prediction.lower().strip().replace("\n", " ")
    return int(any(a.lower().strip().replace("\n", " ") in pred for a in answers))


class OCRBench(VKTask):
    id = "ocrbench"
    tsv_name = "OCRBench"
    headline = ("final_score", "points_0_1000")
    _ref = f"VLMEvalKit {VK_COMMIT[:8]} OCRBench.evaluate"
    references = {"official": f"OCRBench's scoring loop (Yuliang-Liu/MultimodalOCR f5cbec66 OCRBench/example.py), as in {_ref}",
                  "vlmevalkit": _ref}
    required_columns = ("index", "image", "question", "answer", "category")
    hf_default = "echo840/OCRBench"
    hf_index_column = None
    hf_mapping = {"question": "question", "answer": lambda rec: repr(list(rec.get("answer") or [])),
                  "category": "question_type"}
    max_new_tokens = 128
    full_size = BenchmarkSize(1000, answer_tokens=16)

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        self.profile(ctx.profile)
        out = {}
        for s in samples:
            if s.id not in predictions:
                continue
            answers = parse_answers(s.fields.get("answer"), f"{self.data_path}: index {s.id}")
            cat = str(s.fields.get("category"))
            out[s.id] = {"score": ocrbench_hit(self.text_of(predictions[s.id]), answers, cat), "category": cat}
        return out

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        per: dict[str, int] = {c: 0 for c in (*_TEXT_RECOGNITION, *_OTHERS)}
        for r in records.values():
            per[r["category"]] = per.get(r["category"], 0) + r["score"]
        unknown = sorted(set(per) - set(_TEXT_RECOGNITION) - set(_OTHERS))
        if unknown:
            ctx.warn(f"ocrbench: categories outside OCRBench's ten, counted in no group: {unknown}")
        groups = {"Text Recognition": sum(per[c] for c in _TEXT_RECOGNITION), **{c: per[c] for c in _OTHERS}}
        total = sum(groups.values())
        metrics = {**groups, "Final Score": total, "Final Score Norm": total / 10, "per_category": per,
                   **self.base_metrics()}
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], float(total), self.headline[1]),
                          metrics=metrics, n=len(records), reference=self.references[profile])
