"""Integration: copy jobs end to end under failures, with real processes
only: shir-relay, shird nodes, PostgreSQL, Azurite (read back with
Microsoft's @azure/storage-blob) and squid. Three properties:

- shir-relay killed with -9 and started again (same state, same port) while
  a node copies a slow PostgreSQL query into Azurite: the node's heartbeat
  and lease paths come back, the job ends Succeeded under its first lease
  (dequeueCount 1) and the blob has every row exactly once;
- 100 jobs submitted at once to two shird nodes of one runtime, each with
  node.copy_jobs 3: every job Succeeded, leased once, started by exactly one
  node (the nodes' logs), both nodes took part, every output file once with
  its rows;
- squid killed with -9 in the middle of an upload through it and started
  again on its port: the node logs the drop naming the proxy, retries with
  back-off, and the job commits every row exactly once."""
import base64
import csv
import json
import os
import re
import signal
import time

import authnode
from authnode import Node
from azurite import Azurite
from shirtest import check, main, test, wait_until
import shirtest
from stores import READER, shared_pg
from test_copy_blob import blob_job, check_blob, through_squid
from test_copy_node import job, restart, setup, wait_final

shirtest._tests.clear()  # the modules above are imported for their helpers, not their tests


def relay_progress(snd, jid):
    st, g = snd.call("GET", "/" + jid)
    check(st == 200, "GET the job: %d %r", st, g)
    return g, (g.get("progress") or {}).get("rowsRead", 0)


SLOW_ROWS = 8000
SLOW_FN = """
CREATE OR REPLACE FUNCTION e2e_slow(i int) RETURNS int LANGUAGE plpgsql VOLATILE AS
$$ BEGIN PERFORM pg_sleep(0.005); RETURN i; END $$;
GRANT EXECUTE ON FUNCTION e2e_slow(int) TO %s;
"""
# the rows test_copy_blob's check_blob expects (id, customer, note), one every 5 ms: about 45 s
SLOW_QUERY = ("SELECT e2e_slow(i) AS id, 'cust-' || (i %% 97) AS customer, 'say \"hi\"; ' || i AS note "
              "FROM generate_series(0, %d) i" % (SLOW_ROWS - 1))


