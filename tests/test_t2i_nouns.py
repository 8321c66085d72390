"""Noun rules of T2I-CompBench++ on given tokens (no spaCy needed), and on spaCy's en_core_web_sm when it is
installed.  Upstream: UniDet_eval/2D_spatial_eval.py (first/last NOUN; --complex preposition search),
CLIPScore_eval/CLIP_similarity.py (--complex drops ADJ), BLIPvqa_eval/BLIP_vqa.py (noun chunks) @1b70949."""

import pytest

from unitoken_eval.tasks.t2i_compbench import nouns
from unitoken_eval.tasks.t2i_compbench.nouns import Tok


def toks(spec: str) -> list[Tok]:
    """'The/DET red/ADJ hat/NOUN' -> tokens separated by one space."""
    out = [Tok(*w.rsplit("/", 1), " ") for w in spec.split()]
    return out


def test_first_last_noun():
    assert nouns.first_last_noun(toks("a/DET girl/NOUN on/ADP the/DET top/NOUN of/ADP a/DET frog/NOUN")) == ("girl", "frog")
    assert nouns.first_last_noun(toks("Bob/PROPN runs/VERB")) == (None, None)


def test_span_text_keeps_the_original_spacing():
    t = [Tok("on", "ADP", " "), Tok("top", "NOUN", " "), Tok("of", "ADP", " ")]
    assert nouns.span_text(t) == "on top of"
    assert nouns.span_text([Tok("next", "ADV", ""), Tok("to", "ADP", " ")]) == "nextto"


def test_complex_objects_around_prepositions():
    t = toks("The/DET red/ADJ hat/NOUN was/AUX on/ADP top/NOUN of/ADP the/DET brown/ADJ coat/NOUN rack/NOUN ./PUNCT")
    assert nouns.complex_objects(t) == ("hat", "coat")
    # "on the left" (three tokens) matches before the one-token prepositions
    t = toks("The/DET cat/NOUN is/AUX on/ADP the/DET left/NOUN of/ADP the/DET pillow/NOUN")
    assert nouns.complex_objects(t) == ("cat", "pillow")
    # PROPN before; after the preposition no NOUN up to the end -> first PROPN not followed by a PROPN
    t = toks("Rex/PROPN sat/VERB near/ADP New/PROPN York/PROPN City/PROPN today/ADV")
    assert nouns.complex_objects(t) == ("Rex", "City")
    # two prepositions give four objects: not a pair -> None
    t = toks("a/DET cup/NOUN near/ADP a/DET bowl/NOUN next/ADV to/ADP a/DET spoon/NOUN")
    assert nouns.complex_objects(t) == (None, None)
    assert nouns.complex_objects(toks("a/DET cup/NOUN and/CCONJ a/DET bowl/NOUN")) == (None, None)


def test_without_adjectives():
    t = toks("The/DET fluffy/ADJ cat/NOUN sleeps/VERB ./PUNCT")
    assert nouns.without_adjectives(t) == "The cat sleeps ."


def test_smoke_parser_is_only_a_labelled_stand_in():
    p = nouns.SmokeParser()
    assert "not spaCy" in p.label
    assert p.noun_chunks("a red dog and a blue cup") == ["a red dog", "a blue cup"]
    assert nouns.first_last_noun(p.tokens("a dog on the left of a chair")) == ("dog", "chair")


def test_missing_model_is_reported_with_install_hint(monkeypatch):
    spacy = pytest.importorskip("spacy", reason="spaCy not installed in this environment (pip install '.[t2i]')")

    def no_model(name, *a, **k):
        raise OSError(f"[E050] Can't find model '{name}'.")

    monkeypatch.setattr(spacy, "load", no_model)
    with pytest.raises(nouns.NLPUnavailable, match="en_core_web_sm.*spacy download"):
        nouns.load_nlp()


def test_missing_spacy_is_reported(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "spacy":
            raise ImportError("no spacy")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(nouns.NLPUnavailable, match=r"spaCy is not installed.*\[t2i\]"):
        nouns.load_nlp()


def _real_parser():
    try:
        return nouns.load_nlp()
    except nouns.NLPUnavailable as exc:
        pytest.skip(f"spaCy's English model is not installed here ({exc})")


def test_with_spacy_en_core_web_sm():
    p = _real_parser()
    assert nouns.blip_questions(p.noun_chunks("a green bench and a blue bowl")) == ["a green bench?", "a blue bowl?"]
    # "the top" is a chunk upstream does not skip
    assert nouns.blip_questions(p.noun_chunks("a girl on the top of a frog")) == ["a girl?", "the top?", "a frog?"]
    assert nouns.first_last_noun(p.tokens("a girl on the top of a frog")) == ("girl", "frog")
    assert nouns.complex_objects(p.tokens("The red hat was on top of the brown coat rack.")) == ("hat", "coat")
    assert nouns.without_adjectives(p.tokens("The fluffy cat is on the left of the soft pillow.")) == \
        "The cat is on the left of the pillow ."
