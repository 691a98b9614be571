// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the survey's bpf_send_signal(SIGKILL) from the
 * sys_enter_write tracepoint. This one counts: the survey's idea adds each write()'s count
 * for files of the tree and kills the writer whose write would pass the limit, so the
 * loader sets the limit (--limit) and the counter starts at 0 on an empty tree. Tree: the
 * inode number of the tree's directory; the file comes from the task's fd table.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "baseline.h"

SEC("tracepoint/syscalls/sys_enter_write")
int base_sigkill(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct nfsf_base_cfg *c = base_cfg_get();
	unsigned long fd = ctx->args[0];
	struct file **fds, *file = 0;
	__u64 n;

	if (!c)
		return 0;
	if (fd >= BPF_CORE_READ(t, files, fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(t, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), fds + fd) || !file)
		return 0;
	if (base_dir_ino(file) != c->ino)
		return 0;
	n = __sync_fetch_and_add(&c->counted, ctx->args[2]) + ctx->args[2];
	if (n <= c->limit)
		return 0;
	__sync_fetch_and_add(&c->hits, 1);
	bpf_send_signal(NFSF_SIGKILL);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
