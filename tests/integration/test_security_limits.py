"""Integration: the Send key's trust boundary on the node (docs/security-limits.md):
which routes each channel may call, symbolic links in browse and reads, and the
per-request memory budget with the deadline. Real shird, shir-relay, SQLite,
PostgreSQL and MariaDB; only hostile peers (an HTTP server that never ends its
body) are simulated."""
import http.server
import json
import os
import re
import subprocess
import threading
import time

import shirtest
from shirtest import check, main, test
from authnode import Node, expect_error

_before = len(shirtest._tests)
import test_listener as tl  # noqa: E402  (its shir-relay and shird helpers)
del shirtest._tests[_before:]  # run only this file's tests here

# The routes a service (Send) key holder may call through the relay. Anything
# else must answer 403 there: a new route is closed to the relay until it is
# added here on purpose (and in docs/security-limits.md).
RELAY_ROUTES = {
    ("POST", "/v1/testConnection"), ("POST", "/v1/browse"), ("POST", "/v1/schema"),
    ("POST", "/v1/preview"), ("GET", "/v1/node/ip"), ("POST", "/v1/node/logs"),
    ("GET", "/v1/test/blob"),  # only with relay.test_routes (testing)
}


def local_call(h, sock, method, path, body):
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60",
            "--unix-socket", sock, "-X", method, "http://localhost" + path]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", body]
    r = subprocess.run(argv, capture_output=True, timeout=90)
    out, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), out


def served(code, out):
    """The route's handler answered (not the router's 403, 404 or 405)."""
    return code not in (0, 403, 405) and b"no such API path" not in out


@test
def test_every_route_from_every_channel(h):
    """each route answers the channels it declares; admin routes are 403 over the relay"""
    h.require("curl", "curl")
    relay = tl.Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = tl.node_with_relay(h, relay, extra="test_routes = true")
    routes = re.findall(r"event=api\.route method=(\S+) path=(\S+) channels=(\S+)", p.log())
    check(len(routes) >= 14, "shird logged too few routes: %r", routes)
    seen = set()
    for method, pattern, chans in routes:
        chans = chans.split(",")
        path = pattern.replace("*", "probe-name")
        body = "{}" if method in ("POST", "PUT") else None
        key = (method, pattern)
        seen.add(key)
        check(("relay" in chans) == (key in RELAY_ROUTES),
              "%s %s is open to %s; the relay may call exactly %r", method, pattern, chans,
              sorted(RELAY_ROUTES))
        check("control-socket" in chans, "%s %s is closed to the control socket", method, pattern)
        # through the relay with the Send key
        p.mark()
        extra = ["-X", method] + (["-H", "Content-Type: application/json", "--data-binary",
                                    body] if body is not None else [])
        code, out, err = tl.curl(h, relay, path, extra=extra)
        if key in RELAY_ROUTES:
            check(served(code, out), "%s %s over the relay: %s %s %s", method, path, code,
                  out[:300], err)
        else:
            check(code == 403, "%s %s over the relay must be 403, got %s %s", method, path, code,
                  out[:300])
            js = json.loads(out)
            check(js["error"]["code"] == "Forbidden" and "control socket" in
                  js["error"]["message"], "%s %s: %r", method, path, js)
            # nothing of the node's state leaks in the refusal
            check(str(p.pid).encode() not in out and conf.encode() not in out,
                  "the 403 leaks the pid or config path: %r", out)
            p.wait_log(r"event=api\.forbidden method=%s path=%s channel=relay" % (
                method, re.escape(path)))
        # through the control socket (the node's admin)
        code, out = local_call(h, sock, method, path, body)
        check(served(code, out), "%s %s on the control socket: %s %s", method, path, code,
              out[:300])
    check(("POST", "/v1/node/reload") in seen and ("GET", "/v1/node") in seen and
          ("PUT", "/v1/credentials/*") in seen, "the admin routes were not listed: %r", seen)
    check(RELAY_ROUTES <= seen, "routes missing from the log: %r", RELAY_ROUTES - seen)
    # the refused admin calls did nothing: exactly the one reload made on the control
    # socket (and the registration POST, which reloads too) happened
    reloads = len(re.findall(r"event=reload status=done", p.log()))
    check(reloads == 2, "reloads: %d (want the two made on the control socket)\n%s", reloads,
          p.tail(40))
    tl.stop_clean(p)


