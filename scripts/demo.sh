#!/usr/bin/env bash
# Installs what is missing, builds, and replays the bundled lab capture with its example
# policy: tree vol-a goes over its limit partway through, and the later WRITEs to it are
# the ones live enforcement would refuse.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh >/dev/null
echo "+ nfsfence replay pcaps/lab-tcp-quota.pcap --policy pcaps/lab-tcp-quota.policy.yaml"
build/nfsfence replay pcaps/lab-tcp-quota.pcap --policy pcaps/lab-tcp-quota.policy.yaml
