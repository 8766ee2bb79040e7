"""Integration: interactive authoring against files, SQLite and HTTP/JSON
stores, through shird's control socket (shirctl author --local and curl
--unix-socket): every operation, the security rules, validation, limits,
Get IP / Send log, bounded memory on a 1 GB file, deadlines and shutdown."""
import base64
import codecs
import http.server
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

import shirtest

from authnode import Node, expect_error, parse_http
from shirtest import check, free_port, main, test, wait_until
from squid import Squid


def make_files(h):
    d = h.path("data")
    os.makedirs(os.path.join(d, "2024", "deep"), exist_ok=True)
    with open(os.path.join(d, "orders.csv"), "w", newline="") as f:
        f.write('id,customer,amount,placed,note\r\n'
                '1,"Smith, Jane",12.50,2026-11-01T10:00:00,"said ""hi"""\r\n'
                '2,Müller,7,2026-11-02T11:30:00,"two\nlines"\r\n'
                '3,Ng,,2026-11-03T00:00:00,\r\n')
    with open(os.path.join(d, "semi.txt"), "w") as f:
        f.write("a;b\n1;x\n2;y\n")
    with open(os.path.join(d, "utf16.csv"), "wb") as f:
        f.write(codecs.BOM_UTF16_LE + "name,city\nZoë,Zürich\n".encode("utf-16-le"))
    with open(os.path.join(d, "latin1.csv"), "wb") as f:
        f.write("name,city\nJosé,São Paulo\n".encode("latin-1"))
    with open(os.path.join(d, "items.json"), "w") as f:
        json.dump([{"sku": "A1", "qty": 3, "price": 2.5, "ok": True, "tags": ["x"]},
                   {"sku": "B2", "qty": 5, "price": 1.25, "ok": False, "extra": None}], f)
    with open(os.path.join(d, "events.jsonl"), "w") as f:
        for i in range(250):
            f.write(json.dumps({"n": i, "at": "2026-11-%02dT08:00:00Z" % (i % 28 + 1)}) + "\n")
    with open(os.path.join(d, "one.json"), "w") as f:
        json.dump({"name": "solo", "n": 7, "nested": {"k": [1, 2]}}, f)
    with open(os.path.join(d, "long.csv"), "w") as f:
        f.write("k,v\n1,%s\n" % ("x" * 10000))
    with open(os.path.join(d, "2024", "jan.csv"), "w") as f:
        f.write("x\n1\n")
    db = sqlite3.connect(os.path.join(d, "shop.db"))
    db.executescript("""
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL,
                               big INTEGER, photo BLOB, added DATETIME, amount DECIMAL(30,10));
        INSERT INTO products VALUES (1, 'pen', 1.5, 9007199254740993, x'00ff10', '2026-11-01 10:00:00',
                                     '123.456');
        INSERT INTO products VALUES (2, 'ink', NULL, 42, NULL, NULL, '2.25');
        CREATE VIEW cheap AS SELECT * FROM products WHERE price < 2;
    """)
    for i in range(3, 1200):
        db.execute("INSERT INTO products (id, name, price) VALUES (?, ?, ?)", (i, "p%d" % i, i))
    db.commit()
    db.close()
    return d


def fs(root):
    return {"type": "FileSystem", "properties": {"root": root}}


def ds(path, **kw):
    d = {"type": "DelimitedText", "path": path}
    d.update(kw)
    return d