# ---- item 5: symbolic links in browse and reads ------------------------------

def fs(root):
    return {"type": "FileSystem", "properties": {"root": root}}


def symlink_tree(h):
    allowed = h.path("allowed")
    root = os.path.join(allowed, "root")
    outside = h.path("outside")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(outside, "odir"))
    with open(os.path.join(root, "ok.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    with open(os.path.join(root, "sub", "data.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    with open(os.path.join(allowed, "sibling.csv"), "w") as f:
        f.write("a\n1\n")
    secret = os.path.join(outside, "secret.csv")
    with open(secret, "w") as f:
        f.write("secret\nTOPSECRET\n" + "x" * 12000 + "\n")
    os.utime(secret, (1000000000, 1000000000))  # 2001: recognisable in a listing
    os.utime(os.path.join(outside, "odir"), (1000000000, 1000000000))
    links = {"link_shadow": "/etc/shadow", "link_secret": secret,
             "link_odir": os.path.join(outside, "odir"), "link_sibling": "../sibling.csv",
             "link_dangling": os.path.join(outside, "nothing"), "link_in": "ok.csv",
             "link_sub": "sub"}
    for name, target in links.items():
        os.symlink(target, os.path.join(root, name))
    return allowed, root, outside


@test
def test_browse_hides_what_lies_behind_links(h):
    """browse: a link leaving the root is left out (no type, size or time of its target)"""
    allowed, root, outside = symlink_tree(h)
    n = Node(h, allowed=allowed)
    r = n.author("browse", {"linkedService": fs(root)})
    items = {i["name"]: i for i in r["items"]}
    check(set(items) == {"ok.csv", "sub", "link_in", "link_sub"},
          "links that leave the root must not be listed: %r", r["items"])
    size = os.path.getsize(os.path.join(root, "ok.csv"))
    check(items["link_in"]["type"] == "file" and items["link_in"]["size"] == size,
          "a link inside the root shows its target: %r", items["link_in"])
    check(items["link_sub"]["type"] == "folder", "%r", items["link_sub"])
    text = json.dumps(r)
    check("2001-" not in text and "12017" not in text, "an outside target's metadata: %s", text)
    # the targets themselves: refused (403), whatever they are, and the same for a
    # read (preview, schema)
    for name in ("link_shadow", "link_secret", "link_odir", "link_sibling"):
        expect_error(n.curl("browse", {"linkedService": fs(root), "path": name}), 403,
                     "PathNotAllowed")
        expect_error(n.curl("preview", {"linkedService": fs(root), "dataset": {
            "type": "DelimitedText", "path": name}}), 403, "PathNotAllowed")
        expect_error(n.curl("schema", {"linkedService": fs(root), "dataset": {
            "type": "Json", "path": name}}), 403, "PathNotAllowed")
    r = n.author("preview", {"linkedService": fs(root), "dataset": {
        "type": "DelimitedText", "path": "link_sub/data.csv"}})
    check(r["rows"] == [[1, 2]], "%r", r)
    n.stop_clean()


@test
def test_link_swapped_during_reads_is_never_followed(h):
    """a folder swapped for a link to outside while reads run: never read, never listed"""
    allowed, root, outside = symlink_tree(h)
    with open(os.path.join(outside, "data.csv"), "w") as f:
        f.write("a,b\nTOPSECRET,1\n")
    n = Node(h, allowed=allowed, jobs=4)
    sub = os.path.join(root, "sub")
    real = os.path.join(root, "sub.real")
    os.rename(sub, real)
    stop = threading.Event()

    def flip():
        # sub is, in turn, the real folder (a link to sub.real inside the root)
        # and a link to the outside folder
        tmp = os.path.join(root, ".sub.tmp")
        while not stop.is_set():
            for target in (real, outside):
                try:
                    os.symlink(target, tmp)
                    os.rename(tmp, sub)
                except OSError:
                    pass
    t = threading.Thread(target=flip)
    t.start()
    leaked = []
    kinds = {}
    lock = threading.Lock()

    def reader(k):
        deadline = time.monotonic() + 3
        i = k
        while time.monotonic() < deadline:
            i += 1
            if i % 2:
                st, _, js = n.curl("preview", {"linkedService": fs(root), "dataset": {
                    "type": "DelimitedText", "path": "sub/data.csv"}})
            else:
                st, _, js = n.curl("browse", {"linkedService": fs(root), "path": "sub"})
            with lock:
                kinds[st] = kinds.get(st, 0) + 1
                if "TOPSECRET" in json.dumps(js) or "secret.csv" in json.dumps(js):
                    leaked.append(js)
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    try:
        for r in readers:
            r.start()
        for r in readers:
            r.join()
    finally:
        stop.set()
        t.join()
    check(not leaked, "the outside folder was read through the swapped link: %r", leaked[:3])
    check(kinds.get(200, 0) > 0 and kinds.get(403, 0) > 0, "both outcomes expected: %r", kinds)
    n.stop_clean()


@test
def test_only_regular_files_are_read(h):
    """a FIFO or a folder named as a dataset is refused at once (400), not waited on"""
    allowed, root, outside = symlink_tree(h)
    os.mkfifo(os.path.join(root, "pipe.csv"))
    n = Node(h, allowed=allowed, timeout=10, jobs=1)
    t0 = time.monotonic()
    for path in ("pipe.csv", "sub"):
        expect_error(n.curl("preview", {"linkedService": fs(root), "dataset": {
            "type": "DelimitedText", "path": path}}), 400, "InvalidRequest", "not a regular file")
    check(time.monotonic() - t0 < 5, "took %.1f s", time.monotonic() - t0)
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": os.path.join(root, "pipe.csv")}}}), 400, "InvalidRequest", "not a regular file")
    check(time.monotonic() - t0 < 5, "took %.1f s", time.monotonic() - t0)
    # the only worker is free: nothing waits on the FIFO
    r = n.author("preview", {"linkedService": fs(root), "dataset": {
        "type": "DelimitedText", "path": "ok.csv"}})
    check(r["rows"] == [[1, 2]], "%r", r)
    n.stop_clean()


# ---- item 4: the per-request memory budget and the deadline -------------------

MIB = 1024 * 1024

# ASan keeps freed memory in a quarantine (256 MB by default), which would show in
# VmHWM as if the node held it; a small one makes VmHWM what the node really uses.
SMALL_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=8") if x)}


def grew_mib(n, before_kb):
    return (n.vmhwm_kb() - before_kb) / 1024.0


def sqlite_db(h):
    import sqlite3
    d = h.path("dbs")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "small.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER, name TEXT)")
    db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    db.commit()
    db.close()
    return d, path


@test
def test_sqlite_request_memory_budget(h):
    """SQLite: one huge value or a heap past the budget is 413 ResultTooLarge, fast; shird stays small"""
    d, path = sqlite_db(h)
    n = Node(h, allowed=d, timeout=20, env=SMALL_QUARANTINE)
    ls = {"type": "Sqlite", "properties": {"path": path}}
    ok = {"linkedService": ls, "dataset": {"type": "Table", "table": "t"}}
    check(n.author("preview", ok)["rows"] == [[1, "one"], [2, "two"]], "the node works")
    before = n.vmhwm_kb()
    # every value under the length limit, the row over the heap budget (3 x 30 MB):
    # the allocator's per-connection count refuses it
    t0 = time.monotonic()
    q = "SELECT randomblob(30000000) AS a, randomblob(30000000) AS b, randomblob(30000000) AS c"
    msg = expect_error(n.curl("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": q}}), 413, "ResultTooLarge", "node.request_memory_limit",
        "64 MiB")
    # the query: ~3 GB before; refused by SQLITE_LIMIT_LENGTH at the first value
    q = "SELECT length(replace(hex(randomblob(400000000)),'A','BB'))"
    for op in ("preview", "schema"):
        expect_error(n.curl(op, {"linkedService": ls, "dataset": {"type": "Query", "query": q}}),
                     413, "ResultTooLarge", "node.request_memory_limit")
    took = time.monotonic() - t0
    check(took < 15, "the refusals took %.1f s (the deadline is 20 s)", took)
    grew = grew_mib(n, before)
    print("# shird's VmHWM grew by %.0f MiB" % grew)
    check(grew < 160, "shird grew by %.0f MiB (budget 64 MiB)", grew)
    # the node goes on serving, the same connection type included
    check(n.author("preview", ok)["rows"] == [[1, "one"], [2, "two"]], "after the refusals")
    check("event=authoring.done" in n.p.log() and "status=413 code=ResultTooLarge" in n.p.log(),
          "the log names the outcome:\n%s", n.p.tail(10))
    n.stop_clean()
    # the budget is the admin's: a larger one lets the 90 MB row through (values cut)
    n = Node(h, allowed=d, timeout=20, extra="[node]\nrequest_memory_limit = 256\n")
    q = "SELECT randomblob(30000000) AS a, randomblob(30000000) AS b, randomblob(30000000) AS c"
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Query", "query": q}})
    check(len(r["rows"]) == 1 and len(r["rows"][0]) == 3, "%r", r)
    n.stop_clean()


