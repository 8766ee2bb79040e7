"""Integration: copy jobs end to end. A real shir-relay on loopback and a
real shird registered with the runtime's node key and node.copy_jobs > 0:
a sender submits a job with the service key, the node leases it over its
outbound HTTP connection, copies a delimited-text file from an allowed
folder into a writable folder as CSV, JSON Lines or Parquet (read back by
npm hyparquet), and completes it; the sender reads the result. Also: the
policy (allowed folders for the source, writable folders for the sink), and
shird killed with -9 in the middle of a copy: the job is leased again after
its lease expires and the committed file has every row exactly once."""
import csv
import hashlib
import json
import os
import signal

from authnode import Node
from relaytest import Relay, decode_key
from shirtest import check, main, make_ca, make_server_cert, test, wait_until
from squid import Squid
import shirtest
from test_parquet import read_back
from test_relay_jobs import Client

shirtest._tests.clear()  # the two modules above are imported for their helpers, not their tests


def setup(h, rows=1000, copy_jobs=2):
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "sales-ir").stdout.split() if w.startswith("IR@v1@")]
    r.keys["sales-ir"] = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    data, out = h.path("data"), h.path("out")
    os.makedirs(data)
    os.makedirs(out)
    with open(os.path.join(data, "orders.csv"), "w") as f:
        f.write("id;customer;note\n")
        for i in range(rows):
            f.write('%d;cust-%d;"say ""hi""; %d"\n' % (i, i % 97, i))
    extra = "writable_folders = %s\n[node]\ncopy_jobs = %d\n" % (out, copy_jobs)
    n = Node(h, allowed=data, extra=extra)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-", "auth-node"],
          input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")
    n = restart(h, n, extra, data)
    return r, n, Client(r, hc="sales-ir"), data, out, extra


def restart(h, n, extra, data, kill=False):
    """The runner starts with shird when the node is registered."""
    if kill:
        n.p.signal(signal.SIGKILL)
        n.p.wait_exit()
    else:
        n.stop_clean()
    n2 = Node(h, allowed=data, extra=extra)
    n2.p.wait_log(r"event=copy\.started jobs=")
    return n2


def job(data, out, fmt="DelimitedText", name="orders.csv", folder=None, root=None, path="orders.csv"):
    return {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": root or data}},
                       "dataset": {"type": "DelimitedText", "path": path, "columnDelimiter": ";"}},
            "sink": {"type": "FileSystem", "folder": folder or out, "path": name},
            "format": {"type": fmt}}


def wait_final(snd, jid, timeout=60):
    def final():
        st, g = snd.call("GET", "/" + jid)
        return g if g["state"] in ("Succeeded", "Failed", "DeadLettered", "Cancelled") else None
    return wait_until(final, timeout, "job %s to finish" % jid)


