"""Integration: interactive authoring against real PostgreSQL and MariaDB
servers (started once for this file by stores.py, with real users and
passwords) and PostgreSQL through unixODBC's PostgreSQL driver: every
operation, type mapping, read-only transactions, and each error code from
the real situation (wrong password, closed port, unknown table, writing
query, full queue, a query that runs past the deadline)."""
import json
import socket
import subprocess
import time

from authnode import Node, expect_error, parse_http
from shirtest import check, free_port, main, test, wait_until
from stores import odbcinst_dir, shared_mariadb, shared_pg

PG_SETUP = """
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(30,4),
  placed timestamptz, day date, ok boolean, tag uuid, blob bytea, qty int, ratio real,
  small smallint, took interval, created timestamp);
INSERT INTO public.orders VALUES
  (1, 'Jane', 12.5, '2026-11-01 10:00:00+00', '2026-11-01', true,
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', 3, 0.5, 7, '1 day 02:00:00', '2026-11-01 10:00:00'),
  (9007199254740993, 'Big', 12345678901234567890.1234, NULL, NULL, false, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL);
INSERT INTO public.orders (id, customer) SELECT g, 'c' || g FROM generate_series(2, 1500) g;
CREATE SCHEMA sales;
CREATE TABLE sales.regions (code char(2), name varchar(40));
CREATE VIEW sales.big_orders AS SELECT * FROM public.orders WHERE amount > 100;
GRANT USAGE ON SCHEMA sales TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public, sales TO reader;
"""

MY_SETUP = """
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40) NOT NULL, amount DECIMAL(30,4),
  placed DATETIME, ok TINYINT(1), data VARBINARY(16), qty INT, ratio DOUBLE);
INSERT INTO orders VALUES (1, 'Jane', 12.5, '2026-11-01 10:00:00', 1, x'00ff', 3, 0.5),
  (9007199254740993, 'Big', 12345678901234567890.1234, NULL, 0, NULL, NULL, NULL);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
"""

_ready = {}


def pg():
    s = shared_pg()
    if "pg" not in _ready:
        s.sql(PG_SETUP)
        _ready["pg"] = True
    return s


def my():
    s = shared_mariadb()
    if "my" not in _ready:
        s.sql(MY_SETUP)
        for i in range(2, 1500, 100):
            s.sql("INSERT INTO orders (id, customer) SELECT seq, CONCAT('c', seq) FROM seq_%d_to_%d"
                  % (i, i + 99))
        _ready["my"] = True
    return s


def table(name, schema=None):
    d = {"type": "Table", "table": name}
    if schema:
        d["schema"] = schema
    return d


def query(q):
    return {"type": "Query", "query": q}


@test
def test_postgresql_operations(h):
    """PostgreSql: test, browse schemas/tables/views, schema types, preview values"""
    s = pg()
    n = Node(h)
    ls = s.linked_service()
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"]["product"] == "PostgreSQL" and r["store"]["version"][:2].isdigit(), "%r", r)
    r = n.author("browse", {"linkedService": ls})
    check([i["name"] for i in r["items"]] == ["public", "sales"] and
          all(i["type"] == "schema" for i in r["items"]), "%r", r)
    r = n.author("browse", {"linkedService": ls, "path": "sales"})
    check(r["items"] == [{"name": "big_orders", "type": "view", "schema": "sales"},
                         {"name": "regions", "type": "table", "schema": "sales"}], "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": table("orders", "public")})
    cols = [(c["name"], c["type"], c["nullable"]) for c in r["columns"]]
    check(cols == [("id", "Int64", False), ("customer", "String", False), ("amount", "Decimal", True),
                   ("placed", "DateTimeOffset", True), ("day", "DateTime", True), ("ok", "Boolean", True),
                   ("tag", "Guid", True), ("blob", "ByteArray", True), ("qty", "Int32", True),
                   ("ratio", "Single", True), ("small", "Int16", True), ("took", "TimeSpan", True),
                   ("created", "DateTime", True)], "%r", cols)
    r = n.author("schema", {"linkedService": ls, "dataset": query("SELECT id, amount::float8 AS a FROM orders")})
    check([(c["name"], c["type"]) for c in r["columns"]] == [("id", "Int64"), ("a", "Double")], "%r", r)
    r = n.author("preview", {"linkedService": ls, "limit": 2,
                             "dataset": query("SELECT * FROM orders WHERE id IN (1, 9007199254740993) ORDER BY id")})
    check(r["rows"][0] == [1, "Jane", 12.5, "2026-11-01T10:00:00Z", "2026-11-01", True,
                           "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "AP8=", 3, 0.5, 7, "P1DT2H",
                           "2026-11-01T10:00:00"], "%r", r["rows"][0])
    check(r["rows"][1][:3] == ["9007199254740993", "Big", "12345678901234567890.1234"], "%r", r["rows"][1])
    check(r["truncated"] is False, "%r", r)
    r = n.author("preview", {"linkedService": ls, "dataset": table("orders")})
    check(len(r["rows"]) == 100 and r["truncated"] is True, "%d", len(r["rows"]))
    r = n.author("preview", {"linkedService": ls, "limit": 1000,
                             "dataset": query("SELECT id FROM orders ORDER BY id")})
    check(len(r["rows"]) == 1000 and r["truncated"] is True and r["rows"][999] == [1000], "%r", r["rows"][-1])
    out, _ = n.author_text("schema", {"linkedService": ls, "dataset": table("regions", "sales")})
    check(out.splitlines()[0].split() == ["NAME", "TYPE", "NULLABLE"] and "varchar" not in out
          and "String" in out, "%s", out)
    n.stop_clean()

