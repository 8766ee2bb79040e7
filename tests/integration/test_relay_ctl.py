"""Integration: shir-relay control-channel features and limits: renewToken
from hyco-https (interval shrunk, spec §10 step 6) and its keep-alive pongs,
token expiry (1008), the listener limit, Allowed/DisallowedListeners, the
per-address limit on failed listen attempts (hyco-ws reconnect storm)."""
import http.client
import json
import os
import socket
import time

from shirtest import check, main, test, wait_until
from relaytest import HYCO, Relay, RawWS, http_result, node_env, npm_clients, run_node, sas_token


def raw_listener(r, lid, key="node-key1", ttl=3600):
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, key, r.keys["myhc"][key]["key"], ttl)
    ws = RawWS(r.port, "/$hc/myhc?sb-hc-action=listen&sb-hc-id=%s" % lid, {"ServiceBusAuthorization": tok})
    return ws



def wait_stalled(sent, timeout, what, total=None):
    """Waits until sent["n"] (bytes a pump thread has written) has not grown
    for a second, i.e. the far side stopped reading, or total was reached."""
    last = [-1, time.monotonic()]

    def stalled():
        if sent["n"] != last[0]:
            last[0], last[1] = sent["n"], time.monotonic()
            return False
        return time.monotonic() - last[1] > 1.0 or (total is not None and sent["n"] >= total)
    wait_until(stalled, timeout, what)

@test
def test_renew_and_keepalive(h):
    """hyco-https renews its token every second (shrunk timer) and sends unsolicited pongs; the channel stays up"""
    mods = npm_clients(h)
    r = Relay(h)
    r.create()
    r.start()
    env = dict(r.listen_env(), KEEPALIVE="1")
    lst = h.start("listener", ["node", "-r", os.path.join(HYCO, "fasttimers.js"), os.path.join(HYCO, "https_listener.js")],
                  env=node_env(mods, env))
    lst.wait_log(r"LISTENER listening")
    r.proc.wait_log(r"event=listener\.renewed hc=myhc")
    r.proc.wait_log(r"event=listener\.renewed hc=myhc")
    res = http_result(run_node(h, mods, "http_sender.js", r.send_env(), ["GET", "/myhc/after-renew"]))
    check(res["status"] == 201, "after renewals and pongs: %r", res)
    check(r.proc.log().count("event=listener.connected") == 1, "one control channel:\n%s", r.proc.tail())


@test
def test_token_expiry(h):
    """a listener whose token expires (no renewal) is closed with 1008"""
    r = Relay(h, limits="token_skew = 0")
    r.create()
    r.start()
    ws = raw_listener(r, "short", ttl=2)
    check(ws.status == 101, "listen: %d", ws.status)
    ws.s.settimeout(10)
    t0 = time.monotonic()
    op, data = ws.recv()
    check(op == 8 and int.from_bytes(data[:2], "big") == 1008, "expiry close: %r %r", op, data)
    check(time.monotonic() - t0 < 5, "closed soon after expiry")
    r.proc.wait_log(r"event=listener\.token_expired")
    # a valid renewal keeps it open past the first expiry
    first_expiry = time.time() + 2
    ws = raw_listener(r, "renewing", ttl=2)
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "node-key1", r.keys["myhc"]["node-key1"]["key"], 3600)
    ws.send(1, json.dumps({"renewToken": {"token": tok}}))
    r.proc.wait_log(r"event=listener\.renewed hc=myhc id=renewing")
    # the condition under test is the clock passing the first token's expiry
    wait_until(lambda: time.time() > first_expiry + 1.5, 10, "the first token to expire")
    ws.send(9, b"alive")
    check(ws.recv() == (10, b"alive"), "renewed channel still open after the old expiry")


