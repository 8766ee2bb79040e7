"""Integration: the Send key's trust boundary in the connectors
(docs/security-connectors.md). A request may run read-only authoring within
the node's policy and nothing else: no store client feature may let the
request or the remote server reach the node's files, processes or network.

The attacker's side (a rogue MySQL server) is simulated here; everything
else is real: shird, MariaDB, PostgreSQL, unixODBC with psqlODBC, SQLite,
a local HTTP server."""
import http.server
import json
import os
import socket
import sqlite3
import struct
import threading
import time

from authnode import Node, expect_error
from shirtest import check, free_port, main, make_test_pki, test, wait_until
from stores import Postgres, odbcinst_dir, shared_mariadb, shared_pg

SECRET = "machine-key-7f3a9c-TOPSECRET"


def query(q):
    return {"type": "Query", "query": q}


# ---- a rogue MySQL server ---------------------------------------------------

CLIENT_LOCAL_FILES = 0x80


class RogueMySQL:
    """Speaks enough of the MySQL protocol to greet, accept any login and
    answer every query that is not a SET/START with a LOCAL INFILE request
    (0xFB) naming `steal`; records every byte it receives. Bounded: at most
    1 MiB per connection, 5 s of silence ends a connection."""

    def __init__(self, steal, switch_to=None):
        self.steal = steal
        self.switch_to = switch_to
        self.received = b""
        self.client_caps = []
        self.queries = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stop = True
        self.sock.close()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _recv_packet(self, c):
        head = self._recvn(c, 4)
        ln = head[0] | head[1] << 8 | head[2] << 16
        body = self._recvn(c, ln)
        with self.lock:
            self.received += head + body
        return head[3], body

    def _recvn(self, c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise EOFError()
            b += d
            if len(self.received) > 1 << 20:
                raise EOFError()
        return b

    @staticmethod
    def _send(c, seq, body):
        c.sendall(struct.pack("<I", len(body))[:3] + bytes([seq & 0xFF]) + body)

    @staticmethod
    def _ok():
        return b"\x00\x00\x00\x02\x00\x00\x00"

    def _serve(self, c):
        c.settimeout(5)
        try:
            caps = 0x0001 | 0x0004 | 0x0008 | CLIENT_LOCAL_FILES | 0x0200 | 0x2000 | 0x8000 | \
                0x10000 | 0x20000 | 0x80000
            salt = b"abcdefghijklmnopqrst"
            greet = (b"\x0a" + b"8.0.99-rogue\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00" +
                     struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2) +
                     struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + salt[8:] + b"\x00" +
                     b"mysql_native_password\x00")
            self._send(c, 0, greet)
            seq, resp = self._recv_packet(c)
            with self.lock:
                self.client_caps.append(struct.unpack("<I", resp[:4])[0])
            if self.switch_to:
                # "use this plugin instead": mysql_clear_password would send
                # the password itself
                self._send(c, seq + 1, b"\xfe" + self.switch_to.encode() + b"\x00" + salt + b"\x00")
                seq, _ = self._recv_packet(c)
            self._send(c, seq + 1, self._ok())
            while True:
                seq, pkt = self._recv_packet(c)
                if not pkt or pkt[0] == 0x01:      # COM_QUIT
                    return
                if pkt[0] != 0x03:
                    self._send(c, seq + 1, self._ok())
                    continue
                q = pkt[1:].decode("utf-8", "replace")
                with self.lock:
                    self.queries.append(q)
                if q.upper().startswith(("SET ", "START ")):
                    self._send(c, seq + 1, self._ok())
                    continue
                # any other query: "send me this file"
                self._send(c, seq + 1, b"\xfb" + self.steal.encode())
                nseq = seq + 2
                while True:
                    s2, data = self._recv_packet(c)
                    nseq = s2 + 1
                    if not data:
                        break
                self._send(c, nseq, self._ok())
        except (EOFError, OSError):
            pass
        finally:
            c.close()