@test
def test_filesystem_operations(h):
    """FileSystem: test, browse (sorted, size, modified), CSV/Json schema and preview"""
    d = make_files(h)
    n = Node(h, allowed=d)
    r = n.author("testConnection", {"linkedService": fs(d)})
    check(r["status"] == "Succeeded" and r["store"]["product"] == "FileSystem", "%r", r)
    check(isinstance(r["durationMs"], (int, float)), "%r", r)

    r = n.author("browse", {"linkedService": fs(d)})
    names = [i["name"] for i in r["items"]]
    check(names == sorted(names), "items must be sorted by name: %r", names)
    check({"name": "2024", "type": "folder"} in r["items"], "%r", r["items"])
    o = [i for i in r["items"] if i["name"] == "orders.csv"][0]
    check(o["type"] == "file" and o["size"] == os.path.getsize(os.path.join(d, "orders.csv")), "%r", o)
    check(o["modified"].endswith("Z") and o["modified"][:4] == time.strftime("%Y"), "%r", o)
    check(r["truncated"] is False, "%r", r)
    r = n.author("browse", {"linkedService": fs(d), "path": "2024"})
    check([(i["name"], i["type"]) for i in r["items"]] == [("deep", "folder"), ("jan.csv", "file")], "%r", r)
    r = n.author("browse", {"linkedService": fs(d), "limit": 2})
    check(len(r["items"]) == 2 and r["truncated"] is True, "%r", r)

    req = {"linkedService": fs(d), "dataset": ds("orders.csv")}
    r = n.author("schema", req)
    types = [(c["name"], c["type"]) for c in r["columns"]]
    check(types == [("id", "Int32"), ("customer", "String"), ("amount", "Double"),
                    ("placed", "DateTime"), ("note", "String")], "%r", types)
    r = n.author("preview", req)
    check(r["rows"] == [[1, "Smith, Jane", 12.5, "2026-11-01T10:00:00", 'said "hi"'],
                        [2, "Müller", 7, "2026-11-02T11:30:00", "two\nlines"],
                        [3, "Ng", None, "2026-11-03T00:00:00", None]], "%r", r["rows"])
    check(r["truncated"] is False, "%r", r)
    r = n.author("preview", dict(req, limit=2))
    check(len(r["rows"]) == 2 and r["truncated"] is True, "%r", r)
    # types come from a fixed sample: schema and a preview of any limit agree (the first rows
    # of "when" look like dates, the fourth does not)
    with open(os.path.join(d, "mixed.csv"), "w") as f:
        f.write("id,when\n1,2026-11-01\n2,2026-11-02\n3,2026-11-03\n4,soon\n")
    req = {"linkedService": fs(d), "dataset": ds("mixed.csv")}
    schema = [(c["name"], c["type"]) for c in n.author("schema", req)["columns"]]
    one = n.author("preview", dict(req, limit=1))
    check(schema == [("id", "Int32"), ("when", "String")], "%r", schema)
    check([(c["name"], c["type"]) for c in one["columns"]] == schema and
          one["rows"] == [[1, "2026-11-01"]] and one["truncated"] is True, "%r", one)

    r = n.author("preview", {"linkedService": fs(d), "dataset": ds("semi.txt", columnDelimiter=";")})
    check(r["rows"] == [[1, "x"], [2, "y"]], "%r", r)
    r = n.author("preview", {"linkedService": fs(d),
                             "dataset": ds("semi.txt", columnDelimiter=";", firstRowAsHeader=False)})
    check([c["name"] for c in r["columns"]] == ["Prop_0", "Prop_1"] and r["rows"][0] == ["a", "b"], "%r", r)
    r = n.author("preview", {"linkedService": fs(d), "dataset": ds("utf16.csv", encoding="UTF-16")})
    check(r["rows"] == [["Zoë", "Zürich"]], "%r", r)
    r = n.author("preview", {"linkedService": fs(d), "dataset": ds("latin1.csv", encoding="ISO-8859-1")})
    check(r["rows"] == [["José", "São Paulo"]], "%r", r)

    r = n.author("preview", {"linkedService": fs(d), "dataset": {"type": "Json", "path": "items.json"}})
    cols = [(c["name"], c["type"]) for c in r["columns"]]
    check(cols == [("sku", "String"), ("qty", "Int32"), ("price", "Double"), ("ok", "Boolean"),
                   ("tags", "String"), ("extra", "String")], "%r", cols)
    check(r["rows"][0] == ["A1", 3, 2.5, True, '["x"]', None], "%r", r["rows"])
    r = n.author("preview", {"linkedService": fs(d),
                             "dataset": {"type": "Json", "path": "events.jsonl", "jsonLines": True}})
    check(len(r["rows"]) == 100 and r["truncated"] is True, "default limit 100: %r", len(r["rows"]))
    check([c["type"] for c in r["columns"]] == ["Int32", "DateTimeOffset"], "%r", r["columns"])
    r = n.author("preview", {"linkedService": fs(d), "limit": 1000,
                             "dataset": {"type": "Json", "path": "events.jsonl", "jsonLines": True}})
    check(len(r["rows"]) == 250 and r["truncated"] is False, "%r", len(r["rows"]))

    r = n.author("preview", {"linkedService": fs(d), "dataset": {"type": "Json", "path": "one.json"}})
    check(r["rows"] == [["solo", 7, '{"k":[1,2]}']] and r["truncated"] is False, "single document: %r", r)
    r = n.author("preview", {"linkedService": fs(d), "dataset": ds("long.csv")})
    v = r["rows"][0][1]
    check(v.endswith("...(truncated)") and len(v) < 5000, "long value: %d %r", len(v), v[-20:])

    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": ds("nope.csv")}),
                 404, "NotFound", "nope.csv")
    expect_error(n.curl("browse", {"linkedService": fs(d), "path": "missing"}), 404, "NotFound")
    # human output: aligned columns
    out, _ = n.author_text("preview", {"linkedService": fs(d), "dataset": ds("semi.txt", columnDelimiter=";")})
    check(out.splitlines()[:2] == ["a  b", "-  -"] and "(2 rows)" in out, "%s", out)
    n.stop_clean()

