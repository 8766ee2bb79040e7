"""Integration: copy jobs into S3-compatible storage, and gzip for the text
formats. A real shir-relay, a real shird registered with the node key, and an
S3-compatible server (npm @20minutes/s3rver, which checks SigV4 signatures)
on loopback: the node leases the job, writes the object with PutObject or a
multipart upload (CreateMultipartUpload, UploadPart with Content-MD5,
CompleteMultipartUpload), every request signed with SigV4, and the test
reads the object back with Amazon's SDK (npm @aws-sdk/client-s3), every row
compared (Parquet by npm hyparquet, gzip by Python's gzip). A wrong secret and
a missing bucket fail the job with a precise error and leave no object; a
source that breaks after parts were sent makes the node abort the upload; the
storage stopped mid-upload is retried; shird killed with -9 mid-upload leaves
nothing visible and the next attempt commits every row exactly once; the
upload through squid with Basic auth to an https server whose name only
squid resolves."""
import base64
import csv
import gzip
import hashlib
import io
import json
import os
import time

from azurite import Azurite
from authnode import Node
from relaytest import Relay, decode_key
from s3server import AKID, SECRET, S3Server
from shirtest import check, main, make_ca, make_server_cert, test, wait_until
from squid import Squid
import shirtest
from test_copy_node import restart, setup, wait_final
from test_parquet import read_back

shirtest._tests.clear()  # the modules above are imported for their helpers, not their tests


def s3_job(data, s3, sink, fmt="DelimitedText", path="orders.csv", extra_fmt=None):
    s = {"type": "S3", "serviceUrl": s3.url, "region": "us-east-1", "bucket": "landing",
         "accessKeyId": AKID, "secretAccessKey": {"type": "CredentialReference", "name": "s3-secret"}}
    s.update(sink)
    f = {"type": fmt}
    f.update(extra_fmt or {})
    return {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                       "dataset": {"type": "DelimitedText", "path": path, "columnDelimiter": ";"}},
            "sink": s, "format": f}


def want_rows(n):
    return [{"id": str(i), "customer": "cust-%d" % (i % 97), "note": 'say "hi"; %d' % i} for i in range(n)]


def parse(body, fmt):
    if fmt == "DelimitedText":
        return list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    return [json.loads(line) for line in body.decode().splitlines()]


def store_secret(h, n, secret=SECRET):
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "credentials", "set", "s3-secret"],
          input=secret + "\n", check=0)


def check_object(h, s3, res, key, rows, fmt, gz=False):
    """reads the object back with Amazon's SDK: the bytes, the ETag, every row"""
    local = h.path("got-" + key.replace("/", "_"))
    props = s3.get("landing", key, local)
    with open(local, "rb") as f:
        body = f.read()
    f0 = res["files"][0]
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    check(props["size"] == len(body) == res["bytesWritten"] == f0["bytes"], "sizes: %r %r", props, res)
    if f0["parts"] == 0:  # one PutObject: its Content-MD5 is the object's
        check(md5 == f0["contentMd5"], "Content-MD5: bytes %s, result %s", md5, f0["contentMd5"])
    else:
        check("contentMd5" not in f0, "a multipart upload's MD5 is per part: %r", f0)
    check(props["etag"] == f0["etag"] and props["etag"], "ETag: service %s, result %s", props["etag"], f0["etag"])
    check(hashlib.sha256(body).hexdigest() == f0["sha256"], "sha256")
    check(props["encoding"] is None, "no Content-Encoding: the object is a .gz file: %r", props)
    if gz:
        check(body[:2] == b"\x1f\x8b", "a gzip stream")
        body = gzip.decompress(body)
        check(res["uncompressedBytes"] == len(body) and res["compressionCodec"] == "gzip", "result: %r", res)
    if fmt == "Parquet":
        got = read_back(h, local)["rows"]
    else:
        got = parse(body, fmt)
    want = want_rows(rows)
    check(got == want, "%s: %d rows, first differing: %r", fmt, len(got),
          next(((a, b) for a, b in zip(got, want) if a != b), None))
    return props


