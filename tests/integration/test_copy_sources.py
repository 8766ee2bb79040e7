"""Integration: copy job sources streamed in full by the connectors' stream
operation: MySQL/MariaDB, SQLite, ODBC (psqlODBC against PostgreSQL), Json
files and HttpServer (Json, DelimitedText). A real shir-relay, a real shird
registered with the node key, real MariaDB and PostgreSQL servers, Azurite
(Microsoft's storage emulator) and a loopback HTTP server started by the
test; every result read back with independent readers (Python csv and json,
npm hyparquet for Parquet, Microsoft's @azure/storage-blob for blobs) and
every value compared. Also: 100,000 MariaDB rows (over 100 MB) copied with
the node's peak memory bounded, a query that hangs stopped at the job's
deadline, writing statements refused with nothing written, a file outside
the allowed folders refused, and an HTTP source on loopback refused without
local machine access (the server never hears of it)."""
import base64
import csv
import datetime
import hashlib
import http.server
import json
import os
import sqlite3
import threading
import time

from azurite import Azurite
from authnode import Node
from shirtest import check, main, test, wait_until
import shirtest
from stores import READER, READER_PASSWORD, odbcinst_dir, shared_mariadb, shared_pg
from test_copy_node import setup, wait_final
from test_parquet import read_back, same

shirtest._tests.clear()  # the modules above are imported for their helpers, not their tests

EPOCH = 1577836800  # 2020-01-01T00:00:00Z


def restart_with(h, n, data, extra, env=None, lma=True):
    n.stop_clean()
    n2 = Node(h, allowed=data, extra=extra, env=env, lma=lma)
    n2.p.wait_log(r"event=copy\.started jobs=")
    return n2


def local_job(ls, ds, out, name, fmt="DelimitedText", **opts):
    j = {"source": {"linkedService": ls, "dataset": ds},
         "sink": {"type": "FileSystem", "folder": out, "path": name}, "format": {"type": fmt}}
    if opts:
        j["options"] = opts
    return j


def blob_job(ls, ds, az, name, fmt):
    return {"source": {"linkedService": ls, "dataset": ds},
            "sink": {"type": "AzureBlob", "accountUrl": az.url, "container": "landing",
                     "sasToken": az.sas("landing", "cw"), "path": name, "blockSizeMB": 1},
            "format": fmt}


def run(snd, body, timeout=180, state="Succeeded"):
    st, j = snd.call("POST", "", body)
    check(st == 201, "submit: %d %r", st, j)
    g = wait_final(snd, j["id"], timeout=timeout)
    check(g["state"] == state, "job %s: want %s, got %r", j["id"], state, g)
    return g


def failed(snd, body, code, words, timeout=60):
    g = run(snd, body, timeout=timeout, state="Failed")
    check(g["error"]["code"] == code and words in g["error"]["message"], "want %s (%s): %r", code, words,
          g["error"])
    return g


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def first_diff(got, want):
    return next(((i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b), None)


def blob_parquet(h, az, name):
    local = h.path("got-" + name)
    az.get("landing", name, local)
    return read_back(h, local)


def types_of(pq):
    return {c["name"]: c["type"] for c in pq["schema"]}


def bad_values(rows, expect):
    return [(i, k, r.get(k), v) for i, r in enumerate(rows) for k, v in expect(i).items() if not same(r.get(k), v)]


# ---- MySQL / MariaDB --------------------------------------------------------

MY_ROWS = 100000
MY_PAD = 1000
MY_TABLE = """
DROP TABLE IF EXISTS copy_items;
CREATE TABLE copy_items (id BIGINT PRIMARY KEY, qty INT NOT NULL, small SMALLINT, flag TINYINT(1),
  price DECIMAL(12,2), ratio DOUBLE, at DATETIME, day DATE, name VARCHAR(64), raw VARBINARY(16),
  big BIGINT UNSIGNED, pad VARCHAR(%d)) ENGINE=InnoDB;
INSERT INTO copy_items SELECT seq, seq * 3, seq %% 30000, seq %% 2, seq * 1.25, seq / 8,
  TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq SECOND, DATE'2020-01-01' + INTERVAL (seq %% 3000) DAY,
  IF(seq %% 10 = 0, NULL, CONCAT('name-', seq, ' ; "q", é')), UNHEX(MD5(seq)),
  18446744073709551615 - seq, REPEAT(CHAR(65 + seq %% 26), %d) FROM seq_0_to_%d;
"""


def my_expected(i):
    day = datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 3000)
    day_s = (day - datetime.date(1970, 1, 1)).days * 86400
    return {"id": str(i), "qty": {"num": i * 3}, "small": {"num": i % 30000}, "flag": i % 2 == 1,
            "price": "%d.%02d" % divmod(i * 125, 100), "ratio": {"num": i / 8},
            "at": {"micros": str((EPOCH + i) * 1000000)}, "day": {"micros": str(day_s * 1000000)},
            "name": None if i % 10 == 0 else 'name-%d ; "q", é' % i,
            "raw": {"b64": base64.b64encode(hashlib.md5(str(i).encode()).digest()).decode()},
            "big": str(18446744073709551615 - i)}