@test
def test_sqlite_operations(h):
    """Sqlite: read-only; types, base64, big integers as strings, writes refused"""
    d = make_files(h)
    n = Node(h, allowed=d)
    ls = {"type": "Sqlite", "properties": {"path": os.path.join(d, "shop.db")}}
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"]["product"] == "SQLite" and r["store"]["version"].startswith("3."), "%r", r)
    r = n.author("browse", {"linkedService": ls})
    check([(i["name"], i["type"]) for i in r["items"]] == [("cheap", "view"), ("products", "table")], "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": {"type": "Table", "table": "products"}})
    check(r["columns"] == [
        {"name": "id", "type": "Int64", "nullable": True},
        {"name": "name", "type": "String", "nullable": False},
        {"name": "price", "type": "Double", "nullable": True},
        {"name": "big", "type": "Int64", "nullable": True},
        {"name": "photo", "type": "ByteArray", "nullable": True},
        {"name": "added", "type": "DateTime", "nullable": True},
        {"name": "amount", "type": "Decimal", "nullable": True}], "%r", r["columns"])
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Table", "table": "products"},
                             "limit": 2})
    check(r["rows"][0] == [1, "pen", 1.5, "9007199254740993", base64.b64encode(b"\x00\xff\x10").decode(),
                           "2026-11-01 10:00:00", 123.456], "%r", r["rows"][0])
    check(r["rows"][1][:4] == [2, "ink", None, 42] and r["rows"][1][6] == 2.25, "%r", r["rows"][1])
    check(r["truncated"] is True, "%r", r)
    r = n.author("preview", {"linkedService": ls, "limit": 1000,
                             "dataset": {"type": "Query", "query": "SELECT id, name FROM products ORDER BY id"}})
    check(len(r["rows"]) == 1000 and r["truncated"] is True, "%d", len(r["rows"]))
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {"type": "Query",
                 "query": "DELETE FROM products"}}), 403, "ReadOnlyViolation", "read-only")
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {"type": "Query",
                 "query": "SELECT 1; DELETE FROM products"}}), 400, "InvalidRequest", "single statement")
    expect_error(n.curl("schema", {"linkedService": ls, "dataset": {"type": "Table", "table": "nope"}}),
                 404, "NotFound", "nope")
    # ATTACH would reach a database outside the allowed folders
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {"type": "Query",
                 "query": "ATTACH DATABASE '/etc/x.db' AS x"}}), 403, "ReadOnlyViolation", "ATTACH")
    db = sqlite3.connect(os.path.join(d, "shop.db"))
    check(db.execute("SELECT count(*) FROM products").fetchone()[0] == 1199, "rows were deleted")
    db.close()
    expect_error(n.curl("preview", {"linkedService": ls, "limit": 1001,
                 "dataset": {"type": "Table", "table": "products"}}), 400, "InvalidRequest", "limit")
    n.stop_clean()

@test
def test_local_folder_path_validation(h):
    """'..', symlinks leaving the allowed folders, roots outside: 403 PathNotAllowed"""
    d = make_files(h)
    outside = h.path("secret")
    os.makedirs(outside)
    with open(os.path.join(outside, "pw.csv"), "w") as f:
        f.write("user,password\nroot,x\n")
    os.symlink(outside, os.path.join(d, "escape"))
    os.symlink(os.path.join(outside, "pw.csv"), os.path.join(d, "pw-link.csv"))
    n = Node(h, allowed=d)
    expect_error(n.curl("browse", {"linkedService": fs(d), "path": "../secret"}), 403,
                 "PathNotAllowed", "..")
    expect_error(n.curl("browse", {"linkedService": fs(d + "/../secret")}), 403, "PathNotAllowed")
    expect_error(n.curl("browse", {"linkedService": fs(d), "path": "escape"}), 403,
                 "PathNotAllowed", "symbolic link")
    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": ds("pw-link.csv")}), 403,
                 "PathNotAllowed")
    expect_error(n.curl("testConnection", {"linkedService": fs(outside)}), 403, "PathNotAllowed",
                 "allowed folders")
    expect_error(n.curl("testConnection", {"linkedService": fs(os.path.join(d, "escape"))}), 403,
                 "PathNotAllowed")
    # a missing file outside is refused, not reported missing (no probing)
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": os.path.join(outside, "x.db")}}}), 403, "PathNotAllowed")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": "/nonexistent/dir/x.db"}}}), 403, "PathNotAllowed")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": os.path.join(d, "missing.db")}}}), 404, "NotFound")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": os.path.join(outside, "pw.csv")}}}), 403, "PathNotAllowed")
    # the listing still works inside
    r = n.author("browse", {"linkedService": fs(d)})
    check(any(i["name"] == "orders.csv" for i in r["items"]), "%r", r)
    n.stop_clean()