@test
def test_copy_csv_jsonl_parquet(h):
    """a job submitted with the Send key is leased by the node and copied into the writable folder, in each format"""
    r, n, snd, data, out, _ = setup(h)
    want = [{"id": str(i), "customer": "cust-%d" % (i % 97), "note": 'say "hi"; %d' % i} for i in range(1000)]
    for fmt, name in (("DelimitedText", "orders.csv"), ("JsonLines", "orders.jsonl"), ("Parquet", "orders.parquet")):
        st, j = snd.call("POST", "", job(data, out, fmt, name))
        check(st == 201, "submit: %d %r", st, j)
        g = wait_final(snd, j["id"])
        check(g["state"] == "Succeeded", "%s: %r", fmt, g)
        res = g["result"]
        path = os.path.join(out, name)
        size = os.path.getsize(path)
        check(res["rowsRead"] == 1000 and res["rowsWritten"] == 1000 and res["bytesWritten"] == size and
              res["files"][0]["path"] == name and len(res["files"][0]["sha256"]) == 64, "result: %r", res)
        with open(path, "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == res["files"][0]["sha256"], "the checksum")
        if fmt == "DelimitedText":
            with open(path, newline="") as f:
                got = list(csv.DictReader(f))
        elif fmt == "JsonLines":
            with open(path) as f:
                got = [json.loads(line) for line in f]
        else:
            pq = read_back(h, path)
            check([s["type"] for s in pq["schema"]] == ["BYTE_ARRAY"] * 3, "schema: %r", pq["schema"])
            got = pq["rows"]
        check(got == want, "%s: %d rows, first differing: %r", fmt, len(got),
              next(((a, b) for a, b in zip(got, want) if a != b), None))
        check(g["node"] == "auth-node" and g["dequeueCount"] == 1, "%r", g)
    check(sorted(os.listdir(out)) == ["orders.csv", "orders.jsonl", "orders.parquet"], "no leftovers: %r",
          os.listdir(out))
    n.stop_clean()


@test
def test_copy_through_squid(h):
    """the node leases and reports through squid with Basic auth to an https relay (TLS verified with the relay's CA)"""
    sq = Squid(h, auth="basic", user="svc", password="right-pw", hosts={"relay.test": "127.0.0.1"})
    ca_key, ca = make_ca(h, "relay", "Test Relay CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:relay.test")
    r = Relay(h, tls=(crt, key))
    out_ir = r.cli("ir", "create", "sales-ir", "--endpoint", "wss://relay.test:%d" % r.port).stdout
    printed = [w for w in out_ir.split() if w.startswith("IR@v1@")]
    r.keys["sales-ir"] = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    data, out = h.path("data"), h.path("out")
    os.makedirs(data)
    os.makedirs(out)
    with open(os.path.join(data, "orders.csv"), "w") as f:
        f.write("id;customer;note\n" + "".join("%d;c%d;n\n" % (i, i) for i in range(500)))
    pw = h.write("proxy.pw", "right-pw\n", mode=0o600)
    extra = ("writable_folders = %s\n[node]\ncopy_jobs = 1\n[relay]\nca_file = %s\n"
             "[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\nauth = basic\nuser = svc\n"
             "password_file = %s\n" % (out, ca, sq.port, pw))
    n = Node(h, allowed=data, extra=extra)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-", "auth-node"],
          input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")
    n = restart(h, n, extra, data)
    import ssl
    import http.client

    class TLSClient(Client):
        def call(self, method, path, body=None, timeout=30):
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False  # the test reaches 127.0.0.1; the node checks relay.test
            c = http.client.HTTPSConnection("127.0.0.1", self.r.port, timeout=timeout, context=ctx)
            c.request(method, "/%s/v1/jobs%s" % (self.hc, path), body=json.dumps(body) if body else None,
                      headers={"ServiceBusAuthorization": self.tok, "Content-Type": "application/json"})
            resp = c.getresponse()
            txt = resp.read().decode()
            c.close()
            return resp.status, (json.loads(txt) if txt else None)
    snd = TLSClient(r, hc="sales-ir")
    st, j = snd.call("POST", "", job(data, out, "Parquet", "orders.parquet"))
    check(st == 201, "submit: %d %r", st, j)
    g = wait_final(snd, j["id"])
    check(g["state"] == "Succeeded" and g["result"]["rowsWritten"] == 500, "through squid: %r", g)
    check(read_back(h, os.path.join(out, "orders.parquet"))["numRows"] == 500, "the Parquet file")
    # only squid resolves relay.test, so the lease and the complete can only have gone through it;
    # squid logs each tunnel as it ends: two nodes' control channels, and the runner's own
    n.stop_clean()
    wait_until(lambda: sq.log().count("CONNECT relay.test:%d svc" % r.port) >= 3, 20,
               "squid to log the control channels' and the runner's tunnels:\n" + sq.log())


@test
def test_copy_policy(h):
    """the source obeys the allowed folders, the sink the writable folders; refused jobs fail with the reason and write nothing"""
    r, n, snd, data, out, _ = setup(h, rows=10)
    elsewhere = h.path("elsewhere")
    os.makedirs(elsewhere)
    cases = [
        (job(data, out, folder=elsewhere), "PathNotAllowed"),     # sink outside the writable folders
        (job(data, out, folder=data), "PathNotAllowed"),          # readable is not writable
        (job(data, out, root=elsewhere), "PathNotAllowed"),       # source outside the allowed folders
        (job(data, out, path="../out/x.csv"), "PathNotAllowed"),  # climbing out of the root
        (job(data, out, name="../escape.csv"), "PathNotAllowed"),  # a sink path that is not a name
        (job(data, out, path="missing.csv"), "NotFound"),
    ]
    for spec, code in cases:
        st, j = snd.call("POST", "", spec)
        g = wait_final(snd, j["id"])
        check(g["state"] == "Failed" and g["error"]["code"] == code, "want %s: %r", code, g)
    check(os.listdir(out) == [] and os.listdir(elsewhere) == [], "nothing written: %r %r",
          os.listdir(out), os.listdir(elsewhere))
    # the node keeps serving authoring meanwhile
    res = n.author("preview", {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                               "dataset": {"type": "DelimitedText", "path": "orders.csv", "columnDelimiter": ";"},
                               "limit": 3})
    check(len(res["rows"]) == 3, "preview: %r", res)
    text = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs"], check=0).stdout
    check(text.startswith("Copy jobs: 0 running of at most 2"), "shirctl jobs: %s", text)
    n.stop_clean()
    # a node without copy_jobs says why it runs none
    n = Node(h, allowed=data)
    text = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs"], check=0).stdout
    check("Copy jobs are off on this node: node.copy_jobs = 0" in text, "shirctl jobs: %s", text)
    n.stop_clean()


@test
def test_node_killed_mid_copy(h):
    """shird killed with -9 while it copies: the lease expires, the restarted node copies again; every row exactly once"""
    rows = 400000
    r, n, snd, data, out, extra = setup(h, rows=rows, copy_jobs=1)
    st, j = snd.call("POST", "", job(data, out, "DelimitedText", "big.csv"))
    # kill it once its temporary file has bytes: mid-copy
    def partial():
        return [f for f in os.listdir(out) if f.endswith(".part") and os.path.getsize(os.path.join(out, f)) > 0]
    wait_until(partial, 60, "the copy to start writing")
    # shirctl jobs shows it running, with its progress
    def shown():
        r2 = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs", "--json"], check=0)
        js = json.loads(r2.stdout)["jobs"]
        return js if js and js[0]["rowsRead"] > 0 else None
    js = wait_until(shown, 30, "shirctl jobs to show the copy")
    check(js[0]["id"] == j["id"] and js[0]["dequeueCount"] == 1 and js[0]["sink"] == "big.csv" and
          js[0]["format"] == "DelimitedText", "shirctl jobs: %r", js)
    text = h.run([h.bin("shirctl"), "--socket", n.sock, "jobs"], check=0).stdout
    check(j["id"] in text and "orders.csv -> big.csv (DelimitedText)" in text, "shirctl jobs: %s", text)
    n = restart(h, n, extra, data, kill=True)
    check(not os.path.exists(os.path.join(out, "big.csv")), "no committed file from the killed attempt")
    g = wait_final(snd, j["id"], timeout=120)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 2, "after the restart: %r", g)
    with open(os.path.join(out, "big.csv"), newline="") as f:
        ids = [int(row["id"]) for row in csv.DictReader(f, delimiter=",")]
    check(len(ids) == rows and ids == list(range(rows)), "%d rows, %d distinct", len(ids), len(set(ids)))
    check(g["result"]["rowsWritten"] == rows, "result: %r", g["result"])
    check(os.listdir(out) == ["big.csv"], "the dead attempt's temporary file was removed: %r", os.listdir(out))
    n.p.wait_log(r"event=job\.stale_part_removed", after_mark=False)
    n.stop_clean()


if __name__ == "__main__":
    main()
