"""Integration: shirctl author --service-key sends through shir-relay (HTTPS
semantics over plain HTTP on loopback) with a SAS token made from the
service key, to a real shird registered with the runtime's node key (its
relay listener answers)."""
import base64
import json
import os
import socket
import time

from authnode import Node
from relaytest import Relay, decode_key, sas_token
from shirtest import check, main, make_test_pki, test, wait_until
from stores import shared_mariadb, shared_pg


def register(h, n, node_key):
    """shirctl register-node with the node key; waits for the channel."""
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-",
           "auth-node"], input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")


@test
def test_author_through_relay(h):
    """--service-key: SAS-authenticated POST /{hc}/v1/<op> through the relay, answers printed"""
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "sales-ir").stdout.split() if w.startswith("IR@v1@")]
    keys = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    raw = [w for w in printed if decode_key(w)["keyName"] == "service-key"][0]
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    demo = h.path("data")
    os.makedirs(demo)
    with open(os.path.join(demo, "a.csv"), "w") as f:
        f.write("id,name\n1,x\n2,y\n3,z\n")
    n = Node(h, allowed=demo, level="debug")
    k = keys["service-key"]
    svc = h.write("svc.key", raw + "\n", mode=0o600)
    ls = {"type": "FileSystem", "properties": {"root": demo}}
    req = h.write("req.json", json.dumps({"linkedService": ls, "dataset": {
        "type": "DelimitedText", "path": "a.csv"}, "limit": 2}))
    ctl = [h.bin("shirctl"), "author"]

    # no listener yet: the relay's own answer, in plain words
    res = h.run(ctl + ["preview", "--service-key-file", svc, req])
    check(res.returncode == 1 and "502" in res.stderr, "no listener: %s", res.stderr)

    register(h, n, node_key)
    res = h.run(ctl + ["preview", "--service-key-file", svc, req], check=0)
    check(res.stdout.splitlines()[0].split() == ["id", "name"] and "(2 rows, more available)" in res.stdout,
          "%s", res.stdout)
    # shird got it on its relay channel (API_CH_RELAY = 1), with /{hc} stripped
    n.p.wait_log(r"event=api\.request method=POST path=/v1/preview channel=1", after_mark=False)
    check("SharedAccessSignature" not in n.p.log(), "a token reached the node's log")
    res = h.run(ctl + ["browse", "--json", "--service-key", raw, "--linked-service", req], check=0)
    check([i["name"] for i in json.loads(res.stdout)["items"]] == ["a.csv"], "%s", res.stdout)
    env = dict(os.environ, SHIR_SERVICE_KEY=raw)
    res = h.run(ctl + ["testConnection", req], env=env, check=0)
    check(res.stdout.startswith("Connection succeeded: FileSystem"), "%s", res.stdout)
    # errors from the node come back with their code
    bad = h.write("bad.json", json.dumps({"linkedService": ls, "dataset": {"type": "DelimitedText",
                                                                           "path": "../x.csv"}}))
    res = h.run(ctl + ["preview", "--service-key-file", svc, bad])
    check(res.returncode == 1 and "PathNotAllowed" in res.stderr and "HTTP 403" in res.stderr, "%s", res.stderr)
    # a wrong key: the relay refuses the token
    k2 = dict(k, key="A" * 44)
    wrong = "IR@v1@" + base64.urlsafe_b64encode(json.dumps(k2).encode()).decode().rstrip("=")
    res = h.run(ctl + ["preview", "--service-key", wrong, req])
    check(res.returncode == 1 and "401" in res.stderr and "A" * 44 not in res.stderr, "%s", res.stderr)
    res = h.run(ctl + ["preview", "--service-key", "IR@v1@!!", req])
    check(res.returncode == 1 and "IR@v1@!!" not in res.stderr, "bad key: %s", res.stderr)
    n.stop_clean()


@test
def test_author_through_tls_relay(h):
    """--service-key over https: the relay's certificate is verified; --ca-file trusts a private CA"""
    ca, cert, key = make_test_pki(h)
    r = Relay(h, tls=(cert, key))
    printed = [w for w in r.cli("ir", "create", "tls-ir").stdout.split() if w.startswith("IR@v1@")]
    raw = [w for w in printed if decode_key(w)["keyName"] == "service-key"][0]
    check(decode_key(raw)["endpoint"].startswith("wss://localhost:"), "%r", decode_key(raw))
    r.start()
    svc = h.write("svc.key", raw + "\n", mode=0o600)
    req = h.write("req.json", json.dumps({"linkedService": {"type": "Sqlite", "properties": {"path": "/x"}}}))
    ctl = [h.bin("shirctl"), "author", "testConnection", "--service-key-file", svc, req]
    res = h.run(ctl)
    check(res.returncode == 1 and "--ca-file" in res.stderr and "cannot reach the relay" in res.stderr,
          "an unknown CA must be refused: %s", res.stderr)
    res = h.run(ctl + ["--ca-file", ca])
    # TLS and the token are accepted; no node listens yet, so the relay says 502
    check(res.returncode == 1 and "no listener" in res.stderr and "HTTP 502" in res.stderr, "%s", res.stderr)


