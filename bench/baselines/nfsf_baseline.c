// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the loader of the survey baselines (bench/baselines,
 * issue 10), run in the QEMU guest by tests/vm/guest/kclient.sh.
 *
 * nfsf_baseline OBJ [--inode N] [--ip A.B.C.D] [--ifname IF] [--limit BYTES]
 *	Loads OBJ, writes its base_cfg entry (baseline.h: armed from now on), attaches every
 *	program (TC ones at IF's egress, on a clsact it creates when there is none; the others
 *	where their section says), prints "NFSF_ATTACHED obj=OBJ" and waits for SIGTERM/SIGINT,
 *	then prints "NFSF_BASE obj=OBJ hits=N counted=N", one "NFSF_BASE_STATS obj=OBJ prog=P
 *	run_cnt=N run_ns=N" per program (bpf_stats), and detaches. A failure is one line,
 *	"NFSF_ATTACHED obj=OBJ failed: load|attach PROG: <the verifier's last words or the
 *	kernel's errno text>", exit 1.
 * Usage errors exit 2.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline.h"

#define LOG_SIZE (1u << 20)
#define MAX_PROGS 8

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
}

static _Noreturn void usage(void)
{
	fprintf(stderr,
		"usage: nfsf_baseline OBJ [--inode N] [--ip A.B.C.D] [--ifname IF] [--limit BYTES]\n");
	exit(2);
}

/* the verifier's reason: the last non-empty line before its "processed ..." statistics */
static void last_words(const char *log, char *out, size_t n)
{
	const char *end = strstr(log, "processed ");
	const char *p, *start;

	if (!end)
		end = log + strlen(log);
	while (end > log && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (p = start = log; p < end; p++)
		if (*p == '\n')
			start = p + 1;
	snprintf(out, n, "%.*s", (int)(end - start), start);
}

int main(int argc, char **argv)
{
	struct nfsf_base_cfg cfg = {.armed = 1};
	const char *path, *ifname = NULL;
	struct bpf_tc_hook hooks[MAX_PROGS];
	struct bpf_tc_opts tcs[MAX_PROGS];
	int created[MAX_PROGS] = {0}, ntc = 0;
	struct bpf_object *obj;
	struct bpf_program *p;
	struct bpf_map *m;
	char *logs[MAX_PROGS] = {0};
	char words[512];
	int n = 0, rc;
	__u32 key = 0;

	if (argc < 2)
		usage();
	path = argv[1];
	for (int a = 2; a < argc; a += 2) {
		if (a + 1 >= argc)
			usage();
		if (!strcmp(argv[a], "--inode"))
			cfg.ino = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--limit"))
			cfg.limit = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--ifname"))
			ifname = argv[a + 1];
		else if (!strcmp(argv[a], "--ip")) {
			if (inet_pton(AF_INET, argv[a + 1], &cfg.ip) != 1)
				usage();
		} else
			usage();
	}
	libbpf_set_print(quiet);
	setvbuf(stdout, NULL, _IOLBF, 0);
	obj = bpf_object__open(path);
	if (!obj) {
		printf("NFSF_ATTACHED obj=%s failed: open: %s\n", path, strerror(errno));
		return 1;
	}
	bpf_object__for_each_program(p, obj)
	{
		if (n == MAX_PROGS)
			break;
		logs[n] = calloc(1, LOG_SIZE);
		if (logs[n]) {
			bpf_program__set_log_buf(p, logs[n], LOG_SIZE);
			bpf_program__set_log_level(p, 1);
		}
		n++;
	}
	rc = bpf_object__load(obj);
	if (rc) {
		words[0] = 0;
		for (int i = 0; i < n && !words[0]; i++)
			if (logs[i] && logs[i][0])
				last_words(logs[i], words, sizeof(words));
		printf("NFSF_ATTACHED obj=%s failed: load: %s (%s)\n", path,
		       words[0] ? words : "no verifier log", strerror(-rc));
		return 1;
	}
	m = bpf_object__find_map_by_name(obj, "base_cfg");
	if (m && bpf_map_update_elem(bpf_map__fd(m), &key, &cfg, BPF_ANY)) {
		printf("NFSF_ATTACHED obj=%s failed: configure: %s\n", path, strerror(errno));
		return 1;
	}
	bpf_object__for_each_program(p, obj)
	{
		if (bpf_program__type(p) == BPF_PROG_TYPE_SCHED_CLS) {
			struct bpf_tc_hook *h = &hooks[ntc];
			struct bpf_tc_opts *o = &tcs[ntc];

			memset(h, 0, sizeof(*h));
			memset(o, 0, sizeof(*o));
			h->sz = sizeof(*h);
			o->sz = sizeof(*o);
			h->ifindex = ifname ? if_nametoindex(ifname) : 0;
			h->attach_point = BPF_TC_EGRESS;
			if (!h->ifindex) {
				printf("NFSF_ATTACHED obj=%s failed: attach %s: no interface %s\n", path,
				       bpf_program__name(p), ifname ? ifname : "(no --ifname)");
				return 1;
			}
			rc = bpf_tc_hook_create(h);
			created[ntc] = rc == 0;
			o->prog_fd = bpf_program__fd(p);
			if ((rc && rc != -EEXIST) || (rc = bpf_tc_attach(h, o))) {
				printf("NFSF_ATTACHED obj=%s failed: attach %s: %s\n", path,
				       bpf_program__name(p), strerror(-rc));
				return 1;
			}
			ntc++;
		} else if (!bpf_program__attach(p)) {
			printf("NFSF_ATTACHED obj=%s failed: attach %s: %s\n", path, bpf_program__name(p),
			       strerror(errno));
			return 1;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("NFSF_ATTACHED obj=%s\n", path);
	pause();
	if (m && !bpf_map_lookup_elem(bpf_map__fd(m), &key, &cfg))
		printf("NFSF_BASE obj=%s hits=%llu counted=%llu\n", path, (unsigned long long)cfg.hits,
		       (unsigned long long)cfg.counted);
	/* the kernel's own count and run time of each program (kernel.bpf_stats_enabled=1) */
	bpf_object__for_each_program(p, obj)
	{
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			printf("NFSF_BASE_STATS obj=%s prog=%s run_cnt=%llu run_ns=%llu\n", path,
			       bpf_program__name(p), (unsigned long long)info.run_cnt,
			       (unsigned long long)info.run_time_ns);
	}
	for (int i = 0; i < ntc; i++) {
		tcs[i].flags = tcs[i].prog_fd = tcs[i].prog_id = 0;
		bpf_tc_detach(&hooks[i], &tcs[i]);
		if (created[i])
			bpf_tc_hook_destroy(&hooks[i]);
	}
	bpf_object__close(obj);
	return 0;
}
