#!/usr/bin/env bash
# clang-format over every C/C++ source git tracks: .clang-format (C++) and bpf/.clang-format
# (kernel style). `scripts/format.sh` rewrites the files; `scripts/format.sh --check` (CI)
# changes nothing, prints the files that differ, and exits 1 if there are any.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" >/dev/null || { echo "scripts/format.sh: $CF not found (scripts/deps.sh installs clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.cpp' '*.h' ':!:bpf/include/vmlinux.h')
case ${1:-} in
--check)
	bad=()
	for f in "${files[@]}"; do
		[[ -f $f ]] || continue
		"$CF" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
	done
	if ((${#bad[@]})); then
		echo "scripts/format.sh: ${#bad[@]} files are not clang-formatted (run scripts/format.sh): ${bad[*]}" >&2
		exit 1
	fi
	echo "scripts/format.sh: ${#files[@]} files clang-formatted"
	;;
"") "$CF" -i "${files[@]}" ;;
*) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
