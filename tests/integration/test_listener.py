"""Integration: shird's relay listener against shir-relay (and without one)."""
import json
import os
import signal

from shirtest import check, free_port, main, test, TestFailure

BASE = """\
[node]
name = {name}
control_socket = {sock}
state_dir = {state}
shutdown_timeout = 5
[log]
level = debug
"""

RELAY = """\
[relay]
endpoint = {endpoint}
path = {path}
key_name = {key_name}
key_file = {key_file}
{extra}
"""


def write_key(h, key, name="node.key", mode=0o600):
    return h.write(name, key + "\n", mode=mode)


def shird_conf(h, name="node-a", endpoint=None, path="myhc", key_name="node-key1", key_file=None,
               extra="", tail="", fname="shird.conf"):
    sock = h.path("%s.sock" % name)
    text = BASE.format(name=name, sock=sock, state=h.path("state-" + name))
    if endpoint:
        text += RELAY.format(endpoint=endpoint, path=path, key_name=key_name,
                             key_file=key_file, extra=extra)
    text += tail
    return h.write(fname, text), sock


def start_shird(h, conf, name="shird"):
    p = h.start(name, [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening socket=")
    return p


def status(h, sock):
    r = h.run([h.bin("shirctl"), "--socket", sock, "status", "--json"], check=0)
    return json.loads(r.stdout)


def wait_status(h, sock, pred, what, timeout=20):
    from shirtest import wait_until
    last = {}

    def ok():
        last["st"] = status(h, sock)
        return pred(last["st"])
    try:
        wait_until(ok, timeout, what)
    except TestFailure as e:
        raise TestFailure("%s; last status: %s" % (e, json.dumps(last.get("st"), indent=1)))
    return last["st"]


# --- without a relay --------------------------------------------------------

@test
def test_key_file_must_be_private(h):
    """shird -t refuses a key file others can read, and says how to fix it"""
    key = write_key(h, "c2VjcmV0", mode=0o644)
    conf, _ = shird_conf(h, endpoint="ws://127.0.0.1:9", key_file=key)
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0, "a 0644 key file must be refused")
    check("chmod 600" in r.stderr and key in r.stderr, r.stderr)
    check("c2VjcmV0" not in r.stderr, "the key must not be printed")


@test
def test_plain_ws_only_for_loopback(h):
    """ws:// to a non-loopback relay is refused; wss:// is required"""
    key = write_key(h, "c2VjcmV0")
    conf, _ = shird_conf(h, endpoint="ws://relay.example.com:80", key_file=key)
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0 and "use wss://" in r.stderr, r.stderr)
    conf, _ = shird_conf(h, endpoint="ws://127.0.0.1:9", key_file=key, fname="ok.conf")
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)


@test
def test_relay_down_is_offline_with_reason(h):
    """with no relay listening: Offline, the reason in words, a retry planned"""
    key = write_key(h, "c2VjcmV0")
    port = free_port()
    conf, sock = shird_conf(h, endpoint="ws://127.0.0.1:%d" % port, key_file=key)
    p = start_shird(h, conf)
    p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=.*refused")
    st = wait_status(h, sock, lambda s: s["status"] == "Offline", "Offline")
    ch = st["channels"][0]
    check(ch["name"] == "relay" and ch["state"] in ("Disconnected", "Connecting"), "%r", ch)
    check("refused the connection" in st["statusDetail"], st["statusDetail"])
    out = h.run([h.bin("shirctl"), "--socket", sock, "status"], check=0).stdout
    check("Status:   Offline" in out and "refused the connection" in out, out)
    # the ladder: the second retry waits about a second
    m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=(\d+)")
    check(900 <= int(m.group(1)) <= 1300, "second retry after %s ms" % m.group(1))
    p.signal(signal.SIGTERM)
    check(p.wait_exit(10) == 0, "shird must exit 0:\n%s" % p.tail())


if __name__ == "__main__":
    main()
