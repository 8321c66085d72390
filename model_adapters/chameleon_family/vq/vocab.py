"""Chameleon's image vocabulary: VQ codes <-> BPE ids through the ``IMGIMG...`` names of ``vocabulary_map``.

The checkpoints carry the mapping only as token names (``IMGIMG`` + the code's decimal digits spelled with
letters A-J + one trailing character), and nothing guarantees ``id == code + 4``; so both directions are
built once from the names, as lookup tensors, and every special id is looked up by its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch

IMAGE_PREFIX = "IMGIMG"
BOI_NAME = "<racm3:break>"  # begin of image, id 8197 in Chameleon's vocabulary
EOI_NAME = "<eoss>"  # end of image, id 8196
NEWLINE_NAME = "<reserved08799>"  # end of a row of codes, id 8803
# the first id of the reserved names in Chameleon's vocabulary; reserved name N has id N + 4
_RESERVED_OFFSET = 4


def size_token_name(n_grids: int) -> str:
    """The name of the token saying an image side is ``n_grids`` x 32 pixels (``<reserved08816>`` for 512)."""
    return f"<reserved{8800 + n_grids:05d}>"


def code_name(code: int) -> str:
    """The vocabulary name of VQ code ``code`` (digits spelled A-J, one trailing character as in the release)."""
    return IMAGE_PREFIX + "".join(chr(ord("A") + int(d)) for d in str(code)) + "Z"


def code_of_name(name: str) -> int:
    body = name[len(IMAGE_PREFIX) : -1]
    digits = []
    for ch in body:
        if "A" <= ch <= "J":
            digits.append(str(ord(ch) - ord("A")))
        else:
            digits.append(ch)
    return int("".join(digits))


class VocabularyError(ValueError):
    """``vocabulary_map`` lacks a token the image path needs, or its image names are inconsistent."""


@dataclass(frozen=True)
class ImageVocabulary:
    """Both directions of the code <-> id mapping as tensors, plus the ids of the image-block specials."""

    code_to_id: torch.Tensor  # [n_codes] int64
    id_to_code: torch.Tensor  # [max_image_id + 1] int64, -1 where the id is not an image token
    boi: int
    eoi: int
    newline: int
    size_ids: Mapping[int, int]  # n_grids -> id of its size token, for the grid counts present in the map

    @classmethod
    def from_map(cls, vocabulary_map: Mapping[str, int], n_codes: int, source: str = "vocabulary_map") -> "ImageVocabulary":
        """Build the lookups; ``source`` names where the map came from, for error messages."""
        code_to_id = torch.full((n_codes,), -1, dtype=torch.long)
        max_id = -1
        seen = 0
        for name, idx in vocabulary_map.items():
            if not name.startswith(IMAGE_PREFIX):
                continue
            try:
                code = code_of_name(name)
            except ValueError:
                raise VocabularyError(f"{source}: image token name {name!r} does not spell a code") from None
            if not 0 <= code < n_codes:
                raise VocabularyError(f"{source}: {name!r} names code {code}, outside the codebook of {n_codes}")
            if code_to_id[code] >= 0:
                raise VocabularyError(f"{source}: code {code} is named twice ({name!r})")
            code_to_id[code] = int(idx)
            max_id = max(max_id, int(idx))
            seen += 1
        if seen != n_codes:
            missing = (code_to_id < 0).nonzero().flatten()[:5].tolist()
            raise VocabularyError(
                f"{source}: {seen} IMGIMG image tokens for a codebook of {n_codes} codes (no name for codes {missing}...)"
            )
        id_to_code = torch.full((max_id + 1,), -1, dtype=torch.long)
        id_to_code[code_to_id] = torch.arange(n_codes)

        def need(name: str) -> int:
            if name not in vocabulary_map:
                raise VocabularyError(f"{source} has no token {name!r}, which image blocks need")
            return int(vocabulary_map[name])

        size_ids = {}
        for n in range(0, 100):
            name = size_token_name(n)
            if name in vocabulary_map:
                size_ids[n] = int(vocabulary_map[name])
        return cls(
            code_to_id=code_to_id,
            id_to_code=id_to_code,
            boi=need(BOI_NAME),
            eoi=need(EOI_NAME),
            newline=need(NEWLINE_NAME),
            size_ids=size_ids,
        )

    def size_id(self, n_grids: int) -> int:
        if n_grids not in self.size_ids:
            raise VocabularyError(f"vocabulary_map has no size token {size_token_name(n_grids)!r}")
        return self.size_ids[n_grids]

    @property
    def image_ids(self) -> torch.Tensor:
        """The ids of all image tokens, ascending (the set generation is restricted to)."""
        return torch.sort(self.code_to_id).values


def build_vocabulary_map(
    n_codes: int = 8192,
    text_tokens: Optional[Mapping[str, int]] = None,
    image_placeholder: bool = True,
    reserved_until: int = 16900,
) -> dict[str, int]:
    """A vocabulary map laid out like Chameleon's, for tiny test checkpoints.

    Ids 0-3 are ``<s> <pad> </s> <unk>``; ids 4..4+n_codes-1 hold the ``IMGIMG`` names, assigned in the
    lexicographic order of the names (so id != code + 4, as nothing promises it is); then ``<eoss>`` (8196),
    ``<racm3:break>`` (8197) and ``<reservedNNNNN>`` at id NNNNN + 4 up to ``reserved_until`` (covering 8710
    end of turn, 8803 newline, 8804+n size tokens, 16853).  ``image_placeholder`` renames ``<reserved08707>``
    to ``<image>`` as the transformers conversion does.  ``text_tokens`` adds further names (ids must not clash).
    """
    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    names = sorted(code_name(c) for c in range(n_codes))
    for i, name in enumerate(names):
        vocab[name] = 4 + i
    first_special = 4 + n_codes
    vocab[EOI_NAME] = first_special
    vocab[BOI_NAME] = first_special + 1
    for idx in range(first_special + 2, reserved_until):
        vocab[f"<reserved{idx - _RESERVED_OFFSET:05d}>"] = idx
    if image_placeholder and "<reserved08707>" in vocab:
        vocab["<image>"] = vocab.pop("<reserved08707>")
    if text_tokens:
        taken = set(vocab.values())
        for name, idx in text_tokens.items():
            if name in vocab or idx in taken:
                raise ValueError(f"text token {name!r} (id {idx}) clashes with the fixed Chameleon layout")
            vocab[name] = int(idx)
            taken.add(int(idx))
    return vocab
