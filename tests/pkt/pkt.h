// The packet library (tests/pkt): frames and checksums, ONC RPC / NFSv3 messages on
// nfs/xdr_writer.h, and capture files. Linked by the unit tests, the BPF tests, the
// benchmarks and the fuzz seed corpus.
#pragma once

#include "pkt/bytes.h"
#include "pkt/net.h"
#include "pkt/pcap.h"
#include "pkt/rpc.h"
