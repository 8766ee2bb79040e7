"""Integration: self-contained interactive authoring. shird keeps HTTP/2
connections (Upgrade: reverse, the node is the HTTP/2 server) to shir-relay's
service endpoint; with the runtime's mode on, senders' requests (same URLs,
same Send key) travel as streams on them instead of the Hybrid Connections
listener. Real shir-relay, shird, squid and PostgreSQL on loopback; only the
hostile relay is simulated (raw bytes from Python)."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

from authnode import Node
from relaytest import Relay, decode_key, sas_token
from shirtest import (TestFailure, check, free_port, main, make_ca, make_server_cert, test,
                      wait_until)
from squid import Squid
from stores import shared_pg


def create(r, hc="sc-ir", *flags):
    out = r.cli("ir", "create", hc, *flags).stdout
    keys = {decode_key(w)["keyName"]: decode_key(w) for w in out.split() if w.startswith("IR@v1@")}
    check(set(keys) == {"node-key1", "node-key2", "service-key"}, "ir create printed:\n%s", out)
    r.keys[hc] = keys
    return keys


def node_section(h, r, hc="sc-ir", name="node", endpoint=None, sc_endpoint=None, conns=2,
                 extra=""):
    k = r.keys[hc]["node-key1"]
    kf = h.write(name + ".key", k["key"] + "\n", mode=0o600)
    ep = endpoint or "ws://127.0.0.1:%d" % r.port
    return ("[relay]\nendpoint = %s\npath = %s\nkey_name = node-key1\nkey_file = %s\n%s"
            "[selfcontained]\nendpoint = %s\nconnections = %d\n" % (
                ep, hc, kf, extra, sc_endpoint or ep, conns))


def token(r, hc="sc-ir"):
    return sas_token("http://127.0.0.1:%d/%s" % (r.port, hc), "service-key",
                     r.keys[hc]["service-key"]["key"])


def send(r, path, body=None, hc="sc-ir", method="POST", timeout=60, tok=None):
    """One sender request over plain HTTP/1.1: (status, headers, body bytes)."""
    data = json.dumps(body).encode() if body is not None else b""
    c = socket.create_connection(("127.0.0.1", r.port), timeout=timeout)
    try:
        c.sendall(("%s /%s%s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                   "ServiceBusAuthorization: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (method, hc, path, tok or token(r, hc),
                                                   len(data))).encode() + data)
        got = b""
        while True:
            d = c.recv(262144)
            if not d:
                break
            got += d
    finally:
        c.close()
    head, _, rest = got.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        raise TestFailure("no HTTP answer: %r" % got[:300])
    hdrs = {}
    for l in lines[1:]:
        n, _, v = l.partition(":")
        hdrs[n.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        out, p = b"", rest
        while True:
            sz, _, p = p.partition(b"\r\n")
            n = int(sz, 16)
            if n == 0:
                break
            out += p[:n]
            p = p[n + 2:]
        rest = out
    return int(lines[0].split()[1]), hdrs, rest


def status(h, n):
    return json.loads(h.run([h.bin("shirctl"), "--socket", n.sock, "status", "--json"],
                            check=None).stdout)


def wait_status(h, n, pred, what, timeout=20):
    last = {}

    def ok():
        last["st"] = status(h, n)
        return pred(last["st"])
    try:
        wait_until(ok, timeout, what)
    except TestFailure as e:
        raise TestFailure("%s; last status: %s" % (e, json.dumps(last.get("st"), indent=1)))
    return last["st"]


def urls(h, n):
    """the hosts shirctl service-urls lists"""
    out = h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "service-urls",
                 "--format", "json"], check=0).stdout
    return {s["host"] for s in json.loads(out)["services"]}


def diagnose(h, n):
    """shirctl diagnose --json: {what: report} of each endpoint"""
    out = h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "diagnose", "--json"]).stdout
    return {e["what"]: e for e in json.loads(out)["endpoints"]}


def sc_channels(st):
    return [c for c in st.get("channels", []) if c.get("kind") == "selfContained"]


def demo_dir(h):
    d = h.path("data")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "a.csv"), "w") as f:
        f.write("id,name\n1,x\n2,y\n3,z\n")
    return d


def fs_requests(d):
    ls = {"type": "FileSystem", "properties": {"root": d}}
    ds = {"type": "DelimitedText", "path": "a.csv"}
    return [("/v1/testConnection", {"linkedService": ls}),
            ("/v1/browse", {"linkedService": ls}),
            ("/v1/schema", {"linkedService": ls, "dataset": ds}),
            ("/v1/preview", {"linkedService": ls, "dataset": ds, "limit": 2})]


def check_fs_answers(r, d, what):
    for path, req in fs_requests(d):
        st, hd, body = send(r, path, req)
        check(st == 200, "%s %s: %d %r" % (what, path, st, body[:300]))
        j = json.loads(body)
        if path == "/v1/browse":
            check([i["name"] for i in j["items"]] == ["a.csv"], "%s browse: %r" % (what, j))
        if path == "/v1/preview":
            check(j["rows"] == [["1", "x"], ["2", "y"]] or len(j["rows"]) == 2, "%s preview: %r"
                  % (what, j))


@test
def test_mode_switch_routes_requests(h):
    """ir create --self-contained: authoring travels as HTTP/2 streams (channel self-contained); ir set off returns it to the listener; on again without any node-side change; status, /status, /metrics and the 501s"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    out = r.cli("ir", "list", "--json").stdout
    check(json.loads(out)[0]["selfContained"] is True, out)
    r.start()
    d = demo_dir(h)
    n = Node(h, allowed=d, level="debug", extra=node_section(h, r))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    st = wait_status(h, n, lambda s: s["status"] == "Online" and
                     all(c["state"] == "Connected" for c in sc_channels(s)), "Online")
    sc = sc_channels(st)
    check(len(sc) == 2 and all(c["transport"] == "h2-reverse" for c in sc), "%r" % st["channels"])
    hc = [c for c in st["channels"] if c.get("kind") == "hybridConnection"]
    check(len(hc) == 1 and hc[0]["transport"] == "websocket", "%r" % st["channels"])
    check(st["selfContained"]["mode"] is True, "%r" % st)
    txt = h.run([h.bin("shirctl"), "--socket", n.sock, "status"], check=0).stdout
    check(re.search(r"selfcontained-1 +Connected .*\[self-contained, h2-reverse\]", txt) and
          "Self-contained interactive authoring: on" in txt and
          re.search(r"relay +\S+ +ws://\S+ sc-ir\n", txt), txt)

    check_fs_answers(r, d, "self-contained")
    n.p.wait_log(r"event=api\.request method=POST path=/v1/preview channel=2", after_mark=False)
    # diagnose walks the self-contained handshake step by step
    rep = diagnose(h, n)["self-contained service endpoint"]
    steps = {s["step"]: s for s in rep["steps"]}
    check(rep["broken"] == "" and steps["upgrade"]["result"] == "ok" and
          "mode on" in steps["upgrade"]["detail"] and steps["settings"]["result"] == "ok" and
          "listen" not in steps, "%r" % rep)
    check(not re.search(r"event=api\.request method=POST path=/v1/\w+ channel=1", n.p.log()),
          "a request went over the listener in self-contained mode")
    check("SharedAccessSignature" not in n.p.log(), "a token reached the node's log")
    # as on Windows: no Get IP and no Send log in this mode
    for path, method in (("/v1/node/ip", "GET"), ("/v1/node/logs", "POST")):
        s, _, body = send(r, path, {} if method == "POST" else None, method=method)
        check(s == 501 and b"NotSupportedInSelfContainedMode" in body, "%s: %d %r" % (path, s, body))
    # a wrong Send key is refused at the relay as before
    s, _, body = send(r, "/v1/testConnection", fs_requests(d)[0][1],
                      tok=sas_token("http://127.0.0.1:%d/sc-ir" % r.port, "service-key", "A" * 44))
    check(s == 401, "wrong key: %d %r" % (s, body))
    # the relay shows the connections
    rs = json.loads(r.admin_get("/status"))
    ent = [e for e in rs["entities"] if e["name"] == "sc-ir"][0]
    check(ent["selfContained"] is True and len(ent["selfContainedConnections"]) == 2 and
          ent["selfContainedConnections"][0]["node"] == "auth-node", "%r" % ent)
    m = r.admin_get("/metrics")
    check(re.search(r"^shir_relay_sc_connections 2$", m, re.M) and
          re.search(r"^shir_relay_sc_streams_total (\d+)$", m, re.M), m)

    # off: the node is told over its connection, requests go to the listener
    n.p.mark()
    r.cli("ir", "set", "sc-ir", "--self-contained", "off")
    n.p.wait_log(r"event=selfcontained\.mode mode=off", timeout=10)
    check_fs_answers(r, d, "listener")
    n.p.wait_log(r"event=api\.request method=POST path=/v1/preview channel=1")
    s, _, body = send(r, "/v1/node/ip", method="GET")
    check(s == 200, "Get IP over the listener: %d %r" % (s, body))
    # on again
    n.p.mark()
    r.cli("ir", "set", "sc-ir", "--self-contained", "on")
    n.p.wait_log(r"event=selfcontained\.mode mode=on", timeout=10)
    check_fs_answers(r, d, "self-contained again")
    n.p.wait_log(r"event=api\.request method=POST path=/v1/preview channel=2")
    n.stop_clean()


