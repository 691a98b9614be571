#!/bin/sh
# The guest half of tests/vm/kclient_vm.sh: runs as PID 1's child in the QEMU guest
# (Debian 12's 6.1 kernel, busybox), with the kernel's own NFS client. Every result is one
# marker line on the console (ttyS0) that the host turns into test results:
#   NFSF_W ...          one writer's result (tests/vm/nfsf_vmtool.c)
#   NFSF_SYNC LABEL     the host snapshots the server's disk, then answers on ttyS1
#   NFSF_R KEY VALUE... anything else measured
# /etc/vm.env sets EXPORT (the export path), LIMIT (bytes per tree), BENCH_ROUNDS.
. /etc/vm.env
M=/mnt/nfs
PIN=/sys/fs/bpf/nfsfence
ST=/run/nfsfence
T=/bin/nfsf_vmtool
r() { echo "NFSF_R $*"; }
sync_host() { echo "NFSF_SYNC $1"; $T wait-line /dev/ttyS1 >/dev/null; }
w() { tag=$1; shift; echo "NFSF_R wstart $tag"; NFSF_TAG=$tag $T write "$@"; }  # wstart: the host's clock for its disk samples
thr() { # CONFIG: three timed 16 MiB writes (1 MiB write()s + fsync) into the bench tree
	for i in 1 2 3; do
		s0=$(secs)
		NFSF_TAG=thr_$1 $T write $M/bench/t 16M 1M fsync >/dev/null
		r thr "$1 $(echo "$(secs) $s0" | awk '{print $1 - $2}')"
	done
	rm -f $M/bench/t
}
secs() { cut -d' ' -f1 /proc/uptime; }
agent_start() { # LOG ARGS...: the agent in the background, waits for "ready:" (60 s)
	log=$1; shift
	# Empty the log here, not in the background job: its redirection runs after this
	# function's first grep, which would otherwise find the previous run's "ready:".
	: >"$log"
	/bin/nfsfence attach "$@" --pin-dir $PIN --state-dir $ST >"$log" 2>&1 &
	AGENT=$!
	i=0
	while [ $i -lt 600 ]; do
		grep -q '^nfsfence: ready:' "$log" && { r agent_ready "$(grep -m1 'ready:' "$log")"; return 0; }
		kill -0 $AGENT 2>/dev/null || break
		sleep 0.1; i=$((i + 1))
	done
	r agent_failed "$(tail -n 3 "$log" | tr '\n' '|')"
	return 1
}
agent_stop() { kill "$AGENT" 2>/dev/null; wait "$AGENT" 2>/dev/null; }
status_line() { # NAME ARGS: the status JSON on one line
	n=$1; shift
	/bin/nfsfence status "$@" --pin-dir $PIN --state-dir $ST --format json >/tmp/st.json 2>/tmp/st.err
	echo "NFSF_STATUS $n $(tr -d '\n' </tmp/st.json)"
}
opts=vers=3,proto=tcp,nolock,port=2049,mountport=20048,mountproto=tcp

mkdir -p $M /mnt/w64 /mnt/udp /mnt/soft /mnt/soft2 $PIN $ST
mount -t bpf bpf /sys/fs/bpf && mkdir -p $PIN
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
r lsm_list "$(cat /sys/kernel/security/lsm 2>/dev/null)"
t0=$(secs)
mount.nfs 10.0.2.2:"$EXPORT" $M -o $opts || r mount_failed 1
mount.nfs 10.0.2.2:"$EXPORT" /mnt/w64 -o $opts,wsize=65536,nosharecache || r mount_failed w64
r mounts "$(grep ' nfs ' /proc/mounts | sed 's/ /~/g' | tr '\n' ' ')"
# 3. UDP: Debian's kernel is built without it; the answer is recorded, not assumed.
udp_err=$(mount.nfs 10.0.2.2:"$EXPORT" /mnt/udp -o vers=3,proto=udp,nolock,port=2049,mountport=20048,mountproto=udp 2>&1)
r udp_mount "rc=$? $(echo "$udp_err" | tr '\n' ' ')"