@test
def test_s3_csv_jsonl_parquet(h):
    """a CSV folder to S3 as CSV and JSON Lines (multipart: several 5 MiB parts) and Parquet (one PutObject), read back with Amazon's SDK"""
    rows = 200000
    r, n, snd, data, out, _ = setup(h, rows=rows)
    s3 = S3Server(h)
    store_secret(h, n)
    for fmt, sink, parts in (("DelimitedText", {"path": "orders/2026-12-03/", "partSizeMB": 5}, 2),
                             ("JsonLines", {"path": "orders.jsonl", "partSizeMB": 5,
                                            "maxConcurrentConnections": 3}, 3),
                             ("Parquet", {"path": "orders.parquet"}, 0)):
        st, j = snd.call("POST", "", s3_job(data, s3, sink, fmt))
        check(st == 201, "submit: %d %r", st, j)
        g = wait_final(snd, j["id"], timeout=120)
        check(g["state"] == "Succeeded" and g["dequeueCount"] == 1, "%s: %r", fmt, g)
        res = g["result"]
        key = sink["path"] + j["id"] + ".csv" if sink["path"].endswith("/") else sink["path"]
        check(res["rowsWritten"] == rows and res["files"][0]["path"] == key and
              res["files"][0]["url"] == "%s/landing/%s" % (s3.url, key), "result: %r", res)
        check(res["files"][0]["parts"] == parts, "%s: %d parts, want %d", fmt, res["files"][0]["parts"], parts)
        check_object(h, s3, res, key, rows, fmt)
    keys = s3.ls("landing")
    check(len(keys) == 3 and "orders.jsonl" in keys and "orders.parquet" in keys, "objects: %r", keys)
    log = n.p.log()
    check("event=job.s3_committed" in log and "event=s3.upload_created" in log, "the node's log")
    check(SECRET not in log and "Signature=" not in log, "no secret in the node's log")
    check(os.listdir(out) == [], "nothing written locally")
    n.stop_clean()


