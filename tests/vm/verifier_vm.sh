#!/usr/bin/env bash
# ctest vm_debian61: nfsfence on Debian 12's kernel (6.1), not just this host's. Boots
# Debian's linux-image-6.1.0-*-amd64 under QEMU (TCG, as ../shared/LAB.md describes) with a
# busybox initramfs and checks, from markers on the serial console:
#  1. the verifier: nfsf_bpf_verify (tests/vm/bpf_verify.c) loads every program of the
#     objects (nothing attached): every one must load;
#  2. with NFSF_BIN set: a kernel without clsact. The guest has no sch_ingress module loaded
#     (Debian builds clsact as a module), so `nfsfence attach lo` must fail with one line
#     "nfsfence: ..." naming clsact, a non-zero exit, and no pin or state file left.
#
#   tests/vm/verifier_vm.sh VERIFY_BIN OBJ...        env: NFSF_BIN (nfsfence, for check 2),
#                                                    KERNEL_DEB, VM_CACHE (tests/vm/vm_lib.sh),
#                                                    VM_DIR (work dir, default a temp dir)
# Exit: 0 all loaded, 1 a program failed, 77 skip (no qemu/busybox/cpio, no kernel package).
set -euo pipefail
VERIFY=${1:?usage: verifier_vm.sh VERIFY_BIN OBJ...}
shift
OBJS=("$@")
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/vm_lib.sh
source "$HERE/vm_lib.sh"
vm_require
vm_kernel
kver=$VM_KVER
WORK=${VM_DIR:-$(mktemp -d /tmp/nfsf-vm.XXXXXX)}
[[ -n ${VM_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
cd "$WORK"

# initramfs: busybox, the loader with its libraries, the objects
rm -rf root
vm_root_init root
vm_copy_bin root "$VERIFY" /bin/nfsf_bpf_verify
[[ -z ${NFSF_BIN:-} ]] || vm_copy_bin root "$NFSF_BIN" /bin/nfsfence
for o in "${OBJS[@]}"; do cp "$o" root/objs/; done
cat >root/init <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "NFSF_VM_KERNEL $(cat /proc/sys/kernel/osrelease)"
/bin/nfsf_bpf_verify /objs/*.bpf.o
if [ -x /bin/nfsfence ]; then
	mkdir -p /sys/fs/bpf /run/st
	mount -t bpf bpf /sys/fs/bpf
	ip link set lo up
	printf 'export: /export\nserver: 127.0.0.1\ntrees:\n  - {name: a, path: a, limit: 1Mi}\n' >/tmp/p.yaml
	/bin/nfsfence attach lo --policy /tmp/p.yaml --pin-dir /sys/fs/bpf/nfsf --state-dir /run/st \
		>/tmp/out 2>/tmp/err
	echo "NFSF_CLSACT rc=$? lines=$(wc -l </tmp/err) left=$(ls -A /sys/fs/bpf/nfsf 2>/dev/null | wc -l)+$(ls -A /run/st | wc -l)"
	sed 's/^/NFSF_CLSACT_ERR /' /tmp/err
fi
poweroff -f
INIT
chmod +x root/init
vm_pack root "$WORK/initrd.gz"
vm_qemu_cmd
timeout 600 "${VM_QEMU[@]}" -nic none >console.log 2>&1 || true
tr -d '\r' <console.log | grep -E '^(NFSF_|----|[0-9]+: )|verifier' | head -200
grep -q "NFSF_VM_KERNEL $kver\$" <(tr -d '\r' <console.log) || # (escape codes precede it)
	{ echo "FAIL: the guest did not report kernel $kver (console in $WORK/console.log)"; exit 1; }
tr -d '\r' <console.log | grep -q '^NFSF_VERIFY_DONE failures=0$' ||
	{ echo "FAIL: not every program loaded on $kver"; exit 1; }
n=$(tr -d '\r' <console.log | grep -c '^NFSF_VERIFY obj=.* ok=1 ')
echo "ok: all $n programs pass the verifier of $kver"
if [[ -n ${NFSF_BIN:-} ]]; then
	res=$(tr -d '\r' <console.log | grep -m1 '^NFSF_CLSACT rc=' || true)
	err=$(tr -d '\r' <console.log | grep -m1 '^NFSF_CLSACT_ERR ' | sed 's/^NFSF_CLSACT_ERR //' || true)
	[[ $res =~ rc=([0-9]+)\ lines=([0-9]+)\ left=([0-9]+)\+([0-9]+) ]] ||
		{ echo "FAIL: no attach result from the guest"; exit 1; }
	rc=${BASH_REMATCH[1]} lines=${BASH_REMATCH[2]} pins=${BASH_REMATCH[3]} states=${BASH_REMATCH[4]}
	fails=0
	[[ $rc != 0 ]] || { echo "FAIL: attach without clsact exited 0"; fails=1; }
	[[ $lines == 1 && $err == "nfsfence: "* && $err == *clsact* ]] ||
		{ echo "FAIL: attach without clsact: want one line 'nfsfence: ...clsact...', got $lines: $err"; fails=1; }
	[[ $pins == 0 && $states == 0 ]] || { echo "FAIL: attach without clsact left $pins pins, $states state files"; fails=1; }
	((fails == 0)) || exit 1
	echo "ok: attach on $kver without clsact: exit $rc, one line: $err; nothing left"
fi
