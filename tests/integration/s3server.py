"""An S3-compatible server for the tests, and an S3 client to read back what
the node wrote: npm @20minutes/s3rver 5.0.0 (a maintained fork of s3rver that
checks Signature Version 4 and does multipart uploads; the original s3rver
3.7.1 accepts any V4 signature, so a wrong secret could not be tested) and
Amazon's SDK, npm @aws-sdk/client-s3 and @aws-sdk/lib-storage 3.1178.0, all
pinned and installed once per build directory under
$SHIR_BUILDDIR/tests/npm-s3. The server listens on a free 127.0.0.1 port,
keeps its data in the test's directory (so it survives a restart), and
accepts the access key AKID with the secret SECRET (below), added to its
account at start. It does not implement
AbortMultipartUpload (it answers 405); its log shows every request, so a
test sees the node's abort."""
import json
import os

from shirtest import BUILDDIR, TestFailure, free_port, npm_install

NPM_DIR = os.path.join(BUILDDIR, "tests", "npm-s3")
PKG = """{ "name": "shir-s3-tests", "version": "0.0.0", "private": true,
  "dependencies": { "@20minutes/s3rver": "5.0.0", "@aws-sdk/client-s3": "3.1178.0",
                    "@aws-sdk/lib-storage": "3.1178.0" } }
"""
AKID = "AKIASHIRTEST0000KEY1"
SECRET = "shir/Test+Secret0123456789abcdefghijklmn"

SERVER = r"""
const fs = require("fs");
const S3rver = require("@20minutes/s3rver");
require("@20minutes/s3rver/lib/models/account").DUMMY_ACCOUNT.createKeyPair(process.env.S3_AKID, process.env.S3_SECRET);
const [port, dir, endpoint, key, cert, ...buckets] = process.argv.slice(2);
const opts = { port: Number(port), address: "127.0.0.1", directory: dir, silent: false,
  serviceEndpoint: endpoint, configureBuckets: buckets.map((name) => ({ name })) };
if (key !== "-") { opts.key = fs.readFileSync(key); opts.cert = fs.readFileSync(cert); }
new S3rver(opts).run().then((a) => console.log("s3rver listening on " + a.port),
  (e) => { console.error(e); process.exit(1); });
"""

CLIENT = r"""
const fs = require("fs");
const { S3Client, GetObjectCommand, HeadObjectCommand } = require("@aws-sdk/client-s3");
const { Upload } = require("@aws-sdk/lib-storage");
const [cmd, endpoint, ...a] = process.argv.slice(2);
const c = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true,
  credentials: { accessKeyId: process.env.S3_AKID, secretAccessKey: process.env.S3_SECRET },
  requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
(async () => {
  if (cmd === "get") {          // bucket key outfile
    const g = await c.send(new GetObjectCommand({ Bucket: a[0], Key: a[1] }));
    const body = Buffer.from(await g.Body.transformToByteArray());
    fs.writeFileSync(a[2], body);
    console.log(JSON.stringify({ size: body.length, etag: (g.ETag || "").replace(/"/g, ""),
      encoding: g.ContentEncoding || null }));
  } else if (cmd === "head") {  // bucket key: {"exists": bool}
    try {
      await c.send(new HeadObjectCommand({ Bucket: a[0], Key: a[1] }));
      console.log(JSON.stringify({ exists: true }));
    } catch (e) {
      if (e.$metadata && e.$metadata.httpStatusCode === 404) console.log(JSON.stringify({ exists: false }));
      else throw e;
    }
  } else if (cmd === "put") {   // bucket key infile partMB queue: the benchmark's baseline
    const t0 = Date.now();
    await new Upload({ client: c, params: { Bucket: a[0], Key: a[1], Body: fs.createReadStream(a[2]) },
      partSize: Number(a[3]) * 1024 * 1024, queueSize: Number(a[4]) }).done();
    console.log(JSON.stringify({ ms: Date.now() - t0 }));
  }
})().catch((e) => { console.error(e.name + ": " + e.message); process.exit(1); });
"""


def npm_s3(h):
    """Installs the server and the SDK once (cached in the build dir)."""
    return npm_install(h, NPM_DIR, PKG, ("@20minutes/s3rver", "@aws-sdk/lib-storage"),
                       "@20minutes/s3rver@5.0.0 and @aws-sdk/client-s3@3.1178.0", timeout=600)


class S3Server:
    def __init__(self, h, buckets=("landing",), tls=None, endpoint="amazonaws.com"):
        """tls: (certificate, key, CA file): https, the SDK trusts the CA.
        endpoint: the service domain for virtual-hosted names (bucket.s3.ENDPOINT)."""
        self.h = h
        self.mods = npm_s3(h)
        self.port = free_port()
        self.dir = h.path("s3rver-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.tls = tls
        self.endpoint = endpoint
        self.buckets = list(buckets)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.server = h.write("s3server-%d.js" % self.port, SERVER)
        self.script = h.write("s3client.js", CLIENT)
        self.start()

    def start(self):
        """Starts the server (again, on the same port, with the data it had)."""
        env = {"NODE_PATH": self.mods, "S3_AKID": AKID, "S3_SECRET": SECRET}
        self.p = self.h.start("s3rver", ["node", self.server, str(self.port), self.dir, self.endpoint,
                                         self.tls[1] if self.tls else "-", self.tls[0] if self.tls else "-"]
                              + self.buckets, env=env, cwd=self.dir)
        self.p.wait_log(r"s3rver listening on", timeout=60)

    def client(self, *args, check=0, timeout=120):
        env = {"NODE_PATH": self.mods, "S3_AKID": AKID, "S3_SECRET": SECRET,
               "AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING": "1"}
        if self.tls:
            env["NODE_EXTRA_CA_CERTS"] = self.tls[2]
        r = self.h.run(["node", self.script, args[0], self.url] + list(args[1:]), env=env, timeout=timeout)
        if check is not None and r.returncode != check:
            raise TestFailure("s3client %s: exit %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
        return r

    def get(self, bucket, key, out):
        return json.loads(self.client("get", bucket, key, out).stdout)

    def ls(self, bucket):
        """The bucket's objects, read from the server's store on disk: this server refuses the
        SDK's bucket listing (ListObjects, V1 or V2) with SignatureDoesNotMatch, so the list
        cannot come through the API; objects are read back through the SDK (get, exists)."""
        root = os.path.join(self.dir, bucket)
        keys = []
        for d, subdirs, files in os.walk(root):
            subdirs[:] = [x for x in subdirs if x != "._S3rver_uploads"]
            keys += [os.path.relpath(os.path.join(d, f), root)[:-len("._S3rver_object")]
                     for f in files if f.endswith("._S3rver_object")]
        return sorted(keys)

    def uploads(self, bucket):
        """Multipart uploads created and neither completed nor aborted (the store on disk)."""
        d = os.path.join(self.dir, bucket, "._S3rver_uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def exists(self, bucket, key):
        return json.loads(self.client("head", bucket, key).stdout)["exists"]
