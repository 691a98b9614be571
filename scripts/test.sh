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
# libFuzzer + ASan/UBSan over the decoder, the stream reassembler and the XDR decoders,
# seeded from the captures, bounded in time.
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
