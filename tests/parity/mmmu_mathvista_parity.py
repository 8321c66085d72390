"""Differential check of unitoken_eval.tasks.mmmu (official) and unitoken_eval.tasks.mathvista against the upstream functions (not a pytest test).

Upstream code is read from checkouts at run time, never copied into the project:
- MMMU-Benchmark/MMMU ``mmmu/utils/eval_utils.py`` (executed as a fresh module, so its import-time
  ``random.seed(42)`` applies), driven in main_parse_and_eval.py's order (subjects in CAT_SHORT2LONG order,
  samples by id number);
- lupantech/MathVista ``evaluation/calculate_score.py`` (``normalize_extracted_answer``, ``safe_equal``,
  ``get_most_similar`` with the real ``Levenshtein.distance``) and ``evaluation/extract_answer.py``
  (``extract_answer``'s rules, with a stand-in model that marks where the LLM would be asked);
- VLMEvalKit ``vlmeval/dataset/utils/mathvista.py`` ``post_check`` with ``vlmeval/utils/matching_util.py``
  ``can_infer``.
Random responses built from trap fragments (letters in prose, option texts, refusals, 1,000 / 1e3 / 3.50,
lists, units) are scored by both sides.

  pip install --target /tmp/levpkg Levenshtein
  PYTHONPATH=/tmp/levpkg python tests/parity/mmmu_mathvista_parity.py MMMU_CHECKOUT MATHVISTA_CHECKOUT VK_CHECKOUT [N]

Last run (MMMU bb0b95a9, MathVista 53d52587, VK e8e78f05): 20000 MMMU samples (per-sample parse and
correctness), 20000 MathVista responses (extract_answer.py's rules; the official comparison and VK's
post_check on both profiles): 0 differ.
"""

from __future__ import annotations

import ast
import importlib.util
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from unitoken_eval.harness.types import Sample  # noqa: E402
from unitoken_eval.tasks import mathvista as mv  # noqa: E402
from unitoken_eval.tasks.mmmu import SUBJECT_ORDER, MMMUVal  # noqa: E402

FRAGS = ["A", "B", "C", "D", "E", "(A)", "(B)", "(C)", "(D)", "a", "the", "answer", "is", "so", "therefore",
         "final", "=", "circle", "square", "big triangle", "1,000", "1e3", "3.50", "3.5", "0", "-2", "000", "12,345",
         "[1, 2]", "cm", "$", ".", ",", "!", "?", ";", ":", "'", "\n", "I cannot answer", "Sorry", "Blue", "blue",
         "result", "could be", ". The", "x = 3", "3/4", "0.25"]


NUMBER_TRAPS = [" 12 ", "1_000", "nan", "-inf", "+3", "3.0", "", " ", "0x10", "\u0663", "1e3", "3.50", "-0"]


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(FRAGS) for _ in range(rng.randint(0, 10)))


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mmmu(checkout: Path, n: int) -> int:
    up = load_module(checkout / "mmmu" / "utils" / "eval_utils.py", "mmmu_eval_utils_upstream")
    rng = random.Random(1)
    opts = ["circle", "square", "big triangle", "blue", "3.5", "1,000", "the"]
    samples, preds = [], {}
    for i in range(n):
        subj = rng.choice(SUBJECT_ORDER[:6])
        k = rng.randint(2, 5)
        is_open = rng.random() < 0.3
        f = {"id": f"validation_{subj}_{rng.randint(1, 10**6)}", "split": "validation", "category": subj,
             "question_type": "open" if is_open else "multiple-choice"}
        if is_open:
            f["answer"] = rng.choice(["1000", "0", "3.5", "blue", "3", "x", "12345", "-2"])
        else:
            for j, t in enumerate(rng.sample(opts, k)):
                f["ABCDE"[j]] = t
            f["answer"] = "ABCDE"[rng.randrange(k)]
        samples.append(Sample(id=str(i), fields=f))
        preds[str(i)] = text(rng)
    rng.shuffle(samples)
    from unitoken_eval.harness.types import Prediction
    ours = MMMUVal()._score_official(samples, {k: Prediction(sample_id=k, text=v) for k, v in preds.items()})
    order = {s: i for i, s in enumerate(SUBJECT_ORDER)}
    pos = {s.id: i for i, s in enumerate(samples)}
    visit = sorted(samples, key=lambda s: (order[s.fields["category"]], int(s.fields["id"].rsplit("_", 1)[1]), pos[s.id]))
    bad = 0
    for s in visit:
        f, resp = s.fields, preds[s.id]
        if f["question_type"] == "open":
            parsed = up.parse_open_response(resp)
            ok = up.eval_open(f["answer"], parsed)
            same = sorted(map(str, parsed)) == sorted(ours[s.id]["parsed"])
        else:
            index2ans = {c: f[c] for c in "ABCDE" if c in f}
            parsed = up.parse_multi_choice_response(resp, list(index2ans), index2ans)
            ok = up.eval_multi_choice(f["answer"], parsed)
            same = parsed == ours[s.id]["parsed"]
        if not same or int(ok) != ours[s.id]["score"]:
            bad += 1
            if bad < 5:
                print("MMMU differ:", repr(resp), f, parsed, ours[s.id])
    print(f"MMMU: {n} samples, {bad} differ")
    return bad


