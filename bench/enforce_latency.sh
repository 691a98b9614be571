#!/usr/bin/env bash
# Enforcement latency and overshoot of `nfsfence attach` (rewrite action) in the lab:
# nfsf_client writes a large file with --inflight N into a tree with a small limit while
# tcpdump captures vcli in the client namespace. From the capture (`nfsfence decode --format
# jsonl`):
#   t_over     the first WRITE reply whose post-op `used` >= limit (the reply that takes the
#              tree over; the file is the tree's only file)
#   t_refuse   the first WRITE call leaving with a poisoned (all 0xff) handle: the first
#              refused WRITE (tcpdump sees egress after TC, so the rewrite is visible)
#   t_err      the first WRITE reply with an error status, as captured (ingress taps run
#              BEFORE TC ingress, so the capture shows the server's answer to the poisoned
#              handle; the client gets it rewritten to NFS3ERR_DQUOT: see client.log)
# latency = t_refuse - t_over; WRITE calls sent unpoisoned after t_over and their bytes;
# overshoot = bytes the server allocated for the file (st_blocks * unit) - limit, and
# file size - limit.
#
#   bench/enforce_latency.sh     # env: BUILD=build-bpfbench LIMIT_MIB=64 CHUNK=64Ki INFLIGHT=4 RUNS=3
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bpfbench}
LIMIT_MIB=${LIMIT_MIB:-64}
CHUNK=${CHUNK:-64Ki}
INFLIGHT=${INFLIGHT:-4}
RUNS=${RUNS:-3}
OUT=${OUT:-$BUILD/bench-out}
NFSFENCE=$BUILD/nfsfence
export NFSF_CLIENT=$BUILD/tests/nfsf_client
[[ -x $NFSFENCE && -x $NFSF_CLIENT ]] ||
	{ echo "build first: cmake --build $BUILD --target nfsfence nfsf_client" >&2; exit 2; }
$NFSFENCE attach --help >/dev/null 2>&1 || { echo "SKIP: this nfsfence has no 'attach' (agent not built)"; exit 77; }
mkdir -p "$OUT"

# shellcheck source=../tests/lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
lab_require capture
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
lab_up enflat
# private bpffs for the pins (see bench/veth_bench.sh for why not /sys/fs/bpf)
BPFFS=$LAB_DIR/bpffs
mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS"
PIN=$BPFFS/nfsfence
STATE=$LAB_DIR/state
LIMIT=$((LIMIT_MIB * 1048576))
POLICY=$LAB_DIR/policy.yaml
mkdir -p "$LAB_EXPORT/small"
chmod 0777 "$LAB_EXPORT/small"
cat >"$POLICY" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees:
  - name: small
    path: small
    limit: $LIMIT
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
}

URL=$(lab_url small)
RESULTS=$OUT/enforce_latency.tsv
echo -e "run\tlatency_us\tt_err_minus_over_us\tunpoisoned_writes_after_over\tbytes_after_over\taccepted_after_over\tinflight_at_over\tinflight_accepted\tinflight_accepted_bytes\tused_over_limit\tsize_over_limit\tclient_first_dquot" >"$RESULTS"

for ((r = 1; r <= RUNS; r++)); do
	rm -f "$LAB_EXPORT/small/f"
	attach_tc
	cap=$LAB_DIR/enf-$r.pcap
	lab_capture_start vcli "$cap"
	# stops at the first failed WRITE (no --keep-going); 4x the limit is never reached
	lab_client --inflight "$INFLIGHT" "$URL" write f "$((4 * LIMIT_MIB))Mi" "$CHUNK" >"$LAB_DIR/client-$r.log" 2>&1 || true
	lab_capture_stop
	cp "$LAB_DIR/agent.log" "$OUT/enforce_agent-$r.log"
	detach_tc
	sync
	disk=$(stat -c '%s %b %B' "$LAB_EXPORT/small/f")
	first_dq=$(grep -m1 -n 'NFS3ERR_DQUOT' "$LAB_DIR/client-$r.log" | cut -d: -f1 || true)
	cp "$LAB_DIR/client-$r.log" "$OUT/enforce_client-$r.log"
	"$NFSFENCE" decode "$cap" --format jsonl >"$LAB_DIR/enf-$r.jsonl"
	python3 - "$LAB_DIR/enf-$r.jsonl" "$LIMIT" "$disk" "$r" "${first_dq:-none}" >>"$RESULTS" <<'EOF'
import json, sys
path, limit, disk, run, first_dq = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5]
size, blocks, unit = int(disk[0]), int(disk[1]), int(disk[2])
calls = {}
t_over = t_refuse = t_err = None
msgs = [json.loads(l) for l in open(path)]
for m in msgs:
    if m.get("proc_name") != "WRITE":
        continue
    if m["type"] == "call":
        calls[m["xid"]] = m
        if t_refuse is None and set(bytes.fromhex(m.get("fh", ""))) == {0xff}:
            t_refuse = m["ts"]
    else:
        if t_over is None and m.get("status") == 0 and m.get("used", 0) >= limit:
            t_over = m["ts"]
        if t_err is None and m.get("status", 0) != 0:
            t_err = m["ts"]
if t_over is None:
    print(f"{run}\tno reply with used >= limit\t\t\t\t\t\t\t\t\t\t{first_dq}")
    sys.exit(0)
# WRITE calls that left unpoisoned after the crossing reply, and how many got status 0
replies = {m["xid"]: m for m in msgs if m.get("proc_name") == "WRITE" and m["type"] == "reply"}
after = [c for c in calls.values() if c["ts"] > t_over and set(bytes.fromhex(c.get("fh", ""))) != {0xff}]
acc = [c for c in after if replies.get(c["xid"], {}).get("status") == 0]
# calls already on the wire when the crossing reply arrived (answered after it)
infl = [c for c in calls.values() if c["ts"] < t_over and c["xid"] in replies and replies[c["xid"]]["ts"] > t_over]
infl_ok = [c for c in infl if replies[c["xid"]].get("status") == 0]
lat = (t_refuse - t_over) * 1e6 if t_refuse else float("nan")
err = (t_err - t_over) * 1e6 if t_err else float("nan")
print(f"{run}\t{lat:.0f}\t{err:.0f}\t{len(after)}\t{sum(c.get('count', 0) for c in after)}\t{len(acc)}"
      f"\t{len(infl)}\t{len(infl_ok)}\t{sum(c.get('count', 0) for c in infl_ok)}\t{blocks * unit - limit}\t{size - limit}\t{first_dq}")
EOF
	tail -1 "$RESULTS"
done

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "limit ${LIMIT_MIB} MiB ($LIMIT bytes), chunk $CHUNK, inflight $INFLIGHT, rewrite action"
column -t -s $'\t' "$RESULTS"
