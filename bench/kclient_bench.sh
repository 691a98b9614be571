#!/usr/bin/env bash
# The kernel NFS client numbers of docs/benchmarks.md ("The kernel NFS client and the LSM
# fallback"), from one run of the VM harness with more benchmark rounds than CI's 3: TC and
# LSM overshoot per writer, drop on soft/hard mounts, and write() with no program, a trivial
# LSM program and nfsfence's (timing and bpf_stats), as ratios measured in that one run.
#
#   sudo bench/kclient_bench.sh            # env: BUILD=build ROUNDS=12 OUT=/tmp/kclient-bench.json
#
# Needs root (a network namespace, ganesha, QEMU): the same harness as ctest vm_kernel_client.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-/tmp/kclient-bench.json}
KCLIENT_BENCH_ROUNDS=${ROUNDS:-12} KCLIENT_RESULTS=$OUT "$ROOT/tests/vm/kclient_vm.sh" "$BUILD" | grep -v '^ok: '
python3 - "$OUT" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"kernel {j['kernel']}, limit {j['limit_bytes']} bytes per tree")
print("TC rewrite, bytes past the limit:", j["tc_overshoot_bytes"])
print("LSM, bytes past the limit:", j["lsm_overshoot_bytes"])
print("drop:", j["drop"])
print("boot to the first result / to the end (s):", j["sync_at_s"].get("tiny"), j["sync_at_s"].get("vm_end"))
PY
