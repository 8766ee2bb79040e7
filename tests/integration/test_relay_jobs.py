"""Integration: the copy-job queue of shir-relay (docs/copy.md). A real
shir-relay on loopback; senders submit, read and cancel jobs with the Send
key; lessees take jobs with the Listen key by long poll, send heartbeats with
progress, complete and fail them, exactly as a node does on the wire. Covers
leases that expire (the job is leased again, the old lease is refused), the
dead-letter state, cancel, a relay killed with -9 and restarted mid-job,
100 jobs taken by two concurrent lessees (each leased once), the admin
commands `shir-relay jobs list|show|cancel`, /status and /metrics."""
import http.client
import json
import os
import signal
import socket
import threading
import time

from shirtest import check, main, test, wait_until
from relaytest import Relay, sas_token

SPEC = {
    "source": {"linkedService": {"type": "PostgreSql",
                                 "properties": {"host": "db1.corp", "database": "sales", "username": "reader",
                                                "password": "s3cret-pw"}},
               "dataset": {"type": "Table", "table": "orders"}},
    "sink": {"type": "AzureBlob", "sasUrl": "https://acct.blob.core.windows.net/c?sig=TOPSECRET",
             "container": "c", "blobPath": "orders/part"},
    "format": {"type": "Parquet", "compression": "snappy"},
}


class Client:
    def __init__(self, r, hc="myhc", key="service-key"):
        self.r = r
        self.hc = hc
        k = r.keys[hc][key]
        self.tok = sas_token("http://127.0.0.1:%d/%s" % (r.port, hc), k["keyName"], k["key"])

    def call(self, method, path, body=None, token=True, timeout=30, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.r.port, timeout=timeout)
        hd = {"Content-Type": "application/json"}
        if token:
            hd["ServiceBusAuthorization"] = self.tok
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, "/%s/v1/jobs%s" % (self.hc, path), body=data, headers=hd)
        resp = c.getresponse()
        txt = resp.read().decode()
        c.close()
        return resp.status, (json.loads(txt) if txt else None)


def setup(h, limits=""):
    r = Relay(h, limits=limits)
    r.create()
    r.start()
    return r, Client(r), Client(r, key="node-key1")


def lease(node, name="node-a", wait=0, vis=60):
    return node.call("POST", "/lease", {"node": name, "waitSeconds": wait, "visibilityTimeoutSeconds": vis},
                     timeout=wait + 30)


@test
def test_submit_lease_heartbeat_complete(h):
    """a job goes Queued -> Running -> Succeeded; progress and result reach the sender; secrets never do"""
    r, snd, node = setup(h)
    st, j = snd.call("POST", "", SPEC)
    check(st == 201 and j["state"] == "Queued" and len(j["id"]) == 36, "submit: %d %r", st, j)
    check("TOPSECRET" not in json.dumps(j) and "s3cret-pw" not in json.dumps(j), "secrets echoed: %r", j)
    jid = j["id"]
    st, g = snd.call("GET", "/" + jid)
    check(st == 200 and g["state"] == "Queued" and g["job"]["format"]["type"] == "Parquet", "get: %d %r", st, g)
    st, l = lease(node)
    check(st == 200 and l["id"] == jid and l["dequeueCount"] == 1, "lease: %d %r", st, l)
    check(l["job"]["sink"]["sasUrl"].endswith("TOPSECRET"), "the lessee gets the whole job: %r", l)
    st, _ = lease(node, "node-b")
    check(st == 204, "nothing else to lease: %d", st)
    st, hb = node.call("POST", "/%s/heartbeat" % jid, {"leaseId": l["leaseId"], "progress": {"rowsRead": 500}})
    check(st == 200 and hb["state"] == "Running", "heartbeat: %d %r", st, hb)
    st, g = snd.call("GET", "/" + jid)
    check(g["state"] == "Running" and g["progress"]["rowsRead"] == 500 and g["node"] == "node-a", "%r", g)
    res = {"rowsRead": 1000, "rowsWritten": 1000, "files": [{"path": "orders/part-0.parquet", "md5": "x"}]}
    st, c = node.call("POST", "/%s/complete" % jid, {"leaseId": l["leaseId"], "result": res})
    check(st == 200 and c["state"] == "Succeeded", "complete: %d %r", st, c)
    st, g = snd.call("GET", "/" + jid)
    check(g["state"] == "Succeeded" and g["result"] == res and "finished" in g, "final: %r", g)
    st, e = node.call("POST", "/%s/complete" % jid, {"leaseId": l["leaseId"], "result": res})
    check(st == 409 and e["error"]["code"] == "LeaseLost", "a second complete: %d %r", st, e)
    st, ls = snd.call("GET", "")
    check(st == 200 and [x["id"] for x in ls["jobs"]] == [jid], "list: %r", ls)
    log = r.proc.log()
    check("TOPSECRET" not in log and "s3cret-pw" not in log, "a secret reached the relay's log")
    check(os.stat(os.path.join(h.path("jobs"), jid + ".json")).st_mode & 0o777 == 0o600, "job file mode")