@test
def test_mysql_local_infile_never_sends_a_file(h):
    """MySql: neither the request (LOAD DATA LOCAL) nor the server (0xFB) gets a node file"""
    secret = h.write("machine.key", SECRET + "\n", mode=0o600)
    rogue = RogueMySQL(secret)
    h.on_cleanup(rogue.close)
    n = Node(h, timeout=8)
    ls = {"type": "MySql", "properties": {"host": "127.0.0.1", "port": rogue.port,
                                          "database": "shop", "username": "u", "password": "p"}}
    # the request asks for it: refused before the server hears of it
    for q in ("LOAD DATA LOCAL INFILE '%s' INTO TABLE t" % secret,
              "load data local infile '%s' into table t" % secret,
              "/* hi */ LOAD DATA LOCAL INFILE '%s' INTO TABLE t" % secret,
              "SELECT 1 INTO OUTFILE '/tmp/x'",
              "/*!LOAD DATA LOCAL INFILE '%s' INTO TABLE t*/" % secret,
              "SELECT '\\' INTO DUMPFILE '/tmp/y' -- '"):
        expect_error(n.curl("preview", {"linkedService": ls, "dataset": query(q)}),
                     403, "ReadOnlyViolation")
    check(not any("INFILE" in q.upper() or "OUTFILE" in q.upper() or "DUMPFILE" in q.upper()
                  for q in rogue.queries), "the server saw %r", rogue.queries)
    # the server asks for it on an ordinary SELECT: the client sends nothing
    st, _, js = n.curl("preview", {"linkedService": ls, "dataset": query("SELECT 1")})
    check(st != 200, "a LOCAL INFILE answer was taken as rows: %r", js)
    check(rogue.client_caps and all(not (cap & CLIENT_LOCAL_FILES) for cap in rogue.client_caps),
          "the client offered CLIENT_LOCAL_FILES: %r", [hex(x) for x in rogue.client_caps])
    check(SECRET.encode() not in rogue.received, "the node sent the file to the server")
    # and the node keeps serving
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"]["product"] == "MySQL", "%r", r)
    n.stop_clean()


@test
def test_mysql_server_cannot_ask_for_the_password(h):
    """MySql: a server that switches to mysql_clear_password or dialog never gets the password"""
    for plugin in ("mysql_clear_password", "dialog"):
        rogue = RogueMySQL("/nonexistent", switch_to=plugin)
        n = Node(h, timeout=8)
        ls = {"type": "MySql", "properties": {"host": "127.0.0.1", "port": rogue.port,
                                              "database": "shop", "username": "u",
                                              "password": "Cl3ar-Stored-Secret"}}
        st, _, js = n.curl("testConnection", {"linkedService": ls})
        check(st != 200, "%s: %r", plugin, js)
        check(b"Cl3ar-Stored-Secret" not in rogue.received, "%s: the password went in clear", plugin)
        n.stop_clean()
        rogue.close()


@test
def test_mysql_real_server_refuses_file_statements(h):
    """MySql (MariaDB): LOAD DATA LOCAL, INTO OUTFILE and non-reading statements refused by the node"""
    s = shared_mariadb()
    s.sql("CREATE TABLE IF NOT EXISTS loaded (a TEXT)")
    s.sql("CREATE USER IF NOT EXISTS 'loader'@'127.0.0.1' IDENTIFIED BY 'l0ader-pw'; "
          "GRANT ALL ON *.* TO 'loader'@'127.0.0.1'", db="")
    secret = h.write("secret.txt", SECRET + "\n")
    os.chmod(h.path(), 0o755)
    n = Node(h)
    ls = s.linked_service(username="loader", password="l0ader-pw")
    for q in ("LOAD DATA LOCAL INFILE '%s' INTO TABLE loaded" % secret,
              "SELECT 'x' INTO OUTFILE '/tmp/shir-outfile-%d'" % os.getpid(),
              "SET GLOBAL local_infile = 1", "DO SLEEP(0)", "HANDLER loaded OPEN"):
        m = expect_error(n.curl("preview", {"linkedService": ls, "dataset": query(q)}),
                         403, "ReadOnlyViolation")
    check("read-only" in m or "reads" in m, m)
    check(s.sql("SELECT count(*) FROM loaded").strip() == "0", "a file was loaded")
    check(not os.path.exists("/tmp/shir-outfile-%d" % os.getpid()), "OUTFILE written")
    r = n.author("preview", {"linkedService": ls, "dataset": query(
        "-- a comment\n(SELECT 'INFILE is only a string' AS a)")})
    check(r["rows"] == [["INFILE is only a string"]], "%r", r)
    n.stop_clean()


# ---- ODBC --------------------------------------------------------------------

def odbc_env(h):
    return {"ODBCSYSINI": odbcinst_dir(h), "ODBCINI": h.path("odbc", "odbc.ini")}


