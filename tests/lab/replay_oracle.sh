#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAB_KEEP is read by lab_down from lab.sh
# ctest lab_replay_vs_server_disk: the server's disk is the oracle for `nfsfence replay`.
#
# Brings up the lab (ganesha + nfsf_client in network namespaces), runs a fresh workload with
# random-ish sizes from a fixed seed while capturing on the client's veth, then runs
#   $NFSF_BIN replay CAPTURE --policy P --format json
# and asserts, for every tree, usage_bytes == the sum over the regular files under that tree
# on the server's disk of used (st_blocks*512, what fattr3.used reports on ganesha VFS), and
# with an `accounting: size` policy, == the sum of sizes.
#
# Env: NFSF_BIN (nfsfence binary), NFSF_SOURCE_DIR, NFSF_BUILD_DIR (set by ctest);
#      NFSF_ORACLE_SEED (default 42), NFSF_ORACLE_FILES (default 24),
#      NFSF_ORACLE_UDP=0 to leave out the UDP session, LAB_KEEP=1 to keep the lab dir.
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/jq).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
SEED=${NFSF_ORACLE_SEED:-42}
NFILES=${NFSF_ORACLE_FILES:-24}
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_require capture
command -v jq >/dev/null || lab_skip "jq not installed (apt-get install jq)"
lab_client_bin >/dev/null || lab_skip "nfsf_client not built (needs libnfs-dev; target nfsf_client)"
[[ -x $NFSF_BIN ]] || { echo "FAIL: nfsfence binary not found at NFSF_BIN=$NFSF_BIN" >&2; exit 1; }

fail() {
	echo "FAIL: $*" >&2
	LAB_KEEP=1 # read by lab_down
	exit 1
}

lab_up oracle
CAP=$LAB_DIR/oracle.pcap
OPS=$LAB_DIR/workload.ops

