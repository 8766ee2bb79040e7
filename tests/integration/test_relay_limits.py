"""Integration: what one client cannot do to shir-relay (issue 11 items 7-10,
issue 18). Each attack is bounded in time and bytes; the relay must keep
serving a listener and a legitimate sender while it runs.

  item 7  pipelined bytes behind a pending request are not read without limit
  item 8  a head trickled byte by byte is cut at handshake_timeout; many of
          them from one address (or from many) do not lock a listener out
  item 9  a sender that does not read its answer never pauses the listener's
          shared control channel: it is dropped, others get their answers
  item 10 bad framing (transfer codings, chunk sizes) gets 400, then close
  18      a sender that goes away while its answer is owed voids the request:
          rendezvous closed with 1001, inline request cancelled"""
import json
import os
import socket
import threading
import time

from shirtest import check, main, test, wait_until
from relaytest import HYCO, Relay, RawWS, node_env, npm_clients, sas_token


def raw_listener(r, lid, key="node-key1", headers=None):
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, key, r.keys["myhc"][key]["key"])
    hdr = {"ServiceBusAuthorization": tok}
    hdr.update(headers or {})
    ws = RawWS(r.port, "/$hc/myhc?sb-hc-action=listen&sb-hc-id=%s" % lid, hdr)
    ws.s.settimeout(10)
    return ws


def send_token(r):
    return sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])


def next_request(lst):
    while True:
        op, msg = lst.recv()
        if op == 1:
            return json.loads(msg)["request"]


def respond(ws, req_id, status, body=None):
    ws.send(1, json.dumps({"response": {"requestId": req_id, "statusCode": status,
                                        "responseHeaders": {}, "body": body is not None}}))
    if body is not None:
        ws.send(2, body)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