@test
def test_relay_restart_mid_copy(h):
    """shir-relay killed with -9 while a node copies and started again: the heartbeats resume, the job ends Succeeded under its first lease, every row once"""
    pg = shared_pg()
    pg.sql(SLOW_FN % READER)
    r, n, snd, data, out, extra = setup(h, rows=10, copy_jobs=2)
    az = Azurite(h)
    az.mkcontainer("landing")
    spec = blob_job(data, az, {"sasToken": az.sas("landing", "cw"), "path": "slow.csv", "blockSizeMB": 0.0625})
    spec["source"] = {"linkedService": pg.linked_service(), "dataset": {"type": "Query", "query": SLOW_QUERY}}
    st, j = snd.call("POST", "", spec)
    check(st == 201, "submit: %d %r", st, j)
    jid = j["id"]
    n.p.wait_log(r"event=job\.started job=%s dequeue_count=1" % jid, timeout=30)

    def reading():
        js = json.loads(h.run([h.bin("shirctl"), "--socket", n.sock, "jobs", "--json"], check=0).stdout)["jobs"]
        return js if js and js[0]["rowsRead"] > 0 else None
    wait_until(reading, 30, "the copy to read rows")
    g0, p0 = relay_progress(snd, jid)
    check(g0["state"] == "Running" and g0["dequeueCount"] == 1, "before the kill: %r", g0)
    r.proc.signal(signal.SIGKILL)
    r.proc.wait_exit()
    # the copy goes on; its next heartbeat (every 10 s) and the waiting lease request find no relay
    n.p.wait_log(r"event=job\.heartbeat_failed job=%s status=0" % jid, timeout=20)
    n.p.wait_log(r"event=lease\.failed status=0", timeout=20, after_mark=False)
    check(reading(), "the copy still runs while the relay is down")
    r.start()
    # a heartbeat after the restart carries newer progress to the relay: the same lease, renewed
    def renewed():
        g, p = relay_progress(snd, jid)
        return g if p > p0 and g["state"] == "Running" else None
    g1 = wait_until(renewed, 30, "a heartbeat with progress after the relay restart")
    check(g1["dequeueCount"] == 1 and g1["leaseExpires"] >= g0["leaseExpires"], "the lease went on: %r %r", g0, g1)
    # the lease path is back too: a second job submitted now is leased and copied while the first runs
    st, j2 = snd.call("POST", "", job(data, out, "DelimitedText", "after-restart.csv"))
    g2 = wait_final(snd, j2["id"], timeout=60)
    check(g2["state"] == "Succeeded" and g2["dequeueCount"] == 1 and g2["result"]["rowsWritten"] == 10,
          "a job submitted after the restart: %r", g2)
    check(relay_progress(snd, jid)[0]["state"] == "Running", "the slow job was still running: the lease path "
          "reconnected beside it")
    g = wait_final(snd, jid, timeout=120)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 1, "what the sender sees: %r", g)
    check(g["result"]["rowsRead"] == SLOW_ROWS and g["result"]["rowsWritten"] == SLOW_ROWS, "result: %r", g["result"])
    props = check_blob(h, az, g["result"], "slow.csv", SLOW_ROWS, "DelimitedText")
    check(props["committed"] >= 3, "several blocks: %r", props)
    log = n.p.log()
    check(len(re.findall(r"event=job\.started job=%s " % jid, log)) == 1 and "event=job.abandoned" not in log,
          "the job ran once on the node:\n%s", n.p.tail(40))
    check(az.ls("landing") == ["slow.csv"], "one blob: %r", az.ls("landing"))
    n.stop_clean()


class OtherNode(Node):
    """A second shird of the same runtime in the same test: its own name, socket, state and log."""

    def __init__(self, h, name, allowed, extra):
        self.h = h
        d = h.path(name)
        os.makedirs(d, exist_ok=True)
        self.sock = os.path.join(d, "shird.sock")
        conf = authnode.CONF.replace("name = auth-node", "name = " + name)
        self.conf = h.write(name + ".conf", conf.format(
            sock=self.sock, state=os.path.join(d, "state"), jobs=4, queue=64, timeout=45, allowed=allowed,
            lma="true", level="info", shutdown=10, validation="true", extra=extra))
        self.p = h.start(name, [h.bin("shird"), "-f", self.conf])
        self.p.wait_log(r"event=listening")
        self.p.wait_log(r"event=authoring.started")


def encode_key(k):
    return "IR@v1@" + base64.urlsafe_b64encode(json.dumps(k).encode()).decode().rstrip("=")


JOBS = 100


