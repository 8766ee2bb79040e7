#!/usr/bin/env python3
"""Copy-job benchmark into Azure Blob Storage (BENCHMARKS.md, "Copy: PostgreSQL to Azurite").

    python3 bench/blob_bench.py [BUILDDIR] [ROWS]

A real PostgreSQL, a real shir-relay, a real shird (registered,
node.copy_jobs = 1) and Azurite (npm azurite, in memory), all on loopback. A
table of ROWS rows (default 1,000,000) is copied by a job into a blob as CSV
and as Parquet, each timed from submission to the relay answering Succeeded
(polled every 20 ms). The baseline, in the same run: `psql -c "\\copy (SELECT
...) TO STDOUT WITH CSV HEADER"` into a file, then that file uploaded with
Microsoft's SDK (@azure/storage-blob uploadFile, 4 MiB blocks, 4 at once);
its time is the sum of both. shird's peak RSS (VmHWM) is read before and
after the copies.

With BENCH_PERF=PREFIX set, `perf record -g -p <shird>` runs during each
job and writes PREFIX.DelimitedText and PREFIX.Parquet (perf report -i ...).
Each job's line also gives writer_wait_ms: the time the job waited for a free
uploader (from shird's log).

Use a build without sanitizers (../configure in build-bench).
"""
import os
import subprocess
import sys
import time

import benchlib
from benchlib import copy_node, run_job, status_kb

BUILD = benchlib.setup(sys.argv)
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000

import shirtest  # noqa: E402
from azurite import Azurite  # noqa: E402
from stores import READER, READER_PASSWORD, Postgres  # noqa: E402

shirtest._tests.clear()

TABLE = """
CREATE TABLE bench_orders (id int8 PRIMARY KEY, customer text, amount numeric(12,2), qty int4,
  placed timestamptz, note text);
INSERT INTO bench_orders SELECT i, 'customer-' || (i %% 100000), (i %% 9973) + (i %% 100) / 100.0, i %% 1000,
  timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', 'n; ' || i FROM generate_series(0, %d) i;
GRANT SELECT ON bench_orders TO %s;
"""


def main():
    h = shirtest.Harness("blobbench")
    pg = Postgres()
    try:
        pg.sql(TABLE % (ROWS - 1, READER))
        az = Azurite(h)
        az.mkcontainer("landing")
        r, n, snd, idle_rss = copy_node(h)
        sas = az.sas("landing", "cw")
        print("rows=%d shird_idle_rss_kb=%d" % (ROWS, idle_rss))
        results = []
        # the baseline: psql \copy to a file, then the SDK uploads it
        csvf = h.path("baseline.csv")
        t0 = time.monotonic()
        with open(csvf, "w") as f:
            subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", READER,
                            "-d", pg.database, "-c", "\\copy (SELECT * FROM bench_orders) TO STDOUT WITH CSV HEADER"],
                           stdout=f, check=True, env=dict(os.environ, PGPASSWORD=READER_PASSWORD))
        t_psql = time.monotonic() - t0
        t1 = time.monotonic()
        az.client("put", "landing", "baseline.csv", csvf, timeout=600)
        t_up = time.monotonic() - t1
        results.append(("psql \\copy + SDK upload", t_psql + t_up, os.path.getsize(csvf)))
        print("baseline: psql %.3f s, upload %.3f s" % (t_psql, t_up))
        for fmt, name in (("DelimitedText", "o.csv"), ("Parquet", "o.parquet")):
            spec = {"source": {"linkedService": pg.linked_service(),
                               "dataset": {"type": "Table", "schema": "public", "table": "bench_orders"}},
                    "sink": {"type": "AzureBlob", "accountUrl": az.url, "container": "landing",
                             "sasToken": sas, "path": name},
                    "format": {"type": fmt}}
            perf = None
            if os.environ.get("BENCH_PERF"):	# profile shird during this job: perf record -g
                perf = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["BENCH_PERF"] + "." + fmt,
                                         "-p", str(n.p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            try:
                dt, g = run_job(snd, spec, rows=ROWS)
            finally:
                if perf is not None:
                    perf.send_signal(2)
                    perf.wait()
            results.append(("shird job -> " + fmt, dt, g["result"]["bytesWritten"]))
            for line in n.p.log().splitlines():	# where the job waited for its uploaders
                if "event=job.blob_committed" in line and g["id"] in line:
                    print(fmt, "blocks=%s" % line.split("blocks=")[1].split()[0],
                          "writer_wait_ms=%s" % line.split("writer_wait_ms=")[1].split()[0])
        hwm = status_kb(n.p.pid, "VmHWM")
        base = results[0][1]
        print("%-28s %9s %12s %10s %8s %14s" % ("copy", "seconds", "rows/s", "MB/s out", "vs base", "blob bytes"))
        for name, dt, outb in results:
            print("%-28s %9.3f %12.0f %10.1f %8.2f %14d" % (name, dt, ROWS / dt, outb / dt / 1e6, base / dt, outb))
        print("shird_peak_rss_kb=%d (idle rss %d, +%d)" % (hwm, idle_rss, hwm - idle_rss))
        n.stop_clean()
    finally:
        h.close()
        pg.close()


if __name__ == "__main__":
    main()
