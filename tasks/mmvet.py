"""MM-Vet (218 open questions): an LLM grader scores each answer 0-1; headline = mean x 100 (percent).

Both profiles grade with an LLM and a few-shot table of
question | ground truth | prediction | correctness, where ``<AND>`` in the ground truth means every part is
needed and ``<OR>`` that any part suffices; the grader completes the last row with a number.  The table is
ours (same format and rules, our own rows).  They differ in how a reply is read and retried:
- ``official``: yuweihao/MM-Vet 7d717c2f mm-vet_evaluator.py, one run (its default ``num_run``): replies of
  at most 3 tokens, first word parsed, re-asked with a 'digit' request at rising temperature, 0.0 after five
  replies (see :func:`official_grade`); capabilities are the set named in the category.
- ``vlmevalkit``: VK e8e78f05 vlmeval/dataset/utils/mmvet.py ``MMVet_auxeval`` (five tries at temperature
  0.5 * i, the whole reply parsed, 0.0 after five failures) and ``MMVet_acc`` (capability by substring).

Without a judge the task is "not scored: needs a judge" (headline None, left out of averages, never 0).
A judge that stays down leaves its samples pending (also never 0).
Per capability (rec, ocr, know, gen, spat, math: a sample counts for each capability named in its
category) and per capability combination, as MMVet_acc reports them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

from unitoken_eval.harness.plugin import BenchmarkSize, Headline, Prediction, Sample, ScoreContext, TaskResult
from unitoken_eval.tasks.common.mcq_task import VK_COMMIT, VKTask

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
TRIES = 5
NEEDS_JUDGE = "needs a judge"
PENDING = "pending judge"

_GRADER_INTRO = (
    "Grade how correct an AI model's prediction is against the ground truth.\n"
    "In the ground truth, <AND> joins parts that must all appear in the prediction for it to be fully right; "
    "<OR> joins alternatives, any one of which makes it fully right.\n"
    "Give a correctness score from 0.0 (totally wrong) to 1.0 (totally right) in steps of 0.1: "
    "0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0.\n"
    "Fill in only the correctness of the last row.\n\n"
    "Question | Ground truth | Prediction | Correctness\n--- | --- | --- | ---\n"
)
_GRADER_ROWS = (
    ("Which two numbers solve the equation? | 2 <AND> 7 | 4 | 0.0"),
    ("Which two numbers solve the equation? | 2 <AND> 7 | 2 | 0.5"),
    ("Which two numbers solve the equation? | 2 <AND> 7 | 7, maybe also 3 | 0.5"),
    ("Which two numbers solve the equation? | 2 <AND> 7 | the solutions are 2 and 7 | 1.0"),
    ("What animal is shown? | dog <OR> puppy | a puppy on grass | 1.0"),
    ("Why is the cartoon funny? | The cat is scared of a tiny mouse while claiming to be the house's "
     "fearless guard, so its boast and its behaviour contradict each other. | "
     "The cartoon shows a cat and a mouse. | 0.3"),
    ("Why is the cartoon funny? | The cat is scared of a tiny mouse while claiming to be the house's "
     "fearless guard, so its boast and its behaviour contradict each other. | "
     "It is funny because the cat says it guards the house fearlessly, yet it runs from a small mouse: "
     "the boast is contradicted by what it does. | 1.0"),
)


def grader_prompt(question: str, answer: str, prediction: str) -> str:
    gt = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")  # spacing as VK's prompt builder does
    return _GRADER_INTRO + "\n".join(_GRADER_ROWS) + "\n" + " | ".join([question, gt, prediction, ""])


def parse_grade(text: Any) -> Optional[float]:
    """A score, or None.  Both upstreams accept what ``float()`` reads unless it is < 0 or > 1 (so 'nan' passes)."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return None if (v < 0 or v > 1) else v


OFFICIAL_SUFFIX = "\nPredict the correctness of the answer (digit): "
OFFICIAL_MAX_TOKENS = 3
OFFICIAL_MAX_TRIES = 5


def official_grade(judge: Any, prompt: str) -> tuple[float, int, bool]:
    """yuweihao/MM-Vet mm-vet_evaluator.py @ 7d717c2f (one run): the first reply at temperature 0; while its
    first space-separated word is not a score in [0, 1], ask again with a 'digit' request appended, the
    temperature starting at 0 and rising by 0.5 after each re-ask; when the count of replies passes five the
    sample gets 0.0 (that last reply is not read).  Returns (score, replies, fell_back)."""
    content = judge.complete(prompt, temperature=0.0, max_tokens=OFFICIAL_MAX_TOKENS)
    temperature, tries = 0.0, 1
    while True:
        grade = parse_grade(str(content).split(" ")[0].strip())
        if grade is not None:
            return grade, tries, False
        content = judge.complete(prompt + OFFICIAL_SUFFIX, temperature=temperature, max_tokens=OFFICIAL_MAX_TOKENS)
        tries += 1
        temperature += 0.5
        if tries > OFFICIAL_MAX_TRIES:
            return 0.0, tries, True


