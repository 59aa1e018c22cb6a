//! Helpers shared by the end-to-end tests: running the `backstop` binary in a sandbox, making
//! test data, and comparing a restored tree with its source.
//!
//! Each test file includes this module and uses a different subset of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("backstop")
}

/// A `backstop` command that sees none of the caller's BACKSTOP_* variables and runs in `cwd`
/// (so no stray ./backstop.toml or ./backstop-repo is picked up).
pub fn command_in(cwd: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(cwd)
        .env_remove("BACKSTOP_REPO")
        .env_remove("BACKSTOP_PASSWORD")
        .env_remove("BACKSTOP_PASSWORD_FILE")
        .stdin(Stdio::null());
    c
}

/// The result of one run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from_output(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs a prepared command to completion.
pub fn run(mut c: Command) -> Out {
    Out::from_output(c.output().expect("running backstop"))
}

/// A scratch directory (the working directory of every command) holding a repository.
pub struct Sandbox {
    pub tmp: TempDir,
    pub repo: PathBuf,
    /// Passed as BACKSTOP_PASSWORD when set.
    pub password: Option<String>,
    /// Passed as --password-file when set.
    pub password_file: Option<PathBuf>,
}

impl Sandbox {
    /// An empty sandbox; the repository is not created.
    pub fn empty() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("backstop-e2e-")
            .tempdir()
            .expect("tempdir");
        let repo = tmp.path().join("repo");
        Self {
            tmp,
            repo,
            password: None,
            password_file: None,
        }
    }

    /// A sandbox with an unencrypted repository.
    pub fn plain() -> Self {
        let s = Self::empty();
        s.run(&["init", "--encryption", "none"]).ok();
        s
    }

    /// A sandbox with a repository encrypted under `password` (given as BACKSTOP_PASSWORD).
    pub fn encrypted(password: &str) -> Self {
        let mut s = Self::empty();
        s.password = Some(password.to_string());
        s.run(&["init", "--encryption", "passphrase"]).ok();
        s
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A path inside the sandbox.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A command with neither --repo nor a passphrase.
    pub fn bare(&self) -> Command {
        command_in(self.path())
    }

    /// A command for this sandbox's repository.
    pub fn cmd(&self) -> Command {
        let mut c = self.bare();
        c.arg("--repo").arg(&self.repo);
        if let Some(p) = &self.password {
            c.env("BACKSTOP_PASSWORD", p);
        }
        if let Some(f) = &self.password_file {
            c.arg("--password-file").arg(f);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run(c)
    }

    /// Runs with --json, asserts success and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut c = self.cmd();
        c.arg("--json").args(args);
        run(c).ok().json()
    }

    /// `backup --json` of paths with extra arguments; asserts success.
    #[track_caller]
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let mut c = self.cmd();
        c.arg("--json").arg("backup").args(paths).args(extra);
        run(c).ok().json()
    }

    pub fn snapshots(&self) -> Vec<Value> {
        self.json(&["snapshots"])
            .as_array()
            .expect("snapshots --json is an array")
            .clone()
    }

    /// `restore SPEC --to DIR`, asserting success.
    #[track_caller]
    pub fn restore(&self, spec: &str, to: &Path) {
        let mut c = self.cmd();
        c.arg("restore").arg(spec).arg("--to").arg(to);
        run(c).ok();
    }

    /// `verify [--read-data] --json`: exit code and report.
    pub fn verify(&self, read_data: bool) -> (i32, Value) {
        let mut c = self.cmd();
        c.arg("--json").arg("verify");
        if read_data {
            c.arg("--read-data");
        }
        let o = run(c);
        assert!(
            o.code == 0 || o.code == 4,
            "verify must exit 0 or 4, got {o:#?}"
        );
        let v = o.json();
        (o.code, v)
    }

    /// Asserts `verify --read-data` finds nothing wrong.
    #[track_caller]
    pub fn assert_clean(&self) {
        let (code, v) = self.verify(true);
        assert_eq!(code, 0, "verify --read-data: {v:#}");
        assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v:#}");
        assert_eq!(v["read_data"], true);
    }
}

