"""CircularEval (MMBench): a question counts only if every rotated copy is answered right.

Upstream: open-compass/VLMEvalKit e8e78f05f3080fe28154f2130321f17951c3be94,
vlmeval/dataset/utils/multiple_choice.py ``mcq_circular_eval`` / ``prefetch_circular_group`` /
``eval_circular_group``.  Copies sit at ``index + k * 1e6`` and are grouped by ``index % 1e6``; only groups
whose main row (index < 1e6) is present are scored, and the result is keyed by the main index.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

OFFSET = 1_000_000


def group_of(index: Union[str, int]) -> int:
    """Main index of a row (VK: ``int(x % 1e6)``)."""
    return int(index) % OFFSET


def circular_groups(indices: list[str]) -> dict[str, list[str]]:
    """Main index -> its rows in ascending index order (VK sorts by index); groups without a main row dropped."""
    groups: dict[int, list[int]] = {}
    for s in indices:
        groups.setdefault(group_of(s), []).append(int(s))
    present = {int(s) for s in indices}
    return {str(g): [str(i) for i in sorted(members)] for g, members in sorted(groups.items()) if g in present}


def score_group(
    answers: list[str],
    prefetched: list[Union[str, bool]],
    resolve: Optional[Callable[[int], str]] = None,
) -> tuple[int, str]:
    """(hit, reason) for one group.

    ``prefetched[i]`` is ``can_infer`` of copy i (a letter, 'Z', or False).  A rule-matched wrong letter ends
    the group at 0; all matched and right gives 1; otherwise ``resolve(i)`` (the judge) settles the
    unmatched copies, and without a judge the group is 0 (VK's exact-matching policy).
    """
    for i, (gt, p) in enumerate(zip(answers, prefetched)):
        if p and p != gt:
            return 0, f"copy {i}: matched {p}, answer {gt}"
    if all(p == gt for gt, p in zip(answers, prefetched)):
        return 1, "all copies matched by rule"
    if resolve is None:
        return 0, "unmatched copy and no judge (exact matching)"
    for i, (gt, p) in enumerate(zip(answers, prefetched)):
        if not p:
            got = resolve(i)
            if got != gt:
                return 0, f"copy {i}: judge gave {got}, answer {gt}"
    return 1, "matched with judge"
