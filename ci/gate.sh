#!/usr/bin/env bash
# Gate a checkpoint: evaluate it on a suite, compare with a baseline run, fail on regression.
# The GitHub Actions and GitLab examples (ci/github-gate.yml, ci/gitlab-gate.yml) call this script; walk-through
# in docs/gating.md.
#
#   ci/gate.sh --baseline DIR --out DIR [--suite ci] [--policy ci/policy.yaml] [--summary FILE] [-- RUN ARGS...]
#
# --suite takes a shipped suite id or the path of a run-config YAML.
# RUN ARGS go to `unitoken-eval run` (e.g. --model-args path=/ckpt/step-5000 --judge URL).
# Writes OUT/run (the candidate run) and OUT/gate (summary.md, flips.html, junit.xml).
# Exit status: 0 pass, 1 regression, 2 incomparable runs or a usage error, 3 the evaluation itself failed.
# UNITOKEN_EVAL overrides the command (default: unitoken-eval, else python -m unitoken_eval.harness.cli).
set -uo pipefail

suite=ci
policy="$(cd "$(dirname "$0")" && pwd)/policy.yaml"
baseline=""
out=""
summary=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline) baseline="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --policy) policy="$2"; shift 2 ;;
    --summary) summary="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "gate.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [[ -z "$baseline" || -z "$out" ]]; then
  echo "gate.sh: --baseline DIR and --out DIR are required" >&2
  exit 2
fi
if [[ ! -f "$baseline/manifest.json" ]]; then
  echo "gate.sh: $baseline is not a run directory (no manifest.json): fetch the released run first" >&2
  exit 2
fi

if [[ -n "${UNITOKEN_EVAL:-}" ]]; then
  read -r -a ue <<< "$UNITOKEN_EVAL"
elif command -v unitoken-eval > /dev/null; then
  ue=(unitoken-eval)
else
  ue=(python -m unitoken_eval.harness.cli)
fi

# --resume: a rerun of the job (preempted runner, retried pipeline) continues instead of starting over.
if [[ -f "$suite" ]]; then spec=(--config "$suite"); else spec=(--suite "$suite"); fi
"${ue[@]}" run "${spec[@]}" --out "$out/run" --resume --no-progress "$@"
status=$?
if [[ $status -ne 0 ]]; then
  echo "gate.sh: the evaluation failed (exit $status); see $out/run/run.log" >&2
  exit 3
fi

compare=("${ue[@]}" compare --baseline "$baseline" --candidate "$out/run" --policy "$policy" --out "$out/gate")
if [[ -n "$summary" ]]; then
  compare+=(--summary "$summary")
fi
"${compare[@]}"
