#!/usr/bin/env bash
# ctest lab_xdp_e2e: `attach --hook xdp` on both ends of the conversation, against a real
# server's disk and a real client's status codes (issue 10). Lab: ganesha (server
# namespace) + nfsf_client (libnfs, client namespace), policy vol-a 1Mi, vol-b 1Gi.
#   server side, native XDP, TCP rewrite: XDP on vsrv poisons the WRITE calls to the full
#     tree as they arrive, TC egress on vsrv turns the replies to NFS3ERR_DQUOT: the client
#     sees EDQUOT at the WRITE; vol-a's bytes on the server's disk stay within the limit;
#     a READ, a REMOVE and WRITEs to vol-b on the same connection complete
#   the same with generic XDP, with MTU-sized frames (gso_max_segs 1) and with 9000-byte
#     frames (multi-buffer: xdp.frags), each file's size on the disk checked
#   server side, UDP drop: the WRITE datagram is dropped; the client times out, nothing
#     reaches the disk, other datagrams pass; TC drop on the client's side over UDP alike
#   client side, XDP reply drop (the survey's idea): the WRITE passes, the server stores it
#     (bytes past the limit on the disk), the reply is dropped: the client hangs, and so
#     does the READ behind it on the same connection (TCP delivers in order)
#   bad input: another XDP program already on the interface (one line, exit 1, that
#     program untouched, nothing of nfsfence left); native XDP on lo (no
#     driver support: one line naming --xdp-mode generic, nothing left); flag mistakes
#     (exit 2)
# Every scenario writes its measured numbers as a row of bench/report_rows.md into
# XDP_ROWS (default $NFSF_BUILD_DIR/report-rows/xdp.jsonl): bytes on disk over time, the
# client's error, throughput with/without, per-packet cost against the null XDP program
# (kernel bpf_stats, same workload, same run).
#
# Env: as e2e_enforce.sh (NFSF_BIN, NFSF_CLIENT or NFSF_BUILD_DIR, LAB_KEEP=1); XDP_ROWS.
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/clsact/BPF/XDP).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_e2e_require jq bpftool
feat=$(bpftool feature probe kernel 2>/dev/null) || true
grep -q 'program_type xdp is available' <<<"$feat" ||
	lab_skip "the kernel does not load XDP programs (bpftool feature probe kernel)"
NULL_XDP=$NFSF_BUILD_DIR/bpf/nfsfence_null_xdp.bpf.o
[[ -f $NULL_XDP ]] || fatal "$NULL_XDP not built"
ROWS=${XDP_ROWS:-$NFSF_BUILD_DIR/report-rows/xdp.jsonl}
mkdir -p "$(dirname "$ROWS")"
: >"$ROWS.tmp"
KVER=$(uname -r)
STATS_WAS=$(cat /proc/sys/kernel/bpf_stats_enabled)

LAB_NO_TRAP=1
lab_up xdp || fatal "lab_up failed"
xdp_down() {
	local rc=$?
	echo "$STATS_WAS" >/proc/sys/kernel/bpf_stats_enabled
	[[ -z ${SAMPLER:-} ]] || kill "$SAMPLER" 2>/dev/null || true # sampler_stop runs in $(): its SAMPLER= does not reach here
	(exit $rc)
	lab_e2e_down
}
trap xdp_down EXIT
lab_agent_dirs || fatal "cannot mount a bpffs for the agent"
POLICY=$LAB_DIR/policy.yaml
lab_policy "$POLICY"
MI=1048576
LIMIT=$MI
lab_client "$(lab_url)" mkdir vol-a mkdir vol-b write vol-b/r 256Ki >"$LAB_DIR/setup.out" 2>&1 ||
	fatal "setup client failed: $(cat "$LAB_DIR/setup.out")"