@test
def test_sqlite_deadline_interrupts_the_statement(h):
    """SQLite: an endless statement is interrupted at the deadline and its worker freed"""
    d, path = sqlite_db(h)
    n = Node(h, allowed=d, timeout=2, jobs=1)
    ls = {"type": "Sqlite", "properties": {"path": path}}
    q = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
         "SELECT count(*) FROM c")
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": q}}), 422, "StoreUnreachable", "timed out after 2 s")
    # the only worker is free again: the statement was stopped, not left running
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Table", "table": "t"}})
    took = time.monotonic() - t0
    check(r["rows"] == [[1, "one"], [2, "two"]] and took < 5, "%r after %.1f s", r, took)
    n.stop_clean()


@test
def test_postgresql_request_memory_budget(h):
    """PostgreSQL: a 100 MB row is cancelled at the budget (413); many rows stop at the limit"""
    from stores import shared_pg
    pg = shared_pg()
    n = Node(h, timeout=20, env=SMALL_QUARANTINE)
    ls = pg.linked_service()
    check(n.author("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": "SELECT 1 AS one"}})["rows"] == [[1]], "the node works")
    before = n.vmhwm_kb()
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": "SELECT repeat('x', 100000000) AS big"}}), 413,
        "ResultTooLarge", "PostgreSQL", "node.request_memory_limit")
    check(time.monotonic() - t0 < 15, "took %.1f s", time.monotonic() - t0)
    grew = grew_mib(n, before)
    print("# shird's VmHWM grew by %.0f MiB" % grew)
    check(grew < 160, "shird grew by %.0f MiB (budget 64 MiB)", grew)
    # ten million rows: single-row mode reads one more than the limit and cancels
    t0 = time.monotonic()
    r = n.author("preview", {"linkedService": ls, "limit": 5, "dataset": {
        "type": "Query", "query": "SELECT g, repeat('y', 1000) AS pad FROM "
        "generate_series(1, 10000000) g"}})
    check(len(r["rows"]) == 5 and r["truncated"] is True, "%r", r)
    check(time.monotonic() - t0 < 15, "took %.1f s", time.monotonic() - t0)
    check(n.author("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": "SELECT 2 AS two"}})["rows"] == [[2]], "after the refusal")
    # the server is not left running it
    active = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%repeat(''x''%%' "
                    "AND state = 'active' AND pid <> pg_backend_pid()").strip()
    check(active == "0", "the big query still runs in the server: %s", active)
    n.stop_clean()


