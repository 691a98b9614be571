#!/usr/bin/env bash
# The agent's reply lag with and without batched wakeups (docs/benchmarks.md, "Latest"):
# tests/lab/e2e_enforce.sh (ganesha + libnfs client, 64 KiB WRITEs, 4 in flight) RUNS times
# with the default --wakeup-us and with --wakeup-us 0, alternating; prints each run's
# reply_lag line (the agent's own measure, from `nfsfence status`) and vol-a's overshoot.
#
#   sudo bench/reply_lag.sh        # env: BUILD=build RUNS=2
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
RUNS=${RUNS:-2}
export NFSF_BIN=$BUILD/nfsfence NFSF_CLIENT=$BUILD/tests/nfsf_client
for ((i = 1; i <= RUNS; i++)); do
	for args in "" "--wakeup-us 0"; do
		out=$(E2E_AGENT_ARGS="$args" bash "$ROOT/tests/lab/e2e_enforce.sh" 2>&1) ||
			{ echo "run $i [${args:-default}]: e2e_enforce.sh failed" >&2; echo "$out" | grep FAIL >&2; exit 1; }
		echo "run $i [${args:-default wakeups}]: $(grep -o 'reply events reached the agent after.*' <<<"$out" | head -1)"
		echo "    $(grep -o 'vol-a overshoot past the 1Mi limit on the server.s disk: [0-9]* bytes' <<<"$out" | head -1)"
	done
done