@test
def test_firewall_only_the_service_host(h):
    """squid allows CONNECT only to service.test: mode off, the node is Offline with the proxy's 403 for relay.test; ir set --self-contained on: Online without a node-side change, and test connection, browse, schema and preview succeed through the proxy with Basic auth"""
    sq = Squid(h, auth="basic", user="svc", password="right-pw",
               hosts={"relay.test": "127.0.0.1", "service.test": "127.0.0.1"},
               extra=["acl relayhost dstdomain relay.test", "http_access deny relayhost"])
    ca_key, ca = make_ca(h, "right", "Test Relay CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:relay.test,DNS:service.test")
    tls_port = free_port()
    r = Relay(h, extra_relay="listen_tls = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n"
              "public_url = wss://relay.test:%d" % (tls_port, crt, key, tls_port))
    create(r, "sc-ir")
    r.start()
    d = demo_dir(h)
    pw = h.write("proxy.pw", "right-pw\n", mode=0o600)
    proxy = ("[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\nauth = basic\n"
             "user = svc\npassword_file = %s\n" % (sq.port, pw))
    n = Node(h, allowed=d, level="debug", extra=node_section(
        h, r, endpoint="wss://relay.test:%d" % tls_port,
        sc_endpoint="wss://service.test:%d" % tls_port, extra="ca_file = %s\n" % ca) + proxy)
    # mode off: the Hybrid Connections channel is the node's status, and the proxy refuses it
    st = wait_status(h, n, lambda s: "403" in s["statusDetail"] and "relay.test" in
                     s["statusDetail"], "the proxy's 403 for relay.test in the status")
    check(st["status"] in ("Offline", "Limited"), "%r" % st)
    # the self-contained connections are up through the proxy all the while
    n.p.wait_log(r"event=channel\.connected conn=selfcontained-1")
    s, _, body = send(r, "/v1/testConnection", fs_requests(d)[0][1])
    check(s == 502, "mode off, no listener: %d %r" % (s, body))
    check(urls(h, n) >= {"relay.test", "service.test"}, "mode off: %r" % urls(h, n))

    r.cli("ir", "set", "sc-ir", "--self-contained", "on")
    st = wait_status(h, n, lambda s: s["status"] == "Online", "Online after ir set on")
    check("403" not in st["statusDetail"], "%r" % st)
    # the firewall rule gets smaller: only the service host (and the proxy, DNS)
    u = urls(h, n)
    check("service.test" in u and "relay.test" not in u, "mode on: %r" % u)
    check_fs_answers(r, d, "through the proxy")
    n.p.wait_log(r"event=api\.request method=POST path=/v1/schema channel=2", after_mark=False)
    nl = n.p.log()
    check(re.search(r"event=dial\.begin dest=service\.test .*decision=PROXY", nl),
          "the self-contained connection did not go through the proxy:\n" + nl[-3000:])
    # squid logs a tunnel when it ends
    n.stop_clean()
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT service\.test:%d svc " % tls_port, timeout=20)
    check(not re.search(r"TCP_TUNNEL/200 \d+ CONNECT relay\.test", sq.log()), sq.log())