def odbc_ls(cs, user=True):
    props = {"connectionString": cs}
    if user:
        props.update(username="reader", password="r3ader-Secret")
    return {"type": "Odbc", "properties": props}


@test
def test_odbc_host_rule_on_every_host_keyword(h):
    """Odbc: local machine access checked on every host a driver may use; no port-state oracle"""
    s = shared_pg()
    env = odbc_env(h)
    with open(env["ODBCINI"], "w") as f:
        f.write("[shopdsn]\nDriver=PostgreSQL Unicode\nServername=127.0.0.1\nPort=%d\n"
                "Database=shop\nSSLMode=disable\n" % s.port)
    n = Node(h, lma=False, env=env)
    closed = free_port()
    cases = [
        ("Servername twice", "Server=192.0.2.10;Server=127.0.0.1", 400, "InvalidRequest"),
        ("aliases", "Server=192.0.2.10;Servername=127.0.0.1", 400, "InvalidRequest"),
        ("case and spaces", "Server=192.0.2.10; sErVeR =127.0.0.1", 400, "InvalidRequest"),
        ("a host list", "Server=192.0.2.10,127.0.0.1", 403, "LocalMachineAccessDenied"),
        ("a socket path", "Server=/var/run/postgresql", 403, "LocalMachineAccessDenied"),
        ("braced", "Server={127.0.0.1}", 403, "LocalMachineAccessDenied"),
        ("libpq options", "Server=192.0.2.10;pqopt={host=127.0.0.1}", 400, "InvalidRequest"),
        ("brace tricks", "Server={192.0.2.10}}};Server=127.0.0.1}", 400, "InvalidRequest"),
        ("no server (the driver's default is this machine)", "Description=x", 403,
         "LocalMachineAccessDenied"),
    ]
    for what, hosts, status, code in cases:
        msgs = set()
        for port in (s.port, closed):
            cs = "Driver={PostgreSQL Unicode};%s;Port=%d;Database=shop;SSLMode=disable" % (hosts, port)
            t0 = time.monotonic()
            msgs.add(expect_error(n.curl("testConnection", {"linkedService": odbc_ls(cs)}),
                                  status, code))
            check(time.monotonic() - t0 < 3, "%s: %.1fs (a connection was tried)", what,
                  time.monotonic() - t0)
        check(len(msgs) == 1, "%s: the answer depends on the port's state: %r", what, msgs)
    # a data source the admin registered is checked where it points
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls("DSN=shopdsn")}), 403,
                 "LocalMachineAccessDenied", "127.0.0.1")
    check(s.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'reader'").strip() == "0",
          "a connection reached the store")
    n.stop_clean()


@test
def test_odbc_no_file_keywords(h):
    """Odbc: SAVEFILE, FILEDSN, Driver= as a path, unregistered DSN, file-reading keywords refused"""
    s = shared_pg()
    env = odbc_env(h)
    n = Node(h, lma=True, env=env)
    base = "Server=127.0.0.1;Port=%d;Database=shop;SSLMode=disable" % s.port
    good = "Driver={PostgreSQL Unicode};" + base
    n.author("testConnection", {"linkedService": odbc_ls(good)})
    saved = h.path("stolen.dsn")
    m = expect_error(n.curl("testConnection", {"linkedService": odbc_ls(good + ";SAVEFILE=" + saved)}),
                     400, "InvalidRequest", "SAVEFILE")
    check(not os.path.exists(saved), "SAVEFILE wrote %s", saved)
    dsnfile = h.write("x.dsn", "[ODBC]\nDriver=PostgreSQL Unicode\nServername=127.0.0.1\nPort=%d\n"
                      "Database=shop\n" % s.port)
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls("FILEDSN=%s;%s" % (dsnfile, base))}),
                 400, "InvalidRequest", "FILEDSN")
    lib = None
    with open(os.path.join(env["ODBCSYSINI"], "odbcinst.ini")) as f:
        for line in f:
            if line.startswith("Driver="):
                lib = line.strip().split("=", 1)[1]
    m = expect_error(n.curl("testConnection", {"linkedService": odbc_ls("Driver=%s;%s" % (lib, base))}),
                     400, "UnsupportedStoreType", "never a path")
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls("Driver={%s};%s" % (lib, base))}),
                 400, "UnsupportedStoreType")
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls("DSN=%s;%s" % (dsnfile, base))}),
                 400, "InvalidRequest", "not registered")
    for kw in ("ConnSettings={CREATE TABLE x (a int)}", "pqopt={passfile=/etc/shadow}",
               "SSLKey=/etc/ssl/private/node.key", "Plugin_Dir=/tmp", "Socket=/run/mysqld.sock",
               "InitStmt={SET GLOBAL x=1}", "Driver={PostgreSQL Unicode}"):
        expect_error(n.curl("testConnection", {"linkedService": odbc_ls(good + ";" + kw)}),
                     400, "InvalidRequest")
    # UID/PWD given twice (in the string and as username/password)
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls(good + ";UID=postgres")}),
                 400, "InvalidRequest", "UID")
    n.author("testConnection", {"linkedService": odbc_ls(good)})
    n.stop_clean()


