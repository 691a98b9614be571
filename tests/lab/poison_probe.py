#!/usr/bin/env python3
"""What does a real NFSv3 server answer to a WRITE whose file handle was overwritten?

Design question for nfsfence's rewrite enforcement: if the agent overwrites the file handle
of a refused WRITE in place (same length, so no byte of the packet moves), which nfsstat3
does the server send back, and is any byte written?

Hand-built ONC RPC over UDP (no libraries): MOUNT3 MNT the export, CREATE a fresh target
file (size 0), then send WRITE3 calls of DATA bytes whose handle is
  ff      : the real handle's bytes all set to 0xff (same length)  <- the design's poison
  00      : all 0x00 (same length)
  flip0   : the real handle with its first byte inverted
  flipmid : the real handle with its middle byte inverted
  fliplast: the real handle with its last byte inverted
  short   : 0xff bytes, 8 bytes long
each against its own fresh target file, and after each one GETATTR the real handle: size
and used must still be 0. Finally one WRITE with a real handle as a control (must be
NFS3_OK and grow the file). Only `ff` is the design's poison; the others show which parts
of the handle the server actually checks.

Run inside the client namespace of the lab (tests/lab/lab.sh):
  ip netns exec CLI python3 tests/lab/poison_probe.py SERVER EXPORT [--nfsport 2049 --mountport 20048]
Prints one line per probe: `probe=ff fh_len=N status=NFS3ERR_... size_after=0 used_after=0`
and exits 0 when the all-0xff handle WRITE, and the WRITEs with the real handle but an all-0xff
offset (offset_ff) or count (count_ff), were refused and wrote nothing (those are the poisons
nfsfence uses, bpf/include/nfsf_split.h; stable_ff is reported only: ganesha 4.3 accepts it), 1 otherwise, 2 on
transport errors (a partially modified handle that still works is reported, not failed).
"""
import argparse
import os
import socket
import struct
import sys

NFS_PROG, NFS_VERS = 100003, 3
MNT_PROG, MNT_VERS = 100005, 3

NFSSTAT = {
    0: "NFS3_OK", 1: "NFS3ERR_PERM", 2: "NFS3ERR_NOENT", 5: "NFS3ERR_IO", 6: "NFS3ERR_NXIO",
    13: "NFS3ERR_ACCES", 17: "NFS3ERR_EXIST", 18: "NFS3ERR_XDEV", 19: "NFS3ERR_NODEV",
    20: "NFS3ERR_NOTDIR", 21: "NFS3ERR_ISDIR", 22: "NFS3ERR_INVAL", 27: "NFS3ERR_FBIG",
    28: "NFS3ERR_NOSPC", 30: "NFS3ERR_ROFS", 31: "NFS3ERR_MLINK", 63: "NFS3ERR_NAMETOOLONG",
    66: "NFS3ERR_NOTEMPTY", 69: "NFS3ERR_DQUOT", 70: "NFS3ERR_STALE", 71: "NFS3ERR_REMOTE",
    10001: "NFS3ERR_BADHANDLE", 10002: "NFS3ERR_NOT_SYNC", 10003: "NFS3ERR_BAD_COOKIE",
    10004: "NFS3ERR_NOTSUPP", 10005: "NFS3ERR_TOOSMALL", 10006: "NFS3ERR_SERVERFAULT",
    10007: "NFS3ERR_BADTYPE", 10008: "NFS3ERR_JUKEBOX",
}
ACCEPT_STAT = {1: "PROG_UNAVAIL", 2: "PROG_MISMATCH", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS",
               5: "SYSTEM_ERR"}


class ProbeError(Exception):
    pass


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def opaque(b):
    pad = (4 - len(b) % 4) % 4
    return u32(len(b)) + b + b"\0" * pad


def string(s):
    return opaque(s.encode())


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def u32(self):
        if self.p + 4 > len(self.d):
            raise ProbeError("short reply")
        v = struct.unpack_from(">I", self.d, self.p)[0]
        self.p += 4
        return v

    def u64(self):
        return (self.u32() << 32) | self.u32()

    def opaque(self):
        n = self.u32()
        b = self.d[self.p:self.p + n]
        self.p += n + (4 - n % 4) % 4
        return b