@test
def test_sender_gone_cancels_mariadb_query(h):
    """a sender that leaves while a MariaDB preview runs: shird kills the statement in the server
    at once (gone from the processlist within seconds, not at the operation timeout), and the
    one worker is free for the next request"""
    s = shared_mariadb()
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "sales-ir").stdout.split() if w.startswith("IR@v1@")]
    keys = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    n = Node(h, timeout=45, level="debug", jobs=1)
    register(h, n, node_key)
    tok = sas_token("http://127.0.0.1:%d/sales-ir" % r.port, "service-key", keys["service-key"]["key"])

    def running():
        return s.sql("SELECT count(*) FROM information_schema.processlist WHERE info LIKE "
                     "'SELECT SLEEP(29)%'").strip()
    body = json.dumps({"linkedService": s.linked_service(),
                       "dataset": {"type": "Query", "query": "SELECT SLEEP(29) AS s"}}).encode()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("POST /sales-ir/v1/preview HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (tok, len(body))).encode()
              + body)
    wait_until(lambda: running() == "1", 20, "the query to run")
    c.close()
    t0 = time.monotonic()
    wait_until(lambda: running() == "0", 10, "the query of a sender that left to be killed")
    check(time.monotonic() - t0 < 5, "killed %.1f s after the sender left" % (time.monotonic() - t0))
    n.p.wait_log(r"event=authoring\.cancelled", after_mark=False)
    n.p.wait_log(r"event=authoring\.done .*store=MySql", after_mark=False)
    body = json.dumps({"linkedService": s.linked_service(),
                       "dataset": {"type": "Query", "query": "SELECT 7 AS x"}}).encode()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=20)
    c.sendall(("POST /sales-ir/v1/preview HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
               "ServiceBusAuthorization: %s\r\nContent-Length: %d\r\n\r\n" % (tok, len(body))).encode()
              + body)
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    check(data.startswith(b"HTTP/1.1 200") and b"[[7]]" in data.replace(b" ", b""), "after: %r",
          data[:300])
    n.stop_clean()

@test
def test_sender_gone_cancels_query(h):
    """issue 18: a sender that leaves while its preview runs: the relay voids the request (cancel message for an inline request, 1001 on a rendezvous) and shird cancels the PostgreSQL query (gone from pg_stat_activity)"""
    s = shared_pg()
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "sales-ir").stdout.split() if w.startswith("IR@v1@")]
    keys = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    n = Node(h, timeout=45, level="debug")
    register(h, n, node_key)
    tok = sas_token("http://127.0.0.1:%d/sales-ir" % r.port, "service-key", keys["service-key"]["key"])

    def running(q):
        return s.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'" % q).strip()
    for what, pad, secs in (("inline", 0, "29.25"), ("rendezvous", 100000, "29.5")):
        q = "SELECT pg_sleep(%s) AS s" % secs
        body = json.dumps({"linkedService": s.linked_service(), "pad": "p" * pad,
                           "dataset": {"type": "Query", "query": q}}).encode()
        c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        c.sendall(("POST /sales-ir/v1/preview HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (tok, len(body))).encode() + body)
        wait_until(lambda: running(q) == "1", 20, "the %s query to run" % what)
        c.close()
        t0 = time.monotonic()
        wait_until(lambda: running(q) == "0", 10, "the %s query of a sender that left to be cancelled" % what)
        check(time.monotonic() - t0 < 5, "%s: cancelled %.1f s after the sender left" % (what, time.monotonic() - t0))
        r.proc.wait_log(r"event=http\.sender_gone hc=sales-ir target=/sales-ir/v1/preview", after_mark=False)
        n.p.wait_log(r"event=authoring\.cancelled", after_mark=False)
    n.p.wait_log(r"event=request\.cancelled .*the relay says the sender went away", after_mark=False)
    n.p.wait_log(r"event=request\.cancelled .*its rendezvous closed", after_mark=False)
    # the node still serves
    body = json.dumps({"linkedService": s.linked_service(), "dataset": {"type": "Query", "query": "SELECT 7 AS x"}}).encode()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=20)
    c.sendall(("POST /sales-ir/v1/preview HTTP/1.1\r\nHost: h\r\nConnection: close\r\nServiceBusAuthorization: %s\r\n"
               "Content-Length: %d\r\n\r\n" % (tok, len(body))).encode() + body)
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    check(data.startswith(b"HTTP/1.1 200"), "after: %r", data[:200])
    n.stop_clean()


if __name__ == "__main__":
    main()