@test
def test_validation_off_and_nothing_allowed(h):
    """no allowed folders: refused with advice; validation off: allowed"""
    d = make_files(h)
    n = Node(h, allowed="")
    m = expect_error(n.curl("testConnection", {"linkedService": fs(d)}), 403, "PathNotAllowed")
    check("security.allowed_folders" in m, m)
    n.p.stop()
    h2 = Node(h, allowed="", validation=False)
    check(re.search(r"level=warn .*event=security.local_folder_path_validation state=off", h2.p.log()),
          "turning validation off must be logged:\n%s", h2.p.tail())
    r = h2.author("browse", {"linkedService": fs(d), "path": "2024/../2024"})
    check(len(r["items"]) == 2, "%r", r)
    h2.stop_clean()

@test
def test_request_validation(h):
    """400s name the field; unknown types; credential references"""
    d = make_files(h)
    n = Node(h, allowed=d)
    expect_error(n.curl("preview", "{not json"), 400, "InvalidRequest", "JSON")
    expect_error(n.curl("preview", {}), 400, "InvalidRequest", "linkedService")
    expect_error(n.curl("preview", {"linkedService": {"properties": {}}}), 400, "InvalidRequest",
                 "linkedService.type")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Oracle"}}), 400,
                 "UnsupportedStoreType", "Oracle")
    expect_error(n.curl("preview", {"linkedService": fs(d)}), 400, "InvalidRequest", "dataset")
    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": {"type": "Parquet"}}), 400,
                 "UnsupportedStoreType", "Parquet")
    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": {"type": "DelimitedText"}}),
                 400, "InvalidRequest", "dataset.path")
    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": ds("orders.csv"), "limit": 0}),
                 400, "InvalidRequest", "limit")
    expect_error(n.curl("preview", {"linkedService": fs(d), "dataset": ds("orders.csv", encoding="EBCDIC")}),
                 400, "InvalidRequest", "dataset.encoding")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "FileSystem", "properties": {}}}),
                 400, "InvalidRequest", "linkedService.properties.root")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": {
        "host": "db", "database": "x", "username": "u",
        "password": {"type": "CredentialReference", "name": "sales-reader"}}}}),
        400, "CredentialNotFound", "sales-reader")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": {
        "host": "db", "database": "x", "password": 42}}}), 400, "InvalidRequest",
        "linkedService.properties.password")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": {
        "host": "db", "database": "x", "port": "many"}}}), 400, "InvalidRequest",
        "linkedService.properties.port")
    expect_error(n.curl("browse", {"linkedService": {"type": "HttpServer", "properties": {
        "url": "http://example.invalid"}}}), 400, "InvalidRequest", "browse")
    st, _, js = n.curl("testConnection", None, method="GET")
    check(st == 405, "GET on a POST route: %s", st)
    r = h.run([h.bin("shirctl"), "--socket", n.sock, "author", "preview", "--local"],
              input=json.dumps({"linkedService": fs(d), "dataset": ds("nope.csv")}))
    check(r.returncode == 1 and "preview failed" in r.stderr and "NotFound" in r.stderr
          and "HTTP 404" in r.stderr, "plain-words error: %r", r.stderr)
    n.stop_clean()


