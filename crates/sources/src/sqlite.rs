//! SQLite databases: transactionally consistent captures of a live database, and putting a
//! database back.
//!
//! Capture reads every page through SQLite itself, from the `sqlite_dbpage` virtual table,
//! inside one read transaction: the pages handed out are exactly the database as of that
//! transaction, whatever the journal mode, whatever writers do meanwhile (in WAL mode they go
//! on writing; in rollback-journal mode they wait for our shared lock), and whatever the page
//! size (512 to 65536; the lock-byte page past 1 GiB is returned like any other). Capture is
//! page level, so it never needs to understand the tables: virtual tables and full-text indexes
//! with custom tokenizers are captured like everything else. Nothing is copied to a temporary
//! file: pages stream from SQLite's pager to the engine.
//!
//! `PRAGMA quick_check` runs on a second connection at the same time, so it costs no extra
//! time. It must see the same state as the capture: both transactions are opened between two
//! reads of `PRAGMA data_version` on a third connection, which differ if any other connection
//! committed in between. If one did, both are reopened (a few times); if writers are too busy,
//! the check runs after the capture inside the capture's own transaction.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use backstop_format::manifest::{DatabaseMeta, Item, ItemKind, SourceKind, TableRows};
use rusqlite::{Connection, OpenFlags};

use crate::{Chunking, Entry, Error, Source};

/// Pages sent to the engine per message.
const PAGES_PER_BATCH: usize = 256;
/// How long to wait for a writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to retry opening the two transactions on one state before falling back.
const SAME_STATE_TRIES: usize = 5;

/// Whether `path` starts with the SQLite header.
pub fn is_sqlite_file(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

fn sql_err(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    Error::Invalid(format!("SQLite database {}: {what}: {e}", path.display()))
}

/// Opens a connection that never writes. Read-only connections never checkpoint a WAL on close,
/// so a backup never changes the database (for a WAL database that nothing has open, SQLite
/// may leave an empty `-wal` and a `-shm` file behind, as any reader does).
pub fn open_read_only(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c =
        Connection::open_with_flags(path, flags).map_err(|e| sql_err(path, "cannot open", e))?;
    c.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(path, "setting the busy timeout", e))?;
    Ok(c)
}

/// What a database looks like now (inside the caller's transaction, if any).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inspection {
    pub page_size: u32,
    pub page_count: u64,
    pub journal_mode: String,
    pub user_version: i64,
    pub schema_fingerprint: String,
    pub tables: Vec<TableRows>,
}

/// Reads page size and count, journal mode, user_version, the schema fingerprint and each
/// table's row count.
pub fn inspect(conn: &Connection, path: &Path) -> Result<Inspection, Error> {
    let q = |sql: &str| -> Result<i64, Error> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| sql_err(path, sql, e))
    };
    let page_size = q("PRAGMA page_size")?;
    let page_count = q("PRAGMA page_count")?;
    let user_version = q("PRAGMA user_version")?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| sql_err(path, "PRAGMA journal_mode", e))?;
    let mut hasher = blake3::Hasher::new();
    let mut tables = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
            .map_err(|e| sql_err(path, "reading the schema", e))?;
        let mut rows = st
            .query([])
            .map_err(|e| sql_err(path, "reading the schema", e))?;
        while let Some(r) = rows
            .next()
            .map_err(|e| sql_err(path, "reading the schema", e))?
        {
            let fields: [String; 4] = [
                r.get(0).unwrap_or_default(),
                r.get(1).unwrap_or_default(),
                r.get(2).unwrap_or_default(),
                r.get(3).unwrap_or_default(),
            ];
            for f in &fields {
                hasher.update(&(f.len() as u64).to_le_bytes());
                hasher.update(f.as_bytes());
            }
            if fields[0] == "table" {
                let is_virtual = fields[3]
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("CREATE VIRTUAL");
                tables.push((fields[1].clone(), is_virtual));
            }
        }
    }
    let tables = tables
        .into_iter()
        .map(|(name, is_virtual)| {
            let rows = if is_virtual {
                None
            } else {
                let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
                conn.query_row(&sql, [], |r| r.get::<_, i64>(0))
                    .ok()
                    .map(|n| n as u64)
            };
            TableRows { name, rows }
        })
        .collect();
    Ok(Inspection {
        page_size: u32::try_from(page_size).map_err(|_| Error::Invalid("bad page size".into()))?,
        page_count: page_count as u64,
        journal_mode,
        user_version,
        schema_fingerprint: hasher.finalize().to_hex().to_string(),
        tables,
    })
}

