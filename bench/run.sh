#!/usr/bin/env bash
# The replay benchmark (docs/benchmarks.md): in one run, MB/s and peak RSS of
#   rawread   libpcap pcap_next_ex loop touching every byte (the floor)   bench/rawread.cpp
#   rawread-mmap  the same over mmap(2) (what an mmap-based reader could reach)
#   replay    nfsfence replay CAPTURE --policy P --format json
#   decode    nfsfence decode CAPTURE --format jsonl > /dev/null
#   nfstrace  nfstrace -m stat -I CAPTURE -a libbreakdown.so   (Debian package)
#   tshark    tshark -T fields with NFS fields, on a prefix slice of the same capture
# and replay on a 4x smaller capture of the same generator (RSS must not grow with size).
#
# usage: bench/run.sh [CAPTURE.pcap]
# env:   BUILD=build dir (default <repo>/build-bench)   SIZE_MB=1024   SEED=1
#        RUNS=3 (repetitions per tool, interleaved; the best wall time is reported)
#        TSHARK_MB=256 (size of the prefix slice given to tshark; 0 = the whole capture)
#        BIG4X=1 (also replay a 4x larger capture once, for peak RSS vs size; 0 = skip)
#        SKIP_BUILD=1 (do not run cmake --build)
# The capture (and CAPTURE minus ".pcap" + .policy.yaml / .truth.json) is generated with
# nfsf_gen_capture if missing. Results: a table on stdout, $OUT/bench-summary.{json,tsv}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$repo/build-bench}
SIZE_MB=${SIZE_MB:-1024}
SEED=${SEED:-1}
RUNS=${RUNS:-3}
TSHARK_MB=${TSHARK_MB:-256}
BIG4X=${BIG4X:-1}
OUT=$BUILD/bench-data
mkdir -p "$OUT"
CAP=${1:-$OUT/nfs-${SIZE_MB}m.pcap}
stem=${CAP%.pcap}
SMALL_MB=$((SIZE_MB / 4))
SMALL=$OUT/nfs-${SMALL_MB}m.pcap

if [[ -z "${SKIP_BUILD:-}" ]]; then
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$repo" -B "$BUILD" -DNFSF_BUILD_BPF=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target nfsfence nfsf_gen_capture nfsf_rawread >/dev/null
fi
NFSF=$BUILD/nfsfence
GEN=$BUILD/bench/nfsf_gen_capture
RAW=$BUILD/bench/nfsf_rawread

gen() {  # gen FILE MB
  local f=$1 mb=$2
  if [[ ! -s $f || ! -s ${f%.pcap}.policy.yaml ]]; then
    echo "generating $f ($mb MiB, seed $SEED)..." >&2
    "$GEN" "$f" --size-mb "$mb" --seed "$SEED"
  fi
}
gen "$CAP" "$SIZE_MB"
gen "$SMALL" "$SMALL_MB"
LARGE=$OUT/nfs-$((SIZE_MB * 4))m.pcap
if [[ $BIG4X == 1 ]]; then gen "$LARGE" $((SIZE_MB * 4)); fi
POLICY=$stem.policy.yaml
NT_PLUGIN=$(dpkg -L nfstrace 2>/dev/null | grep -m1 'libbreakdown.so$' || echo /usr/lib/nfstrace/libbreakdown.so)

# tshark gets a prefix slice (whole packets) of the same capture: it needs minutes and GBs of
# RAM per GB of capture. MB/s are per byte of the file it read, so they stay comparable.
SLICE=$CAP
if [[ $TSHARK_MB != 0 ]]; then
  SLICE=$OUT/$(basename "$stem")-prefix${TSHARK_MB}m.pcap
  if [[ ! -s $SLICE ]]; then
    npk=$(python3 - "$CAP" "$TSHARK_MB" <<'EOF'
import struct, sys
f = open(sys.argv[1], 'rb'); limit = int(sys.argv[2]) << 20
f.seek(24); off = 24; n = 0
while True:
    h = f.read(16)
    if len(h) < 16: break
    cap = struct.unpack('<IIII', h)[2]
    if off + 16 + cap > limit: break
    off += 16 + cap; n += 1; f.seek(off)
print(n)
EOF
)
    editcap -r "$CAP" "$SLICE" "1-$npk"
  fi
fi
# tshark's fixed start-up cost (dissector registration), measured on the first 100 packets
TINY=$OUT/$(basename "$stem")-prefix100pkts.pcap
[[ -s $TINY ]] || editcap -r "$CAP" "$TINY" 1-100

size_of() { stat -c %s "$1"; }
CAP_BYTES=$(size_of "$CAP")
SMALL_BYTES=$(size_of "$SMALL")
SLICE_BYTES=$(size_of "$SLICE")

echo "warming the page cache (cat the captures to /dev/null)..." >&2
cat "$CAP" "$SMALL" "$SLICE" >/dev/null
if [[ $BIG4X == 1 ]]; then cat "$LARGE" >/dev/null; fi