class _Http(http.server.BaseHTTPRequestHandler):
    release = None

    def log_message(self, *a):
        pass

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(b"api:s3cret-pw").decode()
        if self.path.startswith("/private") and auth != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.end_headers()
            return
        if self.path.startswith("/slow"):
            _Http.release.wait(30)
        if self.path in ("/", "/private/", "/private/orders", "/api/orders", "/slow"):
            body = json.dumps([{"id": i, "total": i * 1.5, "when": "2026-11-01T00:00:00Z"}
                               for i in range(1, 501)]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()


def http_server(h):
    _Http.release = threading.Event()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()

    def stop():
        _Http.release.set()
        srv.shutdown()
        srv.server_close()
    h.on_cleanup(stop)
    return "http://127.0.0.1:%d" % srv.server_address[1]


@test
def test_http_json(h):
    """HttpServer: Basic auth, Json preview, 401/404/refused/loopback errors"""
    base = http_server(h)
    n = Node(h, lma=True)
    ls = {"type": "HttpServer", "properties": {"url": base + "/private/", "authenticationType": "Basic",
                                               "username": "api", "password": "s3cret-pw"}}
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"] == {"product": "HTTP", "version": "200"}, "%r", r)
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"},
                             "limit": 3})
    check(r["rows"] == [[1, 1.5, "2026-11-01T00:00:00Z"], [2, 3, "2026-11-01T00:00:00Z"],
                        [3, 4.5, "2026-11-01T00:00:00Z"]] and r["truncated"] is True, "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"}})
    check([c["type"] for c in r["columns"]] == ["Int32", "Double", "DateTimeOffset"], "%r", r)
    bad = json.loads(json.dumps(ls))
    bad["properties"]["password"] = "wrong-pw"
    m = expect_error(n.curl("testConnection", {"linkedService": bad}), 422, "AuthenticationFailed")
    check("wrong-pw" not in m, "secret in message: %s", m)
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {"type": "Json",
                 "relativeUrl": "missing"}}), 404, "NotFound")
    closed = {"type": "HttpServer", "properties": {"url": "http://127.0.0.1:%d/" % free_port()}}
    expect_error(n.curl("testConnection", {"linkedService": closed}), 422, "StoreUnreachable")
    log = n.p.log()
    check("s3cret-pw" not in log and "wrong-pw" not in log, "a password reached the log")
    n.stop_clean()


# Loopback destinations never go through a proxy (the .NET rule every mode
# follows), so the stores behind squid use a name only squid can resolve.
STORE_HOST = "store.shir.test"


def start_squid(h, user, password):
    """squid with Basic proxy auth, for clients from 127.0.0.1 only, resolving
    STORE_HOST itself; returns its port and access log"""
    sq = Squid(h, auth="basic", user=user, password=password, client="127.0.0.1",
               hosts={STORE_HOST: "127.0.0.1"})
    return sq.port, sq.access


@test
def test_http_through_custom_proxy(h):
    """HttpServer through the node's custom proxy (squid with Basic proxy auth)"""
    base = http_server(h).replace("127.0.0.1", STORE_HOST)
    port, access = start_squid(h, "proxyuser", "pr0xy-pw")
    pwf = h.write("proxy.pw", "pr0xy-pw\n", mode=0o600)
    n = Node(h, lma=True, extra="[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n"
             "user = proxyuser\npassword_file = %s\n" % (port, pwf))
    ls = {"type": "HttpServer", "properties": {"url": base + "/api/"}}
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"},
                             "limit": 1})
    check(r["rows"] == [[1, 1.5, "2026-11-01T00:00:00Z"]], "%r", r)
    wait_until(lambda: os.path.exists(access) and "/api/orders" in open(access).read(), 10,
               "squid to log the request")
    check("proxyuser" in open(access).read(), "the proxy saw the user: %s", open(access).read())
    with open(pwf, "w") as f:
        f.write("wrong\n")
    n.p.signal(signal.SIGHUP)   # proxy settings apply to new connections after a reload
    n.p.wait_log(r"event=reload status=done")
    expect_error(n.curl("testConnection", {"linkedService": ls}), 422, "StoreUnreachable", "proxy")
    check("pr0xy-pw" not in n.p.log(), "the proxy password reached the log")
    n.stop_clean()