@test
def test_postgresql_errors(h):
    """PostgreSql: wrong password, closed port, unknown table/schema, writes, bad SQL"""
    s = pg()
    n = Node(h)
    m = expect_error(n.curl("testConnection", {"linkedService": s.linked_service(password="nope-pw")}),
                     422, "AuthenticationFailed", "password authentication failed")
    check("nope-pw" not in m, m)
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(port=free_port())}),
                 422, "StoreUnreachable", "refused")
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(database="nodb")}),
                 404, "NotFound", "nodb")
    expect_error(n.curl("testConnection", {"linkedService": dict(s.linked_service(), properties=dict(
        s.linked_service()["properties"], host="no-such-host.invalid"))}), 422, "StoreUnreachable")
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(sslMode="require")}),
                 422, "StoreError", "SSL")
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(sslMode="sometimes")}),
                 400, "InvalidRequest", "sslMode")
    # a server that accepts TCP but never speaks: connectTimeoutSeconds holds
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(5)
    t0 = time.monotonic()
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(
        port=mute.getsockname()[1], connectTimeoutSeconds=1)}), 422, "StoreUnreachable",
        "connectTimeoutSeconds")
    check(time.monotonic() - t0 < 5, "connect timeout took %.1fs", time.monotonic() - t0)
    mute.close()
    ls = s.linked_service()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": table("missing")}), 404, "NotFound",
                 "missing")
    expect_error(n.curl("schema", {"linkedService": ls, "dataset": table("missing", "public")}), 404,
                 "NotFound")
    expect_error(n.curl("browse", {"linkedService": ls, "path": "nope"}), 404, "NotFound")
    # reader may not write anyway; the superuser shows the read-only transaction itself
    admin = s.linked_service(username="postgres", password="adm1n-Secret")
    expect_error(n.curl("preview", {"linkedService": admin, "dataset": query(
        "INSERT INTO orders (id, customer) VALUES (-1, 'x') RETURNING id")}), 403, "ReadOnlyViolation",
        "read-only")
    expect_error(n.curl("preview", {"linkedService": admin, "dataset": query("DELETE FROM orders")}),
                 403, "ReadOnlyViolation")
    for q in ("DROP TABLE orders", "CREATE TABLE evil (a int)", "TRUNCATE orders"):
        expect_error(n.curl("preview", {"linkedService": admin, "dataset": query(q)}), 403,
                     "ReadOnlyViolation")
    check(s.sql("SELECT count(*) FROM orders").strip() == "1501", "rows changed")
    expect_error(n.curl("preview", {"linkedService": admin, "dataset": query("SELECT 1; SELECT 2")}),
                 422, "StoreError", "multiple commands")
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": query("SELEC 1")}), 422,
                 "StoreError", "syntax")
    n.stop_clean()