@test
def test_hundred_jobs_two_nodes(h):
    """100 jobs submitted at once to two nodes with node.copy_jobs 3: each Succeeded, ran once on one node, both nodes worked, every file once with its rows"""
    r, a, snd, data, out, extra = setup(h, rows=1, copy_jobs=3)
    key = encode_key(r.keys["sales-ir"]["node-key2"])
    b = OtherNode(h, "node-b", data, extra)
    h.run([h.bin("shirctl"), "--socket", b.sock, "--conf", b.conf, "register-node", "-", "node-b"],
          input=key + "\n", check=0)
    b.p.wait_log(r"event=channel\.connected")
    b.stop_clean()
    b = OtherNode(h, "node-b", data, extra)
    b.p.wait_log(r"event=copy\.started jobs=3")
    for i in range(JOBS):
        with open(os.path.join(data, "in-%03d.csv" % i), "w") as f:
            f.write("id;customer;note\n" + "".join("%d;c%d;job %d\n" % (k, i, i) for k in range(i % 7 + 1)))
    ids = {}
    for i in range(JOBS):
        st, j = snd.call("POST", "", job(data, out, "DelimitedText", "out-%03d.csv" % i, path="in-%03d.csv" % i))
        check(st == 201, "submit %d: %d %r", i, st, j)
        ids[j["id"]] = i
    check(len(ids) == JOBS, "100 distinct ids")

    def finals():
        st, ls = snd.call("GET", "")
        mine = [x for x in ls["jobs"] if x["id"] in ids]
        return mine if all(x["state"] in ("Succeeded", "Failed", "DeadLettered", "Cancelled") for x in mine) \
            and len(mine) == JOBS else None
    jobs = wait_until(finals, 110, "the 100 jobs to finish")
    bad = [x for x in jobs if x["state"] != "Succeeded" or x["dequeueCount"] != 1]
    check(not bad, "%d jobs not Succeeded on their first lease, first: %r", len(bad), bad[:3])
    started = {}
    for node in (a, b):
        got = re.findall(r"event=job\.started job=(\S+) dequeue_count=(\d+)", node.p.log())
        started[node] = [jid for jid, _ in got]
        check(all(dc == "1" for _, dc in got), "a node started an attempt after the first: %r", got)
    sa, sb = started[a], started[b]
    check(len(sa) == len(set(sa)) and len(sb) == len(set(sb)), "a node started a job twice")
    check(not set(sa) & set(sb), "jobs started on both nodes: %r", sorted(set(sa) & set(sb)))
    check(set(sa) | set(sb) == set(ids) and len(sa) + len(sb) == JOBS, "the nodes started %d + %d jobs",
          len(sa), len(sb))
    check(sa and sb, "both nodes took part: auth-node %d, node-b %d", len(sa), len(sb))
    print("# auth-node started %d jobs, node-b %d" % (len(sa), len(sb)))
    by_node = {x["id"]: x["node"] for x in jobs}
    check(all(by_node[jid] == "auth-node" for jid in sa) and all(by_node[jid] == "node-b" for jid in sb),
          "the relay names the node whose log started each job")
    check(sorted(os.listdir(out)) == ["out-%03d.csv" % i for i in range(JOBS)], "100 files, no leftovers: %r",
          sorted(os.listdir(out))[:5])
    for x in jobs:
        i = ids[x["id"]]
        with open(os.path.join(out, "out-%03d.csv" % i), newline="") as f:
            got = list(csv.DictReader(f))
        want = [{"id": str(k), "customer": "c%d" % i, "note": "job %d" % i} for k in range(i % 7 + 1)]
        check(got == want and x["result"]["rowsWritten"] == len(want), "job %d's file: %r", i, got)
    a.stop_clean()
    b.stop_clean()


def restart_squid(h, sq):
    """squid again, same configuration and port, after a kill -9"""
    cache = os.path.join(sq.dir, "cache.log")
    before = open(cache, errors="replace").read().count("Accepting HTTP Socket connections")
    sq.proc = h.start("squid", [h.require("squid", "squid"), "-N", "-f", os.path.join(sq.dir, "squid.conf")])
    wait_until(lambda: open(cache, errors="replace").read().count("Accepting HTTP Socket connections") > before,
               30, "squid to accept connections again")


