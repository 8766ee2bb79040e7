"""Integration: a node announces its name, version and installation to shir-relay
(Shir-Node, Shir-Version, Shir-Node-Instance headers on the listen upgrade;
relay/announce.h). The relay's /status names each listener's node and version,
and a second live node with the same name from another installation is refused
on that hybrid connection with a reason the node logs and shows in status."""
import json
import urllib.request

import shirtest
from shirtest import check, free_port, main, test
from test_listener import Relay, node_with_relay, stop_clean, wait_status

shirtest._tests[:] = []	# test_listener's helpers only, not its tests


def relay_with_admin(h):
    relay = Relay(h)
    relay.admin = free_port()
    text = open(relay.conf).read().replace("[relay]\n", "[relay]\nadmin = 127.0.0.1:%d\n"
                                           % relay.admin, 1)
    with open(relay.conf, "w") as f:
        f.write(text)
    relay.create()
    relay.start()
    return relay


def relay_status(relay):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % relay.admin, timeout=10) as r:
        st = json.loads(r.read())
    return [l for e in st["entities"] if e["name"] == "myhc" for l in e["listeners"]]


@test
def test_status_names_node_and_version(h):
    """the relay's /status names each listener's node and version"""
    relay = relay_with_admin(h)
    pa, _, _ = node_with_relay(h, relay, name="node-a", keyname="node-key1")
    pb, _, _ = node_with_relay(h, relay, name="node-b", keyname="node-key2")
    ls = relay_status(relay)
    check(sorted((l["node"], l["nodeVersion"]) for l in ls) ==
          [("node-a", "0.1.0"), ("node-b", "0.1.0")], "listeners: %r", ls)
    relay.proc.wait_log(r"event=listener.connected .* node=node-b version=0\.1\.0",
                        after_mark=False)
    stop_clean(pa)
    stop_clean(pb)


@test
def test_second_node_with_same_name_refused(h):
    """a second live node named like another (another installation) is refused: 409, logged, in status"""
    relay = relay_with_admin(h)
    pa, _, _ = node_with_relay(h, relay, name="node-a", keyname="node-key1")
    # another machine: its own state directory (so its own installation id), the same name
    k = relay.keys["myhc"]["node-key2"]
    key = h.write("twin.key", k["key"] + "\n", mode=0o600)
    conf = h.write("twin.conf", "[node]\nname = node-a\ncontrol_socket = %s\nstate_dir = %s\n"
                   "shutdown_timeout = 5\n[relay]\nendpoint = %s\npath = myhc\n"
                   "key_name = node-key2\nkey_file = %s\n" % (
                       h.path("twin.sock"), h.path("state-twin"), relay.url(), key))
    pt = h.start("shird-twin", [h.bin("shird"), "-f", conf])
    pt.wait_log(r"event=channel.disconnected .*409 Node name in use: node-a")
    st = wait_status(h, h.path("twin.sock"), lambda s: s["channels"] and
                     "another machine" in s["channels"][0]["lastError"], "the twin's cause")
    err = st["channels"][0]["lastError"]
    check("[node] name" in err and st["status"] == "Offline", "twin status: %r", st)
    relay.proc.wait_log(r"event=listen.refused status=409 hc=myhc node=node-a", after_mark=False)
    ls = relay_status(relay)
    check(len(ls) == 1 and ls[0]["node"] == "node-a", "listeners: %r", ls)
    # the twin keeps its listener id: a name clash is not an id clash
    check("event=channel.new_id" not in pt.log(), "the twin changed its id:\n%s", pt.tail(20))
    # the first one leaves: the twin gets in at its next try
    stop_clean(pa)
    wait_status(h, h.path("twin.sock"), lambda s: s["status"] == "Online", "the twin Online",
                timeout=40)
    stop_clean(pt)


@test
def test_restart_keeps_the_name(h):
    """the same installation restarted (same state_dir) is not refused"""
    relay = relay_with_admin(h)
    pa, conf, sock = node_with_relay(h, relay, name="node-a", keyname="node-key1")
    inst = open(h.path("state-node-a", "node-instance")).read().strip()
    check(len(inst) == 36, "node-instance: %r", inst)
    pa.signal(9)
    pa.wait_exit(10)
    p2 = h.start("shird-again", [h.bin("shird"), "-f", conf])
    p2.wait_log(r"event=listening socket=")
    wait_status(h, sock, lambda s: s["status"] == "Online", "the restarted node Online",
                timeout=40)
    check("Node name in use" not in p2.log(), "refused:\n%s", p2.tail(20))
    stop_clean(p2)


if __name__ == "__main__":
    main()
