"""Integration: copy jobs into Azure Blob Storage. A real shir-relay, a real
shird registered with the node key, and Azurite (Microsoft's storage
emulator, npm azurite) on loopback: the node leases the job, writes a block
blob with Put Block and Put Block List (a SAS URL, or the account's shared
key from the node's credential store), and the test reads the blob back with
Microsoft's SDK (npm @azure/storage-blob), every row compared (Parquet by npm
hyparquet). A SAS that does not allow writing, a wrong key and a missing
container fail the job with a precise error and leave no blob; shird killed
with -9 mid-upload leaves nothing visible, and the job's next attempt commits
every row exactly once."""
import base64
import csv
import hashlib
import json
import os
import uuid

from azurite import ACCOUNT, KEY, Azurite
from authnode import Node
from relaytest import Relay, decode_key
from shirtest import check, main, make_ca, make_server_cert, test, wait_until
from squid import Squid
import shirtest
from stores import READER, READER_PASSWORD, shared_pg
from test_copy_node import restart, setup, wait_final
from test_parquet import read_back, same

shirtest._tests.clear()  # the modules above are imported for their helpers, not their tests


def blob_job(data, az, sink, fmt="DelimitedText"):
    s = {"type": "AzureBlob", "accountUrl": az.url, "container": "landing"}
    s.update(sink)
    return {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                       "dataset": {"type": "DelimitedText", "path": "orders.csv", "columnDelimiter": ";"}},
            "sink": s, "format": {"type": fmt}}


def want_rows(n):
    return [{"id": str(i), "customer": "cust-%d" % (i % 97), "note": 'say "hi"; %d' % i} for i in range(n)]


def check_blob(h, az, res, name, rows, fmt):
    """reads the blob back with the SDK: the bytes, the MD5 the service keeps, every row"""
    local = h.path("got-" + name.replace("/", "_"))
    props = az.get("landing", name, local)
    with open(local, "rb") as f:
        body = f.read()
    f0 = res["files"][0]
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    check(props["size"] == len(body) == res["bytesWritten"] == f0["bytes"], "sizes: %r %r", props, res)
    check(props["md5"] == md5 == f0["contentMd5"], "Content-MD5: service %s, bytes %s, result %s",
          props["md5"], md5, f0["contentMd5"])
    check(hashlib.sha256(body).hexdigest() == f0["sha256"], "sha256")
    check(props["committed"] == f0["blocks"] and props["uncommitted"] == 0, "blocks: %r %r", props, f0)
    if fmt == "DelimitedText":
        with open(local, newline="") as f:
            got = list(csv.DictReader(f))
    else:
        pq = read_back(h, local)
        got = pq["rows"]
    want = want_rows(rows)
    check(got == want, "%s: %d rows, first differing: %r", fmt, len(got),
          next(((a, b) for a, b in zip(got, want) if a != b), None))
    return props


