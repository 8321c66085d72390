"""VLMEvalKit's own ``evaluate`` on a prediction file, e.g. one written by ``unitoken-eval export``.

    python -m unitoken_eval.integrations.vlmeval.evaluate MME results/vk/tiny_MME.xlsx [more files] [--local] [--judge exact_matching]

Prints one JSON object per file, one per line: ``{"dataset", "file", "class", "result"}``, where ``result``
is what the dataset's ``evaluate`` returned (a table becomes a list of row objects).  The dataset is built as ``run.py`` builds it
(``vlmeval.dataset.build_dataset``), or with ``--local`` as the ``Local*`` variant of the same class, which
reads ``$LMUData/<dataset>.tsv`` without its MD5 pin and never downloads.  The judge defaults to exact
matching (no LLM); VLMEvalKit writes its intermediate files beside the prediction file, as it always does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Optional

from unitoken_eval.harness.exit_codes import ExitCode
from unitoken_eval.integrations.vlmeval import LOCAL_PREFIX


def _plain(value: Any) -> Any:
    """JSON-ready form of what an evaluate returns (DataFrame, numpy scalars, nested dicts)."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return [_plain(r) for r in value.to_dict("records")]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def build(dataset: str, local: bool, class_name: Optional[str] = None):
    """The VLMEvalKit dataset object ``dataset``, as run.py would build it (or its Local variant)."""
    import vlmeval.dataset as vd

    from unitoken_eval.integrations.vlmeval.model import register

    register()
    if class_name is None:
        cls = next((c for c in vd.DATASET_CLASSES if dataset in c.supported_datasets()), None)
        if cls is None:
            raise ValueError(f"VLMEvalKit has no dataset named {dataset!r} (pass --class to choose one)")
        class_name = cls.__name__
    if local and not class_name.startswith(LOCAL_PREFIX):
        class_name = LOCAL_PREFIX + class_name
    if not hasattr(vd, class_name):
        raise ValueError(f"vlmeval.dataset has no class {class_name!r}"
                         + (" (only classes using the base TSV loader have a Local variant)" if local else ""))
    return getattr(vd, class_name)(dataset=dataset), class_name


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unitoken_eval.integrations.vlmeval.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="VLMEvalKit dataset name, e.g. MME")
    ap.add_argument("files", nargs="+", metavar="file", help="prediction file(s) {model}_{dataset}.xlsx|tsv|json")
    ap.add_argument("--local", action="store_true", help="read $LMUData/<dataset>.tsv as is (no MD5 pin, no download)")
    ap.add_argument("--class", dest="class_name", help="dataset class (default: the one run.py would pick)")
    ap.add_argument("--judge", default="exact_matching", help="VLMEvalKit judge name (default exact_matching)")
    ap.add_argument("--nproc", type=int, default=4)
    args = ap.parse_args(argv)
    from unitoken_eval.integrations.vlmeval import VLMEvalMissing, require_vlmeval

    try:
        require_vlmeval("unitoken_eval.integrations.vlmeval.evaluate")
        dataset, class_name = build(args.dataset, args.local, args.class_name)
    except (ValueError, FileNotFoundError, VLMEvalMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    for file in args.files:
        result = dataset.evaluate(file, model=args.judge, nproc=args.nproc)
        print(json.dumps({"dataset": args.dataset, "file": file, "class": class_name, "result": _plain(result)},
                         ensure_ascii=False), flush=True)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