def mathvista(mv_checkout: Path, vk: Path, n: int) -> int:
    import types

    for name in ("rich", "rich.logging", "datasets", "pandas", "utilities"):
        m = types.ModuleType(name)
        m.RichHandler = object
        m.load_dataset = None
        m.read_json = m.save_json = None
        sys.modules.setdefault(name, m)
    up = load_module(mv_checkout / "evaluation" / "calculate_score.py", "mathvista_calculate_score_upstream")
    # extract_answer.py's imports that its rules do not use (the OpenAI client, the prompt, the GPT wrapper)
    for name in ("openai", "evaluation", "evaluation.prompts", "evaluation.prompts.ext_ans", "models"):
        m = types.ModuleType(name)
        m.AzureOpenAI, m.demo_prompt, m.gpt = object, "", None
        sys.modules.setdefault(name, m)
    upx = load_module(mv_checkout / "evaluation" / "extract_answer.py", "mathvista_extract_answer_upstream")
    judge_marker = "<judge>"

    class MarkerJudge:
        def get_response(self, user_prompt):
            return judge_marker
    ns: dict = {}
    src = (vk / "vlmeval" / "utils" / "matching_util.py").read_text()
    tree = ast.parse(src)
    keep = [x for x in tree.body if isinstance(x, (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Assign))
            and not (isinstance(x, ast.ImportFrom) and ((x.module or "").startswith("vlmeval") or x.level))]
    import logging
    ns["get_logger"] = logging.getLogger
    exec(compile(ast.Module(body=keep, type_ignores=[]), "matching_util.py", "exec"), ns)
    tree = ast.parse((vk / "vlmeval" / "dataset" / "utils" / "mathvista.py").read_text())
    keep = [x for x in tree.body if isinstance(x, ast.FunctionDef) and x.name in ("post_check", "list_to_dict")]
    exec(compile(ast.Module(body=keep, type_ignores=[]), "mathvista.py", "exec"), ns)
    rng = random.Random(2)
    bad = 0
    for i in range(n):
        kind = rng.choice(["mc", "integer", "float", "list"])
        if kind == "mc":
            choices = rng.sample(["circle", "square", "big triangle", "blue", "3.5", "1,000"], rng.randint(2, 5))
            g = rng.randrange(len(choices))
            f = {"question_type": "multi_choice", "answer_type": "text", "answer": choices[g],
                 "answer_option": "ABCDE"[g], "choices": repr(choices), "precision": None}
        elif kind == "integer":
            choices, f = [], {"question_type": "free_form", "answer_type": "integer",
                              "answer": rng.choice(["1000", "0", "3", "-2", "12345"]), "precision": None}
        elif kind == "float":
            choices, f = [], {"question_type": "free_form", "answer_type": "float",
                              "answer": rng.choice(["3.5", "0.25", "1.0", "3.14"]), "precision": rng.choice([1.0, 2.0])}
        else:
            choices, f = [], {"question_type": "free_form", "answer_type": "list", "answer": "[1, 2]", "precision": None}
        resp = rng.choice([text(rng), rng.choice(FRAGS), rng.choice(FRAGS) + " " + rng.choice(FRAGS),
                           rng.choice(NUMBER_TRAPS)] + ([rng.choice(choices)] if choices else []))
        # official rules before the judge: extract_answer.py's extract_answer (the judge marked) vs ours
        up_rule = upx.extract_answer(MarkerJudge(), resp, {"question_type": f["question_type"], "pid": str(i),
                                                           "answer_type": f["answer_type"], "query": "q",
                                                           "choices": choices or None})
        our_rule = mv.official_rule_extraction(resp, f["question_type"], f["answer_type"], choices)
        if (None if up_rule == judge_marker else up_rule) != our_rule:
            bad += 1
            if bad < 5:
                print("MathVista rule differ:", repr(resp), f, up_rule, our_rule)
        # official comparison
        try:
            up_norm = up.normalize_extracted_answer(resp, choices, f["question_type"], f["answer_type"], f["precision"])
            up_ok = up.safe_equal(up_norm, f["answer"])
        except Exception as exc:  # noqa: BLE001 - upstream raising counts as a difference to report
            up_norm, up_ok = f"raised {exc!r}", None
        our_norm = mv.normalize_extracted_answer(resp, choices, f["question_type"], f["answer_type"], f["precision"])
        our_ok = our_norm == f["answer"]
        # VK post_check, prefetch and final
        line = dict(f, prediction=resp, res=resp)
        vk_pre = ns["post_check"](line, prefetch=True)
        vk_fin = ns["post_check"](line, prefetch=False)
        our_pre = mv.vk_post_check(f, resp, choices, prefetch=True)
        our_fin = mv.vk_post_check(f, resp, choices, prefetch=False)
        if up_norm != our_norm or up_ok != our_ok or vk_pre != our_pre or bool(vk_fin) != bool(our_fin) \
                or type(vk_pre) is not type(our_pre):
            bad += 1
            if bad < 5:
                print("MathVista differ:", repr(resp), f, (up_norm, our_norm), (vk_pre, our_pre), (vk_fin, our_fin))
    print(f"MathVista: {n} extractions, {bad} differ")
    return bad


def main() -> int:
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
    bad = mmmu(Path(sys.argv[1]), n) + mathvista(Path(sys.argv[2]), Path(sys.argv[3]), n)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