declare -A BEST_WALL BEST_CPU MAX_RSS BYTES CMD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run NAME BYTES CMD... : one timed run (GNU time), stdout to $TMP/NAME.out
run() {
  local name=$1 bytes=$2
  shift 2
  CMD[$name]="$*"
  BYTES[$name]=$bytes
  /usr/bin/time -f '%e %U %S %M' -o "$TMP/$name.time" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || {
    echo "FAILED: $name: $*" >&2
    tail -3 "$TMP/$name.err" >&2
    return 0
  }
  read -r wall user sys rss <"$TMP/$name.time"
  local cpu
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
  if [[ -z ${BEST_WALL[$name]:-} ]] || awk -v a="$wall" -v b="${BEST_WALL[$name]}" 'BEGIN{exit !(a<b)}'; then
    BEST_WALL[$name]=$wall
  fi
  if [[ -z ${BEST_CPU[$name]:-} ]] || awk -v a="$cpu" -v b="${BEST_CPU[$name]}" 'BEGIN{exit !(a<b)}'; then
    BEST_CPU[$name]=$cpu
  fi
  if [[ -z ${MAX_RSS[$name]:-} ]] || ((rss > MAX_RSS[$name])); then MAX_RSS[$name]=$rss; fi
  printf '  %-14s wall %7ss  cpu %7ss  rss %7s KiB\n' "$name" "$wall" "$cpu" "$rss" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring (RUNS=$RUNS, interleaved; load average $LOAD_BEFORE)..." >&2
for ((i = 1; i <= RUNS; i++)); do
  echo " round $i" >&2
  run rawread "$CAP_BYTES" "$RAW" "$CAP"
  run rawread-mmap "$CAP_BYTES" "$RAW" --mmap "$CAP"
  run replay "$CAP_BYTES" "$NFSF" replay "$CAP" --policy "$POLICY" --format json
  cp "$TMP/replay.out" "$OUT/replay.json"
  run decode "$CAP_BYTES" sh -c "exec \"\$0\" decode \"\$1\" --format jsonl >/dev/null" "$NFSF" "$CAP"
  run replay-quarter "$SMALL_BYTES" "$NFSF" replay "$SMALL" --policy "${SMALL%.pcap}.policy.yaml" --format json
  run nfstrace "$CAP_BYTES" nfstrace -m stat -I "$CAP" -a "$NT_PLUGIN" --log=/dev/null
  if ((i == 1)); then  # once: they take long
    TSF=(-T fields -e frame.number -e rpc.xid -e rpc.msgtyp -e nfs.procedure_v3 -e nfs.fh.hash -e nfs.offset3
      -e nfs.count3 -e nfs.fattr3.size -e nfs.fattr3.used -e nfs.name)
    run tshark "$SLICE_BYTES" tshark -r "$SLICE" "${TSF[@]}"
    run tshark-startup "$(size_of "$TINY")" tshark -r "$TINY" "${TSF[@]}"
    if [[ $BIG4X == 1 ]]; then
      run replay-4x "$(size_of "$LARGE")" "$NFSF" replay "$LARGE" --policy "${LARGE%.pcap}.policy.yaml" --format json
    fi
  fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$TMP/nfstrace.out" "$OUT/nfstrace.out" 2>/dev/null || true

# Does the replay agree with what the generator wrote?
TRUTH_CHECK=$(python3 - "$OUT/replay.json" "$stem.truth.json" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
except Exception as e:
    print("no replay output (%s)" % e); sys.exit()
bad = []
if r.get("packets") != t["packets"]: bad.append("packets %s != %s" % (r.get("packets"), t["packets"]))
if r.get("calls") != t["rpc_calls"]: bad.append("calls %s != %s" % (r.get("calls"), t["rpc_calls"]))
rt = {x["name"]: x for x in r.get("trees", [])}
for x in t["trees"]:
    for k, v in x.items():
        if rt.get(x["name"], {}).get(k) != v:
            bad.append("%s.%s %s != %s" % (x["name"], k, rt.get(x["name"], {}).get(k), v))
errs = {k: v for k, v in r.get("errors", {}).items() if v}
if errs: bad.append("errors %s" % errs)
print("ok (packets, calls and every tree counter equal the generator's truth)" if not bad else "MISMATCH: " + "; ".join(bad[:8]))
EOF
)

python3 - "$OUT" "$CAP" "$SLICE" "$RUNS" "$LOAD_BEFORE" "$LOAD_AFTER" "$TRUTH_CHECK" <<EOF
import json, subprocess, sys, datetime, platform
out, cap, slice_, runs, lb, la, truth = sys.argv[1:8]
names = ["rawread", "rawread-mmap", "replay", "decode", "replay-quarter", "replay-4x", "nfstrace", "tshark", "tshark-startup"]
wall = {$(for k in "${!BEST_WALL[@]}"; do printf '"%s": %s, ' "$k" "${BEST_WALL[$k]}"; done)}
cpu = {$(for k in "${!BEST_CPU[@]}"; do printf '"%s": %s, ' "$k" "${BEST_CPU[$k]}"; done)}
rss = {$(for k in "${!MAX_RSS[@]}"; do printf '"%s": %s, ' "$k" "${MAX_RSS[$k]}"; done)}
nbytes = {$(for k in "${!BYTES[@]}"; do printf '"%s": %s, ' "$k" "${BYTES[$k]}"; done)}
cmds = {$(for k in "${!CMD[@]}"; do printf '"%s": %s, ' "$k" "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "${CMD[$k]}")"; done)}
def lscpu(field):
    for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if l.startswith(field + ":"): return l.split(":", 1)[1].strip()
machine = {"cpu": lscpu("Model name"), "cpus": lscpu("CPU(s)"), "kernel": platform.release(),
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "loadavg_before": lb, "loadavg_after": la}
rows = {}
for n in names:
    if n not in wall: continue
    rows[n] = {"bytes": nbytes[n], "wall_s": wall[n], "cpu_s": cpu[n],
               "mb_per_s_wall": nbytes[n] / 1e6 / wall[n] if wall[n] else None,
               "mb_per_s_cpu": nbytes[n] / 1e6 / cpu[n] if cpu[n] else None,
               "peak_rss_kib": rss[n], "command": cmds[n]}
# tshark without its fixed start-up cost (best case for tshark)
if "tshark" in rows and "tshark-startup" in rows:
    t, z = rows["tshark"], rows["tshark-startup"]
    w, c = t["wall_s"] - z["wall_s"], t["cpu_s"] - z["cpu_s"]
    rows["tshark-marginal"] = {"bytes": t["bytes"] - z["bytes"], "wall_s": w, "cpu_s": c,
        "mb_per_s_wall": (t["bytes"] - z["bytes"]) / 1e6 / w if w > 0 else None,
        "mb_per_s_cpu": (t["bytes"] - z["bytes"]) / 1e6 / c if c > 0 else None,
        "peak_rss_kib": t["peak_rss_kib"], "command": "tshark minus tshark-startup"}
def ratio(a, b, k):
    if a in rows and b in rows and rows[a][k] and rows[b][k]: return rows[a][k] / rows[b][k]
ratios = {}
for b in ["rawread", "rawread-mmap", "tshark", "tshark-marginal", "nfstrace"]:
    ratios["replay/" + b] = {"wall": ratio("replay", b, "mb_per_s_wall"), "cpu": ratio("replay", b, "mb_per_s_cpu")}
targets = {
    "replay >= 100x tshark": (ratios["replay/tshark"]["wall"] or 0) >= 100,
    "replay >= nfstrace": (ratios["replay/nfstrace"]["wall"] or 0) >= 1,
    "replay >= 0.5x rawread": (ratios["replay/rawread"]["wall"] or 0) >= 0.5,
    "replay peak RSS < 100 MB": rows.get("replay", {}).get("peak_rss_kib", 1e9) * 1024 < 100e6,
}
summary = {"capture": cap, "tshark_slice": slice_, "runs": int(runs), "machine": machine, "results": rows,
           "ratios": ratios, "targets_met": targets, "replay_vs_truth": truth}
json.dump(summary, open(out + "/bench-summary.json", "w"), indent=2)
with open(out + "/bench-summary.tsv", "w") as f:
    f.write("tool\tbytes\twall_s\tcpu_s\tmb_per_s_wall\tmb_per_s_cpu\tpeak_rss_kib\n")
    for n, r in rows.items():
        f.write("%s\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%d\n" % (n, r["bytes"], r["wall_s"], r["cpu_s"], r["mb_per_s_wall"] or 0, r["mb_per_s_cpu"] or 0, r["peak_rss_kib"]))
print("machine: %(cpu)s, %(cpus)s CPUs, kernel %(kernel)s, %(date)s, load %(loadavg_before)s -> %(loadavg_after)s" % machine)
print("capture: %s (%.1f MB); tshark on %s (%.1f MB); best of %s runs, page cache warm" % (cap, rows["replay"]["bytes"]/1e6 if "replay" in rows else 0, slice_, rows["tshark"]["bytes"]/1e6 if "tshark" in rows else 0, runs))
print()
print("| %-14s | %10s | %8s | %8s | %11s | %11s | %13s |" % ("tool", "MB read", "wall s", "cpu s", "MB/s (wall)", "MB/s (cpu)", "peak RSS MiB"))
print("|" + "|".join("-" * (w + 2) for w in (14, 10, 8, 8, 11, 11, 13)) + "|")
for n, r in rows.items():
    print("| %-14s | %10.1f | %8.2f | %8.2f | %11.1f | %11.1f | %13.1f |" % (n, r["bytes"]/1e6, r["wall_s"], r["cpu_s"], r["mb_per_s_wall"] or 0, r["mb_per_s_cpu"] or 0, r["peak_rss_kib"]/1024))
print()
for k, v in ratios.items():
    f = lambda x: "%.2fx" % x if x is not None else "n/a"
    print("%-22s wall %9s   cpu %9s" % (k, f(v["wall"]), f(v["cpu"])))
print()
for k, v in targets.items(): print("%-26s %s" % (k, "met" if v else "MISSED"))
print("replay vs generator truth: " + truth)
print("summary: %s/bench-summary.json, %s/bench-summary.tsv" % (out, out))
EOF
