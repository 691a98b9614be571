#!/usr/bin/env bash
# ctest lab_reload_e2e: the agent follows a --policy-dir while clients write.
#
# Lab: ganesha + nfsf_client, the agent on vcli with --policy-dir. On the server's disk:
# vol-full (one 256 KiB file, limit 64 KiB: over from the start), vol-w (written all along,
# limit 1 GiB until it is lowered) and t001..t200, each with a 128 KiB file and 40 empty
# ones (the policy gives each a 64 KiB limit, so each is over once it is in the policy).
# While writer F rewrites vol-full's file and writer W appends to vol-w, without pause:
#   - 200 tree files are added one at a time (written as dot files, renamed into place);
#     each is in force within a bound (time from the rename to the state file listing the
#     tree, and a WRITE to every one of them refused with NFS3ERR_DQUOT afterwards);
#   - 100 are removed one at a time: each leaves the state file, and WRITEs to them pass
#     again while the others stay refused;
#   - vol-w's limit is lowered below its usage: W's WRITEs turn into NFS3ERR_DQUOT, and
#     vol-w on the server's disk grows by no more than the WRITEs in flight after that;
#   - every one of F's WRITEs, through all of it, is refused (vol-full's bytes on the
#     server's disk never change): no gap in enforcement across 300+ policy changes;
#   - once every tree added is removed again, the agent knows exactly as many handles as
#     before the additions; all of them added again in one burst and removed again give the
#     same handle counts and the same heap in the handle cache (its own count; RSS is
#     printed: glibc keeps part of what was freed, and the writers' connections grow the
#     decoder's state meanwhile, so RSS alone cannot show it);
#   - bad changes are rejected with one log line naming the file, shown by `status`, and
#     the last good policy stays in force: a path missing on the server, two files
#     claiming one path, a half-written file (written in place, no rename), a changed
#     export; a good file afterwards clears the error;
#   - SIGHUP applies a change inotify cannot see (a tree file that is a symbolic link to a
#     file elsewhere, whose target changed).
# Prints the measured times (median, max) and RSS; docs/benchmarks.md quotes a run.
#
# Env: as e2e_enforce.sh (NFSF_BIN, NFSF_CLIENT or NFSF_BUILD_DIR, LAB_KEEP=1);
# RELOAD_TREES (200) trees added, half of them removed in the middle.
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/clsact/BPF).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_e2e_require jq
[[ $("$NFSF_BIN" attach --help 2>/dev/null || true) == *--policy-dir* ]] || lab_skip "$NFSF_BIN has no 'attach --policy-dir'"

N=${RELOAD_TREES:-200}
HALF=$((N / 2))

WRITERS=()
down() {
	local rc=$? p
	touch "$LAB_DIR/stop" 2>/dev/null || true
	for p in "${WRITERS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${WRITERS[@]}"; do wait "$p" 2>/dev/null || true; done
	(exit $rc)
	lab_e2e_down
}
LAB_NO_TRAP=1
lab_up reload || fatal "lab_up failed"
trap down EXIT
lab_agent_dirs || fatal "cannot mount a bpffs for the agent"
STATE=$LAB_STATE_DIR/vcli.json
LOG=$LAB_DIR/agent.log
D=$LAB_DIR/policy.d
mkdir -p "$D"

# --- the server's disk (written directly: ganesha's VFS backend serves it as it is)
E=$LAB_EXPORT
mkdir -p "$E/vol-full" "$E/vol-w"
head -c 262144 /dev/urandom >"$E/vol-full/f"
for ((i = 1; i <= N; i++)); do
	t=$(printf 't%03d' "$i")
	mkdir -p "$E/$t"
	head -c 131072 /dev/urandom >"$E/$t/big"
	(cd "$E/$t" && touch $(seq -f 'e%02g' 1 40))
done

