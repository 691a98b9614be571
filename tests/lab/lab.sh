# shellcheck shell=bash
# The nfsfence lab: a real nfs-ganesha NFSv3 server and a libnfs client, each in its own
# network namespace, joined by one veth pair. Source this file; it defines functions only.
#
#   source tests/lab/lab.sh
#   lab_require                 # exits 77 with "SKIP: reason" when the machine cannot run it
#   lab_up NAME                 # namespaces, veth, ganesha+rpcbind, export dir; waits for ports
#   trap lab_down EXIT          # (lab_up installs this trap itself unless LAB_NO_TRAP=1)
#   lab_capture_start vcli out.pcap
#   lab_client "$(lab_url vol-a)" write f1 65536 ...    # nfsf_client inside the cli namespace
#   lab_capture_stop
#   lab_down
#
# Variables set by lab_up (read them, do not change them):
#   LAB_NS_SRV LAB_NS_CLI   namespace names (unique per run: NAME-PID-srv / -cli)
#   LAB_SRV_IP LAB_CLI_IP   10.99.N.2 / 10.99.N.1; N from LAB_SUBNET or derived from $$
#   LAB_DIR                 private temp dir (conf, logs, pids, captures by default)
#   LAB_EXPORT              the exported directory (on the host filesystem, under LAB_DIR)
#   LAB_EXPORT_PATH         the export path as ganesha and clients see it (MNT dirpath)
#   LAB_CONF LAB_LOG        ganesha configuration and log
# Settings read by lab_up:
#   LAB_SUBNET=N            third octet of 10.99.N.0/24 (default: derived from $$)
#   LAB_EXPORT_DIR=PATH     export this directory (created if missing) instead of LAB_DIR/export
#   LAB_EXPORT_PATH=/srv/nfs/export  present the export under this path (bind mount inside
#                           ganesha's private mount namespace under a private tmpfs on its
#                           top directory, which must exist on the host; nothing changes on
#                           the host); default: the host path LAB_EXPORT
#   LAB_NO_GSO=1            gso_max_segs 1 on both veth ends: captures show wire-sized TCP
#                           segments instead of 64 KiB GSO super-packets
#   LAB_KEEP=1              keep LAB_DIR at lab_down (logs for debugging)
#   LAB_WAIT_SECS=30        how long to wait for ganesha's ports
#   NFSF_CLIENT=PATH        nfsf_client binary (default: $NFSF_BUILD_DIR/tests/nfsf_client or ./build/tests/nfsf_client)
#
# Only addresses inside the namespaces created here are used; nothing is sent on the host.

LAB_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$LAB_SH_DIR/../.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}