@test
def test_proxy_drops_mid_upload(h):
    """squid killed with -9 mid-upload and started again on its port: the node logs the drop naming the proxy, retries with back-off, commits every row once"""
    rows = 400000
    sq, az, ca, snd, n, data, extra = through_squid(h)
    with open(os.path.join(data, "orders.csv"), "w") as f:
        f.write("id;customer;note\n")
        for i in range(rows):
            f.write('%d;cust-%d;"say ""hi""; %d"\n' % (i, i % 97, i))
    spec = blob_job(data, az, {"accountUrl": "https://devstoreaccount1.blob.test:%d" % az.port,
                               "sasToken": az.sas("landing", "cw"), "path": "dropped.csv",
                               "blockSizeMB": 0.0625})
    st, j = snd.call("POST", "", spec)
    check(st == 201, "submit: %d %r", st, j)

    def uploading():
        # blocks have reached Azurite through squid: the uploaders' tunnels are open and busy
        held = json.loads(az.client("uncommitted", "landing", "dropped.csv").stdout)["uncommitted"]
        return held if held >= 3 else None
    wait_until(uploading, 60, "the copy to upload some blocks through squid")
    n.p.mark()
    sq.proc.signal(signal.SIGKILL)
    sq.proc.wait_exit()
    proxy = re.escape("http://127.0.0.1:%d" % sq.port)
    # the uploads in flight lose their tunnel: each request fails with curl's words (the reset
    # tunnel, or, when curl itself retried a reused connection at once, the refused connect to
    # squid), and the line names the proxy it went through
    n.p.wait_log(r"event=blob\.retry what=\"Put Block\" status=0 error=\"(Recv failure|Send failure|"
                 r"Failed to connect to 127\.0\.0\.1 port %d)[^\"]*\" attempt=1 wait_ms=1000 via=%s"
                 % (sq.port, proxy), timeout=30)
    # the next tries find no proxy at all, the waits double
    n.p.wait_log(r"event=blob\.retry what=\"Put Block\" status=0 error=\"Failed to connect to 127\.0\.0\.1 port %d[^\"]*\" "
                 r"attempt=2 wait_ms=2000 via=%s" % (sq.port, proxy), timeout=10, after_mark=False)
    time.sleep(1)
    check(relay_progress(snd, j["id"])[0]["state"] == "Running", "not finished while the proxy is down")
    restart_squid(h, sq)
    g = wait_final(snd, j["id"], timeout=110)
    check(g["state"] == "Succeeded" and g["dequeueCount"] == 1, "after the proxy came back: %r", g)
    check_blob(h, az, g["result"], "dropped.csv", rows, "DelimitedText")
    log = n.p.log()
    for line in re.findall(r".*event=blob\.retry.*", log)[:4] + re.findall(r".*event=job\.blob_committed.*", log):
        print("# " + line)
    check("event=job.failed" not in log and "right-pw" not in log and "sig=" not in log,
          "no failure, no secret in the log")
    # the rest of the upload went through the restarted squid (it logs a tunnel when it closes)
    wait_until(lambda: "CONNECT devstoreaccount1.blob.test:%d svc" % az.port in sq.log(), 20,
               "the restarted squid to log the node's tunnel:\n" + sq.log())
    # a proxy that stays down: after 5 tries the attempt fails, retryable, and the error names the proxy
    sq.proc.signal(signal.SIGKILL)
    sq.proc.wait_exit()
    spec["sink"]["path"] = "never.csv"
    st, j = snd.call("POST", "", spec)
    why = (r"Put Block of https://devstoreaccount1\.blob\.test:%d/\S+never\.csv failed after 5 attempts through "
           r"the proxy %s: Failed to connect to 127\.0\.0\.1 port %d" % (az.port, proxy, sq.port))
    n.p.wait_log(r"event=job\.failed job=%s code=StoreUnreachable retryable=1 why=\"%s" % (j["id"], why), timeout=40)

    def told():
        g = relay_progress(snd, j["id"])[0]
        return g if g.get("error") else None
    # queued again for another attempt (or already leased for it after the back-off)
    g = wait_until(told, 20, "the relay to record the failure")
    check(g["state"] in ("Queued", "Running") and g["error"]["code"] == "StoreUnreachable" and
          re.match(why, g["error"]["message"]), "what the sender sees: %r", g)
    check("never.csv" not in az.ls("landing"), "no blob from the failed attempt")
    snd.call("POST", "/%s/cancel" % j["id"])
    n.stop_clean()

if __name__ == "__main__":
    main()
