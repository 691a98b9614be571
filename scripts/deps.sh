#!/usr/bin/env bash
# Installs the Debian 12 packages nfsfence needs to build, test and run its lab (idempotent:
# only calls apt-get when something is missing). Run as root.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git clang-format  # clang-format: scripts/format.sh --check
  clang llvm libclang-rt-14-dev         # BPF objects, libFuzzer + sanitizers
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libpcap-dev libtirpc-dev rpcsvc-proto  # captures, XDR + rpcgen
  libarchive-dev                         # compressed captures (gz, bz2, xz, zst), in-process
  libboost-program-options-dev libgtest-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev     # policy files, JSON output
  tshark tcpdump jq curl bzip2 gzip xz-utils zstd lz4  # oracle tests (and compressed test captures), lab captures
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils libnfs-dev iproute2  # the lab
  nfstrace hyperfine                     # benchmarks
  gnuplot-nox                            # bench/report: the report's plots (SVG)
  prometheus-cpp-dev prometheus        # --metrics (prometheus-cpp), and the Prometheus server its test scrapes with
  libcurl4-openssl-dev etcd-server etcd-client openssl  # cluster: etcd's JSON gateway over libcurl (TLS client certs), the lab's etcd, its test CA
  systemd python3-yaml util-linux        # dist/: systemd-analyze verify, the manifest's check; setpriv (lab_agent_capabilities)
  qemu-system-x86 busybox-static cpio nfs-common python3  # tests/vm: Debian 12's 6.1 kernel, its NFS client (mount.nfs)
)
missing=()
for p in "${PKGS[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "scripts/deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