@test
def test_odbc_mariadb_no_file(h):
    """Odbc (MariaDB Connector/ODBC): LOAD DATA LOCAL refused; a rogue server gets no file"""
    secret = h.write("machine.key", SECRET + "\n", mode=0o644)
    os.chmod(h.path(), 0o755)
    rogue = RogueMySQL(secret)
    h.on_cleanup(rogue.close)
    n = Node(h, lma=True, timeout=8, env=odbc_env(h))
    ls = odbc_ls("Driver={MariaDB Unicode};Server=127.0.0.1;Port=%d;Database=shop" % rogue.port)
    for q in ("SELECT 1", "LOAD DATA LOCAL INFILE '%s' INTO TABLE t" % secret):
        st, _, js = n.curl("preview", {"linkedService": ls, "dataset": query(q)})
        check(st != 200, "%s: %r", q, js)
    check(SECRET.encode() not in rogue.received, "the node sent the file to the server")
    s = shared_mariadb()
    s.sql("CREATE TABLE IF NOT EXISTS loaded (a TEXT)")
    s.sql("CREATE USER IF NOT EXISTS 'loader'@'127.0.0.1' IDENTIFIED BY 'l0ader-pw'; "
          "GRANT ALL ON *.* TO 'loader'@'127.0.0.1'", db="")
    real = {"type": "Odbc", "properties": {
        "connectionString": "Driver={MariaDB Unicode};Server=127.0.0.1;Port=%d;Database=shop" % s.port,
        "username": "loader", "password": "l0ader-pw"}}
    r = n.author("preview", {"linkedService": real, "dataset": query("SELECT 1 AS one")})
    check(r["rows"] == [[1]], "%r", r)
    for q in ("LOAD DATA LOCAL INFILE '%s' INTO TABLE loaded" % secret,
              "SELECT 'x' INTO OUTFILE '/tmp/shir-odbc-outfile-%d'" % os.getpid()):
        expect_error(n.curl("preview", {"linkedService": real, "dataset": query(q)}), 403,
                     "ReadOnlyViolation", "dataset.query")
    check(s.sql("SELECT count(*) FROM loaded").strip() == "0", "a file was loaded")
    n.stop_clean()


@test
def test_odbc_psqlodbc_no_node_pgpass(h):
    """Odbc (psqlODBC): libpq under the driver never reads the node user's ~/.pgpass"""
    s = shared_pg()
    home = h.path("home")
    os.makedirs(home)
    with open(os.path.join(home, ".pgpass"), "w") as f:
        f.write("*:*:*:reader:r3ader-Secret\n")
    os.chmod(os.path.join(home, ".pgpass"), 0o600)
    env = odbc_env(h)
    env["HOME"] = home
    n = Node(h, env=env)
    cs = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=%d;Database=shop;SSLMode=disable;UID=reader" % s.port
    expect_error(n.curl("testConnection", {"linkedService": odbc_ls(cs, user=False)}), 422,
                 "AuthenticationFailed")
    n.author("testConnection", {"linkedService": odbc_ls(cs.replace(";UID=reader", ""), user=True)})
    n.stop_clean()


# ---- PostgreSQL -------------------------------------------------------------