lab_log() { echo "lab: $*" >&2; }
# The e2e scripts' checks: fail() counts and keeps the lab for a look, fatal() ends the
# script, check WHAT CMD... is ok or fail by CMD's status.
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); LAB_KEEP=1; }
fatal() { echo "FAIL: $*" >&2; LAB_KEEP=1; exit 1; }
ok() { echo "ok: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
lab_die() { echo "lab: ERROR: $*" >&2; return 1; }
lab_skip() { echo "SKIP: $*"; exit 77; }

# Probe what the lab needs. Missing capability -> exit 77 with one "SKIP: reason" line.
lab_require() {
	[[ $(id -u) -eq 0 ]] || lab_skip "lab needs root (network namespaces, ganesha)"
	command -v ip >/dev/null || lab_skip "iproute2 'ip' not installed"
	command -v unshare >/dev/null || lab_skip "util-linux 'unshare' not installed"
	command -v ganesha.nfsd >/dev/null || lab_skip "nfs-ganesha (ganesha.nfsd) not installed"
	command -v rpcbind >/dev/null || lab_skip "rpcbind not installed"
	local fsal
	fsal=$(find /usr/lib*/ /usr/local/lib* -name 'libfsalvfs.so*' -print -quit 2>/dev/null)
	[[ -n $fsal ]] || lab_skip "nfs-ganesha-vfs (libfsalvfs.so) not installed"
	local probe="nfsf-probe-$$"
	ip netns add "$probe" 2>/dev/null || lab_skip "cannot create network namespaces (ip netns add failed)"
	ip netns del "$probe"
	if [[ ${1:-} == capture ]]; then
		command -v tcpdump >/dev/null || command -v dumpcap >/dev/null ||
			lab_skip "neither tcpdump nor dumpcap installed"
	fi
	return 0
}

lab_client_bin() {
	local c
	for c in "${NFSF_CLIENT:-}" "${NFSF_BUILD_DIR:-}/tests/nfsf_client" \
		"$LAB_SH_DIR/../../build/tests/nfsf_client"; do
		[[ -n $c && -x $c ]] && { echo "$c"; return 0; }
	done
	return 1
}

# lab_url [PATH] [udp] -> nfs://SRV/EXPORT[/PATH]?version=3[&proto=udp]
lab_url() {
	local p=${1:-} u="nfs://$LAB_SRV_IP$LAB_EXPORT_PATH"
	[[ -n $p ]] && u+="/${p#/}"
	u+="?version=3"
	[[ ${2:-} == udp ]] && u+="&proto=udp"
	echo "$u"
}

lab_srv() { ip netns exec "$LAB_NS_SRV" "$@"; }
lab_cli() { ip netns exec "$LAB_NS_CLI" "$@"; }
# Run nfsf_client in the client namespace: lab_client URL OP ARGS... [OP ARGS...]
lab_client() {
	local bin
	bin=$(lab_client_bin) || { lab_die "nfsf_client not built (set NFSF_CLIENT)"; return 1; }
	ip netns exec "$LAB_NS_CLI" "$bin" "$@"
}

# Bounded wait until a TCP port answers inside the client namespace.
lab_wait_tcp() {
	local ip=$1 port=$2 secs=${3:-30} i
	for ((i = 0; i < secs * 5; i++)); do
		if ip netns exec "$LAB_NS_CLI" timeout 1 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then
			return 0
		fi
		if [[ -n ${LAB_SRV_PID:-} ]] && ! kill -0 "$LAB_SRV_PID" 2>/dev/null; then
			lab_die "ganesha exited while waiting for $ip:$port; log $LAB_LOG:"
			tail -n 20 "$LAB_LOG" >&2 2>/dev/null
			return 1
		fi
		sleep 0.2
	done
	lab_die "timed out after ${secs}s waiting for $ip:$port (ganesha log $LAB_LOG):"
	tail -n 20 "$LAB_LOG" >&2 2>/dev/null
	return 1
}

lab_write_conf() {
	cat >"$LAB_CONF" <<EOF
NFS_CORE_PARAM {
	Protocols = 3;
	NFS_Port = 2049;
	MNT_Port = 20048;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Bind_addr = $LAB_SRV_IP;
}
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 1;
	Path = $LAB_EXPORT_PATH;
	Pseudo = /export;
	Protocols = 3;
	Transports = TCP, UDP;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
EOF
}

lab_up() {
	local name=${1:-lab}
	local n=${LAB_SUBNET:-$(($$ % 250 + 1))}
	LAB_NS_SRV="nfsf-$name-$$-srv"
	LAB_NS_CLI="nfsf-$name-$$-cli"
	LAB_SRV_IP="10.99.$n.2"
	LAB_CLI_IP="10.99.$n.1"
	LAB_DIR=$(mktemp -d "/tmp/nfsf-lab-$name.XXXXXX") || return 1
	LAB_EXPORT=${LAB_EXPORT_DIR:-$LAB_DIR/export}
	LAB_EXPORT_PATH=${LAB_EXPORT_PATH:-$LAB_EXPORT}
	LAB_CONF=$LAB_DIR/ganesha.conf
	LAB_LOG=$LAB_DIR/ganesha.log
	LAB_CAP_PID=
	LAB_SRV_PID=
	LAB_UP=1
	[[ ${LAB_NO_TRAP:-0} == 1 ]] || trap 'lab_down' EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$LAB_EXPORT"
	chmod 0777 "$LAB_EXPORT"

	ip netns add "$LAB_NS_SRV" || { lab_die "ip netns add $LAB_NS_SRV"; return 1; }
	ip netns add "$LAB_NS_CLI" || { lab_die "ip netns add $LAB_NS_CLI"; return 1; }
	# No IPv6 on the lab links: keeps router/MLD solicitations out of the captures.
	ip netns exec "$LAB_NS_SRV" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$LAB_NS_CLI" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	# Create both ends directly inside the namespaces: no interface ever exists on the host.
	ip link add vcli netns "$LAB_NS_CLI" type veth peer name vsrv netns "$LAB_NS_SRV" ||
		{ lab_die "veth creation failed"; return 1; }
	ip -n "$LAB_NS_CLI" addr add "$LAB_CLI_IP/24" dev vcli
	ip -n "$LAB_NS_SRV" addr add "$LAB_SRV_IP/24" dev vsrv
	ip -n "$LAB_NS_CLI" link set lo up
	ip -n "$LAB_NS_SRV" link set lo up
	ip -n "$LAB_NS_CLI" link set vcli up
	ip -n "$LAB_NS_SRV" link set vsrv up
	if [[ ${LAB_NO_GSO:-0} == 1 ]]; then
		ip -n "$LAB_NS_CLI" link set vcli gso_max_segs 1
		ip -n "$LAB_NS_SRV" link set vsrv gso_max_segs 1
	fi
	local bind_top=
	if [[ $LAB_EXPORT_PATH != "$LAB_EXPORT" ]]; then
		bind_top=/$(echo "$LAB_EXPORT_PATH" | cut -d/ -f2)
		[[ -d $bind_top && $bind_top != / && $bind_top != /run ]] ||
			{ lab_die "LAB_EXPORT_PATH $LAB_EXPORT_PATH: top directory $bind_top must exist"; return 1; }
	fi

	lab_write_conf
	# ganesha and rpcbind get a private /run (pid files, rpcbind socket) so labs can coexist.
	# exec chain: ip netns exec -> unshare -> sh -> ganesha.nfsd (-F: stays in foreground),
	# so $! is ganesha's pid; rpcbind daemonizes and is found with `ip netns pids`.
	# shellcheck disable=SC2016 # expanded by the inner sh
	ip netns exec "$LAB_NS_SRV" unshare -m --propagation private sh -c '
		mount -t tmpfs tmpfs /run && mkdir -p /run/ganesha /run/rpcbind || exit 1
		if [ -n "$3" ]; then
			mount -t tmpfs tmpfs "$3" && mkdir -p "$5" && mount --bind "$4" "$5" || exit 1
		fi
		rpcbind -w || exit 1
		exec ganesha.nfsd -F -f "$1" -L "$2" -p /run/ganesha/ganesha.pid -N NIV_WARN
	' lab-ganesha "$LAB_CONF" "$LAB_LOG" "$bind_top" "$LAB_EXPORT" "$LAB_EXPORT_PATH" \
		>"$LAB_DIR/ganesha.stdout" 2>&1 &
	LAB_SRV_PID=$!
	echo "$LAB_SRV_PID" >"$LAB_DIR/ganesha.pid"

	local secs=${LAB_WAIT_SECS:-30}
	lab_wait_tcp "$LAB_SRV_IP" 2049 "$secs" || return 1
	lab_wait_tcp "$LAB_SRV_IP" 20048 "$secs" || return 1
	lab_log "up: $LAB_NS_CLI($LAB_CLI_IP) <-> $LAB_NS_SRV($LAB_SRV_IP) export $LAB_EXPORT (dir $LAB_DIR)"
}

# Kill every process that lives in one of our namespaces (they are ours: the names are unique).
lab_kill_ns() {
	local ns=$1 sig=$2 pids
	pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
	# shellcheck disable=SC2086 # one pid per word
	[[ -n $pids ]] && kill "-$sig" $pids 2>/dev/null
	return 0
}

lab_down() {
	local rc=$?
	# Teardown must run to the end even under `set -e` (a wait on ganesha returns its
	# status): `local -` restores the caller's options on return.
	local -
	set +e
	[[ ${LAB_UP:-0} == 1 ]] || return $rc
	LAB_UP=0
	lab_capture_stop 2>/dev/null
	local ns i
	for ns in "$LAB_NS_CLI" "$LAB_NS_SRV"; do lab_kill_ns "$ns" TERM; done
	for ((i = 0; i < 25; i++)); do
		[[ -z $(ip netns pids "$LAB_NS_SRV" 2>/dev/null)$(ip netns pids "$LAB_NS_CLI" 2>/dev/null) ]] && break
		sleep 0.2
	done
	for ns in "$LAB_NS_CLI" "$LAB_NS_SRV"; do lab_kill_ns "$ns" KILL; done
	[[ -n ${LAB_SRV_PID:-} ]] && wait "$LAB_SRV_PID" 2>/dev/null
	ip netns del "$LAB_NS_CLI" 2>/dev/null
	ip netns del "$LAB_NS_SRV" 2>/dev/null
	if [[ ${LAB_KEEP:-0} == 1 ]]; then
		lab_log "kept $LAB_DIR"
	elif [[ -n ${LAB_DIR:-} && -d $LAB_DIR ]]; then
		rm -rf "$LAB_DIR"
	fi
	return $rc
}

# lab_capture_start IFACE FILE [NS]: full-length capture (-s 0) inside the client namespace
# (or NS). Waits until the capturer is actually listening.
lab_capture_start() {
	local iface=$1 file=$2 ns=${3:-$LAB_NS_CLI} i
	local err=$LAB_DIR/capture.err
	: >"$err"
	if command -v tcpdump >/dev/null; then
		ip netns exec "$ns" tcpdump -i "$iface" -s 0 -U -B 32768 -n -Z root -w "$file" 2>"$err" &
	else
		ip netns exec "$ns" dumpcap -q -i "$iface" -s 0 -P -w "$file" 2>"$err" &
	fi
	LAB_CAP_PID=$!
	for ((i = 0; i < 50; i++)); do
		grep -q -i 'listening\|capturing' "$err" && { sleep 0.2; return 0; }
		kill -0 "$LAB_CAP_PID" 2>/dev/null || break
		sleep 0.1
	done
	lab_die "capture on $iface did not start: $(cat "$err")"
	return 1
}

lab_capture_stop() {
	[[ -n ${LAB_CAP_PID:-} ]] || return 0
	# libpcap hands TPACKET_V3 blocks to tcpdump when full or after its 1 s block timeout,
	# and SIGINT does not drain the ring: wait for the last block. (Immediate mode drains
	# but uses snaplen-sized ring slots, which drops packets with -s 0.)
	sleep 1.5
	kill -INT "$LAB_CAP_PID" 2>/dev/null
	wait "$LAB_CAP_PID" 2>/dev/null
	LAB_CAP_PID=
	return 0
}

# Server-side ground truth: every regular file under the export (or under $1, relative to
# the export) as "relpath<TAB>size<TAB>used" with used = st_blocks * block unit (stat %b*%B).
lab_disk_files() {
	local root=$LAB_EXPORT
	(cd "$root" && find . -type f -printf '%P\0' | sort -z |
		xargs -0 -r stat -c '%n	%s	%b	%B') | awk -F'\t' '{ printf "%s\t%s\t%d\n", $1, $2, $3 * $4 }'
}

# ==== e2e: the live agent in the lab (owner: e2e tests; used by e2e_enforce.sh, e2e_errors.sh,
# scripts/lab-demo.sh). Everything here is private to one lab: its own bpffs instance
# (LAB_BPFFS, mounted on the host under LAB_DIR, so every `ip netns exec` session sees the
# same pins), its own state dir, and the agent runs inside the client namespace.
#   lab_bpf_require             exit 77 unless clsact + sched_cls BPF can work here (probed)
#   lab_agent_dirs              mount LAB_BPFFS, set LAB_PIN_DIR LAB_STATE_DIR
#   lab_agent_start LOG ARGS... `nfsfence attach vcli ARGS... --pin-dir --state-dir` in the
#                               client namespace; waits for "nfsfence: ready:"; sets LAB_AGENT_PID
#   lab_nfsfence ARGS...        nfsfence in the client namespace (status, detach, ...)
#   lab_tc_filters [IFACE]      the TC filters on IFACE (egress + ingress), empty when none
#   lab_tree_used TREE [size|used]  sum over the regular files below TREE on the server's disk
#   lab_e2e_down                stop the agent, unmount LAB_BPFFS, then lab_down
# NFSF_BIN: the nfsfence binary.

# lab_e2e_require [TOOL...]: what an e2e script needs: lab_require, each TOOL (Debian
# package of the same name), nfsf_client, the nfsfence binary, TC BPF. Exit 77 (skip, with
# why) or 1 (no nfsfence binary: a build problem, not a missing capability).
lab_e2e_require() {
	lab_require
	local t
	for t in "$@"; do command -v "$t" >/dev/null || lab_skip "$t not installed (apt-get install $t)"; done
	lab_client_bin >/dev/null || lab_skip "nfsf_client not built (needs libnfs-dev; target nfsf_client)"
	[[ -x $NFSF_BIN ]] || { echo "FAIL: nfsfence binary not found at NFSF_BIN=$NFSF_BIN" >&2; exit 1; }
	lab_bpf_require
}

lab_bpf_require() {
	local probe="nfsf-bpfprobe-$$" err
	ip netns add "$probe" 2>/dev/null || lab_skip "cannot create network namespaces"
	ip -n "$probe" link set lo up
	if ! err=$(tc -n "$probe" qdisc add dev lo clsact 2>&1); then
		ip netns del "$probe"
		lab_skip "this kernel has no clsact qdisc (tc qdisc add clsact: $err)"
	fi
	ip netns del "$probe"
	if command -v bpftool >/dev/null; then
		# (into a variable first: grep -q closing the pipe early fails it under pipefail)
		local feat
		feat=$(bpftool feature probe kernel 2>/dev/null) || true
		grep -q 'program_type sched_cls is available' <<<"$feat" ||
			lab_skip "the kernel does not load sched_cls (TC) BPF programs (bpftool feature probe kernel)"
	fi
	local mnt
	mnt=$(mktemp -d /tmp/nfsf-bpffs-probe.XXXXXX)
	if ! err=$(mount -t bpf bpf "$mnt" 2>&1); then
		rmdir "$mnt"
		lab_skip "cannot mount a BPF filesystem (mount -t bpf: $err)"
	fi
	umount "$mnt"
	rmdir "$mnt"
	return 0
}

lab_agent_dirs() {
	LAB_BPFFS=$LAB_DIR/bpffs
	LAB_PIN_DIR=$LAB_BPFFS/nfsfence
	LAB_STATE_DIR=$LAB_DIR/state
	mkdir -p "$LAB_BPFFS" "$LAB_STATE_DIR"
	mount -t bpf bpf "$LAB_BPFFS" || { lab_die "mount -t bpf $LAB_BPFFS"; return 1; }
	LAB_BPFFS_MOUNTED=1
}

# nfsfence in the agent's namespace (LAB_AGENT_NS: the client's unless set)
lab_nfsfence() {
	ip netns exec "${LAB_AGENT_NS:-$LAB_NS_CLI}" "$NFSF_BIN" "$@"
}

# lab_agent_start LOG [attach args...]: returns 1 (log kept) when the agent exits or is not
# ready within LAB_AGENT_WAIT (20) seconds. It attaches to LAB_AGENT_DEV (vcli) in
# LAB_AGENT_NS (the client's namespace); e2e_xdp.sh sets them to vsrv in the server's.
lab_agent_start() {
	local log=$1 i secs=${LAB_AGENT_WAIT:-20}
	shift
	: >"$log"
	ip netns exec "${LAB_AGENT_NS:-$LAB_NS_CLI}" "$NFSF_BIN" attach "${LAB_AGENT_DEV:-vcli}" --pin-dir "$LAB_PIN_DIR" \
		--state-dir "$LAB_STATE_DIR" "$@" 2>"$log" &
	LAB_AGENT_PID=$! # ip netns exec execs nfsfence: this is the agent's pid
	for ((i = 0; i < secs * 10; i++)); do
		grep -q '^nfsfence: ready:' "$log" && return 0
		if ! kill -0 "$LAB_AGENT_PID" 2>/dev/null; then
			local st=0
			wait "$LAB_AGENT_PID" 2>/dev/null || st=$?
			lab_die "the agent exited before ready (exit $st): $(tail -n 5 "$log")"
			LAB_AGENT_PID=
			return 1
		fi
		sleep 0.1
	done
	lab_die "the agent was not ready within ${secs}s: $(tail -n 5 "$log")"
	return 1
}

lab_agent_stop() { # [SIG]: SIGTERM by default, SIGKILL after 5 s
	[[ -n ${LAB_AGENT_PID:-} ]] || return 0
	local pid=$LAB_AGENT_PID w
	LAB_AGENT_PID=
	kill "-${1:-TERM}" "$pid" 2>/dev/null || true
	# a blocking wait (no polling): bash would otherwise report "Killed" on its own
	(sleep 5 && kill -KILL "$pid" 2>/dev/null) &
	w=$!
	wait "$pid" 2>/dev/null || true
	kill "$w" 2>/dev/null || true
	wait "$w" 2>/dev/null || true
	return 0
}

lab_tc_filters() {
	local dev=${1:-vcli} dir
	for dir in egress ingress; do
		ip netns exec "$LAB_NS_CLI" tc filter show dev "$dev" "$dir" 2>/dev/null | sed "s/^/$dir: /"
	done
}

# lab_policy FILE: the e2e tests' policy: vol-a (limit 1Mi) and vol-b (1Gi) of the lab's export
lab_policy() {
	cat >"$1" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees:
  - name: vol-a
    path: vol-a
    limit: 1Mi
  - name: vol-b
    path: vol-b
    limit: 1Gi
EOF
}

lab_tree_used() {
	local tree=$1 col=3
	[[ ${2:-used} == size ]] && col=2
	lab_disk_files | awk -F'\t' -v t="$tree/" -v c="$col" 'index($1, t) == 1 { s += $c } END { print s + 0 }'
}

lab_e2e_down() {
	local rc=$?
	lab_agent_stop KILL
	if [[ ${LAB_BPFFS_MOUNTED:-0} == 1 ]]; then
		umount "$LAB_BPFFS" 2>/dev/null || umount -l "$LAB_BPFFS" 2>/dev/null || true
		LAB_BPFFS_MOUNTED=0
	fi
	# lab_down under errexit stops at its first failing command (e.g. `wait` returning
	# ganesha's exit status) and would leave the namespaces: run it without -e
	set +e
	(exit $rc)
	lab_down
	ip netns del "$LAB_NS_CLI" 2>/dev/null
	ip netns del "$LAB_NS_SRV" 2>/dev/null
	return $rc
}
# ==== end e2e