@test
def test_postgresql_queue_and_deadline(h):
    """concurrent_jobs=1, queue_size=1: the third request gets 429 Busy with
    Retry-After; a pg_sleep past operation_timeout is 422 timed out and is
    cancelled in the server"""
    s = pg()
    n = Node(h, jobs=1, queue=1, timeout=4)
    slow = {"linkedService": s.linked_service(), "dataset": query("SELECT pg_sleep(1.5) AS s")}
    procs = []

    def running():
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                     "'SELECT pg_sleep(1.5)%'").strip()
    for i in range(2):
        p = subprocess.Popen(n.curl_argv("preview", "x"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        p.stdin.write(json.dumps(slow).encode())
        p.stdin.close()
        procs.append(p)
        if i == 0:	# the first runs on the one worker before the second takes the one queue slot
            wait_until(lambda: running() == "1", 30, "the first query to run")
    try:
        wait_until(lambda: n.p.log().count("event=authoring.request") >= 2, 30, "two accepted requests")
    except Exception as e:
        raise type(e)("%s\nshird log:\n%s" % (e, n.p.tail(40)))
    st, hd, js = n.curl("preview", slow)
    check(st == 429 and js["error"]["code"] == "Busy" and int(hd["retry-after"]) >= 1, "%s %r %r", st, hd, js)
    for p in procs:
        st, _, js = parse_http(p.stdout.read().decode())
        p.wait(30)
        check(st == 200 and js["rows"] == [[""]], "slow request: %s %r", st, js)
    t0 = time.monotonic()
    m = expect_error(n.curl("preview", {"linkedService": s.linked_service(),
                                        "dataset": query("SELECT pg_sleep(30)")}),
                     422, "StoreUnreachable", "timed out")
    check(time.monotonic() - t0 < 9, "deadline 4s took %.1fs", time.monotonic() - t0)
    # the worker cancelled it in the server: no pg_sleep(30) left running
    wait_until(lambda: s.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                             "'SELECT pg_sleep(30)%'").strip() == "0", 10, "the query to be cancelled")
    r = n.author("testConnection", {"linkedService": s.linked_service()})
    check(r["status"] == "Succeeded", "the worker is free again: %r", r)
    n.stop_clean()

@test
def test_odbc_postgresql(h):
    """Odbc (PostgreSQL driver): test, browse with SQLTables, schema with SQLColumns, preview"""
    s = pg()
    n = Node(h, timeout=4, env={"ODBCSYSINI": odbcinst_dir(h), "ODBCINI": h.path("odbc", "odbc.ini")})
    ls = s.odbc_linked_service()
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"]["product"] == "PostgreSQL", "%r", r)
    r = n.author("browse", {"linkedService": ls})
    check({"name": "sales", "type": "schema"} in r["items"], "%r", r)
    r = n.author("browse", {"linkedService": ls, "path": "sales"})
    check([(i["name"], i["type"]) for i in r["items"]] == [("big_orders", "view"), ("regions", "table")], "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": table("orders", "public")})
    cols = [(c["name"], c["type"], c["nullable"]) for c in r["columns"]]
    check(cols[:3] == [("id", "Int64", False), ("customer", "String", False), ("amount", "Decimal", True)],
          "%r", cols)
    r = n.author("preview", {"linkedService": ls, "limit": 5, "dataset": query(
        "SELECT id, customer, amount FROM orders ORDER BY id")})
    check(r["rows"][0] == [1, "Jane", 12.5] and len(r["rows"]) == 5 and r["truncated"] is True, "%r", r)
    r = n.author("preview", {"linkedService": ls, "limit": 3, "dataset": table("orders", "public")})
    check(len(r["rows"]) == 3, "%r", r)
    m = expect_error(n.curl("testConnection", {"linkedService": s.odbc_linked_service(password="bad-odbc-pw")}),
                     422, "AuthenticationFailed")
    check("bad-odbc-pw" not in m, m)
    expect_error(n.curl("schema", {"linkedService": ls, "dataset": table("missing", "public")}), 404,
                 "NotFound")
    expect_error(n.curl("testConnection", {"linkedService": {"type": "Odbc", "properties": {
        "connectionString": "Driver={No Such Driver};Server=127.0.0.1"}}}), 400, "UnsupportedStoreType")
    # writes through ODBC: the read-only session refuses them, even for the superuser
    admin = s.odbc_linked_service(password="adm1n-Secret")
    admin["properties"]["username"] = "postgres"
    for q in ("CREATE TABLE odbc_evil (a int)", "INSERT INTO orders (id, customer) VALUES (-7, 'x') RETURNING id",
              "DELETE FROM orders"):
        expect_error(n.curl("preview", {"linkedService": admin, "dataset": query(q)}), 403,
                     "ReadOnlyViolation")
    check(s.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'odbc_evil'").strip() == "0", "table created")
    check(s.sql("SELECT count(*) FROM orders").strip() == "1501", "rows changed through ODBC")
    check("bad-odbc-pw" not in n.p.log() and "r3ader-Secret" not in n.p.log(), "password in log")
    # past the deadline: answered at 4 s, and the driver's query timeout stops it in the server
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": query("SELECT pg_sleep(20) AS odbc_sleep")}),
                 422, "StoreUnreachable", "timed out")
    check(time.monotonic() - t0 < 9, "deadline took %.1fs", time.monotonic() - t0)
    wait_until(lambda: s.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                             "'SELECT pg_sleep(20) AS odbc_sleep%'").strip() == "0", 15,
               "the ODBC query to be stopped")
    n.stop_clean()

