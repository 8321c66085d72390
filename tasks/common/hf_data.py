"""Hugging Face copies of the benchmarks (lmms-eval's data), mapped into the same row shape as VK TSVs.

A source is a hub id (``lmms-lab/MME``), a local parquet file or folder of parquet files, or a folder written
by ``Dataset.save_to_disk``.  Each task gives a column mapping ``{our column: HF column}`` (a callable may
build a column from the whole HF record, e.g. options stored as a list) so the scoring code sees one schema
whatever the source.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Optional, Union

from PIL import Image

from unitoken_eval.harness.remote import announce_hub, is_hub_id
from unitoken_eval.harness.plugin import TaskError
from unitoken_eval.tasks.common.vlmeval_tsv import TsvRow, _clean

Mapping = dict[str, Union[str, Callable[[dict[str, Any]], Any]]]


def looks_like_hf_source(source: Optional[str]) -> bool:
    """True for a parquet file/folder, a saved dataset folder, or an ``owner/name`` hub id that is not a local path."""
    if not source:
        return False
    p = Path(source).expanduser()
    if p.is_file():
        return p.suffix in (".parquet", ".arrow")
    if p.is_dir():
        return any(p.glob("*.parquet")) or any(p.glob("**/*.parquet")) or (p / "dataset_info.json").exists() \
            or (p / "state.json").exists() or (p / "dataset_dict.json").exists()
    return is_hub_id(source)


def open_dataset(source: str, split: str, config: Optional[str] = None):
    """The ``datasets.Dataset`` of ``split`` from a hub id, parquet file/folder, or saved-to-disk folder."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise TaskError("reading Hugging Face data needs the `datasets` package") from None
    p = Path(source).expanduser()
    try:
        if p.is_file():
            return datasets.load_dataset("parquet", data_files={split: str(p)}, split=split)
        if p.is_dir():
            if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
                ds = datasets.load_from_disk(str(p))
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise TaskError(f"{p}: saved dataset has splits {list(ds)}, not {split!r}")
                    ds = ds[split]
                return ds
            files = sorted(p.glob(f"**/{split}-*.parquet")) or sorted(p.glob(f"**/{split}*.parquet")) \
                or sorted(p.glob("**/*.parquet"))
            if not files:
                raise TaskError(f"{p}: no parquet files found")
            return datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split)
        announce_hub(source, f"Hugging Face dataset {source} (split {split})", kind="dataset")
        return datasets.load_dataset(source, config, split=split)
    except TaskError:
        raise
    except Exception as exc:  # datasets raises many types; name the source in every case
        raise TaskError(f"cannot load Hugging Face dataset {source!r} split {split!r}: {type(exc).__name__}: {exc}") from None


def _hf_cell(ds: Any, row: int, column: str, where: str) -> Any:
    """One cell, decoded by ``datasets`` (an Image feature opens its file here, so a missing or broken image
    file surfaces here, as datasets' own exception: restated naming the row, so --skip-bad can count it)."""
    try:
        return ds[row][column]
    except Exception as exc:
        raise TaskError(f"{where}: image cannot be read ({type(exc).__name__}: {exc})") from None


def _hf_image(value: Any, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        img = value
    elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        try:
            img = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
            img.load()
        except Exception as exc:
            raise TaskError(f"{where}: undecodable image ({type(exc).__name__}: {exc})") from None
    elif isinstance(value, list) and value:
        return _hf_image(value[0], where)
    else:
        raise TaskError(f"{where}: no image in the image column")
    if img.mode in ("RGBA", "P", "LA"):
        img = img.convert("RGB")
    return img


def load_hf_rows(source: str, split: str, mapping: Mapping, image_column: Optional[str] = "image",
                 index_column: Optional[str] = "index", image_key_column: Optional[str] = None,
                 config: Optional[str] = None) -> list[TsvRow]:
    """Rows of an HF dataset in the TSV row shape; a mapped column missing from the data is an error."""
    ds = open_dataset(source, split, config)
    names = set(ds.column_names)
    needed = [v for v in mapping.values() if isinstance(v, str)] + ([index_column] if index_column else [])
    missing = [c for c in needed if c not in names]
    if missing:
        raise TaskError(f"{source} ({split}): column(s) {missing} missing; found {sorted(names)}")
    plain = ds.remove_columns([image_column]) if image_column and image_column in names else ds
    records = plain.to_list()
    rows: list[TsvRow] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        where = f"{source} ({split}): row {i}"
        fields: dict[str, Any] = {}
        for ours, theirs in mapping.items():
            fields[ours] = _clean(theirs(rec) if callable(theirs) else rec.get(theirs))
        idx = str(_clean(rec[index_column])) if index_column else str(i)
        if idx in seen:
            raise TaskError(f"{where}: index {idx!r} repeats")
        seen.add(idx)
        fields["index"] = idx
        loader = None
        if image_column and image_column in names:
            loader = (lambda j=i, w=where: _hf_image(_hf_cell(ds, j, image_column, w), w))
        key = str(fields.get(image_key_column) or rec.get(image_key_column)) if image_key_column else idx
        rows.append(TsvRow(idx, fields, f"{source} ({split})", i, image_key=key, loader=loader,
                           n_images=1 if loader else 0))
    return rows
