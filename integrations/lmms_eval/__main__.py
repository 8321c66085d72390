"""``python -m unitoken_eval.integrations.lmms_eval``: prepare lmms-eval's ``mme`` to run offline on local data.

    mme-data --out DIR [--from-tsv MME.tsv | --per-category N]   lmms-lab/MME-schema parquet folder
    task --dataset DIR --out TASKDIR [--name mme_local]           --include_path task YAML for it

Then:  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 lmms-eval --model unitoken_eval --model_args adapter=tiny \
           --tasks mme_local --include_path TASKDIR --batch_size auto --log_samples --output_path OUT
and:   python -m unitoken_eval.harness.interop.lmms_eval_logs OUT/*/*_samples_mme_local.jsonl --task mme --data DIR --out p.jsonl
       unitoken-eval score --task mme --data DIR --predictions p.jsonl
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from unitoken_eval.harness.exit_codes import ExitCode


def main(argv: Optional[list[str]] = None) -> int:
    from unitoken_eval.integrations.lmms_eval import LmmsEvalMissing
    from unitoken_eval.integrations.lmms_eval import local_task as lt

    ap = argparse.ArgumentParser(prog="python -m unitoken_eval.integrations.lmms_eval", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("mme-data", help="write an lmms-lab/MME-schema parquet folder")
    d.add_argument("--out", required=True)
    src = d.add_mutually_exclusive_group()
    src.add_argument("--from-tsv", help="convert a VLMEvalKit MME TSV")
    src.add_argument("--per-category", type=int, default=2, help="synthetic: images per sub-task (2 questions each)")
    d.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("task", help="write an --include_path YAML running lmms-eval's mme on a local folder")
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--name", default="mme_local")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "mme-data":
            rows = lt.mme_rows_from_tsv(args.from_tsv) if args.from_tsv else \
                lt.synthetic_mme_rows(args.per_category, args.seed)
            out = lt.write_mme_dataset(rows, args.out)
            print(f"{len(rows)} MME questions written to {out}")
        else:
            path = lt.write_task_yaml(args.out, args.dataset, name=args.name)
            print(f"task {args.name}: {path}  (lmms-eval --include_path {args.out} --tasks {args.name})")
    except (LmmsEvalMissing, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except Exception as exc:  # TaskError from reading a TSV, named by its file and row
        if type(exc).__name__ == "TaskError":
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.ERROR
        raise
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
