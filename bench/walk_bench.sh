#!/usr/bin/env bash
# Start-up walk of `nfsfence attach`: a tree of N files (in directories of 1000) on a real
# ganesha server in the lab namespaces; prints the walk's handles/s from the agent's ready
# line and the agent's RSS per handle (VmRSS after ready, minus the same agent on an empty
# tree). Root. Usage: bench/walk_bench.sh [N=100000] [BUILD=build]
set -euo pipefail
N=${1:-100000}
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/$BUILD/nfsfence
export NFSF_CLIENT=$ROOT/$BUILD/tests/nfsf_client
source "$ROOT/tests/lab/lab.sh"
lab_require
lab_up walk >/dev/null
BPFFS=$(mktemp -d /tmp/nfsf-walk-bpffs.XXXXXX)
mount -t bpf bpf "$BPFFS"
cleanup() { lab_cli "$BIN" detach vcli --pin-dir "$BPFFS/nfsfence" --state-dir "$LAB_DIR/state" >/dev/null 2>&1 || true; umount "$BPFFS" 2>/dev/null; rmdir "$BPFFS"; lab_down; }
trap cleanup EXIT

run_agent() {  # prints "handles secs rate rss_kib"
  cat > "$LAB_DIR/p.yaml" <<P
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees: [{name: big, path: big, limit: 1Ti}, {name: empty, path: empty, limit: 1Ti}]
P
  lab_cli "$BIN" attach vcli --policy "$LAB_DIR/p.yaml" --mount-port 20048 --pin-dir "$BPFFS/nfsfence" \
    --state-dir "$LAB_DIR/state" 2>"$LAB_DIR/agent.log" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "ready:" "$LAB_DIR/agent.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  grep "ready:" "$LAB_DIR/agent.log" >&2 || { cat "$LAB_DIR/agent.log" >&2; exit 1; }
  local apid; apid=$(pgrep -n -x nfsfence)
  local rss; rss=$(awk '/VmRSS/ {print $2}' "/proc/$apid/status")
  sed -n 's/.*walked \([0-9]*\) handles in [0-9]* directories in \([0-9.]*\) s (\([0-9]*\) handles\/s).*/\1 \2 \3/p' "$LAB_DIR/agent.log" | tr '\n' ' '
  echo "$rss"
  kill -TERM $pid; wait $pid 2>/dev/null || true
  lab_cli "$BIN" detach vcli --pin-dir "$BPFFS/nfsfence" --state-dir "$LAB_DIR/state" >/dev/null 2>&1 || true
}

mkdir -p "$LAB_EXPORT/big" "$LAB_EXPORT/empty"
read -r h0 s0 r0 rss0 < <(run_agent)
for ((d = 0; d * 1000 < N; d++)); do
  mkdir -p "$LAB_EXPORT/big/d$d"
  (cd "$LAB_EXPORT/big/d$d" && seq -f "file-%06g.dat" $((d * 1000)) $((d * 1000 + 999)) | head -n $((N - d * 1000)) | xargs touch)
done
read -r h1 s1 r1 rss1 < <(run_agent)
echo "walk: $h1 handles in $s1 s = $r1 handles/s"
awk -v a="$rss0" -v b="$rss1" -v h="$h1" 'BEGIN { printf "agent RSS: %d KiB empty, %d KiB with %d handles: %.0f bytes/handle (userspace; kernel map memory: docs/architecture.md)\n", a, b, h, (b - a) * 1024 / h }'