@test
def test_pg_no_ambient_settings(h):
    """PostgreSql: shird's PGPASSFILE/PGSERVICE, host lists, sockets and unknown settings never reach libpq"""
    s = shared_pg()
    passfile = h.write("pgpass", "*:*:*:reader:r3ader-Secret\n", mode=0o600)
    svcfile = h.write("pg_service.conf", "[shop]\nhost=127.0.0.1\nport=%d\ndbname=shop\n"
                      "user=reader\npassword=r3ader-Secret\n" % s.port)
    home = h.path("home")
    os.makedirs(home)
    with open(os.path.join(home, ".pgpass"), "w") as f:
        f.write("*:*:*:reader:r3ader-Secret\n")
    os.chmod(os.path.join(home, ".pgpass"), 0o600)
    env = {"PGPASSFILE": passfile, "PGSERVICEFILE": svcfile, "PGSERVICE": "shop",
           "PGSYSCONFDIR": h.path(), "PGSSLKEY": passfile, "PGPASSWORD": "r3ader-Secret",
           "HOME": home}
    n = Node(h, env=env)
    # no password in the request: the node's own files must not supply one
    ls = {"type": "PostgreSql", "properties": {"host": "127.0.0.1", "port": s.port,
                                               "database": "shop", "username": "reader",
                                               "sslMode": "disable"}}
    m = expect_error(n.curl("testConnection", {"linkedService": ls}), 422, "AuthenticationFailed")
    check("r3ader-Secret" not in m, m)
    n.p.wait_log(r"event=authoring.environment_cleared names=.*PGPASSFILE", after_mark=False)
    ok = dict(ls["properties"], password="r3ader-Secret")
    n.author("testConnection", {"linkedService": {"type": "PostgreSql", "properties": ok}})
    # settings libpq has but the API does not: refused, never passed on
    for extra in ({"sslkey": "/etc/ssl/private/node.key"}, {"service": "shop"},
                  {"passfile": passfile}, {"options": "-c default_transaction_read_only=off"}):
        m = expect_error(n.curl("testConnection", {"linkedService": {
            "type": "PostgreSql", "properties": dict(ok, **extra)}}), 400, "InvalidRequest",
            list(extra)[0], "sslMode")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": dict(
        ok, host="192.0.2.10,127.0.0.1")}}), 400, "InvalidRequest", "one host")
    n.stop_clean()
    n = Node(h, lma=False)
    for host in ("/var/run/postgresql", "@abstract", "/tmp"):
        expect_error(n.curl("testConnection", {"linkedService": {"type": "PostgreSql", "properties": dict(
            ok, host=host)}}), 403, "LocalMachineAccessDenied", "Unix socket")
    n.stop_clean()


@test
def test_pg_no_node_client_certificate(h):
    """PostgreSql over TLS: libpq never presents (or reads) the node user's ~/.postgresql client key"""
    ca, crt, key = make_test_pki(h)
    s = Postgres(tls=(crt, key))
    h.on_cleanup(s.close)
    home = h.path("home")
    os.makedirs(os.path.join(home, ".postgresql"))
    # the node user's client certificate: unreadable garbage, so that any
    # attempt to load it fails the connection
    for name in ("postgresql.crt", "postgresql.key"):
        with open(os.path.join(home, ".postgresql", name), "w") as f:
            f.write("not a certificate\n")
        os.chmod(os.path.join(home, ".postgresql", name), 0o600)
    env = odbc_env(h)
    env["HOME"] = home
    n = Node(h, env=env)
    r = n.author("testConnection", {"linkedService": s.linked_service(sslMode="require")})
    check(r["store"]["product"] == "PostgreSQL", "%r", r)
    # and libpq under psqlODBC
    r = n.author("testConnection", {"linkedService": odbc_ls(
        "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=%d;Database=shop;SSLMode=require" % s.port)})
    check(r["store"]["product"] == "PostgreSQL", "%r", r)
    n.stop_clean()


# ---- SQLite ------------------------------------------------------------------

