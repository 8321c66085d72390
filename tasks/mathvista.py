"""MathVista testmini (1,000 problems): headline accuracy in percent, per task and per skill.

Scoring has two steps, extraction then comparison; each profile follows its reference end to end.
- ``official``: lupantech/MathVista 53d52587.  Extraction as evaluation/extract_answer.py does it (with
  ``quick_extract`` off, its default): an empty response extracts as ''; a multiple-choice response that is
  exactly one of the choices, an integer answer that ``int()`` parses, a float answer that ``float()`` parses
  are taken by rule; everything else goes to the LLM judge.  Comparison as evaluation/calculate_score.py:
  ``normalize_extracted_answer`` (option letter or closest choice by edit distance; int / float rounded to
  ``precision`` / str for lists) then ``safe_equal`` against the gold answer text.
- ``vlmevalkit``: VK e8e78f05 (vlmeval/dataset/utils/mathvista.py ``MathVista_auxeval``): rules on the raw
  prediction first (``post_check(prefetch=True)``: the option letter ``can_infer`` finds, or an integer /
  float that parses and equals the gold), else the judge; comparison by
  ``post_check(prefetch=False)`` (option letter via ``can_infer``; ``int(x) == int(gold)``;
  ``float(x) == float(gold)``; free-form text and list answers never match there, a quirk kept on purpose).

The judge prompt re-expresses the extraction prompt both references share (an instruction, five worked
examples, then the problem).  Without a judge the raw prediction stands in for the extraction the rules did
not settle, and the results say so; a judge that stays down leaves the sample pending.

An extraction already made (MathVista's own output files, ``results/<model>/output_*.json``, carry one per
problem; our predictions lines may carry ``extraction``) is scored as given, with no rules and no judge.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskError, TaskResult
from unitoken_eval.tasks.common import mcq
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, VKTask, mean100

MATHVISTA_COMMIT = "53d525874bdde205128e6b160b7357a88277d479"
PENDING = "pending judge"

# Our wording of VK's extraction prompt (build_mathvista_gpt4_prompt / get_gpt4_ICE): an instruction, five
# worked examples (integer, one-decimal float, two-decimal float, list, option letter), then the problem.
_EXTRACT_INTRO = ("Below are worked examples of pulling the final answer out of a model's response.\n"
                  "Do the same for the last response and write only the extracted answer after the final "
                  "'Extracted answer:'.\n")
_EXTRACT_EXAMPLES = (
    ("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
     "at the end.\nQuestion: How many apples are left on the table?",
     "After two are eaten, 9 apples remain on the table.", "9"),
    ("Hint: Please answer the question requiring a floating-point number with one decimal place and provide the "
     "final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What share of the circles is shaded?",
     "Three of the five circles are shaded, so the share is 0.6.", "0.6"),
    ("Hint: Please answer the question requiring a floating-point number with two decimal places and provide the "
     "final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How much do a pen and a ruler cost together? "
     "(Unit: $)", "Together they cost $2.35.", "2.35"),
    ("Hint: Please answer the question requiring a Python list as an answer and provide the final list, "
     "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: In which two years was rainfall highest?",
     "Rainfall peaked in 1998 and again in 2004.", "[1998, 2004]"),
    ("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
     "Question: Which fraction of the bar is red?\nChoices: (A) 1/4 (B) 2/5 (C) 3/8 (D) 1/2",
     "The red part is (C) 3/8 of the bar.", "C"),
)


def extraction_prompt(question: str, prediction: str) -> str:
    parts = [_EXTRACT_INTRO]
    for q, resp, ans in _EXTRACT_EXAMPLES:
        parts.append(f"\n{q}\nModel response: {resp}\nExtracted answer: {ans}\n")
    parts.append(f"\n{question}\nModel response: {prediction}\nExtracted answer:")
    return "".join(parts)


def parse_list_cell(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    try:
        out = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        raise TaskError(f"{where}: {str(value)[:60]!r} is not a list literal") from None
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalize_extracted_answer(extraction: Any, choices: list[Any], question_type: str, answer_type: str,
                               precision: Any) -> Optional[str]:
    """calculate_score.py ``normalize_extracted_answer`` @ 53d52587 (ignore_empty_extractions off, the default)."""
    if question_type == "multi_choice":
        text = extraction.strip() if isinstance(extraction, str) else str(extraction)
        letters = re.findall(r"\(([a-zA-Z])\)", text)
        if letters:
            text = letters[0].upper()
        seq = [chr(ord("A") + i) for i in range(len(choices))]
        if text in seq:
            return choices[seq.index(text)]
        dists = [_edit_distance(text, str(c)) for c in choices]
        return choices[dists.index(min(dists))]
    if answer_type == "integer":
        try:
            return str(int(float(extraction)))
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "float":
        try:
            return str(round(float(extraction), int(float(precision))))
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "list":
        return str(extraction)
    return None  # upstream leaves the name unbound (free-form text does not occur in testmini)


def official_rule_extraction(response: str, question_type: Any, answer_type: Any, choices: list[Any]) -> Optional[str]:
    """extract_answer.py ``extract_answer`` before its LLM call (quick_extract off); None: the judge extracts."""
    if response == "":
        return ""
    if question_type == "multi_choice" and response in choices:
        return response
    if answer_type == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if answer_type == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    return None


def _as_number_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def vk_post_check(fields: dict[str, Any], response: Any, choices: list[Any], prefetch: bool) -> Any:
    """VK ``post_check``: the matched value when ``response`` equals the gold answer, else False."""
    qt, at = fields.get("question_type"), fields.get("answer_type")
    ans: Any = fields.get("answer")
    res: Any = None
    try:
        if qt == "multi_choice":
            ans = fields.get("answer_option")
            res = mcq.can_infer(response, {chr(65 + i): v for i, v in enumerate(choices)})
            if prefetch:
                return res
        elif at == "integer":
            res = int(response)
            ans = int(_as_number_text(ans))
        elif at == "float":
            res = float(response)
            ans = float(ans)
        else:
            res, ans = str(res), str(ans)  # upstream stringifies None here: text/list never match
    except (ValueError, TypeError):
        pass
    if res == ans:
        return res if prefetch else True
    return False


class MathVistaTestmini(VKTask):
    id = "mathvista_testmini"
    stratum_field = "task"  # MathVista's five task types (figure QA, geometry, math word problems, ...)
    tsv_name = "MathVista_MINI"
    split_name = "testmini"
    headline = ("accuracy", "percent")
    references = {
        "official": f"lupantech/MathVista {MATHVISTA_COMMIT[:8]} evaluation/extract_answer.py (rules, then the "
                    f"judge) and evaluation/calculate_score.py (normalize_extracted_answer + safe_equal)",
        "vlmevalkit": f"VLMEvalKit {VK_COMMIT[:8]} MathVista.evaluate_heuristic (MathVista_auxeval, post_check, "
                      f"MathVista_acc)",
    }
    required_columns = ("index", "image", "question", "answer", "question_type", "answer_type")
    hf_default = "AI4Math/MathVista"
    hf_split = "testmini"
    hf_index_column = "pid"
    hf_mapping = {
        "question": "query", "answer": "answer", "question_type": "question_type", "answer_type": "answer_type",
        "precision": "precision", "unit": "unit",
        "choices": lambda r: repr(list(r["choices"])) if r.get("choices") else None,
        "answer_option": lambda r: (chr(65 + list(r["choices"]).index(r["answer"]))
                                    if r.get("choices") and r.get("answer") in list(r["choices"]) else None),
        "task": lambda r: (r.get("metadata") or {}).get("task"),
        "skills": lambda r: repr(list((r.get("metadata") or {}).get("skills") or [])),
    }
    hf_image_column = "decoded_image"
    max_new_tokens = 512
    full_size = BenchmarkSize(1000, answer_tokens=64)

    # ----- scoring
    def _choices(self, s: Sample) -> list[Any]:
        return parse_list_cell(s.fields.get("choices"), f"{self.data_path}: index {s.id} choices")

    def read_native_predictions(self, path: Path) -> Optional[dict[str, Prediction]]:
        """MathVista's own output file: a JSON object pid -> problem with ``response`` (and ``extraction``)."""
        if path.suffix.lower() != ".json":
            return None
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(obj, dict) or not obj or \
                not all(isinstance(v, dict) and "response" in v for v in obj.values()):
            return None
        out: dict[str, Prediction] = {}
        for pid, problem in obj.items():
            where = f"{path}: problem {pid!r}"
            response = problem["response"]
            if not isinstance(response, str):
                out[str(pid)] = Prediction(sample_id=str(pid), error=self.tolerate(
                    f"{where}: 'response' must be a string, not {type(response).__name__}"))
                continue
            meta = {"extraction": problem["extraction"]} if "extraction" in problem else {}
            out[str(pid)] = Prediction(sample_id=str(pid), text=response, meta=meta)
        return out

    def _extract(self, profile: str, s: Sample, pred: Prediction, choices: list[Any]) -> tuple[Any, str]:
        """(extraction, how) by the profile's rules; (None, '') when the judge must extract."""
        if "extraction" in pred.meta:
            return pred.meta["extraction"], "given"
        text = self.text_of(pred)
        if profile == "official":
            ruled = official_rule_extraction(text, s.fields.get("question_type"), s.fields.get("answer_type"), choices)
            return (ruled, "rule") if ruled is not None else (None, "")
        pre = vk_post_check(s.fields, text, choices, prefetch=True)
        return (pre, "prefetch") if pre else (None, "")  # upstream tests truthiness: a prefetched 0 goes on

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        profile = self.profile(ctx.profile)
        samples = self.profile_view([s for s in samples if s.id in predictions], profile)
        judge = ctx.judge
        todo: list[tuple[Sample, str]] = []
        extraction: dict[str, tuple[Any, str]] = {}
        for s in samples:
            ext, how = self._extract(profile, s, predictions[s.id], self._choices(s))
            if how:
                extraction[s.id] = (ext, how)
            elif judge is None:
                extraction[s.id] = (self.text_of(predictions[s.id]), "raw prediction (no judge)")
            else:
                todo.append((s, self.text_of(predictions[s.id])))
        if todo:
            from unitoken_eval.harness.plugin import JudgeUnavailable

            prompts = [extraction_prompt(str(s.fields.get("question")), t) for s, t in todo]
            replies = judge.complete_many(prompts, temperature=0.0, max_tokens=128, return_errors=True)
            for (s, _), rep in zip(todo, replies):
                extraction[s.id] = (None, PENDING) if isinstance(rep, JudgeUnavailable) else (rep.strip(), "judge")
        out: dict[str, dict[str, Any]] = {}
        for s in samples:
            ext, how = extraction[s.id]
            rec: dict[str, Any] = {"extraction": None if ext is None else str(ext), "extracted_by": how,
                                   "task": s.fields.get("task"), "skills": self._skills(s),
                                   "question_type": s.fields.get("question_type"),
                                   "answer_type": s.fields.get("answer_type")}
            if how == PENDING:
                rec.update(score=None, status=PENDING)
            elif profile == "official":
                norm = normalize_extracted_answer(ext, self._choices(s), str(s.fields.get("question_type")),
                                                  str(s.fields.get("answer_type")), s.fields.get("precision"))
                rec["normalized"] = norm
                rec["score"] = int(norm == _as_number_text(s.fields.get("answer")))  # safe_equal
            else:
                rec["score"] = int(bool(vk_post_check(s.fields, ext, self._choices(s), prefetch=False)))
            out[s.id] = rec
        return out

    def _skills(self, s: Sample) -> list[str]:
        raw = s.fields.get("skills")
        try:
            return [str(x) for x in parse_list_cell(raw, "")]
        except TaskError:
            return [str(raw)]  # VK: a cell that is not a list literal is one skill

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        done = {k: r for k, r in records.items() if r.get("score") is not None}
        pending = len(records) - len(done)
        by_task: dict[str, list[int]] = defaultdict(list)
        by_skill: dict[str, list[int]] = defaultdict(list)
        by_how: dict[str, int] = defaultdict(int)
        for r in done.values():
            by_task[str(r.get("task"))].append(r["score"])
            for sk in r.get("skills") or []:
                by_skill[sk].append(r["score"])
            by_how[r["extracted_by"]] += 1
        acc = mean100([r["score"] for r in done.values()])
        metrics = {"accuracy_scored_samples": acc, "per_task": {k: mean100(v) for k, v in sorted(by_task.items())},
                   "per_skill": {k: mean100(v) for k, v in sorted(by_skill.items())},
                   "extracted_by": dict(sorted(by_how.items())), "pending_judge": pending,
                   "judge": getattr(ctx.judge, "name", None), **self.base_metrics()}
        warnings: list[str] = []
        if by_how.get("raw prediction (no judge)"):
            warnings.append(f"{self.id}: no judge given: {by_how['raw prediction (no judge)']} raw predictions were "
                            f"used as the extraction (the reference extracts them with an LLM)")
        for w in warnings:
            ctx.warn(w)
        if pending:
            return self.not_scored(profile, f"{pending} samples pending judge (the judge was unavailable)",
                                   metrics=metrics, n=len(done), warnings=warnings)
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], acc, self.headline[1]),
                          metrics=metrics, n=len(done), reference=self.references[profile], warnings=warnings)