def get(r, path, timeout=5, src="127.0.0.1"):
    """One HTTP request as a legitimate sender; returns (status line, body)."""
    c = socket.create_connection(("127.0.0.1", r.port), timeout=timeout, source_address=(src, 0))
    try:
        c.sendall(("GET /myhc/%s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                   "ServiceBusAuthorization: %s\r\n\r\n" % (path, send_token(r))).encode())
        data = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
    finally:
        c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, body = out + rest[:n], rest[n + 2:]
        body = out
    return head.split(b"\r\n")[0], body


def answer_all(lst, stop, body=b"ok"):
    """A listener thread: answers every inline request with 200 body."""
    def run():
        lst.s.settimeout(0.5)
        while not stop.is_set():
            try:
                req = next_request(lst)
            except (socket.timeout, OSError):
                continue
            if "method" in req:
                respond(lst, req["id"], 200, body)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def pump_until_stalled(sock, limit_bytes, limit_s, chunk=b"x" * 65536):
    """Writes until the peer stops reading (no progress for 1 s), limit_bytes
    were sent or limit_s passed. Returns the bytes written."""
    sock.setblocking(False)
    sent, last, t0 = 0, time.monotonic(), time.monotonic()
    while sent < limit_bytes and time.monotonic() - t0 < limit_s:
        try:
            n = sock.send(chunk)
            sent += n
            last = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - last > 1.0:
                break
            time.sleep(0.01)
    sock.setblocking(True)
    return sent


@test
def test_pipelined_flood_bounded(h):
    """item 7: 200 MB pipelined behind a pending request are not read into memory (RSS +<64 MB); others are served"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "held")
    check(lst.status == 101, "listen: %d", lst.status)
    rss0 = rss_kb(r.proc.pid)
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("GET /myhc/pending HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n"
               % send_token(r)).encode())
    held = next_request(lst)  # never answered while the flood runs
    pipelined = b"GET /myhc/next HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * 65000 + b"\r\n\r\n"
    sent = pump_until_stalled(c, 200 * 1024 * 1024, 15, pipelined)
    grown = rss_kb(r.proc.pid) - rss0
    check(grown < 64 * 1024, "relay RSS grew by %d KiB while %d bytes were pipelined" % (grown, sent))
    check(sent < 100 * 1024 * 1024, "the relay must stop reading the flood; it took %d bytes", sent)
    # the relay keeps serving others through the same listener
    stop = threading.Event()
    respond(lst, held["id"], 200, b"first")
    c.close()
    answer_all(lst, stop)
    line, body = get(r, "other")
    stop.set()
    check(line.startswith(b"HTTP/1.1 200") and body == b"ok", "another sender: %r %r", line, body)


@test
def test_slowloris_deadline(h):
    """item 8: a head trickled one byte at a time is cut at handshake_timeout (408), not kept alive byte by byte"""
    r = Relay(h, limits="handshake_timeout = 2")
    r.create()
    r.start()
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    head = b"GET /myhc/slow HTTP/1.1\r\nHost: h\r\nX-A: " + b"a" * 200
    t0 = time.monotonic()
    got = b""
    c.settimeout(0.25)
    for b in head:
        if time.monotonic() - t0 > 8:
            break
        try:
            c.send(bytes([b]))
        except OSError:
            break
        try:
            d = c.recv(4096)
            got += d
            if not d or got:
                break
        except socket.timeout:
            pass
    took = time.monotonic() - t0
    check(got.startswith(b"HTTP/1.1 408 "), "a trickled head gets 408: %r after %.1f s", got[:40], took)
    check(1.5 < took < 4, "cut at the 2 s deadline, after %.1f s", took)
    r.proc.wait_log(r"event=http\.head_timeout peer=127\.0\.0\.1 limit=handshake_timeout")
    c.close()


def trickle_many(port, n, srcs, stop):
    """Opens n connections round-robin from the source addresses and keeps
    each sending a byte of a head now and then. Returns the sockets."""
    socks = []
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(srcs[i % len(srcs)], 0))
            s.send(b"G")
            socks.append(s)
        except OSError:
            pass

    def run():
        while not stop.wait(0.5):
            for s in socks:
                try:
                    s.send(b"E")
                except OSError:
                    pass
    threading.Thread(target=run, daemon=True).start()
    return socks


@test
def test_slowloris_many(h):
    """item 8: trickling connections from one address, then from ten, do not lock out a listener or a legitimate sender"""
    r = Relay(h, limits="max_connections = 100\nhandshake_timeout = 30\nmax_handshakes_per_address = 16")
    r.create()
    r.start()
    stop = threading.Event()
    try:
        socks = trickle_many(r.port, 300, ["127.0.0.2"], stop)
        lst = raw_listener(r, "one-address")
        check(lst.status == 101, "a listener connects past one address's trickling heads: %d", lst.status)
        answer_all(lst, stop)
        line, body = get(r, "legit")
        check(line.startswith(b"HTTP/1.1 200"), "a legitimate sender is served: %r", line)
        # ten addresses: half-open heads reach the relay's limit; the oldest makes room
        more = trickle_many(r.port, 400, ["127.0.0.%d" % i for i in range(3, 13)], stop)
        check(len(more) > 0, "attack connections opened")
        lst2 = raw_listener(r, "ten-addresses")
        check(lst2.status == 101, "a listener connects while ten addresses fill the relay: %d", lst2.status)
        answer_all(lst2, stop)
        line, body = get(r, "legit2")
        check(line.startswith(b"HTTP/1.1 200"), "a legitimate sender is served: %r", line)
        m = r.admin_get("/metrics")
        check('limit="evicted_half_open"} 0' not in m, "half-open heads were evicted:\n%s" % m)
        for s in socks + more:
            s.close()
    finally:
        stop.set()


@test
def test_reserve_for_listeners(h):
    """item 8: senders holding their whole share of max_connections get 503 beyond it; the reserve still takes a listener"""
    r = Relay(h, limits="max_connections = 20\nreserved_percent = 25")
    r.create()
    r.start()
    lst = raw_listener(r, "first")
    check(lst.status == 101, "listen: %d", lst.status)
    stop = threading.Event()
    answer_all(lst, stop)
    held = []
    try:
        for i in range(15):  # the senders' share: 20 less 25 %
            c = socket.create_connection(("127.0.0.1", r.port), timeout=5, source_address=("127.0.0.%d" % (2 + i % 5), 0))
            c.sendall(("GET /myhc/k%d HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % (i, send_token(r))).encode())
            check(c.recv(4096).startswith(b"HTTP/1.1 200"), "sender %d served", i)
            held.append(c)  # kept open (keep-alive)
        line, body = get(r, "one-more")
        check(line.startswith(b"HTTP/1.1 503"), "a sender beyond the share: %r %r", line, body)
        lst2 = raw_listener(r, "second")
        check(lst2.status == 101, "a listener connects in the reserve: %d", lst2.status)
        lst2.close()
    finally:
        stop.set()
        for c in held:
            c.close()


@test
def test_budgets_released(h):
    """item 8: per-address and per-kind counts are given back when connections close, whatever they became (HTTP sender, listener, rendezvous, refused upgrade)"""
    r = Relay(h, limits="max_connections_per_address = 12\nmax_handshakes_per_address = 4")
    r.create()
    r.start()
    for rnd in range(3):  # 3 x (listener + 4 senders + rendezvous + refused upgrade) > 12
        lst = raw_listener(r, "round%d" % rnd)
        check(lst.status == 101, "round %d: listen: %d", rnd, lst.status)
        stop = threading.Event()
        for i in range(4):
            c = sender_leaves(r, "s%d" % i, b"x")
            req = next_request(lst)
            respond(lst, req["id"], 200, b"ok")
            check(c.recv(4096).startswith(b"HTTP/1.1 200"), "round %d sender %d answered", rnd, i)
            c.close()
        c = sender_leaves(r, "big", b"b" * 100000)
        req = next_request(lst)
        rv = RawWS(r.port, req["address"][req["address"].index("/$hc/"):])
        check(rv.status == 101, "rendezvous: %d", rv.status)
        c.close()
        bad = RawWS(r.port, "/$hc/nosuch?sb-hc-action=connect")
        check(bad.status == 404, "refused upgrade: %d", bad.status)
        bad.close()
        rv.close()
        lst.close()
        wait_until(lambda: "shir_relay_connections 0" in r.admin_get("/metrics"), 10,
                   "round %d: every connection to close" % rnd)
    m = r.admin_get("/metrics")
    for k in ("half_open", "sender", "node"):
        check('shir_relay_connections_by_kind{kind="%s"} 0' % k in m, "%s connections left:\n%s" % (k, m))
    check('limit="per_address"} 0' in m, "nothing was refused per address:\n%s" % m)


@test
def test_sender_not_reading(h):
    """item 9: a sender that never reads its large answer is dropped; the shared control channel is never paused and other senders get their answers promptly"""
    r = Relay(h, limits="sender_backlog = 262144\nresponse_timeout = 10")
    r.create()
    r.start()
    lst = raw_listener(r, "shared")
    check(lst.status == 101, "listen: %d", lst.status)
    rss0 = rss_kb(r.proc.pid)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(10)
    slow.connect(("127.0.0.1", r.port))
    slow.sendall(("GET /myhc/huge HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n"
                  % send_token(r)).encode())
    req = next_request(lst)
    lst.send(1, json.dumps({"response": {"requestId": req["id"], "statusCode": 200, "body": True}}))
    chunk = b"y" * 65536
    total = 96 * 65536
    t0 = time.monotonic()
    for i in range(96):  # 6 MiB on the control channel for a sender that reads nothing
        lst.send(2 if i == 0 else 0, chunk, fin=i == 95)
    pushed = time.monotonic() - t0
    check(pushed < 20, "the listener was held back for %.1f s pushing %d bytes" % (pushed, total))
    r.proc.wait_log(r"event=http\.sender_dropped hc=myhc target=/myhc/huge", timeout=10)
    # the same control channel still carries other senders' answers, at once
    stop = threading.Event()
    answer_all(lst, stop, b"prompt")
    t1 = time.monotonic()
    line, body = get(r, "other", timeout=5)
    stop.set()
    check(line.startswith(b"HTTP/1.1 200") and body == b"prompt", "another sender: %r %r", line, body)
    check(time.monotonic() - t1 < 2, "answered in %.1f s" % (time.monotonic() - t1))
    grown = rss_kb(r.proc.pid) - rss0
    check(grown < 32 * 1024, "relay memory grew by %d KiB" % grown)
    slow.close()


@test
def test_sender_not_reading_hyco(h):
    """item 9 with Microsoft's hyco-https listener: a sender that pipelines requests and never reads their inline answers is dropped; another sender's answer is not delayed"""
    mods = npm_clients(h)
    r = Relay(h, limits="sender_backlog = 262144\nresponse_timeout = 10")
    r.create()
    r.start()
    env = dict(r.listen_env())
    lst = h.start("listener", ["node", os.path.join(HYCO, "https_listener.js")], env=node_env(mods, env))
    lst.wait_log(r"LISTENER listening")
    # answers under 64 KiB travel inline on hyco-https's control channel: 40 of
    # them pipelined by a sender that reads nothing
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(10)
    slow.connect(("127.0.0.1", r.port))
    one = ("GET /myhc/k60 HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % send_token(r)).encode()
    slow.sendall(one * 40)
    r.proc.wait_log(r"event=http\.sender_dropped hc=myhc target=/myhc/k60", timeout=20)
    t1 = time.monotonic()
    line, body = get(r, "other", timeout=5)
    check(line.startswith(b"HTTP/1.1 201"), "another sender through the same listener: %r %r", line, body)
    check(time.monotonic() - t1 < 2, "answered in %.1f s" % (time.monotonic() - t1))
    slow.close()


@test
def test_bad_framing_400(h):
    """item 10: transfer codings other than chunked, overflowing or bad chunk sizes and bad chunk delimiters get 400, then close"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "framing")
    check(lst.status == 101, "listen: %d", lst.status)
    tok = send_token(r)
    cases = {
        "chunked, identity": b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "gzip, chunked": b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "identity": b"Transfer-Encoding: identity\r\n\r\nhello",
        "chunked twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "unknown coding": b"Transfer-Encoding: x-magic\r\n\r\n",
        "overflowing size": b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc",
        "non-hex size": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc",
        "bad delimiter": b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
        "TE and Content-Length": b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "upgrade with a body": b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 4\r\n\r\n\x81\x80ab",
    }
    for what, tail in cases.items():
        c = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        c.sendall(("POST /myhc/f HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n" % tok).encode() + tail)
        data = b""
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    break
                data += d
        except socket.timeout:
            check(False, "%s: the connection was not closed after %r" % (what, data[:80]))
        c.close()
        check(data.startswith(b"HTTP/1.1 400 "), "%s: %r" % (what, data[:120]))
        check(b"Connection: close" in data, "%s: closes: %r" % (what, data[:200]))
    # a good chunked request still works
    stop = threading.Event()
    answer_all(lst, stop)
    c = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    c.sendall(("POST /myhc/f HTTP/1.1\r\nHost: h\r\nConnection: close\r\nServiceBusAuthorization: %s\r\n"
               "Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % tok).encode())
    data = c.recv(4096)
    stop.set()
    check(data.startswith(b"HTTP/1.1 200"), "good chunked request: %r", data[:60])
    c.close()


def sender_leaves(r, path, body=b""):
    """Sends a request and returns the socket (the caller closes it)."""
    c = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    c.sendall(("POST /myhc/%s HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\nContent-Length: %d\r\n\r\n"
               % (path, send_token(r), len(body))).encode() + body)
    return c


@test
def test_sender_gone_raw_listener(h):
    """issue 18: a sender that closes while its answer is owed: the request rendezvous closes with 1001 within a second, an inline request is cancelled on the control channel"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "raw", headers={"Shir-Relay-Features": "cancel"})
    check(lst.status == 101, "listen: %d", lst.status)
    # large request: address-only on the control channel, the full request on the rendezvous
    c = sender_leaves(r, "big", b"b" * 100000)
    req = next_request(lst)
    check("method" not in req, "address-only request: %r", req)
    rv = RawWS(r.port, req["address"][req["address"].index("/$hc/"):])
    check(rv.status == 101, "rendezvous: %d", rv.status)
    rv.s.settimeout(5)
    op, msg = rv.recv()
    check(op == 1 and json.loads(msg)["request"]["method"] == "POST", "full request on the rendezvous")
    while True:  # the body
        op, data = rv.recv()
        if op == 2:
            break
    c.shutdown(socket.SHUT_WR)  # a half-close counts as going away (docs/relay.md)
    t0 = time.monotonic()
    op, data = rv.recv()
    took = time.monotonic() - t0
    check(op == 8 and int.from_bytes(data[:2], "big") == 1001, "rendezvous close: %r %r", op, data)
    check(took < 1, "closed %.2f s after the sender left" % took)
    c.close()
    # inline request: {"cancel":{"id":...}} to a listener that asked for it
    c = sender_leaves(r, "small", b"s" * 10)
    req = next_request(lst)
    check("method" in req, "inline request: %r", req)
    c.close()
    t0 = time.monotonic()
    op, msg = lst.recv()
    while op == 2:
        op, msg = lst.recv()
    check(op == 1 and json.loads(msg) == {"cancel": {"id": req["id"], "reason": "the sender went away"}},
          "cancel message: %r", msg)
    check(time.monotonic() - t0 < 1, "cancelled within a second")
    r.proc.wait_log(r"event=http\.sender_gone hc=myhc target=/myhc/small .*cancel=1")
    # a listener that did not ask gets no cancel message (hyco-https, .NET)
    plain = raw_listener(r, "plain")
    lst.close()
    wait_until(lambda: "shir_relay_listeners 1" in r.admin_get("/metrics"), 10, "one listener")
    c = sender_leaves(r, "small2", b"s")
    req = next_request(plain)
    c.close()
    r.proc.wait_log(r"event=http\.sender_gone hc=myhc target=/myhc/small2 .*cancel=0")
    plain.s.settimeout(0.5)
    try:
        op, msg = plain.recv()
        check(op == 2, "no message but the body may follow: %r %r", op, msg)
        op, msg = plain.recv()
        check(False, "unexpected message %r %r" % (op, msg))
    except socket.timeout:
        pass


@test
def test_sender_gone_hyco(h):
    """issue 18 with Microsoft's hyco-https listener: the request rendezvous of a sender that left closes with 1001 within a second"""
    mods = npm_clients(h)
    r = Relay(h)
    r.create()
    r.start()
    lst = h.start("listener", ["node", os.path.join(HYCO, "https_listener.js")], env=node_env(mods, r.listen_env()))
    lst.wait_log(r"LISTENER listening")
    c = sender_leaves(r, "never", b"n" * 100000)
    lst.wait_log(r"LISTENER POST /myhc/never")
    c.close()
    t0 = time.monotonic()
    lst.wait_log(r"LISTENER rvclose 1001", timeout=5)
    check(time.monotonic() - t0 < 1.5, "closed %.2f s after the sender left" % (time.monotonic() - t0))
    # the listener still serves
    line, body = get(r, "after")
    check(line.startswith(b"HTTP/1.1 201"), "after: %r", line)


main()