# ---- TC rewrite, agent started after the mount
agent_start /tmp/agent1.log eth0 --policy /etc/p.yaml --mount-port 20048 || true
r agent_start_secs "$(echo "$(secs) $t0" | awk '{print $1 - $2}')"
w tiny $M/tiny/f1 64k 64k osync
w tiny $M/tiny/f2 64k 64k osync
w tiny $M/tiny/f3 64k 64k osync
sync_host tiny
w fsync $M/fsync/f 16M 1M fsync
w close $M/close/f 16M 1M close
w osync $M/osync/f 16M 1M osync
w odirect $M/odirect/f 16M 1M odirect
w par $M/par/f 4M 1M fsync 4
w mmap $M/mmap/f 16M 1M mmap
w w64buf /mnt/w64/w64buf/f 16M 1M fsync
w w64sync /mnt/w64/w64sync/f 16M 1M osync
sync_host tc_writes
thr tc
# 2. reads of full trees (page cache dropped) and writes to another tree
sync; echo 3 >/proc/sys/vm/drop_caches
for f in fsync/f osync/f odirect/f; do r sha "$f $(sha256sum $M/$f | cut -d' ' -f1)"; done
w other $M/other/f 1M 1M fsync
sleep 2
status_line tc eth0
sync_host status
rm $M/fsync/f
sleep 3
w after_delete $M/fsync/g 1M 1M fsync
# 4. the agent SIGKILLed while a writer runs; restarted, it adopts the pins
w kill $M/kill/f 16M 256k osync >/tmp/kill.out &
wp=$!
sleep 2
kill -9 $AGENT
r agent_killed "$(secs)"
wait $wp
cat /tmp/kill.out
agent_start /tmp/agent2.log eth0 --policy /etc/p.yaml --mount-port 20048 || true
r adopted "$(grep -c 'adopted the maps' /tmp/agent2.log)"
status_line tc_end eth0
sync_host tc_end
# 5. df: a mount of the tree itself (as csi-driver-nfs mounts a volume) shows the tree's
# limit and what is left; the export root's mount shows the server's numbers. df -B1 and
# statfs(2) (busybox stat -f: f_bsize f_blocks f_bfree f_bavail).
dfr() { r "df_$1" "$(df -B1 "$2" | tail -n 1 | awk '{print $(NF - 4), $(NF - 3), $(NF - 2)}')"; r "statfs_$1" "$(stat -f -c '%s %b %f %a' "$2")"; }
mkdir -p /mnt/dfa
# nosharecache: a superblock of its own. Shared with $M, both mounts have one st_dev and
# busybox df (first mount of that device) would report $M: coreutils df picks the longest
# mount point; statfs(2) is right either way.
mount.nfs 10.0.2.2:"$EXPORT/dfa" /mnt/dfa -o $opts,nosharecache || r mount_failed dfa
w dfa1 /mnt/dfa/f 1M 1M fsync
sleep 2
dfr tree_under /mnt/dfa
dfr root $M
# statfs(2) of a file of dfa through the root's mount: FSSTAT names the file, a handle in
# dfa (df FILE reports the filesystem FILE is on, the root's mount: the server's numbers)
dfr file_in_tree $M/dfa/f
sync_host df_under
w dfa2 /mnt/dfa/g 16M 1M fsync
sleep 2
dfr tree_over /mnt/dfa
sync_host df_over
umount /mnt/dfa
agent_stop
/bin/nfsfence detach eth0 --pin-dir $PIN --state-dir $ST >/tmp/detach.out 2>&1
r tc_detach "rc=$? $(cat /tmp/detach.out)"
thr none

