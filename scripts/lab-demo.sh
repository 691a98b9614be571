#!/usr/bin/env bash
# The README's live demo (root, after scripts/deps.sh and scripts/build.sh): a real NFSv3
# server (nfs-ganesha) and client (tests/lab/nfsf_client, libnfs) in two network namespaces,
# an export with two quota trees, `nfsfence attach` on the client's interface, and a client
# writing until a tree is full. Everything is torn down at the end (also on Ctrl-C).
#   NFSF_BUILD_DIR=build (default) ; LAB_KEEP=1 keeps the lab directory
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export NFSF_BUILD_DIR=${NFSF_BUILD_DIR:-$ROOT/build}
export NFSF_BIN=${NFSF_BIN:-$NFSF_BUILD_DIR/nfsfence}
export NFSF_CLIENT=${NFSF_CLIENT:-$NFSF_BUILD_DIR/tests/nfsf_client}
# shellcheck source=tests/lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
[[ $(id -u) == 0 ]] || { echo "lab-demo: run as root (network namespaces, BPF)" >&2; exit 1; }
for b in "$NFSF_BIN" "$NFSF_CLIENT"; do
	[[ -x $b ]] || { echo "lab-demo: $b not built: run scripts/build.sh first" >&2; exit 1; }
done
lab_require # prints "SKIP: reason" and exits 77 when the machine cannot run the lab
lab_bpf_require

say() { printf '\n== %s\n' "$*"; }
client() { # run nfsf_client and print a compact summary of its lines
	lab_client --keep-going "$(lab_url)" "$@" | awk '
		/^op=(mount|commit)/ { next }
		/^op=(write|read) / {
			split($2, p, "="); st = ""
			for (i = 1; i <= NF; i++) if ($i ~ /^(status|errno)=/) st = st " " $i
			key = $1 " " p[2] " " st; if (!(key in n)) order[++k] = key; n[key]++; next }
		{ print "   " $0 }
		END { for (i = 1; i <= k; i++) printf "   %-58s x%d\n", order[i], n[order[i]] }' || true
}
status() { lab_nfsfence status vcli --pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_STATE_DIR" 2>&1 | sed 's/^/   /'; }

LAB_NO_TRAP=1
say "lab: ganesha (server namespace) + libnfs client (client namespace), one veth pair"
lab_up demo 2>&1 || exit 1
trap 'lab_e2e_down; echo; echo "== torn down: namespaces, ganesha, agent, pins"' EXIT
lab_agent_dirs
client mkdir vol-a mkdir vol-b >/dev/null
cat >"$LAB_DIR/policy.yaml" <<EOF
export: $LAB_EXPORT_PATH
server: $LAB_SRV_IP
trees:
  - { name: vol-a, path: vol-a, limit: 1Mi }
  - { name: vol-b, path: vol-b, limit: 10Mi }
EOF
say "policy: vol-a limit 1Mi, vol-b limit 10Mi"
say "nfsfence attach vcli (inside the client namespace)"
lab_agent_start "$LAB_DIR/agent.log" --policy "$LAB_DIR/policy.yaml" --mount-port 20048
sed 's/^/   /' "$LAB_DIR/agent.log"

say "client: writes 1.5Mi to vol-a/big in 64Ki WRITEs, then reads it back (same TCP connection)"
client write vol-a/big 1536Ki 64Ki read vol-a/big
sleep 0.5
say "client: appends to vol-a/big, writes 1Mi to vol-b"
client append vol-a/big 64Ki write vol-b/other 1Mi
echo "   server's disk: $(cd "$LAB_EXPORT" && stat -c '%n %s bytes' vol-a/big vol-b/other | paste -sd, -)"

sleep 1.2 # the agent refreshes its state file once a second
say "nfsfence status"
status
say "agent log"
sed 's/^/   /' "$LAB_DIR/agent.log" | tail -n +2
say "client: rm vol-a/big frees the tree; the next WRITE is accepted"
client rm vol-a/big
sleep 0.5
client write vol-a/again 64Ki
