"""Run lmms-eval's own ``mme`` task on local data, offline.

lmms-eval's ``mme`` task reads the hub dataset named in its ``mme.yaml`` (lmms-lab's MME copy).  Without the
hub, two things are needed and both are made here:

- a folder in the exact schema of lmms-lab/MME (one ``test`` split of parquet files under ``data/``, columns
  ``question_id`` (the image file, shared by the image's two questions), ``image``, ``question``, ``answer``,
  ``category``), which ``datasets.load_dataset(<folder>)`` reads without a network;
- a task YAML for ``--include_path`` that *includes* the installed lmms-eval ``mme.yaml`` (so the prompt,
  the parsing and the scorer are lmms-eval's, unchanged) and overrides only ``task`` (a new name, so it
  does not shadow ``mme``), ``dataset_path`` (the folder) and ``dataset_kwargs`` (no hub token).

The same folder is valid ``--data`` for our ``mme`` task, which is what lets lmms-eval's logged answers be
joined back to our samples by position (``unitoken_eval.harness.interop.lmms_eval_logs``).
"""

from __future__ import annotations

import importlib.util
import io
import random
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from PIL import Image, ImageDraw

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
MME_COLUMNS = ("question_id", "image", "question", "answer", "category")
SUFFIX = " Please answer yes or no."  # every MME question ends so; lmms-eval's mme swaps it for its post-prompt


def mme_features():
    import datasets

    return datasets.Features({
        "question_id": datasets.Value("string"),
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "category": datasets.Value("string"),
    })


def _png_bytes(img: Union[Image.Image, bytes]) -> bytes:
    if isinstance(img, (bytes, bytearray)):
        return bytes(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_mme_dataset(rows: Iterable[dict[str, Any]], out_dir: Union[str, Path]) -> Path:
    """Write rows (``image`` a PIL image or encoded bytes) as ``<out_dir>/data/test-00000-of-00001.parquet``.

    The layout and features are lmms-lab/MME's, so lmms-eval and our ``mme`` task read it as they read the hub.
    """
    import datasets

    out_dir = Path(out_dir)
    cols: dict[str, list] = {c: [] for c in MME_COLUMNS}
    for i, row in enumerate(rows):
        missing = [c for c in MME_COLUMNS if row.get(c) is None]
        if missing:
            raise ValueError(f"MME row {i}: missing {missing}")
        for c in MME_COLUMNS:
            cols[c].append({"bytes": _png_bytes(row[c]), "path": None} if c == "image" else str(row[c]))
    if not cols["question_id"]:
        raise ValueError("no MME rows to write")
    ds = datasets.Dataset.from_dict(cols, features=mme_features())
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    target = out_dir / "data" / "test-00000-of-00001.parquet"
    ds.to_parquet(str(target))
    return out_dir


def synthetic_mme_rows(images_per_category: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """A small MME of our own making: every one of the 14 sub-tasks, two questions (a Yes and a No) per image.

    Images are drawn shapes, questions end in MME's stock suffix, ``question_id`` is ``<category>/<nnnn>.png``
    as in lmms-lab/MME; deterministic for a seed.
    """
    rng = random.Random(seed)
    colours = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
    rows: list[dict[str, Any]] = []
    for category in (*PERCEPTION, *COGNITION):
        for k in range(images_per_category):
            name, rgb = rng.choice(sorted(colours.items()))
            other = rng.choice([c for c in colours if c != name])
            img = Image.new("RGB", (64, 48), (245, 245, 245))
            draw = ImageDraw.Draw(img)
            x, y = rng.randint(2, 30), rng.randint(2, 16)
            draw.rectangle([x, y, x + 24, y + 24], fill=rgb)
            qid = f"{category}/{k:04d}.png"
            pair = [(f"Is the square in this image {name}?{SUFFIX}", "Yes"),
                    (f"Is the square in this image {other}?{SUFFIX}", "No")]
            rng.shuffle(pair)
            for question, answer in pair:
                rows.append({"question_id": qid, "image": img, "question": question, "answer": answer,
                             "category": category})
    return rows


def mme_rows_from_tsv(tsv: Union[str, Path]) -> list[dict[str, Any]]:
    """VLMEvalKit's MME TSV (or our smoke copy) in lmms-lab's schema, so lmms-eval can run on data you have.

    ``question_id`` is the TSV's ``image_path`` when it has one, else ``<category>/<image key>`` (the key VK's
    TSV gives the shared image of a question pair).
    """
    from unitoken_eval.tasks.common.vlmeval_tsv import load_tsv

    rows = []
    for r in load_tsv(Path(tsv), ("index", "image", "question", "answer", "category")):
        f = r.fields
        qid = f.get("image_path") or f"{f['category']}/{r.image_key}"
        rows.append({"question_id": str(qid), "image": r.image(), "question": f["question"],
                     "answer": f["answer"], "category": f["category"]})
    return rows


def lmms_eval_task_yaml(task: str = "mme") -> Path:
    """The installed lmms-eval's YAML of ``task`` (found without importing lmms_eval)."""
    from unitoken_eval.integrations.lmms_eval import LmmsEvalMissing, EXTRA_HINT

    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise LmmsEvalMissing(f"writing an lmms-eval task needs lmms-eval installed: {EXTRA_HINT}")
    root = Path(list(spec.submodule_search_locations)[0])
    path = root / "tasks" / task / f"{task}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"lmms-eval at {root} has no task YAML {path.relative_to(root)}")
    return path


def write_task_yaml(out_dir: Union[str, Path], dataset_dir: Union[str, Path], name: str = "mme_local",
                    base: str = "mme", base_yaml: Optional[Path] = None) -> Path:
    """Write ``<out_dir>/<name>.yaml``: lmms-eval's ``base`` task, renamed, reading ``dataset_dir``.

    Pass ``out_dir`` to lmms-eval as ``--include_path`` and ``name`` as ``--tasks``.
    """
    import yaml

    base_yaml = Path(base_yaml) if base_yaml else lmms_eval_task_yaml(base)
    dataset_dir = Path(dataset_dir).resolve()
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset_dir} does not exist")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"include": str(base_yaml.resolve()), "task": name, "dataset_path": str(dataset_dir),
            "dataset_kwargs": {}}
    target = out_dir / f"{name}.yaml"
    target.write_text("# lmms-eval's own task on local data; written by unitoken_eval.integrations.lmms_eval.local_task\n"
                      + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return target
