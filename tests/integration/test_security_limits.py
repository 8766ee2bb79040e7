"""Integration: the Send key's trust boundary on the node (docs/security-limits.md):
which routes each channel may call, symbolic links in browse and reads, and the
per-request memory budget with the deadline. Real shird, shir-relay, SQLite,
PostgreSQL and MariaDB; only hostile peers (an HTTP server that never ends its
body) are simulated."""
import json
import os
import re
import subprocess
import threading
import time

import shirtest
from shirtest import check, main, test
from authnode import Node, expect_error

_before = len(shirtest._tests)
import test_listener as tl  # noqa: E402  (its shir-relay and shird helpers)
del shirtest._tests[_before:]  # run only this file's tests here

# The routes a service (Send) key holder may call through the relay. Anything
# else must answer 403 there: a new route is closed to the relay until it is
# added here on purpose (and in docs/security-limits.md).
RELAY_ROUTES = {
    ("POST", "/v1/testConnection"), ("POST", "/v1/browse"), ("POST", "/v1/schema"),
    ("POST", "/v1/preview"), ("GET", "/v1/node/ip"), ("POST", "/v1/node/logs"),
    ("GET", "/v1/test/blob"),  # only with relay.test_routes (testing)
}


def local_call(h, sock, method, path, body):
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60",
            "--unix-socket", sock, "-X", method, "http://localhost" + path]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", body]
    r = subprocess.run(argv, capture_output=True, timeout=90)
    out, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), out


def served(code, out):
    """The route's handler answered (not the router's 403, 404 or 405)."""
    return code not in (0, 403, 405) and b"no such API path" not in out


@test
def test_every_route_from_every_channel(h):
    """each route answers the channels it declares; admin routes are 403 over the relay"""
    h.require("curl", "curl")
    relay = tl.Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = tl.node_with_relay(h, relay, extra="test_routes = true")
    routes = re.findall(r"event=api\.route method=(\S+) path=(\S+) channels=(\S+)", p.log())
    check(len(routes) >= 14, "shird logged too few routes: %r", routes)
    seen = set()
    for method, pattern, chans in routes:
        chans = chans.split(",")
        path = pattern.replace("*", "probe-name")
        body = "{}" if method in ("POST", "PUT") else None
        key = (method, pattern)
        seen.add(key)
        check(("relay" in chans) == (key in RELAY_ROUTES),
              "%s %s is open to %s; the relay may call exactly %r", method, pattern, chans,
              sorted(RELAY_ROUTES))
        check("control-socket" in chans, "%s %s is closed to the control socket", method, pattern)
        # through the relay with the Send key
        p.mark()
        extra = ["-X", method] + (["-H", "Content-Type: application/json", "--data-binary",
                                    body] if body is not None else [])
        code, out, err = tl.curl(h, relay, path, extra=extra)
        if key in RELAY_ROUTES:
            check(served(code, out), "%s %s over the relay: %s %s %s", method, path, code,
                  out[:300], err)
        else:
            check(code == 403, "%s %s over the relay must be 403, got %s %s", method, path, code,
                  out[:300])
            js = json.loads(out)
            check(js["error"]["code"] == "Forbidden" and "control socket" in
                  js["error"]["message"], "%s %s: %r", method, path, js)
            # nothing of the node's state leaks in the refusal
            check(str(p.pid).encode() not in out and conf.encode() not in out,
                  "the 403 leaks the pid or config path: %r", out)
            p.wait_log(r"event=api\.forbidden method=%s path=%s channel=relay" % (
                method, re.escape(path)))
        # through the control socket (the node's admin)
        code, out = local_call(h, sock, method, path, body)
        check(served(code, out), "%s %s on the control socket: %s %s", method, path, code,
              out[:300])
    check(("POST", "/v1/node/reload") in seen and ("GET", "/v1/node") in seen and
          ("PUT", "/v1/credentials/*") in seen, "the admin routes were not listed: %r", seen)
    check(RELAY_ROUTES <= seen, "routes missing from the log: %r", RELAY_ROUTES - seen)
    # the refused admin calls did nothing: exactly the one reload made on the control
    # socket (and the registration POST, which reloads too) happened
    reloads = len(re.findall(r"event=reload status=done", p.log()))
    check(reloads == 2, "reloads: %d (want the two made on the control socket)\n%s", reloads,
          p.tail(40))
    tl.stop_clean(p)


# ---- item 5: symbolic links in browse and reads ------------------------------

def fs(root):
    return {"type": "FileSystem", "properties": {"root": root}}