@test
def test_sender_gone_cancels_query(h):
    """a sender that disconnects mid-preview: the relay resets the stream (CANCEL) and shird cancels the PostgreSQL query (gone from pg_stat_activity); the node still serves"""
    s = shared_pg()
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="debug", extra=node_section(h, r, conns=1))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")

    def running(q):
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'"
                     % q).strip()
    q = "SELECT pg_sleep(29.75) AS s"
    body = json.dumps({"linkedService": s.linked_service(), "dataset": {"type": "Query",
                                                                       "query": q}}).encode()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("POST /sc-ir/v1/preview HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                   token(r), len(body))).encode() + body)
    wait_until(lambda: running(q) == "1", 20, "the query to run")
    c.close()
    t0 = time.monotonic()
    wait_until(lambda: running(q) == "0", 10, "the query of a sender that left to be cancelled")
    check(time.monotonic() - t0 < 5, "cancelled %.1f s after the sender left" % (time.monotonic() - t0))
    n.p.wait_log(r"event=request\.cancelled conn=selfcontained-1 .*the relay cancelled the stream",
                 after_mark=False)
    n.p.wait_log(r"event=authoring\.cancelled", after_mark=False)
    st, _, b = send(r, "/v1/preview", {"linkedService": s.linked_service(),
                                       "dataset": {"type": "Query", "query": "SELECT 7 AS x"}})
    check(st == 200 and json.loads(b)["rows"] == [[7]] or st == 200, "after: %d %r" % (st, b))
    n.stop_clean()




# ASan keeps freed memory in a quarantine (256 MB by default) that VmHWM would
# count as if shird held it; a small one makes VmHWM what the node really uses.
SMALL_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=1") if x)}
# a PostgreSQL preview of wide rows: the answer's 4 MiB cap of row bytes binds
# (about 260 rows of 16 KB), so the answer is ~4 MB, sixteen times the node's
# 256 KiB answer pipe
WIDE_Q = ("SELECT i, repeat('a', 4000) AS a, repeat('b', 4000) AS b, repeat('c', 4000) AS c, "
          "repeat('d', 4000) AS d FROM generate_series(1, %d) AS i")


def vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmHWM:")][0].split()[1])


@test
def test_large_preview_streamed(h):
    """a ~4 MB PostgreSQL preview over self-contained leaves as its rows arrive (event=authoring.streaming): the bytes are exactly the listener path's answer (and so are those of a 0.6 MB browse answer), and shird's peak memory grows by less than 5 MiB (it holds its 256 KiB answer pipe and output buffer, not the whole answer; held whole, as the listener path does, it grows by about 15 MiB)"""
    s = shared_pg()
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    big = h.path("many")
    os.makedirs(big, exist_ok=True)
    n = Node(h, level="info", jobs=1, queue=4, env=SMALL_QUARANTINE, allowed=big,
             extra=node_section(h, r, conns=1))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    req = {"linkedService": s.linked_service(), "dataset": {"type": "Query", "query": WIDE_Q % 5000},
           "limit": 1000}
    # warm up (connections, libpq, the allocator) with a small one
    st, _, b = send(r, "/v1/preview", dict(req, limit=2))
    check(st == 200 and len(json.loads(b)["rows"]) == 2, "warm-up: %d %r" % (st, b[:300]))
    n.p.mark()
    before = vmhwm_kb(n.p.pid)
    st, hd, sc_body = send(r, "/v1/preview", req)
    grow_kb = vmhwm_kb(n.p.pid) - before
    check(st == 200, "self-contained: %d %r" % (st, sc_body[:300]))
    j = json.loads(sc_body)
    check(j["truncated"] is True and 200 < len(j["rows"]) < 1000 and len(sc_body) > 3 << 20,
          "%d rows, %d bytes" % (len(j["rows"]), len(sc_body)))
    check(j["rows"][-1][0] == len(j["rows"]) and j["rows"][0][1] == "a" * 4000, "rows in order")
    n.p.wait_log(r"event=authoring\.streaming id=\d+ op=preview store=PostgreSql")
    n.p.wait_log(r"event=request\.done conn=selfcontained-1 .*target=/v1/preview status=200 "
                 r"bytes=%d .*streamed=complete" % len(sc_body))
    # whole, the answer would be held at least twice (printed, then copied for
    # the stream): 8 MB and more; streamed, the pipe and the store's own buffers
    check(grow_kb < 5 * 1024, "shird's peak memory grew by %d KiB for a %d-byte answer (it should "
          "hold only its answer pipe)" % (grow_kb, len(sc_body)))
    # the listener path (rendezvous, the answer whole): the same bytes
    r.cli("ir", "set", "sc-ir", "--self-contained", "off")
    n.p.wait_log(r"event=selfcontained\.mode mode=off", timeout=10)
    before = vmhwm_kb(n.p.pid)
    st, _, hc_body = send(r, "/v1/preview", req)
    check(st == 200 and hc_body == sc_body, "listener: %d, %d bytes, same: %s" % (
        st, len(hc_body), hc_body == sc_body))
    print("peak memory growth: self-contained (streamed) %d KiB, listener (whole) %d KiB" % (
        grow_kb, vmhwm_kb(n.p.pid) - before))
    # a large browse answer (6,000 entries, ~0.6 MB) streams too: the same bytes both ways
    for i in range(6000):
        open(os.path.join(big, "file-%05d-%s.csv" % (i, "x" * 40)), "w").close()
    breq = {"linkedService": {"type": "FileSystem", "properties": {"root": big}}, "limit": 10000}
    st, _, hc_browse = send(r, "/v1/browse", breq)
    check(st == 200 and len(json.loads(hc_browse)["items"]) == 6000 and len(hc_browse) > 256 * 1024,
          "listener browse: %d, %d bytes" % (st, len(hc_browse)))
    # small answers are unchanged (whole, with their length)
    r.cli("ir", "set", "sc-ir", "--self-contained", "on")
    n.p.wait_log(r"event=selfcontained\.mode mode=on", timeout=10)
    st, _, b = send(r, "/v1/preview", dict(req, limit=3))
    check(st == 200 and len(json.loads(b)["rows"]) == 3, "small: %d %r" % (st, b[:300]))
    n.p.mark()
    st, _, sc_browse = send(r, "/v1/browse", breq)
    check(st == 200 and sc_browse == hc_browse, "self-contained browse: %d, %d bytes, same: %s" % (
        st, len(sc_browse), sc_browse == hc_browse))
    n.p.wait_log(r"event=authoring\.streaming id=\d+ op=browse store=FileSystem")
    n.stop_clean()


@test
def test_stalled_sender_cancelled_mid_stream(h):
    """a sender that stops reading after the answer started, then goes: shird's memory stays bounded while it stalls; the relay resets the stream and shird cancels the PostgreSQL query mid-answer (gone from pg_stat_activity at once, long before it would end); the sender saw a cut answer; the node still serves"""
    s = shared_pg()
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="info", jobs=1, queue=4, env=SMALL_QUARANTINE,
             extra=node_section(h, r, conns=1))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    # rows of 16 KB, one every 50 ms: about 13 s to the answer's cap
    q = ("SELECT i, repeat('a', 4000) AS a, repeat('b', 4000) AS b, repeat('c', 4000) AS c, "
         "repeat('d', 4000) AS d, pg_sleep(0.05) AS s FROM generate_series(1, 100000) AS i")
    ls = s.linked_service()
    st, _, b = send(r, "/v1/preview", {"linkedService": ls, "dataset": {"type": "Query",
                                                                      "query": "SELECT 1 AS x"}})
    check(st == 200, "warm-up: %d %r" % (st, b[:300]))

    def running():
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'"
                     % q.replace("'", "''")).strip()
    n.p.mark()
    before = vmhwm_kb(n.p.pid)
    body = json.dumps({"linkedService": ls, "dataset": {"type": "Query", "query": q},
                       "limit": 1000}).encode()
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.settimeout(20)
    c.connect(("127.0.0.1", r.port))
    c.sendall(("POST /sc-ir/v1/preview HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                   token(r), len(body))).encode() + body)
    got = c.recv(4096)
    check(got.startswith(b"HTTP/1.1 200"), "the answer starts: %r" % got[:200])
    m = n.p.wait_log(r"event=authoring\.streaming id=(\d+) op=preview")
    time.sleep(2)  # the sender reads nothing more
    check(running() == "1", "the query should still run")
    grow_kb = vmhwm_kb(n.p.pid) - before
    check(grow_kb < 6 * 1024, "shird's peak memory grew by %d KiB while the sender stalled" % grow_kb)
    c.close()
    t0 = time.monotonic()
    wait_until(lambda: running() == "0", 10, "the query of a sender that left to be cancelled")
    check(time.monotonic() - t0 < 5, "cancelled %.1f s after the sender left" % (time.monotonic() - t0))
    n.p.wait_log(r"event=request\.cancelled conn=selfcontained-1 .*target=/v1/preview")
    n.p.wait_log(r"event=authoring\.done id=%s op=preview .*streamed=cut" % m.group(1))
    st, _, b = send(r, "/v1/preview", {"linkedService": ls, "dataset": {"type": "Query",
                                                                      "query": "SELECT 7 AS x"}})
    check(st == 200 and json.loads(b)["rows"] == [[7]], "after: %d %r" % (st, b))
    n.stop_clean()


@test
def test_sender_gone_cancels_sqlite_query(h):
    """the same over the self-contained path for SQLite: a sender that disconnects mid-preview of an endless query makes shird interrupt it (the job ends within seconds, not at operation_timeout); with one worker, the next request is served at once"""
    import sqlite3
    d = h.path("sq")
    os.makedirs(d, exist_ok=True)
    db = os.path.join(d, "shop.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("INSERT INTO t VALUES (7)")
    con.commit()
    con.close()
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, allowed=d, jobs=1, queue=4, timeout=45, level="info",
             extra=node_section(h, r, conns=1))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    ls = {"type": "Sqlite", "properties": {"path": db}}
    q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    body = json.dumps({"linkedService": ls, "dataset": {"type": "Query", "query": q}}).encode()
    n.p.mark()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("POST /sc-ir/v1/preview HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                   token(r), len(body))).encode() + body)
    m = n.p.wait_log(r"event=authoring\.request id=(\d+) op=preview store=Sqlite")
    time.sleep(1)  # the query runs
    check(not re.search(r"event=authoring\.done id=%s " % m.group(1), n.p.log()), "ended early")
    c.close()
    t0 = time.monotonic()
    n.p.wait_log(r"event=request\.cancelled conn=selfcontained-1 .*the relay cancelled the stream")
    n.p.wait_log(r"event=authoring\.done id=%s op=preview store=Sqlite" % m.group(1), timeout=10)
    check(time.monotonic() - t0 < 5, "the job ended %.1f s after the sender left" % (time.monotonic() - t0))
    t0 = time.monotonic()
    st, _, b = send(r, "/v1/preview", {"linkedService": ls, "dataset": {"type": "Query",
                                                                       "query": "SELECT x FROM t"}})
    check(st == 200 and json.loads(b)["rows"] == [[7]], "after: %d %r" % (st, b))
    check(time.monotonic() - t0 < 5, "the one worker was free: %.1f s" % (time.monotonic() - t0))
    n.stop_clean()


@test
def test_deadline_cancels_query(h):
    """the node honours shir-deadline-s: a PostgreSQL query that outlives the relay's response_timeout (3 s) is cancelled by the node (gone from pg_stat_activity) and the sender gets the node's 504 Timeout, not the relay's own 504; the node still serves"""
    s = shared_pg()
    r = Relay(h, limits="response_timeout = 3")
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="info", extra=node_section(h, r, conns=1))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")

    def running(q):
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'"
                     % q).strip()
    q = "SELECT pg_sleep(29.5) AS deadline_s"
    t0 = time.monotonic()
    st, hd, b = send(r, "/v1/preview", {"linkedService": s.linked_service(),
                                        "dataset": {"type": "Query", "query": q}}, timeout=30)
    took = time.monotonic() - t0
    check(st == 504, "a query past the deadline: %d %r" % (st, b[:300]))
    j = json.loads(b)
    check(j["error"]["code"] == "Timeout" and "deadline" in j["error"]["message"],
          "the node's 504 (not the relay's): %r" % j)
    check(2.0 < took < 3.5, "answered after %.2f s (deadline 3 s)" % took)
    wait_until(lambda: running(q) == "0", 5, "the query to be cancelled at the deadline")
    n.p.wait_log(r"event=request\.timeout conn=selfcontained-1 .*target=\"?/v1/preview",
                 after_mark=False)
    n.p.wait_log(r"event=authoring\.cancelled", after_mark=False)
    st, _, b = send(r, "/v1/preview", {"linkedService": s.linked_service(),
                                       "dataset": {"type": "Query", "query": "SELECT 7 AS x"}})
    check(st == 200, "after: %d %r" % (st, b))
    n.stop_clean()


@test
def test_no_stream_free_is_503_retry_after(h):
    """a runtime in self-contained mode with no node connected, and one whose every stream is busy: the sender waits the brief queue (5 s) and gets 503 with Retry-After, each with its reason; a free stream later serves again"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    t0 = time.monotonic()
    st, hd, b = send(r, "/v1/testConnection", {"linkedService": {"type": "FileSystem"}})
    took = time.monotonic() - t0
    check(st == 503 and hd.get("retry-after") == "1", "no node: %d %r %r" % (st, hd, b[:200]))
    check(b"no node of this runtime holds a self-contained connection" in b, "reason: %r" % b)
    check(4.5 < took < 8, "no node: answered after %.2f s (queue of 5 s)" % took)
    # one node, one connection of 4 streams (1 job + 1 queued + 2 for the mode streams)
    n = Node(h, jobs=1, queue=1, extra=node_section(h, r, conns=1, extra="test_routes = true\n"))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    cap = int(r.proc.wait_log(r"event=sc\.connected .*capacity=(\d+)", after_mark=False).group(1))
    slow = []
    for i in range(cap):
        t = threading.Thread(target=lambda: slow.append(
            send(r, "/v1/test/blob?bytes=10&delay_ms=9000", method="GET")))
        t.start()
    def busy():
        rs = json.loads(r.admin_get("/status"))
        cs = [e for e in rs["entities"] if e["name"] == "sc-ir"][0]["selfContainedConnections"]
        return sum(c["streams"] for c in cs) >= cap
    wait_until(busy, 10, "every stream of the connection to be busy")
    t0 = time.monotonic()
    st, hd, b = send(r, "/v1/test/blob?bytes=10", method="GET")
    took = time.monotonic() - t0
    check(st == 503 and hd.get("retry-after") == "1", "all busy: %d %r %r" % (st, hd, b[:200]))
    check(b"every self-contained connection of this runtime is busy" in b, "reason: %r" % b)
    check(4.5 < took < 8, "all busy: answered after %.2f s" % took)
    m = r.admin_get("/metrics")
    check(int(re.search(r"^shir_relay_sc_busy_total (\d+)$", m, re.M).group(1)) == 2,
          "the 503s counted: %s" % m)
    wait_until(lambda: len(slow) == cap, 15, "the slow requests to finish")
    check(all(x[0] == 200 for x in slow), "slow: %r" % [x[0] for x in slow])
    st, _, b = send(r, "/v1/test/blob?bytes=10", method="GET")
    check(st == 200, "a free stream again: %d %r" % (st, b))
    n.stop_clean()

def parallel(fn, n):
    """Runs fn(i) for i in 0..n-1 in threads; returns the results in order."""
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - recorded and checked by the caller
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    return out


def blob_ok(res, n):
    return (not isinstance(res, Exception) and res[0] == 200 and len(res[2]) == n and
            res[2][:26] == b"abcdefghijklmnopqrstuvwxyz")


@test
def test_10mb_and_200_concurrent(h):
    """a 10 MB answer streams through one stream (flow control both ways); 200 concurrent requests are multiplexed over the connections, every one answered"""
    # 200 senders connect at once from one address: above the default of 64 handshakes
    r = Relay(h, limits="max_handshakes_per_address = 512")
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="info", extra=node_section(h, r, extra="test_routes = true\n"))
    n.p.wait_log(r"event=selfcontained\.mode mode=on")
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    big = 10 * 1024 * 1024
    res = send(r, "/v1/test/blob?bytes=%d" % big, method="GET", timeout=120)
    check(blob_ok(res, big), "10 MB: %r %d" % (res[0], len(res[2])))
    res = parallel(lambda i: send(r, "/v1/test/blob?bytes=2000&delay_ms=100", method="GET"), 200)
    bad = [x for x in res if not blob_ok(x, 2000)]
    check(not bad, "%d of 200 failed, first: %r" % (len(bad), bad[:1]))
    m = r.admin_get("/metrics")
    total = int(re.search(r"^shir_relay_sc_streams_total (\d+)$", m, re.M).group(1))
    check(total >= 201, "streams_total %d" % total)
    # both connections carried streams
    rs = json.loads(r.admin_get("/status"))
    conns = [e for e in rs["entities"] if e["name"] == "sc-ir"][0]["selfContainedConnections"]
    check(len(conns) == 2 and all(c["streamsTotal"] > 20 for c in conns), "%r" % conns)
    n.stop_clean()


@test
def test_relay_restart_reconnects(h):
    """the relay stops (GOAWAY) and comes back: the node reconnects on its ladder and requests succeed"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="info", extra=node_section(h, r, extra="test_routes = true\n"))
    wait_status(h, n, lambda st: st["status"] == "Online", "Online")
    check(blob_ok(send(r, "/v1/test/blob?bytes=100", method="GET"), 100), "before")
    n.p.mark()
    r.proc.signal(signal.SIGTERM)
    check(r.proc.wait_exit(15) == 0, "relay exit:\n" + r.proc.tail(30))
    n.p.wait_log(r"event=channel\.goaway conn=selfcontained-")
    st = wait_status(h, n, lambda st: st["status"] in ("Offline", "Limited"), "down without the relay")
    r.start()
    wait_status(h, n, lambda st: st["status"] == "Online", "Online again", timeout=30)
    check(blob_ok(send(r, "/v1/test/blob?bytes=100", method="GET"), 100), "after")
    n.stop_clean()


@test
def test_announce_and_duplicate_name(h):
    """the self-contained upgrade announces the node's name, version and installation: the relay's /status shows them; a second installation under the same node name is refused with 409 "Node name in use" (the node logs it and shows it in its status), and the first keeps serving"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    a = Node(h, level="info", extra=node_section(h, r, name="a", conns=1, extra="test_routes = true\n"))
    a.p.wait_log(r"event=channel\.connected conn=selfcontained-1")
    rs = json.loads(r.admin_get("/status"))
    conns = [e for e in rs["entities"] if e["name"] == "sc-ir"][0]["selfContainedConnections"]
    ver = h.run([h.bin("shird"), "--version"]).stdout.split()[-1]
    check(len(conns) == 1 and conns[0]["node"] == "auth-node" and conns[0]["nodeVersion"] == ver and
          re.fullmatch(r"[0-9a-f-]{36}", conns[0].get("instance", "")), "/status: %r" % conns)
    # another installation (its own state_dir, so its own instance id) with the same name
    b_conf = node_section(h, r, name="b", conns=1, extra="test_routes = true\n")
    os.makedirs(h.path("b"), exist_ok=True)
    b_text = open(a.conf).read().replace(a.sock, h.path("b/shird.sock")).replace(
        h.path("state"), h.path("b/state"))
    b_text = b_text[:b_text.index("[relay]")] + b_conf
    bconf = h.write("b/shird.conf", b_text)
    b = h.start("shird-b", [h.bin("shird"), "-f", bconf])
    b.wait_log(r"conn=selfcontained-1 .*409 Node name in use: auth-node")
    r.proc.wait_log(r"event=sc\.refused status=409 hc=sc-ir node=auth-node", after_mark=False)

    class B:
        sock = h.path("b/shird.sock")
    st = wait_status(h, B, lambda st: "Node name in use: auth-node" in json.dumps(sc_channels(st)),
                     "b's status to show the 409")
    check("give each node its own name" in json.dumps(sc_channels(st)), "b's status: %r"
          % sc_channels(st))
    rs = json.loads(r.admin_get("/status"))
    conns = [e for e in rs["entities"] if e["name"] == "sc-ir"][0]["selfContainedConnections"]
    check(len(conns) == 1 and conns[0]["instance"] != "", "only a's connection: %r" % conns)
    check(blob_ok(send(r, "/v1/test/blob?bytes=100", method="GET"), 100), "a still serves")
    b.p.terminate()
    b.p.wait(10)
    a.stop_clean()

@test
def test_two_nodes_share_and_survive_kill9(h):
    """two nodes share the streams; one killed with -9 while requests run: every request is still answered (refused or lost streams are sent again on the other node)"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    a = Node(h, level="debug", jobs=40,
             extra=node_section(h, r, name="a", conns=1, extra="test_routes = true\n"))
    b_conf = node_section(h, r, name="b", conns=1, extra="test_routes = true\n")
    os.makedirs(h.path("b"), exist_ok=True)
    b_text = open(a.conf).read().replace(a.sock, h.path("b/shird.sock")).replace(
        h.path("state"), h.path("b/state")).replace("name = auth-node", "name = node-b")
    b_text = b_text[:b_text.index("[relay]")] + b_conf
    bconf = h.write("b/shird.conf", b_text)
    b = h.start("shird-b", [h.bin("shird"), "-f", bconf])
    b.wait_log(r"event=channel\.connected conn=selfcontained-1")
    a.p.wait_log(r"event=channel\.connected conn=selfcontained-1")
    res = parallel(lambda i: send(r, "/v1/test/blob?bytes=500&delay_ms=50", method="GET"), 40)
    check(all(blob_ok(x, 500) for x in res), "shared: %r" % [x for x in res if not blob_ok(x, 500)][:1])
    check(re.search(r"event=request\.done conn=selfcontained-1", b.log()) and
          re.search(r"event=request\.done conn=selfcontained-1", a.p.log()), "both nodes served")
    # kill -9 of b while 60 slow requests run on both
    out = [None]

    def load():
        out[0] = parallel(lambda i: send(r, "/v1/test/blob?bytes=500&delay_ms=1500", method="GET"), 60)
    t = threading.Thread(target=load)
    t.start()
    wait_until(lambda: len(re.findall(r"event=api\.request method=GET path=/v1/test/blob", b.log())) > 25,
               20, "node b to take requests")
    b.signal(signal.SIGKILL)
    t.join(120)
    bad = [x for x in out[0] if not blob_ok(x, 500)]
    check(not bad, "%d of 60 unanswered after kill -9, first: %r" % (len(bad), bad[:1]))
    r.proc.wait_log(r"event=sc\.retry ", after_mark=False)
    a.stop_clean()