@test
def test_odbc_request_memory_budget(h):
    """ODBC (psqlODBC buffers whole answers): the driver's socket is cut at the budget (413)"""
    from stores import shared_pg, odbcinst_dir
    pg = shared_pg()
    n = Node(h, timeout=20, env=dict(SMALL_QUARANTINE, ODBCSYSINI=odbcinst_dir(h),
                                     ODBCINI=h.path("odbc", "odbc.ini")))
    ls = pg.odbc_linked_service()
    check(n.author("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": "SELECT 1 AS one"}})["rows"] == [[1]], "the node works")
    for q in ("SELECT g, repeat('y', 1000) AS pad FROM generate_series(1, 150000) g",
              "SELECT repeat('x', 100000000) AS big"):
        before = n.vmhwm_kb()
        t0 = time.monotonic()
        expect_error(n.curl("preview", {"linkedService": ls, "limit": 5, "dataset": {
            "type": "Query", "query": q}}), 413, "ResultTooLarge", "ODBC",
            "node.request_memory_limit")
        check(time.monotonic() - t0 < 15, "took %.1f s", time.monotonic() - t0)
        grew = grew_mib(n, before)
        print("# shird's VmHWM grew by %.0f MiB (%s)" % (grew, q[:30]))
        # the driver copies what it receives (libpq's buffer, then its rows)
        check(grew < 200, "shird grew by %.0f MiB (budget 64 MiB)", grew)
    check(n.author("preview", {"linkedService": ls, "dataset": {
        "type": "Query", "query": "SELECT 2 AS two"}})["rows"] == [[2]], "after the refusals")
    n.stop_clean()


