#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, BPF, oracle, lab, fuzz smoke).
# Tests that need root, network namespaces, BPF or ../shared/pcaps skip with the reason
# when that capability is really missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
# every C/C++ source as clang-format (.clang-format, bpf/.clang-format) writes it
scripts/format.sh --check
ctest --test-dir build --output-on-failure -j2 --timeout 600
# The trade-off report (bench/report --quick, ~40 s each): every row has its numbers, twice,
# and the second run's cost/replay ratios lie inside the first's spread (--check-repro).
report_tmp=$(mktemp -d)
trap 'rm -rf "$report_tmp"' EXIT
bench/report --quick --from-tests --out "$report_tmp/a"
bench/report --quick --from-tests --out "$report_tmp/b"
# the shared 2-core machine spreads quick ratios by up to ~30 % run to run: widen by 50 % at least
bench/report --tolerance 0.5 --check-repro "$report_tmp/a" "$report_tmp/b"
# libFuzzer + ASan/UBSan over the decoder, the stream reassembler and the XDR decoders,
# seeded from the captures, bounded in time.
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
