#!/usr/bin/env python3
"""ctest dist_kubernetes_manifest: dist/kubernetes/daemonset.yaml parses (python3-yaml) and
has the structure dist/README.md documents: a DaemonSet on the host network whose agent
container adds exactly the documented capabilities (and drops ALL, not privileged), mounts
the bpffs and the policy directory, and runs `attach IFACE --policy-dir /etc/nfsfence/policies`.
Exit: 0 pass, 1 fail, 77 skip (no yaml module: apt-get install python3-yaml)."""
import os
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml not installed (apt-get install python3-yaml)")
    sys.exit(77)

SRC = os.environ.get("NFSF_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PATH = os.path.join(SRC, "dist", "kubernetes", "daemonset.yaml")
CAPS = {"BPF", "PERFMON", "NET_ADMIN", "NET_BIND_SERVICE"}  # dist/README.md, tests/lab/caps_probe.sh

fails = 0


def check(what, cond):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    fails += 0 if cond else 1


with open(PATH) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
check("one YAML document", len(docs) == 1)
ds = docs[0]
check("apps/v1 DaemonSet", ds.get("apiVersion") == "apps/v1" and ds.get("kind") == "DaemonSet")
spec = ds["spec"]
tmpl = spec["template"]
check("the selector matches the pod's labels",
      all(tmpl["metadata"]["labels"].get(k) == v for k, v in spec["selector"]["matchLabels"].items()))
pod = tmpl["spec"]
check("hostNetwork: true", pod.get("hostNetwork") is True)
check("dnsPolicy ClusterFirstWithHostNet", pod.get("dnsPolicy") == "ClusterFirstWithHostNet")
check("one container", len(pod["containers"]) == 1)
c = pod["containers"][0]
sc = c["securityContext"]
check("not privileged, no privilege escalation", sc.get("privileged") is False and sc.get("allowPrivilegeEscalation") is False)
check("capabilities: drop ALL", sc["capabilities"].get("drop") == ["ALL"])
added = sc["capabilities"].get("add", [])
check("capabilities: add exactly %s (got %s)" % (sorted(CAPS), added), set(added) == CAPS and len(added) == len(CAPS))
argv = c.get("command", []) + c.get("args", [])
check("runs nfsfence attach IFACE (%s)" % " ".join(argv), argv[:3] == ["/usr/local/bin/nfsfence", "attach", "$(NFSF_IFACE)"])
check("--policy-dir /etc/nfsfence/policies",
      "--policy-dir" in argv and argv[argv.index("--policy-dir") + 1:][:1] == ["/etc/nfsfence/policies"])
check("no --policy FILE beside --policy-dir", "--policy" not in argv and "-p" not in argv)
env = {e["name"] for e in c.get("env", [])}
check("NFSF_IFACE and NODE_IP are set for $(...) in args", {"NFSF_IFACE", "NODE_IP"} <= env)
vols = {v["name"]: v for v in pod["volumes"]}
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}


def mounted(path):
    m = mounts.get(path)
    return vols.get(m["name"]) if m else None


bpffs = mounted("/sys/fs/bpf")
check("/sys/fs/bpf is the host's (hostPath /sys/fs/bpf, Directory)",
      bool(bpffs) and bpffs.get("hostPath", {}).get("path") == "/sys/fs/bpf" and
      bpffs["hostPath"].get("type") == "Directory")
pol = mounted("/etc/nfsfence/policies")
check("/etc/nfsfence/policies is mounted read-only from a volume",
      bool(pol) and mounts["/etc/nfsfence/policies"].get("readOnly") is True and
      ("configMap" in pol or "hostPath" in pol))
state = mounted("/run/nfsfence")
check("/run/nfsfence (state, event log) is the host's", bool(state) and state.get("hostPath", {}).get("path") == "/run/nfsfence")
check("every mount names a volume", all(m["name"] in vols for m in c["volumeMounts"]))
if fails:
    print("FAIL: %d checks" % fails)
    sys.exit(1)
print("PASS")