@test
def test_authorization_and_bad_requests(h):
    """Send key for senders, Listen key for lessees, no anonymous jobs; bad jobs get 400 naming the field"""
    r, snd, node = setup(h)
    st, e = snd.call("POST", "", SPEC, token=False)
    check(st == 401, "no token: %d %r", st, e)
    st, e = node.call("POST", "", SPEC)
    check(st in (401, 403), "a Listen key cannot submit: %d %r", st, e)
    st, e = snd.call("POST", "/lease", {"node": "x"})
    check(st in (401, 403), "a Send key cannot lease: %d %r", st, e)
    bad = json.loads(json.dumps(SPEC))
    del bad["source"]["dataset"]
    st, e = snd.call("POST", "", bad)
    check(st == 400 and "source.dataset" in e["error"]["message"], "missing dataset: %d %r", st, e)
    bad = json.loads(json.dumps(SPEC))
    bad["sink"]["type"] = "Ftp"
    st, e = snd.call("POST", "", bad)
    check(st == 400 and "sink.type" in e["error"]["message"], "bad sink: %d %r", st, e)
    st, e = snd.call("POST", "", raw="{not json")
    check(st == 400 and e["error"]["code"] == "InvalidRequest", "bad JSON: %d %r", st, e)
    st, e = snd.call("POST", "", raw=json.dumps(dict(SPEC, pad="x" * 70000)))
    check(st == 413, "a body over 64 KiB: %d %r", st, e)
    st, e = snd.call("GET", "/00000000-0000-4000-8000-000000000000")
    check(st == 404 and e["error"]["code"] == "JobNotFound", "unknown job: %d %r", st, e)
    st, e = node.call("POST", "/lease", {"node": "n", "waitSeconds": 3600})
    check(st == 400 and "waitSeconds" in e["error"]["message"], "wait too long: %d %r", st, e)
    # Expect: 100-continue (curl sends it before larger bodies) gets its 100 at once
    body = json.dumps(SPEC).encode()
    sk = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    sk.sendall(("POST /myhc/v1/jobs HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                % (snd.tok, len(body))).encode())
    first = sk.recv(100)
    check(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "100 Continue: %r", first)
    sk.sendall(body)
    rest = b""
    while b"\r\n\r\n" not in rest:
        rest += sk.recv(4096)
    check(b"201 Created" in first + rest, "then 201: %r", first + rest)
    sk.close()
    # the relay keeps serving
    st, j = snd.call("POST", "", SPEC)
    check(st == 201, "after bad requests: %d", st)
    # a job of another hybrid connection is invisible here
    r.create("other")
    other = Client(r, hc="other")
    wait_until(lambda: other.call("GET", "")[0] == 200, 10, "the relay to load the new entity")
    st, e = other.call("GET", "/" + j["id"])
    check(st == 404, "another hc's job: %d %r", st, e)


@test
def test_long_poll_and_lease_expiry(h):
    """a waiting lease gets a job as soon as it is submitted; an expired lease is re-leased, the old one refused; dead-letter after maxAttempts"""
    r, snd, node = setup(h)
    out = {}

    def waiter():
        out["t0"] = time.monotonic()
        out["res"] = lease(node, "node-a", wait=20, vis=5)
        out["t1"] = time.monotonic()
    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: json.loads(r.admin_get("/status"))["jobs"]["leaseWaiters"] == 1, 10,
               "the lease request to wait")
    spec = dict(SPEC, options={"maxAttempts": 2})
    st, j = snd.call("POST", "", spec)
    t.join(30)
    st, l1 = out["res"]
    check(st == 200 and l1["id"] == j["id"], "long poll: %d %r", st, l1)
    check(out["t1"] - out["t0"] < 10, "the waiting lease was answered at once (%.1fs)", out["t1"] - out["t0"])
    # no heartbeat: the lease (5 s) expires, the job is queued again after a back-off
    r.proc.wait_log(r"event=job\.state job=%s hc=myhc from=Running to=Queued" % j["id"], timeout=20)
    st, l2 = lease(node, "node-b", wait=10, vis=5)
    check(st == 200 and l2["id"] == j["id"] and l2["dequeueCount"] == 2 and l2["leaseId"] != l1["leaseId"],
          "re-lease: %d %r", st, l2)
    st, e = node.call("POST", "/%s/complete" % j["id"], {"leaseId": l1["leaseId"], "result": {}})
    check(st == 409 and e["error"]["code"] == "LeaseLost", "the first lessee's complete: %d %r", st, e)
    st, e = node.call("POST", "/%s/heartbeat" % j["id"], {"leaseId": l1["leaseId"]})
    check(st == 409 and e["error"]["code"] == "LeaseLost", "the first lessee's heartbeat: %d %r", st, e)
    # the second attempt expires too: maxAttempts 2 -> dead-lettered
    r.proc.wait_log(r"event=job\.state job=%s hc=myhc from=Running to=DeadLettered" % j["id"], timeout=20)
    st, g = snd.call("GET", "/" + j["id"])
    check(g["state"] == "DeadLettered" and g["error"]["code"] == "LeaseExpired" and g["dequeueCount"] == 2,
          "dead-lettered: %r", g)
    st, _ = lease(node, "node-c")
    check(st == 204, "a dead-lettered job is never leased again: %d", st)
    st, dl = snd.call("GET", "?state=DeadLettered")
    check(st == 200 and [x["id"] for x in dl["jobs"]] == [j["id"]], "the dead-letter list: %d %r", st, dl)
    st, e = snd.call("GET", "?state=Bogus")
    check(st == 400, "an unknown state: %d %r", st, e)
    out = r.cli("jobs", "list", "--state", "DeadLettered").stdout
    check(j["id"] in out and "DeadLettered" in out, "jobs list --state DeadLettered: %s", out)
    out = r.cli("jobs", "list", "--state", "Queued").stdout
    check(j["id"] not in out, "jobs list --state Queued: %s", out)


@test
def test_waiting_lessee_that_goes_away(h):
    """a lessee that closes its connection while it waits is forgotten: the next job goes to a lessee that is there"""
    r, snd, node = setup(h)
    body = json.dumps({"node": "gone", "waitSeconds": 30})
    sk = socket.create_connection(("127.0.0.1", r.port))
    sk.sendall(("POST /myhc/v1/jobs/lease HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (node.tok, len(body), body)).encode())
    wait_until(lambda: json.loads(r.admin_get("/status"))["jobs"]["leaseWaiters"] == 1, 10, "the lessee to wait")
    sk.close()
    wait_until(lambda: json.loads(r.admin_get("/status"))["jobs"]["leaseWaiters"] == 0, 10,
               "the relay to forget the lessee")
    st, j = snd.call("POST", "", SPEC)
    st, g = snd.call("GET", "/" + j["id"])
    check(g["state"] == "Queued", "nobody took it: %r", g)
    st, l = lease(node, "here")
    check(st == 200 and l["id"] == j["id"] and l["dequeueCount"] == 1 and l["node"] == "here", "%d %r", st, l)


@test
def test_fail_retry_and_cancel(h):
    """a retryable failure queues the job again, a final one fails it; a cancel stops the lessee at its next heartbeat"""
    r, snd, node = setup(h)
    st, j = snd.call("POST", "", SPEC)
    st, l = lease(node)
    st, f = node.call("POST", "/%s/fail" % j["id"], {"leaseId": l["leaseId"], "retryable": True,
                                                     "error": {"code": "StoreBusy", "message": "503 from storage"}})
    check(st == 200 and f["state"] == "Queued", "retryable fail: %d %r", st, f)
    st, l = lease(node, wait=10)
    check(st == 200 and l["dequeueCount"] == 2, "leased again after the back-off: %d %r", st, l)
    st, f = node.call("POST", "/%s/fail" % j["id"], {"leaseId": l["leaseId"], "retryable": False,
                                                     "error": {"code": "AuthorizationFailure",
                                                               "message": "403 from storage: the SAS is wrong"}})
    check(st == 200 and f["state"] == "Failed", "final fail: %d %r", st, f)
    st, g = snd.call("GET", "/" + j["id"])
    check(g["error"]["message"] == "403 from storage: the SAS is wrong", "the error reaches the sender: %r", g)
    st, e = snd.call("POST", "/%s/cancel" % j["id"])
    check(st == 409 and e["error"]["code"] == "JobFinished", "cancel a finished job: %d %r", st, e)
    # cancel a running job
    st, j2 = snd.call("POST", "", SPEC)
    st, l2 = lease(node)
    st, c = snd.call("POST", "/%s/cancel" % j2["id"])
    check(st == 200 and c["state"] == "Cancelled", "cancel: %d %r", st, c)
    st, e = node.call("POST", "/%s/heartbeat" % j2["id"], {"leaseId": l2["leaseId"]})
    check(st == 409 and e["error"]["code"] == "JobCancelled", "heartbeat after cancel: %d %r", st, e)
    st, e = node.call("POST", "/%s/complete" % j2["id"], {"leaseId": l2["leaseId"], "result": {}})
    check(st == 409 and e["error"]["code"] == "JobCancelled", "a cancelled job never succeeds: %d %r", st, e)
    # cancel a queued one with the admin command
    st, j3 = snd.call("POST", "", SPEC)
    out = r.cli("jobs", "cancel", j3["id"]).stdout
    check("cancelled" in out, "jobs cancel: %s", out)
    st, _ = lease(node)
    check(st == 204, "a cancelled job is never leased: %d", st)
    out = r.cli("jobs", "list").stdout
    for jid, state in ((j["id"], "Failed"), (j2["id"], "Cancelled"), (j3["id"], "Cancelled")):
        check(any(jid in line and state in line for line in out.splitlines()), "jobs list: %s", out)
    show = r.cli("jobs", "show", j["id"]).stdout
    check(json.loads(show)["state"] == "Failed" and "TOPSECRET" not in show and "(redacted)" in show,
          "jobs show: %s", show)
    res = r.cli("jobs", "show", "nope", check_rc=1)
    check("not a job id" in res.stderr, "jobs show nope: %s", res.stderr)


@test
def test_relay_restart_mid_job(h):
    """the relay is killed with -9 while a job runs and others wait: after a restart the lease, progress and queue are intact"""
    r, snd, node = setup(h)
    ids = [snd.call("POST", "", SPEC)[1]["id"] for _ in range(3)]
    st, l = lease(node, vis=120)
    node.call("POST", "/%s/heartbeat" % ids[0], {"leaseId": l["leaseId"], "progress": {"rowsWritten": 42}})
    r.proc.signal(signal.SIGKILL)
    r.proc.wait_exit()
    r.start()
    st, hb = node.call("POST", "/%s/heartbeat" % ids[0], {"leaseId": l["leaseId"], "visibilityTimeoutSeconds": 60})
    check(st == 200 and hb["state"] == "Running" and hb["progress"]["rowsWritten"] == 42, "after restart: %d %r", st, hb)
    st, c = node.call("POST", "/%s/complete" % ids[0], {"leaseId": l["leaseId"], "result": {"rowsWritten": 84}})
    check(st == 200 and c["state"] == "Succeeded", "complete after restart: %d %r", st, c)
    got = [lease(node)[1]["id"] for _ in range(2)]
    check(got == ids[1:], "the queue kept its order: %r vs %r", got, ids[1:])


@test
def test_nothing_acknowledged_that_is_not_on_disk(h):
    """when the job directory cannot be written, submit, lease, complete and cancel answer 503 and change nothing"""
    r, snd, node = setup(h)
    st, j = snd.call("POST", "", SPEC)
    st, l = lease(node)
    jobs = h.path("jobs")
    saved = h.path("jobs.saved")
    os.rename(jobs, saved)
    with open(jobs, "w") as f:  # a file where the directory was: every write fails (even for root)
        f.write("not a directory")
    try:
        st, e = snd.call("POST", "", SPEC)
        check(st == 503 and e["error"]["code"] == "ServerBusy", "submit: %d %r", st, e)
        st, e = node.call("POST", "/%s/complete" % j["id"], {"leaseId": l["leaseId"], "result": {"rows": 1}})
        check(st == 503 and e["error"]["code"] == "ServerBusy", "complete: %d %r", st, e)
        st, e = snd.call("POST", "/%s/cancel" % j["id"])
        check(st == 503, "cancel: %d %r", st, e)
        st, g = snd.call("GET", "/" + j["id"])
        check(g["state"] == "Running" and "result" not in g, "unchanged: %r", g)
        st, ls = snd.call("GET", "")
        check(len(ls["jobs"]) == 1, "the refused job was not queued: %r", ls)
    finally:
        os.unlink(jobs)
        os.rename(saved, jobs)
    st, c = node.call("POST", "/%s/complete" % j["id"], {"leaseId": l["leaseId"], "result": {"rows": 1}})
    check(st == 200 and c["state"] == "Succeeded", "complete once the disk is back: %d %r", st, c)
    check("event=job.save_failed" in r.proc.log(), "the failed writes are logged")


@test
def test_queue_bound(h):
    """limits.max_jobs: a full queue of unfinished jobs refuses (503 QueueFull); a finished job gives way to a new one"""
    r, snd, node = setup(h, limits="max_jobs = 3")
    ids = [snd.call("POST", "", SPEC)[1]["id"] for _ in range(3)]
    st, e = snd.call("POST", "", SPEC)
    check(st == 503 and e["error"]["code"] == "QueueFull" and "max_jobs = 3" in e["error"]["message"],
          "a fourth job: %d %r", st, e)
    st, l = lease(node)
    node.call("POST", "/%s/complete" % l["id"], {"leaseId": l["leaseId"], "result": {}})
    st, j = snd.call("POST", "", SPEC)
    check(st == 201, "after one finished: %d %r", st, j)
    r.proc.wait_log(r"event=job\.dropped job=%s state=Succeeded" % ids[0])
    check(not os.path.exists(os.path.join(h.path("jobs"), ids[0] + ".json")), "the dropped job's file is gone")
    st, _ = snd.call("GET", "/" + ids[0])
    check(st == 404, "the dropped job: %d", st)
    check(len(os.listdir(h.path("jobs"))) == 3, "three job files: %r", os.listdir(h.path("jobs")))


@test
def test_hundred_jobs_two_lessees(h):
    """100 jobs, two lessees long-polling concurrently: every job is leased exactly once and completed"""
    r, snd, node = setup(h)
    node2 = Client(r, key="node-key2")
    taken = {"a": [], "b": []}
    stop = threading.Event()
    errors = []

    def lessee(c, name):
        while not stop.is_set():
            try:
                st, l = lease(c, name, wait=2)
                if st == 204:
                    continue
                if st != 200:
                    errors.append((st, l))
                    return
                taken[name].append(l["id"])
                st, _ = c.call("POST", "/%s/complete" % l["id"], {"leaseId": l["leaseId"], "result": {"by": name}})
                if st != 200:
                    errors.append(("complete", st))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return
    ts = [threading.Thread(target=lessee, args=(node, "a")), threading.Thread(target=lessee, args=(node2, "b"))]
    for t in ts:
        t.start()
    ids = set()
    try:
        for _ in range(100):
            st, j = snd.call("POST", "", SPEC)
            check(st == 201, "submit: %d", st)
            ids.add(j["id"])
        wait_until(lambda: len(taken["a"]) + len(taken["b"]) >= 100 or errors, 60, "100 jobs to be leased")
    finally:
        stop.set()
        for t in ts:
            t.join(30)
    check(not errors, "lessee errors: %r", errors)
    all_taken = taken["a"] + taken["b"]
    check(len(all_taken) == 100 and set(all_taken) == ids, "each job leased once: %d leases, %d distinct",
          len(all_taken), len(set(all_taken)))
    check(taken["a"] and taken["b"], "both lessees worked: a=%d b=%d", len(taken["a"]), len(taken["b"]))
    st, ls = snd.call("GET", "")
    check(all(x["state"] == "Succeeded" and x["dequeueCount"] == 1 for x in ls["jobs"]), "all succeeded once")
    m = r.admin_get("/metrics")
    check('shir_relay_jobs{state="Succeeded"} 100' in m and 'shir_relay_jobs_events_total{event="leased"} 100' in m,
          "metrics:\n%s", m)
    st = json.loads(r.admin_get("/status"))
    check(st["jobs"]["Succeeded"] == 100 and st["jobs"]["Queued"] == 0, "status: %r", st["jobs"])


if __name__ == "__main__":
    main()
