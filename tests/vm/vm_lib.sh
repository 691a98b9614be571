# shellcheck shell=bash
# Debian 12's 6.1 kernel in QEMU (TCG) with a busybox initramfs: what the VM tests share.
# Source it; it defines functions only (../shared/LAB.md describes the recipe).
#
#   vm_require                  exit 77 with "SKIP: reason" when qemu/busybox/cpio are missing
#   vm_kernel                   sets VM_VMLINUZ VM_KVER VM_MODDIR: the newest
#                               linux-image-6.1.0-N-amd64 (KERNEL_DEB, or apt-get download),
#                               unpacked once into VM_CACHE (default /var/cache/nfsfence-vm)
#   vm_root_init DIR            busybox with its applets, /proc /sys /dev ... in DIR
#   vm_copy_bin DIR SRC DEST [strip]  a binary and the shared libraries ldd lists for it
#                               (strip: without its debug sections: smaller initramfs, faster boot)
#   vm_copy_modules DIR MOD...  kernel modules (and nothing they need beyond the list) to DIR/modules,
#                               in the order given; /modules/order lists them for the init script
#   vm_pack DIR OUT             the cpio.gz initramfs (archives concatenated with cat also
#                               make one: the kernel unpacks them in order)
#   vm_qemu_cmd                 sets the array VM_QEMU: qemu-system-x86_64 -accel tcg with the
#                               kernel and VM_INITRD (append extra arguments, run it yourself)

vm_skip() { echo "SKIP: $*"; exit 77; }

vm_require() {
	local t
	for t in qemu-system-x86_64 busybox cpio dpkg-deb gzip; do
		command -v "$t" >/dev/null || vm_skip "$t not installed (packages qemu-system-x86 busybox-static cpio)"
	done
}

vm_kernel() {
	VM_CACHE=${VM_CACHE:-/var/cache/nfsfence-vm}
	mkdir -p "$VM_CACHE"
	local deb=${KERNEL_DEB:-} pkg
	if [[ -z $deb ]]; then
		pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
			awk '{print $1}' | sort -t- -k4,4n | tail -1)
		[[ -n $pkg ]] || vm_skip "no linux-image-6.1.0-N-amd64 package known to apt"
		deb=$(ls "$VM_CACHE/${pkg}"_*.deb 2>/dev/null | head -1 || true) # (none yet: not an error)
		if [[ -z $deb ]]; then
			(cd "$VM_CACHE" && apt-get download "$pkg" >/dev/null 2>&1) ||
				vm_skip "apt-get download $pkg failed (no mirror?)"
			deb=$(ls "$VM_CACHE/${pkg}"_*.deb | head -1)
		fi
	fi
	local unpacked
	unpacked="$VM_CACHE/$(basename "$deb" .deb)"
	if [[ ! -f $unpacked/.done ]]; then
		rm -rf "$unpacked"
		dpkg-deb -x "$deb" "$unpacked" || { echo "FAIL: dpkg-deb -x $deb"; exit 1; }
		touch "$unpacked/.done"
	fi
	VM_VMLINUZ=$(ls "$unpacked"/boot/vmlinuz-* | head -1)
	VM_KVER=${VM_VMLINUZ##*/vmlinuz-}
	VM_MODDIR=$unpacked/lib/modules/$VM_KVER
}

vm_root_init() {
	local r=$1 a
	mkdir -p "$r"/{bin,sbin,etc,proc,sys,dev,run,tmp,mnt,lib64,lib/x86_64-linux-gnu,usr/lib/x86_64-linux-gnu,objs,modules}
	cp "$(command -v busybox)" "$r/bin/busybox"
	for a in $("$r/bin/busybox" --list); do
		[[ -e $r/bin/$a ]] || ln -s busybox "$r/bin/$a"
	done
}

vm_copy_bin() {
	local r=$1 src=$2 dest=$3 lib
	mkdir -p "$r$(dirname "$dest")"
	cp "$src" "$r$dest"
	[[ ${4:-} != strip ]] || strip --strip-debug "$r$dest" 2>/dev/null || true
	ldd "$src" 2>/dev/null | awk '/=>/ { print $3 } /^\t\/lib64/ { print $1 }' | while read -r lib; do
		[[ -f $lib && ! -f $r$lib ]] || continue
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
}

vm_copy_modules() {
	local r=$1 m f
	shift
	: >"$r/modules/order"
	for m in "$@"; do
		f=$(find "$VM_MODDIR/kernel" -name "$m.ko" -print -quit)
		[[ -n $f ]] || { echo "FAIL: module $m not in $VM_MODDIR"; exit 1; }
		cp "$f" "$r/modules/"
		echo "$m" >>"$r/modules/order"
	done
}

vm_pack() {
	(cd "$1" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$2"
	VM_INITRD=$2
}

vm_qemu_cmd() {
	VM_QEMU=(qemu-system-x86_64 -accel tcg -cpu max -m "${VM_MEM:-1024}" -smp 1 -nographic -no-reboot
		-kernel "$VM_VMLINUZ" -initrd "$VM_INITRD" -append "console=ttyS0 quiet panic=-1 ${VM_APPEND:-}")
}
