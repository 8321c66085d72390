"""``unitoken-eval``: list | run | score | table | compare | report | data | predict | export | vlmeval.

Every user-facing failure (bad config, unknown id, unreadable file) ends as one ``error: ...`` line on
stderr and exit status 2; a regression found by ``compare`` exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A usage or input error to report on one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from harness.aggregate import AggregateError
    from harness.compare import CompareError
    from harness.config import ConfigError
    from harness.registry import RegistryError
    from harness.store import StoreError
    from model_adapters.base import AdapterError
    from tasks.base import TaskError

    return (CliError, ConfigError, RegistryError, StoreError, AdapterError, TaskError, FileNotFoundError,
            AggregateError, CompareError)


def default_runs_root() -> Path:
    return Path("results") / "runs"


# ---------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    from harness import registry

    info: dict[str, Any] = {"tasks": [], "adapters": [], "suites": registry.suite_ids()}
    # A plugin that fails to import is listed with its error instead of hiding every other id.
    for tid in registry.task_ids():
        try:
            cls = registry.task_class(tid)
        except registry.RegistryError as exc:
            info["tasks"].append({"id": tid, "error": str(exc)})
            continue
        info["tasks"].append(
            {"id": tid, "kind": cls.kind, "headline": list(cls.headline), "profiles": sorted(cls.references),
             "subtasks": list(cls.subtasks)}
        )
    for aid in registry.adapter_ids():
        try:
            cls = registry.adapter_class(aid)
        except registry.RegistryError as exc:
            info["adapters"].append({"id": aid, "error": str(exc)})
            continue
        info["adapters"].append({"id": aid, "capabilities": sorted(cls.capabilities)})
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print("tasks:")
    for t in info["tasks"]:
        if "error" in t:
            print(f"  {t['id']:<28} UNAVAILABLE: {t['error']}")
            continue
        head = f"{t['headline'][0]} ({t['headline'][1]})"
        print(f"  {t['id']:<28} {t['kind']:<10} {head}")
    print("adapters:")
    for a in info["adapters"]:
        if "error" in a:
            print(f"  {a['id']:<28} UNAVAILABLE: {a['error']}")
            continue
        print(f"  {a['id']:<28} {', '.join(a['capabilities'])}")
    print("suites:")
    for s in info["suites"]:
        print(f"  {s}")
    return EXIT_OK


# ---------------------------------------------------------------- run
def _parse_pairs(items: Optional[list[str]], flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CliError(f"{flag} expects TASK=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_config(args: argparse.Namespace):
    from harness import registry
    from harness.config import load_config

    if args.config and args.suite:
        raise CliError("give --config or --suite, not both")
    if args.config or args.suite:
        path = args.config or registry.suite_path(args.suite)
        from harness.config import ConfigError
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        origin = str(path)
    else:
        if not args.model or not args.tasks:
            raise CliError("run needs --suite, --config, or both --model and --tasks")
        raw, origin = {}, "command line"
    # Command-line flags override the file.
    if args.model:
        raw["model"] = args.model
    if args.model_args is not None:
        raw["model_args"] = args.model_args
    if args.tasks:
        raw["tasks"] = [t for t in args.tasks.split(",") if t]
        if isinstance(raw.get("subset"), dict) and isinstance(raw["subset"].get("sizes"), dict):
            # a suite narrowed with --tasks keeps the subset sizes of the tasks still in it
            kept = set(registry.expand_task_ids(raw["tasks"]))
            raw["subset"]["sizes"] = {t: n for t, n in raw["subset"]["sizes"].items() if t in kept}
    for key in ("profile", "judge", "limit", "seed", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    if args.skip_bad:
        raw["skip_bad"] = True
    if getattr(args, "retry_errors", False):
        raw["retry_errors"] = True
    if args.data:
        raw.setdefault("data", {}).update(_parse_pairs(args.data, "--data"))
    config = load_config(raw, origin)
    for tid in config.tasks:
        registry.task_class(tid)  # fail before any work on an unknown id
    registry.adapter_class(config.model)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from harness.plan import parse_shard_spec, rank_from_environment
    from harness.runner import RunOutcome, Runner, attach_log, start_run

    config = build_config(args)
    try:
        rank_world = parse_shard_spec(args.shard) if args.shard else rank_from_environment()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    rank, world = rank_world or (0, 1)
    if world > 1 and args.gpus:
        raise CliError("--gpus runs a local pool; under torchrun/Slurm/--shard each process takes one GPU")
    # A shard worker of a multi-process job joins the run directory its peers share; it only infers.
    sharded = world > 1
    if sharded and not args.out:
        raise CliError("a sharded run (--shard or torchrun/Slurm) needs --out RUN_DIR on a shared filesystem")
    writer = f"rank{rank}" if sharded else "main"
    store = start_run(config, Path(args.out) if args.out else None, args.resume or sharded, default_runs_root(),
                      writer=writer)
    attach_log(store)
    written: list[Path] = []
    try:
        runner = Runner(config, store, writer=writer, progress=not args.no_progress)
        infer_only = args.infer_only or sharded
        if args.gpus:
            from harness.pool import parse_gpus, run_pool

            try:
                gpus = parse_gpus(args.gpus)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            outcome = RunOutcome(store=store)
            report = run_pool(runner, gpus, retries=args.retries, outcome=None if infer_only else outcome,
                              progress=not args.no_progress)
            outcome.inferred = report.inferred
            for key, why in report.failed_shards.items():
                outcome.failed[key] = f"shard failed: {why}"
            if not infer_only:
                runner.score_all(outcome, only=[t for t in runner.tasks if t not in outcome.results
                                                and not any(k.startswith(t + "[") for k in report.failed_shards)])
        else:
            outcome = runner.run(rank=rank, world=world, infer_only=infer_only)
        if not infer_only:
            from harness.tables import write_run_tables

            written = write_run_tables(store)
            from harness.store import now_iso

            store.update_manifest(finished=now_iso(), failed_tasks=outcome.failed)
    finally:
        store.unlock()
    _print_summary(outcome, written)
    if infer_only:
        print(f"inference only ({'shard %d of %d' % (rank, world) if sharded else 'all shards'}): "
              f"score with `unitoken-eval run --resume --out {store.root} ...` once every shard is done")
    return EXIT_ERROR if outcome.failed else EXIT_OK


def _print_summary(outcome, written: list[Path]) -> None:
    print(f"run directory: {outcome.store.root}")
    print(f"inferred this time: {outcome.inferred} samples")
    for tid, r in outcome.results.items():
        value = "not scored" if r.status != "scored" else r.headline.value
        extra = f"  [{r.reason}]" if r.reason else ""
        print(f"  {tid:<28} {r.headline.name} = {value} ({r.headline.scale}){extra}")
    for tid, why in outcome.failed.items():
        print(f"  {tid:<28} FAILED: {why}")
    for p in written:
        print(f"table: {p}")


# ---------------------------------------------------------------- slurm
_SPEC_FLAGS = (("suite", "--suite"), ("config", "--config"), ("model", "--model"), ("model_args", "--model-args"),
               ("tasks", "--tasks"), ("limit", "--limit"), ("profile", "--profile"), ("judge", "--judge"),
               ("seed", "--seed"), ("batch_size", "--batch-size"))


def cmd_slurm(args: argparse.Namespace) -> int:
    from harness.slurm import write_scripts

    build_config(args)  # validate now, not on the cluster an hour later
    run_args: list[str] = []
    for attr, flag in _SPEC_FLAGS:
        value = getattr(args, attr)
        if value is not None:
            run_args += [flag, str(value)]
    for item in args.data or []:
        run_args += ["--data", item]
    if args.skip_bad:
        run_args.append("--skip-bad")
    if args.retry_errors:
        run_args.append("--retry-errors")
    out = Path(args.out).resolve()
    script_dir = Path(args.script_dir) if args.script_dir else out / "slurm"
    try:
        infer, score = write_scripts(run_args, out, args.array, script_dir, args.partition, args.time, args.cpus,
                                     args.mem, args.sbatch_option, args.setup)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {infer}\nwrote {score}\nsubmit with:")
    print(f"  jid=$(sbatch --parsable {infer}) && sbatch --dependency=afterany:$jid {score}")
    return EXIT_OK


# ---------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> int:
    from harness.scoring import score_files

    result = score_files(
        task_id=args.task,
        data=args.data,
        predictions=args.predictions,
        images=args.images,
        detections=args.detections,
        profile=args.profile,
        judge=args.judge,
        skip_bad=args.skip_bad,
    )
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False))
    else:
        h = result["headline"]
        print(f"{result['task']} [{result['profile']}] {h['name']} = {h['value']} ({h['scale']}), n = {result['n']}")
        for k, v in result["metrics"].items():
            print(f"  {k}: {v}")
        if result["n_errors"]:
            print(f"  errors: {result['n_errors']} of {result['n_samples']} samples (not in the metrics)")
            for sid, why in result["errors"].items():
                print(f"    {sid}: {why}")
    return EXIT_OK


# ---------------------------------------------------------------- table / compare / report
def _existing_runs(paths: list[str]) -> list[Path]:
    out = []
    for p in paths:
        path = Path(p)
        if not (path / "manifest.json").exists():
            raise CliError(f"{p} is not a run directory (no manifest.json)")
        out.append(path)
    return out


def cmd_table(args: argparse.Namespace) -> int:
    runs = _existing_runs(args.runs or [])
    if not runs and not args.baselines:
        raise CliError("table needs --runs RUN... and/or --baselines paper")
    from harness.tables import table_command

    text = table_command(runs=runs, baselines=args.baselines, fmt=args.format, layout=args.layout)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    baseline, candidate = _existing_runs([args.baseline, args.candidate])
    if args.policy and not Path(args.policy).exists():
        raise CliError(f"policy file {args.policy} does not exist")
    from harness.compare import compare_command

    return compare_command(baseline, candidate, policy=args.policy, summary=args.summary, out_dir=args.out)


def cmd_report(args: argparse.Namespace) -> int:
    (run,) = _existing_runs([args.run])
    from harness.report import write_report

    path = write_report(run, Path(args.out) if args.out else None)
    print(path)
    return EXIT_OK


# ---------------------------------------------------------------- data / predict
def cmd_data(args: argparse.Namespace) -> int:
    from harness import registry

    ids = [args.task] if args.task else registry.task_ids()
    rows = []
    for tid in ids:
        task = registry.make_task(tid)
        if args.fetch and hasattr(task, "fetch"):
            task.fetch()
        for src in task.describe_sources():
            rows.append({"task": tid, **src})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "present" if r.get("present") else "missing"
            print(f"{r['task']:<28} {state:<8} {r.get('location', '')}  {r.get('note', '')}".rstrip())
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from harness.predict import predict_command

    return predict_command(args)


# ---------------------------------------------------------------- export / vlmeval
def cmd_export(args: argparse.Namespace) -> int:
    from harness.export import export_vlmevalkit
    from harness.interop import InteropError

    (run,) = _existing_runs([args.run])
    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else None
    try:
        report = export_vlmevalkit(run, Path(args.out), model_name=args.model_name, file_format=args.vk_format,
                                   tasks=tasks)
    except InteropError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"out": str(report.out_dir), "model": report.model_name,
                          "files": [f.to_json() for f in report.files]}, indent=2))
        return EXIT_OK
    for f in report.files:
        if f.skipped:
            print(f"  {f.task:<28} skipped: {f.skipped}")
            continue
        extra = "".join([f", {f.errors} recorded as failed" if f.errors else "",
                         f", {f.missing} samples without a prediction" if f.missing else ""])
        print(f"  {f.task:<28} {f.rows} rows -> {f.path}{extra}")
    if not any(f.path for f in report.files):
        raise CliError(f"{run}: nothing to export (no understanding task read from a VLMEvalKit TSV)")
    return EXIT_OK


def cmd_vlmeval(args: argparse.Namespace) -> int:
    """Start VLMEvalKit's run.py or its evaluate in a child process: importing vlmeval turns off TLS
    certificate checks process-wide, so it never happens in this one."""
    import subprocess

    module = {"run": "integrations.vlmeval.run", "eval": "integrations.vlmeval.evaluate"}[args.action]
    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return subprocess.call([sys.executable, "-m", module, *rest])


# ---------------------------------------------------------------- parser
def _add_run_spec_args(s: argparse.ArgumentParser) -> None:
    """Flags that say what to run; shared by `run` and `slurm`."""
    s.add_argument("--suite", help="a shipped suite, e.g. smoke")
    s.add_argument("--config", help="a run-config YAML file")
    s.add_argument("--model", help="model adapter id")
    s.add_argument("--model-args", dest="model_args", help="key=value,... passed to the adapter")
    s.add_argument("--tasks", help="comma-separated task ids")
    s.add_argument("--limit", type=int, help="at most N samples per task")
    s.add_argument("--profile", choices=["official", "vlmevalkit"])
    s.add_argument("--judge", help="OpenAI-compatible judge endpoint URL, or 'none'")
    s.add_argument("--seed", type=int)
    s.add_argument("--batch-size", dest="batch_size", type=int)
    s.add_argument("--data", action="append", metavar="TASK=SOURCE", help="data source for a task (repeatable)")
    s.add_argument("--skip-bad", dest="skip_bad", action="store_true", help="record bad samples as errors and go on")
    s.add_argument("--retry-errors", dest="retry_errors", action="store_true",
                   help="with --resume: run again the samples recorded as errors (after fixing their input)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unitoken-eval", description="Evaluate unified multimodal models.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list task ids, model adapters and suites")
    s.add_argument("--format", choices=["text", "json"], default="text")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="run a model on tasks (or a suite) and score them")
    _add_run_spec_args(s)
    s.add_argument("--out", help="run directory (default results/runs/<run_id>)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished samples")
    s.add_argument("--no-progress", dest="no_progress", action="store_true")
    s.add_argument("--gpus", help="local pool: one worker per listed GPU (0,1,... or 'all')")
    s.add_argument("--retries", type=int, default=2, help="times a failed shard is run again (pool)")
    s.add_argument("--shard", help="I/N: run only shard I of N (0-based); torchrun/Slurm set this themselves")
    s.add_argument("--infer-only", dest="infer_only", action="store_true", help="store predictions, do not score")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("slurm", help="write sbatch scripts: a job array of shard workers, then scoring")
    _add_run_spec_args(s)
    s.add_argument("--out", required=True, help="run directory on a filesystem every node sees")
    s.add_argument("--array", type=int, required=True, help="number of array tasks (shards run in parallel)")
    s.add_argument("--partition")
    s.add_argument("--time", default="04:00:00")
    s.add_argument("--cpus", type=int, default=8)
    s.add_argument("--mem")
    s.add_argument("--sbatch-option", dest="sbatch_option", action="append", default=[],
                   help="extra '#SBATCH' line content, e.g. --account=abc (repeatable)")
    s.add_argument("--setup", help="shell line run first in each job, e.g. 'source venv/bin/activate'")
    s.add_argument("--script-dir", dest="script_dir", help="where to write the scripts (default RUN_DIR/slurm)")
    s.set_defaults(func=cmd_slurm)

    s = sub.add_parser("score", help="score a predictions file (or a folder of generated images)")
    s.add_argument("--task", required=True)
    s.add_argument("--data", help="the task's data (path or hub id); default: the task's default location")
    s.add_argument("--predictions", help="JSONL with {'index', 'prediction'} per line")
    s.add_argument("--images", help="generation tasks: the folder of generated images in the official layout")
    s.add_argument("--detections", help="GenEval: cached detections JSONL (scores without a detector)")
    s.add_argument("--profile", choices=["official", "vlmevalkit"])
    s.add_argument("--judge", help="OpenAI-compatible judge endpoint URL, or 'none'")
    s.add_argument("--format", choices=["json", "text"], default="text")
    s.add_argument("--skip-bad", dest="skip_bad", action="store_true",
                   help="count bad rows, images or predictions as errors and score the rest")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("table", help="tables of runs beside published baselines")
    s.add_argument("--runs", nargs="*", default=[])
    s.add_argument("--baselines", choices=["paper", "geneval_readme"],
                   help="published rows beside the runs: the paper's table, or the GenEval README (table4)")
    s.add_argument("--format", choices=["csv", "latex", "md", "html"], default="md")
    s.add_argument("--layout", choices=["table3", "table4", "table6"], default="table6")
    s.add_argument("--out", help="write to this file instead of stdout")
    s.set_defaults(func=cmd_table)

    s = sub.add_parser("compare", help="regression check of a candidate run against a baseline run")
    s.add_argument("--baseline", required=True)
    s.add_argument("--candidate", required=True)
    s.add_argument("--policy", help="YAML of allowed drops per benchmark (example: ci/policy.yaml)")
    s.add_argument("--summary", help="append the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    s.add_argument("--out", help="write summary.md, flips.html (samples that changed) and junit.xml here")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="a self-contained HTML report of a run")
    s.add_argument("run")
    s.add_argument("--out", help="output HTML path (default RUN/report.html)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("data", help="where each task's data is looked for, and whether it is there")
    s.add_argument("task", nargs="?")
    s.add_argument("--fetch", action="store_true", help="download missing data from its official location")
    s.add_argument("--format", choices=["text", "json"], default="text")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("predict", help="try a checkpoint on one question or one prompt")
    s.add_argument("--model", required=True)
    s.add_argument("--model-args", dest="model_args")
    s.add_argument("--image", help="image to ask about")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=512)
    s.add_argument("--generate", action="store_true", help="draw an image instead of answering")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cfg", type=float)
    s.add_argument("--image-top-k", dest="image_top_k", type=int)
    s.add_argument("--out", help="PNG path for --generate")
    s.add_argument("--format", choices=["json", "text"], default="text")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("export", help="write a run's predictions in another harness's format (VLMEvalKit)")
    s.add_argument("--format", choices=["vlmevalkit"], default="vlmevalkit")
    s.add_argument("--run", required=True, help="run directory")
    s.add_argument("--out", required=True, help="folder for the files ({model}_{dataset}.xlsx for VLMEvalKit)")
    s.add_argument("--model-name", dest="model_name", help="{model} in the file names (default: the run's model)")
    s.add_argument("--vk-format", dest="vk_format", choices=["xlsx", "tsv", "json"], default="xlsx",
                   help="VLMEvalKit file type (its PRED_FORMAT; default xlsx)")
    s.add_argument("--tasks", help="comma-separated task ids (default: every exportable task of the run)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("vlmeval", help="VLMEvalKit with our models (needs the vlmeval extra): run | eval",
                       description="run: VLMEvalKit's run.py with our model class UniTokenEval and the Local* "
                                   "datasets registered (python -m integrations.vlmeval.run); eval: VLMEvalKit's "
                                   "evaluate on a prediction file (python -m integrations.vlmeval.evaluate). "
                                   "Arguments after the action go to those modules unchanged.")
    s.add_argument("action", choices=["run", "eval"])
    s.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for run.py / evaluate")
    s.set_defaults(func=cmd_vlmeval)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished samples are stored; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