srv() { LAB_AGENT_NS=$LAB_NS_SRV LAB_AGENT_DEV=vsrv "$@"; }
dirs() { echo --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR"; }
# detach_agent [srv]: stops the agent, removes nfsfence from the interface
detach_agent() {
	lab_agent_stop
	if [[ ${1:-} == srv ]]; then
		# shellcheck disable=SC2046
		srv lab_nfsfence detach vsrv $(dirs) >/dev/null 2>&1 || true
	else
		# shellcheck disable=SC2046
		lab_nfsfence detach vcli $(dirs) >/dev/null 2>&1 || true
	fi
}
counter() { # DEV NAME: a kernel counter from `status`
	local ns=$LAB_NS_CLI
	[[ $1 == vsrv ]] && ns=$LAB_NS_SRV
	# shellcheck disable=SC2046
	ip netns exec "$ns" "$NFSF_BIN" status "$1" --format json $(dirs) 2>/dev/null |
		jq -r --arg c "$2" '(if type == "array" then .[0] else . end).counters[$c] // "missing"'
}
# bytes of the tree's files on the server's disk (sizes: the writes' own byte counts)
tree_bytes() { lab_tree_used "$1" size; }
now() { date +%s.%N; }
# sampler_start TREE: the tree's bytes on disk every 0.1 s into $LAB_DIR/samples (t0 = now)
sampler_start() {
	local t0
	t0=$(now)
	: >"$LAB_DIR/samples"
	(while :; do echo "$(echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}') $(tree_bytes "$1")"; sleep 0.1; done) \
		>>"$LAB_DIR/samples" 2>/dev/null &
	SAMPLER=$!
}
sampler_stop() { # -> JSON [[t, bytes], ...]
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
	awk 'NF == 2 { printf "%s[%s, %s]", n++ ? ", " : "[", $1, $2 } END { print n ? "]" : "[]" }' "$LAB_DIR/samples"
}
# mbs OUT BYTES SECS
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }'; }
# throughput: MB/s of 3 writes of 16 MiB to vol-b (removed after); "min median max"
THRU_BYTES=$((16 * MI))
throughput() {
	local i t0 t1 all=()
	for i in 1 2 3; do
		t0=$(now)
		lab_client "$(lab_url)" write vol-b/t 16Mi 1Mi rm vol-b/t >/dev/null 2>&1 || { echo "0 0 0"; return; }
		t1=$(now)
		all+=("$(mbs "$THRU_BYTES" "$(echo "$t1 $t0" | awk '{print $1 - $2}')")")
	done
	printf '%s\n' "${all[@]}" | sort -g | paste -sd' '
}
median_of() { awk '{ print $2 }' <<<"$1"; }
# prog_stats NAME: "run_cnt run_time_ns" of the loaded program NAME (bpf_stats)
prog_stats() {
	bpftool prog show --json 2>/dev/null | jq -r --arg n "$1" \
		'[.[] | select(.name == $n)] | if length == 0 then "0 0" else "\(.[0].run_cnt // 0) \(.[0].run_time_ns // 0)" end'
}
ns_per() { awk '{ printf "%.1f", ($1 > 0 ? $2 / $1 : 0) }' <<<"$1"; }
# row JSON...: one report row (bench/report_rows.md), common fields filled in
row() {
	jq -c -n --arg kver "$KVER" --arg cmd "ctest -R lab_xdp_e2e (tests/lab/e2e_xdp.sh)" "$@" \
		'($ARGS.named | del(.kver, .cmd)) + {kind: "approach", baseline: false, where: "host-lab", kernel: $kver, command: $cmd,
		  loaded: true, load_error: "", limit_bytes: '"$LIMIT"', disk_measure: "size"}' |
		jq -c '.bytes_past_limit = (.disk_bytes - .limit_bytes)' >>"$ROWS.tmp"
}
# op_status OUT OP PATH: the first status= of that op's lines ("none" if it printed none)
op_status() {
	awk -v op="op=$2" -v p="path=$3" '$1 == op && $2 == p { for (i = 3; i <= NF; i++) if ($i ~ /^status=/) { sub(/^status=/, "", $i); print $i; exit } }' "$1" |
		grep . || echo none
}
errno_of() { sed -n 's/.* errno=\([A-Z0-9]*\).*/\1/p' "$1" | head -n 1 | grep . || echo none; }