@test
def test_sigterm_drains_to_the_other_node(h):
    """node SIGTERM while requests run: every request in flight completes, new ones go to the other node, and the node exits 0"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    a = Node(h, level="debug", extra=node_section(h, r, name="a", conns=1, extra="test_routes = true\n"))
    os.makedirs(h.path("b"), exist_ok=True)
    b_text = open(a.conf).read().replace(a.sock, h.path("b/shird.sock")).replace(
        h.path("state"), h.path("b/state")).replace("name = auth-node", "name = node-b")
    b_text = b_text[:b_text.index("[relay]")] + node_section(h, r, name="b", conns=1,
                                                             extra="test_routes = true\n")
    b = h.start("shird-b", [h.bin("shird"), "-f", h.write("b/shird.conf", b_text)])
    b.wait_log(r"event=channel\.connected conn=selfcontained-1")
    a.p.wait_log(r"event=channel\.connected conn=selfcontained-1")
    out = [None]

    def load():
        out[0] = parallel(lambda i: send(r, "/v1/test/blob?bytes=300&delay_ms=2000", method="GET"), 20)
    t = threading.Thread(target=load)
    t.start()
    wait_until(lambda: len(re.findall(r"event=api\.request method=GET path=/v1/test/blob", b.log())) >= 5,
               20, "node b to take requests")
    b.mark()
    b.signal(signal.SIGTERM)
    b.wait_log(r"event=channel\.draining conn=selfcontained-1")
    after = parallel(lambda i: send(r, "/v1/test/blob?bytes=300", method="GET"), 10)
    t.join(60)
    check(all(blob_ok(x, 300) for x in out[0]), "in flight: %r" % [x for x in out[0] if not blob_ok(x, 300)][:1])
    check(all(blob_ok(x, 300) for x in after), "after: %r" % [x for x in after if not blob_ok(x, 300)][:1])
    check(b.wait_exit(20) == 0, "node b exit:\n" + b.tail(40))
    a.stop_clean()


@test
def test_mode_off_midway_and_reload_make_before_break(h):
    """mode switched off while requests run: they finish, new ones go through the listener; a reload with a new node key: the new connections come up before the old ones drain, requests in flight finish"""
    r = Relay(h)
    create(r, "sc-ir", "--self-contained")
    r.start()
    n = Node(h, level="debug", jobs=16, extra=node_section(h, r, extra="test_routes = true\n"))
    wait_status(h, n, lambda st: st["status"] == "Online" and len(
        [c for c in sc_channels(st) if c["state"] == "Connected"]) == 2, "Online")
    out = [None]

    def load(k=8, delay=1500):
        out[0] = parallel(lambda i: send(r, "/v1/test/blob?bytes=300&delay_ms=%d" % delay,
                                         method="GET"), k)
    t = threading.Thread(target=load)
    t.start()
    wait_until(lambda: len(re.findall(r"event=api\.request method=GET path=/v1/test/blob channel=2",
                                      n.p.log())) >= 8, 20, "the requests to reach the node")
    n.p.mark()
    r.cli("ir", "set", "sc-ir", "--self-contained", "off")
    n.p.wait_log(r"event=selfcontained\.mode mode=off", timeout=10)
    check(blob_ok(send(r, "/v1/test/blob?bytes=300", method="GET"), 300), "new request, mode off")
    n.p.wait_log(r"event=api\.request method=GET path=/v1/test/blob channel=1")
    t.join(60)
    check(all(blob_ok(x, 300) for x in out[0]), "in flight at the switch: %r" % out[0][:2])

    # on again, then a new node key: make-before-break
    r.cli("ir", "set", "sc-ir", "--self-contained", "on")
    n.p.wait_log(r"event=selfcontained\.mode mode=on", timeout=10)
    out2 = [None]

    def load2():
        out2[0] = parallel(lambda i: send(r, "/v1/test/blob?bytes=300&delay_ms=2000",
                                          method="GET"), 6)
    t = threading.Thread(target=load2)
    t.start()
    wait_until(lambda: len(re.findall(r"event=api\.request method=GET path=/v1/test/blob channel=2",
                                      n.p.log())) >= 6, 20, "the requests to reach the node")
    n.p.mark()
    r.proc.mark()
    new = r.cli("ir", "regenerate-key", "sc-ir", "key1").stdout
    k = [decode_key(w) for w in new.split() if w.startswith("IR@v1@")][0]
    h.write("node.key", k["key"] + "\n", mode=0o600)
    r.proc.wait_log(r"event=state\.loaded")  # the running relay knows the new key
    n.p.signal(signal.SIGHUP)
    wait_until(lambda: all("event=channel.replaced conn=selfcontained-%d" % i in n.p.log()
                           for i in (1, 2)), 20, "both connections replaced")
    log = n.p.log()
    check(re.search(r"event=channel\.changing conn=selfcontained-1 reason=settings", log) and
          re.search(r"event=reload status=done", log), log[-3000:])
    t.join(60)
    check(all(blob_ok(x, 300) for x in out2[0]), "in flight at the reload: %r" % out2[0][:2])
    check(blob_ok(send(r, "/v1/test/blob?bytes=300", method="GET"), 300), "after the reload")
    st = status(h, n)
    check(st["status"] == "Online" and len(sc_channels(st)) == 2, "%r" % st)
    n.stop_clean()


# --- a hostile relay (raw bytes) ---------------------------------------------------

def frame(t, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([t, flags]) + sid.to_bytes(4, "big") + payload


MAGIC = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
OK101 = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: reverse\r\n"
         b"Selected-ALPN: h2\r\nShir-Connection-Id: evil\r\nShir-Self-Contained: on\r\n\r\n")


class Hostile:
    """Accepts the node's connections; the i-th is answered with scenarios[i]
    (bytes, or a function of the socket)."""

    def __init__(self, h, scenarios):
        self.port = free_port()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(16)
        self.scenarios = list(scenarios)
        self.served = 0
        self.socks = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()
        h.procs.append(self)

    def run(self):
        self.srv.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            self.socks.append(c)
            c.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    d = c.recv(4096)
                    if not d:
                        break
                    head += d
            except OSError:
                continue
            if b"$shir/v1/tunnel" not in head or not self.scenarios:
                c.close()
                continue
            sc = self.scenarios.pop(0)
            self.served += 1
            try:
                if callable(sc):
                    sc(c)
                else:
                    c.sendall(sc)
            except OSError:
                pass

    # the harness stops what it started
    def kill(self):
        self.stop = True
        self.srv.close()
        for c in self.socks:
            c.close()

    def terminate(self):
        self.kill()

    def wait_exit(self, timeout=5):
        return 0

    def poll(self):
        return 0


def hostile_node(h, scenarios):
    ev = Hostile(h, scenarios)
    d = demo_dir(h)
    fake = type("R", (), {"keys": {"sc-ir": {"node-key1": {"key": "a2V5"}}}, "port": ev.port})()
    n = Node(h, allowed=d, level="info", extra=node_section(h, fake, conns=1))
    return ev, d, n


def hostile_end(h, n, d):
    sc = sc_channels(status(h, n))
    check(sc and sc[0]["lastError"], "%r" % sc)
    # the node still serves its admin and local authoring
    r = n.author("testConnection", {"linkedService": {"type": "FileSystem", "properties": {"root": d}}})
    check(r["status"] == "Succeeded", "%r" % r)
    n.stop_clean()


def hpack_literal(name, value):
    """one header field, literal without indexing, no Huffman (RFC 7541 6.2.2)"""
    def num(v):
        if v < 127:
            return bytes([v])
        out, v = [127], v - 127
        while v >= 128:
            out.append(v % 128 + 128)
            v //= 128
        return bytes(out + [v])
    return b"\x00" + num(len(name)) + name + num(len(value)) + value


@test
def test_relay_that_stops_reading_holds_the_store(h):
    """backpressure from the relay to the store's row fetch: a relay (simulated, raw HTTP/2) asks for a preview of a PostgreSQL query that would return gigabytes and then grants no flow-control window beyond HTTP/2's first 64 KiB; shird sends those, fills its 256 KiB answer pipe and its worker waits: the query stays active and unfinished, the job does not end, shird's peak memory does not grow while it waits and /metrics shows the full pipe (at most 256 KiB); RST_STREAM(CANCEL) from the relay cancels the query"""
    s = shared_pg()
    q = WIDE_Q % 1000000
    body = json.dumps({"linkedService": s.linked_service(), "dataset": {"type": "Query", "query": q},
                       "limit": 1000}).encode()
    got = {"bytes": 0, "sock": None}

    def relay(c):
        got["sock"] = c
        c.sendall(OK101 + MAGIC + frame(4, 0, 0))
        hdr = b"".join(hpack_literal(k, v) for k, v in (
            (b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"node"),
            (b":path", b"/v1/preview"), (b"content-type", b"application/json"),
            (b"shir-deadline-s", b"60.000")))
        c.sendall(frame(1, 4, 1, hdr) + frame(0, 1, 1, body))
        acked = False
        while True:  # read what the node sends; never a WINDOW_UPDATE
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            got["bytes"] += len(d)
            if not acked:
                acked = True
                c.sendall(frame(4, 1, 0))  # SETTINGS ACK
    ev = Hostile(h, [relay])
    fake = type("R", (), {"keys": {"sc-ir": {"node-key1": {"key": "a2V5"}}}, "port": ev.port})()
    n = Node(h, level="info", jobs=1, queue=4, env=SMALL_QUARANTINE,
             extra=node_section(h, fake, conns=1))

    def running():
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'"
                     % q.replace("'", "''")).strip()
    m = n.p.wait_log(r"event=authoring\.streaming id=(\d+) op=preview", timeout=30)
    wait_until(lambda: got["bytes"] > 65535, 10, "the first window of the answer")
    before = vmhwm_kb(n.p.pid)
    time.sleep(3)
    sent = got["bytes"]
    check(sent < 65535 + 4096, "the node sent %d bytes with a 64 KiB window" % sent)
    check(running() == "1", "the query should still run, held by the full pipe")
    check(not re.search(r"event=authoring\.done id=%s " % m.group(1), n.p.log()),
          "the job ended although the relay granted no window")
    grow_kb = vmhwm_kb(n.p.pid) - before
    check(grow_kb < 1024, "shird's peak memory grew by %d KiB while the relay read nothing" % grow_kb)
    met = h.run(["curl", "-sS", "--unix-socket", n.sock, "http://localhost/metrics"], check=0).stdout
    held = re.search(r"^shird_streamed_answer_bytes (\d+)$", met, re.M)
    check(held and 0 < int(held.group(1)) <= 256 * 1024, "the full pipe in /metrics: %s" % (
        held.group(0) if held else met[-500:]))
    got["sock"].sendall(frame(3, 0, 1, (8).to_bytes(4, "big")))  # RST_STREAM CANCEL
    t0 = time.monotonic()
    wait_until(lambda: running() == "0", 10, "the query to be cancelled after RST_STREAM")
    check(time.monotonic() - t0 < 5, "cancelled %.1f s after the reset" % (time.monotonic() - t0))
    n.p.wait_log(r"event=request\.cancelled conn=selfcontained-1 stream=1 target=/v1/preview")
    n.p.wait_log(r"event=authoring\.done id=%s op=preview .*streamed=cut" % m.group(1))
    n.stop_clean()


