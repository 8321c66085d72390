"""MME: 14 yes/no sub-tasks, two questions per image; per sub-task score = (acc + acc+) x 100.

acc = share of questions right, acc+ = share of images with both questions right.  Perception = 10 sub-tasks
(max 2000), cognition = 4 (max 800); headline = their sum (max 2800).
- ``official``: MME's tools/eval_tool.zip calculation.py at 1c1d69e1 (``parse_pred_ans`` on the lower-cased answer: "yes"/"no"
  searched in the first four characters only).
- ``vlmevalkit``: VK e8e78f05 ``MME_rating`` with ``YOrN_Extraction`` (vlmeval/dataset/utils/yorn.py).
Questions are paired by their image (``image_path`` in VK's TSV, the shared image otherwise).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskResult
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, VKTask, mean100
from unitoken_eval.tasks.common.yesno import judge_yes_no, mme_parse_pred_ans, vk_yes_no

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


class MME(VKTask):
    id = "mme"
    tsv_name = "MME"
    headline = ("total", "points_0_2800")
    references = {
        "official": "MME tools/eval_tool.zip calculation.py (BradyFU/Awesome-Multimodal-Large-Language-Models, "
                    "Evaluation branch 1c1d69e1): parse_pred_ans + acc/acc_plus",
        "vlmevalkit": f"VLMEvalKit {VK_COMMIT[:8]} ImageYORNDataset.evaluate + MME_rating (YOrN_Extraction), exact matching",
    }
    required_columns = ("index", "image", "question", "answer", "category")
    hf_default = "lmms-lab/MME"
    hf_index_column = None
    hf_image_key_column = "image_path"
    hf_mapping = {"question": "question", "answer": "answer", "category": "category", "image_path": "question_id"}
    max_new_tokens = 16
    full_size = BenchmarkSize(2374, images=1187, answer_tokens=4)  # two questions per image

    def subset_unit(self, sample: Sample) -> str:
        """An image's two questions stay together: acc+ scores them as a pair."""
        return f"{sample.fields.get('category')}\0{self._image_of(sample)}"

    def pairing_groups(self, records: dict[str, dict[str, Any]]) -> dict[str, str]:
        """The two questions about one image (what acc+ pairs) are one unit of the paired test."""
        return {sid: f"{r.get('category')}\0{r.get('image', sid)}" for sid, r in records.items()}

    @staticmethod
    def _image_of(s: Sample) -> str:
        return str(s.fields.get("image_path") or s.image_key or s.id)

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        profile = self.profile(ctx.profile)
        judge = ctx.judge if (profile == "vlmevalkit" and self.use_judge(ctx)) else None
        out = {}
        for s in samples:
            if s.id not in predictions:
                continue
            text = self.text_of(predictions[s.id])
            gt = str(s.fields.get("answer"))
            if profile == "official":
                got = mme_parse_pred_ans(text)
                hit = int(got == gt.lower())
            else:
                got = vk_yes_no(text)
                if got == "Unknown" and judge is not None:
                    got = judge_yes_no(judge, s.fields.get("question"), text)
                hit = int(got == gt)
            image = s.fields.get("image_path") or s.image_key or s.id
            out[s.id] = {"score": hit, "extracted": got, "answer": gt, "category": s.fields.get("category"),
                         "image": self._image_of(s)}
        return out

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        by_cat: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for r in records.values():
            by_cat[str(r["category"])][r["image"]].append(r["score"])
        subtasks = {}
        for cat, images in sorted(by_cat.items()):
            acc = mean100([x for v in images.values() for x in v])
            acc_plus = mean100([int(all(v)) for v in images.values()])
            odd = [k for k, v in images.items() if len(v) != 2]
            if odd:
                ctx.warn(f"mme: {len(odd)} images of {cat} do not have exactly two questions (first: {odd[0]})")
            subtasks[cat] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}
        missing = [c for c in (*PERCEPTION, *COGNITION) if c not in subtasks]
        if missing:
            ctx.warn(f"mme: sub-tasks without predictions, left out of the sums: {missing}")
        extra = sorted(set(subtasks) - set(PERCEPTION) - set(COGNITION))
        if extra:
            ctx.warn(f"mme: categories outside MME's 14, counted in no sum: {extra}")
        perception = sum(subtasks[c]["score"] for c in PERCEPTION if c in subtasks)
        cognition = sum(subtasks[c]["score"] for c in COGNITION if c in subtasks)
        total = perception + cognition
        metrics = {"perception": perception, "cognition": cognition, "total": total, "subtasks": subtasks,
                   "missing_subtasks": missing, **self.base_metrics()}
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], total, self.headline[1]),
                          metrics=metrics, n=len(records), reference=self.references[profile])
