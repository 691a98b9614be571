#!/usr/bin/env bash
# Policy change to enforcement for a tree of FILES files (default 10,000): the time from the
# tree file's rename into the agent's --policy-dir to the tree being enforced, and the walk's
# handles/s, ROUNDS times (the tree removed again in between), in the lab (ganesha + the
# agent on the client's veth; root).
#
#   sudo bench/reload_bench.sh [FILES] [ROUNDS]
#
# Prints per round: rename -> state file lists the tree (what the test harness sees),
# inotify -> maps written and the walk's own time (the agent's log line), handles/s; then
# min/median/max. Then one probe that a WRITE to the tree is refused (the tree's big file
# is over its limit), so the times are times to enforcement, not to a log line.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$HERE/.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
# shellcheck source=tests/lab/lab.sh
source "$NFSF_SOURCE_DIR/tests/lab/lab.sh"
lab_require
lab_bpf_require
lab_client_bin >/dev/null || lab_skip "nfsf_client not built"
FILES=${1:-10000}
ROUNDS=${2:-5}
LAB_NO_TRAP=1
lab_up reloadbench >/dev/null
trap lab_e2e_down EXIT
lab_agent_dirs
D=$LAB_DIR/policy.d
mkdir -p "$D" "$LAB_EXPORT/big/sub"
printf 'export: %s\nserver: %s\n' "$LAB_EXPORT_PATH" "$LAB_SRV_IP" >"$D/_defaults.yaml"
head -c 1048576 /dev/urandom >"$LAB_EXPORT/big/f"
(cd "$LAB_EXPORT/big/sub" && seq -f 'file-%05g' 1 $((FILES - 3)) | xargs touch)
lab_agent_start "$LAB_DIR/agent.log" --policy-dir "$D" --mount-port 20048 >/dev/null
STATE=$LAB_STATE_DIR/vcli.json
now_us() { echo "${EPOCHREALTIME/./}"; }
listed() { grep -qF '"name": "big",' "$STATE" 2>/dev/null; }
echo "tree of $FILES handles (1 directory of $((FILES - 3)) empty files, a 1 MiB file), $ROUNDS rounds; $(nproc) CPUs, $(uname -r)"
a=() b=() r=()
for ((i = 1; i <= ROUNDS; i++)); do
	n0=$(grep -c '^nfsfence: policy applied' "$LAB_DIR/agent.log" || true)
	t0=$(now_us)
	printf 'path: big\nlimit: 512Ki\n' >"$D/.big.tmp" && mv "$D/.big.tmp" "$D/big.yaml"
	until listed; do sleep 0.002; done
	t1=$(now_us)
	until [[ $(grep -c '^nfsfence: policy applied' "$LAB_DIR/agent.log") -gt $n0 ]]; do sleep 0.01; done
	line=$(grep '^nfsfence: policy applied' "$LAB_DIR/agent.log" | tail -n 1)
	walked=$(sed -n 's/.*walked \([0-9]*\) handles in \([0-9.]*\) ms; \([0-9.]*\) ms after.*/\1 \2 \3/p' <<<"$line")
	read -r h ms seen <<<"$walked"
	rate=$(awk -v h="$h" -v ms="$ms" 'BEGIN { printf "%.0f", h / (ms / 1000) }')
	printf 'round %d: rename -> listed %.1f ms; inotify -> enforced %s ms (walk of %s handles and maps: %s ms, %s handles/s)\n' \
		"$i" "$(awk -v d=$((t1 - t0)) 'BEGIN { print d / 1000 }')" "$seen" "$h" "$ms" "$rate"
	a+=($((t1 - t0))) b+=("$seen") r+=("$rate")
	out=$(lab_client "$(lab_url)" pwrite big/f 0 4Ki 2>&1 || true)
	grep -q 'status=NFS3ERR_DQUOT' <<<"$out" || { echo "FAIL: round $i: a WRITE to the tree passed: $out" >&2; exit 1; }
	rm "$D/big.yaml"
	while listed; do sleep 0.01; done
done
spread() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "min %s, median %s, max %s", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo "rename -> listed (ms): $(spread $(for x in "${a[@]}"; do awk -v d="$x" 'BEGIN { printf "%.1f\n", d / 1000 }'; done))"
echo "inotify -> enforced (ms): $(spread "${b[@]}")"
echo "walk (handles/s): $(spread "${r[@]}")"
echo "every round: a WRITE to the tree afterwards was refused (NFS3ERR_DQUOT)"
