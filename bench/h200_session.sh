#!/usr/bin/env bash
# The GPU measurements of issue 6, in steps that each fit one 10-minute device call. Records land in
# bench/records/ and, when $OUT is set (the device tool's return folder), are copied there too.
#   bash bench/h200_session.sh kernels   # int8 kernel sweep, then the full throughput benchmark with its best
#   bash bench/h200_session.sh adapter [bf16|fp8]  # release-layout UniToken-7B through the adapter (int8 images; a last
#                                        # partial batch captures graphs while the previous chunk decodes)
#   bash bench/h200_session.sh scaling   # 1 vs 2 GPUs through the local pool (needs two GPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-}"
copy() { [ -n "$out" ] && cp "$@" "$out"/ || true; }
case "${1:-}" in
  kernels)
    python bench/profile_int8_attention.py | tee /tmp/int8-profile.txt
    best=$(tail -1 /tmp/int8-profile.txt)
    echo "kernel settings: $best"
    env $best python bench/throughput.py | tail -3
    copy /tmp/int8-profile.txt "$(ls -t bench/records/throughput-*.json | head -1)"
    ;;
  adapter)
    python bench/unitoken_release_layout.py --images 330 --gen-batch 160 --kv-cache int8 --prefill "${2:-bf16}" | tail -25
    copy "$(ls -t bench/records/unitoken-release-layout-*.json | head -1)"
    ;;
  scaling)
    python bench/scaling.py --gpus 0,1
    copy "$(ls -t bench/records/scaling-*.json | head -1)"
    ;;
  *)
    echo "usage: $0 kernels|adapter|scaling" >&2
    exit 2
    ;;
esac
