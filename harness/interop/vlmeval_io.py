"""VLMEvalKit prediction files: read theirs for re-scoring, write ours for their evaluators.

VLMEvalKit (checked against e8e78f05) writes one file per model and dataset, ``{model}_{dataset}.xlsx`` by
default (``.tsv`` or ``.json`` with ``PRED_FORMAT``): the benchmark TSV's rows without the ``image`` column,
plus ``prediction``.  Its evaluators read that file back with pandas (``read_excel`` / ``read_csv(sep='\\t')``)
and score ``str(prediction)``.  Reading goes through the same pandas calls and the same ``str()``, so a cell
pandas reads as missing (empty, ``None``, ``NA``...) becomes ``"nan"`` here exactly as it does in VLMEvalKit:
re-scored numbers then match VLMEvalKit's own.  Rows are keyed by ``index`` as a string, which is our
sample id for every task read from VLMEvalKit's TSVs.

Writing produces the same table: the task's data columns (from our samples, in the TSV's order), ``index`` as
an integer when every index is one (as VLMEvalKit's dataset holds it), and ``prediction``.  A sample recorded
as an error is written with VLMEvalKit's failed-inference marker so its reports count it as failed.

Pickle files (VLMEvalKit's intermediate ``.pkl``) are refused: unpickling runs code from the file.
Nothing here imports VLMEvalKit.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from unitoken_eval.harness.interop import InteropError

log = logging.getLogger("unitoken_eval.interop")

SUFFIXES = (".xlsx", ".tsv", ".json")
FILE_FORMATS = ("xlsx", "tsv", "json")
# VLMEvalKit's marker for a failed inference (vlmeval/smp/file.py INFER_FAIL_MSG): its reports count a
# prediction containing it as failed, and inference with retries redoes it.
FAIL_MARKER = "Failed to obtain answer"
# An .xlsx cell holds at most this many characters (Excel's limit; longer text is cut by readers).
XLSX_CELL_MAX = 32767
_INSTALL_HINT = "pip install 'unitoken-eval[vlmeval]' (or just openpyxl)"


# ----------------------------------------------------------------------------- reading
def _need_openpyxl(path: Path, doing: str) -> None:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise InteropError(f"{path}: {doing} an .xlsx file needs openpyxl: {_INSTALL_HINT}; or have VLMEvalKit "
                           "write TSV predictions (PRED_FORMAT=tsv)") from None


def _read_frame(path: Path):
    """The file as VLMEvalKit's ``load()`` gives it to an evaluator (a DataFrame)."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".pkl":
        raise InteropError(f"{path}: pickle files are not read (unpickling runs code from the file); use the "
                           "xlsx/tsv/json prediction file VLMEvalKit writes at the end of inference")
    if suffix not in SUFFIXES:
        raise InteropError(f"{path}: not a VLMEvalKit prediction file (expected {', '.join(SUFFIXES)})")
    if not path.is_file():
        raise InteropError(f"VLMEvalKit prediction file {path} does not exist")
    try:
        if suffix == ".xlsx":
            _need_openpyxl(path, "reading")
            return pd.read_excel(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except InteropError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InteropError(f"{path}: not a readable VLMEvalKit prediction file ({type(exc).__name__}: {exc})") from None
    # JSON: VLMEvalKit dumps a DataFrame as a list of records; pandas' split orient and a dict of columns
    # are accepted too.
    try:
        if isinstance(obj, list):
            if not all(isinstance(r, dict) for r in obj):
                bad = next(i for i, r in enumerate(obj) if not isinstance(r, dict))
                raise InteropError(f"{path}: record {bad}: expected an object with 'index' and 'prediction'")
            return pd.DataFrame.from_records(obj)
        if isinstance(obj, dict) and "columns" in obj and "data" in obj:
            return pd.DataFrame(obj["data"], columns=obj["columns"])
        if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
            return pd.DataFrame(obj)
    except ValueError as exc:
        raise InteropError(f"{path}: JSON does not form a table ({exc})") from None
    raise InteropError(f"{path}: JSON is not a list of records or a table of columns")


def find_prediction_file(work_dir: Union[str, Path], model: str, dataset: str) -> Path:
    """The prediction file ``run.py --work-dir WORK_DIR`` wrote for ``model`` on ``dataset``, in either layout:
    ``WORK_DIR/MODEL/T<eval id>/MODEL_DATASET.<ext>`` (VLMEvalKit's repository; the newest run wins) or
    ``WORK_DIR/MODEL/MODEL_DATASET.<ext>`` (the ``ms-vlmeval`` package on PyPI)."""
    root = Path(work_dir) / model
    names = [f"{model}_{dataset}{suffix}" for suffix in SUFFIXES]
    runs = sorted((d for d in root.glob("T*") if d.is_dir()), reverse=True) if root.is_dir() else []
    for folder in [*runs, root]:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise InteropError(f"{root}: no VLMEvalKit prediction file {model}_{dataset}.(xlsx|tsv|json), neither in a "
                       "T<eval id> run folder nor directly in it")


def _row_label(path: Path, i: int) -> str:
    """Spreadsheet-style row number: the header is row 1 (for a JSON list, the record's position)."""
    if path.suffix.lower() == ".json":
        return f"{path}: record {i}"
    return f"{path}: row {i + 2}"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def index_key(value: Any, where: str) -> str:
    """VLMEvalKit's index as our sample id: integers (and integral floats from a spreadsheet) as digits."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        raise InteropError(f"{where}: empty 'index'")
    if isinstance(value, bool):
        raise InteropError(f"{where}: 'index' is a boolean ({value})")
    if isinstance(value, float):
        if not value.is_integer():
            raise InteropError(f"{where}: 'index' {value!r} is not an integer")
        value = int(value)
    return str(value).strip()


def read_prediction_rows(path: Union[str, Path]) -> list[tuple[str, str, dict[str, Any], str]]:
    """``(index, prediction text, other columns, row label)`` per row, in file order.

    Missing ``index``/``prediction`` columns, an empty index and a repeated index are errors naming the file
    and row.  The prediction text is ``str(cell)``, as VLMEvalKit's evaluators take it.
    """
    path = Path(path)
    df = _read_frame(path)
    cols = [str(c) for c in df.columns]
    missing = [c for c in ("index", "prediction") if c not in cols]
    if missing:
        raise InteropError(f"{path}: no {' or '.join(repr(c) for c in missing)} column (found {cols}); "
                           "VLMEvalKit prediction files have 'index' and 'prediction'")
    out = []
    seen: dict[str, str] = {}
    for i, rec in enumerate(df.to_dict("records")):
        where = _row_label(path, i)
        key = index_key(rec.get("index"), where)
        if key in seen:
            raise InteropError(f"{where}: index {key!r} repeats {seen[key].rsplit(': ', 1)[-1]}")
        seen[key] = where
        out.append((key, str(rec.get("prediction")), rec, where))
    return out


def dataset_of(path: Union[str, Path], dataset_names: Iterable[str]) -> Optional[str]:
    """Which of ``dataset_names`` the file is for, from VLMEvalKit's ``{model}_{dataset}.<ext>`` name."""
    stem = Path(path).stem
    hits = [d for d in dataset_names if stem == d or stem.endswith("_" + d)]
    return max(hits, key=len) if hits else None


def sniff(path: Union[str, Path]) -> bool:
    """An .xlsx/.tsv/.json file whose header (first record) has ``index`` and ``prediction``; never raises.

    An .xlsx file when openpyxl is missing counts as ours (only VLMEvalKit's format is a spreadsheet), so that
    reading it says what to install.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES or not path.is_file():
        return False
    try:
        if suffix == ".xlsx":
            if not zipfile.is_zipfile(path):
                return False
            try:
                import openpyxl
            except ImportError:
                return True
            wb = openpyxl.load_workbook(path, read_only=True)
            try:
                header = next(wb.worksheets[0].iter_rows(min_row=1, max_row=1, values_only=True), ())
            finally:
                wb.close()
            names = {str(h) for h in header if h is not None}
        elif suffix == ".tsv":
            with open(path, encoding="utf-8", newline="") as fh:
                header = next(csv.reader(fh, delimiter="\t"), [])
            names = set(header)
        else:
            with open(path, encoding="utf-8") as fh:
                obj = json.load(fh)
            if isinstance(obj, list) and obj and isinstance(obj[0], dict):
                names = set(obj[0])
            elif isinstance(obj, dict) and "columns" in obj:
                names = {str(c) for c in obj["columns"]}
            elif isinstance(obj, dict):
                names = set(obj)
            else:
                return False
        return {"index", "prediction"} <= names
    except Exception:  # a sniffer answers "not mine" for anything it cannot read
        return False


def _compare_field(ours: Any, theirs: Any) -> bool:
    """Whether a column of the file agrees with the sample's field (both read by pandas from VK's TSV)."""
    if _is_missing(theirs) or ours is None:
        return True
    if isinstance(theirs, float) and theirs.is_integer():
        theirs = int(theirs)
    return str(ours).strip() == str(theirs).strip()


def load_predictions(path: Union[str, Path], task: Any, *, samples: Optional[list] = None,
                     source: Optional[str] = None) -> dict[str, str]:
    """Our sample id -> the prediction text VLMEvalKit recorded, for ``task`` (a Task or a task id).

    With ``samples`` (the task's data as we loaded it), every row must be one of them and its ``question`` and
    ``answer`` columns must agree with the sample's, so a file made on other data is an error naming the row
    rather than answers scored against the wrong questions.  Without them, a file whose name says it is for
    another dataset than the task's TSV only warns (files get renamed).
    """
    path = Path(path)
    rows = read_prediction_rows(path)
    task_id = getattr(task, "id", task)
    tsv_name = getattr(task, "tsv_name", None)
    if tsv_name and not dataset_of(path, [tsv_name]):
        log.warning("%s: the file name does not end in _%s%s (VLMEvalKit names files {model}_{dataset}); "
                    "reading it for %s anyway", path, tsv_name, path.suffix, task_id)
    by_id = {s.id: s for s in samples} if samples is not None else None
    left_out = getattr(task, "left_out", None) or {}
    out: dict[str, str] = {}
    for key, text, rec, where in rows:
        if by_id is not None:
            sample = by_id.get(key)
            if sample is None and key in left_out:
                continue  # a row of another split of the same data (MMMU_DEV_VAL's dev rows)
            if sample is None:
                raise InteropError(f"{where}: index {key!r} is not a sample of {task_id} "
                                   f"(its data has {len(by_id)} samples; was the file made on other data?)")
            for col in ("question", "answer"):
                if col in rec and not _compare_field(sample.fields.get(col), rec[col]):
                    raise InteropError(f"{where}: index {key!r}: {col} {str(rec[col])[:80]!r} differs from the "
                                       f"{col} of sample {key!r} of {task_id} ({str(sample.fields.get(col))[:80]!r}); "
                                       "the file was made on other data")
        out[key] = text
    return out


# ----------------------------------------------------------------------------- writing
def _cell(value: Any) -> Any:
    """A sample field as a table cell: scalars as they are, containers as JSON text, missing as empty."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if _is_missing(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def prediction_table(samples: list, texts: dict[str, str]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of VLMEvalKit's prediction file for ``samples`` that have a text in ``texts``.

    Columns: ``index`` first, then the samples' data fields in their order (our private ``_...`` fields and
    the ``image`` column left out, as VLMEvalKit drops ``image``), then ``prediction``.
    """
    kept = [s for s in samples if s.id in texts]
    columns: list[str] = ["index"]
    for s in kept:
        for k in s.fields:
            if k not in columns and k not in ("image", "prediction") and not str(k).startswith("_"):
                columns.append(str(k))
    columns.append("prediction")
    as_int = all(str(s.id).isdigit() and (str(s.id) == "0" or not str(s.id).startswith("0")) for s in kept)
    rows = []
    for s in kept:
        row = [int(s.id) if as_int else s.id]
        row += [_cell(s.fields.get(c)) for c in columns[1:-1]]
        row.append(texts[s.id])
        rows.append(row)
    return columns, rows


_XLSX_ESCAPED = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")


def xlsx_text(text: str) -> str:
    """Text as VLMEvalKit's xlsx files hold it: control characters as Excel's ``_xHHHH_`` escapes.

    VLMEvalKit's writer (xlsxwriter) stores a control character as ``_x001B_`` and pandas/openpyxl read that
    back as those seven characters, so VLMEvalKit's evaluators see ``_x001B_`` where the model said ESC.
    Writing the same characters makes VLMEvalKit read our file exactly as it reads its own.
    """
    return _XLSX_ESCAPED.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)


def write_prediction_file(columns: list[str], rows: list[list[Any]], path: Union[str, Path],
                          what: str = "predictions") -> Path:
    """Write the table as VLMEvalKit's ``.xlsx`` / ``.tsv`` / ``.json`` (by ``path``'s suffix), atomically.

    xlsx: every string cell is stored as text (a prediction starting with '=' must not become a formula, as
    VLMEvalKit's own writer ensures) and control characters are escaped as its writer escapes them
    (:func:`xlsx_text`); text longer than a cell holds is an error naming the row, suggesting TSV.
    tsv: every field quoted, as VLMEvalKit writes.
    """
    from unitoken_eval.harness.store import write_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        _need_openpyxl(path, "writing")
        import io

        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("Sheet1")
        ws.append(columns)
        try:
            for r, row in enumerate(rows, start=2):
                cells = []
                for c, value in zip(columns, row):
                    if isinstance(value, str):
                        value = xlsx_text(value)
                        if len(value) > XLSX_CELL_MAX:
                            raise InteropError(f"{path}: row {r} (index {row[0]}): {c} has {len(value)} characters, "
                                               f"more than an .xlsx cell holds ({XLSX_CELL_MAX}); export as tsv "
                                               "instead (--vk-format tsv)")
                        cell = WriteOnlyCell(ws, value=value)
                        cell.data_type = "s"
                        cells.append(cell)
                    else:
                        cells.append(value)
                ws.append(cells)
        except ValueError as exc:  # text XML cannot carry (e.g. lone surrogates)
            if isinstance(exc, InteropError):
                raise
            raise InteropError(f"{path}: row {r} (index {row[0]}): {c} cannot be stored in .xlsx ({exc}); "
                               "export as tsv instead (--vk-format tsv)") from None
        buf = io.BytesIO()
        wb.save(buf)
        write_atomic(path, buf.getvalue())
    elif suffix == ".tsv":
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        write_atomic(path, buf.getvalue().encode("utf-8"))
    elif suffix == ".json":
        records = [dict(zip(columns, row)) for row in rows]
        write_atomic(path, (json.dumps(records, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    else:
        raise InteropError(f"{path}: VLMEvalKit prediction files end in {', '.join(SUFFIXES)}")
    log.info("wrote %d %s to %s", len(rows), what, path)
    return path