@test
def test_mariadb_request_memory_budget(h):
    """MariaDB: a row (packet) over the budget is 413, even when the server would send 100 MB"""
    from stores import shared_mariadb
    my = shared_mariadb()
    # a server that sends what it is asked for (a hostile one would send more)
    my.sql("SET GLOBAL max_allowed_packet = 1073741824", db="")
    try:
        n = Node(h, timeout=20, env=SMALL_QUARANTINE)
        ls = my.linked_service()
        check(n.author("preview", {"linkedService": ls, "dataset": {
            "type": "Query", "query": "SELECT 1 AS one"}})["rows"] == [[1]], "the node works")
        before = n.vmhwm_kb()
        t0 = time.monotonic()
        expect_error(n.curl("preview", {"linkedService": ls, "dataset": {
            "type": "Query", "query": "SELECT REPEAT('x', 100000000) AS big"}}), 413,
            "ResultTooLarge", "MySQL", "node.request_memory_limit")
        check(time.monotonic() - t0 < 15, "took %.1f s", time.monotonic() - t0)
        grew = grew_mib(n, before)
        print("# shird's VmHWM grew by %.0f MiB" % grew)
        check(grew < 160, "shird grew by %.0f MiB (budget 64 MiB)", grew)
        check(n.author("preview", {"linkedService": ls, "dataset": {
            "type": "Query", "query": "SELECT 2 AS two"}})["rows"] == [[2]], "after the refusal")
        n.stop_clean()
    finally:
        my.sql("SET GLOBAL max_allowed_packet = 16777216", db="")