@test
def test_http_through_system_proxy(h):
    """HttpServer through proxy.mode = system: diahost.exe.config's proxyaddress"""
    base = http_server(h).replace("127.0.0.1", STORE_HOST)
    port, access = start_squid(h, "proxyuser", "pr0xy-pw")
    pwf = h.write("proxy.pw", "pr0xy-pw\n", mode=0o600)
    dia = h.write("diahost.exe.config", """<?xml version="1.0" encoding="utf-8"?>
<configuration><system.net><defaultProxy>
  <proxy proxyaddress="http://127.0.0.1:%d" bypassonlocal="true" />
  <bypasslist><add address="^http://never\\.example$" /></bypasslist>
</defaultProxy></system.net></configuration>
""" % port)
    n = Node(h, lma=True, extra="[proxy]\nmode = system\ndotnet_config = %s\n"
             "dotnet_config_worker = %s\nuser = proxyuser\npassword_file = %s\n" % (dia, dia, pwf))
    ls = {"type": "HttpServer", "properties": {"url": base + "/api/"}}
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"},
                             "limit": 1})
    check(r["rows"] == [[1, 1.5, "2026-11-01T00:00:00Z"]], "%r", r)
    wait_until(lambda: os.path.exists(access) and "/api/orders" in open(access).read(), 10,
               "squid to log the request")
    n.stop_clean()

@test
def test_local_machine_access(h):
    """local machine access off (the default): loopback stores refused with 403"""
    base = http_server(h)
    n = Node(h, lma=False)
    for host in ("127.0.0.1", "localhost", "[::1]"):
        expect_error(n.curl("testConnection", {"linkedService": {"type": "HttpServer", "properties": {
            "url": base.replace("127.0.0.1", host)}}}), 403, "LocalMachineAccessDenied",
            "local-machine-access enable")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": {
        "host": "127.0.0.1", "database": "x", "username": "u", "password": "p"}}}),
        403, "LocalMachineAccessDenied")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "MySql", "properties": {
        "host": "localhost", "username": "u", "password": "p"}}}), 403, "LocalMachineAccessDenied")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Odbc", "properties": {
        "connectionString": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=x"}}}),
        403, "LocalMachineAccessDenied")
    # one of the node's own non-loopback addresses, when it has one
    st, _, ip = n.curl("node/ip", method="GET")
    own = [a["address"] for a in ip["addresses"] if not a["loopback"] and a["family"] == "IPv4"]
    if own:
        expect_error(n.curl("testConnection", {"linkedService": {"type": "HttpServer", "properties": {
            "url": "http://%s:1/" % own[0]}}}), 403, "LocalMachineAccessDenied", own[0])
    n.stop_clean()

@test
def test_node_ip_and_logs(h):
    """GET /v1/node/ip and POST /v1/node/logs (secrets redacted)"""
    n = Node(h, level="debug")
    st, _, js = n.curl("node/ip", method="GET")
    check(st == 200 and js["hostName"] and any(a["address"] == "127.0.0.1" for a in js["addresses"]),
          "%r", js)
    n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": {
        "host": "127.0.0.1", "port": free_port(), "database": "x", "username": "u",
        "password": "hunter2-topsecret"}}})
    st, _, js = n.curl("node/logs", {"maxLines": 500})
    check(st == 200 and js["lineCount"] > 3 and len(js["lines"]) == js["lineCount"], "%r", st)
    text = "\n".join(js["lines"])
    check("event=authoring.request" in text, "bundle: %s", text[-500:])
    check("hunter2" not in text and "hunter2" not in n.p.log(), "a secret leaked")
    expect_error(n.curl("node/logs", {"maxLines": 0}), 400, "InvalidRequest", "maxLines")
    n.stop_clean()

@test
def test_status_and_reload(h):
    """GET /v1/node shows the pool; queue_size and operation_timeout reload live"""
    n = Node(h, jobs=3, queue=7, timeout=20)
    st, _, js = n.curl("node", method="GET")
    check(js["concurrency"] == {"concurrentJobs": 3, "queueSize": 7, "running": 0, "queued": 0,
                                "operationTimeoutSeconds": 20}, "%r", js.get("concurrency"))
    with open(n.conf) as f:
        text = f.read()
    with open(n.conf, "w") as f:
        f.write(text.replace("queue_size = 7", "queue_size = 9").replace("operation_timeout = 20",
                                                                         "operation_timeout = 5"))
    h.run([h.bin("shirctl"), "--socket", n.sock, "reload"], check=0)
    st, _, js = n.curl("node", method="GET")
    check(js["concurrency"]["queueSize"] == 9 and js["concurrency"]["operationTimeoutSeconds"] == 5,
          "%r", js["concurrency"])
    n.stop_clean()