# ---- without nfsfence: the throughput reference
thru_none=$(throughput)
ok "without nfsfence: 16 MiB writes to vol-b at $thru_none MB/s (min median max)"

# ---- 1. server side, native XDP, TCP rewrite
srv lab_agent_start "$LAB_DIR/agent1.log" --policy "$POLICY" --hook xdp --side server ||
	fatal "server-side agent did not start: $(tail -n 3 "$LAB_DIR/agent1.log")"
ready=$(grep -m1 '^nfsfence: ready:' "$LAB_DIR/agent1.log")
check "ready line names the hooks ($ready)" grep -q 'hook=xdp side=server xdp-mode=native' <<<"$ready"
check "vsrv has nfsfence's XDP program in native mode" \
	bash -c "ip -n $LAB_NS_SRV -j link show vsrv | jq -e '.[0].xdp.mode == 1 and .[0].xdp.prog.name == \"nfsf_xdp\"' >/dev/null"
check "vsrv has the TC egress reply program, and no TC ingress program" \
	bash -c "ip netns exec $LAB_NS_SRV tc filter show dev vsrv egress | grep -q nfsf_srv_egress &&
		! ip netns exec $LAB_NS_SRV tc filter show dev vsrv ingress | grep -q nfsf"
echo 1 >/proc/sys/kernel/bpf_stats_enabled
s0=$(prog_stats nfsf_xdp)
thru_xdp=$(throughput)
s1=$(prog_stats nfsf_xdp)
echo 0 >/proc/sys/kernel/bpf_stats_enabled
xdp_ns=$(ns_per "$(echo "$s0 $s1" | awk '{print $3 - $1, $4 - $2}')")
ok "with XDP on the server: $thru_xdp MB/s; nfsf_xdp $xdp_ns ns/packet over the same writes ($s0 -> $s1 run_cnt run_time_ns)"
: >"$LAB_DIR/w1.out"
sampler_start vol-a
t0=$(now)
lab_client --keep-going "$(lab_url)" write vol-a/f 2Mi 64Ki read vol-b/r rm vol-b/r write vol-b/w 256Ki \
	>"$LAB_DIR/w1.out" 2>&1 || true
t1=$(now)
samples1=$(sampler_stop)
a_bytes=$(tree_bytes vol-a)
refused=$(grep -c 'path=vol-a/f .*status=NFS3ERR_DQUOT errno=EDQUOT' "$LAB_DIR/w1.out" || true)
check "server-side XDP: the client's WRITEs to the full vol-a get NFS3ERR_DQUOT ($refused of them)" test "$refused" -gt 0
check "vol-a on the server's disk: $a_bytes bytes, within the 1 MiB limit" test "$a_bytes" -le "$LIMIT"
check "vol-a took writes up to the limit ($a_bytes > 1 MiB - 128 KiB)" test "$a_bytes" -gt $((LIMIT - 131072))
r_read=$(op_status "$LAB_DIR/w1.out" read vol-b/r)
r_rm=$(op_status "$LAB_DIR/w1.out" rm vol-b/r)
r_w=$(op_status "$LAB_DIR/w1.out" write vol-b/w)
check "after the refusals, on the same connection: READ $r_read, REMOVE $r_rm, WRITE to vol-b $r_w" \
	test "$r_read/$r_rm/$r_w" = OK/OK/OK
check "vol-b/w on the server's disk is 256 KiB" test "$(stat -c %s "$LAB_EXPORT/vol-b/w" 2>/dev/null)" = 262144
check "counters: write_refused_rewrite $(counter vsrv write_refused_rewrite), reply_rewritten $(counter vsrv reply_rewritten)" \
	test "$(counter vsrv write_refused_rewrite)" -gt 0 -a "$(counter vsrv reply_rewritten)" -gt 0