class RogueMySQL:
    """The attacker's side: a MySQL server (protocol 10, any password) that answers
    every statement with OK and the database listing with rows of name_len bytes
    until total bytes were sent (bounded), in a thread on a loopback port."""

    def __init__(self, h, total, name_len=1000):
        import socket
        self.total, self.name_len = total, name_len
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.queries = []
        threading.Thread(target=self._serve, daemon=True).start()
        h.on_cleanup(self.srv.close)

    @staticmethod
    def _pkt(seq, payload):
        return len(payload).to_bytes(3, "little") + bytes([seq & 0xff]) + payload

    @staticmethod
    def _lenenc(b):
        n = len(b)
        if n < 251:
            return bytes([n]) + b
        if n < 1 << 16:
            return b"\xfc" + n.to_bytes(2, "little") + b
        return b"\xfd" + n.to_bytes(3, "little") + b

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _read(self, c):
        head = b""
        while len(head) < 4:
            d = c.recv(4 - len(head))
            if not d:
                return None, None
            head += d
        n = int.from_bytes(head[:3], "little")
        body = b""
        while len(body) < n:
            d = c.recv(n - len(body))
            if not d:
                return None, None
            body += d
        return head[3], body

    def _conn(self, c):
        ok = b"\x00\x00\x00\x02\x00\x00\x00"
        eof = b"\xfe\x00\x00\x02\x00"
        caps = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000
        greet = (b"\x0a" + b"8.0.0-rogue\x00" + (7).to_bytes(4, "little") + b"abcdefgh\x00" +
                 (caps & 0xffff).to_bytes(2, "little") + b"\x21" + b"\x02\x00" +
                 (caps >> 16).to_bytes(2, "little") + b"\x15" + b"\x00" * 10 +
                 b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
        try:
            c.sendall(self._pkt(0, greet))
            seq, _ = self._read(c)
            if seq is None:
                return
            c.sendall(self._pkt(seq + 1, ok))
            while True:
                seq, body = self._read(c)
                if body is None or body[:1] == b"\x01":
                    return
                q = body[1:].decode(errors="replace")
                self.queries.append(q)
                if "schemata" not in q or "schema_name =" in q:
                    c.sendall(self._pkt(1, ok))
                    continue
                col = (self._lenenc(b"def") + self._lenenc(b"information_schema") +
                       self._lenenc(b"schemata") + self._lenenc(b"schemata") +
                       self._lenenc(b"schema_name") + self._lenenc(b"schema_name") +
                       b"\x0c" + (33).to_bytes(2, "little") + (256).to_bytes(4, "little") +
                       b"\xfd" + b"\x00\x00" + b"\x00" + b"\x00\x00")
                out = [self._pkt(1, b"\x01"), self._pkt(2, col), self._pkt(3, eof)]
                s, sent, i = 4, 0, 0
                while sent < self.total:
                    name = (b"db%08d" % i).ljust(self.name_len, b"x")
                    out.append(self._pkt(s, self._lenenc(name)))
                    s, sent, i = s + 1, sent + len(name), i + 1
                    if len(out) >= 256:
                        c.sendall(b"".join(out))
                        out = []
                out.append(self._pkt(s, eof))
                c.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            c.close()


@test
def test_mysql_listing_from_a_hostile_server(h):
    """MySQL browse reads a row at a time: a server's endless listing stops at the budget (413)"""
    rogue = RogueMySQL(h, total=40 * MIB)
    n = Node(h, timeout=20, env=SMALL_QUARANTINE,
             extra="[node]\nrequest_memory_limit = 8\n")
    ls = {"type": "MySql", "properties": {"host": "127.0.0.1", "port": rogue.port,
                                          "username": "u", "password": "p"}}
    before = n.vmhwm_kb()
    expect_error(n.curl("browse", {"linkedService": ls}), 413, "ResultTooLarge", "MySQL listing",
                 "8 MiB", "node.request_memory_limit")
    check(any("schemata" in q for q in rogue.queries), "the listing was not asked: %r",
          rogue.queries)
    grew = grew_mib(n, before)
    print("# shird's VmHWM grew by %.0f MiB" % grew)
    check(grew < 40, "shird grew by %.0f MiB for an 8 MiB budget", grew)
    # a listing of many small names stops at 100,000 entries, truncated
    rogue2 = RogueMySQL(h, total=150000 * 10, name_len=10)
    ls["properties"]["port"] = rogue2.port
    r = n.author("browse", {"linkedService": ls, "limit": 10})
    check(len(r["items"]) == 10 and r["truncated"] is True, "%r", r)
    n.stop_clean()


class _Endless(http.server.BaseHTTPRequestHandler):
    """A hostile HttpServer: a JSON array that never gets a row (bounded: 256 MiB)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b" " * (1024 * 1024)
        try:
            self.wfile.write(b"[")
            for _ in range(256):
                self.wfile.write(chunk)
        except OSError:
            pass


@test
def test_http_request_memory_budget(h):
    """HttpServer: an answer that goes on without rows stops at the budget (413), not the deadline"""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    h.on_cleanup(srv.shutdown)
    n = Node(h, timeout=30)
    ls = {"type": "HttpServer", "properties": {"url": "http://127.0.0.1:%d/" % srv.server_port}}
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": {
        "type": "Json", "relativeUrl": "rows"}}), 413, "ResultTooLarge", "HttpServer",
        "node.request_memory_limit")
    check(time.monotonic() - t0 < 20, "took %.1f s", time.monotonic() - t0)
    n.stop_clean()


if __name__ == "__main__":
    main()