@test
def test_pinning_and_limits(h):
    """Allowed/DisallowedListeners route to the named listener; max_listeners; raw inline request/response"""
    r = Relay(h, limits="max_listeners = 2")
    r.create()
    r.start()
    a = raw_listener(r, "aaaa")
    b = raw_listener(r, "bbbb")
    check(a.status == 101 and b.status == 101, "two listeners")
    c = raw_listener(r, "cccc")
    check(c.status == 403, "third listener over max_listeners=2: %d %s", c.status, c.reason)
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.request("POST", "/myhc/pin?sb-hc-foo=1&z=2", body=b"abc",
                     headers={"ServiceBusAuthorization": tok, "Microsoft-Relay-AllowedListeners": "bbbb",
                              "Cookie": "a=1", "X-Multi": "1"})
        op, msg = b.recv()
        req = json.loads(msg)["request"]
        check(req["method"] == "POST" and req["requestTarget"] == "/myhc/pin?z=2" and req["body"] is True,
              "inline request: %r", req)
        check("address" in req and "sb-hc-action=request" in req["address"], "address: %r", req)
        check(req["requestHeaders"].get("X-Multi") == "1" and "Host" not in req["requestHeaders"], "headers: %r", req)
        op, body = b.recv()
        check(op == 2 and body == b"abc", "body message: %r %r", op, body)
        b.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": "202",
                                           "responseHeaders": {"X-From": "b"}, "body": True}}))
        b.send(2, b"pi", fin=False)
        b.send(0, b"nned", fin=True)
        resp = conn.getresponse()
        check(resp.status == 202 and resp.read() == b"pinned" and resp.getheader("X-From") == "b"
              and resp.getheader("Via"), "response: %r", resp.status)
        conn.close()
    # without pinning, requests are spread at random over both listeners
    import select
    seen = {"aaaa": 0, "bbbb": 0}
    for i in range(24):
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.request("GET", "/myhc/spread/%d" % i, headers={"ServiceBusAuthorization": tok})
        ready, _, _ = select.select([a.s, b.s], [], [], 10) if not (a.rest or b.rest) else ([], [], [])
        who = a if (a.rest or a.s in ready) else b
        op, msg = who.recv()
        req = json.loads(msg)["request"]
        check(req["body"] is False, "GET has no body: %r", req)
        who.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": 200, "body": False}}))
        resp = conn.getresponse()
        check(resp.status == 200, "spread response: %d", resp.status)
        resp.read()
        conn.close()
        seen["aaaa" if who is a else "bbbb"] += 1
    check(seen["aaaa"] >= 2 and seen["bbbb"] >= 2, "random choice should use both listeners: %r", seen)
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/x", headers={"ServiceBusAuthorization": tok,
                                            "Microsoft-Relay-DisallowedListeners": "aaaa, bbbb"})
    resp = conn.getresponse()
    check(resp.status == 404, "no listener qualifies: %d", resp.status)


@test
def test_listen_storm(h):
    """hyco-ws with a wrong key storms reconnects; the relay rate-limits (429) and keeps serving"""
    mods = npm_clients(h)
    r = Relay(h, limits="listen_fail_limit = 20")
    r.create()
    r.start()
    bad = h.start("storm", ["node", os.path.join(HYCO, "ws_listener.js")],
                  env=node_env(mods, dict(r.listen_env(), KEY="d3JvbmcgdHJ1bmNhdGVkIGtleQ==")))
    r.proc.wait_log(r"event=listen\.refused status=401")
    wait_until(lambda: "shir_relay_listen_total{result=\"rate_limited\"} 0" not in r.admin_get("/metrics"),
               20, "rate limiting to start")
    bad.stop()
    ws = raw_listener(r, "good")
    check(ws.status == 429, "the address is limited for a minute: %d", ws.status)
    met = r.admin_get("/metrics")
    check("shir_relay_listeners 0" in met, "metrics:\n%s", met)
    # senders are not affected
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/x", headers={"ServiceBusAuthorization": tok})
    check(conn.getresponse().status == 502, "sender gets 502 (no listener), not 429")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