# the agent writes its state file about once a second: up to 3 s for it to show the fill
for _ in $(seq 30); do
	# shellcheck disable=SC2046
	st=$(srv lab_nfsfence status vsrv --format json $(dirs) 2>/dev/null | jq -c '(if type == "array" then .[0] else . end)')
	a_st=$(jq -r '.trees[] | select(.name == "vol-a") | "\(.over) \(.usage_bytes)"' <<<"$st")
	[[ $a_st == "true $a_bytes" ]] && break
	sleep 0.1
done
check "status names hook xdp, side server, mode native" \
	test "$(jq -r '"\(.hook) \(.side) \(.xdp_mode)"' <<<"$st")" = "xdp server native"
check "status: vol-a over, its usage what the disk says ($a_st; disk $a_bytes)" test "$a_st" = "true $a_bytes"
detach_agent srv
check "detach removed the XDP program and the TC filter from vsrv" \
	bash -c "! ip -n $LAB_NS_SRV -j link show vsrv | jq -e '.[0].xdp' >/dev/null &&
		! ip netns exec $LAB_NS_SRV tc filter show dev vsrv egress | grep -q nfsf"
# the null XDP program over the same writes: the cost reference
ip -n "$LAB_NS_SRV" link set dev vsrv xdpdrv obj "$NULL_XDP" sec xdp.frags || fail "attaching the null XDP program"
echo 1 >/proc/sys/kernel/bpf_stats_enabled
n0=$(prog_stats null_xdp)
throughput >/dev/null
n1=$(prog_stats null_xdp)
echo 0 >/proc/sys/kernel/bpf_stats_enabled
ip -n "$LAB_NS_SRV" link set dev vsrv xdpdrv off
null_ns=$(ns_per "$(echo "$n0 $n1" | awk '{print $3 - $1, $4 - $2}')")
ok "null XDP program: $null_ns ns/packet over the same writes"
row --arg id xdp_server_tcp_rewrite --arg approach "XDP server side, TCP rewrite" \
	--argjson disk_bytes "$a_bytes" --arg app_error EDQUOT --arg error_at write \
	--argjson reads_ok "$([[ $r_read == OK ]] && echo true || echo false)" \
	--argjson deletes_ok "$([[ $r_rm == OK ]] && echo true || echo false)" \
	--argjson other_trees_ok "$([[ $r_w == OK ]] && echo true || echo false)" \
	--argjson cost_ns "$xdp_ns" --argjson null_ns "$null_ns" --arg cost_unit packet \
	--argjson mbs_with "$(median_of "$thru_xdp")" --argjson mbs_without "$(median_of "$thru_none")" \
	--argjson latency_ms null --arg deploy "NFS server's interface (or a gateway in front of it), plaintext NFS, XDP + clsact" \
	--argjson samples "$samples1" \
	--arg notes "libnfs client (no page cache): EDQUOT at the WRITE itself. latency_ms null: the room bound refuses the first WRITE past the limit in the program itself, no agent round trip. Throughput min/median/max with: $thru_xdp, without: $thru_none MB/s. Writer ran $(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}') s"

