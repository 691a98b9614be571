#!/usr/bin/env bash
# ctest lab_metrics_e2e: `nfsfence attach --metrics` scraped by a real Prometheus server.
#
# Lab: ganesha (server namespace) + nfsf_client (client namespace), the agent on vcli with
# --metrics CLI_IP:9109, and Prometheus (Debian `prometheus`) in the client namespace
# scraping it every second. A client fills vol-a (limit 1Mi) with 64 KiB WRITEs until the
# server answers NFS3ERR_DQUOT; then the test reads the values back through Prometheus's
# HTTP query API and compares them with the server's disk and the client's results:
#   usage == the bytes vol-a holds on the server's disk, over == 1, limit == 1Mi,
#   refused_writes_total == the client's DQUOT count (> 0), agent_up == 1, and Prometheus
#   saw no counter reset (resets() == 0);
# and a second agent whose metrics port is taken fails with one line, exit 1, nothing left.
# `nfsfence events --format json` follows the agent from another process all along: it
# shows agent_started and tree_over for vol-a; after a flood of 1 KiB WRITEs into the full
# vol-a the sum of its writes_refused counts equals the client's NFS3ERR_DQUOT count (the
# oracle), in far fewer lines than refusals (one per tree and second); SIGTERM to the agent
# gives agent_exiting, and a restarted agent's agent_started (pins adopted) reaches the
# same follower.
#
# Env: as e2e_enforce.sh (NFSF_BIN, NFSF_CLIENT or NFSF_BUILD_DIR, LAB_KEEP=1).
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/clsact/BPF/prometheus).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_e2e_require jq curl prometheus
[[ $("$NFSF_BIN" attach --help 2>/dev/null || true) == *--metrics* ]] || lab_skip "$NFSF_BIN has no 'attach --metrics'"


PROM_PID=
EVENTS_PID=
down() {
	local rc=$?
	local p
	for p in $PROM_PID $EVENTS_PID; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# without -e: under errexit `(exit 1)` of a failed run would end the trap right here and
	# leave the namespaces, ganesha and the bpffs mount behind
	set +e
	(exit $rc)
	lab_e2e_down
}
LAB_NO_TRAP=1
lab_up metrics || fatal "lab_up failed"
trap down EXIT
lab_agent_dirs || fatal "cannot mount a bpffs for the agent"
POLICY=$LAB_DIR/policy.yaml
lab_policy "$POLICY"
METRICS=$LAB_CLI_IP:9109
PROM=$LAB_CLI_IP:9090

lab_client "$(lab_url)" mkdir vol-a mkdir vol-b >"$LAB_DIR/setup.out" 2>&1 || fatal "setup client failed"
lab_agent_start "$LAB_DIR/agent.log" --policy "$POLICY" --mount-port 20048 --metrics "$METRICS" ||
	fatal "attach --metrics did not get ready: $(cat "$LAB_DIR/agent.log")"
ok "attach --metrics $METRICS ready"
EVENTS=$LAB_DIR/events.jsonl
"$NFSF_BIN" events vcli --format json --state-dir "$LAB_STATE_DIR" >"$EVENTS" 2>"$LAB_DIR/events.err" &
EVENTS_PID=$!

mkdir -p "$LAB_DIR/prom"
cat >"$LAB_DIR/prom/prometheus.yml" <<EOF2
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nfsfence
    static_configs:
      - targets: ['$METRICS']
EOF2
ip netns exec "$LAB_NS_CLI" prometheus --config.file="$LAB_DIR/prom/prometheus.yml" \
	--storage.tsdb.path="$LAB_DIR/prom/data" --web.listen-address="$PROM" >"$LAB_DIR/prom/log" 2>&1 &
