"""Yes/no answer parsing: VLMEvalKit's rule and MME's official rule (they disagree on purpose-built traps).

- VK: open-compass/VLMEvalKit e8e78f05f3080fe28154f2130321f17951c3be94, vlmeval/dataset/utils/yorn.py
  ``YOrN_Extraction`` with vlmeval/smp/misc.py ``process_punctuation``.
- MME: BradyFU/Awesome-Multimodal-Large-Language-Models Evaluation branch 1c1d69e1, tools/eval_tool.zip
  calculation.py ``calculate_metrics.parse_pred_ans`` applied to the lower-cased answer (``process_result``).
"""

from __future__ import annotations

import re
from typing import Any

_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_LONE_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def process_punctuation(text: str) -> str:
    """VK ``process_punctuation`` (smp/misc.py @ e8e78f05), quirks included.

    A mark is deleted when it touches a space anywhere in the ORIGINAL text (or the text has a digit,digit
    comma), otherwise replaced by a space; then periods not between digits are deleted - only the first 32,
    because upstream passes ``re.UNICODE`` (= 32) as ``sub``'s ``count``.
    """
    out = text
    has_digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _LONE_PERIOD.sub("", out, count=int(re.UNICODE))


def vk_yes_no(output: Any) -> str:
    """'Yes', 'No' or 'Unknown' as VK ``YOrN_Extraction``: exactly one of the words yes/no must appear."""
    words = process_punctuation(str(output).lower()).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    return "Unknown"


def mme_parse_pred_ans(pred: Any) -> str:
    """'yes', 'no' or 'other' as MME's official ``parse_pred_ans`` on the lower-cased answer.

    Only the first four characters are searched, "yes" before "no": "Not sure" -> 'no',
    "The answer is yes" -> 'other'.
    """
    low = str(pred).lower()
    if low in ("yes", "no"):
        return low
    head = low[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def judge_yes_no_prompt(question: Any, prediction: str) -> str:
    """Our wording of the opt-in judge request used when the rule gives 'Unknown'."""
    return (
        "Decide whether the answer below says Yes or No to the question. Reply with one word: Yes, No, or "
        f"Unknown if it says neither.\nQuestion: {question}\nAnswer: {prediction}\nReply:"
    )


def judge_yes_no(judge: Any, question: Any, prediction: str, tries: int = 5) -> str:
    """VK retries the judge 5 times (``YOrN_auxeval``); the reply is parsed with the same rule."""
    prompt = judge_yes_no_prompt(question, prediction)
    for _ in range(tries):
        got = vk_yes_no(judge.complete(prompt))
        if got != "Unknown":
            return got
    return "Unknown"
