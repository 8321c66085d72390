"""``unitoken-eval``: list | run | score | table | compare | report | data | predict | export | vlmeval.

Every user-facing failure (bad config, unknown id, unreadable file) ends as one ``error: ...`` line on
stderr and exit status 2; a regression found by ``compare`` exits 1 (:class:`unitoken_eval.harness.exit_codes.ExitCode`).
Every flag is defined once, in :data:`FLAGS`; a subcommand picks the flags it takes from there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.exit_codes import ExitCode

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = ExitCode.OK, ExitCode.REGRESSION, ExitCode.ERROR


class CliError(Exception):
    """A usage or input error to report on one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from unitoken_eval.harness.aggregate import AggregateError
    from unitoken_eval.harness.compare import CompareError
    from unitoken_eval.harness.config import ConfigError
    from unitoken_eval.harness.registry import RegistryError
    from unitoken_eval.harness.store import StoreError
    from unitoken_eval.harness.plugin import AdapterError, TaskError

    return (CliError, ConfigError, RegistryError, StoreError, AdapterError, TaskError, FileNotFoundError,
            AggregateError, CompareError)


def default_runs_root() -> Path:
    return Path("results") / "runs"


# ---------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    from unitoken_eval.harness import registry

    info: dict[str, Any] = {"tasks": [], "adapters": [], "suites": []}
    for sid in registry.suite_ids():
        try:
            info["suites"].append({"id": sid, "size": registry.suite_size(sid)})
        except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the others
            info["suites"].append({"id": sid, "error": f"{type(exc).__name__}: {exc}"})
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
        info["adapters"].append({"id": aid, "capabilities": sorted(cls.capabilities),
                                 "model_args": _model_args_doc(cls), "stand_in": getattr(cls, "stand_in", None)})
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
        print(f"  {a['id']:<28} {', '.join(a['capabilities'])}" + (f"  [{a['stand_in']}]" if a["stand_in"] else ""))
        if a["model_args"]:
            print(f"  {'':<28} --model-args: {a['model_args']}")
    print("suites:  (whole benchmarks, from each task's declared size)")
    for s in info["suites"]:
        if "error" in s:
            print(f"  {s['id']:<28} UNAVAILABLE: {s['error']}")
            continue
        size, tot = s["size"], s["size"]["total"]
        if size["smoke"]:
            print(f"  {s['id']:<28} embedded smoke samples of {len(size['tasks']) + len(size['undeclared'])} tasks")
            continue
        line = (f"  {s['id']:<28} {tot['understanding_prompts']} prompts about {tot['input_images']} images; "
                f"{tot['generation_prompts']} prompts -> {tot['generated_images']} generated images")
        if size["undeclared"]:
            line += f"; size not declared: {', '.join(size['undeclared'])}"
        print(line)
    return EXIT_OK


