#!/usr/bin/env bash
# The whole test suite on a CUDA machine, the gpu-marked tests included, and its record.
#
#   bash bench/gpu_tests.sh [extra pytest args]      (from the repository root)
#
# WHEELS (default .whl): a folder of wheels for packages the machine lacks (an offline GPU box: datasets,
#   pydantic, ...), installed with --no-index --no-deps into /tmp/gpu-tests-site, which goes first on PYTHONPATH.
#   Fetch them on a machine with PyPI access with `bash bench/gpu_tests.sh --download`.
# INSTALL=0 skips `pip install --no-deps -e .` (needed once: the task/model registry reads entry points).
# OUT (default bench/records): where gpu-tests-<date>-<gpu>.json (counts, versions, command) and .log go.
# JOBS (default auto) / GPU_JOBS (default 4): pytest-xdist workers for the CPU / gpu-marked phase, when
#   pytest-xdist is installed.  PHASES (default "cpu gpu"): which phases run.
# For the integrator's device run (the tree copied to .device_wt/NAME with its .whl/ beside it):
#   cd .device_wt/NAME && OUT=$OUT bash bench/gpu_tests.sh --timeout 240
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}

if [ "${1:-}" = "--download" ]; then
  # pure-Python wheels plus pydantic-core for CPython 3.12 on x86-64 Linux: what the H200 image lacked
  mkdir -p "$WHEELS"
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$WHEELS" \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 pydantic_core==2.50.5 \
    annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  exit $?
fi

OUT=${OUT:-bench/records}
mkdir -p "$OUT"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-tests-site \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/gpu-tests-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ "${INSTALL:-1}" = 1 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
gpu=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '-') if torch.cuda.is_available() else 'no-cuda')")
base="$OUT/gpu-tests-$stamp-$gpu"
# Many workers each with a full set of intra-op and compile threads starve one another until the compiling
# tests run past their timeouts: one thread per worker, no compile worker pools.
xdist_cpu=() xdist_gpu=()
if "$PY" -c "import xdist" 2>/dev/null; then
  xdist_cpu=(-n "${JOBS:-auto}") xdist_gpu=(-n "${GPU_JOBS:-4}")
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-1}
fi
# Phase 1: everything but the gpu-marked tests, spread over the cores; phase 2: the gpu-marked tests, on
# fewer workers (they share one GPU and each compiles).
cmd_cpu=("$PY" -m pytest -q -rfEs "${xdist_cpu[@]}" -m "not gpu" --junitxml "$base-cpu.xml" "$@")
# (--show-capture=stderr: a failure's report leaves out torch.compile's captured debug log)
cmd_gpu=("$PY" -m pytest -q -rfEs "${xdist_gpu[@]}" -m gpu --show-capture=stderr --junitxml "$base-gpu.xml" "$@")
: > "$base.log"
start=$(date +%s)
rc=0 commands=()
PHASES=${PHASES:-cpu gpu}
for phase in $PHASES; do
  if [ "$phase" = cpu ]; then cmd=("${cmd_cpu[@]}"); else cmd=("${cmd_gpu[@]}"); fi
  echo "+ ${cmd[*]}" | tee -a "$base.log"
  PYTHONUNBUFFERED=1 "${cmd[@]}" 2>&1 | tee -a "$base.log"
  prc=${PIPESTATUS[0]}
  [ "$prc" -ne 0 ] && [ "$prc" -ne 5 ] && rc=$prc  # 5: nothing selected (no CUDA: no gpu-marked tests)
  commands+=("${cmd[*]}")
done
secs=$(( $(date +%s) - start ))

PHASES="$PHASES" "$PY" - "$base" "$rc" "$secs" "${commands[@]}" <<'EOF'
import datetime, json, os, platform, sys
import xml.etree.ElementTree as ET
from importlib import metadata

base, rc, secs, commands = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
import torch

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
failures, skips, gpu_tests = [], {}, {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
unreadable = []
for phase in os.environ["PHASES"].split():
    try:
        root = ET.parse(f"{base}-{phase}.xml").getroot()
    except (OSError, ET.ParseError) as exc:
        unreadable.append(f"{phase}: {exc}")
        continue
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "errors"
            elif child.tag == "skipped":
                outcome = "skipped"
                reason = (child.get("message") or "").strip()
                skips[reason] = skips.get(reason, 0) + 1
        counts[outcome] += 1
        if phase == "gpu":
            gpu_tests[outcome] += 1
        if outcome in ("failed", "errors"):
            failures.append(name)
rec = {
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if torch.cuda.is_available() else None,
    "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                 **{n: version(n) for n in ("transformers", "triton", "torchvision", "numpy", "pytest")}},
    "commands": commands, "exit_code": rc, "seconds": secs, "unreadable_junit": unreadable,
    "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TORCHINDUCTOR_COMPILE_THREADS")},
    "counts": counts, "gpu_marked": gpu_tests, "failed_or_errors": failures, "skip_reasons": skips,
}
with open(base + ".json", "w") as f:
    json.dump(rec, f, indent=1)
print(json.dumps({k: rec[k] for k in ("gpu", "versions", "counts", "gpu_marked", "exit_code", "seconds")}))
EOF
exit "$rc"