/// The number of regular files under `dir` (recursively), or 0 if it does not exist.
pub fn count_files(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| e.expect("dir entry"))
        .map(|e| {
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                count_files(&e.path())
            } else {
                usize::from(ft.is_file())
            }
        })
        .sum()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let e = e.expect("dir entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                out.extend(files_under(&e.path()));
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The pack files of a local repository, largest first.
pub fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut v = files_under(&repo.join("data"));
    v.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).expect("pack metadata").len()));
    v
}

// ---------------------------------------------------------------------------------------------
// Test data

/// A small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// `n` incompressible pseudo-random bytes.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    Rng::new(seed).fill(&mut v);
    v
}

/// `n` bytes that compress to roughly half: runs of random blocks and of repetitive CSV-like
/// text, in a pseudo-random order.
pub fn compressible(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(n + 8192);
    while v.len() < n {
        if r.below(2) == 0 {
            let start = v.len();
            v.resize(start + 4096, 0);
            r.fill(&mut v[start..]);
        } else {
            let line = format!(
                "{},customer-{},{}.{:02},EUR,shipped\n",
                r.below(1_000_000),
                r.below(1000),
                r.below(100_000),
                r.below(100)
            );
            for _ in 0..(4096 / line.len()) {
                v.extend_from_slice(line.as_bytes());
            }
        }
    }
    v.truncate(n);
    v
}

/// Shared test data: `../../../shared/testdata` from this crate.
pub fn testdata(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(rel);
    assert!(
        p.exists(),
        "test data {} is missing (shared/testdata must sit beside the repository)",
        p.display()
    );
    p
}

/// A fixed time in the past, `days` days after 2021-01-01, for mtimes.
pub fn past(days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_609_459_200 + days * 86_400 + days * 3_607)
}

/// Sets the modification time of a file or directory (not following a symlink's target is not
/// needed: only files and directories are given).
pub fn set_mtime(p: &Path, t: SystemTime) {
    let f = if p.is_dir() {
        fs::File::open(p)
    } else {
        fs::File::options().write(true).open(p)
    }
    .unwrap_or_else(|e| panic!("opening {}: {e}", p.display()));
    f.set_modified(t)
        .unwrap_or_else(|e| panic!("setting mtime of {}: {e}", p.display()));
}

pub fn blake3_file(p: &Path) -> String {
    blake3::hash(&fs::read(p).expect("reading file"))
        .to_hex()
        .to_string()
}

