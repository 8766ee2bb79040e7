"""Integration: shir-relay under abuse. Twelve threads open HTTP and WebSocket
connections to hyco-https and hyco-ws listeners and drop them at random points
(mid-body, mid-response, pipelined, chunked, garbage). Afterwards the relay must
be alive and back to its listeners only: no stuck sender connections, no
pending rendezvous, no tunnels (a relay built with sanitizers also checks
memory errors on the way)."""
import os
import random
import socket
import threading
import time

from shirtest import check, main, test, wait_until
from relaytest import HYCO, Relay, RawWS, node_env, npm_clients, sas_token

SECONDS = 8


def chaos(port, tok, wtok, stop, errors, seed):
    rnd = random.Random(seed)
    while time.time() < stop:
        try:
            k = rnd.randrange(6)
            if k == 3:
                w = RawWS(port, "/$hc/wshc?sb-hc-action=connect", {"ServiceBusAuthorization": wtok})
                if w.status == 101:
                    for _ in range(rnd.randrange(20)):
                        w.send(rnd.choice([1, 2]), b"m" * rnd.randrange(70000) if rnd.random() < 0.5 else b"hi")
                    if rnd.random() < 0.5:
                        w.send(8, b"\x03\xe8")
                w.close()
                continue
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            hdr = "Host: h\r\nServiceBusAuthorization: %s\r\n" % tok
            if k == 0:
                s.sendall(("POST /myhc/p HTTP/1.1\r\n%sContent-Length: 100000\r\n\r\n" % hdr).encode()
                          + b"x" * rnd.randrange(100000))
            elif k == 1:
                path = rnd.choice(["big", "stream", "empty", "x", "never"])
                s.sendall(("GET /myhc/%s HTTP/1.1\r\n%s\r\n" % (path, hdr)).encode())
                s.recv(rnd.randrange(1, 5000))
            elif k == 2:
                s.sendall(("POST /myhc/c HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n" % hdr).encode())
                for _ in range(rnd.randrange(5)):
                    s.sendall(b"1000\r\n" + b"y" * 4096 + b"\r\n")
                if rnd.random() < 0.5:
                    s.sendall(b"0\r\n\r\n")
                    s.recv(100)
            elif k == 4:
                s.sendall(os.urandom(rnd.randrange(1, 3000)))
            else:
                s.sendall((("GET /myhc/k HTTP/1.1\r\n%s\r\n" % hdr) * 3).encode())
                s.recv(100)
            s.close()
        except OSError:
            pass
        except Exception as e:	# a bug in the test itself
            errors.append(repr(e))


@test
def test_abuse(h):
    """random drops at every stage leave nothing behind"""
    mods = npm_clients(h)
    r = Relay(h, limits="response_timeout = 2\nrendezvous_timeout = 2\ninline_max = 4096\ntunnel_buffer = 16384")
    r.create("myhc")
    r.create("wshc")
    r.start()
    lst = h.start("https-listener", ["node", os.path.join(HYCO, "https_listener.js")],
                  env=node_env(mods, r.listen_env("myhc")))
    lst.wait_log(r"LISTENER listening")
    wl = h.start("ws-listener", ["node", os.path.join(HYCO, "ws_listener.js")],
                 env=node_env(mods, r.listen_env("wshc")))
    wait_until(lambda: "shir_relay_listeners 2" in r.admin_get("/metrics"), 20, "two listeners")
    tok = sas_token("http://127.0.0.1:%d/myhc" % r.port, "service-key", r.keys["myhc"]["service-key"]["key"])
    wtok = sas_token("http://127.0.0.1:%d/wshc" % r.port, "service-key", r.keys["wshc"]["service-key"]["key"])
    errors = []
    stop = time.time() + SECONDS
    ts = [threading.Thread(target=chaos, args=(r.port, tok, wtok, stop, errors, i)) for i in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check(not errors, "test errors: %r", errors[:3])

    def settled():
        m = r.admin_get("/metrics")
        return ("shir_relay_connections 2\n" in m and "shir_relay_pending_rendezvous 0\n" in m
                and "shir_relay_tunnels 0\n" in m)
    try:
        wait_until(settled, 20, "the relay to be back to its two listeners")
    except Exception:
        raise AssertionError("leftovers:\n%s\n%s" % (r.admin_get("/metrics"), r.admin_get("/status")[:3000]))
    met = r.admin_get("/metrics")
    check('shir_relay_http_responses_total{class="2xx"} 0\n' not in met, "some requests succeeded:\n%s", met)
    check("shir_relay_listeners 2" in met, "both listeners survived:\n%s", met)
    r.proc.signal(15)
    check(r.proc.wait_exit(10) == 0, "clean exit after the abuse:\n%s", r.proc.tail())


main()