@test
def test_sqlite_reads_and_nothing_else(h):
    """Sqlite: no pointer from fts3_tokenizer, no ATTACH, no pragma that writes or reveals"""
    d = h.path("data")
    os.makedirs(d)
    path = os.path.join(d, "shop.db")
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');"
                     "CREATE VIEW leak AS SELECT fts3_tokenizer('simple') AS p;")
    db.commit()
    db.close()
    n = Node(h, allowed=d)
    ls = {"type": "Sqlite", "properties": {"path": path}}

    def refused(q, *words):
        st, _, js = n.curl("preview", {"linkedService": ls, "dataset": query(q)})
        check(st == 403 and js["error"]["code"] == "ReadOnlyViolation",
              "%s: HTTP %s %r", q, st, js)
        for w in words:
            check(w in js["error"]["message"], "%s: %r lacks %r", q, js["error"]["message"], w)

    refused("SELECT fts3_tokenizer('simple') AS p", "fts3_tokenizer")
    refused("SELECT fts3_tokenizer('evil', x'4141414141414141')", "fts3_tokenizer")
    refused("SELECT hex(fts3_tokenizer('porter'))")
    refused("SELECT load_extension('/tmp/x.so')", "load_extension")
    refused("ATTACH DATABASE '/etc/passwd' AS x", "ATTACH")
    refused("ATTACH DATABASE 'file:%s?mode=rwc' AS x" % os.path.join(d, "new.db"), "ATTACH")
    refused("PRAGMA writable_schema = 1", "PRAGMA")
    refused("PRAGMA compile_options", "PRAGMA")
    refused("PRAGMA database_list", "PRAGMA")
    refused("SELECT * FROM pragma_compile_options")
    refused("BEGIN IMMEDIATE")
    refused("VACUUM INTO '%s'" % os.path.join(d, "copy.db"))
    refused("VACUUM")
    check(not os.path.exists(os.path.join(d, "new.db")), "ATTACH created a file")
    check(not os.path.exists(os.path.join(d, "copy.db")), "VACUUM INTO wrote a file")
    # a view in the file cannot do it either (trusted_schema off, the authorizer)
    st, _, js = n.curl("preview", {"linkedService": ls, "dataset": {"type": "Table", "table": "leak"}})
    check(st != 200, "the view handed out a pointer: %r", js)
    # paths are files in the allowed folders, never URIs
    for p in ("file:%s?vfs=unix-none" % path, "file://%s" % path, path + "?mode=rw"):
        st, _, js = n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {"path": p}}})
        check(st in (400, 403, 404), "%s: HTTP %s %r", p, st, js)
    # reading still works: queries, recursion, schema of a table
    r = n.author("preview", {"linkedService": ls, "dataset": query(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3) "
        "SELECT t.b, c.i FROM t JOIN c ON c.i = t.a ORDER BY 2")})
    check(r["rows"] == [["x", 1], ["y", 2]], "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": {"type": "Table", "table": "t"}})
    check([c["name"] for c in r["columns"]] == ["a", "b"], "%r", r)
    n.stop_clean()


# ---- FileSystem -----------------------------------------------------------------

@test
def test_files_only_regular_files(h):
    """FileSystem, Sqlite: a FIFO in an allowed folder is refused at once, never waited on"""
    d = h.path("files")
    os.makedirs(d)
    fifo = os.path.join(d, "pipe.csv")
    os.mkfifo(fifo)
    h.write("files/ok.csv", "a,b\n1,2\n")
    n = Node(h, allowed=d, timeout=5)
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": {"type": "FileSystem", "properties": {"root": d}},
                                    "dataset": {"type": "DelimitedText", "path": "pipe.csv"}}),
                 400, "InvalidRequest", "not a regular file")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Sqlite", "properties": {
        "path": fifo}}}), 400, "InvalidRequest", "not a regular file")
    check(time.monotonic() - t0 < 4, "waited %.1fs on a FIFO", time.monotonic() - t0)
    r = n.author("preview", {"linkedService": {"type": "FileSystem", "properties": {"root": d}},
                             "dataset": {"type": "DelimitedText", "path": "ok.csv", "firstRowAsHeader": True}})
    check(r["rows"] == [[1, 2]], "%r", r)
    n.stop_clean()


# ---- HttpServer --------------------------------------------------------------