# --- the policy directory
cat >"$D/_defaults.yaml" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
EOF
printf 'path: vol-full\nlimit: 64Ki\n' >"$D/.vol-full.yaml" && mv "$D/.vol-full.yaml" "$D/vol-full.yaml"
printf 'path: vol-w\nlimit: 1Gi\n' >"$D/.vol-w.yaml" && mv "$D/.vol-w.yaml" "$D/vol-w.yaml"
# put NAME TEXT: what a CSI driver does (write a dot file, rename it into place)
put() { printf '%b' "$2" >"$D/.$1.tmp" && mv "$D/.$1.tmp" "$D/$1"; }

lab_agent_start "$LOG" --policy-dir "$D" --mount-port 20048 || fatal "attach --policy-dir did not get ready"
ok "attach --policy-dir ready: $(grep '^nfsfence: ready:' "$LOG" | cut -c1-160)"
PID=$LAB_AGENT_PID
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }  # no fork: the writers keep the CPUs busy
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
handles() { jq -r '.handles' "$STATE"; }
cache_kb() { jq -r '.memory.cache_bytes / 1024 | floor' "$STATE"; }   # the handle cache's own count of its heap
decoder_kb() { jq -r '.memory.decoder_bytes / 1024 | floor' "$STATE"; }
in_state() { grep -qF "\"name\": \"$1\"," "$STATE" 2>/dev/null; }  # cheaper than jq, 100 times a second
reloads() { jq -r '.policy_reloads' "$STATE" 2>/dev/null || echo -1; }
errors() { jq -r '.policy_reload_errors' "$STATE" 2>/dev/null || echo -1; }
# wait_for CMD...: up to 10 s, polling every 10 ms (CMD is run anew each time: quote
# command substitutions, e.g. wait_for eval '[[ $(errors) -gt 3 ]]')
wait_for() {
	local i
	for ((i = 0; i < 1000; i++)); do
		"$@" && return 0
		sleep 0.01
	done
	return 1
}
limit_of() { jq -r --arg n "$1" '.trees[] | select(.name == $n) | .limit_bytes' "$STATE" 2>/dev/null; }
not() { ! "$@"; }

# --- the writers: F rewrites vol-full's file, W appends to vol-w, 64 KiB per WRITE
full_before=$(lab_tree_used vol-full size)
writer() { # NAME OPS...: one client run after another until $LAB_DIR/stop exists
	local name=$1
	shift
	while [[ ! -e $LAB_DIR/stop ]]; do
		lab_client --keep-going "$(lab_url)" "$@" >>"$LAB_DIR/$name.out" 2>&1 || true
	done
}
writer F pwrite vol-full/f 0 256Ki 64Ki &
WRITERS+=($!)
writer W append vol-w/f 1Mi 64Ki &
WRITERS+=($!)
FW=("${WRITERS[@]}")  # the client loops (the timestamping tail below never ends by itself)
# W's lines with the time they were written (ms), to see when its WRITEs turned to DQUOT
touch "$LAB_DIR/W.out"
tail -n +1 -F "$LAB_DIR/W.out" 2>/dev/null | while IFS= read -r line; do
	printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"
done >"$LAB_DIR/W.ts" &
WRITERS+=($!)
wait_for grep -q 'status=OK' "$LAB_DIR/W.out" || fatal "writer W never wrote: $(tail -n 3 "$LAB_DIR/W.out")"
wait_for grep -q 'status=NFS3ERR_DQUOT' "$LAB_DIR/F.out" || fatal "writer F was never refused: $(tail -n 3 "$LAB_DIR/F.out")"
ok "writers running: W appends to vol-w, F's WRITEs to vol-full are refused"

sleep 1.2  # the state file is written once a second: h0 includes what the writers created
h0=$(handles)
rss0=$(rss_kb)
c0=$(cache_kb)
# --- 200 trees added one file at a time
times=()
for ((i = 1; i <= N; i++)); do
	t=$(printf 't%03d' "$i")
	t0=$(now_ms)
	put "$t.yaml" "path: $t\nlimit: 64Ki\n"
	wait_for in_state "$t" || fatal "tree $t not applied within 10 s: $(tail -n 2 "$LOG")"
	times+=($(($(now_ms) - t0)))
