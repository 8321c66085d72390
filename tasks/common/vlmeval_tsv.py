"""VLMEvalKit's TSV distribution format, read the way VLMEvalKit reads it.

VK reads each benchmark TSV with ``pandas.read_csv(sep='\\t')``, turns ``index`` into strings, and lets an
image cell of 1-64 characters name the index of another row whose image it reuses (VK main e8e78f05,
``ImageBaseDataset.__init__`` in vlmeval/dataset/image_base.py).  A cell that starts with ``[`` holds a
Python list of base64 images (``toliststr``); our models take one image, so :meth:`TsvRow.image` returns
the first and :attr:`TsvRow.n_images` says how many there were.

Missing cells.  We keep every cell's text: only an empty cell is missing (``None``).  pandas' defaults, which
VK uses, also read the strings in :data:`PANDAS_NA_STRINGS` (``None``, ``NA``, ``N/A``, ``null``, ``nan``...)
as missing, so an option whose text is ``None`` (MMMU ``validation_Geography_15``, the gold option D) vanishes
in VK.  The ``official`` profiles score the text as written; the ``vlmevalkit`` profiles pass the fields
through :func:`as_vlmevalkit_reads` first, which blanks those cells again, to compute what VK computes.

Images are decoded lazily: a 15,000-row file is read in about a second and only the images a run needs are
decoded.
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from PIL import Image, UnidentifiedImageError

from unitoken_eval.harness.plugin import TaskError

# pandas' default NA strings (read_csv's na_values when keep_default_na=True), the cells VK reads as missing.
PANDAS_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})

# VK treats an image cell this short (and non-empty) as a reference to another row's index.
IMAGE_REF_MAX_CHARS = 64


def _clean(value: Any) -> Any:
    """NaN / empty -> None; numpy scalars -> Python scalars (so records are JSON-serialisable)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value == "":
        return None
    return value