PROM_PID=$!
# query EXPR: the value of the first sample, or "none"
query() {
	ip netns exec "$LAB_NS_CLI" curl -s --max-time 5 "http://$PROM/api/v1/query" --data-urlencode "query=$1" |
		jq -r 'if .status == "success" and (.data.result | length) > 0 then .data.result[0].value[1] else "none" end' 2>/dev/null ||
		echo none
}
# wait_value EXPR WANT [SECS=20]: polls Prometheus until EXPR == WANT; GOT = the last value
wait_value() {
	local i
	for ((i = 0; i < ${3:-20} * 4; i++)); do
		GOT=$(query "$1")
		[[ $GOT == "$2" ]] && return 0
		sleep 0.25
	done
	return 1
}
wait_value 'nfsfence_agent_up' 1 || fatal "Prometheus never scraped the agent (up: $GOT; $(tail -n 3 "$LAB_DIR/prom/log"))"
ok "Prometheus scrapes $METRICS: nfsfence_agent_up 1"

# fill vol-a: 32 WRITEs of 64 KiB into a 1 MiB tree, going on after the refusals
lab_client --keep-going "$(lab_url)" write vol-a/f 2Mi 64Ki write vol-b/g 256Ki 64Ki >"$LAB_DIR/fill.out" 2>&1 || true
dq=$(grep -c -E '^op=write path=vol-a/f .*status=NFS3ERR_DQUOT' "$LAB_DIR/fill.out" || true)
okw=$(grep -c -E '^op=write path=vol-a/f .*status=OK' "$LAB_DIR/fill.out" || true)
used=$(lab_tree_used vol-a)
check "the client saw $okw WRITEs OK and $dq refused with NFS3ERR_DQUOT in vol-a" test "$dq" -gt 0 -a "$okw" -gt 0

if wait_value 'nfsfence_tree_usage_bytes{tree="vol-a"}' "$used"; then
	ok "Prometheus: nfsfence_tree_usage_bytes{tree=\"vol-a\"} == $used, the bytes vol-a holds on the server's disk"
else
	fail "Prometheus: nfsfence_tree_usage_bytes{tree=\"vol-a\"} is $GOT, the server's disk holds $used"
fi
if wait_value 'nfsfence_tree_refused_writes_total{tree="vol-a"}' "$dq"; then
	ok "Prometheus: nfsfence_tree_refused_writes_total{tree=\"vol-a\"} == $dq, the client's NFS3ERR_DQUOT count"
else
	fail "Prometheus: nfsfence_tree_refused_writes_total{tree=\"vol-a\"} is $GOT, the client saw $dq refusals"
fi
v=$(query 'nfsfence_tree_over{tree="vol-a"}')
check "Prometheus: nfsfence_tree_over{tree=\"vol-a\"} == 1 ($v)" test "$v" = 1
v=$(query 'nfsfence_tree_over{tree="vol-b"}')
check "Prometheus: nfsfence_tree_over{tree=\"vol-b\"} == 0 ($v)" test "$v" = 0
v=$(query 'nfsfence_tree_limit_bytes{tree="vol-a"}')
check "Prometheus: nfsfence_tree_limit_bytes{tree=\"vol-a\"} == 1048576 ($v)" test "$v" = 1048576
v=$(query 'nfsfence_tree_refused_writes_total{tree="vol-b"}')
check "Prometheus: nfsfence_tree_refused_writes_total{tree=\"vol-b\"} == 0 ($v)" test "$v" = 0
v=$(query 'nfsfence_write_verdicts_total{verdict="refused_rewrite"}')
check "Prometheus: nfsfence_write_verdicts_total{verdict=\"refused_rewrite\"} == $dq ($v)" test "$v" = "$dq"
# a policy change while Prometheus scrapes: vol-b's limit raised, written and renamed over
sed 's/limit: 1Gi/limit: 2Gi/' "$POLICY" >"$POLICY.new" && mv "$POLICY.new" "$POLICY"
if wait_value 'nfsfence_tree_limit_bytes{tree="vol-b"}' 2147483648; then
	ok "a policy change while scraped: nfsfence_tree_limit_bytes{tree=\"vol-b\"} == 2Gi"
