"""Integration: `make demo` (README command 1) works: relay, node, registration,
every authoring operation through the relay, and a clean stop."""
import os

from shirtest import BUILDDIR, SRCDIR, check, main, test


@test
def test_demo(h):
    """tools/demo runs the whole system on loopback and stops it"""
    r = h.run(["sh", os.path.join(SRCDIR, "tools", "demo"), BUILDDIR], timeout=120)
    out = r.stdout + r.stderr
    check(r.returncode == 0, "demo exited %d:\n%s", r.returncode, out[-4000:])
    for want in ("Status:   NeedsRegistration", "the node can reach the relay and listen",
                 "Status:   Online", "Connection succeeded: FileSystem",
                 "orders.csv", "Smith, Jane", "PEN-1", "Connection succeeded: SQLite",
                 "big_orders", "Müller GmbH", "(PathNotAllowed, HTTP 403)", "event=exit code=0",
                 "demo: done"):
        check(want in out, "demo output lacks %r:\n%s", want, out[-4000:])
    check("IR@v1@" not in out.replace("IR@v1@eyJpciI6ImRl...", ""),
          "the demo printed a whole key")


if __name__ == "__main__":
    main()