# ---- the workload, deterministic for a seed
RANDOM=$SEED
DIRS=(vol-a vol-a/sub vol-b vol-b/deep other)
CHUNKS=(32Ki 64Ki 256Ki 1Mi)
declare -a path
{
	echo "mkdir vol-a mkdir vol-a/sub mkdir vol-b mkdir vol-b/deep mkdir other"
	for ((i = 1; i <= NFILES; i++)); do
		d=${DIRS[RANDOM % ${#DIRS[@]}]}
		size=$(((RANDOM * 32768 + RANDOM) % 900000 + 1))
		path[i]="$d/f$i"
		echo "write ${path[i]} $size ${CHUNKS[RANDOM % ${#CHUNKS[@]}]}"
	done
	# distinct files for each later op: a seeded Fisher-Yates shuffle of 1..NFILES
	perm=()
	for ((i = 1; i <= NFILES; i++)); do perm+=("$i"); done
	for ((i = NFILES - 1; i > 0; i--)); do
		j=$((RANDOM % (i + 1)))
		t=${perm[i]} perm[i]=${perm[j]} perm[j]=$t
	done
	for k in 0 1 2; do # truncate: shrink, or extend (a hole: used < size)
		i=${perm[k]}
		echo "truncate ${path[i]} $(((RANDOM * 32768 + RANDOM) % 1200000))"
	done
	for k in 3 4 5; do
		i=${perm[k]}
		echo "append ${path[i]} $(((RANDOM * 32768 + RANDOM) % 300000 + 1)) 64Ki"
	done
	for k in 6 7 8; do # rename into another directory (across trees, in and out of trees)
		i=${perm[k]}
		d=${DIRS[RANDOM % ${#DIRS[@]}]}
		[[ $d == "${path[i]%/*}" ]] && d=${DIRS[(RANDOM % (${#DIRS[@]} - 1) + 1)]}
		[[ $d == "${path[i]%/*}" ]] && d=other
		echo "rename ${path[i]} $d/r$i"
		path[i]="$d/r$i"
	done
	for k in 9 10 11; do
		i=${perm[k]}
		echo "rm ${path[i]}"
	done
	echo "stat vol-a ls vol-a ls vol-b"
} >"$OPS"

lab_capture_start vcli "$CAP"
lab_client --inflight 3 --script "$OPS" "$(lab_url)" >"$LAB_DIR/client1.out" ||
	fail "workload client failed: $(grep -v 'status=OK' "$LAB_DIR/client1.out" | head -n 5)"
if [[ ${NFSF_ORACLE_UDP:-1} == 1 ]]; then
	lab_client "$(lab_url "" udp)" write vol-a/u1 $((RANDOM % 200000 + 1)) 32Ki \
		write vol-b/u2 $((RANDOM % 200000 + 1)) 32Ki write other/u3 5000 \
		rename vol-b/u2 vol-a/u2 >"$LAB_DIR/client2.out" ||
		fail "UDP client failed: $(grep -v 'status=OK' "$LAB_DIR/client2.out" | head -n 5)"
fi
# a second TCP connection that knows handles only from READDIRPLUS
late=$(lab_disk_files | awk -F'\t' '$1 ~ /^vol-b\/[^/]+$/ {print $1; exit}')
lab_client "$(lab_url)" ls vol-b append "${late:-vol-b/late}" 70000 >"$LAB_DIR/client3.out" ||
	fail "client 3 failed: $(cat "$LAB_DIR/client3.out")"
lab_capture_stop
[[ -s $CAP ]] || fail "empty capture"

# ---- ground truth from the server's disk
lab_disk_files >"$LAB_DIR/disk.tsv"
# Files in vol-a/sub and vol-b/deep count toward their tree; "other" is outside every tree.
TREES='[{"name":"vol-a","path":"vol-a"},{"name":"vol-b","path":"vol-b"}]'
expected() { # expected ACCOUNTING -> {"vol-a": N, ...}
	jq -R -s --argjson trees "$TREES" --arg acc "$1" '
		[split("\n")[] | select(length > 0) | split("\t") |
		 {path: .[0], size: (.[1] | tonumber), used: (.[2] | tonumber)}] as $files
		| [$trees[] | . as $t | {key: $t.name,
		   value: ($files | map(select(.path | startswith($t.path + "/"))) | map(.[$acc]) | add // 0)}]
		| from_entries' "$LAB_DIR/disk.tsv"
}
write_policy() { # write_policy ACCOUNTING FILE
	{
		echo "export: $LAB_EXPORT_PATH"
		echo "server: $LAB_SRV_IP"
		echo "accounting: $1"
		echo "trees:"
		jq -r '.[] | "  - name: \(.name)\n    path: \(.path)\n    limit: 1Ti"' <<<"$TREES"
	} >"$2"
}

rc=0
for acc in used size; do
	pol=$LAB_DIR/policy-$acc.yaml
	out=$LAB_DIR/replay-$acc.json
	write_policy "$acc" "$pol"
	exp=$(expected "$acc")
	if ! "$NFSF_BIN" replay "$CAP" --policy "$pol" --format json >"$out" 2>"$LAB_DIR/replay-$acc.err"; then
		echo "FAIL: '$NFSF_BIN replay $CAP --policy $pol --format json' exited non-zero:" >&2
		head -n 20 "$LAB_DIR/replay-$acc.err" >&2
		rc=1
		continue
	fi
	if ! jq -s -e 'length == 1 and (.[0].trees | type == "array")' "$out" >/dev/null 2>&1; then
		echo "FAIL: accounting=$acc: replay output is not JSON with a .trees array:" >&2
		head -c 600 "$out" >&2
		echo >&2
		rc=1
		continue
	fi
	for name in $(jq -r '.[].name' <<<"$TREES"); do
		want=$(jq -r --arg n "$name" '.[$n]' <<<"$exp")
		got=$(jq -r --arg n "$name" '[.trees[]? | select(.name == $n) | .usage_bytes][0] // "missing"' "$out")
		if [[ $got == "$want" ]]; then
			echo "ok: accounting=$acc tree $name: replay usage_bytes=$got == server disk sum($acc)=$want"
		else
			echo "FAIL: accounting=$acc tree $name: replay usage_bytes=$got, server disk sum($acc)=$want" \
				"(expected equal: the capture holds every change to this export)" >&2
			rc=1
		fi
	done
done
if [[ $rc != 0 ]]; then
	echo "disk files (path size used):" >&2
	sed 's/^/  /' "$LAB_DIR/disk.tsv" >&2
	LAB_KEEP=1 # read by lab_down
	echo "capture, workload and replay outputs kept in $LAB_DIR" >&2
fi
exit $rc