@test
def test_blob_sas_and_shared_key(h):
    """CSV with a container SAS URL and Parquet with the shared key from the credential store: read back with the SDK, every row"""
    rows = 20000
    r, n, snd, data, out, _ = setup(h, rows=rows)
    az = Azurite(h)
    az.mkcontainer("landing")
    sas_url = "%s/landing?%s" % (az.url, az.sas("landing", "cw"))
    # CSV, SAS URL inline, 64 KiB blocks: several blocks
    st, j = snd.call("POST", "", blob_job(data, az, {"sasUrl": sas_url, "path": "orders/2026-12-03/",
                                                       "blockSizeMB": 0.0625}))
    check(st == 201, "submit: %d %r", st, j)
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded", "SAS: %r", g)
    res = g["result"]
    name = "orders/2026-12-03/%s.csv" % j["id"]
    check(res["rowsWritten"] == rows and res["files"][0]["path"] == name and
          res["files"][0]["url"] == "%s/landing/%s" % (az.url, name), "result: %r", res)
    props = check_blob(h, az, res, name, rows, "DelimitedText")
    check(props["committed"] >= 8, "the blob was sent in several 64 KiB blocks: %r", props)
    # the job as the sender sees it never shows the SAS
    check("sig=" not in json.dumps(snd.call("GET", "/" + j["id"])[1]), "the SAS is redacted")
    # Parquet with the account key stored on the node, by reference
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "credentials", "set", "landing-key"],
          input=KEY + "\n", check=0)
    st, j = snd.call("POST", "", blob_job(data, az, {
        "accountKey": {"type": "CredentialReference", "name": "landing-key"},
        "accountName": ACCOUNT, "path": "orders.parquet"}, fmt="Parquet"))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded", "shared key: %r", g)
    check_blob(h, az, g["result"], "orders.parquet", rows, "Parquet")
    check(sorted(az.ls("landing")) == sorted([name, "orders.parquet"]), "blobs: %r", az.ls("landing"))
    check(os.listdir(out) == [], "nothing written locally")
    log = n.p.log()
    check("event=job.blob_committed" in log and KEY not in log and "sig=" not in log, "no secret in the node's log")
    n.stop_clean()