def _model_args_doc(cls: type) -> str:
    """The "Model args:" paragraph of an adapter's docstring (class or module), on one line."""
    import inspect

    # a variant documents its arguments where its family's base class does
    docs = [d for c in cls.__mro__ for d in (inspect.getdoc(c) or "",
                                             getattr(sys.modules.get(c.__module__), "__doc__", None) or "")]
    for doc in docs:
        for para in doc.split("\n\n"):
            lines = para.splitlines()
            start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("Model args:")), None)
            if start is not None:
                return " ".join(" ".join(lines[start:]).split()[2:]).replace("``", "")
    return ""


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
    from unitoken_eval.harness import registry
    from unitoken_eval.harness.config import load_config, read_config_file

    if args.config and args.suite:
        raise CliError("give --config or --suite, not both")
    if args.config or args.suite:
        path = args.config or registry.suite_path(args.suite)
        raw = read_config_file(path)
        origin = str(path)
    else:
        if not args.model or not args.tasks:
            raise CliError("run needs --suite, --config, or both --model and --tasks")
        raw, origin = {}, "command line"
    # Command-line flags override the file; an invalid one is reported against its flag.
    overrides: dict[str, str] = {}

    def override(key: str, value: Any) -> None:
        raw[key] = value
        overrides[key] = FLAGS[key][0][0]

    if args.model:
        override("model", args.model)
    if args.model_args is not None:
        override("model_args", args.model_args)
    if args.tasks:
        override("tasks", [t for t in args.tasks.split(",") if t])
        if isinstance(raw.get("subset"), dict) and isinstance(raw["subset"].get("sizes"), dict):
            # a suite narrowed with --tasks keeps the subset sizes of the tasks still in it
            kept = set(registry.expand_task_ids(raw["tasks"]))
            raw["subset"]["sizes"] = {t: n for t, n in raw["subset"]["sizes"].items() if t in kept}
    for key in ("profile", "judge", "limit", "seed", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            override(key, value)
    if args.skip_bad:
        override("skip_bad", True)
    if getattr(args, "retry_errors", False):
        override("retry_errors", True)
    if args.data:
        override("data", {**(raw.get("data") or {}), **_parse_pairs(args.data, "--data")})
    config = load_config(raw, origin, overrides)
    for tid in config.tasks:
        registry.task_class(tid)  # fail before any work on an unknown id
    registry.adapter_class(config.model)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from unitoken_eval.harness.plan import parse_shard_spec, rank_from_environment
    from unitoken_eval.harness.runner import execute_run

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
    gpus = None
    if args.gpus:
        from unitoken_eval.harness.pool import parse_gpus

        try:
            gpus = parse_gpus(args.gpus)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    infer_only = args.infer_only or sharded
    outcome = execute_run(config, Path(args.out) if args.out else None, resume=args.resume,
                          runs_root=default_runs_root(), rank=rank, world=world, gpus=gpus, retries=args.retries,
                          infer_only=infer_only, progress=not args.no_progress)
    _print_summary(outcome, outcome.tables)
    if infer_only:
        print(f"inference only ({'shard %d of %d' % (rank, world) if sharded else 'all shards'}): "
              f"score with `unitoken-eval run --resume --out {outcome.store.root} ...` once every shard is done")
    return EXIT_ERROR if outcome.failed else EXIT_OK


def _print_summary(outcome, written: list[Path]) -> None:
    from unitoken_eval.harness.store import manifest_smoke
    from unitoken_eval.harness.tables import fmt_value

    print(f"run directory: {outcome.store.root}")
    print(f"inferred this time: {outcome.inferred} samples")
    smoke = manifest_smoke(outcome.store.read_manifest())
    if smoke:
        print(f"SMOKE RUN ({smoke}): these numbers test the harness, not a model")
    for tid, r in outcome.results.items():
        value = "not scored" if r.status != "scored" or r.headline.value is None else fmt_value(r.headline.value)
        marks = [x for x in (r.reason, r.coverage().upper()) if x]
        extra = f"  [{'; '.join(marks)}]" if marks else ""
        print(f"  {tid:<28} {r.headline.name} = {value} ({r.headline.scale}){extra}")
    for tid, why in outcome.failed.items():
        print(f"  {tid:<28} FAILED: {why}")
    for p in written:
        print(f"table: {p}")


# ---------------------------------------------------------------- slurm
def run_spec_argv(args: argparse.Namespace) -> list[str]:
    """The ``run`` flags that say what to run, back as a command line (what each Slurm job runs)."""
    out: list[str] = []
    for key in RUN_SPEC:
        names, kw = FLAGS[key]
        value = getattr(args, kw.get("dest", key))
        if kw.get("action") == "store_true":
            out += [names[0]] if value else []
        elif kw.get("action") == "append":
            for item in value or []:
                out += [names[0], str(item)]
        elif value is not None:
            out += [names[0], str(value)]
    return out


def cmd_slurm(args: argparse.Namespace) -> int:
    from unitoken_eval.harness.slurm import write_scripts

    build_config(args)  # validate now, not on the cluster an hour later
    out = Path(args.out).resolve()
    script_dir = Path(args.script_dir) if args.script_dir else out / "slurm"
    try:
        infer, score = write_scripts(run_spec_argv(args), out, args.array, script_dir, args.partition, args.time,
                                     args.cpus, args.mem, args.sbatch_option, args.setup, gres=args.gres)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {infer}\nwrote {score}\nsubmit with:")
    print(f"  jid=$(sbatch --parsable {infer}) && sbatch --dependency=afterany:$jid {score}")
    return EXIT_OK


# ---------------------------------------------------------------- score
def _task_options(items: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs; values read as YAML scalars (``10`` an int, ``false`` a bool)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else value
    return out


def cmd_score(args: argparse.Namespace) -> int:
    from unitoken_eval.harness.scoring import score_files

    result = score_files(
        task_id=args.task,
        data=args.data,
        predictions=args.predictions,
        images=args.images,
        detections=args.detections,
        profile=args.profile,
        judge=args.judge,
        skip_bad=args.skip_bad,
        options=_task_options(args.option),
        partial=args.partial,
    )
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False))
    else:
        from unitoken_eval.harness.tables import fmt_value

        h = result["headline"]
        value = "not scored" if result["status"] != "scored" or h["value"] is None else fmt_value(h["value"])
        print(f"{result['task']} [{result['profile']}] {h['name']} = {value} ({h['scale']}), n = {result['n']}"
              + (f"  [{result['reason']}]" if result["reason"] else ""))
        if result["partial"]:
            print(f"  PARTIAL: the metrics cover {result['coverage'].split(': ', 1)[1]}, not the whole benchmark")
        for k, v in result["metrics"].items():
            print(f"  {k}: {_rounded(v)}")
        if result.get("n_left_out"):
            print(f"  left out: {result['n_left_out']} predictions for rows outside the scored data (another split)")
        if result["n_errors"]:
            print(f"  errors: {result['n_errors']} of {result['n_samples']} samples (not in the metrics)")
            for sid, why in result["errors"].items():
                print(f"    {sid}: {why}")
    return EXIT_OK


