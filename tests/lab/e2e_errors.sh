#!/usr/bin/env bash
# ctest lab_attach_errors: `nfsfence attach` failing cleanly. For each bad invocation:
# exactly one line on stderr, starting with "nfsfence: "; a non-zero exit; and nothing left
# attached: no TC filter on vcli (egress, ingress), no pin under the pin dir, no state file.
#   - a policy naming a tree whose path does not exist on the server (the walk fails after
#     the programs were loaded and attached: they must be taken down again)
#   - an interface that does not exist
#   - no privileges (uid/gid 65534, no capabilities)
#   - a policy without `server:` and no --server; an unknown --action
#   - --mode lsm on a kernel that refuses BPF LSM programs (this lab's host: probed; the LSM
#     hooks themselves run in the QEMU guest, tests/vm/kclient_vm.sh)
# The good attach runs with --mode auto: it must pick tc and say why.
# Then a good attach on the same interface must still work (nothing half-done blocks it).
# A kernel without clsact: ctest vm_debian61 (tests/vm/verifier_vm.sh) runs attach on Debian's
# 6.1 in QEMU, where clsact (sch_ingress) is a module nobody loaded.
#
# Env: NFSF_BIN, NFSF_CLIENT / NFSF_BUILD_DIR, LAB_KEEP=1.
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha/libnfs client/clsact/BPF).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_require
lab_client_bin >/dev/null || lab_skip "nfsf_client not built (needs libnfs-dev; target nfsf_client)"
[[ -x $NFSF_BIN ]] || { echo "FAIL: nfsfence binary not found at NFSF_BIN=$NFSF_BIN" >&2; exit 1; }
"$NFSF_BIN" attach --help >/dev/null 2>&1 || lab_skip "$NFSF_BIN has no 'attach' (built without BPF support)"
command -v setpriv >/dev/null || lab_skip "setpriv (util-linux) not installed"
lab_bpf_require

FAILS=0
fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
	LAB_KEEP=1 # read by lab_down
}
ok() { echo "ok: $*"; }

LAB_NO_TRAP=1
lab_up errors || { echo "FAIL: lab_up failed" >&2; exit 1; }
trap 'lab_e2e_down' EXIT
lab_agent_dirs || { echo "FAIL: cannot mount a bpffs for the agent" >&2; exit 1; }
lab_client "$(lab_url)" mkdir vol-a >/dev/null || { echo "FAIL: setup client failed" >&2; exit 1; }

# Files the unprivileged run must be able to read: a world-readable corner of LAB_DIR.
chmod 0711 "$LAB_DIR"
PUB=$LAB_DIR/pub
mkdir -p "$PUB"
chmod 0755 "$PUB"
policy() { # policy FILE [TREE_PATH] [with_server=1]
	{
		echo "export: $LAB_EXPORT_PATH"
		[[ ${3:-1} == 1 ]] && echo "server: $LAB_SRV_IP"
		echo "trees:"
		echo "  - name: vol-a"
		echo "    path: ${2:-vol-a}"
		echo "    limit: 1Mi"
	} >"$1"
	chmod 0644 "$1"
}
policy "$PUB/good.yaml"
policy "$PUB/missing-tree.yaml" no-such-dir
policy "$PUB/no-server.yaml" vol-a 0

nothing_attached() { # -> "" or a description of what is left
	local left=
	[[ -z $(lab_tc_filters vcli) ]] || left+="TC filters: $(lab_tc_filters vcli | tr '\n' ' '); "
	[[ -z $(ls -A "$LAB_PIN_DIR/vcli" 2>/dev/null) ]] || left+="pins: $(ls -A "$LAB_PIN_DIR/vcli" | tr '\n' ' '); "
	[[ ! -e $LAB_STATE_DIR/vcli.json ]] || left+="state file $LAB_STATE_DIR/vcli.json; "
	[[ -z $(ls -A "$LAB_PIN_DIR/lsm" 2>/dev/null) ]] || left+="LSM pins: $(ls -A "$LAB_PIN_DIR/lsm" | tr '\n' ' '); "
	[[ ! -e $LAB_STATE_DIR/lsm.json ]] || left+="state file $LAB_STATE_DIR/lsm.json; "
	echo "$left"
}