class _Redirector(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        _Redirector.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/to/"):
            target = self.path[len("/to/"):].replace("%3A", ":")
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/loop/"):
            k = int(self.path.split("/")[2])
            self.send_response(302)
            self.send_header("Location", "/loop/%d" % (k + 1))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps([{"path": self.path}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def redirector(h):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop():
        srv.shutdown()
        srv.server_close()
    h.on_cleanup(stop)
    return srv.server_address[1]


@test
def test_http_redirects_stay_within_policy(h):
    """HttpServer: redirects only to http(s), at most 5, no credentials to another origin, no port oracle"""
    port = redirector(h)
    base = "http://127.0.0.1:%d" % port
    secret = h.write("secret.json", json.dumps([{"s": SECRET}]))
    n = Node(h, lma=True)

    def preview(url, **props):
        p = {"url": url}
        p.update(props)
        return n.curl("preview", {"linkedService": {"type": "HttpServer", "properties": p},
                                  "dataset": {"type": "Json"}})
    for target in ("file://" + secret, "ftp://127.0.0.1:%d/x" % port, "gopher://127.0.0.1:%d/" % port,
                   "dict://127.0.0.1:%d/" % port, "scp://127.0.0.1/etc/passwd"):
        st, _, js = preview(base + "/to/" + target)
        check(st != 200 and SECRET not in json.dumps(js), "%s: HTTP %s %r", target, st, js)
    st, _, js = preview(base + "/loop/0")
    check(st == 422 and "redirect" in js["error"]["message"].lower(), "redirect loop: %s %r", st, js)
    check(not any(p == "/loop/7" for p, _ in _Redirector.seen), "followed more than 5 redirects")
    # Basic credentials stay with the origin they were given for
    del _Redirector.seen[:]
    other = "http://localhost:%d/landing" % port
    st, _, js = preview(base + "/to/" + other, authenticationType="Basic", username="api",
                        password="s3cret-pw")
    check(st == 200, "%s %r", st, js)
    check(_Redirector.seen[0][1] is not None and _Redirector.seen[-1] == ("/landing", None),
          "credentials went to another origin: %r", _Redirector.seen)
    n.stop_clean()
    # local machine access off: the same answer whether or not the port is open
    n = Node(h, lma=False)
    msgs = set()
    for p in (port, free_port()):
        msgs.add(expect_error(n.curl("testConnection", {"linkedService": {"type": "HttpServer",
                 "properties": {"url": "http://127.0.0.1:%d/" % p}}}), 403, "LocalMachineAccessDenied"))
    check(len(msgs) == 1, "the answer depends on the port's state: %r", msgs)
    n.stop_clean()


class _ProxyAndRemote(http.server.BaseHTTPRequestHandler):
    """A forward proxy on this machine (as a node's cntlm or squid often is)
    in front of an attacker's web server at 192.0.2.10: requests for that
    host are answered here (the attacker redirects to the node's loopback),
    requests for 127.0.0.1 are forwarded to it."""
    local_port = 0
    seen = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        _ProxyAndRemote.seen.append(self.path)
        if self.path.startswith("http://192.0.2.10/"):
            if "/redirect" in self.path:
                scheme = "https" if self.path.endswith("/redirect-tls") else "http"
                self.send_response(302)
                self.send_header("Location", "%s://127.0.0.1:%d/secret" % (scheme, self.local_port))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'[{"remote": 1}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self):
        # a tunnel to the node's own port: the proxy would open it
        _ProxyAndRemote.seen.append("CONNECT " + self.path)
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()


@test
def test_http_redirect_through_proxy_to_loopback(h):
    """HttpServer through the node's proxy: a redirect to the node's loopback is refused by name"""
    local = redirector(h)
    _ProxyAndRemote.local_port = local
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyAndRemote)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    h.on_cleanup(lambda: (srv.shutdown(), srv.server_close()))
    n = Node(h, lma=False, extra="[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n"
             % srv.server_address[1])
    # the admin's proxy on this machine is not a store: allowed with the rule off
    r = n.author("preview", {"linkedService": {"type": "HttpServer", "properties": {
        "url": "http://192.0.2.10/data"}}, "dataset": {"type": "Json"}})
    check(r["rows"] == [[1]], "%r", r)
    del _Redirector.seen[:]
    expect_error(n.curl("preview", {"linkedService": {"type": "HttpServer", "properties": {
        "url": "http://192.0.2.10/redirect"}}, "dataset": {"type": "Json"}}),
        403, "LocalMachineAccessDenied", "127.0.0.1")
    # https: curl would ask the proxy for a tunnel (CONNECT) to the node's
    # port before any request, and the proxy's answer would tell whether the
    # port is open: refused before the proxy hears of it
    expect_error(n.curl("preview", {"linkedService": {"type": "HttpServer", "properties": {
        "url": "http://192.0.2.10/redirect-tls"}}, "dataset": {"type": "Json"}}),
        403, "LocalMachineAccessDenied", "127.0.0.1")
    check(not any("/secret" in p or "CONNECT" in p for p in _ProxyAndRemote.seen),
          "the redirect was requested: %r", _ProxyAndRemote.seen)
    n.stop_clean()


if __name__ == "__main__":
    main()
