"""Shared helpers of the understanding-task tests: write predictions JSONL, score through the CLI path."""

import json
from pathlib import Path

from unitoken_eval.harness.scoring import score_files
from unitoken_eval.harness import registry

SMOKE = Path(__file__).resolve().parents[2] / "tasks" / "smoke_data" / "understanding"


def score(tmp_path, task_id, preds, profile=None, data=None):
    """Score ``preds`` (often a few of the data's samples: a unit check of the scorer, hence ``partial``)."""
    task = registry.make_task(task_id, {})
    path = tmp_path / f"{task_id}.jsonl"
    path.write_text("".join(json.dumps({"index": k, "prediction": v}, ensure_ascii=False) + "\n"
                            for k, v in preds.items()), encoding="utf-8")
    return score_files(task_id, data or task.smoke_source(), predictions=str(path), profile=profile, partial=True)


def hf_parquet(tmp_path, columns, image_column="image", split="test"):
    """Write ``columns`` (with PNG images in ``image_column``) as ``<split>-00000.parquet`` like a hub snapshot."""
    import io

    import datasets
    from PIL import Image

    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), colour).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    cols = dict(columns)
    if image_column:
        cols[image_column] = [png(c) for c in cols[image_column]]
    ds = datasets.Dataset.from_dict(cols)
    if image_column:
        ds = ds.cast_column(image_column, datasets.Image())
    folder = tmp_path / "hf"
    folder.mkdir(exist_ok=True)
    ds.to_parquet(str(folder / f"{split}-00000.parquet"))
    return folder