@test
def test_blob_refused(h):
    """a read-only SAS, a SAS signed with the wrong key, a wrong shared key, a missing container: precise failures, no blob"""
    r, n, snd, data, out, extra = setup(h, rows=50)
    az = Azurite(h)
    az.mkcontainer("landing")
    wrong_key = base64.b64encode(b"k" * 64).decode()
    cases = [
        ({"sasUrl": "%s/landing?%s" % (az.url, az.sas("landing", "r")), "path": "a.csv"},
         "AuthenticationFailed", "the SAS does not allow write"),
        ({"sasToken": az.sas("landing", "cw", key=wrong_key), "path": "b.csv"},
         "AuthenticationFailed", "the SAS does not allow write"),
        ({"accountKey": wrong_key, "accountName": ACCOUNT, "path": "c.csv"},
         "AuthenticationFailed", "refused the shared key"),
        ({"accountKey": KEY, "accountName": ACCOUNT, "container": "missing", "path": "d.csv"},
         "NotFound", "container not found"),
        ({"path": "e.csv"}, "InvalidRequest", "needs one credential"),
        ({"sasToken": "sv=x", "accountUrl": "http://example.invalid/acct", "path": "f.csv"},
         "InvalidRequest", "must be https://"),
    ]
    for sink, code, words in cases:
        st, j = snd.call("POST", "", blob_job(data, az, sink))
        check(st == 201, "submit: %d %r", st, j)
        g = wait_final(snd, j["id"])
        check(g["state"] == "Failed" and g["error"]["code"] == code and words in g["error"]["message"],
              "want %s (%s): %r", code, words, g)
        check(g["dequeueCount"] == 1, "a refused credential is final: %r", g)
    check(az.ls("landing") == [], "no blob, committed or not: %r", az.ls("landing"))
    n.stop_clean()
    # local machine access off: no upload to this machine's own addresses (Azurite is on loopback)
    n = Node(h, allowed=data, lma=False, extra=extra)
    n.p.wait_log(r"event=copy\.started jobs=")
    st, j = snd.call("POST", "", blob_job(data, az, {"sasToken": az.sas("landing", "cw"), "path": "l.csv"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Failed" and g["error"]["code"] == "LocalMachineAccessDenied", "local: %r", g)
    check(az.ls("landing") == [], "no blob on this machine: %r", az.ls("landing"))
    n.stop_clean()


@test
def test_blob_node_killed_mid_upload(h):
    """shird killed with -9 between blocks: nothing visible; the next attempt reads the uncommitted block list, does not send again the blocks the service holds with the same bytes, sends the changed one, and commits every row once"""
    rows = 400000
    r, n, snd, data, out, extra = setup(h, rows=rows, copy_jobs=1)
    az = Azurite(h)
    az.mkcontainer("landing")
    # read permission too: a new attempt lists the uncommitted blocks (Get Block List)
    st, j = snd.call("POST", "", blob_job(data, az, {"sasToken": az.sas("landing", "rcw"), "path": "big.csv",
                                                       "blockSizeMB": 0.0625}))

    def uploading():
        r2 = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs", "--json"], check=0)
        js = json.loads(r2.stdout)["jobs"]
        return js if js and js[0]["bytesWritten"] > 1024 * 1024 else None
    wait_until(uploading, 60, "the copy to upload a few blocks")
    n = restart(h, n, extra, data, kill=True)
    # blocks were put, none committed: the SDK sees an uncommitted blob at most, never a readable one
    got = h.path("early.csv")
    early = az.client("get", "landing", "big.csv", got, check=None)
    check(early.returncode != 0, "no readable blob from the killed attempt: %s", early.stdout)
    held = json.loads(az.client("uncommitted", "landing", "big.csv").stdout)["uncommitted"]
    check(held >= 8, "the killed attempt left uncommitted blocks: %d", held)
    # before the lease expires, the source changes in its first block, keeping its length: that
    # block's bytes (and so its id) differ, every later block is the same
    src = os.path.join(data, "orders.csv")
    with open(src, "r+b") as f:
        head = f.read(200)
        f.seek(0)
        f.write(head.replace(b'say ""hi""; 0', b'say ""HI""; 0', 1))
    g = wait_final(snd, j["id"], timeout=150)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 2, "after the restart: %r", g)
    f0 = g["result"]["files"][0]
    check(f0["blocksSkipped"] == held - 1 and f0["blocks"] > held,
          "the new attempt skipped the %d blocks held but the changed one: %r", held - 1, f0)
    n.p.wait_log(r"event=blob\.resume .*uncommitted_blocks=%d" % held, after_mark=False, timeout=1)
    local = h.path("big-got.csv")
    props = az.get("landing", "big.csv", local)
    with open(local, newline="") as f:
        got_rows = list(csv.DictReader(f))
    ids = [int(row["id"]) for row in got_rows]
    check(ids == list(range(rows)), "%d rows, %d distinct", len(ids), len(set(ids)))
    check(got_rows[0]["note"] == 'say "HI"; 0' and got_rows[1]["note"] == 'say "hi"; 1',
          "the committed blob has the new attempt's bytes: %r", got_rows[:2])
    check(props["uncommitted"] == 0 and props["md5"] == f0["contentMd5"], "%r", props)
    n.stop_clean()


@test
def test_blob_retries_while_storage_is_down(h):
    """storage that refuses connections: the node retries with back-off within the attempt and commits when it is back"""
    r, n, snd, data, out, _ = setup(h, rows=100)
    az = Azurite(h, persist=True)  # the container survives the restart, as a real account's does
    az.mkcontainer("landing")
    sas = az.sas("landing", "cw")
    az.p.stop()
    st, j = snd.call("POST", "", blob_job(data, az, {"sasToken": sas, "path": "late.csv"}))
    n.p.wait_log(r"event=blob\.retry what=\"Put Block\" status=0 .*attempt=2", timeout=30)
    az.start()
    g = wait_final(snd, j["id"], timeout=60)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 1, "after the retries: %r", g)
    check_blob(h, az, g["result"], "late.csv", 100, "DelimitedText")
    n.stop_clean()


def through_squid(h):
    """squid with Basic auth, an https Azurite named devstoreaccount1.blob.test (a name only squid
    resolves), a relay and a registered node whose proxy is squid and whose copy_ca_file is the CA"""
    sq = Squid(h, auth="basic", user="svc", password="right-pw", hosts={"devstoreaccount1.blob.test": "127.0.0.1"})
    ca_key, ca = make_ca(h, "store", "Test Storage CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:devstoreaccount1.blob.test,IP:127.0.0.1", cn="devstoreaccount1.blob.test")
    az = Azurite(h, tls=(crt, key, ca))
    az.mkcontainer("landing")
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
    from test_relay_jobs import Client
    return sq, az, ca, Client(r, hc="sales-ir"), n, data, extra


@test
def test_blob_through_squid(h):
    """the blocks go through squid with Basic auth to an https Azurite whose name only squid resolves (virtual-host style, as on Azure); TLS verified with node.copy_ca_file"""
    sq, az, ca, snd, n, data, extra = through_squid(h)
    spec = blob_job(data, az, {"accountUrl": "https://devstoreaccount1.blob.test:%d" % az.port,
                               "sasToken": az.sas("landing", "cw"), "path": "via-squid.parquet",
                               "blockSizeMB": 0.0625}, fmt="Parquet")
    st, j = snd.call("POST", "", spec)
    g = wait_final(snd, j["id"], timeout=90)
    check(g["state"] == "Succeeded", "through squid: %r", g)
    check_blob(h, az, g["result"], "via-squid.parquet", 3000, "Parquet")
    n.stop_clean()
    wait_until(lambda: "CONNECT devstoreaccount1.blob.test:%d svc" % az.port in sq.log(), 20,
               "squid to log the node's tunnel to devstoreaccount1.blob.test:\n" + sq.log())
    # without the CA the node refuses the certificate: verification is on
    n = Node(h, allowed=data, extra=extra.replace("copy_ca_file = %s\n" % ca, ""))
    n.p.wait_log(r"event=copy\.started jobs=")
    spec["sink"]["path"] = "unverified.csv"
    st, j = snd.call("POST", "", spec)
    g = wait_final(snd, j["id"], timeout=90)
    check(g["state"] == "Failed" and "certificate" in g["error"]["message"], "unverified TLS: %r", g)
    check("unverified.csv" not in az.ls("landing"), "no blob without a verified certificate")
    n.stop_clean()


PG_ROWS = 100000
PG_TABLE = """
DROP TABLE IF EXISTS copy_orders;
CREATE TABLE copy_orders (id int8 PRIMARY KEY, qty int4 NOT NULL, small int2, price numeric(12,2),
  ratio float8, quarter real, ok bool, at timestamptz, local_ts timestamp, name text, raw bytea, u uuid);
INSERT INTO copy_orders SELECT i, i * 3, (i %% 30000)::int2, (i * 1.25)::numeric(12,2), i / 7.0::float8,
  (i / 4.0)::real, i %% 2 = 0, timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second',
  timestamp '2020-01-01 00:00:00' + i * interval '1 minute',
  CASE WHEN i %% 10 = 0 THEN NULL ELSE 'name-' || i || ' ; "q"' END, decode(md5(i::text), 'hex'),
  md5(i::text)::uuid FROM generate_series(0, %d) i;
GRANT SELECT ON copy_orders TO %s;
"""


def pg_expected(i):
    md = hashlib.md5(str(i).encode())
    return {"id": str(i), "qty": {"num": i * 3}, "small": {"num": i % 30000},
            "price": "%d.%02d" % divmod(i * 125, 100), "ratio": {"num": i / 7.0}, "quarter": {"num": i / 4.0},
            "ok": i % 2 == 0, "at": {"micros": str((1577836800 + i) * 1000000)},
            "local_ts": {"micros": str((1577836800 + 60 * i) * 1000000)},
            "name": None if i % 10 == 0 else 'name-%d ; "q"' % i,
            "raw": {"b64": base64.b64encode(md.digest()).decode()}, "u": str(uuid.UUID(md.hexdigest()))}


def pg_job(pg, az, dataset, sink, fmt):
    ls = pg.linked_service(password={"type": "CredentialReference", "name": "pg-reader"})
    s = {"type": "AzureBlob", "accountUrl": az.url, "container": "landing", "sasToken": az.sas("landing", "cw")}
    s.update(sink)
    return {"source": {"linkedService": ls, "dataset": dataset}, "sink": s, "format": fmt}


@test
def test_postgres_to_azurite(h):
    """100,000 PostgreSQL rows streamed in full: Parquet with the columns' real types and CSV, into Azurite, every value compared"""
    pg = shared_pg()
    pg.sql(PG_TABLE % (PG_ROWS - 1, READER))
    r, n, snd, data, out, _ = setup(h, rows=1)
    az = Azurite(h)
    az.mkcontainer("landing")
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "credentials", "set", "pg-reader"],
          input=READER_PASSWORD + "\n", check=0)
    # a Table, to Parquet (ZSTD), 1 MiB blocks
    st, j = snd.call("POST", "", pg_job(pg, az, {"type": "Table", "schema": "public", "table": "copy_orders"},
                                         {"path": "orders.parquet", "blockSizeMB": 1},
                                         {"type": "Parquet", "compression": "zstd"}))
    check(st == 201, "submit: %d %r", st, j)
    g = wait_final(snd, j["id"], timeout=180)
    check(g["state"] == "Succeeded" and g["result"]["rowsWritten"] == PG_ROWS, "Parquet: %r", g)
    local = h.path("orders.parquet")
    props = az.get("landing", "orders.parquet", local)
    check(props["md5"] == g["result"]["files"][0]["contentMd5"] and props["committed"] > 1, "%r", props)
    pq = read_back(h, local)
    types = {c["name"]: (c["type"], c["logical"] or c["converted"]) for c in pq["schema"]}
    check(types["id"][0] == "INT64" and types["qty"][0] == "INT32" and types["small"][0] == "INT32" and
          types["ratio"][0] == "DOUBLE" and types["quarter"][0] == "FLOAT" and types["ok"][0] == "BOOLEAN" and
          types["at"][0] == "INT64" and types["raw"][0] == "BYTE_ARRAY" and types["price"][0] == "BYTE_ARRAY",
          "the columns' Parquet types: %r", types)
    check(all(gr["codec"] == "ZSTD" for gr in pq["groups"]), "ZSTD: %r", pq["groups"])
    got = sorted(pq["rows"], key=lambda x: int(x["id"]))
    bad = [(i, k, row.get(k), v) for i, row in enumerate(got) for k, v in pg_expected(i).items()
           if not same(row.get(k), v)]
    check(len(got) == PG_ROWS and not bad, "%d rows; %d values differ, first: %r", len(got), len(bad), bad[:5])
    # a Query, to CSV: nulls are empty fields
    st, j = snd.call("POST", "", pg_job(pg, az, {"type": "Query", "query": "SELECT id, name, price FROM "
                                                 "copy_orders WHERE id < 5000 ORDER BY id"},
                                         {"path": "q.csv"}, {"type": "DelimitedText"}))
    g = wait_final(snd, j["id"], timeout=120)
    check(g["state"] == "Succeeded" and g["result"]["rowsWritten"] == 5000, "CSV: %r", g)
    az.get("landing", "q.csv", h.path("q.csv"))
    with open(h.path("q.csv"), newline="") as f:
        rows = list(csv.reader(f))
    want = [["id", "name", "price"]] + [[str(i), "" if i % 10 == 0 else 'name-%d ; "q"' % i,
                                          "%d.%02d" % divmod(i * 125, 100)] for i in range(5000)]
    check(rows == want, "CSV rows: first differing %r", next(((a, b) for a, b in zip(rows, want) if a != b), None))
    # the read-only session of authoring: a writing query fails and writes nothing
    st, j = snd.call("POST", "", pg_job(pg, az, {"type": "Query", "query": "DELETE FROM copy_orders RETURNING id"},
                                         {"path": "w.csv"}, {"type": "DelimitedText"}))
    g = wait_final(snd, j["id"])
    check(g["state"] == "Failed" and g["error"]["code"] == "ReadOnlyViolation", "a writing query: %r", g)
    check(pg.sql("SELECT count(*) FROM copy_orders").strip() == str(PG_ROWS), "nothing deleted")
    check(sorted(az.ls("landing")) == ["orders.parquet", "q.csv"], "no blob for the refused job: %r",
          az.ls("landing"))
    n.stop_clean()


