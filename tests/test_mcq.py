"""VK MCQ matching and prompt, expectations worked out by hand from VLMEvalKit e8e78f05 source.

can_infer / can_infer_option / can_infer_text: vlmeval/utils/matching_util.py @ e8e78f05f3080fe28154f2130321f17951c3be94
build_prompt: vlmeval/dataset/image_mcq.py ImageMCQDataset.build_prompt @ e8e78f05
extract_answer_from_item (model=None -> 'Z'): vlmeval/dataset/utils/multiple_choice.py @ e8e78f05
"""

import pytest

from unitoken_eval.tasks.common import circular, mcq

SHAPES = {"A": "circle", "B": "square", "C": "triangle", "D": "star"}
CN = {"A": "圆形", "B": "正方形", "C": "三角形", "D": "星形"}


@pytest.mark.parametrize("pred, expected, why", [
    ("A", "A", "lone letter"),
    ("(B)", "B", "brackets are blanked"),
    ("**C**", "C", "markdown stars are blanked"),
    ("B. square", "B", "letter then text"),
    ("The answer is B.", "B", "one letter among the last five tokens"),
    ("A circle.", "A", "article 'A' counts as option A (only letter, near the end)"),
    ("A circle is shown, so the answer is C", "C", "two letters -> 'answer is X' regex"),
    ("the answer is a cat", "A", "regex is case-insensitive: 'a' -> A"),
    ("B is correct because the shape drawn in the middle has four equal sides", "Z",
     "letter not among last 5 tokens and answer longer than 2x option text"),
    ("C, because triangles have three sides and three corners", "Z", "same: too far from the end, too long"),
    ("triangle", "C", "option text only"),
    ("It's a star", "D", "option text inside a short answer"),
    ("circle or square", "Z", "two option texts -> ambiguous"),
    ("A or B", "Z", "two letters, no 'answer is'"),
    ("b", "Z", "lower-case letter is not a token match and not an option text"),
    ("E", "Z", "letter outside the choices"),
    ("Z", "Z", "explicit Z"),
    ("Sorry, I can't help with images of people yet.", "Z", "VK refusal phrase"),
    ("Cannot determine the answer", "Z", "VK refusal phrase"),
    ("Failed to obtain answer via API", "Z", "API failure -> option False, no option text"),
    ("Failed to obtain answer via API. star", "D", "API failure skips letters but text matching still runs"),
    ("", "Z", "empty prediction"),
])
def test_can_infer_english(pred, expected, why):
    assert mcq.match_exact(pred, SHAPES) == expected, why


@pytest.mark.parametrize("pred, expected, why", [
    ("答案是B。", "Z", "full-width punctuation is not blanked: 'B。' is no token"),
    ("（B）", "Z", "full-width brackets are not blanked"),
    ("B：正方形", "B", "falls to option text 正方形"),
    ("B", "B", "plain letter"),
    ("星形", "D", "option text only"),
])
def test_can_infer_chinese(pred, expected, why):
    assert mcq.match_exact(pred, CN) == expected, why


def test_can_infer_numeric_options_and_refusal_returns():
    nums = {"A": 3, "B": 8}
    assert mcq.match_exact("8", nums) == "B"          # str(8) found in the answer
    assert mcq.match_exact("38", nums) == "Z"         # both option texts occur
    assert mcq.can_infer_option("Failed to obtain answer via API", SHAPES) is False
    assert mcq.can_infer_option("Cannot determine the answer", SHAPES) == "Z"
    assert mcq.can_infer_text("x" * 49, SHAPES) is False  # longer than 2 * 24 option chars


def test_verbose_env_switch(monkeypatch):
    # matching_util.can_infer_option: with VERBOSE set, 'A' among >3 tokens makes the rule give up.
    monkeypatch.setenv("VERBOSE", "1")
    assert mcq.can_infer_option("A circle is drawn", SHAPES) is False
    monkeypatch.delenv("VERBOSE")
    assert mcq.can_infer_option("A circle is drawn", SHAPES) == "A"


def test_prompt_matches_vk_build_prompt():
    fields = {"question": "What is it?", "hint": "Look closely.", "A": "cat", "B": "dog", "C": None, "D": None}
    assert mcq.mcq_prompt(fields) == (
        "Hint: Look closely.\nQuestion: What is it?\nOptions:\nA. cat\nB. dog\n"
        "Please select the correct answer from the options above. \n")
    assert mcq.mcq_prompt({"question": "Q?"}) == "Question: Q?\n"
    custom = mcq.mcq_prompt({"question": "Q?", "A": "x"}, "Answer with the option's letter from the given choices directly.")
    assert custom.endswith("A. x\nAnswer with the option's letter from the given choices directly.")


class FakeJudge:
    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []

    def complete(self, prompt):
        self.prompts.append(prompt)
        return self.replies.pop(0)


def test_judge_extract_retries_then_z():
    j = FakeJudge(["no idea", "hmm", "still no"])
    assert mcq.judge_extract(j, "q", SHAPES, "something") == "Z" and len(j.prompts) == 3
    j = FakeJudge(["maybe", "C"])
    assert mcq.judge_extract(j, "q", SHAPES, "something") == "C"


def test_circular_grouping_and_rules():
    # mcq_circular_eval / prefetch_circular_group / eval_circular_group @ e8e78f05
    groups = circular.circular_groups(["2000001", "1", "1000001", "2", "3000001", "1000005"])
    assert groups == {"1": ["1", "1000001", "2000001", "3000001"], "2": ["2"]}  # 5 has no main row: dropped
    assert circular.score_group(["A", "D"], ["A", "D"]) == (1, "all copies matched by rule")
    assert circular.score_group(["A", "D"], ["A", "Z"])[0] == 0          # 'Z' is a matched wrong answer
    assert circular.score_group(["A", "D"], [False, "D"])[0] == 0        # unmatched, no judge
    called = []
    assert circular.score_group(["A", "D"], [False, "D"], lambda i: called.append(i) or "A")[0] == 1
    assert called == [0]
    called.clear()
    # a rule-matched wrong copy ends the group before any judge call
    assert circular.score_group(["A", "D", "C"], [False, "B", False], lambda i: called.append(i) or "A")[0] == 0
    assert called == []
