"""Shared helpers of the understanding-task tests: write predictions JSONL, score through the CLI path."""

import json
from pathlib import Path

from harness.scoring import score_files
from harness import registry

SMOKE = Path(__file__).resolve().parents[1] / "tasks" / "smoke_data" / "understanding"


def score(tmp_path, task_id, preds, profile=None, data=None):
    task = registry.make_task(task_id, {})
    path = tmp_path / f"{task_id}.jsonl"
    path.write_text("".join(json.dumps({"index": k, "prediction": v}, ensure_ascii=False) + "\n"
                            for k, v in preds.items()), encoding="utf-8")
    return score_files(task_id, data or task.smoke_source(), predictions=str(path), profile=profile)