else
	fail "the policy change did not reach the metrics: vol-b limit $GOT"
fi
v=$(query 'nfsfence_policy_reloads_total')
check "Prometheus: nfsfence_policy_reloads_total == 1 ($v)" test "$v" = 1
cp "$POLICY" "$POLICY.good"
printf 'export: [' >"$POLICY.new" && mv "$POLICY.new" "$POLICY"
if wait_value 'nfsfence_policy_reload_errors_total' 1; then
	ok "an invalid policy file: nfsfence_policy_reload_errors_total == 1"
else
	fail "an invalid policy file: nfsfence_policy_reload_errors_total is $GOT"
fi
mv "$POLICY.good" "$POLICY"
v=$(query 'nfsfence_packets_total')
check "Prometheus: nfsfence_packets_total > 0 ($v)" test "${v%%.*}" -gt 0 2>/dev/null

# ---- nfsfence events, followed from another process since the agent was ready
# a flood: 600 WRITEs of 1 KiB into the full vol-a, every one refused (one op each: a write
# op stops at its first refusal, --keep-going goes on with the next op)
for ((i = 0; i < 600; i++)); do echo "pwrite vol-a/f $((i * 1024)) 1Ki"; done >"$LAB_DIR/flood.script"
lab_client --keep-going --script "$LAB_DIR/flood.script" "$(lab_url)" >"$LAB_DIR/flood.out" 2>&1 || true
dq2=$(grep -c -E '^op=write path=vol-a/f .*status=NFS3ERR_DQUOT' "$LAB_DIR/flood.out" || true)
check "the flood: $dq2 WRITEs of 1 KiB refused with NFS3ERR_DQUOT" test "$dq2" -ge 500
refused=$((dq + dq2))
# refused_sum: the sum of the writes_refused counts of vol-a the follower printed so far
refused_sum() { jq -s '[.[] | select(.type == "writes_refused" and .tree == "vol-a") | .count] | add // 0' "$EVENTS"; }
for ((i = 0; i < 40; i++)); do
	[[ $(refused_sum) == "$refused" ]] && break
	sleep 0.25
done
check "events: the writes_refused counts of vol-a add up to $(refused_sum), the client's NFS3ERR_DQUOT replies: $refused" \
	test "$(refused_sum)" = "$refused"
lines=$(jq -s '[.[] | select(.type == "writes_refused")] | length' "$EVENTS")
check "events: $refused refusals in $lines writes_refused lines (aggregated per tree and second)" \
	test "$lines" -ge 1 -a $((lines * 20)) -le "$refused"
check "events: no writes_refused for vol-b" test "$(jq -s '[.[] | select(.type == "writes_refused" and .tree == "vol-b")] | length' "$EVENTS")" = 0
first=$(head -n 1 "$EVENTS" | jq -r '"\(.type) \(.pins) \(.iface)"')
check "events: the first line is agent_started with fresh pins on vcli ($first)" test "$first" = "agent_started fresh vcli"
over=$(jq -s '[.[] | select(.type == "tree_over" and .tree == "vol-a" and .limit_bytes == 1048576 and .usage_bytes >= 1048576)] | length' "$EVENTS")
check "events: tree_over for vol-a, usage >= limit ($over line)" test "$over" = 1
check "events: every line has a time and a type" \
	test "$(jq -s '[.[] | select((.time | test("^[0-9-]{10}T[0-9:.]{12}Z$")) and (.type | type == "string"))] | length' "$EVENTS")" = "$(wc -l <"$EVENTS")"
lab_agent_stop TERM
for ((i = 0; i < 20; i++)); do
	grep -q '"type":"agent_exiting"' "$EVENTS" && break
	sleep 0.1
