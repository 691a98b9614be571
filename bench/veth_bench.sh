#!/usr/bin/env bash
# NFSv3 large-file throughput over the lab's veth pair (nfs-ganesha server, libnfs client
# tests/lab/nfsf_client.c), with and without nfsfence's TC programs on the client's vcli.
# "with" = `nfsfence attach vcli --policy P` (the real agent: maps populated from the
# server, the written file's handle enters the handle map from the CREATE reply, so every
# WRITE's lookup hits a tree that is NOT over quota: the common path).
# Runs alternate (none/tc, tc/none, ...) so load from other builds hits both modes alike;
# the report gives median, min and max MB/s per mode and the median ratio.
#
#   bench/veth_bench.sh            # env: BUILD=build-bpfbench RUNS=5 SIZE_MIB=256 CHUNK=1Mi INFLIGHT=4
#
# Needs root. Only the lab's namespaces are used (tests/lab/lab.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bpfbench}
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-256}
CHUNK=${CHUNK:-1Mi}
INFLIGHT=${INFLIGHT:-4}
SETTLE=${SETTLE:-3} # seconds between "ready" (or the previous run) and the timed write
OUT=${OUT:-$BUILD/bench-out}
NFSFENCE=$BUILD/nfsfence
export NFSF_CLIENT=$BUILD/tests/nfsf_client
[[ -x $NFSFENCE && -x $NFSF_CLIENT ]] ||
	{ echo "build first: cmake --build $BUILD --target nfsfence nfsf_client" >&2; exit 2; }
mkdir -p "$OUT"

# shellcheck source=../tests/lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_require
export LAB_NO_TRAP=1
AGENT_PID=
BPFFS=
cleanup() {
	local rc=$?
	detach_tc || true
	[[ -n $BPFFS ]] && { rm -rf "$PIN" 2>/dev/null; umount "$BPFFS" 2>/dev/null; }
	lab_down
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up vbench
# Pins go to a private bpffs under LAB_DIR: `ip netns exec` remounts /sys, so /sys/fs/bpf is
# not the host's bpffs in there, and each `ip netns exec` has its own mount namespace (the
# agent would mount a bpffs only it sees, and status/detach could not find the maps).
BPFFS=$LAB_DIR/bpffs
mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS"
PIN=$BPFFS/nfsfence

mkdir -p "$LAB_EXPORT/bench"
chmod 0777 "$LAB_EXPORT/bench"
POLICY=$LAB_DIR/policy.yaml
STATE=$LAB_DIR/state
cat >"$POLICY" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees:
  - name: bench
    path: bench
    limit: 1Ti
EOF

attach_tc() {
	: >"$LAB_DIR/agent.log"
	lab_cli "$NFSFENCE" attach vcli --policy "$POLICY" --pin-dir "$PIN" --state-dir "$STATE" \
		>>"$LAB_DIR/agent.log" 2>&1 &
	AGENT_PID=$!
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q 'ready' "$LAB_DIR/agent.log" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "agent did not get ready:" >&2
	cat "$LAB_DIR/agent.log" >&2
	return 1
}
detach_tc() {
	[[ -n ${AGENT_PID:-} ]] || return 0
	lab_cli "$NFSFENCE" detach vcli --pin-dir "$PIN" --state-dir "$STATE" >>"$LAB_DIR/agent.log" 2>&1 || true
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=
	# nothing of ours may stay on vcli
	if lab_cli tc filter show dev vcli egress 2>/dev/null | grep -q bpf; then
		echo "filters still on vcli after detach" >&2
		return 1
	fi
}

BYTES=$((SIZE_MIB * 1048576))
URL=$(lab_url bench)
RESULTS=$OUT/veth_bench.tsv
echo -e "run\tmode\twrite_s\tread_s\twrite_MBps\tread_MBps" >"$RESULTS"

now() { date +%s.%N; }
one_run() {  # MODE RUN
	local mode=$1 run=$2 f="f-$1-$2" t0 t1 t2
	[[ $mode == tc ]] && attach_tc
	sleep "$SETTLE"
	t0=$(now)
	lab_client --inflight "$INFLIGHT" "$URL" write "$f" "${SIZE_MIB}Mi" "$CHUNK" >/dev/null
	t1=$(now)
	lab_client --inflight "$INFLIGHT" "$URL" read "$f" "$CHUNK" >/dev/null
	t2=$(now)
	if [[ $mode == tc ]]; then
		lab_cli "$NFSFENCE" status vcli --format json --pin-dir "$PIN" --state-dir "$STATE" \
			>"$OUT/veth_status-$run.json" 2>"$OUT/veth_status-$run.err" || true
		detach_tc
	fi
	lab_client "$URL" rm "$f" >/dev/null
	awk -v r="$run" -v m="$mode" -v a="$t0" -v b="$t1" -v c="$t2" -v n="$BYTES" 'BEGIN {
		printf "%s\t%s\t%.3f\t%.3f\t%.1f\t%.1f\n", r, m, b - a, c - b, n / 1e6 / (b - a), n / 1e6 / (c - b) }' |
		tee -a "$RESULTS"
}

# one warm-up of each (ganesha caches, page cache), not reported
lab_client --inflight "$INFLIGHT" "$URL" write warm "${SIZE_MIB}Mi" "$CHUNK" >/dev/null
lab_client --inflight "$INFLIGHT" "$URL" read warm "$CHUNK" >/dev/null
lab_client "$URL" rm warm >/dev/null

for ((r = 1; r <= RUNS; r++)); do
	if ((r % 2)); then one_run none "$r"; one_run tc "$r"; else one_run tc "$r"; one_run none "$r"; fi
done

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "size ${SIZE_MIB} MiB, chunk $CHUNK, inflight $INFLIGHT, runs $RUNS (alternating)"
awk -F'\t' 'NR > 1 { w[$2] = w[$2] " " $5; r[$2] = r[$2] " " $6 }
function med(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	mn = a[1]; mx = a[n]
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "| op | without TC MB/s (median [min–max]) | with nfsfence MB/s (median [min–max]) | ratio of medians |\n|---|---:|---:|---:|\n"
	wn = med(w["none"]); a1 = mn; a2 = mx; wt = med(w["tc"]); b1 = mn; b2 = mx
	printf "| write | %.1f [%.1f–%.1f] | %.1f [%.1f–%.1f] | %.3f |\n", wn, a1, a2, wt, b1, b2, wt / wn
	rn = med(r["none"]); a1 = mn; a2 = mx; rt = med(r["tc"]); b1 = mn; b2 = mx
	printf "| read | %.1f [%.1f–%.1f] | %.1f [%.1f–%.1f] | %.3f |\n", rn, a1, a2, rt, b1, b2, rt / rn
}' "$RESULTS"
last=$(ls -t "$OUT"/veth_status-*.json 2>/dev/null | head -1 || true)
if [[ -n $last ]]; then
	echo "counters of the last 'with' run ($last):"
	grep -oE '"(write_allowed|write_unknown_fh|write_calls|mid_record|resync|err_[a-z_]+|write_refused_rewrite)": *[0-9]+' "$last" | tr '\n' ' '
	echo
fi
