"""Integration: shir-relay against hostile listeners and senders: a response
completes only a request the relay sent to that listener (control channel) or
to that sender connection (rendezvous); listener response headers that are not
RFC 7230 fields are dropped; headers named in Connection are hop-by-hop both
ways; request targets over 8 KiB get 414; a second listener with the id of a
live one is refused with 409. Raw WebSocket listeners (relaytest.RawWS) play
the hostile parts."""
import http.client
import json
import socket

from shirtest import check, main, test
from relaytest import Relay, RawWS, sas_token


def raw_listener(r, lid, key="node-key1"):
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, key, r.keys["myhc"][key]["key"])
    ws = RawWS(r.port, "/$hc/myhc?sb-hc-action=listen&sb-hc-id=%s" % lid, {"ServiceBusAuthorization": tok})
    ws.s.settimeout(10)
    return ws


def send_token(r):
    return sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])


def next_request(lst):
    op, msg = lst.recv()
    check(op == 1, "a text message, got opcode %d", op)
    return json.loads(msg)["request"]


def respond(ws, req_id, status, body=None, headers=None):
    ws.send(1, json.dumps({"response": {"requestId": req_id, "statusCode": status,
                                        "responseHeaders": headers or {}, "body": body is not None}}))
    if body is not None:
        ws.send(2, body)


def read_head(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            break
        data += d
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return lines[0], lines[1:]


def two_listeners(h):
    r = Relay(h)
    r.create()
    r.start()
    a = raw_listener(r, "lst-a")
    b = raw_listener(r, "lst-b")
    check(a.status == 101 and b.status == 101, "two listeners: %d %d", a.status, b.status)
    return r, a, b


@test
def test_response_only_from_its_listener(h):
    """a listener that learns another listener's request id cannot answer it on its control channel"""
    r, a, b = two_listeners(h)
    tok = send_token(r)
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/one", headers={"ServiceBusAuthorization": tok,
                                              "Microsoft-Relay-AllowedListeners": "lst-a"})
    req = next_request(a)
    respond(b, req["id"], 299, b"forged by b")
    # the relay has handled b's message (ignored it, or, wrongly, answered with it)
    r.proc.wait_log(r"event=(listener\.foreign_response hc=myhc id=lst-b|http\.response status=299)")
    respond(a, req["id"], 200, b"from a")
    resp = conn.getresponse()
    body = resp.read()
    check(resp.status == 200 and body == b"from a", "the sender must get a's answer: %d %r", resp.status, body)
    conn.close()


@test
def test_rendezvous_answers_only_its_sender(h):
    """a response on one sender connection's rendezvous cannot answer another sender's request"""
    r, a, b = two_listeners(h)
    tok = send_token(r)
    # a opens the rendezvous of sender 1 and answers there
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/two", headers={"ServiceBusAuthorization": tok,
                                              "Microsoft-Relay-AllowedListeners": "lst-a"})
    req = next_request(a)
    rv = RawWS(r.port, req["address"].split(str(r.port), 1)[1])
    check(rv.status == 101, "rendezvous: %d", rv.status)
    rv.s.settimeout(10)
    respond(rv, req["id"], 200, b"on rv")
    resp = conn.getresponse()
    check(resp.status == 200 and resp.read() == b"on rv", "sender 1 answered on its rendezvous")
    # sender 2's request goes to b; a answers it on sender 1's rendezvous
    conn2 = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn2.request("GET", "/myhc/three", headers={"ServiceBusAuthorization": tok,
                                                 "Microsoft-Relay-AllowedListeners": "lst-b"})
    req2 = next_request(b)
    respond(rv, req2["id"], 298, b"forged on rv")
    r.proc.wait_log(r"event=(rendezvous\.foreign_response hc=myhc|http\.response status=298)")
    respond(b, req2["id"], 201, b"from b")
    resp = conn2.getresponse()
    body = resp.read()
    check(resp.status == 201 and body == b"from b", "sender 2 must get b's answer: %d %r", resp.status, body)
    # sender 1's connection and its rendezvous still work
    conn.request("GET", "/myhc/four", headers={"ServiceBusAuthorization": tok})
    req = next_request(rv)
    respond(rv, req["id"], 202, b"again")
    resp = conn.getresponse()
    check(resp.status == 202 and resp.read() == b"again", "sender 1 after the forgery: %d", resp.status)
    conn.close()
    conn2.close()


