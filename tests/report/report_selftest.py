#!/usr/bin/python3
"""ctest report_selftest: bench/report's own code, on the rows in tests/report/fixture/.

The fixture rows are made up (every one carries "fixture": true) and only ever rendered into a
temporary directory. Checks: the comparison table has one row per expected id in order with
every column; each CSV parses and carries the fixture's own numbers; gnuplot wrote non-empty,
deterministic SVGs; a missing field, a missing row and a producer's absent rows file behave as
bench/report_rows.md says; --check-repro accepts a run against itself and names a ratio out of
its spread; fixture rows are refused for docs/.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(REPO, "bench", "report")
FIXTURE = os.path.join(HERE, "fixture")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("CI", None)
    e.update(env or {})
    return subprocess.run([REPORT] + list(args), capture_output=True, text=True, env=e)


def load(name):
    with open(os.path.join(FIXTURE, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def copy_fixture(dst, edit=None):
    os.makedirs(dst)
    for name in os.listdir(FIXTURE):
        rows = load(name)
        if edit:
            rows = edit(name, rows)
        if rows is None:
            continue
        with open(os.path.join(dst, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def one_line_error(r, *words):
    lines = r.stderr.strip().splitlines()
    return r.returncode == 1 and len(lines) == 1 and all(w in lines[0] for w in words)


def main():
    if shutil.which("gnuplot") is None:
        print("SKIP: gnuplot not installed (scripts/deps.sh installs gnuplot-nox)")
        return 77
    tmp = tempfile.mkdtemp(prefix="report-selftest.")
    try:
        return selftest(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def selftest(tmp):
    vm, xdp, cost_rows = load("vm.jsonl"), load("xdp.jsonl"), load("cost.jsonl")
    approaches = {r["id"]: r for r in vm + xdp}

    r = run("--help")
    check(r.returncode == 0 and "--quick" in r.stdout and "--check-repro" in r.stdout, "--help exits 0 and teaches")

    out = os.path.join(tmp, "a")
    r = run("--render-only", "--rows", FIXTURE, "--out", out)
    check(r.returncode == 0, "render of the fixture exits 0 (got %d: %s)" % (r.returncode, r.stderr.strip()))
    check(re.search(r"^\[1/3\] ", r.stdout, re.M) is not None and "summary" in r.stdout, "progress lines and a summary")
    md = open(os.path.join(out, "report.md")).read()

    # the comparison table: its header, then one row per id, in the order the report fixes
    lines = md.splitlines()
    head = lines.index(next(l for l in lines if l.startswith("| approach |")))
    cols = [c.strip() for c in lines[head].strip("|").split("|")]
    for want in ("bytes past the limit", "the application sees", "reads / deletes / other trees", "cost",
                 "MB/s with / without", "enforcement latency", "deploy"):
        check(any(c.startswith(want) for c in cols), "comparison table has a column %r" % want)
    body = []
    for l in lines[head + 2:]:
        if not l.startswith("|"):
            break
        body.append([c.strip() for c in l.strip("|").split("|")])
    ids = [re.search(r"\[([a-z0-9_]+)\]", row[-1]).group(1) for row in body]
    check(sorted(ids) == sorted(approaches), "one table row per fixture row (%s)" % ids)
    check(ids[0] == "tc_rewrite" and ids[-1] == "base_override_return", "nfsfence's approaches first, baselines last")
    check(all(len(row) == len(cols) for row in body), "every table row has every column")
    for row in body:
        a = approaches[re.search(r"\[([a-z0-9_]+)\]", row[-1]).group(1)]
        check(row[0] == a["approach"], "%s: the approach's name" % a["id"])
        if a["loaded"]:
            check(row[2] == "%s at %s" % (a["app_error"], a["error_at"]), "%s: the error and where" % a["id"])
        else:
            check(a["load_error"] in row[2], "%s: the load error" % a["id"])
        check(("reads ok" in row[3]) == a["reads_ok"], "%s: reads" % a["id"])
        check(a["deploy"] == row[7], "%s: deploy" % a["id"])
        check(a["command"] in md, "%s: its command is stated" % a["id"])
    check("FIXTURE ROWS" in md, "a report of fixture rows says so")
    check(re.search(r"Machine: .+, \d+ CPUs", md) and os.uname().release in md, "machine, nproc and kernel stated")
    guest = {a["kernel"] for a in approaches.values() if a["where"] == "qemu-guest"}
    check(all(k in md for k in guest), "the guest kernel from the rows is stated")

    # the CSVs parse and carry the fixture's numbers
    def csv_rows(name):
        with open(os.path.join(out, "report", name), newline="") as f:
            return list(csv.DictReader(f))

    ac = {r["id"]: r for r in csv_rows("approaches.csv")}
    check(set(ac) == set(approaches), "approaches.csv: one line per row")
    for rid, a in approaches.items():
        check(int(ac[rid]["bytes_past_limit"]) == a["bytes_past_limit"], "approaches.csv %s bytes_past_limit" % rid)
        if a.get("cost_ns") is not None and a.get("null_ns") is not None:
            c = a["cost_ns"]["median"] if isinstance(a["cost_ns"], dict) else a["cost_ns"]
            n = a["null_ns"]["median"] if isinstance(a["null_ns"], dict) else a["null_ns"]
            check(abs(float(ac[rid]["cost_over_null"]) - c / n) < 1e-4 * (c / n), "approaches.csv %s ratio" % rid)
        else:
            check(ac[rid]["cost_over_null"] == "", "approaches.csv %s: no ratio without both costs" % rid)
        w = a.get("mbs_with")
        if isinstance(w, dict):
            check(float(ac[rid]["mbs_with_min"]) == w["min"] and float(ac[rid]["mbs_with_max"]) == w["max"],
                  "approaches.csv %s: the spread of mbs_with" % rid)
    cc = {r["id"]: r for r in csv_rows("cost.csv")}
    for c in (x for x in cost_rows if x["kind"] == "cost"):
        check(c["id"] in cc and float(cc[c["id"]]["ratio_tc_median"]) == c["ratio_tc"]["median"],
              "cost.csv: %s ratio median" % c["id"])
        check(c["class"] in md, "cost table names the class %r" % c["class"])
    rc = {r["id"]: r for r in csv_rows("replay.csv")}
    for c in (x for x in cost_rows if x["kind"] == "replay"):
        check(c["id"] in rc and float(rc[c["id"]]["mbs_max"]) == c["mbs"]["max"], "replay.csv: %s" % c["id"])
    ds = csv_rows("disk_samples.csv")
    check(len(ds) == sum(len(a.get("samples") or []) for a in approaches.values()), "disk_samples.csv: every sample")

    # plots: non-empty SVGs, the same bytes when rendered again
    out2 = os.path.join(tmp, "b")
    run("--render-only", "--rows", FIXTURE, "--out", out2)
    for name in ("throughput.svg", "disk_over_time.svg", "cost_per_class.svg", "replay.svg"):
        p = os.path.join(out, "report", name)
        check(os.path.exists(p) and os.path.getsize(p) > 1000 and "<svg" in open(p).read(), "%s non-empty" % name)
        check(open(p, "rb").read() == open(os.path.join(out2, "report", name), "rb").read(), "%s deterministic" % name)
    svg = open(os.path.join(out, "report", "disk_over_time.svg")).read()
    check(all(rid in svg for rid, a in approaches.items() if a.get("samples")), "one line per approach with samples")

    # a missing required field: one line naming the row and the field
    victim = vm[1]["id"]
    bad = os.path.join(tmp, "bad-field")
    copy_fixture(bad, lambda n, rows: [{k: v for k, v in r.items() if not (r["id"] == victim and k == "app_error")}
                                       for r in rows])
    r = run("--render-only", "--rows", bad, "--out", os.path.join(tmp, "o1"))
    check(one_line_error(r, victim, "app_error"), "missing field: one line naming row and field (%r)" % r.stderr)
    # an optional number left out without a reason in notes
    bad = os.path.join(tmp, "bad-notes")
    copy_fixture(bad, lambda n, rows: [dict(r, latency_ms=None, notes="") if r["id"] == victim else r for r in rows])
    r = run("--render-only", "--rows", bad, "--out", os.path.join(tmp, "o2"))
    check(one_line_error(r, victim, "notes", "latency_ms"), "null without a reason: one line (%r)" % r.stderr)
    # a missing expected row
    gone = xdp[-1]["id"]
    bad = os.path.join(tmp, "bad-row")
    copy_fixture(bad, lambda n, rows: [r for r in rows if r.get("id") != gone])
    r = run("--render-only", "--rows", bad, "--out", os.path.join(tmp, "o3"))
    check(one_line_error(r, gone, "missing"), "missing row: one line naming it (%r)" % r.stderr)
    # bytes_past_limit that is not disk - limit
    bad = os.path.join(tmp, "bad-sum")
    copy_fixture(bad, lambda n, rows: [dict(r, bytes_past_limit=r["bytes_past_limit"] + 1) if r["id"] == victim
                                       else r for r in rows])
    r = run("--render-only", "--rows", bad, "--out", os.path.join(tmp, "o4"))
    check(one_line_error(r, victim, "bytes_past_limit"), "inconsistent bytes_past_limit (%r)" % r.stderr)

    # a producer ctest skipped: named with ctest's reason; an error with CI=true
    skipdir = os.path.join(tmp, "skip")
    copy_fixture(skipdir, lambda n, rows: None if n == "xdp.jsonl" else rows)
    build = os.path.join(tmp, "build")
    os.makedirs(os.path.join(build, "Testing", "Temporary"))
    reason = "lab needs root (network namespaces, ganesha)"
    with open(os.path.join(build, "Testing", "Temporary", "LastTest.log"), "w") as f:
        f.write("Start testing\n----\n1/1 Testing: lab_xdp_e2e\n1/1 Test: lab_xdp_e2e\nOutput:\n----\n"
                "SKIP: %s\n<end of output>\nTest time =   0.01 sec\n" % reason)
    o5 = os.path.join(tmp, "o5")
    r = run("--render-only", "--rows", skipdir, "--build", build, "--out", o5)
    check(r.returncode == 0, "absent rows file outside CI: exit 0 (%r)" % r.stderr)
    md5 = open(os.path.join(o5, "report.md")).read() if r.returncode == 0 else ""
    check(reason in md5 and "lab_xdp_e2e" in md5, "the report names the skipped producer and ctest's reason")
    body5 = [l for l in md5.splitlines() if l.startswith("| `") and "not measured" in l]
    check(len(body5) == len(xdp), "the skipped producer's rows stay in the table as not measured")
    r = run("--render-only", "--rows", skipdir, "--build", build, "--out", o5, env={"CI": "true"})
    check(one_line_error(r, "xdp.jsonl", "CI=true", reason), "absent rows file with CI=true: one-line error (%r)"
          % r.stderr)

    # the reproducibility check
    r = run("--check-repro", out, out2)
    check(r.returncode == 0 and "reproduced" in r.stdout, "--check-repro of a run against itself (%r)" % r.stdout)
    cpath = os.path.join(out2, "report", "cost.csv")
    with open(cpath, newline="") as f:
        rows = list(csv.reader(f))
    h = rows[0]
    i, lo, hi = h.index("ratio_tc_median"), h.index("ratio_tc_min"), h.index("ratio_tc_max")
    a_lo, a_hi = float(rows[1][lo]), float(rows[1][hi])
    rows[1][i] = "%.6g" % (a_hi + 3 * max(a_hi - a_lo, 0.1 * a_hi))  # far outside A's widened spread
    with open(cpath, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    r = run("--check-repro", os.path.join(out, "report", "cost.csv"), cpath)
    check(r.returncode == 1 and rows[1][0] in r.stdout and "ratio_tc" in r.stdout,
          "--check-repro names the ratio out of its spread (%r)" % r.stdout)
    with open(cpath, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows[:-1])
    r = run("--check-repro", os.path.join(out, "report", "cost.csv"), cpath)
    check(r.returncode == 1 and "only in A" in r.stdout, "--check-repro names a row missing in B")

    # fixture rows are never written into the repository's docs/
    r = run("--render-only", "--rows", FIXTURE, "--out", os.path.join(REPO, "docs"))
    check(one_line_error(r, "fixture", "docs"), "fixture rows refused for docs/ (%r)" % r.stderr)

    if failures:
        print("report_selftest: %d checks failed" % len(failures))
        return 1
    print("report_selftest: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