# expect_error NAME PREFIX... -- CMD...: runs CMD (30 s bound) and checks the contract
expect_error() {
	local name=$1 rc=0 err n first left
	err=$LAB_DIR/$name.err
	shift
	timeout 30 "$@" >"$LAB_DIR/$name.out" 2>"$err" || rc=$?
	n=$(wc -l <"$err")
	first=$(head -n 1 "$err")
	left=$(nothing_attached)
	if [[ $rc == 124 ]]; then
		fail "$name: still running after 30 s (should have failed): $(head -n 3 "$err" | tr '\n' '|')"
	elif [[ $rc == 0 ]]; then
		fail "$name: exit 0 (expected non-zero); stderr: $(head -n 3 "$err" | tr '\n' '|')"
	elif [[ $n != 1 || $first != "nfsfence: "* ]]; then
		fail "$name: exit $rc but stderr is not one line starting 'nfsfence: ' ($n lines):"
		sed 's/^/    /' "$err" >&2
	else
		ok "$name: exit $rc, one line: $first"
	fi
	if [[ -n $left ]]; then
		fail "$name: left behind: $left"
	else
		ok "$name: nothing left attached (no TC filter on vcli, no pin, no state file)"
	fi
	if [[ $name == missing-tree && $first != *no-such-dir* ]]; then
		fail "$name: the message does not name the missing path 'no-such-dir'"
	fi
	# next case starts clean even if this one left something
	[[ -z $left ]] || lab_nfsfence detach vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" >/dev/null 2>&1 || true
}

NFSF=(ip netns exec "$LAB_NS_CLI" "$NFSF_BIN") # (timeout cannot run shell functions)
ATTACH=(attach --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" --mount-port 20048)
expect_error missing-tree "${NFSF[@]}" "${ATTACH[@]}" vcli --policy "$PUB/missing-tree.yaml"
expect_error no-such-iface "${NFSF[@]}" "${ATTACH[@]}" nfsf-nosuch0 --policy "$PUB/good.yaml"
expect_error unprivileged ip netns exec "$LAB_NS_CLI" setpriv --reuid=65534 --regid=65534 --clear-groups \
	--inh-caps=-all --bounding-set=-all "$NFSF_BIN" "${ATTACH[@]}" vcli --policy "$PUB/good.yaml"
expect_error no-server "${NFSF[@]}" "${ATTACH[@]}" vcli --policy "$PUB/no-server.yaml"
expect_error bad-action "${NFSF[@]}" "${ATTACH[@]}" vcli --policy "$PUB/good.yaml" --action bogus
# --mode lsm: the trees' roots are found on a local mount (--mount; the hooks only act on
# NFS superblocks, so a plain directory is harmless where the kernel does run them).
mkdir -p "$LAB_DIR/fakemount/vol-a"
lsm_err=$("${NFSF[@]}" attach --mode lsm --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" \
	--policy "$PUB/good.yaml" --mount "$LAB_DIR/fakemount" 2>&1 </dev/null & p=$!; sleep 3; kill $p 2>/dev/null; wait $p) || true
if [[ $lsm_err == *"refuses"*"LSM"* ]]; then
	expect_error lsm-refused "${NFSF[@]}" attach --mode lsm --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" \
		--policy "$PUB/good.yaml" --mount "$LAB_DIR/fakemount"
else
	echo "info: this kernel runs BPF LSM programs ($(head -n 1 <<<"$lsm_err")): the refusal case needs one that does not"
	lab_nfsfence detach lsm --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" >/dev/null 2>&1 || true
fi
if tc -n "$LAB_NS_CLI" qdisc show dev vcli | grep -q clsact; then
	echo "info: a clsact qdisc stays on vcli after the failed attaches (harmless: no filter on it)"
fi

# After all that, a good attach works and detach cleans up.
if lab_agent_start "$LAB_DIR/good.log" --policy "$PUB/good.yaml" --mount-port 20048 --mode auto; then
	ok "a good attach after the failures: $(grep '^nfsfence: ready:' "$LAB_DIR/good.log")"
	auto=$(grep -m1 '^nfsfence: mode auto picked' "$LAB_DIR/good.log" || true)
	[[ $auto == "nfsfence: mode auto picked tc: "* ]] && ok "--mode auto: $auto" ||
		fail "--mode auto did not say it picked tc: $(head -n 2 "$LAB_DIR/good.log" | tr '\n' '|')"
	if lab_nfsfence detach vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" >"$LAB_DIR/detach.out" 2>&1; then
		ok "detach: exit 0"
	else
		fail "detach failed: $(cat "$LAB_DIR/detach.out")"
	fi
	lab_agent_stop
	left=$(nothing_attached)
	[[ -z $left ]] && ok "after detach nothing is left" || fail "after detach: left behind: $left"
else
	fail "a good attach failed after the error cases: $(cat "$LAB_DIR/good.log")"
fi

if [[ $FAILS != 0 ]]; then
	echo "FAIL: $FAILS check(s) failed; lab dir kept: $LAB_DIR" >&2
	exit 1
fi
echo "PASS"
