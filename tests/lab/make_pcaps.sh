#!/usr/bin/env bash
# Regenerates the lab captures in pcaps/ with a real nfs-ganesha server and nfsf_client
# (libnfs), each in its own network namespace. For every capture NAME it writes
#   NAME.pcap          full-length capture on the client's veth (tcpdump -s 0)
#   NAME.truth.json    server-side ground truth at the end of the workload: every regular
#                      file under the export with size (stat %s), used (%b * %B), fileid (%i),
#                      and per-tree sums for the trees of NAME.policy.yaml
#   NAME.policy.yaml   an example policy for `nfsfence replay NAME.pcap --policy ...`
# and checks that the last GETATTR reply in the capture (tshark nfs.fattr3.used/size)
# equals the disk's stat for that fileid.
#
# usage: sudo tests/lab/make_pcaps.sh [OUTDIR]     (default: pcaps/ of the source tree)
#   NFSF_CLIENT=path/to/nfsf_client (default: build/tests/nfsf_client)
# Exit 77 with "SKIP: reason" when the machine cannot run the lab.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${1:-$SRC/pcaps}
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_require capture
command -v jq >/dev/null || lab_skip "jq not installed"
command -v tshark >/dev/null || lab_skip "tshark not installed"
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$SRC/build}
CLIENT=$(lab_client_bin) || { echo "make_pcaps: nfsf_client not built; build target nfsf_client or set NFSF_CLIENT" >&2; exit 1; }
export NFSF_CLIENT=$CLIENT
mkdir -p "$OUT"

# Stable names in the captures: the export is presented as /srv/nfs/export, the server is
# 10.99.0.2, and TCP is segmented to the wire MTU (no 64 KiB GSO frames).
export LAB_EXPORT_PATH=/srv/nfs/export LAB_NO_GSO=1 LAB_SUBNET=0