# ---- the LSM fallback
agent_start /tmp/agent3.log --mode lsm --policy /etc/p.yaml --rescan 1 || true
thr lsm
w lsmbuf $M/lsmbuf/f 16M 1M fsync
w lsmdio $M/lsmdio/f 16M 1M odirect
w lsmpar $M/lsmpar/f 4M 1M fsync 4
w lsmw64 /mnt/w64/lsmw64/f 16M 1M fsync
w lsmmmap $M/lsmmmap/f 16M 1M fsync
w lsmmmap2 $M/lsmmmap/g 1M 64k mmap
: >$M/lsmmmap/f
r lsm_otrunc "rc=$? size=$(stat -c %s $M/lsmmmap/f)"
# the other ways a file grows, in the full tree lsmdio, and in lsmother for comparison
NFSF_TAG=lsmgrow_full $T grow $M/osync/f $M/lsmdio/copy
NFSF_TAG=lsmgrow_other $T grow $M/osync/f $M/lsmother/copy
r lsm_truncate_grow "$(truncate -s 20M $M/lsmdio/f 2>&1; echo "rc=$? size=$(stat -c %s $M/lsmdio/f)")"
# every way a file grows, in lsmways (over its limit from the start): which ones the hooks see
NFSF_TAG=lsmways $T ways $M/lsmways $M/lsmother/ways-src
# a hard link into the full tree: written through it, refused; through the other link, not
w lsmhsrc $M/lsmother/hsrc 64k 64k fsync
ln $M/lsmother/hsrc $M/lsmdio/hl
w lsmhl_full $M/lsmdio/hl 64k 64k append
w lsmhl_other $M/lsmother/hsrc 64k 64k append
rm $M/lsmdio/hl
# the depth bound (NFSF_LSM_MAX_DEPTH = 64): in the full tree lsmdio, a file 10 levels down
# is refused, one 70 levels down is past the walk's bound and passes (counted as too_deep)
d10=$M/lsmdio$(i=0; while [ $i -lt 10 ]; do printf /d; i=$((i + 1)); done)
d70=$M/lsmdio$(i=0; while [ $i -lt 70 ]; do printf /d; i=$((i + 1)); done)
mkdir -p $d70
w lsmdepth10 $d10/f 64k 64k fsync
w lsmdepth70 $d70/f 64k 64k fsync
rm -f $d10/f $d70/f
w lsmtmpfs /tmp/lsm-tmpfs 1M 64k fsync
w lsmother $M/lsmother/f 1M 1M fsync
sync; echo 3 >/proc/sys/vm/drop_caches
r sha "lsmbuf/f $(sha256sum $M/lsmbuf/f | cut -d' ' -f1)"
sync_host lsm_writes
mv $M/lsmbuf/f $M/lsmother/moved
w lsmrename $M/lsmother/moved 1M 1M append
sleep 2
status_line lsm lsm
sync_host lsm
agent_stop
/bin/nfsfence detach lsm --pin-dir $PIN --state-dir $ST >/tmp/detach.out 2>&1
r lsm_detach "rc=$? $(cat /tmp/detach.out)"

# ---- speed: write() to tmpfs and NFS with no program, a trivial LSM program, nfsfence's
bench_all() { # CONFIG: write() of 1 B, 4 KiB, 64 KiB at offset 0 (the file never grows)
	for b in 1 4096 65536; do
		n=4000
		[ $b = 65536 ] && n=400
		NFSF_TAG="$1 tmpfs" $T bench /tmp/bench $b $n
		NFSF_TAG="$1 nfs" $T bench $M/bench/b $b $n
	done
}
# Rounds alternate the three configurations; the host keeps each one's fastest run. The
# agent is SIGKILLed once ready (its hooks stay pinned): only the hooks run during the bench.
round=0
while [ $round -lt "${BENCH_ROUNDS:-3}" ]; do
	round=$((round + 1))
	bench_all none
	/bin/nfsf_bpf_verify --attach /objs/nfsfence_null_lsm.bpf.o >/tmp/null.out 2>&1 &
	np=$!
	i=0
	while [ $i -lt 50 ] && ! grep -q '^NFSF_ATTACHED' /tmp/null.out; do sleep 0.1; i=$((i + 1)); done
	bench_all null
	kill $np; wait $np 2>/dev/null
	agent_start /tmp/agent4.log --mode lsm --policy /etc/p.yaml --rescan 3600 || true
	kill -9 $AGENT; wait $AGENT 2>/dev/null
	bench_all nfsfence
	/bin/nfsfence detach lsm --pin-dir $PIN --state-dir $ST >/dev/null 2>&1
done

