#!/usr/bin/env bash
# ctest lab_poison_probe: the real server's answer to each way nfsfence refuses a WRITE in
# place (tests/lab/poison_probe.py): the handle all 0xff, or (for a WRITE head cut by a
# segment boundary) the offset or the count all 0xff. Each must be refused with nothing
# written; the server's files are the oracle.
# Exit: 0 pass, 1 fail, 77 skip (not root, no netns/ganesha).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lab/lab.sh source-path=SCRIPTDIR
source "$HERE/lab.sh"
lab_require
command -v python3 >/dev/null || lab_skip "python3 not installed"
LAB_NO_TRAP=1
lab_up probe || { echo "FAIL: lab_up failed" >&2; exit 1; }
trap 'lab_down' EXIT
rc=0
lab_cli python3 "$HERE/poison_probe.py" "$LAB_SRV_IP" "$LAB_EXPORT_PATH" || rc=$?
# the oracle, once more from the server's disk: the refused probes' files are empty
for f in ff offset_ff count_ff; do
	size=$(stat -c %s "$LAB_EXPORT/poison-target-$f")
	[[ $size == 0 ]] || { echo "FAIL: poison-target-$f has $size bytes on the server's disk" >&2; rc=1; }
done
exit "$rc"