done
stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "min %d ms, median %d ms, max %d ms", a[1], a[int((NR + 1) / 2)], a[NR] }'; }
add_stats=$(stats "${times[@]}")
h1=$(handles)
rss1=$(rss_kb)
c1=$(cache_kb)
ok "$N trees added one file at a time: rename to applied $add_stats; handles $h0 -> $h1, RSS $rss0 -> $rss1 KiB"
check "the agent learned every file of the $N trees (42 handles each: dir, big, 40 empty)" test "$((h1 - h0))" -ge $((N * 42))

# every new tree refuses WRITEs (its 128 KiB file is over the 64 KiB limit)
script=$LAB_DIR/probe.ops
probe() { # FROM TO: a 4 KiB pwrite into each tree's big file, one client run
	local i
	: >"$script"
	for ((i = $1; i <= $2; i++)); do printf 'pwrite %s/big 0 4Ki\n' "$(printf 't%03d' "$i")" >>"$script"; done
	lab_client --keep-going --script "$script" "$(lab_url)" 2>&1 | grep '^op=write' || true
}
out=$(probe 1 "$N")
dq=$(grep -c 'status=NFS3ERR_DQUOT' <<<"$out" || true)
check "a WRITE to each of the $N new trees is refused with NFS3ERR_DQUOT ($dq of $N)" test "$dq" = "$N"

# --- half of them removed one at a time
times=()
for ((i = HALF + 1; i <= N; i++)); do
	t=$(printf 't%03d' "$i")
	t0=$(now_ms)
	rm "$D/$t.yaml"
	wait_for not in_state "$t" || fatal "tree $t not removed within 10 s"
	times+=($(($(now_ms) - t0)))
done
rm_stats=$(stats "${times[@]}")
ok "$HALF trees removed one file at a time: rm to applied $rm_stats"
out=$(probe 1 "$HALF")
dq=$(grep -c 'status=NFS3ERR_DQUOT' <<<"$out" || true)
check "WRITEs to the $HALF kept trees are still refused ($dq of $HALF)" test "$dq" = "$HALF"