# The hooks' own cost, without timing noise: the kernel's per-program run time (bpf_stats)
# over one more pass with the trivial program and with nfsfence's.
echo 1 >/proc/sys/kernel/bpf_stats_enabled
/bin/nfsf_bpf_verify --attach /objs/nfsfence_null_lsm.bpf.o >/tmp/null.out 2>&1 &
np=$!
i=0
while [ $i -lt 50 ] && ! grep -q '^NFSF_ATTACHED' /tmp/null.out; do sleep 0.1; i=$((i + 1)); done
bench_all stats_null >/dev/null
/bin/nfsf_bpf_verify --prog-stats | grep 'name=nfsf_null_file'
kill $np; wait $np 2>/dev/null
agent_start /tmp/agent4.log --mode lsm --policy /etc/p.yaml --rescan 3600 || true
kill -9 $AGENT; wait $AGENT 2>/dev/null
bench_all stats_nfsfence >/dev/null
/bin/nfsf_bpf_verify --prog-stats | grep 'name=nfsf_file_perm'
/bin/nfsfence detach lsm --pin-dir $PIN --state-dir $ST >/dev/null 2>&1
echo 0 >/proc/sys/kernel/bpf_stats_enabled

# ---- 3. drop: the WRITE's segment is dropped, TCP retransmits it forever
agent_start /tmp/agent5.log eth0 --policy /etc/p.yaml --mount-port 20048 --action drop || true
mount.nfs 10.0.2.2:"$EXPORT" /mnt/soft -o $opts,soft,timeo=20,retrans=2,nosharecache || r mount_failed soft
s0=$(secs)
w dropsoft /mnt/soft/drop/f 64k 64k osync >/tmp/soft.out &
sp=$!
sleep 3
timeout 20 cat /mnt/soft/other/f >/dev/null 2>/tmp/read.err
r drop_read_during "rc=$? after=$(echo "$(secs) $s0" | awk '{print $1 - $2}') $(cat /tmp/read.err | tr '\n' ' ')"
wait $sp
cat /tmp/soft.out
r drop_soft_secs "$(echo "$(secs) $s0" | awk '{print $1 - $2}')"
h0=$(secs)
w drophard $M/drop/g 64k 64k osync >/tmp/hard.out &
hp=$!
sleep 20
if kill -0 $hp 2>/dev/null; then r drop_hard "hung_after=20"; else r drop_hard "ended"; cat /tmp/hard.out; fi
agent_stop
/bin/nfsfence detach eth0 --pin-dir $PIN --state-dir $ST >/dev/null 2>&1
wait $hp
cat /tmp/hard.out
r drop_hard_secs "$(echo "$(secs) $h0" | awk '{print $1 - $2}')"
# ---- the survey's baselines (bench/baselines): BASELINE programs, not nfsfence features.
# Each is loaded by nfsf_baseline, which prints NFSF_ATTACHED (or the kernel's words), and at
# its end NFSF_BASE (hits) and NFSF_BASE_STATS (bpf_stats run_cnt/run_ns per program).
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo 1 >/proc/sys/kernel/bpf_stats_enabled
base_start() { # OBJ ARGS...: the loader in the background; success once attached (5 s)
	obj=$1; shift
	: >/tmp/base.out
	/bin/nfsf_baseline /objs/nfsf_base_$obj.bpf.o "$@" >/tmp/base.out 2>&1 &
	BASE=$!
	i=0
	while [ $i -lt 50 ] && ! grep -q '^NFSF_ATTACHED' /tmp/base.out; do sleep 0.1; i=$((i + 1)); done
	grep -q '^NFSF_ATTACHED' /tmp/base.out || echo "NFSF_ATTACHED obj=$obj failed: no answer in 5 s" >>/tmp/base.out
	grep -m1 '^NFSF_ATTACHED' /tmp/base.out
	grep -q '^NFSF_ATTACHED obj=[^ ]*$' /tmp/base.out
}
base_stop() { kill $BASE 2>/dev/null; wait $BASE 2>/dev/null; grep '^NFSF_BASE' /tmp/base.out; }
ino() { stat -c %i "$1"; }
# per-call cost: the same workload under the baseline and under the null program of its hook
# 1. kprobe on vfs_write returning -EPERM: a kprobe program's return value is ignored
if base_start kprobe_eperm --inode "$(ino $M/base_kp)"; then
	w base_kp $M/base_kp/f 1M 64k fsync
	NFSF_TAG="base_kp cost" $T bench $M/base_kp/b 4096 500
	base_stop