@test
def test_tunnel_backpressure(h):
    """a listener that does not read: the sender blocks, the relay's memory stays bounded, nothing is lost"""
    import threading
    r = Relay(h, limits="tunnel_buffer = 65536")
    r.create()
    r.start()
    ctl = raw_listener(r, "slow")
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    box = {}

    def connect():
        box["snd"] = RawWS(r.port, "/$hc/myhc?sb-hc-action=connect", {"ServiceBusAuthorization": tok})
    t = threading.Thread(target=connect)
    t.start()
    op, msg = ctl.recv()
    addr = json.loads(msg)["accept"]["address"]
    lst = RawWS(r.port, addr.split(str(r.port), 1)[1])
    t.join(10)
    snd = box["snd"]
    check(lst.status == 101 and snd.status == 101, "tunnel open")
    rss0 = rss_kb(r.proc.pid)
    chunk = b"z" * 65536
    sent = {"n": 0}
    snd.s.settimeout(None)

    def pump():
        try:
            for _ in range(64 * 16):	# up to 64 MiB
                snd.send(2, chunk)
                sent["n"] += len(chunk)
        except OSError:
            pass
    pt = threading.Thread(target=pump, daemon=True)
    pt.start()
    wait_stalled(sent, 30, "the sender to block")
    stuck_at = sent["n"]
    grown = rss_kb(r.proc.pid) - rss0
    check(stuck_at < 48 * 1024 * 1024, "the sender must be held back, it pushed %d bytes", stuck_at)
    check(grown < 16 * 1024, "relay memory grew by %d KiB with a slow reader" % grown)
    # now read everything: all bytes arrive, in order, and the sender resumes
    got = 0
    lst.s.settimeout(20)
    while got < 64 * 16 * 65536:
        op, data = lst.recv()
        check(op == 2 and data == chunk, "a whole 64 KiB binary message (op %d, %d bytes)" % (op, len(data)))
        got += len(data)
    pt.join(20)
    check(sent["n"] == got == 64 * 16 * 65536, "sent %d, received %d" % (sent["n"], got))


