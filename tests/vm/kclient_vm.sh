#!/usr/bin/env bash
# ctest vm_kernel_client: nfsfence against the Linux kernel's own NFS client. One boot of
# Debian 12's 6.1 kernel under QEMU (TCG) runs every scenario of tests/vm/guest/kclient.sh:
# TC rewrite (buffered, close, O_SYNC, O_DIRECT, parallel, mmap, wsize 64 KiB), reads,
# other trees, deletes, `status` against the server's disk, the agent SIGKILLed and
# restarted, df/statfs on a mount of a tree and of the export root (the FSSTAT rewrite),
# the LSM fallback, the LSM write() benchmark, TC drop on soft and hard mounts, the UDP
# mount, and the survey's five baselines (bench/baselines, loaded by nfsf_baseline: kprobe
# -EPERM, TC drop by client IP, LSM with the syscall check, SIGKILL from sys_enter_write,
# bpf_override_return), each with the null program of its hook for the cost. The server is nfs-ganesha in a network namespace of its own, with
# QEMU's user network in that namespace: the guest reaches it at 10.0.2.2 and nothing leaves
# the namespace. QEMU's filter-dump records the guest's traffic; after the guest powers off
# the capture is replayed and compared with the server's disk. tests/vm/kclient_check.py
# turns the console's markers and the host's disk snapshots into results.
#
#   tests/vm/kclient_vm.sh BUILD_DIR
#   env: KERNEL_DEB, VM_CACHE (vm_lib.sh); KCLIENT_KEEP=1 keeps the work dir;
#        KCLIENT_RESULTS=FILE writes the measured numbers as JSON (default BUILD_DIR/vm-kclient.json);
#        KCLIENT_ROWS=FILE the trade-off report's rows (bench/report_rows.md; default
#        BUILD_DIR/report-rows/vm.jsonl);
#        KCLIENT_BENCH_ROUNDS=N rounds of the write() benchmark (default 3; docs: 12);
#        KCLIENT_TINY=DIR/NAME saves the capture as it was after the first scenario, with its
#        truth and policy (how pcaps/kclient-tiny.* were made)
# Exit: 0 all scenarios passed, 1 a scenario failed, 77 skip (a capability is missing).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/vm_lib.sh
source "$HERE/vm_lib.sh"
BUILD=$(cd "${1:?usage: kclient_vm.sh BUILD_DIR}" && pwd)
[[ $(id -u) -eq 0 ]] || vm_skip "needs root (network namespace, ganesha)"
vm_require
for t in ganesha.nfsd rpcbind unshare mount.nfs python3; do
	command -v "$t" >/dev/null || vm_skip "$t not installed (nfs-ganesha rpcbind util-linux nfs-common python3)"
done
[[ -n $(find /usr/lib*/ -name 'libfsalvfs.so*' -print -quit 2>/dev/null) ]] || vm_skip "nfs-ganesha-vfs not installed"
for b in nfsfence tests/nfsf_vmtool tests/nfsf_bpf_verify bpf/nfsfence_null_lsm.bpf.o bench/nfsf_baseline \
	bpf/nfsf_base_kprobe_eperm.bpf.o; do
	[[ -e $BUILD/$b ]] || { echo "FAIL: $BUILD/$b not built"; exit 1; }
done
vm_kernel