# ---- 2. generic XDP; MTU-sized frames; 9000-byte frames (multi-buffer)
# variant NAME XDP-MODE: a 512 KiB file to vol-b must arrive whole, vol-a's WRITE refused
variant() {
	local name=$1 mode=$2 out=$LAB_DIR/v-$1.out
	srv lab_agent_start "$LAB_DIR/agent-$name.log" --policy "$POLICY" --hook xdp --side server --xdp-mode "$mode" ||
		{ fail "$name: agent did not start: $(tail -n 2 "$LAB_DIR/agent-$name.log")"; return; }
	lab_client --keep-going "$(lab_url)" write vol-b/v-"$name" 512Ki 64Ki write vol-a/v 64Ki >"$out" 2>&1 || true
	check "$name: vol-b/v-$name whole on the server's disk, vol-a's WRITE $(op_status "$out" write vol-a/v)" \
		test "$(stat -c %s "$LAB_EXPORT/vol-b/v-$name" 2>/dev/null)/$(op_status "$out" write vol-a/v)" = 524288/NFS3ERR_DQUOT
	detach_agent srv
}
variant generic generic
check "generic XDP attached and detached: vsrv has no XDP program left" \
	bash -c "! ip -n $LAB_NS_SRV -j link show vsrv | jq -e '.[0].xdp' >/dev/null"
ip -n "$LAB_NS_CLI" link set vcli gso_max_segs 1
variant mtu-frames native
ip -n "$LAB_NS_CLI" link set vcli gso_max_segs 65535
ip -n "$LAB_NS_CLI" link set vcli mtu 9000
ip -n "$LAB_NS_SRV" link set vsrv mtu 9000
variant jumbo-frags native
ip -n "$LAB_NS_CLI" link set vcli mtu 1500
ip -n "$LAB_NS_SRV" link set vsrv mtu 1500

# ---- 3. UDP drop: server-side XDP, and client-side TC (same client run)
# udp_drop ID APPROACH DEV DEPLOY [attach args]: row from one UDP client run
udp_drop() {
	local id=$1 approach=$2 dev=$3 deploy=$4 out=$LAB_DIR/udp-$1.out t0 t1 before after
	shift 4
	if [[ $dev == vsrv ]]; then
		srv lab_agent_start "$LAB_DIR/agent-$id.log" --policy "$POLICY" "$@" || { fail "$id: agent did not start"; return; }
	else
		lab_agent_start "$LAB_DIR/agent-$id.log" --policy "$POLICY" "$@" || { fail "$id: agent did not start"; return; }
	fi
	# 16 KiB: a READ reply of 64 KiB does not fit a UDP datagram
	lab_client "$(lab_url)" write vol-b/ru 16Ki >/dev/null 2>&1 || true
	before=$(tree_bytes vol-a)
	sampler_start vol-a
	t0=$(now)
	lab_client --udp --timeout 3000 --keep-going "$(lab_url "" udp)" write vol-a/u 64Ki 32Ki read vol-b/ru \
		rm vol-b/ru write vol-b/uw 64Ki 32Ki >"$out" 2>&1 || true
	t1=$(now)
	local samples
	samples=$(sampler_stop)
	after=$(tree_bytes vol-a)
	local w r d o
	w=$(op_status "$out" write vol-a/u)
	r=$(op_status "$out" read vol-b/ru)
	d=$(op_status "$out" rm vol-b/ru)
	o=$(op_status "$out" write vol-b/uw)
	check "$id: the WRITE to vol-a ends $w after $(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s; nothing reached vol-a ($before -> $after bytes)" \
		test "$w/$after" = "TIMEOUT/$before"
	check "$id: other datagrams pass: READ $r, REMOVE $d, WRITE to vol-b $o" test "$r/$d/$o" = OK/OK/OK
	check "$id: write_refused_drop $(counter "$dev" write_refused_drop) > 0" test "$(counter "$dev" write_refused_drop)" -gt 0
	row --arg id "$id" --arg approach "$approach" --argjson disk_bytes "$after" --arg app_error ETIMEDOUT \
		--arg error_at hang --argjson reads_ok "$([[ $r == OK ]] && echo true || echo false)" \
		--argjson deletes_ok "$([[ $d == OK ]] && echo true || echo false)" \
		--argjson other_trees_ok "$([[ $o == OK ]] && echo true || echo false)" \
		--argjson cost_ns null --argjson null_ns null --arg cost_unit packet --argjson mbs_with null \
		--argjson mbs_without null --argjson latency_ms null --arg deploy "$deploy" --argjson samples "$samples" \
		--arg notes "UDP: the dropped WRITE datagram is retried by the client until its timeout (nfsf_client --timeout 3000: $(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s for the run); a kernel client on a hard mount retries forever. Cost and throughput: the TCP rows of the same program (the parser does not differ by action)."
	if [[ $dev == vsrv ]]; then detach_agent srv; else detach_agent; fi
}
udp_drop xdp_server_udp_drop "XDP server side, UDP drop" vsrv \
	"NFS server's interface (or a gateway), plaintext NFS over UDP, XDP + clsact" --hook xdp --side server --action drop
