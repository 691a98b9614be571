#!/usr/bin/env bash
# ctest lab_cluster_e2e: several nodes writing one tree, each with its own agent, sharing
# per-file usage through a real etcd (3 members, TLS with client certificates from a CA
# made here). Oracles: the server's disk (ganesha's export) and the clients' NFS statuses.
#
# Lab: ganesha (server namespace); K=4 client namespaces, each with nfsf_client and an
# agent on its vcli (NFS traffic only) and a second link, vetcd, to the etcd namespace
# (3 members on 10.96.0.1-3). Cutting a node's vetcd partitions it from etcd, not from the
# server. Policy: vol-s (limit LIMIT, shared), vol-o (1Gi); cluster: room_chunk CHUNK.
#   0  etcd down at start: node 1's agent enforces with its own view, says so in one log
#      line and in `status`; once etcd runs it connects (status: connected, 1 node);
#   1  two nodes write one file (different offsets): every agent's usage == the disk (the
#      file counted once);
#   2  two nodes fill vol-s with different files at once: both get NFS3ERR_DQUOT, the disk
#      stays within LIMIT + the bound, every agent's usage converges to the disk;
#   3  a third node deletes what the first wrote (after listing, as a client does): every
#      agent's usage converges to the disk and node 1 writes again;
#   4  four nodes fill vol-s at once: the same checks, and the time from the first agent's
#      tree_over to the last one's (their event logs);
#   5  one agent SIGKILLed: its lease expires, the others count one node less (<= TTL + 2 s);
#   6  one node partitioned from etcd (vetcd down): its status says lost, it writes within
#      its share; back: it reconnects and every agent converges to the disk;
#   7  etcd lost (all members stopped): agents say lost and keep enforcing; restarted: they
#      reconnect and converge;
#   8  one member of three stopped: agents stay connected (or reconnect at once) and writes
#      are shared;
#   9  a policy change while sharing: every agent applies it, nothing flips, usage stays the disk's.
# The bound (docs/architecture.md, "Several nodes"): bytes past the limit <= (N-1) x CHUNK
# while etcd answers, plus one share (<= CHUNK) per node cut off from it.
# Writes what it measured, one JSON row per fill, to CLUSTER_ROWS (default
# $NFSF_BUILD_DIR/report-rows/cluster.jsonl).
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs/jq/etcd/openssl/BPF).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
LIMIT=$((32 << 20))
CHUNK=$((4 << 20))
TTL=3
K=4
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_e2e_require jq etcd openssl
FAILS=0

LAB_NO_TRAP=1
lab_up cluster || fatal "lab_up failed"
NS_ETCD="nfsf-cluster-$$-etcd"
declare -a NS AGENT_PID
NS[1]=$LAB_NS_CLI
ETCD_DATA=/dev/shm/nfsf-etcd-$$
ROWS=${CLUSTER_ROWS:-$NFSF_BUILD_DIR/report-rows/cluster.jsonl}
mkdir -p "$(dirname "$ROWS")"
: >"$ROWS"

cluster_down() {
	local rc=$? k
	set +e
	for k in $(seq 1 $K); do [[ -n ${AGENT_PID[k]:-} ]] && kill -KILL "${AGENT_PID[k]}" 2>/dev/null; done
	for k in $(seq 2 $K); do
		lab_kill_ns "${NS[k]}" KILL
		ip netns del "${NS[k]}" 2>/dev/null
	done
	lab_kill_ns "$NS_ETCD" KILL
	sleep 0.2
	ip netns del "$NS_ETCD" 2>/dev/null
	rm -rf "$ETCD_DATA"
	(exit $rc)
	lab_e2e_down
}
trap cluster_down EXIT
lab_agent_dirs || fatal "cannot mount a bpffs for the agents"

# ---- topology: client k (2..K) on its own veth into the server namespace; every client on
# a second veth into the etcd namespace.
for k in $(seq 2 $K); do
	NS[k]="nfsf-cluster-$$-c$k"
	ip netns add "${NS[k]}"
	ip netns exec "${NS[k]}" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip link add vcli netns "${NS[k]}" type veth peer name "vs$k" netns "$LAB_NS_SRV"
	ip -n "${NS[k]}" addr add "10.97.$k.1/24" dev vcli
	ip -n "$LAB_NS_SRV" addr add "10.97.$k.2/24" dev "vs$k"
	ip -n "${NS[k]}" link set lo up
	ip -n "${NS[k]}" link set vcli up
	ip -n "$LAB_NS_SRV" link set "vs$k" up
	ip -n "${NS[k]}" route add "$LAB_SRV_IP/32" via "10.97.$k.2"