class Rpc:
    def __init__(self, server, port, timeout=3.0):
        self.addr = (server, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.xid = int.from_bytes(os.urandom(4), "big")

    def call(self, prog, vers, proc, args):
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        cred = u32(0) + string("nfsf-probe") + u32(0) + u32(0) + u32(0)  # AUTH_SYS root
        msg = (u32(self.xid) + u32(0) + u32(2) + u32(prog) + u32(vers) + u32(proc)
               + u32(1) + opaque(cred) + u32(0) + u32(0) + args)
        self.sock.sendto(msg, self.addr)
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                raise ProbeError(f"no reply to prog {prog} proc {proc}")
            r = Reader(data)
            if r.u32() != self.xid:
                continue
            if r.u32() != 1:
                raise ProbeError("not a reply")
            if r.u32() != 0:
                raise ProbeError("RPC MSG_DENIED")
            r.u32()  # verifier flavor
            r.opaque()
            st = r.u32()
            if st != 0:
                raise ProbeError(f"RPC accept_stat {ACCEPT_STAT.get(st, st)}")
            return r


def mnt(rpc, export):
    r = rpc.call(MNT_PROG, MNT_VERS, 1, string(export))
    st = r.u32()
    if st != 0:
        raise ProbeError(f"MNT {export}: mountstat3 {st}")
    return r.opaque()


def sattr_mode_size0():
    # mode=0644, uid/gid unset, size=0, atime/mtime DONT_CHANGE
    return u32(1) + u32(0o644) + u32(0) + u32(0) + u32(1) + u64(0) + u32(0) + u32(0)


def create(rpc, dirfh, name):
    r = rpc.call(NFS_PROG, NFS_VERS, 8, opaque(dirfh) + string(name) + u32(0) + sattr_mode_size0())
    st = r.u32()
    if st != 0:
        raise ProbeError(f"CREATE {name}: {NFSSTAT.get(st, st)}")
    if not r.u32():
        raise ProbeError("CREATE returned no handle")
    return r.opaque()


def getattr_size_used(rpc, fh):
    r = rpc.call(NFS_PROG, NFS_VERS, 1, opaque(fh))
    st = r.u32()
    if st != 0:
        raise ProbeError(f"GETATTR: {NFSSTAT.get(st, st)}")
    for _ in range(5):  # type mode nlink uid gid
        r.u32()
    return r.u64(), r.u64()


def write(rpc, fh, data, stable=2, offset=0, count=None):
    count = len(data) if count is None else count
    r = rpc.call(NFS_PROG, NFS_VERS, 7, opaque(fh) + u64(offset) + u32(count) + u32(stable) + opaque(data))
    st = r.u32()
    return NFSSTAT.get(st, f"NFS3ERR_{st}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("server")
    ap.add_argument("export")
    ap.add_argument("--nfsport", type=int, default=2049)
    ap.add_argument("--mountport", type=int, default=20048)
    ap.add_argument("--name", default="poison-target")
    ap.add_argument("--bytes", type=int, default=4096)
    a = ap.parse_args()
    try:
        root = mnt(Rpc(a.server, a.mountport), a.export)
        nfs = Rpc(a.server, a.nfsport)
        data = bytes((i * 7 + 1) & 0xFF for i in range(a.bytes))

        def flip(fh, i):
            return fh[:i] + bytes([fh[i] ^ 0xFF]) + fh[i + 1:]

        probes = [
            ("ff", lambda fh: b"\xff" * len(fh)),
            ("00", lambda fh: b"\x00" * len(fh)),
            ("flip0", lambda fh: flip(fh, 0)),
            ("flipmid", lambda fh: flip(fh, len(fh) // 2)),
            ("fliplast", lambda fh: flip(fh, len(fh) - 1)),
            ("short", lambda fh: b"\xff" * 8),
            # the real handle; the 8-byte offset all 0xff (the fallback poison when a WRITE head
            # is cut by a segment boundary after the handle began: see nfsf_heads.h)
            ("offset_ff", None),
            # the real handle; count, or stable, all 0xff (when the cut falls after the offset)
            ("count_ff", None),
            ("stable_ff", None),
        ]
        ff_clean = offset_clean = count_clean = False
        for name, poison in probes:
            fh = create(nfs, root, f"{a.name}-{name}")
            bad = poison(fh) if poison else fh
            status = write(nfs, bad, data, offset=0xFFFFFFFFFFFFFFFF if name == "offset_ff" else 0,
                           count=0xFFFFFFFF if name == "count_ff" else None,
                           stable=0xFFFFFFFF if name == "stable_ff" else 2)
            size, used = getattr_size_used(nfs, fh)
            ok = size == 0 and used == 0 and status != "NFS3_OK"
            if name == "ff":
                ff_clean = ok
            if name == "offset_ff":
                offset_clean = ok
            if name == "count_ff":
                count_clean = ok
            print(f"probe={name} fh_len={len(bad)} fh={bad.hex()} real={fh.hex()} status={status}"
                  f" size_after={size} used_after={used} {'unchanged' if ok else 'WRITTEN'}")
        fh = create(nfs, root, f"{a.name}-control")
        status = write(nfs, fh, data)
        size, used = getattr_size_used(nfs, fh)
        print(f"probe=control fh_len={len(fh)} status={status} size_after={size} used_after={used}")
        if status != "NFS3_OK" or size != a.bytes:
            print("control WRITE with the real handle did not work", file=sys.stderr)
            return 2
        return 0 if ff_clean and offset_clean and count_clean else 1
    except (ProbeError, OSError) as e:
        print(f"poison_probe: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