/// Runs a check pragma (`quick_check`, `integrity_check`) and returns `ok` or the problems.
/// A database so damaged that the check itself stops is a result too (the problem, not an
/// error): a damaged database must still be backed up, and a safety snapshot of it taken
/// before it is repaired by a restore.
pub fn run_check(conn: &Connection, _path: &Path, pragma: &str) -> Result<String, Error> {
    let lines: rusqlite::Result<Vec<String>> = conn
        .prepare(&format!("PRAGMA {pragma}"))
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    Ok(match lines {
        Ok(lines) => lines.join("; "),
        Err(e) => format!("{pragma} stopped: {e}"),
    })
}

/// Violations reported by `PRAGMA foreign_key_check` (empty when none).
pub fn foreign_key_violations(conn: &Connection, path: &Path) -> Result<u64, Error> {
    let mut st = conn
        .prepare("PRAGMA foreign_key_check")
        .map_err(|e| sql_err(path, "foreign_key_check", e))?;
    let n = st
        .query_map([], |_| Ok(()))
        .map_err(|e| sql_err(path, "foreign_key_check", e))?
        .count();
    Ok(n as u64)
}

/// Starts a read transaction; its snapshot of the database is fixed by its first read.
fn begin_read(conn: &Connection, path: &Path) -> Result<(), Error> {
    conn.execute_batch("BEGIN")
        .and_then(|()| conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
        .map_err(|e| sql_err(path, "starting a read transaction", e))
}

/// Explains a failure to start reading: a hot journal (a writer stopped in the middle of a
/// transaction) can only be rolled back by a writable connection, and a backup never writes.
fn explain_start(path: &Path, e: Error) -> Error {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    let journal = PathBuf::from(journal);
    if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
        return Error::Invalid(format!(
            "{e}; {} may hold an unfinished transaction (a writer stopped mid-way): open the database once with its application or sqlite3 to roll it back, then back up again",
            journal.display()
        ));
    }
    e
}

fn data_version(conn: &Connection, path: &Path) -> Result<i64, Error> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(|e| sql_err(path, "PRAGMA data_version", e))
}

/// Captures one SQLite database.
pub struct SqliteSource {
    path: PathBuf,
    item_name: String,
    started: bool,
    meta: Option<DatabaseMeta>,
    capture: Option<JoinHandle<Result<Option<String>, Error>>>,
    checker: Option<JoinHandle<Result<String, Error>>>,
    /// Starts (`true`) or cancels (`false`) the checker's quick_check.
    start_check: Option<std::sync::mpsc::Sender<bool>>,
}

impl SqliteSource {
    /// `item_name` is what the database is called in the snapshot (usually its file name).
    pub fn new(path: PathBuf, item_name: String) -> Result<Self, Error> {
        backstop_format::manifest::check_item_path(&item_name)?;
        let abs = std::fs::canonicalize(&path)
            .map_err(|e| Error::io(format!("cannot back up {}", path.display()), e))?;
        if !is_sqlite_file(&abs) {
            return Err(Error::Invalid(format!(
                "{} is not a SQLite database",
                path.display()
            )));
        }
        Ok(Self {
            path: abs,
            item_name,
            started: false,
            meta: None,
            capture: None,
            checker: None,
            start_check: None,
        })
    }