@test
def test_gzip_blob_and_s3(h):
    """format.compressionCodec gzip: CSV and JSON Lines streamed through zlib into Azurite and S3, gunzipped by the test"""
    rows = 30000
    r, n, snd, data, out, _ = setup(h, rows=rows)
    s3 = S3Server(h)
    az = Azurite(h)
    az.mkcontainer("landing")
    store_secret(h, n)
    # S3, CSV, default level, a folder: the name ends in .csv.gz
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "gz/"}, "DelimitedText",
                                        extra_fmt={"compressionCodec": "gzip"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded", "S3 gzip: %r", g)
    key = "gz/%s.csv.gz" % j["id"]
    check(g["result"]["files"][0]["path"] == key, "name: %r", g["result"])
    check_object(h, s3, g["result"], key, rows, "DelimitedText", gz=True)
    check(g["result"]["bytesWritten"] * 3 < g["result"]["uncompressedBytes"], "compressed: %r", g["result"])
    # S3, JSON Lines, Fastest
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "o.jsonl.gz"}, "JsonLines",
                                        extra_fmt={"compressionCodec": "gzip", "compressionLevel": "Fastest"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded", "S3 gzip jsonl: %r", g)
    check_object(h, s3, g["result"], "o.jsonl.gz", rows, "JsonLines", gz=True)
    # Azure Blob, CSV and JSON Lines, in 64 KiB blocks
    for fmt, name in (("DelimitedText", "b.csv.gz"), ("JsonLines", "b.jsonl.gz")):
        spec = s3_job(data, s3, {}, fmt, extra_fmt={"compressionCodec": "gzip"})
        spec["sink"] = {"type": "AzureBlob", "sasUrl": "%s/landing?%s" % (az.url, az.sas("landing", "cw")),
                        "path": name, "blockSizeMB": 0.0625}
        st, j = snd.call("POST", "", spec)
        g = wait_final(snd, j["id"])
        check(g["state"] == "Succeeded", "blob gzip: %r", g)
        local = h.path("blob-" + name)
        props = az.get("landing", name, local)
        with open(local, "rb") as f:
            body = f.read()
        check(props["md5"] == g["result"]["files"][0]["contentMd5"] and props["size"] == g["result"]["bytesWritten"],
              "blob: %r %r", props, g["result"])
        got = parse(gzip.decompress(body), fmt)
        check(got == want_rows(rows), "%s: %d rows", name, len(got))
    # a local folder sink: the file is the gzip stream, committed by rename as any file
    spec = s3_job(data, s3, {}, "JsonLines", extra_fmt={"compressionCodec": "gzip"})
    spec["sink"] = {"type": "FileSystem", "folder": out, "path": "local.jsonl.gz"}
    st, j = snd.call("POST", "", spec)
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded", "local gzip: %r", g)
    with open(os.path.join(out, "local.jsonl.gz"), "rb") as f:
        body = f.read()
    check(len(body) == g["result"]["bytesWritten"] and
          hashlib.sha256(body).hexdigest() == g["result"]["files"][0]["sha256"], "local: %r", g["result"])
    check(parse(gzip.decompress(body), "JsonLines") == want_rows(rows), "local gzip rows")
    # a codec the node does not write is refused, naming the field
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "x.bz2"}, "DelimitedText",
                                        extra_fmt={"compressionCodec": "bzip2"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Failed" and "compressionCodec" in g["error"]["message"], "bzip2: %r", g)
    n.stop_clean()


@test
def test_s3_refused(h):
    """a wrong secret, a missing bucket, no credential, plain http to a remote host: precise failures, no object"""
    r, n, snd, data, out, extra = setup(h, rows=50)
    s3 = S3Server(h, buckets=("landing",))
    store_secret(h, n, "not-the-secret")
    cases = [
        ({"path": "a.csv"}, "AuthenticationFailed", "secret access key does not belong"),
        ({"path": "b.csv", "secretAccessKey": SECRET, "accessKeyId": "NOBODY"}, "AuthenticationFailed",
         "access key id is not known"),
        ({"path": "c.csv", "secretAccessKey": SECRET, "bucket": "missing"}, "NotFound", "bucket not found"),
        ({"path": "d.csv", "secretAccessKey": None}, "InvalidRequest", "needs accessKeyId and secretAccessKey"),
        ({"path": "e.csv", "serviceUrl": "http://s3.example.invalid"}, "InvalidRequest", "must be https://"),
        ({"path": "f.csv", "secretAccessKey": {"type": "CredentialReference", "name": "nope"}},
         "CredentialNotFound", "nope"),
    ]
    for sink, code, words in cases:
        spec = s3_job(data, s3, sink)
        if sink.get("secretAccessKey", "") is None:
            del spec["sink"]["secretAccessKey"]
        st, j = snd.call("POST", "", spec)
        check(st == 201, "submit: %d %r", st, j)
        g = wait_final(snd, j["id"])
        check(g["state"] == "Failed" and g["error"]["code"] == code and words in g["error"]["message"],
              "want %s (%s): %r", code, words, g)
        check(g["dequeueCount"] == 1, "a refused credential is final: %r", g)
    check(s3.ls("landing") == [], "no object: %r", s3.ls("landing"))
    # the sender never sees an inline secret
    check(SECRET not in json.dumps(snd.call("GET", "")[1]), "secrets redacted")
    n.stop_clean()
    # local machine access off: no upload to this machine's own addresses (the server is on loopback)
    n = Node(h, allowed=data, lma=False, extra=extra)
    n.p.wait_log(r"event=copy\.started jobs=")
    store_secret(h, n)
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "l.csv"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Failed" and g["error"]["code"] == "LocalMachineAccessDenied", "local: %r", g)
    check(s3.ls("landing") == [], "no object on this machine: %r", s3.ls("landing"))
    n.stop_clean()


@test
def test_s3_abort_on_failure(h):
    """the source breaks after two parts were uploaded: the job fails, the node sends AbortMultipartUpload, no object"""
    rows = 300000
    r, n, snd, data, out, extra = setup(h, rows=rows)
    with open(os.path.join(data, "orders.csv"), "a") as f:
        f.write('1;"an unterminated quote\n')  # the reader fails at the end of the file
    s3 = S3Server(h)
    store_secret(h, n)
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "broken.csv", "partSizeMB": 5}))
    g = wait_final(snd, j["id"], timeout=120)
    check(g["state"] == "Failed" and g["error"]["code"] == "StoreError" and
          "not valid delimited text" in g["error"]["message"], "a broken source: %r", g)
    m = n.p.wait_log(r'event=s3\.upload_created url=\S+ upload=(\S+)', after_mark=False)
    upload = m.group(1).strip('"')
    # this server does not implement AbortMultipartUpload: it answers the DELETE 405 and logs it
    # (its log line's start, the method, is cut); the node says the abort failed, and why
    m = n.p.wait_log(r"event=s3\.abort_failed .*upload=\"?%s.*" % upload, after_mark=False)
    check("AbortMultipartUpload of" in m.group(0) and "405" in m.group(0), "the node's abort: %s", m.group(0))
    s3.p.wait_log(r"broken\.csv\?uploadId=%s 405" % upload, after_mark=False)
    check(not s3.exists("landing", "broken.csv") and s3.ls("landing") == [], "no object: %r", s3.ls("landing"))
    n.stop_clean()