fi
base_start null_kprobe && { NFSF_TAG="base_kp null" $T bench $M/base_kp/b 4096 500; base_stop; }
# 2. TC drop by client IP: every NFS packet of the client, on a soft mount that does not cache
mount.nfs 10.0.2.2:"$EXPORT" /mnt/soft2 -o $opts,soft,timeo=20,retrans=2,noac,lookupcache=none,nosharecache ||
	r mount_failed soft2
w base_ip_pre /mnt/soft2/other/rmme 64k 64k fsync
if base_start tc_drop_ip --ip 10.0.2.15 --ifname eth0; then
	s0=$(secs)
	w base_ip /mnt/soft2/base_ip/f 64k 64k osync
	r base_ip_write_secs "$(echo "$(secs) $s0" | awk '{print $1 - $2}')"
	s0=$(secs)
	timeout 30 cat /mnt/soft2/other/f >/dev/null 2>/tmp/e
	r base_ip_read "rc=$? secs=$(echo "$(secs) $s0" | awk '{print $1 - $2}')"
	s0=$(secs)
	timeout 30 ls /mnt/soft2/other >/dev/null 2>/tmp/e
	r base_ip_ls "rc=$? secs=$(echo "$(secs) $s0" | awk '{print $1 - $2}')"
	s0=$(secs)
	timeout 30 rm /mnt/soft2/other/rmme 2>/tmp/e
	r base_ip_rm "rc=$? secs=$(echo "$(secs) $s0" | awk '{print $1 - $2}')"
	base_stop
fi
# its per-packet cost against a TC program that passes everything, over the same 4 MiB write
# (an address that matches nothing: nothing dropped)
base_start tc_drop_ip --ip 10.9.9.9 --ifname eth0 && { w base_ip_cost $M/other/tcc 4M 1M fsync; base_stop; }
base_start null_tc --ifname eth0 && { w base_ip_null $M/other/tcc 4M 1M fsync; base_stop; }
umount /mnt/soft2 2>/dev/null
# 3. LSM file_permission with the syscall-number check (only write(2) refused), as the survey
# wrote it: every way a file grows, in its tree (nfsfence's own LSM: lsmways above)
if base_start lsm_syscall --inode "$(ino $M/base_lsm)"; then
	NFSF_TAG=base_lsm $T ways $M/base_lsm $M/other/ways-src
	NFSF_TAG="base_lsm cost" $T bench $M/other/lsmb 4096 500
	base_stop
fi
/bin/nfsf_bpf_verify --attach /objs/nfsfence_null_lsm.bpf.o >/tmp/null.out 2>&1 &
np=$!
i=0
while [ $i -lt 50 ] && ! grep -q '^NFSF_ATTACHED' /tmp/null.out; do sleep 0.1; i=$((i + 1)); done
NFSF_TAG="base_lsm null" $T bench $M/other/lsmb 4096 500
/bin/nfsf_bpf_verify --prog-stats | grep 'name=nfsf_null_file' | sed 's/^NFSF_PROGSTAT /NFSF_R base_lsm_null_stats /'
kill $np; wait $np 2>/dev/null
# 4. bpf_send_signal(SIGKILL) from sys_enter_write once the tree's write() bytes pass 1 MiB
if base_start send_signal --inode "$(ino $M/base_sig)" --limit 1048576; then
	w base_sig $M/base_sig/f 16M 64k close
	r base_sig_rc "$?"
	NFSF_TAG=base_sig_cost $T write /tmp/sigc 4M 4k close
	base_stop
fi
base_start null_tp && { NFSF_TAG=base_sig_null $T write /tmp/sigc 4M 4k close; base_stop; }
sync
sync_host base_writes
# 5. bpf_override_return on the vfs_write kprobe: needs CONFIG_BPF_KPROBE_OVERRIDE and an
# error-injectable function; the kernel says which is missing
if base_start override_return --inode "$(ino $M/base_ovr)"; then
	w base_ovr $M/base_ovr/f 1M 64k fsync
	base_stop
fi
echo 0 >/proc/sys/kernel/bpf_stats_enabled
sync_host end
umount /mnt/soft /mnt/w64 $M 2>/dev/null
r done "$(secs)"
