#!/usr/bin/env bash
# ctest vm_verifier_debian61: do nfsfence's BPF objects pass the verifier of Debian 12's
# kernel (6.1), not just this host's? Boots Debian's linux-image-6.1.0-*-amd64 under QEMU
# (TCG, as ../shared/LAB.md describes) with a busybox initramfs holding nfsf_bpf_verify
# (tests/vm/bpf_verify.c), its shared libraries and the objects; the guest loads every
# program (nothing is attached) and prints one NFSF_VERIFY line per program on the serial
# console, which this script checks: every program loaded.
#
#   tests/vm/verifier_vm.sh VERIFY_BIN OBJ...        env: KERNEL_DEB (else apt-get download
#                                                    of the newest linux-image-6.1.0-N-amd64),
#                                                    VM_DIR (work dir, default a temp dir)
# Exit: 0 all loaded, 1 a program failed, 77 skip (no qemu/busybox/cpio, no kernel package).
set -euo pipefail
VERIFY=${1:?usage: verifier_vm.sh VERIFY_BIN OBJ...}
shift
OBJS=("$@")
skip() { echo "SKIP: $*"; exit 77; }
for t in qemu-system-x86_64 busybox cpio dpkg-deb; do
	command -v "$t" >/dev/null || skip "$t not installed (packages qemu-system-x86 busybox-static cpio)"
done
WORK=${VM_DIR:-$(mktemp -d /tmp/nfsf-vm.XXXXXX)}
[[ -n ${VM_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
cd "$WORK"

deb=${KERNEL_DEB:-}
if [[ -z $deb ]]; then
	pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
		awk '{print $1}' | sort -t- -k4,4n | tail -1)
	[[ -n $pkg ]] || skip "no linux-image-6.1.0-N-amd64 package known to apt"
	apt-get download "$pkg" >/dev/null 2>&1 || skip "apt-get download $pkg failed (no mirror?)"
	deb=$(ls "$WORK"/"$pkg"_*.deb | head -1)
fi
rm -rf kernel root
dpkg-deb -x "$deb" kernel
vmlinuz=$(ls kernel/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}

# initramfs: busybox, the loader with its libraries, the objects
mkdir -p root/{bin,sbin,proc,sys,dev,lib64,lib/x86_64-linux-gnu,objs}
cp "$(command -v busybox)" root/bin/busybox
for a in sh mount poweroff cat echo; do ln -sf busybox "root/bin/$a"; done
cp "$VERIFY" root/bin/nfsf_bpf_verify
ldd "$VERIFY" | awk '/=>/ { print $3 } /^\t\/lib64/ { print $1 }' | while read -r lib; do
	[[ -f $lib ]] && cp -L "$lib" "root$lib" 2>/dev/null || cp -L "$lib" root/lib/x86_64-linux-gnu/
done
for o in "${OBJS[@]}"; do cp "$o" root/objs/; done
cat >root/init <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "NFSF_VM_KERNEL $(cat /proc/sys/kernel/osrelease)"
/bin/nfsf_bpf_verify /objs/*.bpf.o
poweroff -f
INIT
chmod +x root/init
(cd root && find . | cpio -o -H newc 2>/dev/null | gzip -1) >initrd.gz

timeout 600 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd initrd.gz -append "console=ttyS0 quiet panic=-1" \
	-nic none >console.log 2>&1 || true
tr -d '\r' <console.log | grep -E '^(NFSF_|----|[0-9]+: )|verifier' | head -200
grep -q "NFSF_VM_KERNEL $kver\$" <(tr -d '\r' <console.log) || # (escape codes precede it)
	{ echo "FAIL: the guest did not report kernel $kver (console in $WORK/console.log)"; exit 1; }
tr -d '\r' <console.log | grep -q '^NFSF_VERIFY_DONE failures=0$' ||
	{ echo "FAIL: not every program loaded on $kver"; exit 1; }
n=$(tr -d '\r' <console.log | grep -c '^NFSF_VERIFY obj=.* ok=1 ')
echo "ok: all $n programs pass the verifier of $kver"