@test
def test_s3_storage_down_mid_upload(h):
    """the storage stopped after the upload began: the reader waits, the node retries with back-off and completes once it is back"""
    rows = 1000000
    r, n, snd, data, out, extra = setup(h, rows=rows, copy_jobs=1)
    s3 = S3Server(h)
    store_secret(h, n)
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "late.csv", "partSizeMB": 5,
                                                    "maxConcurrentConnections": 1}))
    n.p.wait_log(r"event=s3\.upload_created", timeout=60)
    s3.p.stop()
    n.p.wait_log(r"event=s3\.retry what=UploadPart status=0 .*attempt=2", timeout=60)

    # backpressure: while the one part in flight cannot go, the reader waits with one more part
    # filled (two 5 MiB buffers and the 64 KiB output buffer), far from the end of the 38 MB file
    def progress():
        js = json.loads(h.run([h.bin("shirctl"), "--socket", n.sock, "jobs", "--json"], check=0).stdout)["jobs"]
        return js[0]["bytesWritten"], js[0]["rowsRead"]
    first = progress()
    time.sleep(1.5)
    second = progress()
    check(first == second and second[0] > 5 * 1048576 and second[1] < rows // 2,
          "the reader is paused while the upload is behind: %r then %r", first, second)
    s3.start()
    g = wait_final(snd, j["id"], timeout=90)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 1, "after the retries: %r", g)
    local = h.path("late.csv")
    s3.get("landing", "late.csv", local)
    with open(local, newline="") as f:
        ids = [int(row["id"]) for row in csv.DictReader(f)]
    check(ids == list(range(rows)), "%d rows, %d distinct", len(ids), len(set(ids)))
    n.stop_clean()