    /// Opens the capture transaction, and the checker's on the same state when possible.
    fn open_transactions(&self) -> Result<(Connection, Option<Connection>), Error> {
        let path = &self.path;
        let sentinel = open_read_only(path)?;
        data_version(&sentinel, path).map_err(|e| explain_start(path, e))?;
        // Like the checker, the sentinel must not wait behind a writer's pending lock while
        // our own capture transaction holds the shared lock that writer waits for.
        let _ = sentinel.busy_timeout(Duration::from_millis(200));
        for _ in 0..SAME_STATE_TRIES {
            let Ok(before) = data_version(&sentinel, path) else {
                break;
            };
            let capture = open_read_only(path)?;
            begin_read(&capture, path)?;
            // In rollback-journal mode a writer waiting for our shared lock to go away holds a
            // pending lock that refuses new readers; the checker must not wait for it (the
            // writer waits for us), so it gives up quickly and the check runs in the capture's
            // own transaction instead.
            let checker = open_read_only(path)?;
            let _ = checker.busy_timeout(Duration::from_millis(200));
            if begin_read(&checker, path).is_err() {
                return Ok((capture, None));
            }
            match data_version(&sentinel, path) {
                Ok(after) if after == before => return Ok((capture, Some(checker))),
                Ok(_) => {}
                // Busy behind a writer: check in the capture's own transaction instead.
                Err(_) => return Ok((capture, None)),
            }
        }
        let capture = open_read_only(path)?;
        begin_read(&capture, path)?;
        Ok((capture, None))
    }
}

/// Streams all pages of the capture transaction into `tx`, then (without a checker) runs the
/// quick check in the same transaction.
fn stream_pages(
    conn: Connection,
    path: PathBuf,
    page_size: usize,
    page_count: u64,
    tx: SyncSender<io::Result<Vec<u8>>>,
    check_here: bool,
) -> Result<Option<String>, Error> {
    let mut st = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage('main')")
        .map_err(|e| {
            sql_err(
                &path,
                "reading pages (this build of backstop needs SQLite with SQLITE_ENABLE_DBPAGE_VTAB)",
                e,
            )
        })?;
    let mut rows = st
        .query([])
        .map_err(|e| sql_err(&path, "reading pages", e))?;
    let mut batch = Vec::with_capacity(PAGES_PER_BATCH * page_size);
    let mut expected = 1u64;
    while let Some(r) = rows
        .next()
        .map_err(|e| sql_err(&path, "reading pages", e))?
    {
        let pgno: i64 = r.get(0).map_err(|e| sql_err(&path, "reading pages", e))?;
        let data = r
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(|e| sql_err(&path, "reading pages", e))?;
        if pgno as u64 != expected || data.len() != page_size {
            return Err(Error::Invalid(format!(
                "SQLite database {}: page {pgno} came out of order or with {} bytes",
                path.display(),
                data.len()
            )));
        }
        expected += 1;
        batch.extend_from_slice(data);
        if batch.len() >= PAGES_PER_BATCH * page_size {
            let full =
                std::mem::replace(&mut batch, Vec::with_capacity(PAGES_PER_BATCH * page_size));
            if tx.send(Ok(full)).is_err() {
                return Ok(None); // the engine stopped reading: it reports its own error
            }
        }
    }
    if expected - 1 != page_count {
        return Err(Error::Invalid(format!(
            "SQLite database {}: {} pages read, {page_count} expected",
            path.display(),
            expected - 1
        )));
    }
    if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
        return Ok(None);
    }
    drop(tx);
    drop(rows);
    drop(st);
    let check = if check_here {
        Some(run_check(&conn, &path, "quick_check")?)
    } else {
        None
    };
    // Ending a read transaction cannot lose anything; on a damaged database SQLite may still
    // report the damage here, which the check above has recorded.
    let _ = conn.execute_batch("COMMIT");
    Ok(check)
}

