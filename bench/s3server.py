"""A local S3 server for `run.py --s3`: SeaweedFS (`weed mini`, installed by scripts/test), on
127.0.0.1 only, with one bucket for the tools to share. Standard library only.

Like the tests' server (crates/storage/src/testing.rs) it takes the machine-wide lock
(`/tmp/backstop-seaweedfs.lock`), since SeaweedFS opens fixed ports besides its S3 port, and
it never reports to the internet (`-master.telemetry=false`).
"""
import datetime
import fcntl
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

KEY_ID = "backstop-bench-key"
SECRET = "backstop-bench-secret-0123456789"
REGION = "us-east-1"
BUCKET = "bench"


def find_weed():
    for p in [os.environ.get("BACKSTOP_TEST_WEED"), "/var/tmp/backstop-test-tools/seaweedfs/bin/weed",
              shutil.which("weed")]:
        if p and os.access(p, os.X_OK):
            return p
    raise SystemExit("SeaweedFS (weed) is not installed: run scripts/test once (it installs it), "
                     "or set BACKSTOP_TEST_WEED")


def free_port():
    """A free port whose gRPC companion (port + 10000) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as g:
            try:
                g.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                pass
    raise SystemExit("no free port pair for SeaweedFS")


def _sign(method, url, host, payload=b""):
    """AWS Signature Version 4 headers for one path-style request (enough for PUT bucket)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(payload).hexdigest()
    path = url.split(host, 1)[1] or "/"
    canonical = "\n".join([method, path, "", f"host:{host}", f"x-amz-content-sha256:{payload_hash}",
                           f"x-amz-date:{amz_date}", "", "host;x-amz-content-sha256;x-amz-date",
                           payload_hash])
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{SECRET}".encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"x-amz-date": amz_date, "x-amz-content-sha256": payload_hash,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, "
                             f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"}


class Server:
    def __init__(self, log):
        self.log = log
        self.lock = open(os.path.join(tempfile.gettempdir(), "backstop-seaweedfs.lock"), "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.dir = Path(tempfile.mkdtemp(prefix="backstop-bench-s3-"))
        (self.dir / "s3.json").write_text(
            '{"identities":[{"name":"bench","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
            '"actions":["Admin","Read","List","Tagging","Write"]}]}' % (KEY_ID, SECRET))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with open(self.dir / "weed.log", "wb") as out:
            self.proc = subprocess.Popen(
                [find_weed(), "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 "-master.telemetry=false", f"-s3.port={self.port}", f"-s3.config={self.dir / 's3.json'}",
                 "-s3.autoCreateBucket=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
                 "-s3.port.lance=0", "-volume.preStopSeconds=0"],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self._create_bucket()
        log(f"SeaweedFS on {self.endpoint}, bucket {BUCKET}")

    def _create_bucket(self):
        host = f"127.0.0.1:{self.port}"
        url = f"{self.endpoint}/{BUCKET}"
        t0, last = time.time(), None
        while time.time() - t0 < 60:
            if self.proc.poll() is not None:
                raise SystemExit(f"SeaweedFS exited; see {self.dir / 'weed.log'}")
            req = urllib.request.Request(url, method="PUT", headers=_sign("PUT", url, host))
            try:
                urllib.request.urlopen(req, timeout=5).close()
                return
            except urllib.error.HTTPError as e:
                if e.code == 409:  # BucketAlreadyOwnedByYou
                    return
                last = f"HTTP {e.code}"
            except OSError as e:
                last = str(e)
            time.sleep(0.3)
        raise SystemExit(f"SeaweedFS not ready after 60 s ({last}); see {self.dir / 'weed.log'}")

    def env(self):
        """What both tools read: the endpoint (restic takes it in the repository) and keys."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}

    def stored_bytes(self):
        """Bytes of the server's data directory: the tools run one at a time, so a step's
        difference is what that tool stored (with the server's own small overhead)."""
        data = self.dir / "data"
        return sum(os.lstat(os.path.join(r, f)).st_size for r, _d, fs in os.walk(data) for f in fs)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.lock.close()
