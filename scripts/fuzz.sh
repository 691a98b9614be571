#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan into build-fuzz/ and runs each for
# FUZZ_SECONDS (default 60) over a seed corpus cut from the bundled and shared captures.
# Fails on any crash, sanitizer report or leak.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -DNFSF_FUZZ=ON -DNFSF_BUILD_BPF=OFF -DNFSF_BUILD_TESTS=OFF -DNFSF_BUILD_BENCH=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_packets fuzz_stream fuzz_nfs3 nfsf_seed_corpus >/dev/null
seeds=build-fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{packets,stream,nfs3}
build-fuzz/fuzz/nfsf_seed_corpus "$seeds" pcaps/*.pcap $(ls ../shared/pcaps/*/* 2>/dev/null | grep -v -i -E "license|copying|readme") || true
for t in packets stream nfs3; do
  mkdir -p build-fuzz/corpus/$t
  echo "fuzz_$t: ${secs}s, seeds: $(ls "$seeds/$t" | wc -l)"
  build-fuzz/fuzz/fuzz_$t -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1 \
    build-fuzz/corpus/$t "$seeds/$t" 2>build-fuzz/fuzz_$t.log || { tail -50 build-fuzz/fuzz_$t.log; exit 1; }
  grep -E '^stat::number_of_executed_runs|^stat::peak_rss_mb' build-fuzz/fuzz_$t.log | tr '\n' ' '; echo
done
