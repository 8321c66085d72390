"""Load a scorer's model (GenEval's CLIP, T2I-CompBench++'s BLIP / CLIP / DPT) from the hub or a local copy.

One convention for every scorer: a download is announced before it starts (unitoken_eval.harness.remote), and weights that
cannot be loaded raise :class:`ScorerUnavailable` naming the model, the reason and the task option that
points at a local copy, so the task is reported "not scored" with that reason, never scored as zero.
"""

from __future__ import annotations

from typing import Any, Callable

from unitoken_eval.harness.plugin import NotScored
from unitoken_eval.harness.remote import announce_if_remote


class ScorerUnavailable(NotScored):
    """A scorer's weights or code cannot be loaded; the task reports "not scored" with this message."""


def load_pretrained(what: str, model_id: str, option: str, default: str,
                    *loaders: Callable[[str], Any]) -> tuple[Any, ...]:
    """Each ``loader(model_id)`` (a ``from_pretrained``), after announcing a remote download of ``what``.

    ``option`` is the task option that takes a local copy and ``default`` the hub id used when none is given.
    """
    announce_if_remote(model_id, what)
    try:
        return tuple(load(model_id) for load in loaders)
    except OSError as exc:
        raise ScorerUnavailable(
            f"{what} {model_id!r} cannot be loaded ({str(exc).splitlines()[0]}); give a local copy of {default} "
            f"with the task option {option}=PATH"
        ) from None
