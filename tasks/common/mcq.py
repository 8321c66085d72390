"""Multiple-choice prompts and answer matching as VLMEvalKit main does them (commit e8e78f05).

Upstream: open-compass/VLMEvalKit e8e78f05f3080fe28154f2130321f17951c3be94,
``vlmeval/utils/matching_util.py`` (can_infer_option, can_infer_text, can_infer) and
``vlmeval/dataset/image_mcq.py`` (ImageMCQDataset.build_prompt), ``vlmeval/dataset/utils/multiple_choice.py``
(build_choices, extract_answer_from_item).  Re-implemented from reading; the quirks are kept on purpose
because they decide scores (see each docstring).
"""

from __future__ import annotations

import os
import re
import string
from typing import Any, Mapping, Optional, Union

UNMATCHED = "Z"

# Phrases after which VK counts the answer as a refusal ('Z').
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_API_FAILURE = "Failed to obtain answer via API"
_STRIPPED_CHARS = ".()[],:;!*#{}"
# Case-insensitive: "the answer is a cat" yields 'A' upstream too.
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def build_choices(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Option letter -> option text for every non-missing single-letter column, in A..Z order.

    VK ``build_choices`` (multiple_choice.py @ e8e78f05).
    """
    return {ch: fields[ch] for ch in string.ascii_uppercase if fields.get(ch) is not None}


def can_infer_option(answer: str, choices: Mapping[str, Any]) -> Union[str, bool]:
    """A letter, 'Z' (refusal / explicit Z) or False.  VK ``can_infer_option`` (matching_util.py @ e8e78f05).

    The letter must be the only option letter among the whitespace tokens (after blanking ``.()[],:;!*#{}``)
    and sit among the last five tokens; otherwise "answer is X" (case-insensitive, A-D only) is tried.
    VK's VERBOSE environment switch changes a branch upstream, so it is honoured here as well.
    """
    if _API_FAILURE in answer:
        return False
    for phrase in _REFUSALS:
        if phrase in answer:
            return UNMATCHED
    text = answer
    for c in _STRIPPED_CHARS:
        text = text.replace(c, " ")
    tokens = text.split()
    token_set = set(tokens)
    present = [c for c in choices if c in token_set]
    if len(present) == 1:
        verbose = os.environ.get("VERBOSE", 0)
        for ch in choices:
            if "A" in token_set and len(tokens) > 3 and verbose:
                return False
            if ch in token_set and tokens.index(ch) > len(tokens) - 5:
                return ch
    elif not present and "Z" in token_set:
        return UNMATCHED
    m = _ANSWER_IS.search(answer or "")
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    return False


def can_infer_text(answer: str, choices: Mapping[str, Any]) -> Union[str, bool]:
    """The one option whose (lower-cased) text occurs in the answer, else False.

    VK ``can_infer_text`` (matching_util.py @ e8e78f05): answers longer than twice the total option length
    are not searched at all.
    """
    low = answer.lower()
    if len(low) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    hits = [k for k, v in choices.items() if str(v).lower() in low]
    return hits[0] if len(hits) == 1 else False


def can_infer(answer: Any, choices: Mapping[str, Any]) -> Union[str, bool]:
    """VK ``can_infer`` (matching_util.py @ e8e78f05): option letter first, then option text."""
    answer = str(answer)
    opt = can_infer_option(answer, choices)
    return opt if opt else can_infer_text(answer, choices)


def match_exact(prediction: Any, choices: Mapping[str, Any]) -> str:
    """VK's ``exact_matching`` policy: the inferred letter, or 'Z' (always wrong) when nothing matches.

    (extract_answer_from_item in multiple_choice.py @ e8e78f05 with model=None.)
    """
    got = can_infer(prediction, choices)
    return got if got else UNMATCHED


def mcq_prompt(fields: Mapping[str, Any], instruction: Optional[str] = None) -> str:
    """The prompt of VK ``ImageMCQDataset.build_prompt`` (image_mcq.py @ e8e78f05).

    ``Hint: ...`` (when present), ``Question: ...``, ``Options:`` with ``X. text`` lines, then VK's default
    instruction line.  ``instruction`` replaces that line (per-model override, e.g. LLaVA's
    "Answer with the option's letter from the given choices directly.").
    """
    choices = build_choices(fields)
    parts = []
    hint = fields.get("hint")
    if hint is not None:
        parts.append(f"Hint: {hint}\n")
    parts.append(f"Question: {fields.get('question')}\n")
    if choices:
        parts.append("Options:\n")
        parts.extend(f"{k}. {v}\n" for k, v in choices.items())
        parts.append(VK_MCQ_INSTRUCTION if instruction is None else instruction)
    return "".join(parts)


# VK's default closing line (trailing space and newline included: it is part of the prompt upstream).
VK_MCQ_INSTRUCTION = "Please select the correct answer from the options above. \n"


def judge_match_prompt(question: Any, choices: Mapping[str, Any], prediction: str) -> str:
    """Our own wording of the judge request VK sends when rules fail (opt-in fallback only)."""
    opts = " ".join(f"{k}. {v}" for k, v in choices.items())
    letters = ", ".join(choices)
    return (
        "Match a model's answer to one option of a single-choice question. Reply with one uppercase letter "
        f"among {letters}, or Z when the answer matches none of them.\n"
        f"Question: {question}\nOptions: {opts}\nAnswer: {prediction}\nLetter:"
    )


def judge_extract(judge: Any, question: Any, choices: Mapping[str, Any], prediction: str, tries: int = 3) -> str:
    """Ask the judge up to ``tries`` times (as VK retries 3 times); 'Z' if it never yields a usable letter.

    VK draws a random letter after three failures; that is not reproducible, so we count it wrong instead.
    """
    prompt = judge_match_prompt(question, choices, prediction)
    for _ in range(tries):
        out = judge.complete(prompt)
        got = can_infer(str(out), choices)
        if got:
            return got
    return UNMATCHED
