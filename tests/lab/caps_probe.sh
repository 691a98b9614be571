#!/usr/bin/env bash
# ctest lab_agent_capabilities: which capabilities `nfsfence attach` (TC mode) really needs,
# the set dist/nfsfence@.service's CapabilityBoundingSet and dist/kubernetes/daemonset.yaml
# give it (dist/README.md says what each is for). In the lab the agent runs as root with
# exactly CAPS + EXTRA as its bounding set (so as its permitted and effective sets): it must
# get ready, stop on SIGTERM, and get ready again adopting its pins; with any one of CAPS
# taken away it must fail. EXTRA is in the set for what this lab cannot show
# (net_bind_service: the walk's reserved source port, which Linux knfsd's default `secure`
# export option insists on; ganesha accepts any port, and the agent goes on without one).
# Measured on 6.18: {bpf, net_admin, perfmon} is enough and each is needed; sys_admin
# stands in for bpf and perfmon together (kernels before 5.8 know only it).
#
# Env: as e2e_enforce.sh (NFSF_BIN, NFSF_CLIENT or NFSF_BUILD_DIR); CAPS="..." / EXTRA="..."
# to try another set. Exit: 0 the set is enough and each of CAPS needed, 1 not, 77 skip.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
NFSF_SOURCE_DIR=${NFSF_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$NFSF_SOURCE_DIR/build}
NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_require
command -v setpriv >/dev/null || lab_skip "setpriv (util-linux) not installed"
[[ -x $NFSF_BIN ]] || { echo "FAIL: nfsfence binary not found at NFSF_BIN=$NFSF_BIN" >&2; exit 1; }
lab_client_bin >/dev/null || lab_skip "nfsf_client not built (needs libnfs-dev; target nfsf_client)"
lab_bpf_require
# The documented set (dist/README.md says what each is for).
read -r -a SET <<<"${CAPS-bpf net_admin perfmon}"
read -r -a EXTRA <<<"${EXTRA-net_bind_service}"

FAILS=0
LAB_NO_TRAP=1
lab_up caps || { echo "FAIL: lab_up" >&2; exit 1; }
trap lab_e2e_down EXIT
lab_agent_dirs || { echo "FAIL: bpffs" >&2; exit 1; }
POLICY=$LAB_DIR/policy.yaml
lab_policy "$POLICY"
lab_client "$(lab_url)" mkdir vol-a mkdir vol-b >"$LAB_DIR/setup.out" 2>&1 || { echo "FAIL: setup" >&2; exit 1; }

# attach_with CAP...: the agent with exactly these capabilities in its bounding set (root:
# its permitted and effective sets are the bounding set). 0 when it got ready.
attach_with() {
	local bset=-all c log=$LAB_DIR/agent.log i
	for c in "$@"; do bset+=",+$c"; done
	: >"$log"
	ip netns exec "$LAB_NS_CLI" setpriv --bounding-set "$bset" --inh-caps -all -- \
		"$NFSF_BIN" attach vcli --policy "$POLICY" --mount-port 20048 --pin-dir "$LAB_PIN_DIR" \
		--state-dir "$LAB_STATE_DIR" 2>"$log" &
	LAB_AGENT_PID=$!
	for ((i = 0; i < 150; i++)); do
		grep -q '^nfsfence: ready:' "$log" && return 0
		kill -0 "$LAB_AGENT_PID" 2>/dev/null || { LAB_AGENT_PID=; return 1; }
		sleep 0.1
	done
	return 1
}
reset_pins() { lab_nfsfence detach vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" >/dev/null 2>&1 || true; }
why() { grep -v '^nfsfence: warning' "$LAB_DIR/agent.log" | tail -n 1 | cut -c1-160; }

reset_pins
ALL=("${SET[@]}" "${EXTRA[@]}")
if attach_with "${ALL[@]}"; then
	echo "ok: ready with exactly {${ALL[*]}} (fresh pins)"
	lab_agent_stop TERM
	if attach_with "${ALL[@]}"; then echo "ok: ready again with {${ALL[*]}}, adopting the pins"; else
		echo "FAIL: adopting the pins with {${ALL[*]}}: $(why)" >&2
		FAILS=$((FAILS + 1))
	fi
	lab_agent_stop TERM
else
	echo "FAIL: not ready with {${ALL[*]}}: $(why)" >&2
	FAILS=$((FAILS + 1))
	lab_agent_stop KILL
fi
for drop in "${SET[@]}"; do
	reset_pins
	rest=()
	for c in "${ALL[@]}"; do [[ $c == "$drop" ]] || rest+=("$c"); done
	if attach_with "${rest[@]}"; then
		echo "FAIL: ready without $drop: it is not needed" >&2
		FAILS=$((FAILS + 1))
	else
		echo "ok: without $drop the agent fails: $(why)"
	fi
	lab_agent_stop KILL
done
reset_pins
((FAILS == 0)) || { echo "FAIL: $FAILS runs (lab dir kept: $LAB_DIR)" >&2; LAB_KEEP=1; exit 1; }
echo PASS