def my_csv_row(i):
    e = my_expected(i)
    day = datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 3000)
    at = datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i)
    return [str(i), str(i * 3), str(i % 30000), str(i % 2), e["price"], "%.17g" % (i / 8),
            at.strftime("%Y-%m-%dT%H:%M:%S"), day.isoformat(), e["name"] or "", e["big"],
            chr(65 + i % 26) * MY_PAD]


@test
def test_mysql_source(h):
    """MariaDB: 100,000 rows (over 100 MB) to CSV with the node's peak memory bounded, a Table to Parquet in Azurite with its types, a hanging query stopped at the deadline, writes refused"""
    db = shared_mariadb()
    db.sql(MY_TABLE % (MY_PAD, MY_PAD, MY_ROWS - 1))
    r, n, snd, data, out, extra = setup(h, rows=1)
    ls = db.linked_service()
    cols = "id, qty, small, flag, price, ratio, at, day, name, big, pad"
    # warm up (the first job's one-time allocations), then the peak memory of the big one
    run(snd, local_job(ls, {"type": "Query", "query": "SELECT %s FROM copy_items LIMIT 10" % cols}, out, "w.csv"))
    before = n.vmhwm_kb()
    t0 = time.time()
    g = run(snd, local_job(ls, {"type": "Query", "query": "SELECT %s FROM copy_items ORDER BY id" % cols},
                           out, "items.csv"), timeout=300)
    grow = n.vmhwm_kb() - before
    size = os.path.getsize(os.path.join(out, "items.csv"))
    check(g["result"]["rowsWritten"] == MY_ROWS and size > 100 * 1024 * 1024, "%r (%d bytes)", g["result"], size)
    # the table is over 100 MB: held whole (mysql_store_result) it would pass this at once
    check(grow < 64 * 1024, "shird's peak memory grew by %d KiB copying %d bytes", grow, size)
    rows = read_csv(os.path.join(out, "items.csv"))
    check(rows[0] == cols.split(", "), "header: %r", rows[0])
    got = rows[1:]
    bad = [(i, a[:-1], my_csv_row(i)[:-1]) for i, a in enumerate(got) if a != my_csv_row(i)]
    check(len(got) == MY_ROWS and not bad, "%d rows; %d differ, first: %r", len(got), len(bad), bad[:1])
    print("mysql: %d rows, %d bytes in %.1f s, peak memory +%d KiB" % (MY_ROWS, size, time.time() - t0, grow))
    # a Table to Parquet in Azurite: each column's type, every value
    az = Azurite(h)
    az.mkcontainer("landing")
    g = run(snd, blob_job(ls, {"type": "Table", "table": "copy_items"}, az, "items.parquet",
                          {"type": "Parquet", "compression": "zstd"}), timeout=300)
    check(g["result"]["rowsWritten"] == MY_ROWS, "%r", g["result"])
    pq = blob_parquet(h, az, "items.parquet")
    ty = types_of(pq)
    check(ty["id"] == "INT64" and ty["qty"] == "INT32" and ty["small"] == "INT32" and ty["flag"] == "BOOLEAN" and
          ty["price"] == "BYTE_ARRAY" and ty["ratio"] == "DOUBLE" and ty["at"] == "INT64" and
          ty["day"] == "INT64" and ty["raw"] == "BYTE_ARRAY" and ty["big"] == "BYTE_ARRAY", "types: %r", ty)
    got = sorted(pq["rows"], key=lambda x: int(x["id"]))
    bad = bad_values(got, my_expected)
    bad += [i for i, row in enumerate(got) if row["pad"] != chr(65 + i % 26) * MY_PAD]
    check(len(got) == MY_ROWS and not bad, "%d rows; %d values differ: %r", len(got), len(bad), bad[:5])
    # a query that hangs: the job's deadline stops it, in the server too
    t0 = time.time()
    failed(snd, local_job(ls, {"type": "Query", "query": "SELECT SLEEP(120) AS s"}, out, "sleep.csv",
                          timeoutSeconds=3), "StoreUnreachable", "deadline (options.timeoutSeconds: 3 s)")
    check(time.time() - t0 < 30, "the deadline of 3 s took %.0f s", time.time() - t0)
    wait_until(lambda: "SLEEP" not in db.sql("SELECT info FROM information_schema.processlist WHERE "
                                              "user = '%s' AND info IS NOT NULL" % READER), 15,
               "the sleeping query to be killed in the server")
    # a job cancelled while its query hangs: the node learns at its next heartbeat and the
    # statement is killed in the server, not left to run
    st, j = snd.call("POST", "", local_job(ls, {"type": "Query", "query": "SELECT SLEEP(300) AS s"}, out,
                                           "cancel.csv"))
    sleeping = lambda: "SLEEP(300)" in db.sql("SELECT info FROM information_schema.processlist WHERE "
                                              "user = '%s' AND info IS NOT NULL" % READER)
    wait_until(sleeping, 30, "the query to run")
    st, c = snd.call("POST", "/%s/cancel" % j["id"])
    check(st == 200 and c["state"] == "Cancelled", "cancel: %d %r", st, c)
    wait_until(lambda: not sleeping(), 30, "the cancelled job's query to be killed in the server")
    n.p.wait_log(r"event=job\.stop job=%s" % j["id"], timeout=30)
    # writing statements: refused, nothing written
    failed(snd, local_job(ls, {"type": "Query", "query": "DELETE FROM copy_items"}, out, "del.csv"),
           "ReadOnlyViolation", "")
    failed(snd, local_job(ls, {"type": "Query", "query": "SELECT * FROM copy_items INTO OUTFILE '/tmp/x'"},
                          out, "of.csv"), "ReadOnlyViolation", "")
    check(db.sql("SELECT count(*) FROM copy_items").strip() == str(MY_ROWS), "nothing deleted")
    check(sorted(os.listdir(out)) == ["items.csv", "w.csv"], "no file for the failed jobs: %r", os.listdir(out))
    n.stop_clean()