@test
def test_connection_limits(h):
    """max_connections, the head-size cap (431) and the handshake/idle timeout on HTTP connections"""
    import socket
    r = Relay(h, limits="max_connections = 3\nhandshake_timeout = 1\nmax_header_bytes = 2048")
    r.create()
    r.start()
    held = [socket.create_connection(("127.0.0.1", r.port), timeout=10) for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    check(extra.recv(100) == b"", "a connection over max_connections is closed at once")
    extra.close()
    # the idle connections are closed by the handshake timeout (they sent nothing)
    t0 = time.monotonic()
    for c in held:
        check(c.recv(100) == b"", "an idle connection is closed")
        c.close()
    check(time.monotonic() - t0 < 5, "closed by the 1 s handshake timeout")
    wait_until(lambda: "shir_relay_connections 0" in r.admin_get("/metrics"), 10, "connections to be released")
    # the timeout does not apply to WebSockets: a quiet control channel stays up
    ws = raw_listener(r, "quiet")
    check(ws.status == 101, "listen")
    t1 = time.monotonic()
    wait_until(lambda: time.monotonic() - t1 > 2.5, 10, "more than the handshake timeout to pass")
    ws.send(9, b"q")
    check(ws.recv() == (10, b"q"), "a quiet control channel outlives the handshake timeout")
    ws.close()
    wait_until(lambda: "shir_relay_connections 0" in r.admin_get("/metrics"), 10, "the listener to go")
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(b"GET /myhc/x HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    data = c.recv(4096)
    check(data.startswith(b"HTTP/1.1 431 "), "head over max_header_bytes: %r", data[:60])
    c.close()


@test
def test_response_status_line_injection(h):
    """a listener's statusDescription with CR/LF cannot add headers or a second response on the sender's connection"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "inj")
    check(lst.status == 101, "listen: %d", lst.status)
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("GET /myhc/x HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % tok).encode())
    op, msg = lst.recv()
    req = json.loads(msg)["request"]
    lst.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": 200, "body": False,
                                         "statusDescription": "OK\r\nX-Injected: 1\r\nSet-Cookie: s=1"}}))
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            break
        data += d
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    check(head[0].startswith(b"HTTP/1.1 200 OK"), "status line: %r", head[0])
    names = [l.split(b":", 1)[0].strip().lower() for l in head[1:]]
    check(b"x-injected" not in names and b"set-cookie" not in names,
          "the status description must not inject header lines: %r", head)
    c.close()
    lst.close()


@test
def test_far_expiry_listener(h):
    """a listener token with the largest se (2^63-1) is accepted and does not overflow the expiry timer"""
    r = Relay(h)
    r.create()
    r.start()
    ws = raw_listener(r, "far", ttl=2 ** 63 - 1 - int(time.time()))
    check(ws.status == 101, "listen: %d %s", ws.status, ws.reason)
    ws.send(9, b"far")
    check(ws.recv() == (10, b"far"), "the relay still answers on the control channel")
    ws.close()


@test
def test_rendezvous_stays_with_its_hc(h):
    """after a request rendezvous with myhc's listener, a request for another hybrid connection on the same sender connection goes to that one's listener"""
    r = Relay(h)
    r.create()
    r.create("other")
    r.start()
    a = raw_listener(r, "lst-a")
    tok_b = sas_token("http://127.0.0.1:%d/other" % r.port, "node-key1", r.keys["other"]["node-key1"]["key"])
    b = RawWS(r.port, "/$hc/other?sb-hc-action=listen&sb-hc-id=lst-b", {"ServiceBusAuthorization": tok_b})
    check(a.status == 101 and b.status == 101, "two listeners: %d %d", a.status, b.status)
    ta = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    tb = sas_token("http://127.0.0.1:%d/other" % r.port, "service-key", r.keys["other"]["service-key"]["key"])
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/one", headers={"ServiceBusAuthorization": ta})
    op, msg = a.recv()
    req = json.loads(msg)["request"]
    rv = RawWS(r.port, req["address"].split(str(r.port), 1)[1])
    check(rv.status == 101, "rendezvous: %d", rv.status)
    rv.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": 200, "body": False}}))
    resp = conn.getresponse()
    resp.read()
    check(resp.status == 200, "first response: %d", resp.status)
    conn.request("GET", "/other/two", headers={"ServiceBusAuthorization": tb})
    b.s.settimeout(10)
    op, msg = b.recv()
    req2 = json.loads(msg)["request"]
    check(req2["requestTarget"] == "/other/two", "other's listener got the request: %r", req2)
    b.send(1, json.dumps({"response": {"requestId": req2["id"], "statusCode": 203, "body": False}}))
    resp = conn.getresponse()
    resp.read()
    check(resp.status == 203, "answered by other's listener: %d", resp.status)
    conn.close()


@test
def test_response_backpressure(h):
    """a sender that does not read a response streamed on its request rendezvous: that rendezvous is held back and the relay's memory stays bounded (on the shared control channel it would be dropped instead: test_relay_limits.py)"""
    import threading
    r = Relay(h, limits="tunnel_buffer = 65536")
    r.create()
    r.start()
    lst = raw_listener(r, "big")
    check(lst.status == 101, "listen: %d", lst.status)
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    c.settimeout(10)
    c.connect(("127.0.0.1", r.port))
    c.sendall(("GET /myhc/big HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % tok).encode())
    op, msg = lst.recv()
    req = json.loads(msg)["request"]
    lst = RawWS(r.port, req["address"][req["address"].index("/$hc/"):])  # the request rendezvous
    check(lst.status == 101, "rendezvous: %d", lst.status)
    lst.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": 200, "body": True}}))
    rss0 = rss_kb(r.proc.pid)
    chunk = b"y" * 65536
    total = 64 * 16 * 65536
    sent = {"n": 0}
    lst.s.settimeout(None)

    def pump():
        try:
            while sent["n"] < total:
                fin = sent["n"] + len(chunk) >= total
                lst.send(2 if sent["n"] == 0 else 0, chunk, fin=fin)
                sent["n"] += len(chunk)
        except OSError:
            pass
    pt = threading.Thread(target=pump, daemon=True)
    pt.start()
    wait_stalled(sent, 60, "the listener to block", total=total)
    grown = rss_kb(r.proc.pid) - rss0
    check(sent["n"] < 48 * 1024 * 1024, "the listener must be held back, it pushed %d bytes", sent["n"])
    check(grown < 16 * 1024, "relay memory grew by %d KiB with a slow sender" % grown)
    # reading resumes the listener: the whole body arrives
    got = 0
    c.settimeout(20)
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        got += len(d)
        if d.endswith(b"0\r\n\r\n") and got > total:
            break
    pt.join(20)
    check(sent["n"] == total and got > total, "sent %d, sender read %d" % (sent["n"], got))
    c.close()


@test
def test_admin_address_taken(h):
    """an admin address another process holds: shir-relay says why it cannot listen there"""
    relay = Relay(h)
    holder = socket.socket()
    holder.bind(("127.0.0.1", relay.admin))
    holder.listen(1)
    h.on_cleanup(holder.close)
    r = h.run([h.bin("shir-relay"), "-f", relay.conf], check=None, timeout=20)
    check(r.returncode != 0, "shir-relay started on a taken admin address")
    check("cannot listen on the admin address 127.0.0.1:%d: Address already in use" % relay.admin
          in r.stderr + r.stdout, r.stderr + r.stdout)


@test
def test_config_check_refuses_what_start_refuses(h):
    """shir-relay -t refuses what start would: a plain listener on a non-loopback address, a
    TLS key that does not load; and passes what start takes"""
    relay = Relay(h)
    with open(relay.conf) as f:
        good = f.read()
    r = h.run([h.bin("shir-relay"), "-f", relay.conf, "-t"], check=0)
    check("is valid" in r.stdout, r.stdout)
    wide = h.write("wide.conf", good.replace("listen = 127.0.0.1:", "listen = 0.0.0.0:"))
    r = h.run([h.bin("shir-relay"), "-f", wide, "-t"], check=1)
    check("is not loopback" in r.stderr and "listen_tls" in r.stderr, r.stderr)
    allowed = h.write("allowed.conf", good.replace("listen = 127.0.0.1:", "allow_plain_nonloopback = "
                                                   "true\nlisten = 0.0.0.0:"))
    h.run([h.bin("shir-relay"), "-f", allowed, "-t"], check=0)
    tls = h.write("tls.conf", good.replace("listen = 127.0.0.1:%d" % relay.port,
                                           "listen_tls = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s" % (
                                               relay.port, h.path("none.crt"), h.path("none.key"))))
    r = h.run([h.bin("shir-relay"), "-f", tls, "-t"], check=1)
    check("none.crt" in r.stderr or "none.key" in r.stderr, r.stderr)


@test
def test_ir_keys_prints_them_again(h):
    """shir-relay ir keys NAME prints the keys ir create printed; an unknown name is an error"""
    relay = Relay(h)
    created = [w for w in relay.cli("ir", "create", "sales").stdout.split() if w.startswith("IR@v1@")]
    again = [w for w in relay.cli("ir", "keys", "sales").stdout.split() if w.startswith("IR@v1@")]
    check(len(created) == 3 and created == again, "%r vs %r" % (created, again))
    r = relay.cli("ir", "keys", "nosuch", check_rc=1)
    check("no integration runtime named nosuch" in r.stderr, r.stderr)


main()
