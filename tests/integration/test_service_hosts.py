"""Integration: a rendezvous on another host than the relay endpoint (Azure
hands out gateway hosts) is recorded by shird's listener and listed by
`shirctl service-urls`, so firewall allowlists include it."""
import base64
import json
import os
import subprocess

from relaytest import Relay, sas_token
from shirtest import wait_until, check, main, test

NODE_CONF = """\
[node]
name = node-sh
control_socket = {sock}
state_dir = {state}
"""


@test
def test_rendezvous_host_listed(h):
    """an 80 KB request (address-only, rendezvous on localhost) lists localhost in service-urls"""
    relay = Relay(h)
    with open(relay.conf) as f:
        text = f.read()
    # the relay hands out rendezvous addresses on "localhost"; the node's
    # endpoint is 127.0.0.1: another host name for the node's firewall
    with open(relay.conf, "w") as f:
        f.write(text.replace("[relay]\n", "[relay]\npublic_url = ws://localhost:%d\n" % relay.port, 1))
    keys = relay.create("shhc")
    relay.start()
    state = h.path("state")
    os.makedirs(state, mode=0o700)
    sock = h.path("shird.sock")
    conf = h.write("shird.conf", NODE_CONF.format(sock=sock, state=state))
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening")
    nk = keys["node-key1"]
    raw = base64.urlsafe_b64encode(json.dumps({
        "ir": "shhc", "endpoint": "ws://127.0.0.1:%d" % relay.port, "hc": "shhc",
        "keyName": nk["keyName"], "key": nk["key"]}).encode()).decode().rstrip("=")
    ctl = [h.bin("shirctl"), "--socket", sock, "--conf", conf]
    h.run(ctl + ["register-node", "-", "node-sh"], input="IR@v1@" + raw + "\n", check=0)
    p.wait_log(r"event=channel.connected")
    sk = keys["service-key"]
    tok = sas_token("http://127.0.0.1:%d/shhc" % relay.port, sk["keyName"], sk["key"])
    body = h.write("big.json", json.dumps({"pad": "x" * 80000}))
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "-H", "ServiceBusAuthorization: " + tok, "-H", "Content-Type: application/json",
                        "--data-binary", "@" + body, "http://127.0.0.1:%d/shhc/v1/node" % relay.port],
                       capture_output=True, text=True, timeout=60)
    # POST /v1/node is not allowed: the answer comes from the node, over the rendezvous
    check(r.stdout == "405", "curl: %s %s", r.stdout, r.stderr)
    # the note is written on the listener's file thread, off the event loop
    def listed():
        out = h.run(ctl + ["service-urls", "--format", "json"], check=0).stdout
        rows = {(s["host"], s["port"]): s for s in json.loads(out)["services"]}
        return (out, rows) if ("localhost", relay.port) in rows else None
    out, rows = wait_until(listed, 10, "service-urls to list the rendezvous host localhost")
    check(("127.0.0.1", relay.port) in rows, "service-urls lacks the endpoint: %s", out)


if __name__ == "__main__":
    main()