@test
def test_mariadb_operations(h):
    """MySql (MariaDB): test, browse, schema, preview with types"""
    s = my()
    n = Node(h)
    ls = s.linked_service()
    r = n.author("testConnection", {"linkedService": ls})
    check(r["store"]["product"] == "MariaDB" and r["store"]["version"][:2].isdigit(), "%r", r)
    r = n.author("browse", {"linkedService": ls})
    check(r["items"] == [{"name": "big_orders", "type": "view", "schema": "shop"},
                         {"name": "orders", "type": "table", "schema": "shop"}], "%r", r)
    r = n.author("schema", {"linkedService": ls, "dataset": table("orders")})
    cols = [(c["name"], c["type"], c["nullable"]) for c in r["columns"]]
    check(cols == [("id", "Int64", False), ("customer", "String", False), ("amount", "Decimal", True),
                   ("placed", "DateTime", True), ("ok", "Boolean", True), ("data", "ByteArray", True),
                   ("qty", "Int32", True), ("ratio", "Double", True)], "%r", cols)
    r = n.author("preview", {"linkedService": ls, "limit": 2,
                             "dataset": query("SELECT * FROM orders WHERE id IN (1, 9007199254740993) ORDER BY id")})
    check(r["rows"] == [[1, "Jane", 12.5, "2026-11-01T10:00:00", True, "AP8=", 3, 0.5],
                        ["9007199254740993", "Big", "12345678901234567890.1234", None, False, None, None,
                         None]], "%r", r["rows"])
    r = n.author("preview", {"linkedService": ls, "dataset": table("orders")})
    check(len(r["rows"]) == 100 and r["truncated"] is True, "%d", len(r["rows"]))
    r = n.author("preview", {"linkedService": ls, "limit": 1000, "dataset": query("SELECT id FROM orders")})
    check(len(r["rows"]) == 1000 and r["truncated"] is True, "%d", len(r["rows"]))
    n.stop_clean()

@test
def test_mariadb_errors(h):
    """MySql (MariaDB): wrong password, closed port, unknown table, writes, deadline"""
    s = my()
    n = Node(h, timeout=3)
    m = expect_error(n.curl("testConnection", {"linkedService": s.linked_service(password="nope-my")}),
                     422, "AuthenticationFailed", "Access denied")
    check("nope-my" not in m, m)
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(port=free_port())}),
                 422, "StoreUnreachable")
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(5)
    t0 = time.monotonic()
    expect_error(n.curl("testConnection", {"linkedService": s.linked_service(
        port=mute.getsockname()[1], connectTimeoutSeconds=1)}), 422, "StoreUnreachable")
    check(time.monotonic() - t0 < 5, "connect timeout took %.1fs", time.monotonic() - t0)
    mute.close()
    ls = s.linked_service()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": table("missing")}), 404, "NotFound",
                 "missing")
    expect_error(n.curl("browse", {"linkedService": ls, "path": "nodb"}), 404, "NotFound")
    admin = {"type": "MySql", "properties": dict(ls["properties"])}
    s.sql("CREATE USER IF NOT EXISTS 'writer'@'127.0.0.1' IDENTIFIED BY 'wr1ter-pw'; "
          "GRANT ALL ON shop.* TO 'writer'@'127.0.0.1'", db="")
    admin["properties"].update(username="writer", password="wr1ter-pw")
    expect_error(n.curl("preview", {"linkedService": admin, "dataset": query(
        "INSERT INTO orders (id, customer) VALUES (-1, 'x')")}), 403, "ReadOnlyViolation", "read-only")
    check(s.sql("SELECT count(*) FROM orders WHERE id = -1").strip() == "0", "a row was written")
    # DDL commits implicitly in MySQL: the read-only session must still refuse it
    for q in ("DROP TABLE orders", "CREATE TABLE evil (a int)", "TRUNCATE orders"):
        expect_error(n.curl("preview", {"linkedService": admin, "dataset": query(q)}), 403,
                     "ReadOnlyViolation")
    check(s.sql("SHOW TABLES").split() == ["big_orders", "orders"], "tables changed: %s", s.sql("SHOW TABLES"))
    check(s.sql("SELECT count(*) FROM orders").strip() != "0", "orders emptied")
    t0 = time.monotonic()
    expect_error(n.curl("preview", {"linkedService": ls, "dataset": query("SELECT SLEEP(30) AS s")}),
                 422, "StoreUnreachable", "timed out")
    check(time.monotonic() - t0 < 8, "deadline took %.1fs", time.monotonic() - t0)
    wait_until(lambda: s.sql("SELECT count(*) FROM information_schema.processlist WHERE info LIKE "
                             "'SELECT SLEEP(30)%'").strip() == "0", 15, "KILL QUERY to stop the sleep")
    n.stop_clean()


if __name__ == "__main__":
    main()
