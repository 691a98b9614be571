// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the survey's kprobe with bpf_override_return(), which
 * would make vfs_write return -EDQUOT without running for a write into the full tree. It
 * needs CONFIG_BPF_KPROBE_OVERRIDE and a function on the kernel's error-injection list;
 * the guest's loader reports what the verifier or the kernel answers when this is tried.
 * Tree: the inode number of the tree's directory, armed by the loader (baseline.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "baseline.h"

SEC("kprobe/vfs_write")
int BPF_KPROBE(base_override, struct file *file)
{
	struct nfsf_base_cfg *c = base_cfg_get();

	if (!c || base_dir_ino(file) != c->ino)
		return 0;
	__sync_fetch_and_add(&c->hits, 1);
	bpf_override_return(ctx, -NFSF_EDQUOT);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