GANESHA_VERSION=$(ganesha.nfsd -v 2>&1 | sed -n 's/.*Release = //p' | head -n1)
LIBNFS_VERSION=$(pkg-config --modversion libnfs 2>/dev/null || echo unknown)
GENERATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# write_truth NAME TREES_JSON  (TREES_JSON: [{"name":..,"path":..}, ...])
write_truth() {
	local name=$1 trees=$2
	(cd "$LAB_EXPORT" && find . -type f -printf '%P\0' | sort -z | xargs -0 -r stat -c '%n	%s	%b	%B	%i') |
		jq -R -s --arg export "$LAB_EXPORT_PATH" --arg server "$LAB_SRV_IP" \
			--arg ganesha "$GANESHA_VERSION" --arg libnfs "$LIBNFS_VERSION" --arg generated "$GENERATED" \
			--argjson trees "$trees" '
			[split("\n")[] | select(length > 0) | split("\t") |
			 {path: .[0], size: (.[1] | tonumber), used: ((.[2] | tonumber) * (.[3] | tonumber)),
			  fileid: (.[4] | tonumber)}] as $files
			| {export: $export, server: $server, ganesha: $ganesha, libnfs: $libnfs,
			   generated: $generated,
			   note: "server disk at the end of the workload; used = st_blocks * 512 (stat %b * %B)",
			   files: $files,
			   trees: [$trees[] | . as $t
			     | ($files | map(select(.path | startswith($t.path + "/")))) as $in
			     | {name: $t.name, path: $t.path, files: ($in | length),
			        size_bytes: ($in | map(.size) | add // 0),
			        used_bytes: ($in | map(.used) | add // 0)}]}' >"$OUT/$name.truth.json"
}

# check_used NAME: last GETATTR reply in the capture vs. the disk (by fileid)
check_used() {
	local name=$1 line fileid size used disk
	line=$(tshark -r "$OUT/$name.pcap" -Y 'nfs.procedure_v3 == 1 && rpc.msgtyp == 1 && nfs.status == 0' \
		-T fields -e nfs.fattr3.fileid -e nfs.fattr3.size -e nfs.fattr3.used 2>/dev/null | tail -n1)
	read -r fileid size used <<<"$line"
	disk=$(jq -c --argjson id "${fileid:-0}" '.files[] | select(.fileid == $id)' "$OUT/$name.truth.json")
	if [[ -z $disk ]]; then
		echo "make_pcaps: $name: GETATTR fileid $fileid not on disk at the end" >&2
		return 1
	fi
	if [[ $(jq -r '"\(.size) \(.used)"' <<<"$disk") == "$size $used" ]]; then
		echo "make_pcaps: $name: GETATTR fattr3 size=$size used=$used == disk $disk"
	else
		echo "make_pcaps: $name: MISMATCH GETATTR fattr3 size=$size used=$used vs disk $disk" >&2
		return 1
	fi
}

write_policy() {
	local name=$1 body=$2
	{
		echo "# Example policy for $name.pcap (made by tests/lab/make_pcaps.sh)."
		echo "export: $LAB_EXPORT_PATH"
		echo "server: $LAB_SRV_IP"
		echo "$body"
	} >"$OUT/$name.policy.yaml"
}

finish() {
	local name=$1
	lab_capture_stop
	ls -l "$OUT/$name.pcap"
}

# ---- 1. lab-tcp-quota: one TCP connection; vol-a passes 2Mi partway through vol-a/f5
make_tcp_quota() {
	local name=lab-tcp-quota
	lab_up "$name"
	lab_capture_start vcli "$OUT/$name.pcap"
	lab_client --inflight 2 "$(lab_url)" \
		mkdir vol-a mkdir vol-b mkdir scratch \
		write vol-a/f1 100000 64Ki \
		write vol-a/f2 1573000 1Mi \
		write vol-b/f3 1Mi 512Ki \
		write scratch/f4 300000 128Ki \
		write vol-a/f5 716801 256Ki \
		read vol-a/f1 64Ki \
		rm vol-a/f1 \
		rename vol-a/f2 vol-a/f2.old \
		rename vol-a/f5 vol-b/f5 \
		stat vol-a/f2.old \
		stat vol-b/f5
	finish "$name"
	write_truth "$name" '[{"name":"vol-a","path":"vol-a"},{"name":"vol-b","path":"vol-b"}]'
	write_policy "$name" "accounting: used
trees:
  - name: vol-a
    path: vol-a
    limit: 2Mi          # passed during the WRITEs of vol-a/f5 (f1 100000 + f2 1573000 + f5 716801 bytes)
    soft_limit: 1Mi
  - name: vol-b
    path: vol-b
    limit: 50Gi"
	check_used "$name"
	lab_down
}

# ---- 2. lab-udp: the same idea over UDP; 32 KiB WRITEs/READs are IP-fragmented
make_udp() {
	local name=lab-udp
	lab_up "$name"
	lab_capture_start vcli "$OUT/$name.pcap"
	lab_client "$(lab_url "" udp)" \
		mkdir vol-a mkdir vol-b \
		write vol-a/u1 100Ki 32Ki \
		write vol-b/u2 48Ki 32Ki \
		write vol-a/u3 20000 8Ki \
		read vol-a/u1 32Ki \
		rename vol-a/u3 vol-b/u3 \
		rm vol-b/u2 \
		ls vol-a \
		stat vol-a/u1
	finish "$name"
	write_truth "$name" '[{"name":"vol-a","path":"vol-a"},{"name":"vol-b","path":"vol-b"}]'
	write_policy "$name" "accounting: used
trees:
  - name: vol-a
    path: vol-a
    limit: 64Ki         # passed by the second WRITE of vol-a/u1
  - name: vol-b
    path: vol-b
    limit: 50Gi"
	check_used "$name"
	lab_down
}

# ---- 3. lab-readdirplus: files made before the capture; the captured session learns their
# handles only from READDIRPLUS (no LOOKUP of them on the wire), then writes, truncates, removes.
make_readdirplus() {
	local name=lab-readdirplus i script
	lab_up "$name"
	script=$LAB_DIR/pre.ops
	{
		echo "mkdir vol-a mkdir vol-b"
		for ((i = 1; i <= 150; i++)); do printf 'write vol-a/d%03d %d\n' "$i" $((1024 * (i % 7 + 1))); done
		echo "write vol-b/e1 10Ki write vol-b/e2 20000"
	} >"$script"
	lab_client --quiet-mount --script "$script" "$(lab_url)" >/dev/null
	lab_capture_start vcli "$OUT/$name.pcap"
	lab_client "$(lab_url)" \
		ls vol-a \
		append vol-a/d007 64Ki \
		pwrite vol-a/d042 0 8Ki \
		truncate vol-a/d100 0 \
		rm vol-a/d001 \
		ls vol-b \
		append vol-b/e1 100Ki 64Ki \
		stat vol-b/e1
	finish "$name"
	write_truth "$name" '[{"name":"vol-a","path":"vol-a"},{"name":"vol-b","path":"vol-b"}]'
	write_policy "$name" "accounting: used
trees:
  - name: vol-a
    path: vol-a
    limit: 1Mi
  - name: vol-b
    path: vol-b
    limit: 100Ki        # passed by the appends to vol-b/e1"
	check_used "$name"
	lab_down
}

for what in ${PCAPS:-tcp-quota udp readdirplus}; do
	case $what in
	tcp-quota) make_tcp_quota ;;
	udp) make_udp ;;
	readdirplus) make_readdirplus ;;
	*) echo "make_pcaps: unknown capture $what" >&2; exit 2 ;;
	esac
done
du -ch "$OUT"/*.pcap | tail -n1
