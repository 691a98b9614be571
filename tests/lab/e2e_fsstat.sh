#!/usr/bin/env bash
# ctest lab_fsstat_e2e: `df` on a tree shows the tree's limit and what is left (issue 11).
#
# Lab: ganesha (server namespace) + nfsf_client (libnfs, client namespace), the agent on
# vcli with the e2e policy (vol-a 1Mi, vol-b 1Gi). nfsf_client's `fsstat PATH` sends the
# FSSTAT that libnfs's statvfs and the kernel's statfs send, and prints what the reply says
# after the TC ingress program. Expected values come from the policy and the server's disk,
# never from nfsfence's own state:
#   mount of the tree (nfs://SRV/EXPORT/vol-a): tbytes == 1Mi, fbytes == abytes ==
#     1Mi - (sum of st_blocks*512 of vol-a's files on the server's disk)
#   FSSTAT of a file inside vol-a (through the export root mount): the same numbers
#   vol-b: tbytes == 1Gi, fbytes == 1Gi - its disk usage
#   mount of the export root: the server's own numbers (tbytes == the export filesystem's
#     size from statfs on the server; abytes within 64 MiB of its f_bavail: the host's disk
#     is shared)
#   vol-a filled past its limit (writes refused): fbytes == abytes == 0
#   over UDP: the same as TCP
#   counters: fsstat_rewritten counts the rewritten replies, fsstat_cut 0
#   an agent with `fsstat: pass`: vol-a's FSSTAT says the server's numbers
#
# Env: as e2e_enforce.sh (NFSF_BIN, NFSF_CLIENT or NFSF_BUILD_DIR, LAB_KEEP=1).
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/clsact/BPF).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_e2e_require jq


LAB_NO_TRAP=1
lab_up fsstat || fatal "lab_up failed"
trap lab_e2e_down EXIT
lab_agent_dirs || fatal "cannot mount a bpffs for the agent"
POLICY=$LAB_DIR/policy.yaml
lab_policy "$POLICY"
MI=1048576
GI=1073741824

lab_client "$(lab_url)" mkdir vol-a mkdir vol-b write vol-a/f 300Ki write vol-b/g 200Ki >"$LAB_DIR/setup.out" 2>&1 ||
	fatal "setup client failed: $(cat "$LAB_DIR/setup.out")"

# fsstat URL PATH [udp]: "tbytes fbytes abytes" of one FSSTAT, or "none"
fsstat() {
	local out
	out=$(lab_client "$(lab_url "$1" "${3:-}")" fsstat "$2" 2>&1) || { echo none; return 0; }
	sed -n 's/^op=fsstat .*status=OK.* tbytes=\([0-9]*\) fbytes=\([0-9]*\) abytes=\([0-9]*\).*/\1 \2 \3/p' <<<"$out" |
		head -n 1 | grep . || echo none
}
# want_tree TREE LIMIT: "LIMIT LEFT LEFT" from the policy and the server's disk
want_tree() {
	local used left
	used=$(lab_tree_used "$1")
	left=$(($2 > used ? $2 - used : 0))
	echo "$2 $left $left"
}
# wait_fsstat WHAT SUBDIR PATH TREE LIMIT [udp]: polls (5 s) until FSSTAT says what the
# disk says (the agent follows usage from the replies it reads)
wait_fsstat() {
	local what=$1 i got want
	for ((i = 0; i < 50; i++)); do
		want=$(want_tree "$4" "$5")
		got=$(fsstat "$2" "$3" "${6:-}")
		[[ $got == "$want" ]] && { ok "$what: tbytes fbytes abytes = $got (policy limit, limit - disk usage)"; return 0; }
		sleep 0.1
	done
	fail "$what: FSSTAT says '$got', the policy and the server's disk say '$want'"
}
counter() {
	lab_nfsfence status vcli --format json --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" 2>/dev/null |
		jq -r --arg c "$1" '(if type == "array" then .[0] else . end).counters[$c] // "missing"'
}
# the export filesystem as the server's statfs sees it: "size avail" in bytes
disk_df() {
	local b a bs
	read -r b a bs < <(stat -f -c '%b %a %S' "$LAB_EXPORT")
	echo "$((b * bs)) $((a * bs))"
}

root_before=$(fsstat "" .)
check "without the agent, the export root's FSSTAT answers ($root_before)" test "$root_before" != none

lab_agent_start "$LAB_DIR/agent.log" --policy "$POLICY" --mount-port 20048 ||
	fatal "attach did not get ready: $(cat "$LAB_DIR/agent.log")"
ok "attach ready"

wait_fsstat "mount of the tree (nfs://SRV$LAB_EXPORT_PATH/vol-a), FSSTAT of its root" vol-a . vol-a $MI
wait_fsstat "FSSTAT of a file in vol-a through the export root's mount" "" vol-a/f vol-a $MI
wait_fsstat "mount of vol-b" vol-b . vol-b $GI
wait_fsstat "mount of the tree over UDP" vol-a . vol-a $MI udp

read -r dsize davail < <(disk_df)
read -r rt _ ra < <(fsstat "" .)
check "export root left alone: tbytes $rt == the export filesystem's size $dsize (statfs on the server)" \
	test "$rt" = "$dsize"
check "export root left alone: abytes $ra within 64 MiB of the server's f_bavail $davail" \
	test $((ra > davail ? ra - davail : davail - ra)) -le $((64 * MI))

# fill vol-a: 64 KiB WRITEs until refused (the room bound stops them short of the limit),
# then 4 KiB WRITEs into what is left: the tree ends exactly full, nothing left
lab_client --keep-going "$(lab_url)" write vol-a/big 2Mi 64Ki write vol-a/rest 256Ki 4Ki >"$LAB_DIR/fill.out" 2>&1 || true
dq=$(grep -c 'status=NFS3ERR_DQUOT' "$LAB_DIR/fill.out" || true)
check "filling vol-a: $dq WRITEs refused with NFS3ERR_DQUOT" test "$dq" -gt 0
used=$(lab_tree_used vol-a)
check "vol-a's disk usage $used >= its limit $MI" test "$used" -ge $MI
wait_fsstat "vol-a full: nothing left" vol-a . vol-a $MI

rw=$(counter fsstat_rewritten)
cut=$(counter fsstat_cut)
check "status: fsstat_rewritten $rw > 0, fsstat_cut $cut == 0" test "${rw:-0}" -gt 0 -a "$cut" = 0 2>/dev/null

# fsstat: pass: the same tree, the server's numbers
lab_agent_stop
cat "$POLICY" >"$LAB_DIR/pass.yaml"
echo "fsstat: pass" >>"$LAB_DIR/pass.yaml"
lab_agent_start "$LAB_DIR/agent-pass.log" --policy "$LAB_DIR/pass.yaml" --mount-port 20048 ||
	fatal "attach (fsstat: pass) did not get ready: $(cat "$LAB_DIR/agent-pass.log")"
read -r dsize _ < <(disk_df)
read -r pt _ _ < <(fsstat vol-a .)
check "fsstat: pass: vol-a's tbytes $pt == the export filesystem's size $dsize" test "$pt" = "$dsize"

((FAILS == 0)) || { echo "FAIL: $FAILS checks failed (lab dir kept: $LAB_DIR)" >&2; exit 1; }
echo "PASS"
