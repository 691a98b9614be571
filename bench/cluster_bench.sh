#!/usr/bin/env bash
# What several nodes sharing usage cost etcd (docs/benchmarks.md, "Several nodes"): one
# etcd 3.4 member (Debian etcd-server; data on /dev/shm) in a network namespace made here,
# and nfsf_cluster_bench's simulated nodes (real src/cluster.h clients) fed from a recorded
# capture (default: pcaps/lab-tcp-quota.pcap, made in the lab by tests/lab/make_pcaps.sh).
#
#   sudo bench/cluster_bench.sh [--quick]
#
# Rows: 1, 10 and 100 nodes at 1,000 trees, coalesced every 100 ms; and 1 and 10 nodes
# publishing at every report (flush_ms 1, what "no batching" costs). Each row: etcd
# requests/s, bytes sent/s, reports published per WRITE reply, watch events delivered/s,
# etcd's CPU seconds per second (from /proc), its database size and the bytes per tree
# of the keys (etcdctl get --prefix). --quick: 1 and 10 nodes, 3 s each.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
BUILD=${NFSF_BUILD_DIR:-$SRC/build}
BENCH=$BUILD/bench/nfsf_cluster_bench
CAPTURE=${CAPTURE:-$SRC/pcaps/lab-tcp-quota.pcap}
POLICY=${POLICY:-$SRC/pcaps/lab-tcp-quota.policy.yaml}
SECS=10
# nodes, flush_ms, WRITE replies per second per node
ROWS=("1 100 1000" "10 100 1000" "100 100 1000" "10 100 100" "100 100 100" "100 100 10" "1 1 1000" "10 1 1000")
if [[ ${1:-} == --quick ]]; then
	SECS=3
	ROWS=("1 100 1000" "10 100 1000" "1 1 1000")
fi
[[ $(id -u) == 0 ]] || { echo "bench/cluster_bench.sh: needs root (a network namespace for etcd)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "bench/cluster_bench.sh: etcd not installed (scripts/deps.sh)" >&2; exit 1; }
[[ -x $BENCH ]] || { echo "bench/cluster_bench.sh: $BENCH not built (cmake --build build --target nfsf_cluster_bench)" >&2; exit 1; }

NS=nfsf-cbench-$$
DATA=/dev/shm/nfsf-cbench-$$
cleanup() {
	set +e
	ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
	sleep 0.2
	ip netns del "$NS" 2>/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
URL=http://127.0.0.1:2379

printf '%-6s %-6s %-6s %7s %9s %11s %10s %9s %11s %9s %8s %8s %9s %7s\n' nodes trees flush WRITE/s req/s bytes/s pub/WRITE pub/s watch_ev/s etcd_cpu db_MiB files B/tree lost
for row in "${ROWS[@]}"; do
	read -r nodes flush rate <<<"$row"
	rm -rf "$DATA"
	ip netns exec "$NS" etcd --data-dir "$DATA" --listen-client-urls $URL --advertise-client-urls $URL \
		--listen-peer-urls http://127.0.0.1:2380 --quota-backend-bytes $((8 << 30)) >"$DATA.log" 2>&1 &
	epid=$!
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$NS" curl -sf --noproxy '*' $URL/health >/dev/null 2>&1 && break
		sleep 0.1
	done
	cpu0=$(awk '{ print $14 + $15 }' "/proc/$epid/stat")
	w0=$(date +%s%N)
	out=$(ip netns exec "$NS" "$BENCH" --etcd $URL --capture "$CAPTURE" --policy "$POLICY" --nodes "$nodes" \
		--trees 1000 --seconds "$SECS" --flush-ms "$flush" --rate "$rate")
	cpu1=$(awk '{ print $14 + $15 }' "/proc/$epid/stat")
	w1=$(date +%s%N) # etcd's CPU over the whole run (connecting and the final publishes included)
	tck=$(getconf CLK_TCK)
	db=$(ip netns exec "$NS" curl -s --noproxy '*' $URL/metrics | awk '$1 == "etcd_mvcc_db_total_size_in_bytes" { print $2 }')
	keys_bytes=$(ip netns exec "$NS" env ETCDCTL_API=3 etcdctl --command-timeout=60s --endpoints $URL get --prefix /nfsfence-bench/files/ | wc -c || true)
	keys=$(ip netns exec "$NS" env ETCDCTL_API=3 etcdctl --command-timeout=60s --endpoints $URL get --prefix /nfsfence-bench/files/ --keys-only | grep -c "^/" || true)
	printf '%-6s %-6s %-6s %7s %9s %11s %10s %9s %11s %9.2f %8.1f %8s %9.1f %7s\n' "$nodes" 1000 "${flush}ms" "$((nodes * rate))" \
		"$(jq -r .etcd_requests_per_s <<<"$out")" "$(jq -r .etcd_bytes_sent_per_s <<<"$out")" \
		"$(jq -r .published_per_write <<<"$out")" "$(jq -r .published_per_s <<<"$out")" \
		"$(jq -r .watch_events_per_s <<<"$out")" "$(python3 -c "print(($cpu1 - $cpu0) / $tck / (($w1 - $w0) / 1e9))")" \
		"$(python3 -c "print(${db:-0} / 1048576)")" "${keys:-?}" "$(python3 -c "print(${keys_bytes:-0} / 1000)")" \
		"$(jq -r .nodes_not_connected_at_end <<<"$out")"
	echo "  $out" >&2
	kill -TERM $epid
	wait $epid 2>/dev/null || true
done
echo "(etcd_cpu: CPU seconds etcd used per second of the bench's run (start to exit), on the same $(nproc) cores as the simulated nodes;"
echo " files: file keys in etcd at the end; B/tree: bytes of their keys and values (etcdctl get) / 1000 trees;"
echo " lost: simulated nodes not connected at the end (their requests timed out: etcd saturated);"
echo " capture $(basename "$CAPTURE"), each file standing for 250 per node; WRITE/s: replies fed per second, all nodes;"
echo " ${SECS} s per row; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
