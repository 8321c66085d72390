"""MMStar: VK multiple choice, headline = micro-averaged overall accuracy as VLMEvalKit reports it.

lmms-eval reports the macro average over l2-categories instead (mmstar_aggregate_results); that number is
in the metrics as ``l2_category_macro`` (computed on the same VK-matched scores) so the two are never mixed.
The HF copy (Lin-Chen/MMStar) keeps the options inside the question text, so only VK's TSV is read.
"""

from __future__ import annotations

from typing import Any

from unitoken_eval.harness.types import BenchmarkSize
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, MCQTask, mean100

_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageMCQDataset.evaluate (mcq_vanilla_eval, report_acc Overall), exact matching"


class MMStar(MCQTask):
    id = "mmstar"
    tsv_name = "MMStar"
    full_size = BenchmarkSize(1500, answer_tokens=4)
    split_name = "val"
    required_columns = ("index", "image", "question", "answer", "A", "B", "category", "l2-category")
    references = {"official": f"{_REF} (micro overall; MMStar authors use VK)", "vlmevalkit": _REF}

    def extra_metrics(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        per: dict[str, list[int]] = {}
        for r in records.values():
            if r.get("l2-category") is not None:
                per.setdefault(str(r["l2-category"]), []).append(r["score"])
        macro = [mean100(v) for v in per.values()]
        return {"l2_category_macro": (sum(macro) / len(macro)) if macro else None,
                "l2_category_macro_note": "lmms-eval's headline aggregation (mean of l2-category means)"}