# ---- SQLite -------------------------------------------------------------------

SQ_ROWS = 20000


def sq_expected(i):
    return {"id": str(i), "name": None if i % 7 == 0 else "n-%d, \"x\"" % i, "amount": {"num": i * 0.5},
            "ok": i % 3 == 0, "at": {"micros": str((EPOCH + 60 * i) * 1000000)},
            "blob": {"b64": base64.b64encode(bytes([i % 256, 0, 255])).decode()}}


@test
def test_sqlite_source(h):
    """SQLite: a Table to Parquet in the local folder and a Query to CSV in Azurite, every value; a writing statement and a database outside the allowed folders refused"""
    r, n, snd, data, out, extra = setup(h, rows=1)
    path = os.path.join(data, "shop.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount REAL, ok BOOLEAN, at TIMESTAMP, blob BLOB)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", [
        (i, None if i % 7 == 0 else "n-%d, \"x\"" % i, i * 0.5, 1 if i % 3 == 0 else 0,
         (datetime.datetime(2020, 1, 1) + datetime.timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"),
         bytes([i % 256, 0, 255])) for i in range(SQ_ROWS)])
    con.commit()
    con.close()
    ls = {"type": "Sqlite", "properties": {"path": path}}
    run(snd, local_job(ls, {"type": "Table", "table": "t"}, out, "t.parquet", "Parquet"))
    pq = read_back(h, os.path.join(out, "t.parquet"))
    ty = types_of(pq)
    check(ty == {"id": "INT64", "name": "BYTE_ARRAY", "amount": "DOUBLE", "ok": "BOOLEAN", "at": "INT64",
                 "blob": "BYTE_ARRAY"}, "types: %r", ty)
    bad = bad_values(pq["rows"], sq_expected)
    check(len(pq["rows"]) == SQ_ROWS and not bad, "%d rows; %d differ: %r", len(pq["rows"]), len(bad), bad[:5])
    az = Azurite(h)
    az.mkcontainer("landing")
    g = run(snd, blob_job(ls, {"type": "Query", "query": "SELECT id, name, at FROM t WHERE id % 2 = 0 ORDER BY id"},
                          az, "t.csv", {"type": "DelimitedText"}))
    az.get("landing", "t.csv", h.path("t.csv"))
    want = [["id", "name", "at"]] + [[str(i), "" if i % 7 == 0 else "n-%d, \"x\"" % i,
                                      (datetime.datetime(2020, 1, 1) + datetime.timedelta(minutes=i)).strftime(
                                          "%Y-%m-%dT%H:%M:%S")] for i in range(0, SQ_ROWS, 2)]
    got = read_csv(h.path("t.csv"))
    check(got == want and g["result"]["rowsWritten"] == SQ_ROWS // 2, "first differing: %r", first_diff(got, want))
    # read-only: a writing statement fails and the file is unchanged
    failed(snd, local_job(ls, {"type": "Query", "query": "DELETE FROM t RETURNING id"}, out, "d.csv"),
           "ReadOnlyViolation", "")
    failed(snd, local_job(ls, {"type": "Query", "query": "ATTACH DATABASE '/tmp/x.db' AS x"}, out, "a.csv"),
           "ReadOnlyViolation", "")
    con = sqlite3.connect(path)
    check(con.execute("SELECT count(*) FROM t").fetchone()[0] == SQ_ROWS, "nothing deleted")
    con.close()
    # outside the allowed folders
    other = h.path("elsewhere")
    os.makedirs(other)
    with open(path, "rb") as src, open(os.path.join(other, "copy.db"), "wb") as dst:
        dst.write(src.read())
    failed(snd, local_job({"type": "Sqlite", "properties": {"path": os.path.join(other, "copy.db")}},
                          {"type": "Table", "table": "t"}, out, "o.csv"), "PathNotAllowed", "")
    check(sorted(os.listdir(out)) == ["t.parquet"], "no file for the refused jobs: %r", os.listdir(out))
    n.stop_clean()


# ---- ODBC ---------------------------------------------------------------------

OD_ROWS = 30000
OD_TABLE = """
DROP TABLE IF EXISTS odbc_items;
CREATE TABLE odbc_items (id int8 PRIMARY KEY, qty int4 NOT NULL, price numeric(12,2), ratio float8,
  at timestamp, name text, note text);
INSERT INTO odbc_items SELECT i, i * 3, (i * 1.25)::numeric(12,2), i / 4.0, timestamp '2020-01-01' + i * interval '1 second',
  CASE WHEN i %% 10 = 0 THEN NULL ELSE 'name-' || i || ' ; "q"' END, repeat('x', 5000 + i %% 7)
  FROM generate_series(0, %d) i;
GRANT SELECT ON odbc_items TO %s;
"""


def od_expected(i):
    return {"id": str(i), "qty": {"num": i * 3}, "price": "%d.%02d" % divmod(i * 125, 100), "ratio": {"num": i / 4},
            "at": {"micros": str((EPOCH + i) * 1000000)}, "name": None if i % 10 == 0 else 'name-%d ; "q"' % i,
            "note": "x" * (5000 + i % 7)}


@test
def test_odbc_source(h):
    """ODBC (psqlODBC, PostgreSQL): a Table to Parquet in Azurite, a Query to CSV, values longer than a preview's; a writing statement refused"""
    pg = shared_pg()
    pg.sql(OD_TABLE % (OD_ROWS - 1, READER))
    r, n, snd, data, out, extra = setup(h, rows=1)
    env = {"ODBCSYSINI": odbcinst_dir(h), "ODBCINI": h.path("odbc", "odbc.ini")}
    n = restart_with(h, n, data, extra, env=dict(os.environ, **env))
    ls = pg.odbc_linked_service()
    az = Azurite(h)
    az.mkcontainer("landing")
    g = run(snd, blob_job(ls, {"type": "Table", "schema": "public", "table": "odbc_items"}, az, "o.parquet",
                          {"type": "Parquet"}))
    check(g["result"]["rowsWritten"] == OD_ROWS, "%r", g["result"])
    pq = blob_parquet(h, az, "o.parquet")
    ty = types_of(pq)
    check(ty["id"] == "INT64" and ty["qty"] == "INT32" and ty["ratio"] == "DOUBLE" and ty["at"] == "INT64" and
          ty["price"] == "BYTE_ARRAY", "types: %r", ty)
    got = sorted(pq["rows"], key=lambda x: int(x["id"]))
    bad = bad_values(got, od_expected)
    check(len(got) == OD_ROWS and not bad, "%d rows; %d differ: %r", len(got), len(bad), [b[:3] for b in bad[:3]])
    run(snd, local_job(ls, {"type": "Query", "query": "SELECT id, name, note FROM odbc_items WHERE id < 3000 "
                                                      "ORDER BY id"}, out, "o.csv"))
    want = [["id", "name", "note"]] + [[str(i), "" if i % 10 == 0 else 'name-%d ; "q"' % i, "x" * (5000 + i % 7)]
                                       for i in range(3000)]
    got = read_csv(os.path.join(out, "o.csv"))
    check(got == want, "first differing: %r", (first_diff(got, want) or ("",))[:1])
    failed(snd, local_job(ls, {"type": "Query", "query": "DELETE FROM odbc_items"}, out, "d.csv"),
           "ReadOnlyViolation", "")
    check(pg.sql("SELECT count(*) FROM odbc_items").strip() == str(OD_ROWS), "nothing deleted")
    check(sorted(os.listdir(out)) == ["o.csv"], "no file for the refused job: %r", os.listdir(out))
    n.stop_clean()


# ---- Json files -----------------------------------------------------------------

JS_ROWS = 30000


def js_record(i):
    r = {"id": i, "amount": i * 0.25 + 0.1, "ok": i % 2 == 0, "name": "n\u00e9-%d \"q\"\n" % i,
         "tags": ["a", i], "meta": {"k": i}}
    if i % 5 == 0:
        r["name"] = None
    return r


def js_expected(i):
    r = js_record(i)
    return {"id": str(i), "amount": {"num": r["amount"]}, "ok": r["ok"], "name": r["name"],
            "tags": json.dumps(r["tags"], separators=(",", ":")), "meta": json.dumps(r["meta"], separators=(",", ":"))}


@test
def test_json_file_source(h):
    """Json files: a top-level array to Parquet (types from the first records), JSON Lines to Azurite as JSON Lines, dataset.schema, refusals"""
    r, n, snd, data, out, extra = setup(h, rows=1)
    with open(os.path.join(data, "items.json"), "w") as f:
        f.write("[\n")
        for i in range(JS_ROWS):
            f.write((",\n" if i else "") + json.dumps(js_record(i)))
        f.write("\n]\n")
    with open(os.path.join(data, "items.jsonl"), "w") as f:
        for i in range(JS_ROWS):
            f.write(json.dumps(js_record(i)) + "\n")
    ls = {"type": "FileSystem", "properties": {"root": data}}
    g = run(snd, local_job(ls, {"type": "Json", "path": "items.json"}, out, "items.parquet", "Parquet"))
    check(g["result"]["rowsWritten"] == JS_ROWS, "%r", g["result"])
    pq = read_back(h, os.path.join(out, "items.parquet"))
    ty = types_of(pq)
    check(ty == {"id": "INT64", "amount": "DOUBLE", "ok": "BOOLEAN", "name": "BYTE_ARRAY", "tags": "BYTE_ARRAY",
                 "meta": "BYTE_ARRAY"}, "types: %r", ty)
    bad = bad_values(pq["rows"], js_expected)
    check(len(pq["rows"]) == JS_ROWS and not bad, "%d rows; %d differ: %r", len(pq["rows"]), len(bad), bad[:3])
    az = Azurite(h)
    az.mkcontainer("landing")
    run(snd, blob_job(ls, {"type": "Json", "path": "items.jsonl", "jsonLines": True}, az, "items.jsonl",
                      {"type": "JsonLines"}))
    az.get("landing", "items.jsonl", h.path("items.jsonl"))
    with open(h.path("items.jsonl"), encoding="utf-8") as f:
        got = [json.loads(line) for line in f]
    bad = []
    for i, row in enumerate(got):
        e = js_expected(i)
        want = {"id": str(i), "amount": row["amount"], "ok": "true" if e["ok"] else "false", "name": e["name"],
                "tags": e["tags"], "meta": e["meta"]}
        if row != want or float(row["amount"]) != js_record(i)["amount"]:
            bad.append((i, row, want))
    check(len(got) == JS_ROWS and not bad, "%d rows; %d differ: %r", len(got), len(bad), bad[:2])
    # dataset.schema names and types the columns; other members are not copied
    run(snd, local_job(ls, {"type": "Json", "path": "items.jsonl", "jsonLines": True,
                            "schema": [{"name": "id", "type": "Int32"}, {"name": "name", "type": "String"}]},
                       out, "schema.parquet", "Parquet"))
    pq = read_back(h, os.path.join(out, "schema.parquet"))
    check(types_of(pq) == {"id": "INT32", "name": "BYTE_ARRAY"} and len(pq["rows"]) == JS_ROWS and
          all(same(row["id"], {"num": i}) and row["name"] == js_record(i)["name"] for i, row in enumerate(pq["rows"])),
          "schema: %r %r", types_of(pq), pq["rows"][:2])
    # a member the first records did not have: the copy fails rather than lose it
    with open(os.path.join(data, "late.jsonl"), "w") as f:
        for i in range(500):
            f.write(json.dumps({"id": i, "extra": 1} if i == 400 else {"id": i}) + "\n")
    failed(snd, local_job(ls, {"type": "Json", "path": "late.jsonl", "jsonLines": True}, out, "late.csv"),
           "StoreError", "record 401 has a member \"extra\"")
    with open(os.path.join(data, "broken.json"), "w") as f:
        f.write('[{"id": 1}, {"id": 2,,}]')
    failed(snd, local_job(ls, {"type": "Json", "path": "broken.json"}, out, "b.csv"), "StoreError", "not valid JSON")
    other = h.path("outside")
    os.makedirs(other)
    with open(os.path.join(other, "x.json"), "w") as f:
        f.write('[{"a": 1}]')
    failed(snd, local_job({"type": "FileSystem", "properties": {"root": other}}, {"type": "Json", "path": "x.json"},
                          out, "x.csv"), "PathNotAllowed", "")
    failed(snd, local_job(ls, {"type": "Json", "path": "../outside/x.json"}, out, "y.csv"), "PathNotAllowed", "")
    check(sorted(os.listdir(out)) == ["items.parquet", "schema.parquet"], "no file for the refused jobs: %r",
          os.listdir(out))
    n.stop_clean()


# ---- HttpServer -----------------------------------------------------------------

HT_ROWS = 20000


class _Src(http.server.BaseHTTPRequestHandler):
    hits = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        _Src.hits.append(self.path)
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/api/items.json")
            self.end_headers()
            return
        if self.path == "/api/items.json":
            body = ("[" + ",".join(json.dumps(js_record(i)) for i in range(HT_ROWS)) + "]").encode()
        elif self.path == "/api/items.csv":
            body = ("id;name\n" + "".join('%d;"n ""%d""; x"\n' % (i, i) for i in range(HT_ROWS))).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # in pieces, as a server streams a large answer
        for k in range(0, len(body), 65536):
            self.wfile.write(body[k:k + 65536])


def src_server(h):
    _Src.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Src)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop():
        srv.shutdown()
        srv.server_close()
    h.on_cleanup(stop)
    return "http://127.0.0.1:%d" % srv.server_address[1]


@test
def test_http_source(h):
    """HttpServer: Json (after a redirect) to Parquet in Azurite and DelimitedText to CSV, every value; on loopback without local machine access: refused, the server never asked"""
    base = src_server(h)
    r, n, snd, data, out, extra = setup(h, rows=1)
    ls = {"type": "HttpServer", "properties": {"url": base + "/"}}
    az = Azurite(h)
    az.mkcontainer("landing")
    run(snd, blob_job(ls, {"type": "Json", "relativeUrl": "moved"}, az, "h.parquet", {"type": "Parquet"}))
    pq = blob_parquet(h, az, "h.parquet")
    bad = bad_values(pq["rows"], js_expected)
    check(len(pq["rows"]) == HT_ROWS and not bad, "%d rows; %d differ: %r", len(pq["rows"]), len(bad), bad[:3])
    check(_Src.hits[:2] == ["/moved", "/api/items.json"], "the redirect was followed: %r", _Src.hits)
    run(snd, local_job(ls, {"type": "DelimitedText", "relativeUrl": "api/items.csv", "columnDelimiter": ";"},
                       out, "h.csv"))
    got = read_csv(os.path.join(out, "h.csv"))
    want = [["id", "name"]] + [[str(i), 'n "%d"; x' % i] for i in range(HT_ROWS)]
    check(got == want, "first differing: %r", first_diff(got, want))
    failed(snd, local_job(ls, {"type": "Json", "relativeUrl": "missing"}, out, "m.csv"), "NotFound", "404")
    # local machine access off: the loopback source is refused before any connection
    n = restart_with(h, n, data, extra, lma=False)
    _Src.hits = []
    failed(snd, local_job(ls, {"type": "Json", "relativeUrl": "api/items.json"}, out, "l.csv"),
           "LocalMachineAccessDenied", "")
    check(_Src.hits == [], "the server heard of the refused job: %r", _Src.hits)
    check(sorted(os.listdir(out)) == ["h.csv"], "no file for the refused jobs: %r", os.listdir(out))
    n.stop_clean()


if __name__ == "__main__":
    main()