MILLION = 1000000
MILLION_TABLE = """
DROP TABLE IF EXISTS copy_million;
CREATE TABLE copy_million (id int8 PRIMARY KEY, qty int4 NOT NULL, price numeric(12,2), at timestamptz,
  name text);
INSERT INTO copy_million SELECT i, i %% 1000, (i * 1.25)::numeric(12,2),
  timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second',
  CASE WHEN i %% 10 = 0 THEN NULL ELSE 'name-' || i END FROM generate_series(0, %d) i;
GRANT SELECT ON copy_million TO %s;
"""


@test
def test_postgres_million_through_squid(h):
    """1,000,000 PostgreSQL rows to Parquet in an https Azurite through squid with Basic auth: every value compared by hyparquet"""
    pg = shared_pg()
    pg.sql(MILLION_TABLE % (MILLION - 1, READER))
    sq, az, ca, snd, n, data, extra = through_squid(h)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "credentials", "set", "pg-reader"],
          input=READER_PASSWORD + "\n", check=0)
    ls = pg.linked_service(password={"type": "CredentialReference", "name": "pg-reader"})
    spec = {"source": {"linkedService": ls, "dataset": {"type": "Table", "schema": "public", "table": "copy_million"}},
            "sink": {"type": "AzureBlob", "accountUrl": "https://devstoreaccount1.blob.test:%d" % az.port,
                     "container": "landing", "sasToken": az.sas("landing", "cw"), "path": "million.parquet"},
            "format": {"type": "Parquet"}}
    st, j = snd.call("POST", "", spec)
    check(st == 201, "submit: %d %r", st, j)
    g = wait_final(snd, j["id"], timeout=600)
    check(g["state"] == "Succeeded" and g["result"]["rowsWritten"] == MILLION, "1,000,000 rows: %r", g)
    f0 = g["result"]["files"][0]
    local = h.path("million.parquet")
    props = az.get("landing", "million.parquet", local)
    check(props["md5"] == f0["contentMd5"] and props["committed"] == f0["blocks"] and props["uncommitted"] == 0,
          "%r %r", props, f0)
    pq = read_back(h, local)
    types = {c["name"]: c["type"] for c in pq["schema"]}
    check(types == {"id": "INT64", "qty": "INT32", "price": "BYTE_ARRAY", "at": "INT64", "name": "BYTE_ARRAY"},
          "the columns' Parquet types: %r", types)
    got = pq["rows"]
    check(len(got) == MILLION, "%d rows", len(got))
    got.sort(key=lambda x: int(x["id"]))
    bad = []
    for i, row in enumerate(got):
        want = {"id": str(i), "qty": {"num": i % 1000}, "price": "%d.%02d" % divmod(i * 125, 100),
                "at": {"micros": str((1577836800 + i) * 1000000)}, "name": None if i % 10 == 0 else "name-%d" % i}
        for k, v in want.items():
            if not same(row.get(k), v):
                bad.append((i, k, row.get(k), v))
        if len(bad) > 5:
            break
    check(not bad, "values differ, first: %r", bad[:5])
    n.stop_clean()
    wait_until(lambda: "CONNECT devstoreaccount1.blob.test:%d svc" % az.port in sq.log(), 20,
               "squid to log the node's tunnel to devstoreaccount1.blob.test:\n" + sq.log())
    pg.sql("DROP TABLE copy_million;")


if __name__ == "__main__":
    main()