@test
def test_big_csv_bounded_memory(h):
    """a 1 GB CSV previews in bounded memory (VmHWM grows < 64 MiB)"""
    d = h.path("big")
    os.makedirs(d)
    p = os.path.join(d, "huge.csv")
    row = b"12345,some text value here,3.25,2026-11-01T10:00:00\n"
    with open(p, "wb") as f:
        f.write(b"id,text,amount,at\n")
        chunk = row * (4 * 1024 * 1024 // len(row))
        for _ in range(16):          # 64 MiB of real rows ...
            f.write(chunk)
        f.truncate(1 << 30)          # ... then sparse to 1 GiB
    check(os.path.getsize(p) == 1 << 30, "size")
    n = Node(h, allowed=d)
    req = {"linkedService": fs(d), "dataset": ds("huge.csv"), "limit": 1000}
    n.author("preview", dict(req, limit=1))
    before = n.vmhwm_kb()
    for _ in range(3):
        r = n.author("preview", req)
        check(len(r["rows"]) == 1000 and r["truncated"] is True and r["rows"][0][0] == 12345, "%r", r["rows"][0])
    r = n.author("schema", {"linkedService": fs(d), "dataset": ds("huge.csv")})
    check([c["type"] for c in r["columns"]] == ["Int32", "String", "Double", "DateTime"], "%r", r)
    # one long line: the reader keeps AUTH_VALUE_MAX bytes of it, reads at most 64 MiB
    with open(os.path.join(d, "oneline.csv"), "wb") as f:
        f.write(b"a\n")
        f.truncate(1 << 30)
    r = n.author("preview", {"linkedService": fs(d), "dataset": ds("oneline.csv")})
    check(r["truncated"] is True and len(r["rows"]) <= 1, "%r", r)
    grow = n.vmhwm_kb() - before
    # 1000 rows of 50 bytes are ~0.1 MiB of values, the readers buffer 64 KiB
    # chunks; the whole file would be 1 GiB. 64 MiB leaves room for the
    # allocator and sanitizers.
    check(grow < 64 * 1024, "shird's peak memory grew by %d KiB reading a 1 GiB file", grow)
    # the whole answer is capped: 1000 rows of 2 x 4000-byte values would be 8 MB
    with open(os.path.join(d, "wide.csv"), "w") as f:
        f.write("a,b\n")
        for i in range(1000):
            f.write("%s,%s\n" % ("a" * 4000, "b" * 4000))
    st, _, js = n.curl("preview", {"linkedService": fs(d), "dataset": ds("wide.csv"), "limit": 1000})
    size = len(json.dumps(js))
    check(st == 200 and js["truncated"] is True and 100 < len(js["rows"]) < 1000 and size < 5 << 20,
          "capped answer: %d rows, %d bytes", len(js["rows"]), size)
    n.stop_clean()

@test
def test_deadline_and_shutdown(h):
    """a hanging store: 422 timed out at the deadline; SIGTERM answers queued 503"""
    base = http_server(h)
    n = Node(h, lma=True, jobs=1, queue=4, timeout=2, shutdown=3)
    slow = {"linkedService": {"type": "HttpServer", "properties": {"url": base + "/slow"}},
            "dataset": {"type": "Json"}}
    t0 = time.monotonic()
    m = expect_error(n.curl("preview", slow), 422, "StoreUnreachable", "timed out")
    took = time.monotonic() - t0
    check(1.5 < took < 6, "answered after %.1fs with deadline 2s", took)
    # now one running and two queued; SIGTERM: the queued ones get 503 at once
    procs = [subprocess.Popen(n.curl_argv("preview", "x"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        p.stdin.write(json.dumps(slow).encode())
        p.stdin.close()
    wait_until(lambda: n.p.log().count("event=authoring.request") >= 4, 10, "three requests")
    n.p.signal(signal.SIGTERM)
    codes = []
    for p in procs:
        out = p.stdout.read().decode()
        p.wait(30)
        st, _, js = parse_http(out)
        codes.append((st, js["error"]["code"] if st != 200 else "ok"))
    check(sorted(codes).count((503, "ShuttingDown")) == 2, "codes %r", codes)
    check((422, "StoreUnreachable") in codes, "the running one hits its deadline: %r", codes)
    check(n.p.wait_exit(20) == 0, "exit code")


@test
def test_shirctl_author_cli(h):
    """shirctl author: --linked-service/--dataset/--path/--limit, request files, tables, errors"""
    demo = h.path("demo")
    r = h.run(["sh", os.path.join(shirtest.SRCDIR, "tools", "demo-stores"), demo], check=0)
    fs_ls, sq_ls = [json.loads(line) for line in r.stdout.splitlines()]
    n = Node(h, allowed=demo)
    ls_file = h.write("ls.json", json.dumps({"linkedService": fs_ls}))
    sq_file = h.write("sq.json", json.dumps(sq_ls))
    ds_file = h.write("ds.json", json.dumps({"dataset": {"type": "DelimitedText", "path": "orders.csv"}}))
    ctl = [h.bin("shirctl"), "--socket", n.sock, "author"]
    r = h.run(ctl + ["browse", "--local", "--linked-service", ls_file, "--path", "2026"], check=0)
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["NAME", "TYPE", "SCHEMA", "SIZE", "MODIFIED"] and
          lines[2].startswith("customers.csv  file") and "(1 item)" in r.stdout, "%s", r.stdout)
    r = h.run(ctl + ["preview", "--local", "--linked-service", ls_file, "--dataset", ds_file,
                     "--limit", "2"], check=0)
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["id", "customer", "amount", "placed", "status"], "%s", r.stdout)
    check(lines[2].startswith("1   Smith, Jane  129.9   2026-11-01T10:00:00  shipped") and "(2 rows, more available)" in r.stdout,
          "%s", r.stdout)
    # the widths line up: every row starts its second column at the same place
    check(lines[0].index("amount") == lines[2].index("129.9") == lines[3].index("15 "),
          "columns must line up:\n%s", r.stdout)
    req = h.write("req.json", json.dumps({"linkedService": sq_ls}))
    r = h.run(ctl + ["testConnection", "--local", req], check=0)
    check(r.stdout.startswith("Connection succeeded: SQLite 3."), "%s", r.stdout)
    r = h.run(ctl + ["schema", "--local", "--linked-service", sq_file, "--dataset",
                     h.write("t.json", json.dumps({"type": "Table", "table": "orders"}))], check=0)
    rows = [l.split() for l in r.stdout.splitlines()]
    check(["customer_id", "Int64", "false"] in rows and ["amount", "Decimal", "true"] in rows, "%s", r.stdout)
    r = h.run(ctl + ["preview", "--local", "--json", "--linked-service", sq_file, "--dataset",
                     h.write("q.json", json.dumps({"type": "Query", "query": "SELECT name FROM customers ORDER BY id"}))],
              check=0)
    check(json.loads(r.stdout)["rows"] == [["Jane Smith"], ["Müller GmbH"], ["Kim Ng"]], "%s", r.stdout)
    r = h.run(ctl + ["preview", req])
    check(r.returncode == 2 and "--local" in r.stderr, "no channel: %s", r.stderr)
    r = h.run(ctl + ["preview", "--local", "--service-key", "IR@v1@e30", req])
    check(r.returncode == 2 and "exclude each other" in r.stderr, "%s", r.stderr)
    r = h.run(ctl + ["frobnicate", "--local", req])
    check(r.returncode == 2 and "unknown author operation" in r.stderr, "%s", r.stderr)
    n.stop_clean()


@test
def test_metrics_on_the_control_socket(h):
    """GET /metrics (control socket): Prometheus text with the node's status, the answers by
    operation and status, the latency histogram and the pool; the relay may not read it"""
    d = make_files(h)
    n = Node(h, allowed=d)
    n.author("testConnection", {"linkedService": fs(d)})
    n.author("preview", {"linkedService": fs(d), "dataset": ds("orders.csv")})
    n.author("preview", {"linkedService": fs(d), "dataset": ds("missing.csv")}, rc=1)
    r = h.run(["curl", "-sS", "--unix-socket", n.sock, "-D", "-", "http://localhost/metrics"],
              check=0)
    head, _, text = r.stdout.replace("\r\n", "\n").partition("\n\n")
    check("text/plain; version=0.0.4" in head, head)
    series = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        check(re.match(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})?$', name),
              "not a Prometheus series: %r" % line)
        series[name] = float(value)
    check(series.get("shird_up") == 1, "shird_up")
    check(series.get('shird_node_status{status="NeedsRegistration"}') == 1, "%r" % series)
    check(series.get('shird_authoring_requests_total{op="testConnection",status="200"}') == 1 and
          series.get('shird_authoring_requests_total{op="preview",status="200"}') == 1 and
          series.get('shird_authoring_requests_total{op="preview",status="404"}') == 1, "%r" % series)
    check(series.get('shird_authoring_duration_seconds_count{op="preview"}') == 2 and
          series.get('shird_authoring_duration_seconds_bucket{op="preview",le="+Inf"}') == 2,
          "%r" % series)
    check(series.get("shird_workers") == 4 and series.get("shird_queue_depth") == 0, "%r" % series)


if __name__ == "__main__":
    main()