@test
def test_bad_response_headers_dropped(h):
    """response header names that are not tokens, and values with control characters, never reach the sender"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "hdr")
    check(lst.status == 101, "listen: %d", lst.status)
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("GET /myhc/x HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % send_token(r)).encode())
    req = next_request(lst)
    respond(lst, req["id"], 200, headers={
        "X-Good": "fine\tvalue",
        "X Space": "1",
        "X-Colon:Injected": "2",
        "": "empty name",
        "X-Inj\r\nX-Injected-Name": "3",
        "X-Value": "a\r\nX-Injected-Value: 4",
        "X-Lf": "a\nX-Injected-Lf: 5",
        "X-Ctl": "a\u0001b",
        "X-Nul": "ok\u0000X-Injected-Nul: 7",
        "Via": "1.1 evil\r\nX-Injected-Via: 6",
    })
    status, head = read_head(c)
    check(status.startswith(b"HTTP/1.1 200"), "status line: %r", status)
    names = [l.split(b":", 1)[0].strip().lower() for l in head]
    check(b"x-good" in names and b"fine\tvalue" in b"\n".join(head), "the good header stays: %r", head)
    for bad in (b"x space", b"x-colon", b"", b"x-inj", b"x-injected-name", b"x-value",
                b"x-injected-value", b"x-lf", b"x-injected-lf", b"x-ctl", b"x-injected-via", b"x-nul",
                b"x-injected-nul"):
        check(bad not in names, "header %r must be dropped: %r", bad, head)
    check(all(b"\x01" not in l and b"\x00" not in l for l in head), "no control characters: %r", head)
    check(names.count(b"via") == 1, "one Via (the relay's own): %r", head)
    r.proc.wait_log(r"event=http\.bad_response_header hc=myhc target=\S+ dropped=9 first=")
    c.close()


@test
def test_non_final_status_is_502(h):
    """a listener answering 1xx (interim) or 6xx+ (not HTTP): the sender gets the relay's 502, never that status line"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "st")
    check(lst.status == 101, "listen: %d", lst.status)
    for bad in (100, 101, 199, 600, 999):
        c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        c.sendall(("GET /myhc/x HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n"
                   % send_token(r)).encode())
        req = next_request(lst)
        respond(lst, req["id"], bad, b"body of a bad status")
        status, head = read_head(c)
        check(status.startswith(b"HTTP/1.1 502 "), "listener status %d reached the sender as %r", bad, status)
        r.proc.wait_log(r"event=http\.bad_response_status hc=myhc target=/myhc/x status=%d" % bad)
        c.close()
    # the channel is still in step: its next (body) message was not taken for a response
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/ok", headers={"ServiceBusAuthorization": send_token(r)})
    req = next_request(lst)
    respond(lst, req["id"], 200, b"fine")
    resp = conn.getresponse()
    check(resp.status == 200 and resp.read() == b"fine", "the listener still serves")
    conn.close()


