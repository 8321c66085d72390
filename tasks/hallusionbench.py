"""HallusionBench: yes/no questions about figures; aAcc (per question), fAcc (per figure), qAcc (per question pair).

Two profiles, two protocols:
- ``official``: the authors' scorer, tianyi-lab/HallusionBench 744007c2 evaluation.py with utils.py.  A judge
  reads each full answer against the reference answer (``gt_answer_details``) and says correct, incorrect or
  unclear (the verdict is read as ``evaluate_by_chatgpt`` reads it, see :func:`verdict_of`); a question is right
  when the verdict is correct, or - for a Visual Supplement question without a figure - not incorrect
  (``assign_correctness``).  qAcc groups by (category, subcategory, set, question) over every figure including
  the text-only one (``get_eval_pair_all``), fAcc by (category, subcategory, set, figure) leaving out the
  text-only "figure" (``get_eval_fig``), aAcc is per question (``get_eval_all``).  The authors' question file
  HallusionBench.json (1,129 questions, 178 of them text-only) is read when given as ``--data``.  Without a
  judge the profile is "not scored"; the rule-based VLMEvalKit figure is then shown only under that name.
- ``vlmevalkit``: VLMEvalKit e8e78f05 ``Hallusion_rating`` (vlmeval/dataset/utils/yorn.py) with
  ``YOrN_Extraction`` (unmatched -> 'Unknown' = wrong), over the questions with a figure (VK's TSV has 951);
  set / figure / question ids are fields 3, 4, 5 of the '_'-split index, exactly where VK takes them.

Headline = mean of aAcc, fAcc, qAcc (the authors' leaderboard.json "overall", and what VK-based leaderboards print).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskError, TaskResult
from unitoken_eval.harness.store import sha256_file
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, VKTask, mean100
from unitoken_eval.tasks.common.vlmeval_tsv import TsvRow
from unitoken_eval.tasks.common.yesno import judge_yes_no, vk_yes_no

AUTHORS_COMMIT = "744007c232c292942c7f80eb61edb2465482da31"
AUTHORS_QUESTIONS = 1129
NEEDS_JUDGE = "needs a judge"
PENDING = "pending judge"
CORRECT, INCORRECT, UNCLEAR = "1", "0", "2"

_REF = f"VLMEvalKit {VK_COMMIT[:8]} ImageYORNDataset.evaluate + Hallusion_rating, exact matching"
_OFFICIAL = (f"tianyi-lab/HallusionBench {AUTHORS_COMMIT[:8]} evaluation.py + utils.py (judge verdict on the full "
             "answer: correct / incorrect / unclear; unclear is right only for text-only Visual Supplement "
             "questions; qAcc per question pair, fAcc per figure, aAcc per question; needs a judge)")
_AUTHORS_FIELDS = ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id", "question",
                   "gt_answer_details", "gt_answer")


def _hf_index(rec: dict[str, Any]) -> str:
    vals = [rec["category"], rec["subcategory"], rec.get("visual_input", 1), rec["set_id"], rec["figure_id"], rec["question_id"]]
    return "_".join(str(v) for v in vals)


def judge_prompt(question: Any, reference: Any, prediction: str) -> str:
    """Our wording of the authors' grading request: the same inputs and the same three replies."""
    return ("You are a careful teacher grading an answer. Read the question, the reference answer and the "
            "predicted answer. If the prediction does not conflict with the reference answer, reply \"correct\". "
            "If it conflicts with the reference answer, reply \"incorrect\". If the prediction is unclear about "
            "the answer, reply \"unclear\".\n\n"
            f"Question: {question}\nReference answer: {reference}\nPrediction answer: {prediction}\nOutput:")


def verdict_of(reply: Any) -> str:
    """utils.py ``evaluate_by_chatgpt``: 'incorrect' anywhere -> 0, else 'correct' anywhere -> 1, else 2 (unclear)."""
    low = str(reply).lower()
    if "incorrect" in low:
        return INCORRECT
    if "correct" in low:
        return CORRECT
    return UNCLEAR