done
ip netns add "$NS_ETCD"
ip -n "$NS_ETCD" link set lo up
for m in 1 2 3; do ip -n "$NS_ETCD" addr add "10.96.0.$m/32" dev lo; done
for k in $(seq 1 $K); do
	ip link add vetcd netns "${NS[k]}" type veth peer name "ve$k" netns "$NS_ETCD"
	ip -n "${NS[k]}" addr add "10.95.$k.1/24" dev vetcd
	ip -n "$NS_ETCD" addr add "10.95.$k.2/24" dev "ve$k"
	ip -n "${NS[k]}" link set vetcd up
	ip -n "$NS_ETCD" link set "ve$k" up
	ip -n "${NS[k]}" route add 10.96.0.0/24 via "10.95.$k.2"
done

# ---- TLS: a CA made here, one server certificate for the three members, one client certificate.
PKI=$LAB_DIR/pki
mkdir -p "$PKI"
(
	cd "$PKI"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=nfsfence lab CA" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj "/CN=etcd" 2>/dev/null
	printf 'subjectAltName=IP:10.96.0.1,IP:10.96.0.2,IP:10.96.0.3,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr -subj "/CN=nfsfence-agent" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >client.ext
	openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null
) || fatal "openssl could not make the lab's CA and certificates"

ETCD_PID=()
etcd_start() { # etcd_start M [new|existing]
	local m=$1 state=${2:-new}
	mkdir -p "$ETCD_DATA/m$m"
	ip netns exec "$NS_ETCD" etcd --name "m$m" --data-dir "$ETCD_DATA/m$m" \
		--listen-client-urls "https://10.96.0.$m:2379" --advertise-client-urls "https://10.96.0.$m:2379" \
		--listen-peer-urls "http://127.0.0.1:238$m" --initial-advertise-peer-urls "http://127.0.0.1:238$m" \
		--initial-cluster "m1=http://127.0.0.1:2381,m2=http://127.0.0.1:2382,m3=http://127.0.0.1:2383" \
		--initial-cluster-state "$state" --initial-cluster-token "nfsf-$$" \
		--cert-file "$PKI/server.pem" --key-file "$PKI/server-key.pem" --client-cert-auth \
		--trusted-ca-file "$PKI/ca.pem" >>"$LAB_DIR/etcd-m$m.log" 2>&1 &
	ETCD_PID[m]=$!
}
etcd_stop() {
	kill -TERM "${ETCD_PID[$1]}" 2>/dev/null || true
	wait "${ETCD_PID[$1]}" 2>/dev/null || true
}
etcdctl_lab() {
	ip netns exec "$NS_ETCD" env ETCDCTL_API=3 etcdctl --endpoints "https://10.96.0.1:2379,https://10.96.0.2:2379,https://10.96.0.3:2379" \
		--cacert "$PKI/ca.pem" --cert "$PKI/client.pem" --key "$PKI/client-key.pem" "$@"
}
etcd_wait_healthy() {
	local i
	for ((i = 0; i < 100; i++)); do
		etcdctl_lab endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

POLICY=$LAB_DIR/policy.yaml
cat >"$POLICY" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees:
  - name: vol-s
    path: vol-s
    limit: $LIMIT
  - name: vol-o
    path: vol-o
    limit: 1Gi
cluster:
  etcd: [https://10.96.0.1:2379, https://10.96.0.2:2379, https://10.96.0.3:2379]
  prefix: /nfsfence/lab
  ca: pki/ca.pem
  cert: pki/client.pem
  key: pki/client-key.pem
  room_chunk: $CHUNK
  flush_ms: 100
  lease_ttl: $TTL
EOF
mkdir -p "$LAB_EXPORT/vol-s" "$LAB_EXPORT/vol-o"
chmod 0777 "$LAB_EXPORT/vol-s" "$LAB_EXPORT/vol-o"

agent_start() { # agent_start K: waits for ready (20 s); node 2 serves metrics on 127.0.0.1:9109 (its namespace)
	local k=$1 i more=()
	local log=$LAB_DIR/agent$k.log
	mkdir -p "$LAB_DIR/state$k"
	: >"$log"
	[[ $k == 2 ]] && more=(--metrics 127.0.0.1:9109)
	ip netns exec "${NS[k]}" "$NFSF_BIN" attach vcli --policy "$POLICY" --node "node$k" \
		--pin-dir "$LAB_BPFFS/n$k" --state-dir "$LAB_DIR/state$k" "${more[@]}" 2>"$log" &
	AGENT_PID[k]=$!
	for ((i = 0; i < 200; i++)); do
		grep -q '^nfsfence: ready:' "$log" && return 0
		kill -0 "${AGENT_PID[k]}" 2>/dev/null || fatal "agent $k exited before ready: $(tail -n 3 "$log")"
		sleep 0.1
	done
	fatal "agent $k not ready within 20 s: $(tail -n 3 "$log")"
}
status_of() { ip netns exec "${NS[$1]}" "$NFSF_BIN" status vcli --format json --pin-dir "$LAB_BPFFS/n$1" --state-dir "$LAB_DIR/state$1" 2>/dev/null; }
cluster_state() { status_of "$1" | jq -r '.cluster.state // "none"'; }
usage_of() { status_of "$1" | jq -r --arg t "${2:-vol-s}" '.trees[] | select(.name == $t) | .usage_bytes'; }
disk_used() { lab_tree_used vol-s; }
client() { # client K OUT [--keep-going] [--inflight N] OP...: nfsf_client in node K's namespace; exit status in CLIENT_RC
	local k=$1 out=$2 opts=()
	shift 2
	while [[ ${1:-} == --* ]]; do
		if [[ $1 == --inflight ]]; then opts+=("$1" "$2") && shift 2; else opts+=("$1") && shift; fi
	done
	CLIENT_RC=0
	ip netns exec "${NS[k]}" "$(lab_client_bin)" "${opts[@]}" "$(lab_url "")" "$@" >"$out" 2>&1 || CLIENT_RC=$?
}
wait_for() { # wait_for SECS DESCRIPTION COMMAND...: polls every 0.2 s
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}
all_converged() { # every running agent's vol-s usage == the disk's
	local d k u
	d=$(disk_used)
	for k in "$@"; do
		u=$(usage_of "$k")
		[[ $u == "$d" ]] || return 1
	done
}
state_is() { [[ $(cluster_state "$1") == "$2" ]]; }
nodes_is() { [[ $(status_of "$1" | jq -r '.cluster.nodes') == "$2" ]]; }
converge_check() { # converge_check WHAT NODES...
	local what=$1
	shift
	if wait_for 8 "$what" all_converged "$@"; then
		ok "$what: every agent's vol-s usage == the disk's ($(disk_used) bytes)"
	else
		local k msg=""
		for k in "$@"; do msg+=" node$k=$(usage_of "$k")"; done
		fail "$what: agents' usage did not converge to the disk's $(disk_used) within 8 s:$msg"
	fi
}
row() { echo "$1" >>"$ROWS"; }

# ---- bad combinations: one line, exit 1, nothing attached
one_error() { # one_error NAME EXPECTED-TEXT ARGS...: attach fails with one line holding the text
	local name=$1 want=$2 rc=0
	shift 2
	ip netns exec "${NS[1]}" "$NFSF_BIN" attach "$@" --pin-dir "$LAB_BPFFS/n1" --state-dir "$LAB_DIR/state1" \
		>"$LAB_DIR/$name.out" 2>"$LAB_DIR/$name.err" || rc=$?
	if [[ $rc == 1 && $(wc -l <"$LAB_DIR/$name.err") == 1 ]] && grep -qF -- "$want" "$LAB_DIR/$name.err" &&
		[[ ! -e $LAB_BPFFS/n1/vcli ]]; then
		ok "$name: $(cat "$LAB_DIR/$name.err")"
	else
		fail "$name: exit $rc, stderr: $(head -n 3 "$LAB_DIR/$name.err")"
	fi
}
sed '/^cluster:/,$d' "$POLICY" >"$LAB_DIR/single.yaml"
one_error node-without-cluster "has no cluster:" vcli --policy "$LAB_DIR/single.yaml" --node node1
one_error lsm-with-cluster "cluster: is for --mode tc" --mode lsm --policy "$POLICY"

# ---- 0: etcd down at start
agent_start 1
if grep -q "cluster: etcd unreachable" "$LAB_DIR/agent1.log" || wait_for 3 "log" grep -q "cluster: etcd unreachable" "$LAB_DIR/agent1.log"; then
	ok "0: etcd down at start: one log line: $(grep -m1 'cluster: etcd unreachable' "$LAB_DIR/agent1.log" | cut -c1-120)"
else
	fail "0: no 'etcd unreachable' line in the agent's log"
fi
n_lines=$(grep -c "cluster: etcd unreachable" "$LAB_DIR/agent1.log" || true)
check "0: said once ($n_lines lines) while etcd stays down" test "$n_lines" -eq 1
# (the state file is written about once a second)
if wait_for 3 "state" state_is 1 unreachable; then ok "0: status says unreachable"; else fail "0: status says $(cluster_state 1)"; fi
client 1 "$LAB_DIR/c0.out" write vol-s/own 1Mi
check "0: writes under the limit pass with the node's own view (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
for m in 1 2 3; do etcd_start "$m"; done
etcd_wait_healthy || fatal "etcd did not become healthy: $(tail -n 3 "$LAB_DIR/etcd-m1.log")"
if wait_for 10 "connect" state_is 1 connected; then ok "0: connected once etcd runs"; else fail "0: not connected 10 s after etcd came up: $(status_of 1 | jq -c .cluster)"; fi
status_text_connected() {
	ip netns exec "${NS[1]}" "$NFSF_BIN" status vcli --pin-dir "$LAB_BPFFS/n1" --state-dir "$LAB_DIR/state1" 2>/dev/null |
		grep -q '^  cluster: node node1, connected to etcd https://10.96.0.[123]:2379, 1 nodes, '
}
check "0: status text: cluster: node node1, connected to etcd ..." status_text_connected
check "0: the write made before etcd is in etcd (one file key)" test "$(etcdctl_lab get --prefix /nfsfence/lab/files/ --keys-only | grep -c .)" -ge 1

for k in $(seq 2 $K); do agent_start "$k"; done
if wait_for 10 "nodes" nodes_is 1 "$K"; then ok "all $K agents hold a lease (node 1 counts $K nodes)"; else fail "node 1 counts $(status_of 1 | jq .cluster.nodes) nodes, not $K"; fi
converge_check "start" 1 2 3 4

# ---- 1: one file, two writers
client 1 "$LAB_DIR/c1a.out" write vol-s/same 4Mi
client 2 "$LAB_DIR/c1b.out" pwrite vol-s/same 4Mi 4Mi
check "1: both writes of one file pass" test "$CLIENT_RC" -eq 0
converge_check "1: one file written by two nodes (counted once)" 1 2 3 4
client 3 "$LAB_DIR/c1c.out" ls vol-s rm vol-s/same rm vol-s/own
check "1: node 3 removes them (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
converge_check "1: removed by another node" 1 2 3 4

fill() { # fill TAG NODES...: each node writes its own file until refused; sets OVER (bytes past the limit)
	local tag=$1 k pids=()
	shift
	for k in "$@"; do
		(client "$k" "$LAB_DIR/$tag-$k.out" --inflight 4 write "vol-s/$tag-$k" 64Mi; echo "$CLIENT_RC" >"$LAB_DIR/$tag-$k.rc") &
		pids+=($!)
	done
	wait "${pids[@]}"
	for k in "$@"; do
		local rc
		rc=$(cat "$LAB_DIR/$tag-$k.rc")
		if [[ $rc == 1 ]] && grep -q NFS3ERR_DQUOT "$LAB_DIR/$tag-$k.out"; then
			ok "$tag: node $k refused with NFS3ERR_DQUOT after $(grep -c 'status=OK' "$LAB_DIR/$tag-$k.out") WRITEs"
		else
			fail "$tag: node $k: exit $rc, no NFS3ERR_DQUOT: $(tail -n 2 "$LAB_DIR/$tag-$k.out")"
		fi
	done
	local used
	used=$(disk_used)
	OVER=$((used > LIMIT ? used - LIMIT : 0))
	UNDER=$((used < LIMIT ? LIMIT - used : 0))
}
clear_tree() { # node 3 removes every file in vol-s
	local f ops=(ls vol-s)
	for f in "$LAB_EXPORT"/vol-s/*; do [[ -e $f ]] && ops+=(rm "vol-s/${f##*/}"); done
	client 3 "$LAB_DIR/clear.out" "${ops[@]}"
}

# ---- 2: two nodes fill vol-s
t0=$(date +%s%3N)
fill two 1 2
t1=$(date +%s%3N)
bound=$(((K - 1) * CHUNK))
check "2: two writers: $OVER bytes past the limit on disk (bound $bound), $UNDER short of it" test "$OVER" -le "$bound"
converge_check "2: after the fill" 1 2 3 4
row "$(jq -cn --arg s two_writers --argjson o "$OVER" --argjson u "$UNDER" --argjson l "$LIMIT" --argjson c "$CHUNK" \
	--argjson ms $((t1 - t0)) '{scenario:$s, writers:2, nodes:4, limit:$l, room_chunk:$c, overshoot_bytes:$o, short_bytes:$u, fill_ms:$ms}')"

# ---- 3: a third node deletes what node 1 wrote; node 1 writes again
client 3 "$LAB_DIR/c3.out" ls vol-s rm vol-s/two-1
check "3: node 3 deletes node 1's file (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
converge_check "3: deleted by another node" 1 2 3 4
client 1 "$LAB_DIR/c3b.out" write vol-s/again 1Mi
check "3: node 1 writes again once usage fell (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
clear_tree
converge_check "3: tree emptied" 1 2 3 4

# ---- 4: four nodes fill vol-s
fill four 1 2 3 4
check "4: four writers: $OVER bytes past the limit on disk (bound $bound), $UNDER short of it" test "$OVER" -le "$bound"
converge_check "4: after the fill" 1 2 3 4
row "$(jq -cn --argjson o "$OVER" --argjson u "$UNDER" --argjson l "$LIMIT" --argjson c "$CHUNK" \
	'{scenario:"four_writers", writers:4, nodes:4, limit:$l, room_chunk:$c, overshoot_bytes:$o, short_bytes:$u}')"
clear_tree
converge_check "4: tree emptied" 1 2 3 4

# ---- 4b: one node's report takes the tree over (a writer without an agent: bytes put on
# the server's disk directly, which node 1 then lists): every agent flips vol-s to over;
# the time from node 1's tree_over to each other agent's, from their event logs.
for k in $(seq 1 $K); do rm -f "$LAB_DIR/state$k"/vcli.events*; done
head -c $((LIMIT + (1 << 20))) /dev/zero >"$LAB_EXPORT/vol-s/outside"
sync
client 1 "$LAB_DIR/c4b.out" ls vol-s
flip_at() { jq -r 'select(.type == "tree_over" and .tree == "vol-s") | .time' "$LAB_DIR/state$1"/vcli.events.jsonl 2>/dev/null | tail -n 1; }
all_flipped() { local k; for k in 1 2 3 4; do [[ -n $(flip_at "$k") ]] || return 1; done; }
if wait_for 5 "flip" all_flipped; then
	spread=$(for k in 1 2 3 4; do flip_at "$k"; done | python3 -c 'import sys, datetime as d
t = [d.datetime.fromisoformat(l.strip().replace("Z", "+00:00")).timestamp() for l in sys.stdin if l.strip()]
print(" ".join(str(round((x - t[0]) * 1000)) for x in t[1:]))')
	ok "4b: node 1's report took vol-s over; nodes 2-4 flipped after: $spread ms"
	row "$(jq -cn --arg ms "$spread" '{scenario:"flip", nodes:4, flip_after_ms:($ms | split(" ") | map(tonumber))}')"
	refused=0
	for k in 2 3 4; do
		client "$k" "$LAB_DIR/c4b-$k.out" write "vol-s/after-$k" 64Ki
		grep -q NFS3ERR_DQUOT "$LAB_DIR/c4b-$k.out" && refused=$((refused + 1))
	done
	check "4b: nodes 2-4 refuse their next WRITE ($refused of 3)" test "$refused" -eq 3
else
	fail "4b: not every agent logged tree_over: $(for k in 1 2 3 4; do echo -n " node$k=$(flip_at "$k")"; done)"
fi
client 1 "$LAB_DIR/c4c.out" rm vol-s/outside
converge_check "4b: the outside bytes removed through node 1" 1 2 3 4
clear_tree
converge_check "4: tree emptied" 1 2 3 4

# ---- 5: an agent killed: its lease expires
kill -KILL "${AGENT_PID[4]}"
wait "${AGENT_PID[4]}" 2>/dev/null || true
AGENT_PID[4]=
t0=$(date +%s%3N)
if wait_for $((TTL + 3)) "lease" nodes_is 1 3; then
	t1=$(date +%s%3N)
	ok "5: agent 4 killed: node 1 counts 3 nodes after $((t1 - t0)) ms (lease_ttl $TTL s)"
else
	fail "5: node 1 still counts $(status_of 1 | jq .cluster.nodes) nodes $((TTL + 3)) s after agent 4 was killed"
fi

# ---- 6: node 2 partitioned from etcd
ip -n "${NS[2]}" link set vetcd down
if wait_for 6 "lost" state_is 2 lost; then ok "6: node 2 cut off from etcd: status says lost"; else fail "6: node 2's status says $(cluster_state 2) 6 s after the cut"; fi
metric() { ip netns exec "${NS[2]}" curl -s --noproxy '*' http://127.0.0.1:9109/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
metric_lost() { [[ $(metric 'nfsfence_cluster_state{state="lost"}') == 1 ]]; }
if wait_for 3 "metric" metric_lost; then ok "6: node 2's metrics: nfsfence_cluster_state{state=\"lost\"} 1"; else fail "6: node 2's metrics do not say lost: $(metric 'nfsfence_cluster_state{state="lost"}')"; fi
client 2 "$LAB_DIR/c6.out" --keep-going write vol-s/part 16Mi
part_ok=$(grep -c 'op=write.*status=OK' "$LAB_DIR/c6.out" || true)
part_bytes=$(lab_disk_files | awk -F'\t' '$1 == "vol-s/part" { print $2 }')
check "6: partitioned, node 2 wrote ${part_bytes:-0} bytes ($part_ok WRITEs), at most one share ($CHUNK)" test "${part_bytes:-0}" -le "$CHUNK"
check "6: and was refused past its share" grep -q NFS3ERR_DQUOT "$LAB_DIR/c6.out"
ip -n "${NS[2]}" link set vetcd up
ip -n "${NS[2]}" route replace 10.96.0.0/24 via 10.95.2.2 # the link's routes went with it
if wait_for 10 "back" state_is 2 connected; then ok "6: node 2 reconnected"; else fail "6: node 2 says $(cluster_state 2) 10 s after the link came back"; fi
converge_check "6: after the partition" 1 2 3
clear_tree
converge_check "6: tree emptied" 1 2 3

# ---- 8: one member of three stopped
etcd_stop 1
client 1 "$LAB_DIR/c8.out" write vol-s/m8 2Mi
check "8: one member down: node 1 writes (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
converge_check "8: one member down, writes shared" 1 2 3
check "8: node 1 connected" state_is 1 connected
etcd_start 1 existing

# ---- 7: etcd lost (every member stopped)
for m in 1 2 3; do etcd_stop "$m"; done
if wait_for 6 "lost" state_is 1 lost; then ok "7: etcd stopped: node 1 says lost"; else fail "7: node 1 says $(cluster_state 1) 6 s after etcd stopped"; fi
client 3 "$LAB_DIR/c7.out" write vol-s/lost 1Mi
check "7: etcd lost: node 3 still writes within its share (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
for m in 1 2 3; do etcd_start "$m" existing; done
etcd_wait_healthy || fail "7: etcd did not come back"
if wait_for 15 "back" state_is 1 connected; then ok "7: reconnected"; else fail "7: node 1 says $(cluster_state 1) 15 s after etcd came back"; fi
converge_check "7: after etcd came back" 1 2 3
check "7: node 1 counts a reconnect" test "$(status_of 1 | jq .cluster.reconnects)" -ge 1

# ---- 9: a policy change (vol-o's limit) while the agents share usage: applied by each
# agent, no tree flips, usage still the disk's
sed "s/limit: 1Gi/limit: 2Gi/" "$POLICY" >"$POLICY.new" && mv "$POLICY.new" "$POLICY"
reloaded() { local k; for k in 1 2 3; do [[ $(status_of "$k" | jq -r '.policy_reloads') -ge 1 ]] || return 1; done; }
if wait_for 5 "reload" reloaded; then ok "9: policy change applied by every agent"; else fail "9: not every agent applied the policy change"; fi
check "9: no tree flipped over on the change" test "$(cat "$LAB_DIR"/state[123]/vcli.events.jsonl | jq -r 'select(.type == "tree_over" and .tree == "vol-o") | .tree' | grep -c . || true)" -eq 0
client 1 "$LAB_DIR/c9.out" write vol-s/after-reload 1Mi
check "9: node 1 writes after the change (exit $CLIENT_RC)" test "$CLIENT_RC" -eq 0
converge_check "9: after the policy change" 1 2 3

echo "---- node 1's agent log"
grep cluster "$LAB_DIR/agent1.log" | sed -n 1,12p
if ((FAILS)); then
	echo "FAILED: $FAILS checks (lab kept in $LAB_DIR)"
	exit 1
fi
echo "PASS"
