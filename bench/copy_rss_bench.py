#!/usr/bin/env python3
"""The node's memory while it copies a large PostgreSQL table into Azure Blob
Storage (BENCHMARKS.md, "Copy: PostgreSQL to Azure Blob Storage", peak RSS).

    python3 bench/copy_rss_bench.py [BUILDDIR] [GB] [FORMAT]

A real PostgreSQL with a generated table of about GB gigabytes of CSV
(default 10; rows of an int8 and a 960-byte text that PostgreSQL keeps
uncompressed), a real shir-relay, a real shird (registered, node.copy_jobs =
1) and Azurite keeping its data on disk (a table this size does not fit its
memory store), all on loopback. One job copies the whole table as FORMAT
(DelimitedText by default, or Parquet) into one blob in 4 MiB blocks. shird's
VmRSS is sampled every 0.25 s and its rows read every second (`shirctl jobs
--json`); the report gives the largest VmRSS seen while the first 0.1 GB, 1 GB,
3 GB ... of the table (as CSV) were read, and shird's VmHWM (peak RSS) against
its idle RSS before the job.

It needs about 2.2 x GB of free disk (the table and Azurite's copy), checked
first; everything is removed at the end. Use a build without sanitizers
(../configure in build-bench).
"""
import json
import os
import shutil
import sys
import threading
import time

import benchlib
from benchlib import copy_node, run_job, status_kb

BUILD = benchlib.setup(sys.argv)
GB = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
FMT = sys.argv[3] if len(sys.argv) > 3 else "DelimitedText"

import shirtest  # noqa: E402
from azurite import Azurite  # noqa: E402
from stores import READER, Postgres  # noqa: E402

shirtest._tests.clear()

ROW_BYTES = 975  # a CSV row: the id, ',', 960 characters, '\n'
CHUNK = 500000  # rows a statement inserts (each well inside the harness's 60 s per statement)


def main():
    rows = int(GB * 1e9 / ROW_BYTES)
    free = shutil.disk_usage("/tmp").free
    if free < 2.2 * GB * 1e9 + 2e9:
        raise SystemExit("not enough disk in /tmp for %.1f GB: %.1f GB free, %.1f GB needed" %
                         (GB, free / 1e9, 2.2 * GB + 2))
    h = shirtest.Harness("rssbench")
    pg = Postgres()
    try:
        t0 = time.monotonic()
        pg.sql("CREATE UNLOGGED TABLE big (id int8, payload text); GRANT SELECT ON big TO %s;" % READER)
        for lo in range(0, rows, CHUNK):
            pg.sql("INSERT INTO big SELECT i, repeat(md5(i::text), 30) FROM generate_series(%d, %d) i;" % (
                lo, min(lo + CHUNK, rows) - 1))
        print("table: %d rows, %.1f GB on disk, generated in %.0f s" % (
            rows, int(pg.sql("SELECT pg_total_relation_size('big')").strip()) / 1e9, time.monotonic() - t0))
        az = Azurite(h, persist=True)
        az.mkcontainer("landing")
        r, n, snd, idle = copy_node(h)
        print("shird idle VmRSS %d KiB" % idle)
        samples = []  # (source bytes read: rows read x the CSV row's size, VmRSS KiB)
        state = {"read": 0, "stop": False}

        def sample_rss():
            while not state["stop"]:
                samples.append((state["read"], status_kb(n.p.pid, "VmRSS")))
                time.sleep(0.25)

        def poll_bytes():
            r2 = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs", "--json"], check=None)
            try:
                js = json.loads(r2.stdout)["jobs"]
                if js:
                    state["read"] = js[0]["rowsRead"] * ROW_BYTES
            except (ValueError, KeyError):
                pass

        th = threading.Thread(target=sample_rss, daemon=True)
        th.start()
        spec = {"source": {"linkedService": pg.linked_service(),
                           "dataset": {"type": "Table", "schema": "public", "table": "big"}},
                "sink": {"type": "AzureBlob", "accountUrl": az.url, "container": "landing",
                         "sasToken": az.sas("landing", "cw"), "path": "big"},
                "format": {"type": FMT}}
        try:
            dt, g = run_job(snd, spec, poll=1.0, on_poll=poll_bytes, rows=rows)
        finally:
            state["stop"] = True
            th.join()
        out = g["result"]["bytesWritten"]
        hwm = status_kb(n.p.pid, "VmHWM")
        print("copied %d rows, %d bytes (%s), %d blocks, in %.1f s: %.0f rows/s, %.1f MB/s" % (
            rows, out, FMT, g["result"]["files"][0]["blocks"], dt, rows / dt, out / dt / 1e6))
        print("%-22s %16s %16s" % ("table read up to", "max VmRSS KiB", "above idle KiB"))
        total = rows * ROW_BYTES
        edges = [e for e in (0.1e9, 1e9, 3e9, 10e9, 30e9) if e < total] + [total + 1]
        lo = 0
        for e in edges:
            rss = [s for b, s in samples if lo <= b < e]
            if rss:
                print("%-22s %16d %16d" % ("%.1f GB" % (min(e, total) / 1e9), max(rss), max(rss) - idle))
            lo = e
        print("shird VmHWM %d KiB: %d KiB (%.1f MiB) above its idle VmRSS" % (hwm, hwm - idle, (hwm - idle) / 1024))
        n.stop_clean()
    finally:
        h.close()
        pg.close()


if __name__ == "__main__":
    main()
