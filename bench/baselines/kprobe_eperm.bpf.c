// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the survey's first try, a kprobe on vfs_write that
 * returns -EPERM for a write into the full tree. A kprobe program's return value never
 * reaches the probed function, so the write should go on: tests/vm/guest/kclient.sh
 * measures the bytes on the server's disk. Tree: the inode number of the tree's directory
 * (baseline.h), armed by the loader once a plain writer has filled the tree; the survey's
 * program keeps no byte counter, it refuses (tries to) every write while armed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "baseline.h"

SEC("kprobe/vfs_write")
int BPF_KPROBE(base_kp_eperm, struct file *file)
{
	struct nfsf_base_cfg *c = base_cfg_get();

	if (!c || base_dir_ino(file) != c->ino)
		return 0;
	__sync_fetch_and_add(&c->hits, 1);
	return -NFSF_EPERM;
}

char LICENSE[] SEC("license") = "GPL";
