/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * BASELINE (not an nfsfence feature): what the survey baselines of bench/baselines share
 * with their loader (nfsf_baseline.c). One array map entry, written by the loader after
 * load and before attach ("armed"): the quota tree as the inode number of its directory
 * (the file being written must sit directly in it), the client's IPv4 address (network
 * order) for the TC one, a byte limit for the counting one; the programs add what they
 * did (hits: refusals tried, counted: bytes counted), which the loader prints at exit.
 */
#ifndef NFSF_BASELINE_H
#define NFSF_BASELINE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

struct nfsf_base_cfg {
	__u64 ino;
	__u64 limit;
	__u64 counted;
	__u64 hits;
	__u32 ip;
	__u32 armed;
};

#ifdef __VMLINUX_H__
#define NFSF_EPERM 1
#define NFSF_EDQUOT 122
#define NFSF_MAY_WRITE 2
#define NFSF_SIGKILL 9
#define NFSF_NR_WRITE 1 /* x86_64 __NR_write */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nfsf_base_cfg);
} base_cfg SEC(".maps");

static __always_inline struct nfsf_base_cfg *base_cfg_get(void)
{
	__u32 k = 0;
	struct nfsf_base_cfg *c = bpf_map_lookup_elem(&base_cfg, &k);

	return c && c->armed ? c : 0;
}

/* the inode number of the directory FILE is in */
static __always_inline __u64 base_dir_ino(struct file *file)
{
	return BPF_CORE_READ(file, f_path.dentry, d_parent, d_inode, i_ino);
}
#endif
#endif
