#!/usr/bin/env python3
"""Copy-job benchmark (BENCHMARKS.md, "Copy: shird's runner, local folder").

    python3 bench/copy_bench.py [BUILDDIR] [ROWS]

A real shir-relay and a real shird (registered, node.copy_jobs = 1) on
loopback. A delimited-text file of ROWS rows (default 1,000,000) in an
allowed folder is copied by a job into a writable folder as CSV, JSON Lines
and Parquet; each is timed from submission (POST /{hc}/v1/jobs with the
service key) to the relay answering Succeeded (polled every 20 ms). In the
same run, two baselines copy the same file: `cp` (bytes only: the floor) and
Python's csv module re-writing it with another delimiter (a scripted copy).
shird's peak RSS (VmHWM) is read before and after the copies.

Use a build without sanitizers (../configure in build-bench).
"""
import csv
import os
import subprocess
import sys
import time

import benchlib
from benchlib import copy_node, run_job, status_kb

BUILD = benchlib.setup(sys.argv)
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000

import shirtest  # noqa: E402

shirtest._tests.clear()


def main():
    h = shirtest.Harness("copybench")
    try:
        data, out = h.path("data"), h.path("out")
        os.makedirs(data)
        os.makedirs(out)
        src = os.path.join(data, "orders.csv")
        with open(src, "w") as f:
            f.write("id;customer;amount;placed;note\n")
            for i in range(ROWS):
                f.write("%d;customer-%d;%d.%02d;2026-%02d-%02d %02d:%02d:00;\"n; %d\"\n" % (
                    i, i % 100000, i % 9973, i % 100, 1 + i % 12, 1 + i % 28, i % 24, i % 60, i))
        size = os.path.getsize(src)
        extra = "writable_folders = %s\n[node]\ncopy_jobs = 1\n" % out
        r, n, snd, idle_rss = copy_node(h, allowed=data, extra=extra)
        print("rows=%d source_bytes=%d shird_idle_rss_kb=%d" % (ROWS, size, idle_rss))
        results = []

        t0 = time.monotonic()
        subprocess.run(["cp", src, os.path.join(h.tmp, "cp.csv")], check=True)
        results.append(("cp (bytes only)", time.monotonic() - t0, os.path.getsize(os.path.join(h.tmp, "cp.csv"))))
        t0 = time.monotonic()
        with open(src, newline="") as fi, open(os.path.join(h.tmp, "py.csv"), "w", newline="") as fo:
            w = csv.writer(fo)
            for row in csv.reader(fi, delimiter=";"):
                w.writerow(row)
        results.append(("python csv module", time.monotonic() - t0, os.path.getsize(os.path.join(h.tmp, "py.csv"))))
        for fmt, name in (("DelimitedText", "o.csv"), ("JsonLines", "o.jsonl"), ("Parquet", "o.parquet")):
            spec = {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                               "dataset": {"type": "DelimitedText", "path": "orders.csv", "columnDelimiter": ";"}},
                    "sink": {"type": "FileSystem", "folder": out, "path": name}, "format": {"type": fmt}}
            dt, g = run_job(snd, spec, rows=ROWS)
            results.append(("shird job -> " + fmt, dt, os.path.getsize(os.path.join(out, name))))
        hwm = status_kb(n.p.pid, "VmHWM")
        base = results[0][1]
        print("%-28s %9s %12s %10s %8s %14s" % ("copy", "seconds", "rows/s", "MB/s", "vs cp", "output bytes"))
        for name, dt, outb in results:
            print("%-28s %9.3f %12.0f %10.1f %8.2f %14d" % (name, dt, ROWS / dt, size / dt / 1e6, base / dt, outb))
        print("shird_peak_rss_kb=%d (idle rss %d, +%d)" % (hwm, idle_rss, hwm - idle_rss))
        n.stop_clean()
    finally:
        h.close()


if __name__ == "__main__":
    main()