fn mtime_secs(md: &fs::Metadata) -> u64 {
    md.modified()
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[cfg(unix)]
fn mode(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

/// Asserts that `restored` is an exact copy of `src`: same entries, same bytes, same symlink
/// targets, and (on Unix) same permission bits; modification times equal to the second for
/// files and directories. Special files in `src` (sockets) are expected to be absent.
#[track_caller]
pub fn assert_same_tree(src: &Path, restored: &Path) {
    let s = fs::symlink_metadata(src).expect("source metadata");
    let r = fs::symlink_metadata(restored)
        .unwrap_or_else(|e| panic!("{} was not restored: {e}", restored.display()));
    let what = src.display();
    if s.file_type().is_symlink() {
        assert!(
            r.file_type().is_symlink(),
            "{what}: not restored as a symlink"
        );
        assert_eq!(
            fs::read_link(src).unwrap(),
            fs::read_link(restored).unwrap(),
            "{what}: symlink target"
        );
        return;
    }
    if s.is_dir() {
        assert!(r.is_dir(), "{what}: not restored as a directory");
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| {
                    let ft = e.file_type().unwrap();
                    ft.is_dir() || ft.is_file() || ft.is_symlink()
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let (sn, rn) = (names(src), names(restored));
        let all_rn: usize = fs::read_dir(restored).unwrap().count();
        assert_eq!(sn, rn, "{what}: directory entries");
        assert_eq!(all_rn, rn.len(), "{what}: extra entries in the restore");
        for n in &sn {
            assert_same_tree(&src.join(n), &restored.join(n));
        }
    } else {
        assert!(r.is_file(), "{what}: not restored as a file");
        let (a, b) = (fs::read(src).unwrap(), fs::read(restored).unwrap());
        assert!(
            a == b,
            "{what}: content differs ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
    // Directory times are checked after the children were read (reading does not change them).
    assert_eq!(mtime_secs(&s), mtime_secs(&r), "{what}: mtime");
    #[cfg(unix)]
    assert_eq!(mode(&s), mode(&r), "{what}: permission bits");
}

/// Builds a varied tree under `root` (created): nested directories, an empty file, a 3 MB
/// pseudo-random file, a copy of chinook.sqlite, and on Unix a symlink, a 0o640 file and a
/// 0o750 directory. Every file and directory gets a distinct modification time in the past.
pub fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/nested/deep")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("docs/a.txt"), "alpha\n").unwrap();
    fs::write(root.join("docs/nested/b.txt"), "bravo bravo\n".repeat(100)).unwrap();
    fs::write(
        root.join("docs/nested/deep/c.csv"),
        "id,name\n1,ann\n2,bob\n",
    )
    .unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("big.bin"), random_bytes(7, 3_000_000)).unwrap();
    fs::copy(
        testdata("sqlite/chinook.sqlite"),
        root.join("chinook.sqlite"),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink("docs/a.txt", root.join("link-to-a")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
        fs::write(root.join("secret.txt"), "payroll\n").unwrap();
        fs::set_permissions(root.join("secret.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(root.join("docs/nested"), fs::Permissions::from_mode(0o750)).unwrap();
    }
    // Files first, then directories from the deepest up, so that setting a time is not undone
    // by a later change inside the directory.
    let mut day = 0;
    for f in files_under(root) {
        day += 1;
        set_mtime(&f, past(day));
    }
    for d in ["docs/nested/deep", "docs/nested", "docs", "empty-dir", ""] {
        day += 1;
        set_mtime(&root.join(d), past(day));
    }
}

/// Runs `sqlite3 DB ARGS...`, asserts success and returns the trimmed standard output.
#[track_caller]
pub fn sqlite3(db: &Path, args: &[&str]) -> String {
    let o = Command::new("sqlite3")
        .arg("-batch")
        .arg("-bail")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running sqlite3 (apt-get install -y sqlite3)");
    assert!(
        o.status.success(),
        "sqlite3 {} {args:?} failed: {}",
        db.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Runs one SQL text on `db`.
#[track_caller]
pub fn sql(db: &Path, sql: &str) -> String {
    sqlite3(db, &[sql])
}

/// One source of a `status --json` report.
#[track_caller]
pub fn status_source<'v>(report: &'v Value, name: &str) -> &'v Value {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {report:#}"))
}

/// `source`'s entry in the status of the daemon at `listen` (read with `token`) once it has a
/// passed restore drill; fails the test after 90 s without one.
pub fn drilled_status(listen: &str, token: &str, source: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        if let Some((200, body)) = get(&format!("http://{listen}/api/v1/status"), token) {
            let v: Value = serde_json::from_str(&body).unwrap();
            let entry = status_source(&v, source).clone();
            if !entry["verified"].is_null() {
                return entry;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no drill within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The scratch database a server drill's record names (`loaded into NAME on the ... server`).
pub fn scratch_database(record: &Value) -> String {
    let detail = record["checks"][0]["detail"].as_str().unwrap();
    let name = detail.split_whitespace().nth(2).unwrap();
    assert!(name.starts_with("backstop_drill_"), "{detail}");
    name.to_owned()
}

/// A drill's record's check `name` (its `name`, `passed` and `detail`).
#[track_caller]
pub fn check_named(record: &Value, name: &str) -> Value {
    record["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no check {name}: {record:#}"))
}

/// Whether a drill's record has the check `name`, passed.
pub fn passed_check(record: &Value, name: &str) -> bool {
    record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == name && c["passed"] == true)
}

/// Runs `add` (`user add ada --role ROLE` with its config), typing the password `correct horse
/// battery`, and asserts it succeeded.
pub fn add_web_user(mut add: Command) {
    add.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"correct horse battery\n").unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());
}

/// A free port on 127.0.0.1 (for a daemon's `--listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the daemon if the test fails half-way.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GET with a bearer token: the status and the body, `None` if nothing answered.
pub fn get(url: &str, token: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut r = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .ok()?;
    Some((r.status().as_u16(), r.body_mut().read_to_string().ok()?))
}
