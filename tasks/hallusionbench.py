"""HallusionBench: yes/no questions; aAcc (per question), fAcc (per figure), qAcc (per question across figures).

Scored as VLMEvalKit e8e78f05 ``Hallusion_rating`` (vlmeval/dataset/utils/yorn.py) with ``YOrN_Extraction``
(unmatched -> 'Unknown' = wrong).  The set / figure / question ids are fields 3, 4, 5 of the '_'-split index,
exactly where VK takes them.  Headline = mean of aAcc, fAcc, qAcc (what leaderboards print).
VK's TSV has 951 image questions; the HF copy (lmms-lab/HallusionBench, 1,129 rows) adds text-only ones,
which are dropped here so the two sources cover the same questions.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.types import Headline, Prediction, Sample, TaskResult
from tasks.base import ScoreContext, TaskError
from tasks.common.mcq_task import VK_COMMIT, VKTask, mean100
from tasks.common.vlmeval_tsv import TsvRow
from tasks.common.yesno import judge_yes_no, vk_yes_no

_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageYORNDataset.evaluate + Hallusion_rating, exact matching"


def _hf_index(rec: dict[str, Any]) -> str:
    vals = [rec["category"], rec["subcategory"], rec.get("visual_input", 1), rec["set_id"], rec["figure_id"], rec["question_id"]]
    return "_".join(str(v) for v in vals)


class HallusionBench(VKTask):
    id = "hallusionbench"
    tsv_name = "HallusionBench"
    headline = ("mean_aAcc_fAcc_qAcc", "percent")
    references = {"official": f"{_REF} (HallusionBench's leaderboard metrics, rule-based extraction)", "vlmevalkit": _REF}
    required_columns = ("index", "image", "question", "answer", "category", "l2-category")
    hf_default = "lmms-lab/HallusionBench"
    hf_split = "image"
    hf_index_column = None
    hf_mapping = {"question": "question", "answer": lambda rec: {"1": "Yes", "0": "No"}.get(str(rec.get("gt_answer"))),
                  "category": "category", "l2-category": "subcategory", "_hf_index": _hf_index,
                  "visual_input": lambda rec: rec.get("visual_input"),
                  "set_id": "set_id", "figure_id": "figure_id", "question_id": "question_id"}
    max_new_tokens = 64
    stratum_field = "l2-category"

    def subset_unit(self, sample: Sample) -> str:
        """One question over all its figures (what qAcc scores together and the gate pairs) is kept whole."""
        parts = sample.id.split("_")
        return f"{sample.fields.get('l2-category')}_{parts[3]}_{parts[5]}" if len(parts) > 5 else sample.id

    def pairing_groups(self, records: dict[str, dict[str, Any]]) -> dict[str, str]:
        """One question asked of several figures (what qAcc pairs) is one unit of the paired test."""
        return {sid: f"{r.get('l2-category')}_{r.get('set_id')}_{r.get('question_id')}" for sid, r in records.items()}

    def filter_hf_row(self, row: TsvRow) -> bool:
        return str(row.fields.get("visual_input")) != "0"

    def load(self, source=None, limit=None):
        samples = super().load(source, limit)
        for s in samples:
            if s.fields.get("_hf_index"):
                s.id = s.fields["index"] = s.fields["_hf_index"]
            parts = s.id.split("_")
            if len(parts) < 6:
                raise TaskError(f"{self.data_path}: index {s.id!r} lacks the set/figure/question fields VK reads "
                                "(3rd-5th '_'-separated parts)")
        return samples

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        self.profile(ctx.profile)
        judge = ctx.judge if self.use_judge(ctx) else None
        out = {}
        for s in samples:
            if s.id not in predictions:
                continue
            text = self.text_of(predictions[s.id])
            got = vk_yes_no(text)
            if got == "Unknown" and judge is not None:
                got = judge_yes_no(judge, s.fields.get("question"), text)
            parts = s.id.split("_")
            out[s.id] = {"score": int(got == s.fields.get("answer")), "extracted": got, "answer": s.fields.get("answer"),
                         "category": s.fields.get("category"), "l2-category": s.fields.get("l2-category"),
                         "set_id": parts[3], "figure_id": parts[4], "question_id": parts[5]}
        return out

    @staticmethod
    def rates(records: list[dict[str, Any]]) -> dict[str, float]:
        fig: dict[str, list[int]] = defaultdict(list)
        que: dict[str, list[int]] = defaultdict(list)
        for r in records:
            fig[f"{r['l2-category']}_{r['set_id']}_{r['figure_id']}"].append(r["score"])
            que[f"{r['l2-category']}_{r['set_id']}_{r['question_id']}"].append(r["score"])
        return {"aAcc": mean100([r["score"] for r in records]),
                "fAcc": mean100([int(all(v)) for v in fig.values()]),
                "qAcc": mean100([int(all(v)) for v in que.values()])}

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        recs = list(records.values())
        if not recs:
            return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], None, self.headline[1]),
                              status="not_scored", reason="no predictions", reference=self.references[profile])
        overall = self.rates(recs)
        headline = (overall["aAcc"] + overall["fAcc"] + overall["qAcc"]) / 3
        metrics: dict[str, Any] = {"overall": overall, **self.base_metrics()}
        for group in ("category", "l2-category"):
            keys = sorted({str(r[group]) for r in recs if r.get(group) is not None})
            metrics[group] = {k: self.rates([r for r in recs if str(r.get(group)) == k]) for k in keys}
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], headline, self.headline[1]),
                          metrics=metrics, n=len(recs), reference=self.references[profile])
