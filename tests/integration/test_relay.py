"""Integration: shir-relay with Microsoft's npm clients (hyco-https@1.4.5 as
an HTTP listener, hyco-ws@1.0.5 as WebSocket listener and sender) and plain
Node HTTP senders, all on loopback (spec §10), plus the error statuses and
the `shir-relay ir` commands."""
import json
import os
import re
import signal

from shirtest import check, main, test, wait_until
from relaytest import HYCO, Relay, RawWS, http_result, node_env, npm_clients, run_node, sas_token


def start_listener(h, mods, relay, script, env=None, name="listener"):
    e = relay.listen_env()
    e.update(env or {})
    p = h.start(name, ["node", os.path.join(HYCO, script)], env=node_env(mods, e))
    p.wait_log(r"LISTENER listening")
    relay.proc.wait_log(r"event=listener\.connected hc=myhc")
    return p


def send(h, mods, relay, *args, env=None):
    e = relay.send_env()
    e.update(env or {})
    return http_result(run_node(h, mods, "http_sender.js", e, args))


@test
def test_http_hyco_https(h):
    """hyco-https listener: inline, query stripping, POST, 80 KB via rendezvous, 100 KB response, streaming, 204, token in query"""
    mods = npm_clients(h)
    r = Relay(h)
    r.create()
    r.start()
    lst = start_listener(h, mods, r, "https_listener.js")

    res = send(h, mods, r, "GET", "/myhc/abc/def?x=1&sb-hc-id=zzz&y=2")
    check(res["status"] == 201 and res["message"] == "Made It", "inline GET: %r", res)
    check(res["body"] == "echo GET /myhc/abc/def?x=1&y=2 0", "sb-hc-id must be stripped: %r", res)
    check(res["via"] and "127.0.0.1" in res["via"], "relayed responses carry Via: %r", res)
    m = lst.wait_log(r"LISTENER GET /myhc/abc/def\?x=1&y=2 (\{.*\}) 0")
    hdrs = json.loads(m.group(1))
    check(hdrs.get("x-custom") == "hello", "custom header must reach the listener: %r", hdrs)
    check("servicebusauthorization" not in hdrs and "host" not in hdrs and "connection" not in hdrs,
          "auth and hop-by-hop headers must not reach the listener: %r", hdrs)

    res = send(h, mods, r, "POST", "/myhc/p", "10")
    check(res["status"] == 201 and res["body"] == "echo POST /myhc/p 10", "small POST: %r", res)

    r.proc.mark()
    res = send(h, mods, r, "POST", "/myhc/upload", "80000")
    check(res["status"] == 201 and res["body"] == "echo POST /myhc/upload 80000", "80 KB POST: %r", res)
    r.proc.wait_log(r"event=request\.rendezvous id=", after_mark=True)

    # Content-Length above 64 KiB goes address-only at once, body streamed on the rendezvous
    import http.client
    from relaytest import sas_token
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=20)
    conn.request("PUT", "/myhc/cl", body=b"C" * 300000, headers={"ServiceBusAuthorization": tok})
    resp = conn.getresponse()
    check(resp.status == 201 and resp.read() == b"echo PUT /myhc/cl 300000", "Content-Length 300 KB: %d", resp.status)
    # keep-alive: a second request on the same sender connection (now over its rendezvous)
    conn.request("GET", "/myhc/again", headers={"ServiceBusAuthorization": tok})
    resp = conn.getresponse()
    check(resp.status == 201 and resp.read() == b"echo GET /myhc/again 0", "keep-alive request: %d", resp.status)
    conn.close()

    # an HTTP/1.0 sender gets the streamed body without chunked coding, ended by the close
    import socket
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("GET /myhc/stream HTTP/1.0\r\nServiceBusAuthorization: %s\r\n\r\n" % tok).encode())
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    check(data.startswith(b"HTTP/1.1 200 ") and b"chunked" not in data.lower() and data.endswith(b"\r\n\r\npart1-part2-end"),
          "HTTP/1.0 response: %r", data)

    res = send(h, mods, r, "GET", "/myhc/big")
    check(res["status"] == 200 and res["length"] == 100000 and res["body"].startswith("AAAA"),
          "100 KB response via the listener's rendezvous: %r", {k: res[k] for k in ("status", "length")})

    res = send(h, mods, r, "GET", "/myhc/stream")
    check(res["status"] == 200 and res["body"] == "part1-part2-end", "streamed response: %r", res)

    res = send(h, mods, r, "GET", "/myhc/empty")
    check(res["status"] == 204 and res["length"] == 0, "204: %r", res)
    # the stray empty binary message after body:false must not break the channel
    res = send(h, mods, r, "GET", "/myhc/after-204")
    check(res["status"] == 201, "request after the 204: %r", res)

    res = send(h, mods, r, "GET", "/myhc/q", "-", "query")
    check(res["status"] == 201 and res["body"] == "echo GET /myhc/q 0", "token in the query: %r", res)

    # the listener stayed on one control channel the whole time
    check(len(re.findall(r"event=listener\.connected", r.proc.log())) == 1,
          "the control channel must not drop:\n%s", r.proc.tail())
    met = r.admin_get("/metrics")
    check("shir_relay_listeners 1" in met, "metrics: listeners gauge:\n%s", met)
    check('shir_relay_http_responses_total{class="2xx"} 11' in met, "metrics: 2xx count:\n%s", met)
    st = json.loads(r.admin_get("/status"))
    ent = [e for e in st["entities"] if e["name"] == "myhc"][0]
    check(len(ent["listeners"]) == 1, "status lists the listener: %r", st)


