#!/usr/bin/env python3
"""Copy-job benchmark into S3-compatible storage (BENCHMARKS.md, issue 17: "CSV folder to S3").

    python3 bench/s3_bench.py [BUILDDIR] [ROWS]

A real shir-relay, a real shird (registered, node.copy_jobs = 1) and an
S3-compatible server (npm @20minutes/s3rver, data on disk in the run's
temporary folder), all on loopback. A delimited-text file of ROWS rows
(default 2,000,000, about 80 MB) in an allowed folder is copied by a job into
an object as CSV (8 MiB parts, 4 in flight), timed from submission to the
relay answering Succeeded (polled every 20 ms). The baseline, in the same run:
the very bytes the job wrote (fetched back first, not timed) uploaded by
Amazon's SDK, @aws-sdk/lib-storage's Upload (8 MiB parts, queueSize 4), timed
in its own process around the upload alone. The figure is MB/s of the object's
bytes (of the CSV before gzip) and the ratio job / SDK. Then the same copy
with gzip (level 6), whose object is smaller: its MB/s are of the CSV it
compressed. Last, the same job into a local folder (no upload at all): what
reading and converting the rows cost on their own.

Use a build without sanitizers (../configure in build-bench).
"""
import os
import sys

import benchlib

BUILD = benchlib.setup(sys.argv)
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000000

import shirtest  # noqa: E402
from s3server import AKID, SECRET, S3Server  # noqa: E402

shirtest._tests.clear()


def main():
    h = shirtest.Harness("s3bench")
    try:
        data = h.path("data")
        os.makedirs(data)
        with open(os.path.join(data, "orders.csv"), "w") as f:
            f.write("id;customer;amount;note\n")
            for i in range(ROWS):
                f.write('%d;customer-%d;%d.%02d;"n; %d"\n' % (i, i % 100000, i % 9973, i % 100, i))
        out = h.path("out")
        os.makedirs(out)
        s3 = S3Server(h)
        r, n, snd, _ = benchlib.copy_node(h, allowed=data, extra="writable_folders = %s\n[node]\ncopy_jobs = 1\n" % out)
        h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "credentials", "set", "s3-secret"],
              input=SECRET + "\n", check=0)
        results = []
        for label, fmt in (("shird job -> CSV", {"type": "DelimitedText"}),
                           ("shird job -> CSV gzip", {"type": "DelimitedText", "compressionCodec": "gzip"})):
            key = "o.csv.gz" if "compressionCodec" in fmt else "o.csv"
            spec = {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                               "dataset": {"type": "DelimitedText", "path": "orders.csv", "columnDelimiter": ";"}},
                    "sink": {"type": "S3", "serviceUrl": s3.url, "bucket": "landing", "path": key,
                             "accessKeyId": AKID,
                             "secretAccessKey": {"type": "CredentialReference", "name": "s3-secret"},
                             "partSizeMB": 8, "maxConcurrentConnections": 4},
                    "format": fmt}
            dt, g = benchlib.run_job(snd, spec, rows=ROWS)
            results.append((label, dt, g["result"].get("uncompressedBytes", g["result"]["bytesWritten"]),
                            g["result"]["bytesWritten"]))
            if key == "o.csv":
                # the baseline: the same bytes, uploaded by the SDK
                local = h.path("o.csv")
                s3.get("landing", "o.csv", local)
                ms = __import__("json").loads(s3.client("put", "landing", "sdk.csv", local, "8", "4",
                                                        timeout=900).stdout)["ms"]
                results.insert(0, ("SDK lib-storage Upload", ms / 1000.0, os.path.getsize(local),
                                   os.path.getsize(local)))
        # the same job into a local folder: reading and converting alone, no upload
        spec["sink"] = {"type": "FileSystem", "folder": out, "path": "o.csv"}
        spec["format"] = {"type": "DelimitedText"}
        dt, g = benchlib.run_job(snd, spec, rows=ROWS)
        results.append(("shird job -> local file", dt, g["result"]["bytesWritten"], g["result"]["bytesWritten"]))
        base = results[0][2] / results[0][1]
        print("rows=%d" % ROWS)
        print("%-26s %9s %12s %10s %9s %14s" % ("upload", "seconds", "rows/s", "MB/s (CSV)", "vs SDK",
                                                 "object bytes"))
        for name, dt, csvb, outb in results:
            print("%-26s %9.3f %12.0f %10.1f %9.2f %14d" % (name, dt, ROWS / dt, csvb / dt / 1e6,
                                                          (csvb / dt) / base, outb))
        n.stop_clean()
    finally:
        h.close(keep=bool(os.environ.get("KEEP")))
        benchlib.cleanup()


if __name__ == "__main__":
    main()