def as_vlmevalkit_reads(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as VK's pandas read would hold them: text that is a default NA string becomes missing.

    The ``vlmevalkit`` profile's view of a row; the ``official`` profile uses the row as read (every text kept).
    """
    return {k: (None if isinstance(v, str) and v in PANDAS_NA_STRINGS else v) for k, v in fields.items()}


def decode_image_b64(data: str, where: str) -> Image.Image:
    """Base64 -> RGB-compatible PIL image as VK's ``decode_base64_to_image`` (RGBA/P/LA converted to RGB)."""
    try:
        raw = base64.b64decode(data, validate=False)
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise TaskError(f"{where}: image cell is not a decodable base64 image ({type(exc).__name__}: {exc})") from None
    if img.mode in ("RGBA", "P", "LA"):
        img = img.convert("RGB")
    return img


def _split_image_list(cell: str, where: str) -> list[str]:
    """VK's ``toliststr``: a cell starting with '[' is a Python list literal of base64 strings."""
    if cell.startswith("["):
        try:
            items = ast.literal_eval(cell)
        except (ValueError, SyntaxError):
            raise TaskError(f"{where}: image cell starts with '[' but is not a list literal") from None
        if not isinstance(items, list) or not items:
            raise TaskError(f"{where}: image list is empty or not a list")
        return [str(x) for x in items]
    return [cell]


class TsvRow:
    """One benchmark row: ``index`` (string, as VK keys rows), ``fields`` (column -> value, missing -> None).

    ``image_key`` is the index of the row that actually holds the pixels, so rows that reuse an image
    (MMBench circular copies, MME question pairs) share one key.
    """

    __slots__ = ("index", "fields", "source", "line", "image_key", "_image_cell", "_loader", "n_images")

    def __init__(self, index: str, fields: dict[str, Any], source: str, line: int,
                 image_key: Optional[str] = None, image_cell: Optional[str] = None,
                 loader: Optional[Callable[[], Image.Image]] = None, n_images: int = 0):
        self.index = index
        self.fields = fields
        self.source = source
        self.line = line
        self.image_key = image_key
        self._image_cell = image_cell
        self._loader = loader
        self.n_images = n_images

    @property
    def where(self) -> str:
        return f"{self.source}: row {self.line} (index {self.index})"

    def has_image(self) -> bool:
        return self._image_cell is not None or self._loader is not None

    def image(self) -> Image.Image:
        if self._loader is not None:
            return self._loader()
        if self._image_cell is None:
            raise TaskError(f"{self.where}: the row has no image")
        first = _split_image_list(self._image_cell, self.where)[0]
        return decode_image_b64(first, self.where)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"TsvRow(index={self.index!r}, line={self.line})"


def lmu_data_root() -> Path:
    """``$LMUData``, else ``~/LMUData`` (VK's ``LMUDataRoot``)."""
    env = os.environ.get("LMUData")
    return Path(env).expanduser() if env else Path.home() / "LMUData"


def resolve_tsv(name: str, source: Optional[str]) -> Path:
    """The TSV to read: ``source`` if it is a file (or a directory holding ``<name>.tsv``), else ``$LMUData/<name>.tsv``."""
    if source:
        p = Path(source).expanduser()
        if p.is_dir():
            p = p / f"{name}.tsv"
        if not p.is_file():
            raise TaskError(f"data file {p} does not exist (expected the VLMEvalKit TSV {name}.tsv)")
        return p
    p = lmu_data_root() / f"{name}.tsv"
    if not p.is_file():
        raise TaskError(
            f"{p} does not exist: put VLMEvalKit's {name}.tsv there (set $LMUData to change the folder), "
            f"pass --data PATH, or run `unitoken-eval data --fetch` where the machine is online"
        )
    return p


def load_tsv(path: str | Path, required_columns: Iterable[str] = ("index",)) -> list[TsvRow]:
    """Read a VK TSV into rows; missing columns or dangling image references are errors naming file and row."""
    import pandas as pd

    path = Path(path)
    try:
        # Only empty cells are missing; VK's extra NA strings are applied per profile (as_vlmevalkit_reads).
        df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise TaskError(f"data file {path} does not exist") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise TaskError(f"{path}: not a readable TSV ({exc})") from None
    required = list(dict.fromkeys(["index", *required_columns]))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TaskError(f"{path}: header (line 1) lacks column(s) {missing}; found {list(df.columns)}")

    columns = [c for c in df.columns if c != "image"]
    records = df[columns].to_dict("records")
    index_raw = df["index"].tolist()
    has_image = "image" in df.columns
    image_raw = df["image"].tolist() if has_image else [None] * len(df)

    indices: list[str] = []
    for i, x in enumerate(index_raw):
        x = _clean(x)
        if x is None:
            raise TaskError(f"{path}: row {i + 2} has an empty index")
        if isinstance(x, float) and x.is_integer():
            x = int(x)
        indices.append(str(x))
    seen: dict[str, int] = {}
    for i, idx in enumerate(indices):
        if idx in seen:
            raise TaskError(f"{path}: row {i + 2}: index {idx!r} repeats row {seen[idx] + 2}")
        seen[idx] = i

    cells: list[Optional[str]] = [None if _clean(v) is None else str(v) for v in image_raw]
    rows: list[TsvRow] = []
    for i, (idx, rec) in enumerate(zip(indices, records)):
        fields = {k: _clean(v) for k, v in rec.items()}
        fields["index"] = idx
        cell, key = cells[i], None
        if cell is not None:
            key = idx
            if len(cell) <= IMAGE_REF_MAX_CHARS:
                j = seen.get(cell)
                if j is None:
                    raise TaskError(f"{path}: row {i + 2} (index {idx}): image cell {cell!r} names no row's index")
                target = cells[j]
                if target is None or len(target) <= IMAGE_REF_MAX_CHARS:
                    raise TaskError(
                        f"{path}: row {i + 2} (index {idx}): image reference {cell!r} points at a row without image data")
                cell, key = target, indices[j]
        n_images = 0
        if cell is not None:
            n_images = len(_split_image_list(cell, f"{path}: row {i + 2} (index {idx})")) if cell.startswith("[") else 1
        rows.append(TsvRow(idx, fields, str(path), i + 2, image_key=key, image_cell=cell, n_images=n_images))
    return rows