def is_right(verdict: str, category: Any, figure_id: Any) -> int:
    """utils.py ``assign_correctness``: without a figure a VS question may also be answered 'unclear'."""
    if str(category) == "VS" and str(figure_id) == "0":
        return int(verdict in (CORRECT, UNCLEAR))
    return int(verdict == CORRECT)


def _all_right(groups: dict[str, list[int]]) -> Optional[float]:
    return mean100([int(all(v)) for v in groups.values()])


def authors_rates(records: list[dict[str, Any]]) -> dict[str, Optional[float]]:
    """aAcc, fAcc, qAcc as utils.py ``get_eval_all``, ``get_eval_fig``, ``get_eval_pair_all`` compute them."""
    fig: dict[str, list[int]] = defaultdict(list)
    pair: dict[str, list[int]] = defaultdict(list)
    for r in records:
        cat, sub, st = r["category"], r["l2-category"], r["set_id"]
        if not (str(cat) == "VS" and str(r["figure_id"]) == "0"):  # the text-only question has no figure
            fig[f"{cat}_{sub}_{st}_{r['figure_id']}"].append(r["score"])
        pair[f"{cat}_{sub}_{st}_{r['question_id']}"].append(r["score"])
    return {"aAcc": mean100([r["score"] for r in records]), "fAcc": _all_right(fig), "qAcc": _all_right(pair)}


def vk_rates(records: list[dict[str, Any]]) -> dict[str, Optional[float]]:
    """VK ``Hallusion_rating``: figures and questions keyed by (l2-category, set, figure|question)."""
    fig: dict[str, list[int]] = defaultdict(list)
    que: dict[str, list[int]] = defaultdict(list)
    for r in records:
        fig[f"{r['l2-category']}_{r['set_id']}_{r['figure_id']}"].append(r["score"])
        que[f"{r['l2-category']}_{r['set_id']}_{r['question_id']}"].append(r["score"])
    return {"aAcc": mean100([r["score"] for r in records]), "fAcc": _all_right(fig), "qAcc": _all_right(que)}


def _mean3(rates: dict[str, Optional[float]]) -> Optional[float]:
    vals = [rates["aAcc"], rates["fAcc"], rates["qAcc"]]
    return None if any(v is None for v in vals) else sum(vals) / 3