/// The page stream as a reader.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The capture thread ended: its result (an error, if any) comes out in
                // `Source::complete`.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Source for SqliteSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }

    fn describe(&self) -> Vec<String> {
        vec![self.path.display().to_string()]
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        let md = std::fs::metadata(&self.path)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        let (capture, checker) = self.open_transactions()?;
        let info = inspect(&capture, &self.path)?;
        if !(512..=65536).contains(&info.page_size) || !info.page_size.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "{}: unsupported page size {}",
                self.path.display(),
                info.page_size
            )));
        }
        let check_here = checker.is_none();
        let mut on_change: Option<Box<dyn FnOnce() + Send>> = None;
        if let Some(conn) = checker {
            // The checker's transaction is open on the captured state; its check runs once the
            // engine says the content changed (an unchanged database keeps its last result).
            // The first message decides: `true` runs the check, `false` cancels it.
            let (go, wait) = std::sync::mpsc::channel::<bool>();
            let path = self.path.clone();
            self.checker = Some(std::thread::spawn(move || {
                let r = match wait.recv() {
                    Ok(true) => run_check(&conn, &path, "quick_check"),
                    _ => Ok(String::new()),
                };
                let _ = conn.execute_batch("COMMIT");
                r
            }));
            let signal = go.clone();
            on_change = Some(Box::new(move || {
                let _ = signal.send(true);
            }));
            self.start_check = Some(go);
        }
        let (tx, rx) = sync_channel(2);
        let (path, ps, pc) = (self.path.clone(), info.page_size as usize, info.page_count);
        self.capture = Some(std::thread::spawn(move || {
            stream_pages(capture, path, ps, pc, tx, check_here)
        }));
        let mut item =
            crate::files::item_from_metadata(self.item_name.clone(), ItemKind::Sqlite, &md);
        item.size = info.page_count * u64::from(info.page_size);
        self.meta = Some(DatabaseMeta {
            page_size: info.page_size,
            page_count: info.page_count,
            journal_mode: info.journal_mode,
            user_version: info.user_version,
            schema_fingerprint: info.schema_fingerprint,
            tables: info.tables,
            quick_check: String::new(),
            source_path: self.path.display().to_string(),
        });
        Ok(Some(Entry {
            item,
            content: Some(Box::new(ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            })),
            chunking: Chunking::Fixed(info.page_size),
            required: true,
            reuse_unchanged: false,
            on_change,
        }))
    }

    fn complete(&mut self, item: &mut Item, previous: Option<&Item>) -> Result<(), Error> {
        let in_txn = match self.capture.take() {
            Some(h) => joined(h)?,
            None => None,
        };
        // The same image as last time: its check result still holds, so the running check is
        // stopped rather than waited for (this is what makes an unchanged database cheap).
        let unchanged = previous.and_then(|p| {
            let same =
                p.content.as_ref().map(|c| &c.hash) == item.content.as_ref().map(|c| &c.hash);
            p.database
                .as_ref()
                .filter(|_| same && p.kind == ItemKind::Sqlite)
        });
        if let (Some(prev), None) = (unchanged, &in_txn) {
            // Cancels the check if it has not started; if it has, wait for it and use it.
            if let Some(go) = self.start_check.take() {
                let _ = go.send(false);
            }
            let fresh = match self.checker.take() {
                Some(h) => joined(h)?,
                None => String::new(),
            };
            let mut meta = self
                .meta
                .take()
                .ok_or_else(|| Error::Invalid("capture not started".into()))?;
            meta.quick_check = if fresh.is_empty() {
                prev.quick_check.clone()
            } else {
                fresh
            };
            item.database = Some(meta);
            return Ok(());
        }
        // Changed content: make sure the check runs even if the engine did not say so.
        if let Some(go) = self.start_check.take() {
            let _ = go.send(true);
        }
        let check = match (in_txn, self.checker.take()) {
            (Some(c), _) => c,
            (None, Some(h)) => joined(h)?,
            (None, None) => return Err(Error::Invalid("the capture was not completed".into())),
        };
        let mut meta = self
            .meta
            .take()
            .ok_or_else(|| Error::Invalid("capture not started".into()))?;
        meta.quick_check = check;
        item.database = Some(meta);
        Ok(())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

fn joined<T>(h: JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    h.join()
        .unwrap_or_else(|_| Err(Error::Invalid("the SQLite capture thread panicked".into())))
}

/// Copies the database at `image` into the live database at `live` through SQLite's backup
/// API, in a single step: SQLite writes it as one transaction, so connections that have the
/// database open see the old content or the new, never a mix, and the live database's WAL and
/// shared-memory files are handled by SQLite (stale WAL content cannot leak in).
pub fn replace_live(live: &Path, image: &Path) -> Result<(), Error> {
    // Opened as immutable: only the image file itself is read, never a -wal beside it.
    let src = open_image(image)?;
    let mut dst = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| sql_err(live, "cannot open the live database", e))?;
    dst.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(live, "busy timeout", e))?;
    // The backup API cannot change the page size of a database in WAL mode. When no other
    // connection has it open, leave WAL mode for the copy and return to it afterwards.
    let page_size = |c: &Connection| c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0));
    let mode: String = dst
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| sql_err(live, "reading the journal mode", e))?;
    let resize = mode == "wal"
        && page_size(&src).map_err(|e| sql_err(image, "page size", e))?
            != page_size(&dst).map_err(|e| sql_err(live, "page size", e))?;
    if resize {
        dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get::<_, String>(0))
            .ok()
            .filter(|m| m == "delete")
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the live database {} is in WAL mode with another page size than the snapshot's, and SQLite can change that only while no other connection has it open: stop the application and restore again, or restore with --to into a new file",
                    live.display()
                ))
            })?;
    }
    let copied = copy_all(&src, &mut dst, live);
    if resize {
        let _ = dst.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
    }
    copied
}

