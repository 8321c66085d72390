"""Yes/no parsing: VK YOrN_Extraction + process_punctuation (vlmeval/dataset/utils/yorn.py, vlmeval/smp/misc.py
@ e8e78f05f3080fe28154f2130321f17951c3be94) and MME's calculation.py parse_pred_ans (on lower-cased text).
Expectations derived by hand from those functions."""

import pytest

from unitoken_eval.tasks.common.yesno import mme_parse_pred_ans, process_punctuation, vk_yes_no


@pytest.mark.parametrize("pred, expected", [
    ("Yes", "Yes"),
    ("YES!", "Yes"),                      # '!' -> space
    ("No.", "No"),                        # lone period removed
    ("Yes, it is.", "Yes"),
    ("There is no cat in the image.", "No"),
    ("yes/no", "Unknown"),                # '/' -> space: both words
    ("Yes-no", "Unknown"),
    ("yes.no", "Unknown"),                # period between letters deleted: 'yesno'
    ("yes,no", "Unknown"),                # ',' touches no space -> replaced by a space: both words
    ("Yes, 1,000 people", "Yes"),         # digit,digit comma: punctuation deleted, not spaced
    ("Not at all", "Unknown"),            # 'not' is not 'no'
    ("I don't know", "Unknown"),
    ("是的", "Unknown"),
    ("No" + "." * 32, "No"),              # all 32 periods stripped
    ("No" + "." * 40, "Unknown"),         # upstream passes re.UNICODE (32) as sub's count: 8 periods stay
    ("", "Unknown"),
])
def test_vk_yes_no(pred, expected):
    assert vk_yes_no(pred) == expected


def test_process_punctuation_checks_original_text():
    # ';' touches a space in the original -> deleted; '(' does not -> replaced by a space
    assert process_punctuation("a ; b(c") == "a  b c"


@pytest.mark.parametrize("pred, expected", [
    ("Yes", "yes"),
    ("No.", "no"),
    ("Not sure", "no"),                   # 'no' inside the first four characters
    ("nope", "no"),
    ("know", "no"),
    ("The answer is yes", "other"),       # only the first four characters are searched
    ("  yes", "other"),                   # leading spaces push 'yes' out of the window
    ("yes and no", "yes"),                # 'yes' is tried first
    ("I don't know", "other"),
    ("Yes\n", "yes"),
])
def test_mme_parse_pred_ans(pred, expected):
    assert mme_parse_pred_ans(pred) == expected
