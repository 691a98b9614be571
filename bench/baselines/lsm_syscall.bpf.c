// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the survey's recommendation, an LSM file_permission
 * program that looks at the current task's syscall number (its pt_regs' orig_ax) and
 * refuses a write into the full tree only when that number is __NR_write. It refuses with
 * -EDQUOT, as nfsfence's LSM mode does, so both are compared on the same errno. Every other
 * way to write (pwrite, writev, sendfile, copy_file_range, mmap stores, fallocate, truncate)
 * is what tests/vm/guest/kclient.sh tries next to `nfsfence attach --mode lsm`. Tree: the
 * inode number of the tree's directory, armed by the loader once the tree is full.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "baseline.h"

SEC("lsm/file_permission")
int BPF_PROG(base_lsm_sysnr, struct file *file, int mask, int ret)
{
	struct nfsf_base_cfg *c;
	struct pt_regs *regs;

	if (ret)
		return ret;
	if (!(mask & NFSF_MAY_WRITE))
		return 0;
	c = base_cfg_get();
	if (!c || base_dir_ino(file) != c->ino)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (BPF_CORE_READ(regs, orig_ax) != NFSF_NR_WRITE)
		return 0;
	__sync_fetch_and_add(&c->hits, 1);
	return -NFSF_EDQUOT;
}

char LICENSE[] SEC("license") = "GPL";