@test
def test_errors(h):
    """bad key 401, unknown entity 404, no listener 502 (JSON, no Via), listener that never answers 504"""
    mods = npm_clients(h)
    r = Relay(h, limits="response_timeout = 2")
    r.create()
    r.start()
    res = send(h, mods, r, "GET", "/myhc/x")
    check(res["status"] == 502 and res["via"] is None, "no listener: %r", res)
    check(json.loads(res["body"])["error"]["code"] == "BadGateway", "JSON error body: %r", res)
    res = send(h, mods, r, "GET", "/nosuch/x")
    check(res["status"] == 404, "unknown entity: %r", res)
    res = send(h, mods, r, "GET", "/myhc/x", env={"KEY": "d3JvbmcgdHJ1bmNhdGVkIGtleQ=="})
    check(res["status"] == 401 and json.loads(res["body"])["error"]["code"] == "TokenMissingOrInvalid",
          "bad key: %r", res)
    res = send(h, mods, r, "GET", "/myhc/x", "-", "none")
    check(res["status"] == 401, "no token: %r", res)
    # a node key (Listen only) cannot send
    k = r.keys["myhc"]["node-key1"]
    res = send(h, mods, r, "GET", "/myhc/x", env={"KEYNAME": k["keyName"], "KEY": k["key"]})
    check(res["status"] == 403, "Listen-only key used to send: %r", res)

    start_listener(h, mods, r, "https_listener.js")
    res = send(h, mods, r, "GET", "/myhc/never")
    check(res["status"] == 504 and res["via"] is None, "listener never answers: %r", res)
    check(json.loads(res["body"])["error"]["code"] == "GatewayTimeout", "504 body: %r", res)
    res = send(h, mods, r, "GET", "/myhc/fine")
    check(res["status"] == 201, "the listener still works after a 504: %r", res)

    # a listener with a wrong key is refused with 401, and a service key cannot listen (403)
    bad = h.start("badlistener", ["node", os.path.join(HYCO, "https_listener.js")],
                  env=node_env(mods, dict(r.listen_env(), KEY="d3JvbmcgdHJ1bmNhdGVkIGtleQ==")))
    bad.wait_log(r"LISTENER error Unexpected server response: 401")
    bad.stop()
    raw = RawWS(r.port, "/$hc/myhc?sb-hc-action=listen", {"ServiceBusAuthorization": sas_token(
        "http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])})
    check(raw.status == 403, "service key used to listen: %d %s", raw.status, raw.reason)
    raw = RawWS(r.port, "/$hc/nosuch?sb-hc-action=listen")
    check(raw.status == 404 and raw.reason == "Endpoint does not exist", "listen on unknown: %d %s",
          raw.status, raw.reason)


@test
def test_ws_hyco_ws(h):
    """hyco-ws listener and sender: text and binary echo, subprotocols, close codes both ways"""
    mods = npm_clients(h)
    r = Relay(h)
    r.create()
    r.start()
    lst = start_listener(h, mods, r, "ws_listener.js")
    out = run_node(h, mods, "ws_sender.js", r.send_env())
    check("SENDER open, protocol undefined" in out, "sender without protocols:\n%s", out)
    check("SENDER got echo:hello text" in out and "SENDER got binary 010203" in out, "echo:\n%s", out)
    check("SENDER close 1000 bye" in out, "close:\n%s", out)
    lst.wait_log(r"LISTENER got text hello text")
    lst.wait_log(r"LISTENER got binary 010203")
    lst.wait_log(r"LISTENER close 1000 bye")
    m = r.proc.wait_log(r"event=tunnel\.accept_sent hc=myhc id=(my-trace-id_\S+)", after_mark=False)
    check(m, "the accept id keeps the sender's sb-hc-id")

    out = run_node(h, mods, "ws_sender.js", dict(r.send_env(), PROTOS="p1,p2"))
    check("SENDER open, protocol p1" in out and "SENDER got echo:hello text" in out,
          "subprotocol p1:\n%s", out)
    lst.wait_log(r"LISTENER open, protocol p1")

    out = run_node(h, mods, "ws_sender.js", dict(r.send_env(), CLOSECODE="4001"))
    check("SENDER close 4001 listener says bye" in out, "listener's close code reaches the sender:\n%s", out)

    # no listener: the sender's upgrade fails with 404
    lst.stop()
    r.proc.wait_log(r"event=listener\.closed")
    out = run_node(h, mods, "ws_sender.js", r.send_env())
    check("SENDER http 404" in out, "no listener for a WebSocket sender:\n%s", out)


@test
def test_reject_410(h):
    """a raw listener rejects: it gets 410, the sender gets the listener's status and description"""
    mods = npm_clients(h)
    r = Relay(h)
    keys = r.create()
    r.start()
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "node-key2", keys["node-key2"]["key"])
    ctl = RawWS(r.port, "/$hc/myhc?sb-hc-action=listen&sb-hc-id=raw-1", {"ServiceBusAuthorization": tok})
    check(ctl.status == 101, "listen: %d %s", ctl.status, ctl.reason)
    r.proc.wait_log(r"event=listener\.connected hc=myhc id=raw-1")
    snd = h.start("sender", ["node", os.path.join(HYCO, "ws_sender.js")], env=node_env(mods, r.send_env()))
    op, msg = ctl.recv()
    acc = json.loads(msg)["accept"]
    check(op == 1 and "sb-hc-action=accept" in acc["address"], "accept: %r", acc)
    check(acc["address"].startswith("ws://127.0.0.1:%d/$hc/myhc/sub/path?foo=bar&" % r.port), "address: %s",
          acc["address"])
    check("Sec-WebSocket-Key" in acc["connectHeaders"] and "ServiceBusAuthorization" not in acc["connectHeaders"],
          "connectHeaders: %r", acc["connectHeaders"])
    target = acc["address"].split(str(r.port), 1)[1] + "&sb-hc-statusCode=403&sb-hc-statusDescription=Go+away"
    rej = RawWS(r.port, target)
    check(rej.status == 410, "a reject is answered 410, got %d %s", rej.status, rej.reason)
    snd.wait_log(r"SENDER http 403 Go away")
    # the rendezvous id is single-use
    again = RawWS(r.port, acc["address"].split(str(r.port), 1)[1])
    check(again.status == 403, "a used rendezvous id must be refused: %d", again.status)
    # ping/pong on the control channel
    ctl.send(9, b"hi")
    op, data = ctl.recv()
    check(op == 10 and data == b"hi", "pong: %r %r", op, data)
    # an invalid renewToken closes the control channel with 1008
    ctl.send(1, json.dumps({"renewToken": {"token": "SharedAccessSignature sr=x&sig=y&se=1&skn=node-key2"}}))
    op, data = ctl.recv()
    check(op == 8 and int.from_bytes(data[:2], "big") == 1008, "renewToken failure: %r %r", op, data)


@test
def test_ir_cli(h):
    """ir create/list/regenerate-key/delete; the old key stops working; delete closes listeners with 1001"""
    r = Relay(h)
    check("is valid" in h.run([h.bin("shir-relay"), "-f", r.conf, "-t"], check=0).stdout, "-t on a good config")
    bad = h.write("bad.conf", "[relay]\nlisten = 0.0.0.0:1\n[limits]\nmax_listeners = 0\n")
    out = h.run([h.bin("shir-relay"), "-f", bad, "-t"], check=1).stderr
    check("max_listeners must be a whole number from 1" in out, "-t names the bad key: %s", out)
    bad = h.write("bad2.conf", "[relay]\nlisten = 0.0.0.0:%d\nstate_file = %s\n" % (r.port, h.path("s2.json")))
    p = h.start("plain-public", [h.bin("shir-relay"), "-f", bad])
    check(p.wait_exit(10) == 1 and "is not loopback" in p.log(), "plain listener on 0.0.0.0 is refused:\n%s", p.log())
    keys = r.create("sales-ir")
    out = r.cli("ir", "list").stdout
    check(re.search(r"^sales-ir\s+yes\s+unknown\s+ws://127\.0\.0\.1:%d\s+node-key1\(L\) node-key2\(L\) service-key\(S\)" % r.port,
                    out, re.M), "ir list:\n%s", out)
    check(keys["service-key"]["endpoint"] == "ws://127.0.0.1:%d" % r.port, "endpoint in the key: %r", keys)
    check(os.stat(r.state).st_mode & 0o777 == 0o600, "state file mode")
    r.cli("ir", "create", "sales-ir", check_rc=1)
    r.cli("ir", "create", "open-ir", "--anonymous-senders")
    r.start()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/open-ir/x")
    check(conn.getresponse().status == 502, "anonymous senders need no token (502: no listener)")
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/sales-ir/x")
    check(conn.getresponse().status == 401, "without --anonymous-senders a token is needed")

    def listen(key):
        tok = sas_token("http://127.0.0.1:%d/sales-ir" % r.port, "node-key1", key)
        return RawWS(r.port, "/$hc/sales-ir?sb-hc-action=listen", {"ServiceBusAuthorization": tok})

    old = keys["node-key1"]["key"]
    ctl = listen(old)
    check(ctl.status == 101, "listen with key1: %d", ctl.status)
    r.proc.mark()
    out = r.cli("ir", "regenerate-key", "sales-ir", "key1").stdout
    new = [w for w in out.split() if w.startswith("IR@v1@")]
    check(len(new) == 1, "regenerate prints the new key:\n%s", out)
    r.proc.wait_log(r"event=state\.reload status=done")
    from relaytest import decode_key
    nk = decode_key(new[0])["key"]
    check(nk != old, "a new key")
    check(listen(old).status == 401, "the old key must fail")
    c2 = listen(nk)
    check(c2.status == 101, "the new key works")
    # the connection made with the old key survives the regeneration
    ctl.send(9, b"x")
    check(ctl.recv() == (10, b"x"), "old connection still up")
    # SIGHUP reloads without dropping connections
    r.proc.signal(signal.SIGHUP)
    r.proc.wait_log(r"event=reload status=done")
    ctl.send(9, b"y")
    check(ctl.recv() == (10, b"y"), "still up after SIGHUP")
    r.cli("ir", "delete", "sales-ir")
    for c in (ctl, c2):
        op, data = c.recv()
        check(op == 8 and int.from_bytes(data[:2], "big") == 1001, "delete closes with 1001: %r %r", op, data)
    out = r.cli("ir", "list").stdout
    check("sales-ir" not in out and "open-ir" in out, "deleted:\n%s", out)
    r.cli("ir", "delete", "sales-ir", check_rc=1)
    r.proc.signal(signal.SIGTERM)
    check(r.proc.wait_exit(10) == 0, "clean exit")
    r.proc.wait_log(r"event=shutdown\.done", after_mark=False)


@test
def test_verified_token_reuse(h):
    """a token verified once (kept in the relay's small table) stops working when it expires, when
    its key is regenerated, for another hybrid connection and for a right it lacks"""
    import http.client
    import time
    r = Relay(h, limits="token_skew = 0")
    keys = r.create("one")
    r.create("two")
    r.start()

    def get(hc, tok):
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.request("GET", "/%s/x" % hc, headers={"ServiceBusAuthorization": tok})
        st = conn.getresponse().status
        conn.close()
        return st

    send = keys["service-key"]
    short = sas_token("http://127.0.0.1:%d/one" % r.port, "service-key", send["key"], ttl=2)
    # authorized and no listener: 502, twice (the second from the table)
    check(get("one", short) == 502 and get("one", short) == 502, "a valid token is accepted twice")
    st = get("two", short)
    check(st in (401, 403), "the same token for another hybrid connection (its own keys): %d", st)
    exp = int(re.search(r"se=(\d+)", short).group(1))
    wait_until(lambda: time.time() > exp + 0.2, 10, "the token to expire")
    check(get("one", short) == 401, "an expired token is refused although it was verified before")

    lkey = keys["node-key1"]["key"]
    ltok = sas_token("http://127.0.0.1:%d/one" % r.port, "node-key1", lkey)
    ctl = RawWS(r.port, "/$hc/one?sb-hc-action=listen", {"ServiceBusAuthorization": ltok})
    check(ctl.status == 101, "listen: %d", ctl.status)
    check(get("one", ltok) == 403, "a Listen token used to send: 403 (after it was verified for Listen)")
    ctl.close()
    r.proc.mark()
    r.cli("ir", "regenerate-key", "one", "key1")
    r.proc.wait_log(r"event=state\.reload status=done")
    again = RawWS(r.port, "/$hc/one?sb-hc-action=listen", {"ServiceBusAuthorization": ltok})
    check(again.status == 401, "the same token string after its key was regenerated: %d", again.status)


main()