WORK=$(mktemp -d /tmp/nfsf-kc.XXXXXX)
NS=nfsf-kc-$$
QPID=
cleanup() {
	local rc=$?
	set +e
	[[ -n $QPID ]] && kill "$QPID" 2>/dev/null
	# this script's own helpers (the console follower, the ttyS1 drain)
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done
	local pids
	pids=$(ip netns pids "$NS" 2>/dev/null)
	# shellcheck disable=SC2086
	[[ -n $pids ]] && kill $pids 2>/dev/null && sleep 1
	pids=$(ip netns pids "$NS" 2>/dev/null)
	# shellcheck disable=SC2086
	[[ -n $pids ]] && kill -9 $pids 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	if [[ ${KCLIENT_KEEP:-0} == 1 || $rc != 0 ]]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LIMIT=$((8 << 20))
EXP=$WORK/export
# ganesha presents EXP as XPATH (a bind mount inside its private mount namespace, under a
# private tmpfs on /srv: nothing changes on the host), so captures name a stable path.
XPATH=/srv/nfs/kclient
[[ -d /srv ]] || vm_skip "/srv does not exist (the bind mount that gives the export a stable path needs it)"
TREES="tiny fsync close osync odirect par mmap w64buf w64sync other kill lsmbuf lsmdio lsmpar lsmw64 lsmmmap lsmother bench drop dfa
	lsmways base_kp base_ip base_lsm base_sig base_ovr"
TREES=${TREES//$'\n'/ }
TREES=${TREES//$'\t'/}
limit_of() {
	case $1 in
	tiny) echo 131072 ;; other | lsmother) echo $((64 << 20)) ;; bench) echo $((1 << 30)) ;;
	drop | base_*) echo $((1 << 20)) ;; lsmways) echo 65536 ;; *) echo $LIMIT ;;
	esac
}
mkdir -p "$EXP"
chmod 0777 "$EXP"
{
	echo "export: $XPATH"
	echo "server: 10.0.2.2"
	echo "accounting: size"
	echo "trees:"
	for t in $TREES; do
		mkdir -p "$EXP/$t"
		echo "  - {name: $t, path: $t, limit: $(limit_of "$t")}"
	done
} >"$WORK/p.yaml"
chmod -R 0777 "$EXP"
# The drop tree starts over its limit (the agent's walk sees it full).
head -c $((2 << 20)) /dev/zero >"$EXP/drop/pre"
head -c $((128 << 10)) /dev/zero >"$EXP/lsmways/pre"  # over its 64 KiB from the start too

# ---- initramfs: a base part that only changes with the Debian packages (busybox,
# mount.nfs and its libraries, the modules), cached in VM_CACHE, then the project's part.
key=$(cat "$(command -v busybox)" "$(command -v mount.nfs)" "$VM_VMLINUZ" "$HERE/vm_lib.sh" | sha256sum | cut -c1-16)
BASE=$VM_CACHE/kclient-base-$VM_KVER-$key.cpio.gz
if [[ ! -f $BASE ]]; then
	RB=$WORK/root-base
	vm_root_init "$RB"
	vm_copy_bin "$RB" "$(command -v mount.nfs)" /sbin/mount.nfs
	cp /etc/protocols /etc/netconfig /etc/services "$RB/etc/" 2>/dev/null || true
	ln -sf /proc/self/mounts "$RB/etc/mtab"
	vm_copy_modules "$RB" virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover \
		net_failover virtio_net sunrpc grace lockd nfs_acl netfs fscache nfs nfsv3 sch_ingress cls_bpf
	vm_pack "$RB" "$BASE.tmp.$$" && mv "$BASE.tmp.$$" "$BASE"
	rm -rf "$RB"
fi
R=$WORK/root
mkdir -p "$R"/{bin,etc,objs}
vm_copy_bin "$R" "$BUILD/nfsfence" /bin/nfsfence strip
vm_copy_bin "$R" "$BUILD/tests/nfsf_vmtool" /bin/nfsf_vmtool strip
vm_copy_bin "$R" "$BUILD/tests/nfsf_bpf_verify" /bin/nfsf_bpf_verify strip
cp "$BUILD/bpf/nfsfence_null_lsm.bpf.o" "$R/objs/"
# the survey's baselines (bench/baselines): their loader and objects
vm_copy_bin "$R" "$BUILD/bench/nfsf_baseline" /bin/nfsf_baseline strip
cp "$BUILD"/bpf/nfsf_base_*.bpf.o "$R/objs/"
cp "$WORK/p.yaml" "$R/etc/p.yaml"
printf 'EXPORT=%s\nLIMIT=%s\nBENCH_ROUNDS=%s\n' "$XPATH" "$LIMIT" "${KCLIENT_BENCH_ROUNDS:-3}" >"$R/etc/vm.env"
cp "$HERE/guest/kclient.sh" "$R/kclient.sh"
cat >"$R/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "NFSF_VM_KERNEL $(uname -r)"
for m in $(cat /modules/order); do insmod /modules/$m.ko 2>/dev/null || echo "NFSF_R insmod_failed $m"; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
sh /kclient.sh
echo NFSF_VM_END
poweroff -f
INIT
chmod +x "$R/init" "$R/kclient.sh"
vm_pack "$R" "$WORK/project.cpio.gz"
cat "$BASE" "$WORK/project.cpio.gz" >"$WORK/initrd.gz"
VM_INITRD=$WORK/initrd.gz