udp_drop tc_drop_udp "TC egress drop, UDP" vcli "NFS client's interface, plaintext NFS over UDP, clsact" --action drop

# ---- 4. client side, XDP reply drop
lab_agent_start "$LAB_DIR/agent-rd.log" --policy "$POLICY" --hook xdp --side client ||
	fatal "client-side XDP agent did not start: $(tail -n 3 "$LAB_DIR/agent-rd.log")"
ready=$(grep -m1 '^nfsfence: ready:' "$LAB_DIR/agent-rd.log")
check "client side: action drop-reply by default ($ready)" grep -q 'side=client xdp-mode=native action=drop-reply' <<<"$ready"
lab_client "$(lab_url)" write vol-b/rr 64Ki >/dev/null 2>&1 || true
before=$(tree_bytes vol-a)
sampler_start vol-a
t0=$(now)
lab_client --timeout 4000 --keep-going "$(lab_url)" write vol-a/g 256Ki 64Ki read vol-b/rr >"$LAB_DIR/rd.out" 2>&1 || true
t1=$(now)
samples4=$(sampler_stop)
after=$(tree_bytes vol-a)
g=$(stat -c %s "$LAB_EXPORT/vol-a/g" 2>/dev/null || echo 0)
w=$(op_status "$LAB_DIR/rd.out" write vol-a/g)
r=$(op_status "$LAB_DIR/rd.out" read vol-b/rr)
check "reply drop: the WRITE's reply never comes (the client's WRITE ends $w)" test "$w" = TIMEOUT
check "reply drop: the server stored the data anyway: vol-a/g is $g bytes on the disk, vol-a $after > limit" \
	test "$g" -gt 0 -a "$after" -gt "$LIMIT"
check "reply drop: the READ behind it on the same TCP connection does not complete either ($r)" test "$r" != OK
check "reply drop: reply_dropped $(counter vcli reply_dropped) > 0, write_marked_reply_drop $(counter vcli write_marked_reply_drop) > 0" \
	test "$(counter vcli reply_dropped)" -gt 0 -a "$(counter vcli write_marked_reply_drop)" -gt 0
o=$(lab_client --timeout 4000 "$(lab_url)" write vol-b/rw 64Ki 2>&1 | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^status=/) { sub(/^status=/, "", $i); print $i; exit } }')
check "reply drop: a new connection writing vol-b works ($o)" test "$o" = OK
row --arg id xdp_client_reply_drop --arg approach "XDP client side, WRITE reply drop (the survey's idea)" \
	--argjson disk_bytes "$after" --arg app_error ETIMEDOUT --arg error_at hang --argjson reads_ok false \
	--argjson deletes_ok "$([[ $o == OK ]] && echo true || echo false)" \
	--argjson other_trees_ok "$([[ $o == OK ]] && echo true || echo false)" \
	--argjson cost_ns null --argjson null_ns null --arg cost_unit packet --argjson mbs_with null --argjson mbs_without null \
	--argjson latency_ms null --arg deploy "NFS client's interface, plaintext NFS, XDP (replies) + clsact (calls)" \
	--argjson samples "$samples4" \
	--arg notes "The server stored $g bytes of vol-a/g past the limit before its reply was dropped; the client timed out after $(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s (nfsf_client --timeout 4000), the READ queued behind it on the same connection stalled; other connections (deletes_ok/other_trees_ok) worked. A kernel client on a hard mount retransmits the WRITE forever."