@test
def test_s3_node_killed_mid_upload(h):
    """shird killed with -9 between parts: no object; the lease expires and the next attempt commits every row once"""
    rows = 600000
    r, n, snd, data, out, extra = setup(h, rows=rows, copy_jobs=1)
    s3 = S3Server(h)
    store_secret(h, n)
    st, j = snd.call("POST", "", s3_job(data, s3, {"path": "big.csv", "partSizeMB": 5,
                                                    "maxConcurrentConnections": 1}))
    n.p.wait_log(r"event=s3\.upload_created", timeout=60)
    n = restart(h, n, extra, data, kill=True)
    check(not s3.exists("landing", "big.csv"), "no object from the killed attempt")
    g = wait_final(snd, j["id"], timeout=150)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 2, "after the restart: %r", g)
    local = h.path("big.csv")
    s3.get("landing", "big.csv", local)
    with open(local, newline="") as f:
        ids = [int(row["id"]) for row in csv.DictReader(f)]
    check(ids == list(range(rows)), "%d rows, %d distinct", len(ids), len(set(ids)))
    check(g["result"]["files"][0]["parts"] >= 4, "a multipart upload: %r", g["result"])
    n.stop_clean()


@test
def test_s3_through_squid(h):
    """the parts go through squid with Basic auth to an https server named s3.shir.test (path style), which only squid resolves; TLS verified with node.copy_ca_file"""
    # path style: this server checks a virtual-hosted request's SigV4 signature against a path
    # with the bucket in it (SigV2's rule), not the path sent, so only path style can pass here
    host = "s3.shir.test"
    sq = Squid(h, auth="basic", user="svc", password="right-pw", hosts={host: "127.0.0.1"})
    ca_key, ca = make_ca(h, "store", "Test Storage CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:%s,IP:127.0.0.1" % host, cn=host)
    s3 = S3Server(h, tls=(crt, key, ca), endpoint="shir.test")
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "sales-ir").stdout.split() if w.startswith("IR@v1@")]
    r.keys["sales-ir"] = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    data = h.path("data")
    os.makedirs(data)
    with open(os.path.join(data, "orders.csv"), "w") as f:
        f.write("id;customer;note\n")
        for i in range(3000):
            f.write('%d;cust-%d;"say ""hi""; %d"\n' % (i, i % 97, i))
    pw = h.write("proxy.pw", "right-pw\n", mode=0o600)
    extra = ("[node]\ncopy_jobs = 1\ncopy_ca_file = %s\n[proxy]\nmode = custom\naddress = 127.0.0.1\n"
             "port = %d\nauth = basic\nuser = svc\npassword_file = %s\n" % (ca, sq.port, pw))
    n = Node(h, allowed=data, extra=extra)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-", "auth-node"],
          input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")
    n = restart(h, n, extra, data)
    store_secret(h, n)
    from test_relay_jobs import Client
    snd = Client(r, hc="sales-ir")
    spec = s3_job(data, s3, {"serviceUrl": "https://%s:%d" % (host, s3.port), "path": "via-squid.parquet",
                             "forcePathStyle": True}, "Parquet")
    st, j = snd.call("POST", "", spec)
    g = wait_final(snd, j["id"], timeout=90)
    check(g["state"] == "Succeeded", "through squid: %r", g)
    check(g["result"]["files"][0]["url"] == "https://%s:%d/landing/via-squid.parquet" % (host, s3.port), "%r",
          g["result"])
    check_object(h, s3, g["result"], "via-squid.parquet", 3000, "Parquet")
    n.stop_clean()
    wait_until(lambda: "CONNECT %s:%d svc" % (host, s3.port) in sq.log(), 20,
               "squid to log the node's tunnel to %s:\n%s" % (host, sq.log()))
    # without the CA the node refuses the certificate: verification is on
    n = Node(h, allowed=data, extra=extra.replace("copy_ca_file = %s\n" % ca, ""))
    n.p.wait_log(r"event=copy\.started jobs=")
    spec["sink"]["path"] = "unverified.csv"
    st, j = snd.call("POST", "", spec)
    g = wait_final(snd, j["id"], timeout=90)
    check(g["state"] == "Failed" and g["error"]["code"] == "AuthenticationFailed" and
          "certificate" in g["error"]["message"], "unverified TLS: %r", g)
    check("unverified.csv" not in s3.ls("landing"), "no object without a verified certificate")
    n.stop_clean()


if __name__ == "__main__":
    main()
