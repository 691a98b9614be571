#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan into build-fuzz/ and runs each for
# FUZZ_SECONDS (default 60; CI) over a seed corpus cut from the bundled and shared
# captures. `--long` runs each for 10 minutes instead (FUZZ_SECONDS still wins if set):
# the nightly-style run. Fails on any crash, sanitizer report, leak or timeout.
#
#   scripts/fuzz.sh                 # 60 s per target
#   scripts/fuzz.sh --long          # 600 s per target
#   scripts/fuzz.sh policy ring     # only these targets
set -euo pipefail
cd "$(dirname "$0")/.."
default=60
targets=()
for a in "$@"; do
  case $a in
    --long) default=600 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    packets|stream|nfs3|policy|ring) targets+=("$a") ;;
    *) echo "scripts/fuzz.sh: unknown argument '$a' (targets: packets stream nfs3 policy ring; --long)" >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=(packets stream nfs3 policy ring)
secs=${FUZZ_SECONDS:-$default}
cmake -S . -B build-fuzz -DNFSF_FUZZ=ON -DNFSF_BUILD_BPF=OFF -DNFSF_BUILD_TESTS=OFF -DNFSF_BUILD_BENCH=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}" nfsf_seed_corpus >/dev/null
seeds=build-fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{packets,stream,nfs3,policy,ring}
build-fuzz/fuzz/nfsf_seed_corpus "$seeds" pcaps/*.pcap $(ls ../shared/pcaps/*/* 2>/dev/null | grep -v -i -E "license|copying|readme") || true
# Policy seeds: the bundled example policies.
cp pcaps/*.policy.yaml "$seeds/policy/"
for t in "${targets[@]}"; do
  mkdir -p build-fuzz/corpus/$t
  echo "fuzz_$t: ${secs}s, seeds: $(ls "$seeds/$t" | wc -l)"
  build-fuzz/fuzz/fuzz_$t -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -timeout=30 -artifact_prefix=build-fuzz/ -print_final_stats=1 \
    build-fuzz/corpus/$t "$seeds/$t" 2>build-fuzz/fuzz_$t.log || { tail -50 build-fuzz/fuzz_$t.log; exit 1; }
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' build-fuzz/fuzz_$t.log | tr '\n' ' '; echo
done