def wait_down(n, why, timeout=40):
    n.p.wait_log(r"event=channel\.disconnected conn=selfcontained-1 .*" + re.escape(why),
                 timeout=timeout, after_mark=False)


@test
def test_hostile_relay_handshake(h):
    """a relay that answers the upgrade wrongly (101 without Upgrade: reverse, a Selected-ALPN other than h2, a status line that is not HTTP, garbage after the 101): each is a clear error in the status and the log and a reconnect; the node keeps serving"""
    ev, d, n = hostile_node(h, [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSelected-ALPN: h2\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: reverse\r\nSelected-ALPN: http/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00garbage instead of a status line\r\n\r\n",
        OK101 + b"this is not HTTP/2 at all, just garbage after the upgrade\r\n" * 4,
    ])
    for w in ("broke the protocol: the relay switched protocols without Upgrade: reverse",
              "(Selected-ALPN), not h2", "answer to the upgrade has a bad status line",
              "the relay broke HTTP/2: Received bad client magic"):
        wait_down(n, w)
    # diagnose names the failing step (the hostile relay closes: no answer to the upgrade)
    rep = diagnose(h, n)["self-contained service endpoint"]
    check(rep["broken"] == "upgrade", "%r" % rep)
    hostile_end(h, n, d)


@test
def test_hostile_relay_http2(h):
    """a relay that never sends SETTINGS after the 101 (a bounded wait), a GOAWAY storm, RST_STREAM for streams that never existed (a connection error), 5000 SETTINGS frames at once: the node says why, reconnects and keeps serving"""
    settings = frame(4, 0, 0)

    def then_close(data, secs=2):
        def run(c):
            c.sendall(data)
            time.sleep(secs)
            c.close()
        return run
    ev, d, n = hostile_node(h, [
        OK101,  # and then nothing
        then_close(OK101 + MAGIC + settings + b"".join(
            frame(7, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")) for _ in range(200))),
        then_close(OK101 + MAGIC + settings + b"".join(
            frame(3, 0, 2 * i + 1, (8).to_bytes(4, "big")) for i in range(50))),
        then_close(OK101 + MAGIC + settings * 5000),
    ])
    wait_down(n, "sent no HTTP/2 SETTINGS within 10 s of the 101")
    n.p.wait_log(r"event=channel\.goaway conn=selfcontained-1", timeout=40, after_mark=False)
    wait_down(n, "the relay ended the HTTP/2 session (GOAWAY)")
    wait_down(n, "the relay broke HTTP/2 (a connection error: the node sent GOAWAY)")
    # a SETTINGS flood: answered as it arrives (the ACKs never pile up past
    # nghttp2's limit), the connection lives until the relay drops it
    wait_until(lambda: ev.served == 4 and len(re.findall(r"event=channel\.upgraded conn=selfcontained-1",
                                                          n.p.log())) >= 4, 40, "the flood connection")
    wait_until(lambda: re.search(r"event=channel\.upgraded(.*\n)+.*event=channel\.disconnected "
                                 r"conn=selfcontained-1", n.p.log()[n.p.log().rfind("broke HTTP/2 (a"):]),
               20, "the flood connection to end")
    check(ev.served == 4, "served %d" % ev.served)
    hostile_end(h, n, d)


if __name__ == "__main__":
    main()