def _rounded(value: Any) -> Any:
    """Floats in text output at reading precision (JSON output keeps full precision)."""
    from unitoken_eval.harness.tables import fmt_value

    if isinstance(value, float):
        return fmt_value(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_rounded(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(_rounded(v)) for v in value) + "]"
    return value


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
    from unitoken_eval.harness.tables import table_command

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
    from unitoken_eval.harness.gate_report import compare_command

    return compare_command(baseline, candidate, policy=args.policy, summary=args.summary, out_dir=args.out)


def cmd_report(args: argparse.Namespace) -> int:
    (run,) = _existing_runs([args.run])
    from unitoken_eval.harness.report import write_report

    path = write_report(run, Path(args.out) if args.out else None)
    print(path)
    return EXIT_OK


# ---------------------------------------------------------------- data / predict
def cmd_data(args: argparse.Namespace) -> int:
    """Every source a task needs (data, prompt files, scorer weights) and its shipped smoke data; with
    ``--fetch`` get what can be fetched, and exit 2 naming whatever is still missing and how to get it."""
    from unitoken_eval.harness import registry
    from unitoken_eval.harness.plugin import TaskError

    ids = registry.expand_task_ids([args.task]) if args.task else registry.task_ids()
    rows, problems = [], []
    for tid in ids:
        task = registry.make_task(tid)
        if args.fetch:
            try:
                task.fetch()
            except (TaskError, OSError) as exc:
                problems.append(f"{tid}: {exc}")
        for src in task.describe_sources():
            rows.append({"task": tid, **src})
        smoke = task.smoke_source()
        if smoke:
            rows.append({"task": tid, "what": "embedded smoke data (--suite smoke)", "location": smoke,
                         "present": Path(smoke).exists(), "get": "shipped with unitoken-eval", "fetchable": False})
    if args.fetch:
        problems += [f"{r['task']}: {r['what']}: still missing; get it with: {r['get']}" for r in rows
                     if not r.get("present")]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "present" if r.get("present") else "missing"
            print(f"{r['task']:<28} {state:<8} {r.get('what', '')}\n{'':<37} at  {r.get('location', '')}")
            if not r.get("present"):
                print(f"{'':<37} get {r.get('get', '')}")
    if problems:
        raise CliError("data --fetch left these missing:\n  " + "\n  ".join(problems))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from unitoken_eval.harness.predict import predict_command

    return predict_command(args)


# ---------------------------------------------------------------- export / vlmeval
def cmd_export(args: argparse.Namespace) -> int:
    from unitoken_eval.harness.export import export_vlmevalkit
    from unitoken_eval.harness.interop import InteropError

    (run,) = _existing_runs([args.run])
    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else None
    file_format = args.vk_format
    if file_format == "auto":
        import importlib.util

        file_format = "xlsx" if importlib.util.find_spec("openpyxl") is not None else "tsv"
        if file_format == "tsv":
            print("note: openpyxl is not installed, so the files are .tsv (VLMEvalKit reads them as it reads "
                  ".xlsx); pip install openpyxl, or pass --vk-format xlsx, for .xlsx", file=sys.stderr)
    try:
        report = export_vlmevalkit(run, Path(args.out), model_name=args.model_name, file_format=file_format,
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

    module = {"run": "unitoken_eval.integrations.vlmeval.run", "eval": "unitoken_eval.integrations.vlmeval.evaluate"}[args.action]
    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return subprocess.call([sys.executable, "-m", module, *rest])


# ---------------------------------------------------------------- parser
# Every flag of every subcommand, defined once: key -> (option strings, argparse keywords).  Keys that share
# an option string (``--out``, ``--format``, ``--data``) are different meanings, each defined here once.
FLAGS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    # what to run (run, slurm)
    "suite": (("--suite",), dict(help="a shipped suite (see `unitoken-eval list`), e.g. smoke or paper")),
    "config": (("--config",), dict(help="a run-config YAML file (flags given too override its fields)")),
    "model": (("--model",), dict(help="model adapter id (see `unitoken-eval list`)")),
    "model_args": (("--model-args",), dict(dest="model_args", metavar="K=V,...",
                                           help="arguments for the adapter, e.g. path=/ckpt,dtype=bfloat16")),
    "tasks": (("--tasks",), dict(help="comma-separated task ids (a group id runs its members)")),
    "limit": (("--limit",), dict(type=int, metavar="N", help="at most N samples per task (a quick look; "
                                                            "default: every sample)")),
    "profile": (("--profile",), dict(choices=["official", "vlmevalkit"],
                                     help="scoring protocol: the benchmark authors' or VLMEvalKit's "
                                          "(default: each task's own default)")),
    "judge": (("--judge",), dict(help="OpenAI-compatible judge endpoint URL, or 'none' (tasks that need a "
                                      "judge are then not scored)")),
    "seed": (("--seed",), dict(type=int, help="base seed; each sample's seed derives from it (default 0)")),
    "batch_size": (("--batch-size",), dict(dest="batch_size", type=int, metavar="N",
                                           help="requests per model call (default: the adapter's choice)")),
    "data": (("--data",), dict(action="append", metavar="TASK=SOURCE",
                               help="data source for a task: a path or hub id (repeatable)")),
    "skip_bad": (("--skip-bad",), dict(dest="skip_bad", action="store_true",
                                       help="record bad samples (rows, images, predictions) as errors and go on")),
    "retry_errors": (("--retry-errors",), dict(dest="retry_errors", action="store_true",
                                               help="with --resume: run again the samples recorded as errors "
                                                    "(after fixing their input)")),
    # run
    "run_out": (("--out",), dict(help="run directory (default: results/runs/<run id>)")),
    "resume": (("--resume",), dict(action="store_true",
                                   help="continue the run in --out, skipping finished samples")),
    "no_progress": (("--no-progress",), dict(dest="no_progress", action="store_true",
                                             help="no progress bars (logs only)")),
    "gpus": (("--gpus",), dict(help="local pool: one worker per listed GPU (0,1,... or 'all')")),
    "retries": (("--retries",), dict(type=int, default=2, help="times a failed shard is run again (pool)")),
    "shard": (("--shard",), dict(metavar="I/N", help="run only shard I of N (0-based); torchrun and Slurm "
                                                    "set this themselves")),
    "infer_only": (("--infer-only",), dict(dest="infer_only", action="store_true",
                                           help="store predictions, do not score")),
    # slurm
    "slurm_out": (("--out",), dict(required=True, help="run directory on a filesystem every node sees")),
    "array": (("--array",), dict(type=int, required=True, metavar="N",
                                 help="number of array tasks (shards run in parallel)")),
    "partition": (("--partition",), dict(help="Slurm partition (default: the cluster's default)")),
    "time": (("--time",), dict(default="04:00:00", help="time limit of each job, HH:MM:SS")),
    "cpus": (("--cpus",), dict(type=int, default=8, help="CPUs per task")),
    "mem": (("--mem",), dict(help="memory per node, e.g. 64G (default: the cluster's default)")),
    "gres": (("--gres",), dict(default="gpu:1", help="generic resources each job asks for, e.g. gpu:a100:1; "
                                                   "'none' writes no --gres line")),
    "sbatch_option": (("--sbatch-option",), dict(dest="sbatch_option", action="append", default=[],
                                                 metavar="OPTION",
                                                 help="an extra '#SBATCH' option, e.g. --sbatch-option "
                                                      "--account=abc (repeatable)")),
    "setup": (("--setup",), dict(help="shell line run first in each job, e.g. 'source venv/bin/activate'")),
    "script_dir": (("--script-dir",), dict(dest="script_dir", help="where to write the scripts "
                                                                    "(default: RUN_DIR/slurm)")),
    # score
    "score_task": (("--task",), dict(required=True, help="task id to score")),
    "score_data": (("--data",), dict(help="the task's data (path or hub id); default: the task's default "
                                          "location")),
    "predictions": (("--predictions",), dict(help="JSONL with {'index', 'prediction'} per line")),
    "images": (("--images",), dict(help="generation tasks: the folder of generated images in the official "
                                        "layout")),
    "detections": (("--detections",), dict(help="GenEval: cached detections JSONL (scores without a detector)")),
    "option": (("--option",), dict(action="append", default=[], metavar="KEY=VALUE",
                                   help="a task option, as options.<task> of a run config (e.g. "
                                        "blip_model=/models/blip); repeatable")),
    "partial": (("--partial",), dict(action="store_true",
                                     help="score a file that covers only part of the task's samples; the "
                                          "result says how many and is marked partial")),
    # list, score, data, predict
    "format": (("--format",), dict(choices=["text", "json"], default="text", help="output format")),
    # table / compare / report
    "runs": (("--runs",), dict(nargs="*", default=[], metavar="RUN", help="run directories, one row each")),
    "baselines": (("--baselines",), dict(choices=["paper", "geneval_readme"],
                                         help="published rows beside the runs: the paper's table, or the GenEval "
                                              "README (table4)")),
    "table_format": (("--format",), dict(choices=["csv", "latex", "md", "html"], default="md",
                                         help="table format")),
    "layout": (("--layout",), dict(choices=["table3", "table4", "table6"], default="table6",
                                   help="which paper table: table3 understanding, table4 GenEval, table6 "
                                        "understanding summary")),
    "table_out": (("--out",), dict(help="write to this file instead of stdout")),
    "baseline": (("--baseline",), dict(required=True, metavar="RUN", help="the reference run directory")),
    "candidate": (("--candidate",), dict(required=True, metavar="RUN",
                                         help="the run checked against the baseline")),
    "compare_out": (("--out",), dict(dest="out", help="write summary.md, flips.html (samples that changed "
                                                       "verdict) and junit.xml (one case per task) here")),
    "policy": (("--policy",), dict(help="YAML of allowed drops and statistics per task (example: ci/policy.yaml)")),
    "summary": (("--summary",), dict(help="append the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")),
    "report_run": (("run",), dict(help="run directory")),
    "report_out": (("--out",), dict(help="output HTML path (default: RUN/report.html)")),
    # data
    "data_task": (("task",), dict(nargs="?", help="one task id (default: every task)")),
    "fetch": (("--fetch",), dict(action="store_true",
                                 help="download what is missing and can be downloaded; exit 2 naming what cannot")),
    # predict
    "predict_model": (("--model",), dict(required=True, help="model adapter id (see `unitoken-eval list`)")),
    "image": (("--image",), dict(help="image to ask about")),
    "prompt": (("--prompt",), dict(required=True, help="the question, or the prompt to draw")),
    "max_new_tokens": (("--max-new-tokens",), dict(dest="max_new_tokens", type=int, default=512,
                                                   help="longest answer in tokens")),
    "generate": (("--generate",), dict(action="store_true", help="draw an image instead of answering")),
    "predict_seed": (("--seed",), dict(type=int, default=0, help="sampling seed")),
    "cfg": (("--cfg",), dict(type=float, help="classifier-free guidance scale (default: the adapter's)")),
    "image_top_k": (("--image-top-k",), dict(dest="image_top_k", type=int, metavar="K",
                                             help="top-k sampling of image tokens (default: the adapter's)")),
    "predict_out": (("--out",), dict(help="PNG path for --generate")),
    # export
    "export_format": (("--format",), dict(choices=["vlmevalkit"], default="vlmevalkit", help="target harness")),
    "export_run": (("--run",), dict(required=True, help="run directory")),
    "export_out": (("--out",), dict(required=True, help="folder for the files ({model}_{dataset}.xlsx for "
                                                        "VLMEvalKit)")),
    "model_name": (("--model-name",), dict(dest="model_name", help="{model} in the file names (default: the "
                                                                   "run's model)")),
    "vk_format": (("--vk-format",), dict(dest="vk_format", choices=["auto", "xlsx", "tsv", "json"], default="auto",
                                         help="VLMEvalKit file type (its PRED_FORMAT); auto: xlsx (VLMEvalKit's "
                                              "default) when openpyxl is installed, else tsv, which it reads too")),
    "export_tasks": (("--tasks",), dict(help="comma-separated task ids (default: every exportable task of the "
                                             "run)")),
    "json": (("--json",), dict(action="store_true", help="print what was written as JSON")),
    # vlmeval
    "vlmeval_action": (("action",), dict(choices=["run", "eval"], help="run: VLMEvalKit's run.py; eval: its "
                                                                      "evaluate on a prediction file")),
    "vlmeval_rest": (("rest",), dict(nargs=argparse.REMAINDER, help="arguments for run.py / evaluate")),
}

# The flags that say what to run: shared by `run` and `slurm` (which writes them into its job scripts).
RUN_SPEC = ("suite", "config", "model", "model_args", "tasks", "limit", "profile", "judge", "seed", "batch_size",
            "data", "skip_bad", "retry_errors")


def _add(parser: argparse.ArgumentParser, *keys: str) -> None:
    """Add flags from :data:`FLAGS`; each lands under argparse's own dest (``--out`` -> ``args.out``)."""
    for key in keys:
        names, kw = FLAGS[key]
        parser.add_argument(*names, **kw)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends a flag's default to its help when it has a real one (not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="unitoken-eval", description="Evaluate unified multimodal models.",
                                formatter_class=fmt)
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, func, *keys: str, **kw) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=kw.pop("description", help), formatter_class=fmt, **kw)
        _add(s, *keys)
        s.set_defaults(func=func)
        return s

    command("list", "list task ids, model adapters and suites", cmd_list, "format")
    command("run", "run a model on tasks (or a suite) and score them", cmd_run, *RUN_SPEC, "run_out", "resume",
            "no_progress", "gpus", "retries", "shard", "infer_only")
    command("slurm", "write sbatch scripts: a job array of shard workers, then scoring", cmd_slurm, *RUN_SPEC,
            "slurm_out", "array", "partition", "time", "cpus", "mem", "gres", "sbatch_option", "setup",
            "script_dir")
    command("score", "score a predictions file (or a folder of generated images)", cmd_score, "score_task",
            "score_data", "predictions", "images", "detections", "option", "profile", "judge", "format", "skip_bad", "partial")
    command("table", "tables of runs beside published baselines", cmd_table, "runs", "baselines", "table_format",
            "layout", "table_out")
    command("compare", "regression check of a candidate run against a baseline run", cmd_compare, "baseline",
            "candidate", "policy", "summary", "compare_out")
    command("report", "a self-contained HTML report of a run", cmd_report, "report_run", "report_out")
    command("data", "where each task's data, prompt files and scorer weights are looked for, whether they are "
                    "there, and how to get them", cmd_data, "data_task", "fetch", "format")
    command("predict", "try a checkpoint on one question or one prompt", cmd_predict, "predict_model",
            "model_args", "image", "prompt", "max_new_tokens", "generate", "predict_seed", "cfg", "image_top_k",
            "predict_out", "format")
    command("export", "write a run's predictions in another harness's format (VLMEvalKit)", cmd_export,
            "export_format", "export_run", "export_out", "model_name", "vk_format", "export_tasks", "json")
    command("vlmeval", "VLMEvalKit with our models (needs the vlmeval extra): run | eval", cmd_vlmeval,
            "vlmeval_action", "vlmeval_rest",
            description="run: VLMEvalKit's run.py with our model class UniTokenEval and the Local* datasets "
                        "registered (python -m unitoken_eval.integrations.vlmeval.run); eval: VLMEvalKit's evaluate on a "
                        "prediction file (python -m unitoken_eval.integrations.vlmeval.evaluate). Arguments after the action "
                        "go to those modules unchanged.")
    return p


# Options whose value itself starts with "--" (an sbatch option): "--sbatch-option --account=abc" is read as
# "--sbatch-option=--account=abc", the form argparse accepts.
_VALUE_MAY_LOOK_LIKE_A_FLAG = ("--sbatch-option",)


def _join_flag_values(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--":
            return out + argv[i:]
        if argv[i] in _VALUE_MAY_LOOK_LIKE_A_FLAG and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_flag_values(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not as a traceback at exit
        return code
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except BrokenPipeError:
        # The reader stopped early (`unitoken-eval list | head -1`): not an error of ours, and no traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:
        print("interrupted: finished samples are stored; continue with --resume", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