detach_agent

# ---- 5. bad input
# shellcheck disable=SC2046
err_case() { # WHAT WANT-RC PATTERN NS ARGS...: one stderr line matching PATTERN, exit WANT-RC
	local what=$1 want=$2 pat=$3 ns=$4 rc=0
	shift 4
	ip netns exec "$ns" "$NFSF_BIN" attach "$@" --policy "$POLICY" $(dirs) >"$LAB_DIR/err.out" 2>"$LAB_DIR/err.err" &
	local p=$!
	(sleep 20 && kill -KILL "$p" 2>/dev/null) &
	local k=$!
	wait "$p" || rc=$?
	kill "$k" 2>/dev/null || true
	wait "$k" 2>/dev/null || true
	local lines
	lines=$(wc -l <"$LAB_DIR/err.err")
	local matched=no
	grep -qF -- "$pat" "$LAB_DIR/err.err" && matched=yes
	check "$what: exit $rc, $lines line: $(head -c 300 "$LAB_DIR/err.err")" \
		test "$rc/$lines/$matched" = "$want/1/yes"
}
nothing_left() { # NS DEV: no nfsfence program, filter or pin on DEV
	check "$2: nothing of nfsfence left (no XDP program of ours, no TC filter, no pins)" \
		bash -c "! ip -n $1 -j link show $2 | jq -e '.[0].xdp.prog.name // \"\" | startswith(\"nfsf\")' >/dev/null &&
			! ip netns exec $1 tc filter show dev $2 egress 2>/dev/null | grep -q nfsf && ! test -e $LAB_PIN_DIR/$2"
}
ip -n "$LAB_NS_SRV" link set dev vsrv xdpgeneric obj "$NULL_XDP" sec xdp.frags || fail "attaching the null XDP program"
id0=$(ip -n "$LAB_NS_SRV" -j link show vsrv | jq '.[0].xdp.prog.id')
err_case "another XDP program on vsrv" 1 "already has an XDP program, 'null_xdp'" "$LAB_NS_SRV" vsrv --hook xdp \
	--side server --xdp-mode generic
check "the other program is untouched (id $id0)" \
	test "$(ip -n "$LAB_NS_SRV" -j link show vsrv | jq '.[0].xdp.prog.id')" = "$id0"
nothing_left "$LAB_NS_SRV" vsrv
ip -n "$LAB_NS_SRV" link set dev vsrv xdpgeneric off
# loopback has no driver XDP (no ndo_bpf), in every kernel: the namespace's own lo
ip -n "$LAB_NS_SRV" link set lo up
err_case "native XDP on lo (no driver support)" 1 "try --xdp-mode generic" "$LAB_NS_SRV" lo --hook xdp --side server
nothing_left "$LAB_NS_SRV" lo
err_case "--side server with --hook tc" 2 "--side server needs --hook xdp" "$LAB_NS_SRV" vsrv --side server
err_case "--hook xdp --side client --action rewrite" 2 "its one action is drop-reply" "$LAB_NS_CLI" vcli --hook xdp \
	--side client --action rewrite
err_case "--xdp-mode without --hook xdp" 2 "--xdp-mode is for --hook xdp" "$LAB_NS_CLI" vcli --xdp-mode generic
err_case "--hook bpf" 2 "--hook: 'bpf' is not one of: tc, xdp" "$LAB_NS_CLI" vcli --hook bpf

if ((FAILS == 0)); then
	mv "$ROWS.tmp" "$ROWS"
	ok "rows: $ROWS ($(wc -l <"$ROWS") rows)"
else
	rm -f "$ROWS.tmp"
fi
((FAILS == 0)) || { echo "$FAILS checks failed (lab kept: $LAB_DIR)"; exit 1; }
echo "PASS"