# ---- the namespace: ganesha + rpcbind + QEMU. A veth pair with both ends inside gives it a
# non-loopback address, which ganesha's Bind_addr = 127.0.0.1 needs (LAB.md).
ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add kca netns "$NS" type veth peer name kcb netns "$NS"
ip -n "$NS" addr add 10.213.0.1/30 dev kca
ip -n "$NS" link set kca up
ip -n "$NS" link set kcb up
cat >"$WORK/ganesha.conf" <<EOF
NFS_CORE_PARAM { Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false;
	Enable_RQUOTA = false; Bind_addr = 127.0.0.1; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = $XPATH; Pseudo = /export; Protocols = 3; Transports = TCP, UDP;
	Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
EOF
# shellcheck disable=SC2016 # expanded by the inner sh
ip netns exec "$NS" unshare -m --propagation private sh -c '
	mount -t tmpfs tmpfs /run && mkdir -p /run/ganesha /run/rpcbind || exit 1
	mount -t tmpfs tmpfs /srv && mkdir -p "$4" && mount --bind "$3" "$4" || exit 1
	rpcbind -w || exit 1
	exec ganesha.nfsd -F -f "$1" -L "$2" -p /run/ganesha/ganesha.pid -N NIV_WARN
' kc-ganesha "$WORK/ganesha.conf" "$WORK/ganesha.log" "$EXP" "$XPATH" >"$WORK/ganesha.stdout" 2>&1 &
for port in 2049 20048; do
	for ((i = 0; i < 150; i++)); do
		ip netns exec "$NS" timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
		sleep 0.2
	done
	((i < 150)) || { echo "FAIL: ganesha did not listen on $port: $(tail -n 5 "$WORK/ganesha.log")"; exit 1; }
done

# ---- one boot
snapshot() { # LABEL: per tree the size and the allocated bytes of its regular files on the server's disk
	local t
	for t in $TREES; do
		echo "HOST $1 bytes $t $(find "$EXP/$t" -type f -printf '%s %b\n' | awk '{s += $1; u += $2 * 512} END {print s + 0, u + 0}')"
	done
	# the export's filesystem as the server's statfs sees it: f_frsize f_blocks f_bfree f_bavail
	echo "HOST $1 statfs $(stat -f -c '%S %b %f %a' "$EXP")"
	if [[ $1 == tc_writes || $1 == lsm_writes ]]; then
		(cd "$EXP" && find . -type f -size -64M -printf '%P\n' | sort | while read -r f; do
			echo "HOST $1 sha $f $(sha256sum "$f" | cut -d' ' -f1)"
		done)
	fi
}
# KCLIENT_TINY=DIR/NAME: the capture so far as DIR/NAME.pcap with NAME.truth.json (the
# server's disk now, in tests/lab/make_pcaps.sh's format) and NAME.policy.yaml (pcaps/).
save_tiny() {
	cp "$WORK/guest.pcap" "$1.pcap"
	cp "$WORK/p.yaml" "$1.policy.yaml"
	python3 - "$EXP" "$XPATH" "$VM_KVER" "$TREES" >"$1.truth.json" <<'PY'
import json, os, sys, time
exp, xpath, kver, trees = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
files = []
for root, _, names in os.walk(exp):
    for n in sorted(names):
        st = os.lstat(os.path.join(root, n))
        files.append({"path": os.path.relpath(os.path.join(root, n), exp), "size": st.st_size,
                      "used": st.st_blocks * 512, "fileid": st.st_ino})
files.sort(key=lambda f: f["path"])
out = {"export": xpath, "server": "10.0.2.2", "client": "Linux " + kver + " (kernel NFS client, QEMU TCG)",
       "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "note": "server disk when the capture was cut; used = st_blocks * 512", "files": files,
       "trees": [{"name": t, "path": t, "files": sum(f["path"].startswith(t + "/") for f in files),
                  "size_bytes": sum(f["size"] for f in files if f["path"].startswith(t + "/")),
                  "used_bytes": sum(f["used"] for f in files if f["path"].startswith(t + "/"))} for t in trees]}
json.dump(out, sys.stdout, indent=2)
print()
PY
}
mkfifo "$WORK/ser1.in" "$WORK/ser1.out"
: >"$WORK/console.log"
t_boot=$(date +%s.%N)
vm_qemu_cmd
ip netns exec "$NS" timeout "${KCLIENT_TIMEOUT:-900}" "${VM_QEMU[@]}" \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
	-object filter-dump,id=f1,netdev=n0,file="$WORK/guest.pcap" \
	-monitor none -serial stdio -serial pipe:"$WORK/ser1" >"$WORK/console.log" 2>&1 &
QPID=$!
cat "$WORK/ser1.out" >/dev/null &
# bytes on the server's disk of the trees the report plots, every 0.5 s (host clock, from boot)
SAMPLE_TREES="fsync lsmbuf drop base_kp base_ip base_lsm base_sig"
(while kill -0 "$QPID" 2>/dev/null; do
	t=$(echo "$(date +%s.%N) $t_boot" | awk '{print $1 - $2}')
	for tr in $SAMPLE_TREES; do
		echo "SAMPLE $t $tr $(find "$EXP/$tr" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')"
	done
	sleep 0.5
done) >"$WORK/samples.log" 2>/dev/null &
: >"$WORK/host.log"
while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	NFSF_SYNC\ *)
		label=${line#NFSF_SYNC }
		echo "HOST $label at $(echo "$(date +%s.%N) $t_boot" | awk '{print $1 - $2}')" >>"$WORK/host.log"
		snapshot "$label" >>"$WORK/host.log"
		[[ $label == tiny && -n ${KCLIENT_TINY:-} ]] && save_tiny "$KCLIENT_TINY"
		echo go >"$WORK/ser1.in"
		;;
	NFSF_R\ wstart\ *) echo "HOST wstart ${line#NFSF_R wstart } $(echo "$(date +%s.%N) $t_boot" | awk '{print $1 - $2}')" >>"$WORK/host.log" ;;
	NFSF_VM_END*) echo "HOST vm_end at $(echo "$(date +%s.%N) $t_boot" | awk '{print $1 - $2}')" >>"$WORK/host.log" ;;
	esac
done < <(tail -n +1 -F --pid="$QPID" "$WORK/console.log" 2>/dev/null)
wait "$QPID" || echo "note: qemu exited with $?"
QPID=
snapshot final >>"$WORK/host.log"
"$BUILD/nfsfence" replay "$WORK/guest.pcap" --policy "$WORK/p.yaml" --format json >"$WORK/replay.json" 2>"$WORK/replay.err" ||
	echo "note: replay exited $? ($(head -c 300 "$WORK/replay.err"))"
# (escape codes from the guest's console can precede a marker on its line)
tr -d '\r' <"$WORK/console.log" | grep -aoE 'NFSF_[A-Z_]+( .*)?$' >"$WORK/markers.log" || true
KCLIENT_ROWS=${KCLIENT_ROWS:-$BUILD/report-rows/vm.jsonl} python3 "$HERE/kclient_check.py" --markers "$WORK/markers.log" --host "$WORK/host.log" --replay "$WORK/replay.json" \
	--samples "$WORK/samples.log" --policy-limit "$LIMIT" --kver "$VM_KVER" --out "${KCLIENT_RESULTS:-$BUILD/vm-kclient.json}"
