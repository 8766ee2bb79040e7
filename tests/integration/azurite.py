"""Azurite (Microsoft's Azure Storage emulator, npm azurite 3.37.0) for the
tests, and a small client built on Microsoft's SDK (npm @azure/storage-blob
12.34.0) to create containers, make SAS tokens and read blobs back. Both are
installed once per build directory under $SHIR_BUILDDIR/tests/npm-azure,
pinned. Azurite listens on a free 127.0.0.1 port, in memory."""
import json
import os

from shirtest import BUILDDIR, TestFailure, free_port, npm_install, wait_until

NPM_DIR = os.path.join(BUILDDIR, "tests", "npm-azure")
PKG = """{ "name": "shir-azure-tests", "version": "0.0.0", "private": true,
  "dependencies": { "azurite": "3.37.0", "@azure/storage-blob": "12.34.0" } }
"""
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

CLIENT = r"""
const fs = require("fs");
const { BlobServiceClient, StorageSharedKeyCredential, generateBlobSASQueryParameters,
        ContainerSASPermissions } = require("@azure/storage-blob");
const [cmd, url, acct, key, ...a] = process.argv.slice(2);
const cred = new StorageSharedKeyCredential(acct, key);
const svc = new BlobServiceClient(url, cred);
(async () => {
  if (cmd === "mk") {
    await svc.getContainerClient(a[0]).create();
  } else if (cmd === "sas") {   // container permissions [signing key]
    const c = a[2] ? new StorageSharedKeyCredential(acct, a[2]) : cred;
    console.log(generateBlobSASQueryParameters({ containerName: a[0],
      permissions: ContainerSASPermissions.parse(a[1]), startsOn: new Date(Date.now() - 300000),
      expiresOn: new Date(Date.now() + 3600000) }, c).toString());
  } else if (cmd === "get") {   // container blob outfile
    const b = svc.getContainerClient(a[0]).getBlockBlobClient(a[1]);
    fs.writeFileSync(a[2], await b.downloadToBuffer());
    const p = await b.getProperties();
    const bl = await b.getBlockList("all");
    console.log(JSON.stringify({ size: p.contentLength,
      md5: p.contentMD5 ? Buffer.from(p.contentMD5).toString("base64") : null,
      committed: bl.committedBlocks.length, uncommitted: (bl.uncommittedBlocks || []).length }));
  } else if (cmd === "uncommitted") {   // container blob: the uncommitted blocks' count (0: no blob)
    const b = svc.getContainerClient(a[0]).getBlockBlobClient(a[1]);
    try {
      const bl = await b.getBlockList("uncommitted");
      console.log(JSON.stringify({ uncommitted: (bl.uncommittedBlocks || []).length }));
    } catch (e) {
      if (e.statusCode !== 404) throw e;
      console.log(JSON.stringify({ uncommitted: 0 }));
    }
  } else if (cmd === "ls") {    // container: every blob, uncommitted ones too
    const names = [];
    for await (const b of svc.getContainerClient(a[0]).listBlobsFlat({ includeUncommitedBlobs: true }))
      names.push(b.name);
    console.log(JSON.stringify(names));
  } else if (cmd === "put") {   // container blob infile: the baseline upload (4 MiB blocks, 4 at once)
    const t0 = Date.now();
    await svc.getContainerClient(a[0]).getBlockBlobClient(a[1]).uploadFile(a[2],
      { blockSize: 4 * 1024 * 1024, concurrency: 4 });
    console.log(JSON.stringify({ ms: Date.now() - t0 }));
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
"""


def npm_azure(h):
    """Installs azurite@3.37.0 and @azure/storage-blob@12.34.0 once (cached in the build dir)."""
    return npm_install(h, NPM_DIR, PKG, ("azurite", "@azure/storage-blob"),
                       "azurite@3.37.0 and @azure/storage-blob@12.34.0", timeout=600)


class Azurite:
    def __init__(self, h, tls=None, persist=False):
        """tls: (certificate, key, CA file): Azurite serves https, the SDK trusts the CA.
        persist: keep the data in h.path("azurite") (it survives a restart) instead of memory."""
        self.persist = persist
        self.h = h
        self.mods = npm_azure(h)
        self.port = free_port()
        self.dir = h.path("azurite")
        self.ca = tls[2] if tls else None
        os.makedirs(self.dir, exist_ok=True)
        self.url = "%s://127.0.0.1:%d/%s" % ("https" if tls else "http", self.port, ACCOUNT)
        self.extra = ["--cert", tls[0], "--key", tls[1]] if tls else []
        self.start()
        self.script = h.write("azclient.js", CLIENT)

    def start(self):
        """Starts Azurite (again, on the same port; with persist, with the data it had)."""
        store = ["--location", self.dir] if self.persist else ["--inMemoryPersistence", "--extentMemoryLimit", "512"]
        self.p = self.h.start("azurite", ["node", os.path.join(self.mods, "azurite", "dist", "src", "blob",
                                                                "main.js"),
                                          "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                                          "--loose", "--skipApiVersionCheck"] + store + self.extra,
                                      cwd=self.dir)
        self.p.wait_log(r"Azurite Blob service successfully listens", timeout=60)

    def client(self, *args, check=0, timeout=120):
        env = {"NODE_PATH": self.mods}
        if self.ca:
            env["NODE_EXTRA_CA_CERTS"] = self.ca
        r = self.h.run(["node", self.script, args[0], self.url, ACCOUNT, KEY] + list(args[1:]), env=env,
                       timeout=timeout)
        if check is not None and r.returncode != check:
            raise TestFailure("azclient %s: exit %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
        return r

    def mkcontainer(self, name):
        self.client("mk", name)

    def sas(self, container, perms, key=None):
        return self.client("sas", container, perms, *([key] if key else [])).stdout.strip()

    def get(self, container, blob, out):
        return json.loads(self.client("get", container, blob, out).stdout)

    def ls(self, container):
        return json.loads(self.client("ls", container).stdout)