class MMVet(VKTask):
    id = "mmvet"
    tsv_name = "MMVet"
    split_name = "test"
    headline = ("score", "percent")
    _vk = f"VLMEvalKit {VK_COMMIT[:8]} MMVet.evaluate (MMVet_auxeval: 5 tries at temperature 0.5*i, 0.0 fallback; MMVet_acc)"
    references = {
        "official": "yuweihao/MM-Vet 7d717c2f mm-vet_evaluator.py (one run; 3-token replies, first word parsed, "
                    "'digit' re-ask at rising temperature, 0.0 after five replies; capability sets)",
        "vlmevalkit": _vk,
    }
    required_columns = ("index", "image", "question", "answer", "category")
    hf_default = "lmms-lab/MMVet"
    hf_index_column = None
    hf_mapping = {"question": "question", "answer": "answer", "category": "capability"}
    hf_split = "test"
    max_new_tokens = 512
    full_size = BenchmarkSize(218, answer_tokens=128)

    def filter_hf_row(self, row) -> bool:
        cap = row.fields.get("category")
        if isinstance(cap, (list, tuple)):
            row.fields["category"] = ",".join(str(c) for c in cap)
        return True

    def score(self, samples: list[Sample], predictions: dict[str, Prediction], ctx: ScoreContext):
        profile = self.profile(ctx.profile)
        todo = [s for s in samples if s.id in predictions]
        out: dict[str, dict[str, Any]] = {}
        for s in todo:
            out[s.id] = {"category": str(s.fields.get("category") or "")}
        if ctx.judge is None:
            for s in todo:
                out[s.id].update(score=None, status=NEEDS_JUDGE)
            return out
        from unitoken_eval.harness.plugin import JudgeUnavailable

        prompts = {s.id: grader_prompt(str(s.fields.get("question")), str(s.fields.get("answer")),
                                       self.text_of(predictions[s.id])) for s in todo}
        if profile == "official":
            return self._score_official(todo, prompts, ctx.judge, out)
        open_ids = [s.id for s in todo]
        logs: dict[str, list[str]] = defaultdict(list)
        for i in range(TRIES):  # try i for every sample still unresolved, in parallel
            if not open_ids:
                break
            replies = ctx.judge.complete_many([prompts[k] for k in open_ids], temperature=0.5 * i, max_tokens=2048,
                                              return_errors=True)
            still = []
            for k, rep in zip(open_ids, replies):
                if isinstance(rep, JudgeUnavailable):
                    out[k].update(score=None, status=PENDING)
                    continue
                grade = parse_grade(rep)
                if grade is None:
                    logs[k].append(f"try {i}: {rep[:80]!r} is not a score in [0, 1]")
                    still.append(k)
                else:
                    out[k].update(score=grade, tries=i + 1)
            open_ids = still
        for k in open_ids:
            out[k].update(score=0.0, tries=TRIES, fallback=True)  # VK: 'All 5 retries failed' -> 0.0
        for k, lines in logs.items():
            out[k]["log"] = lines
        return out

    def _score_official(self, todo: list[Sample], prompts: dict[str, str], judge: Any,
                        out: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from concurrent.futures import ThreadPoolExecutor

        from unitoken_eval.harness.plugin import JudgeUnavailable

        def one(k: str):
            try:
                return official_grade(judge, prompts[k])
            except JudgeUnavailable as exc:
                return exc

        keys = [s.id for s in todo]
        with ThreadPoolExecutor(max_workers=max(1, min(getattr(judge, "concurrency", 8), len(keys)))) as pool:
            results = list(pool.map(one, keys))
        for k, res in zip(keys, results):
            if isinstance(res, JudgeUnavailable):
                out[k].update(score=None, status=PENDING)
            else:
                grade, tries, fell_back = res
                out[k].update(score=grade, tries=tries)
                if fell_back:
                    out[k]["fallback"] = True
        return out

    def aggregate(self, records: dict[str, dict[str, Any]], ctx: ScoreContext) -> TaskResult:
        profile = self.profile(ctx.profile)
        done = {k: r for k, r in records.items() if r.get("score") is not None}
        need = sum(1 for r in records.values() if r.get("status") == NEEDS_JUDGE)
        pending = sum(1 for r in records.values() if r.get("status") == PENDING)
        cap: dict[str, list[float]] = defaultdict(list)
        combo: dict[str, list[float]] = defaultdict(list)
        for r in done.values():
            if profile == "official":  # capabilities are a set upstream
                caps = sorted({c.strip() for c in r["category"].split(",") if c.strip()})
                for c in caps:
                    cap[c].append(r["score"])
                combo["_".join(caps)].append(r["score"])
            else:
                for c in CAPABILITIES:
                    if c in r["category"]:  # VK tests substring membership
                        cap[c].append(r["score"])
                combo[r["category"].replace(",", "_")].append(r["score"])
        mean = (100.0 * sum(r["score"] for r in done.values()) / len(done)) if done else None
        metrics = {"per_capability": {c: 100.0 * sum(v) / len(v) for c, v in cap.items()},
                   "per_capability_combination": {c: 100.0 * sum(v) / len(v) for c, v in sorted(combo.items())},
                   "fallback_zero": sum(1 for r in done.values() if r.get("fallback")),
                   "pending_judge": pending, "judge": getattr(ctx.judge, "name", None), **self.base_metrics()}
        if need or pending:
            reason = NEEDS_JUDGE if need else f"{pending} samples pending judge (the judge was unavailable)"
            warning = (f"{self.id}: not scored: {reason}; left out of averages (not counted as 0)")
            ctx.warn(warning)
            if done:
                metrics["score_scored_samples"] = mean
            return self.not_scored(profile, reason, metrics=metrics, n=len(done), warnings=[warning])
        return TaskResult(task=self.id, profile=profile, headline=Headline(self.headline[0], mean, self.headline[1]),
                          metrics=metrics, n=len(done), reference=self.references[profile])
