#!/usr/bin/env bash
# Peak RSS and wall time of `nfsfence decode` over a flood of TCP SYNs (docs/benchmarks.md,
# "Hostile input"): N SYNs from distinct sources to port 2049, one flow each.
#   bench/syn_flood.sh [N]          N defaults to 1000000 (a 70 MB capture)
#   NFSFENCE=... OLD=... bench/syn_flood.sh   also measure an older binary, same capture
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
bin=${NFSFENCE:-build/nfsfence}
cap=$(mktemp --suffix=.pcap)
trap 'rm -f "$cap"' EXIT
python3 - "$cap" "$n" <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    eth = b'\x02' * 6 + b'\x04' * 6 + b'\x08\x00'
    for i in range(n):
        src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        tcp = struct.pack('>HHIIBBHHH', 1024 + i % 60000, 2049, (i * 7919) & 0xffffffff, 0, 5 << 4, 2, 65535, 0, 0)
        ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 40, 1, 0, 64, 6, 0, src, bytes([10, 9, 0, 2]))
        pkt = eth + ip + tcp
        f.write(struct.pack('<IIII', 1700000000, i, len(pkt), len(pkt)) + pkt)
PY
echo "$n SYNs, $(stat -c %s "$cap") bytes; $(nproc) CPUs, $(uname -r)"
for b in ${OLD:+"$OLD"} "$bin"; do
  /usr/bin/time -f "$b: %e s, peak RSS %M KB" "$b" decode "$cap" --stats 2>&1 >/dev/null |
    grep -E "peak RSS|flows_evicted"
done
