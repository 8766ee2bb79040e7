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
    check("selfcontained-1" in txt, txt)

    check_fs_answers(r, d, "self-contained")
    n.p.wait_log(r"event=api\.request method=POST path=/v1/preview channel=2", after_mark=False)
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

    r.cli("ir", "set", "sc-ir", "--self-contained", "on")
    st = wait_status(h, n, lambda s: s["status"] == "Online", "Online after ir set on")
    check("403" not in st["statusDetail"], "%r" % st)
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


if __name__ == "__main__":
    main()
