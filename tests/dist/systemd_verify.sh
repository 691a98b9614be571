#!/usr/bin/env bash
# ctest dist_systemd_verify: dist/nfsfence@.service, instantiated as nfsfence@eth0.service,
# passes `systemd-analyze verify`, and says what the unit promises: the agent on %i with
# /etc/nfsfence/%i.yaml, restarted on failure, and no ExecStop (stopping never detaches).
# verify also checks that ExecStart's binary exists: the copy it checks points at the built
# binary (NFSF_BIN) instead of /usr/local/bin/nfsfence, the only line changed. A unit with
# an unknown key must fail verify (so a pass means it read the unit).
# Exit: 0 pass, 1 fail, 77 skip (no systemd-analyze: scripts/deps.sh installs systemd).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${NFSF_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
UNIT=$SRC/dist/nfsfence@.service
BIN=${NFSF_BIN:-$SRC/build/nfsfence}
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze not installed (apt-get install systemd)"; exit 77; }
[[ -x $BIN ]] || { echo "FAIL: nfsfence binary not found at NFSF_BIN=$BIN" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

grep -q '^ExecStart=/usr/local/bin/nfsfence ' "$UNIT" || fail "ExecStart does not start /usr/local/bin/nfsfence"
sed "s|^ExecStart=/usr/local/bin/nfsfence |ExecStart=$BIN |" "$UNIT" >"$T/nfsfence@eth0.service"
[[ $(diff "$UNIT" "$T/nfsfence@eth0.service" | grep -c '^[<>]') == 2 ]] || fail "the copy differs in more than ExecStart"
if out=$(systemd-analyze verify --man=no --recursive-errors=no "$T/nfsfence@eth0.service" 2>&1) && [[ -z $out ]]; then
	ok "systemd-analyze verify nfsfence@eth0.service: clean"
else
	fail "systemd-analyze verify nfsfence@eth0.service: $out"
fi
printf '[Service]\nExecStart=%s\nNoSuchKey=1\n' "$BIN" >"$T/broken@eth0.service"
if systemd-analyze verify --man=no --recursive-errors=no "$T/broken@eth0.service" >/dev/null 2>&1; then
	fail "verify passed a unit with an unknown key: it checks nothing here"
else
	ok "verify refuses a unit with an unknown key"
fi
# what the unit promises (systemd-analyze cat-config would need a running systemd: the file itself)
want() { grep -qxF "$1" "$UNIT" && ok "unit: $1" || fail "unit has no line '$1'"; }
want 'ExecStart=/usr/local/bin/nfsfence attach %i --policy /etc/nfsfence/%i.yaml'
want 'Restart=on-failure'
want 'KillSignal=SIGTERM'
want 'RuntimeDirectoryPreserve=yes'
want 'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_BIND_SERVICE'
if grep -qE '^(ExecStop|ExecStopPost)=' "$UNIT"; then fail "the unit has an ExecStop: stopping must not detach"; else
	ok "no ExecStop/ExecStopPost: stopping the unit leaves enforcement in place"
fi
# the binary really takes the unit's command line (a policy error, not a usage error)
rc=0
"$BIN" attach eth0 --policy "$T/missing.yaml" >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] && ok "nfsfence attach IFACE --policy FILE parses (exit 1 for a missing policy)" ||
	fail "nfsfence attach IFACE --policy FILE: exit $rc (2 is a usage error)"
((FAILS == 0)) || { echo "FAIL: $FAILS checks" >&2; exit 1; }
echo PASS
