"""Integration: shir-relay over TLS with a test CA made here; Microsoft's npm
clients verify the certificate through NODE_EXTRA_CA_CERTS (spec §9.7), and
fail without it."""
import os

from shirtest import check, main, make_test_pki, test
from relaytest import HYCO, Relay, http_result, node_env, npm_clients, run_node


@test
def test_tls_hyco(h):
    """wss:// listener (hyco-https and hyco-ws) and https/wss senders through a TLS relay with a test CA"""
    mods = npm_clients(h)
    ca, cert, key = make_test_pki(h)
    r = Relay(h, tls=(cert, key))
    r.create()
    r.start()
    relay_url = "wss://localhost:%d" % r.port
    # without the CA the clients refuse the relay
    bad = h.start("untrusted", ["node", os.path.join(HYCO, "https_listener.js")],
                  env=node_env(mods, dict(r.listen_env(), RELAY=relay_url)))
    bad.wait_log(r"LISTENER error .*(unable to verify|self.signed|certificate)")
    bad.stop()

    env = dict(r.listen_env(), RELAY=relay_url, NODE_EXTRA_CA_CERTS=ca)
    lst = h.start("listener", ["node", os.path.join(HYCO, "https_listener.js")], env=node_env(mods, env))
    lst.wait_log(r"LISTENER listening")
    senv = dict(r.send_env(), TLS="1", HOST="localhost", NODE_EXTRA_CA_CERTS=ca)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/tls?a=1"]))
    check(res["status"] == 201 and res["body"] == "echo GET /myhc/tls?a=1 0", "https sender: %r", res)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/big"]))
    check(res["status"] == 200 and res["length"] == 100000, "100 KB over the wss rendezvous: %r",
          {k: res.get(k) for k in ("status", "length", "error")})
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["POST", "/myhc/upload", "80000"]))
    check(res["status"] == 201 and res["body"] == "echo POST /myhc/upload 80000", "80 KB POST over TLS: %r", res)
    lst.stop()

    wl = h.start("wslistener", ["node", os.path.join(HYCO, "ws_listener.js")], env=node_env(mods, env))
    wl.wait_log(r"LISTENER listening")
    r.proc.wait_log(r"event=listener\.connected")
    out = run_node(h, mods, "ws_sender.js", senv)
    check("SENDER got echo:hello text" in out and "SENDER close 1000 bye" in out, "wss tunnel:\n%s", out)


main()