# --- bad changes: one line each, the last good policy stays
bad() { # WHAT EXPECTED-TEXT: waits for a new rejection; checks the log line, status, enforcement
	local what=$1 want=$2 e0=$3 line st
	if ! wait_for eval '[[ $(errors) -gt $e0 ]]'; then
		fail "$what: not rejected within 10 s ($(tail -n 1 "$LOG"))"
		return
	fi
	line=$(grep '^nfsfence: policy rejected' "$LOG" | tail -n 1)
	check "$what: rejected with one log line naming it: ${line:0:200}" grep -qF -- "$want" <<<"$line"
	st=$(lab_nfsfence status vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" 2>&1 || true)
	check "$what: status shows the error" grep -qF -- "policy ERROR (the last good policy stays in force): " <<<"$st"
	out=$(probe 1 1)
	check "$what: t001 is still refused" grep -q 'status=NFS3ERR_DQUOT' <<<"$out"
}
e0=$(errors)
put missing.yaml 'path: no-such-dir\nlimit: 1Mi\n'
bad "a tree whose path is missing on the server" "$D/missing.yaml: tree 'missing': path 'no-such-dir' does not exist" "$e0"
rm "$D/missing.yaml"
e0=$(errors)
put dup.yaml 'path: t001\nlimit: 1Gi\n'
bad "two files claiming one path" "$D/t001.yaml:1: path: 't001' is claimed by $D/dup.yaml too" "$e0"
rm "$D/dup.yaml"
e0=$(errors)
printf 'path: t002\nlimit: 1G' >"$D/t002.yaml.part"  # not a tree file name: ignored
printf 'pat' >"$D/t002b.yaml"                        # written in place and closed half-way
bad "a half-written file" "$D/t002b.yaml:1: tree file: must be a YAML mapping with keys path, limit" "$e0"
rm "$D/t002.yaml.part" "$D/t002b.yaml"
e0=$(errors)
put _defaults.yaml "export: /elsewhere\nserver: $LAB_SRV_IP\n"
bad "a changed export" "export changed from '$LAB_EXPORT_PATH' to '/elsewhere': restart the agent for that" "$e0"
r0=$(reloads)
put _defaults.yaml "export: $LAB_EXPORT_PATH\nserver: $LAB_SRV_IP\n"
wait_for eval '[[ $(jq -r .policy_error "$STATE") == null ]]' || fail "the error stays after a good policy"
st=$(lab_nfsfence status vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" 2>&1 || true)
check "a good policy again: status shows no error" not grep -q 'policy ERROR' <<<"$st"

# --- SIGHUP: a tree file that is a link to a file elsewhere changes where inotify cannot see
mkdir -p "$LAB_DIR/elsewhere"
printf 'path: t%03d\nlimit: 64Ki\n' $((HALF + 1)) >"$LAB_DIR/elsewhere/linked.yaml"
ln -s "$LAB_DIR/elsewhere/linked.yaml" "$D/linked.yaml"
wait_for in_state linked || fail "a new symbolic link in the directory was not applied"
printf 'path: t%03d\nlimit: 1Gi\n' $((HALF + 1)) >"$LAB_DIR/elsewhere/linked.yaml.new"
mv "$LAB_DIR/elsewhere/linked.yaml.new" "$LAB_DIR/elsewhere/linked.yaml"
sleep 0.5
lim=$(limit_of linked)
check "a change behind a symbolic link is not seen without SIGHUP (limit still $lim)" test "$lim" = 65536
kill -HUP "$PID"
wait_for eval '[[ $(limit_of linked) == 1073741824 ]]' ||
	fail "SIGHUP did not apply the change"
check "SIGHUP applied it: $(grep '^nfsfence: policy applied (SIGHUP)' "$LOG" | tail -n 1 | cut -c1-120)" \
	grep -q '^nfsfence: policy applied (SIGHUP)' "$LOG"
rm "$D/linked.yaml"

# --- vol-w's limit lowered below its usage while W writes
wait_for eval '[[ $(lab_tree_used vol-w size) -gt 0 ]]' || fatal "vol-w has no bytes"
used=$(lab_tree_used vol-w)
t0=$(now_ms)
put vol-w.yaml "path: vol-w\nlimit: $((used / 2))\n"
wait_for eval '[[ $(limit_of vol-w) == $((used / 2)) ]]' ||
	fail "vol-w's new limit not applied"
t_applied=$(now_ms)
disk_at_apply=$(lab_tree_used vol-w size)
wait_for grep -q 'status=NFS3ERR_DQUOT' "$LAB_DIR/W.ts" || fail "W was never refused after the limit was lowered"
first_dq=$(awk '/status=NFS3ERR_DQUOT/ { print substr($1, 1, length($1) - 3); exit }' "$LAB_DIR/W.ts")
sleep 1
disk_later=$(lab_tree_used vol-w size)
grew=$((disk_later - disk_at_apply))
ok "vol-w's limit lowered to $((used / 2)) under $used used: applied $((t_applied - t0)) ms after the rename, W's first NFS3ERR_DQUOT $((first_dq - t0)) ms after it"
check "vol-w grew by $grew bytes on the server's disk after the new limit was applied (at most 4 WRITEs of 64 KiB in flight)" \
	test "$grew" -le $((4 * 65536))

# --- all the added trees removed: memory back
for ((i = 1; i <= HALF; i++)); do rm "$D/$(printf 't%03d' "$i").yaml"; done
wait_for not in_state t001 || fail "the last trees were not removed"
wait_for eval '[[ $(jq ".trees | length" "$STATE") == 2 ]]' || fail "trees left: $(jq -c '[.trees[].name]' "$STATE")"
sleep 1.2
h2=$(handles)
rss2=$(rss_kb)
c2=$(cache_kb)
ok "every added tree removed: handles $h0 -> $h1 -> $h2, handle cache $c0 -> $c1 -> $c2 KiB, RSS $rss0 -> $rss1 -> $rss2 KiB"
check "the agent knows as many handles as before the additions ($h2 vs $h0)" test "$h2" = "$h0"
check "the handle cache's heap is back where it was ($c2 KiB vs $c0 before the additions, $c1 with them)" \
	test "$c2" -le $((c0 + c0 / 20 + 64))
# What glibc does not give back (the handles' small blocks among the agent's others) must be
# reused: all N trees again at once (a burst of renames, applied as one or two changes), and
# removed again; RSS may not grow past the first peak by more than a tenth of the additions.
for ((i = 1; i <= N; i++)); do t=$(printf 't%03d' "$i") && printf 'path: %s\nlimit: 64Ki\n' "$t" >"$D/.$t.tmp"; done
for ((i = 1; i <= N; i++)); do t=$(printf 't%03d' "$i") && mv "$D/.$t.tmp" "$D/$t.yaml"; done
wait_for eval '[[ $(jq ".trees | length" "$STATE") == $((N + 2)) ]]' || fail "the burst of $N tree files was not applied"
sleep 1.2
h3=$(handles)
rss3=$(rss_kb)
c3=$(cache_kb)
for ((i = 1; i <= N; i++)); do rm "$D/$(printf 't%03d' "$i").yaml"; done
wait_for eval '[[ $(jq ".trees | length" "$STATE") == 2 ]]' || fail "the burst of removals was not applied"
sleep 1.2
h4=$(handles)
rss4=$(rss_kb)
c4=$(cache_kb)
ok "all $N again in one burst and removed again: handles $h3 -> $h4, handle cache $c3 -> $c4 KiB, RSS $rss3 -> $rss4 KiB (the decoder holds $(decoder_kb) KiB: the writers' connections, closed after 300 s idle)"
check "handles: $h3 with the trees again (as the first time: $h1), $h4 without (as before: $h0)" test "$h3" = "$h1" -a "$h4" = "$h0"
check "the handle cache: $c3 KiB with the trees again (first time $c1), $c4 without (before: $c0)" \
	test "$c3" -le $((c1 + c1 / 20 + 64)) -a "$c4" -le $((c0 + c0 / 20 + 64))
# (probed only now: the client's LOOKUPs of trees no longer in the policy teach the agent
# their handles, outside every tree, which it keeps like any other)
out=$(probe 1 "$N")
okw=$(grep -c 'status=OK' <<<"$out" || true)
check "WRITEs to the $N removed trees pass again ($okw of $N OK)" test "$okw" = "$N"

# --- F, all along: refused, vol-full untouched
touch "$LAB_DIR/stop"
for p in "${FW[@]}"; do wait "$p" 2>/dev/null || true; done
fok=$(grep -c '^op=write.*status=OK' "$LAB_DIR/F.out" || true)
fdq=$(grep -c '^op=write.*status=NFS3ERR_DQUOT' "$LAB_DIR/F.out" || true)
check "writer F: $fdq WRITEs to vol-full refused through $(reloads) policy changes, $fok passed" test "$fok" = 0 -a "$fdq" -gt 0
full_after=$(lab_tree_used vol-full size)
check "vol-full on the server's disk: $full_before bytes before, $full_after after" test "$full_before" = "$full_after"
check "the agent is still running" kill -0 "$PID"
grep -c '^nfsfence: policy applied' "$LOG" | sed 's/^/reloads applied: /'
# the agent's own view: from the first inotify event to the maps written
seen=$(sed -n 's/^nfsfence: policy applied (changed): .* ms; \([0-9.]*\) ms after the change was seen$/\1/p' "$LOG")
agent_stats=$(stats $(printf '%.0f\n' $seen))
ok "the agent applied each change $agent_stats after inotify reported it (50 ms of it waiting for quiet)"
echo "summary: add $add_stats; remove $rm_stats; agent $agent_stats; RSS $rss0 -> $rss1 -> $rss2 -> (again) $rss3 -> $rss4 KiB; cache $c0 -> $c1 -> $c2 -> $c3 -> $c4 KiB; handles $h0 -> $h1 -> $h2 -> $h3 -> $h4"
[[ $FAILS == 0 ]] || exit 1
echo "PASS"