done
check "events: SIGTERM to the agent gives agent_exiting, programs attached" \
	test "$(tail -n 1 "$EVENTS" | jq -r '"\(.type) \(.reason) \(.programs_attached)"')" = "agent_exiting signal true"
# the same follower goes on across an agent restart (the new agent appends to the same log)
lab_agent_start "$LAB_DIR/agent2.log" --policy "$POLICY" --mount-port 20048 --metrics "$METRICS" ||
	fatal "the agent did not get ready again: $(cat "$LAB_DIR/agent2.log")"
for ((i = 0; i < 20; i++)); do
	[[ $(tail -n 1 "$EVENTS" | jq -r .type) == agent_ready ]] && break
	sleep 0.1
done
restarted=$(jq -s -r '[.[] | select(.type == "agent_started")] | map(.pins) | join(" ")' "$EVENTS")
check "events: the follower sees the restarted agent adopt the pins (agent_started pins: $restarted)" \
	test "$restarted" = "fresh adopted"
# Prometheus scraped through the reload and the restart: a few scrapes of the new agent, then
# no counter may have gone back
sleep 3
wait_value 'up{job="nfsfence"}' 1 || fail "Prometheus did not scrape the restarted agent (up: $GOT)"
v=$(query 'nfsfence_policy_reloads_total')
check "the restarted agent goes on counting policy changes: nfsfence_policy_reloads_total == 1 ($v)" test "$v" = 1
# resets() drops the metric name, so one query per counter
resets=0
for c in nfsfence_tree_writes_total nfsfence_tree_write_bytes_total nfsfence_tree_refused_writes_total \
	nfsfence_tree_refused_bytes_total nfsfence_packets_total nfsfence_nfs_packets_total nfsfence_parse_errors_total \
	nfsfence_write_verdicts_total nfsfence_events_total nfsfence_events_lost_total \
	nfsfence_policy_reloads_total nfsfence_policy_reload_errors_total; do
	v=$(query "sum(resets($c[5m]))")
	[[ $v == 0 ]] || { echo "    $c: resets $v" >&2; resets=$((resets + 1)); }
done
check "Prometheus saw no counter of nfsfence go back (12 counters, through a policy reload and an agent restart: resets() == 0 for each)" test "$resets" -eq 0
lab_agent_stop TERM
"$NFSF_BIN" events --no-follow --state-dir "$LAB_STATE_DIR" >"$LAB_DIR/events.txt" 2>&1 || true
check "events --no-follow (text, the one log found alone): as many lines as the JSON follower's ($(wc -l <"$LAB_DIR/events.txt"))" \
	test "$(wc -l <"$LAB_DIR/events.txt")" = "$(wc -l <"$EVENTS")"
echo "    events (text):" && sed 's/^/      /' "$LAB_DIR/events.txt" | head -n 20

# a second agent whose metrics port is taken (Prometheus's own): one line, exit 1, nothing left
rc=0
ip netns exec "$LAB_NS_CLI" "$NFSF_BIN" attach lo --policy "$POLICY" --pin-dir "$LAB_PIN_DIR" \
	--state-dir "$LAB_STATE_DIR" --metrics "$PROM" >"$LAB_DIR/busy.out" 2>"$LAB_DIR/busy.err" || rc=$?
n=$(wc -l <"$LAB_DIR/busy.err")
check "attach with a taken metrics port: exit $rc, $n line: $(head -c 200 "$LAB_DIR/busy.err")" \
	test "$rc" -eq 1 -a "$n" -eq 1 -a -n "$(grep -- "--metrics $PROM: cannot listen" "$LAB_DIR/busy.err")"
check "nothing attached to lo, no pins for lo" test -z "$(lab_tc_filters lo)" -a ! -e "$LAB_PIN_DIR/lo"

((FAILS == 0)) || { echo "FAIL: $FAILS checks failed (lab dir kept: $LAB_DIR)" >&2; exit 1; }
echo "PASS"