class HallusionBench(VKTask):
    id = "hallusionbench"
    tsv_name = "HallusionBench"
    headline = ("mean_aAcc_fAcc_qAcc", "percent")
    references = {"official": _OFFICIAL, "vlmevalkit": _REF}
    required_columns = ("index", "image", "question", "answer", "category", "l2-category")
    hf_default = "lmms-lab/HallusionBench"
    hf_split = "image"
    hf_index_column = None
    hf_mapping = {"question": "question", "answer": lambda rec: {"1": "Yes", "0": "No"}.get(str(rec.get("gt_answer"))),
                  "category": "category", "l2-category": "subcategory", "_hf_index": _hf_index,
                  "visual_input": lambda rec: rec.get("visual_input"), "gt_answer_details": "gt_answer_details",
                  "set_id": "set_id", "figure_id": "figure_id", "question_id": "question_id"}
    max_new_tokens = 64
    full_size = BenchmarkSize(951, answer_tokens=4)
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

    def needs_image(self, row: TsvRow) -> bool:
        return str(row.fields.get("visual_input")) != "0"

    def read_rows(self, source: Optional[str]) -> list[TsvRow]:
        if source and str(source).endswith(".json"):
            return self._read_authors_json(Path(source).expanduser())
        return super().read_rows(source)

    def _read_authors_json(self, path: Path) -> list[TsvRow]:
        """The authors' question file (HallusionBench.json): one object per question, images beside it."""
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TaskError(f"data file {path} does not exist (expected the authors' HallusionBench.json)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TaskError(f"{path}: not a JSON question file ({exc})") from None
        if not isinstance(items, list):
            raise TaskError(f"{path}: expected a JSON list of questions (the authors' HallusionBench.json)")
        self.data_path, self.data_sha256 = str(path), sha256_file(path)
        rows, seen = [], set()
        for i, rec in enumerate(items):
            where = f"{path}: question {i}"
            missing = [k for k in _AUTHORS_FIELDS if not isinstance(rec, dict) or rec.get(k) is None]
            if missing:
                raise TaskError(f"{where}: missing {', '.join(missing)}")
            index = _hf_index(rec)
            if index in seen:
                raise TaskError(f"{where}: question {index} appears more than once")
            seen.add(index)
            fields = {k: str(rec[k]) for k in _AUTHORS_FIELDS}
            fields.update(index=index, answer={"1": "Yes", "0": "No"}.get(fields["gt_answer"]),
                          **{"l2-category": fields["subcategory"]})
            if fields["answer"] is None:
                raise TaskError(f"{where}: gt_answer {rec['gt_answer']!r} is not 0 or 1")
            loader = None
            if fields["visual_input"] != "0":
                if not rec.get("filename"):
                    raise TaskError(f"{where}: a question with visual_input {fields['visual_input']} needs a filename")
                loader = self._image_loader(path.parent, str(rec["filename"]), where)
            rows.append(TsvRow(index, fields, str(path), i, image_key=index if loader else None, loader=loader))
        return rows

    @staticmethod
    def _image_loader(root: Path, name: str, where: str):
        def load():
            from PIL import Image

            # The authors' README unzips the images as hallusion_bench/ beside the JSON; filenames are relative.
            for cand in (root / name, root / "hallusion_bench" / name):
                if cand.is_file():
                    with Image.open(cand) as im:
                        return im.convert("RGB")
            raise TaskError(f"{where}: image {name} not found under {root} or {root / 'hallusion_bench'}")
        return load

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

    # ----- scoring
    def _record(self, s: Sample) -> dict[str, Any]:
        parts = s.id.split("_")
        return {"answer": s.fields.get("answer"), "category": s.fields.get("category"),
                "l2-category": s.fields.get("l2-category"), "visual_input": parts[2],
                "set_id": parts[3], "figure_id": parts[4], "question_id": parts[5]}

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        profile = self.profile(ctx.profile)
        todo = [s for s in samples if s.id in predictions]
        if profile == "official":
            return self._score_official(todo, predictions, ctx)
        judge = ctx.judge if self.use_judge(ctx) else None
        text_only = [s for s in todo if s.id.split("_")[2] == "0"]
        if text_only:
            ctx.warn(f"{self.id}: {len(text_only)} text-only questions left out of the vlmevalkit profile "
                     "(VLMEvalKit's TSV has only questions with a figure)")
        out = {}
        for s in todo:
            if s.id.split("_")[2] == "0":
                continue
            text = self.text_of(predictions[s.id])
            got = vk_yes_no(text)
            if got == "Unknown" and judge is not None:
                got = judge_yes_no(judge, s.fields.get("question"), text)
            out[s.id] = {"score": int(got == s.fields.get("answer")), "extracted": got, **self._record(s)}
        return out

    def _score_official(self, todo: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        out: dict[str, dict[str, Any]] = {}
        for s in todo:
            rule = vk_yes_no(self.text_of(predictions[s.id]))  # kept for the labelled VK figure only
            out[s.id] = {**self._record(s), "vk_extracted": rule, "vk_score": int(rule == s.fields.get("answer"))}
        if ctx.judge is None:
            for r in out.values():
                r.update(score=None, status=NEEDS_JUDGE)
            return out
        from unitoken_eval.harness.judge import JudgeUnavailable

        no_details = sum(1 for s in todo if not s.fields.get("gt_answer_details"))
        if no_details:
            ctx.warn(f"{self.id}: {no_details} questions have no reference answer text (gt_answer_details; "
                     "VLMEvalKit's TSV has none): the judge compares against Yes/No instead of the authors' sentence")
        prompts = [judge_prompt(s.fields.get("question"), s.fields.get("gt_answer_details") or s.fields.get("answer"),
                                self.text_of(predictions[s.id])) for s in todo]
        replies = ctx.judge.complete_many(prompts, return_errors=True)
        for s, reply in zip(todo, replies):
            rec = out[s.id]
            if isinstance(reply, JudgeUnavailable):
                rec.update(score=None, status=PENDING)
                continue
            verdict = verdict_of(reply)
            rec.update(score=is_right(verdict, rec["category"], rec["figure_id"]), verdict=verdict)
        return out

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        recs = list(records.values())
        if not recs:
            return self.not_scored(profile, "no predictions")
        if profile == "official":
            return self._aggregate_official(recs, ctx)
        overall = vk_rates(recs)
        metrics: dict[str, Any] = {"overall": overall, **self.base_metrics()}
        for group in ("category", "l2-category"):
            keys = sorted({str(r[group]) for r in recs if r.get(group) is not None})
            metrics[group] = {k: vk_rates([r for r in recs if str(r.get(group)) == k]) for k in keys}
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], _mean3(overall), self.headline[1]),
                          metrics=metrics, n=len(recs), reference=self.references[profile])

    def _aggregate_official(self, recs: list[dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        done = [r for r in recs if r.get("score") is not None]
        need = sum(1 for r in recs if r.get("status") == NEEDS_JUDGE)
        pending = sum(1 for r in recs if r.get("status") == PENDING)
        metrics: dict[str, Any] = {"n_questions": len(recs), "authors_questions": AUTHORS_QUESTIONS,
                                   "judge": getattr(ctx.judge, "name", None), **self.base_metrics()}
        with_figure = [r for r in recs if r["visual_input"] != "0"]
        if with_figure:
            vk = [{**r, "score": r["vk_score"]} for r in with_figure]
            metrics["vlmevalkit_rule_based"] = {**vk_rates(vk), "note": "VLMEvalKit's yes/no word rule over the "
                                                "questions with a figure; not the authors' protocol"}
        warnings: list[str] = []
        if not any(r["visual_input"] == "0" for r in recs):
            warnings.append(f"{self.id}: no text-only questions in the data (the authors score {AUTHORS_QUESTIONS}, "
                            "178 without a figure): qAcc pairs lack their text-only member; pass the authors' "
                            "HallusionBench.json as --data for their full set")
        if need or pending:
            reason = NEEDS_JUDGE if need else f"{pending} samples pending judge (the judge was unavailable)"
            warnings.append(f"{self.id}: not scored under the official profile: {reason} (the authors grade every "
                            "answer with a judge); --profile vlmevalkit gives the rule-based figure")
            for w in warnings:
                ctx.warn(w)
            return TaskResult(task=self.id, profile="official", headline=Headline(self.headline[0], None, self.headline[1]),
                              metrics=metrics, n=len(done), status="not_scored", reason=reason,
                              reference=self.references["official"], warnings=warnings)
        overall = authors_rates(done)
        metrics["overall"] = overall
        metrics["category"] = {c: authors_rates([r for r in done if str(r["category"]) == c])
                               for c in sorted({str(r["category"]) for r in done})}
        # evaluation.py's "easy" / "hard" columns: question pairs over original (visual_input 0/1) or edited (2) figures
        for name, keep in (("easy", lambda r: r["visual_input"] != "2"), ("hard", lambda r: r["visual_input"] == "2")):
            part = [r for r in done if keep(r)]
            metrics[f"{name}_qAcc"] = authors_rates(part)["qAcc"] if part else None
        metrics["verdicts"] = {name: sum(1 for r in done if r.get("verdict") == code)
                               for name, code in (("correct", CORRECT), ("incorrect", INCORRECT), ("unclear", UNCLEAR))}
        for w in warnings:
            ctx.warn(w)
        return TaskResult(task=self.id, profile="official", headline=Headline(self.headline[0], _mean3(overall), self.headline[1]),
                          metrics=metrics, n=len(done), reference=self.references["official"], warnings=warnings)