@test
def test_connection_named_headers(h):
    """headers named in Connection are removed from the request to the listener and from the response to the sender"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "hop")
    check(lst.status == 101, "listen: %d", lst.status)
    c = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    c.sendall(("GET /myhc/x HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n"
               "Connection: keep-alive, X-Hop-One,X-Hop-Two\r\nX-Hop-One: 1\r\nx-hop-two: 2\r\n"
               "X-Keep: 3\r\nProxy-Authorization: Basic c2VjcmV0\r\n\r\n" % send_token(r)).encode())
    req = next_request(lst)
    hdrs = {k.lower(): v for k, v in req["requestHeaders"].items()}
    check("x-hop-one" not in hdrs and "x-hop-two" not in hdrs, "Connection-named headers forwarded: %r", hdrs)
    check("proxy-authorization" not in hdrs and "connection" not in hdrs, "hop-by-hop forwarded: %r", hdrs)
    check(hdrs.get("x-keep") == "3", "other headers stay: %r", hdrs)
    respond(lst, req["id"], 200, headers={"Connection": "X-Resp-Hop", "X-Resp-Hop": "1",
                                          "X-Resp-Keep": "2", "Proxy-Authenticate": "Basic"})
    status, head = read_head(c)
    names = [l.split(b":", 1)[0].strip().lower() for l in head]
    check(status.startswith(b"HTTP/1.1 200"), "status line: %r", status)
    check(b"x-resp-hop" not in names and b"proxy-authenticate" not in names,
          "hop-by-hop response headers must not reach the sender: %r", head)
    check(b"x-resp-keep" in names, "other response headers stay: %r", head)
    c.close()


@test
def test_uri_too_long(h):
    """a request target over 8 KiB gets 414 with the relay's JSON error body (HTTP and WebSocket); 8 KiB exactly passes whole"""
    r = Relay(h)
    r.create()
    r.start()
    lst = raw_listener(r, "uri")
    check(lst.status == 101, "listen: %d", lst.status)
    tok = send_token(r)
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    target = "/myhc/" + "a" * 9000
    conn.request("GET", target, headers={"ServiceBusAuthorization": tok})
    resp = conn.getresponse()
    body = resp.read()
    check(resp.status == 414, "9006-byte target: %d %r", resp.status, body[:200])
    err = json.loads(body)["error"]
    check(err["code"] == "URITooLong" and "8192" in err["message"], "JSON error body: %r", err)
    check(resp.getheader("Via") is None, "the relay's own answer has no Via")
    conn.close()
    # exactly 8192 bytes: forwarded whole
    target = "/myhc/" + "b" * (8192 - 6)
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", target, headers={"ServiceBusAuthorization": tok})
    req = next_request(lst)
    check(req["requestTarget"] == target, "an 8192-byte target arrives whole (%d bytes)", len(req["requestTarget"]))
    respond(lst, req["id"], 200)
    resp = conn.getresponse()
    resp.read()
    check(resp.status == 200, "8192-byte target: %d", resp.status)
    conn.close()
    ws = RawWS(r.port, "/$hc/myhc/" + "c" * 9000 + "?sb-hc-action=connect", {"ServiceBusAuthorization": tok})
    check(ws.status == 414, "WebSocket upgrade with a long target: %d %s", ws.status, ws.reason)
    ws.close()


@test
def test_duplicate_listener_id(h):
    """a second control channel with the id of a live listener is refused with 409; once the first is gone the id is free"""
    r = Relay(h)
    r.create()
    r.start()
    first = raw_listener(r, "same-id")
    check(first.status == 101, "first listener: %d", first.status)
    second = raw_listener(r, "SAME-ID")
    check(second.status == 409, "a second listener with the same id: %d %s", second.status, second.reason)
    r.proc.wait_log(r"event=listen\.refused status=409 hc=myhc id=SAME-ID")
    second.close()
    # the relay checks that the first is alive: it answers the ping and stays
    op, payload = first.recv()
    check(op == 9, "the live listener is pinged: opcode %d", op)
    first.send(10, payload)
    r.proc.wait_log(r"event=listener\.alive hc=myhc id=same-id")
    other = raw_listener(r, "other-id")
    check(other.status == 101, "a listener with another id: %d", other.status)
    # pinning by the id still reaches the first listener only
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/pinned", headers={"ServiceBusAuthorization": send_token(r),
                                                 "Microsoft-Relay-AllowedListeners": "same-id"})
    req = next_request(first)
    respond(first, req["id"], 200, b"first")
    resp = conn.getresponse()
    check(resp.status == 200 and resp.read() == b"first", "pinned to the first listener")
    conn.close()
    first.send(8, b"\x03\xe8")
    r.proc.wait_log(r"event=listener\.closed hc=myhc id=same-id")
    third = raw_listener(r, "same-id")
    check(third.status == 101, "the id is free again: %d", third.status)
    third.close()
    other.close()


@test
def test_duplicate_listener_id_stale(h):
    """a listener whose id is presented again and that does not answer the relay's ping is dropped; the id is free"""
    r = Relay(h, limits="handshake_timeout = 2")
    r.create()
    r.start()
    stale = raw_listener(r, "stale-id")  # never reads: like a peer gone without a FIN
    check(stale.status == 101, "first listener: %d", stale.status)
    second = raw_listener(r, "stale-id")
    check(second.status == 409, "while the first looks alive: %d", second.status)
    second.close()
    r.proc.wait_log(r"event=listener\.stale hc=myhc id=stale-id")
    r.proc.wait_log(r"event=listener\.closed hc=myhc id=stale-id")
    third = raw_listener(r, "stale-id")
    check(third.status == 101, "after the stale one was dropped: %d %s", third.status, third.reason)
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/myhc/x", headers={"ServiceBusAuthorization": send_token(r)})
    req = next_request(third)
    respond(third, req["id"], 200, b"new")
    resp = conn.getresponse()
    check(resp.status == 200 and resp.read() == b"new", "the new listener serves")
    conn.close()
    third.close()
    stale.close()


main()