/// Copies every page of `src` into `dst` in one step, waiting while other connections hold
/// locks.
fn copy_all(src: &Connection, dst: &mut Connection, live: &Path) -> Result<(), Error> {
    let backup = rusqlite::backup::Backup::new(src, dst)
        .map_err(|e| sql_err(live, "starting the copy", e))?;
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match backup
            .step(-1)
            .map_err(|e| sql_err(live, "copying pages", e))?
        {
            rusqlite::backup::StepResult::Done => return Ok(()),
            rusqlite::backup::StepResult::More => continue,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "the live database {} stayed locked by other connections for {} s; nothing was changed",
                    live.display(),
                    BUSY_TIMEOUT.as_secs()
                )));
            }
        }
    }
}

pub use backstop_format::record::Check;

/// A URI that opens `path` as an immutable file: no locks, no `-wal` or `-shm` created, the
/// image is read exactly as it is.
fn immutable_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let s = abs.to_string_lossy().replace('\\', "/");
    let mut out = String::from("file:");
    if !s.starts_with('/') {
        out.push('/');
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?immutable=1");
    out
}

/// Opens a database file read-only as immutable (for checking a restored image).
pub fn open_image(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(immutable_uri(path), flags)
        .map_err(|e| sql_err(path, "cannot open", e))
}

/// Checks a database file against the metadata captured with it.
pub fn check_image(
    path: &Path,
    meta: &DatabaseMeta,
    full: bool,
    foreign_keys: bool,
) -> Result<Vec<Check>, Error> {
    let conn = open_image(path)?;
    let now = inspect(&conn, path)?;
    let mut checks = Vec::new();
    let mut add = |name: &str, passed: bool, detail: String| {
        checks.push(Check {
            name: name.into(),
            passed,
            detail,
        })
    };
    add(
        "pages",
        now.page_size == meta.page_size && now.page_count == meta.page_count,
        format!("{} pages of {} bytes", now.page_count, now.page_size),
    );
    add(
        "schema",
        now.schema_fingerprint == meta.schema_fingerprint && now.user_version == meta.user_version,
        format!(
            "fingerprint {}, user_version {}",
            &now.schema_fingerprint[..16],
            now.user_version
        ),
    );
    let mismatched: Vec<String> = meta
        .tables
        .iter()
        .filter(|t| now.tables.iter().find(|n| n.name == t.name).map(|n| n.rows) != Some(t.rows))
        .map(|t| t.name.clone())
        .collect();
    add(
        "row counts",
        mismatched.is_empty(),
        if mismatched.is_empty() {
            format!("{} tables as captured", meta.tables.len())
        } else {
            format!("differ in {}", mismatched.join(", "))
        },
    );
    if full {
        let r = run_check(&conn, path, "integrity_check")?;
        add("integrity_check", r == "ok", r);
    } else {
        add(
            "quick_check at capture",
            meta.is_healthy(),
            meta.quick_check.clone(),
        );
    }
    if foreign_keys {
        let n = foreign_key_violations(&conn, path)?;
        add("foreign_key_check", n == 0, format!("{n} violation(s)"));
    }
    Ok(checks)
}
