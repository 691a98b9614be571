#!/usr/bin/env bash
# The "200 trees added one file at a time" table of docs/benchmarks.md: runs the lab test
# that measures it (tests/lab/e2e_reload.sh, which also asserts enforcement throughout) and
# prints its measured lines: add/remove times, the agent's own times, the lowered limit,
# memory. Root; RELOAD_TREES (200) as the test takes it.
#   sudo bench/reload_trees.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
out=$("$HERE/../tests/lab/e2e_reload.sh" 2>&1) || { echo "$out" | tail -n 20 >&2; exit 1; }
grep -E "trees (added|removed) one file|limit lowered|applied each change|burst|every added tree|writer F|^summary" <<<"$out"