def symlink_tree(h):
    allowed = h.path("allowed")
    root = os.path.join(allowed, "root")
    outside = h.path("outside")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(outside, "odir"))
    with open(os.path.join(root, "ok.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    with open(os.path.join(root, "sub", "data.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    with open(os.path.join(allowed, "sibling.csv"), "w") as f:
        f.write("a\n1\n")
    secret = os.path.join(outside, "secret.csv")
    with open(secret, "w") as f:
        f.write("secret\nTOPSECRET\n" + "x" * 12000 + "\n")
    os.utime(secret, (1000000000, 1000000000))  # 2001: recognisable in a listing
    os.utime(os.path.join(outside, "odir"), (1000000000, 1000000000))
    links = {"link_shadow": "/etc/shadow", "link_secret": secret,
             "link_odir": os.path.join(outside, "odir"), "link_sibling": "../sibling.csv",
             "link_dangling": os.path.join(outside, "nothing"), "link_in": "ok.csv",
             "link_sub": "sub"}
    for name, target in links.items():
        os.symlink(target, os.path.join(root, name))
    return allowed, root, outside


@test
def test_browse_hides_what_lies_behind_links(h):
    """browse: a link leaving the root is left out (no type, size or time of its target)"""
    allowed, root, outside = symlink_tree(h)
    n = Node(h, allowed=allowed)
    r = n.author("browse", {"linkedService": fs(root)})
    items = {i["name"]: i for i in r["items"]}
    check(set(items) == {"ok.csv", "sub", "link_in", "link_sub"},
          "links that leave the root must not be listed: %r", r["items"])
    size = os.path.getsize(os.path.join(root, "ok.csv"))
    check(items["link_in"]["type"] == "file" and items["link_in"]["size"] == size,
          "a link inside the root shows its target: %r", items["link_in"])
    check(items["link_sub"]["type"] == "folder", "%r", items["link_sub"])
    text = json.dumps(r)
    check("2001-" not in text and "12017" not in text, "an outside target's metadata: %s", text)
    # the targets themselves: refused (403), whatever they are, and the same for a
    # read (preview, schema)
    for name in ("link_shadow", "link_secret", "link_odir", "link_sibling"):
        expect_error(n.curl("browse", {"linkedService": fs(root), "path": name}), 403,
                     "PathNotAllowed")
        expect_error(n.curl("preview", {"linkedService": fs(root), "dataset": {
            "type": "DelimitedText", "path": name}}), 403, "PathNotAllowed")
        expect_error(n.curl("schema", {"linkedService": fs(root), "dataset": {
            "type": "Json", "path": name}}), 403, "PathNotAllowed")
    r = n.author("preview", {"linkedService": fs(root), "dataset": {
        "type": "DelimitedText", "path": "link_sub/data.csv"}})
    check(r["rows"] == [[1, 2]], "%r", r)
    n.stop_clean()


@test
def test_link_swapped_during_reads_is_never_followed(h):
    """a folder swapped for a link to outside while reads run: never read, never listed"""
    allowed, root, outside = symlink_tree(h)
    with open(os.path.join(outside, "data.csv"), "w") as f:
        f.write("a,b\nTOPSECRET,1\n")
    n = Node(h, allowed=allowed, jobs=4)
    sub = os.path.join(root, "sub")
    real = os.path.join(root, "sub.real")
    os.rename(sub, real)
    stop = threading.Event()

    def flip():
        # sub is, in turn, the real folder (a link to sub.real inside the root)
        # and a link to the outside folder
        tmp = os.path.join(root, ".sub.tmp")
        while not stop.is_set():
            for target in (real, outside):
                try:
                    os.symlink(target, tmp)
                    os.rename(tmp, sub)
                except OSError:
                    pass
    t = threading.Thread(target=flip)
    t.start()
    leaked = []
    kinds = {}
    lock = threading.Lock()

    def reader(k):
        deadline = time.monotonic() + 3
        i = k
        while time.monotonic() < deadline:
            i += 1
            if i % 2:
                st, _, js = n.curl("preview", {"linkedService": fs(root), "dataset": {
                    "type": "DelimitedText", "path": "sub/data.csv"}})
            else:
                st, _, js = n.curl("browse", {"linkedService": fs(root), "path": "sub"})
            with lock:
                kinds[st] = kinds.get(st, 0) + 1
                if "TOPSECRET" in json.dumps(js) or "secret.csv" in json.dumps(js):
                    leaked.append(js)
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    try:
        for r in readers:
            r.start()
        for r in readers:
            r.join()
    finally:
        stop.set()
        t.join()
    check(not leaked, "the outside folder was read through the swapped link: %r", leaked[:3])
    check(kinds.get(200, 0) > 0 and kinds.get(403, 0) > 0, "both outcomes expected: %r", kinds)
    n.stop_clean()


if __name__ == "__main__":
    main()
