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
//! file: pages stream from SQLite's pager to the engine, in buffers the engine takes over as
//! they are. The entry's capture handle (`capture`) keeps the transaction open until the item
//! is complete, so that the engine can ask for the same pages a second time
//! (`Capture::read_again`): it first only hashes a database that looks unchanged (same size and
//! modification time, no newer WAL), and stores it page by page only if the hash shows it did
//! change after all.
//!
//! The integrity check runs on the pages as they stream (`check`): backstop's own check, as
//! strict as `PRAGMA quick_check` and a fraction of its cost, for the databases whose rules it
//! knows; if it finds anything, `PRAGMA quick_check` runs in the capture's transaction and its
//! words are recorded. Other databases (virtual tables, WITHOUT ROWID, STRICT, CHECK
//! constraints, ...) get `PRAGMA quick_check` on a second connection at the same time as the
//! capture. That check must see the same state as the capture: both transactions are opened
//! between two reads of `PRAGMA data_version` on a third connection, which differ if any other
//! connection committed in between. If one did, both are reopened (a few times); if writers are
//! too busy, the check runs after the capture inside the capture's own transaction.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel};
use std::time::Duration;

use backstop_format::manifest::{DatabaseMeta, ItemKind, NotCheckable, SourceKind, TableRows};
use rusqlite::Connection;

use crate::{Entry, EntryContent, Error, OnChange, ScratchOptions, Source};

mod capture;
mod check;
pub mod compare;
mod inspect;
mod limits;
mod replace;

use capture::{PageStream, RulesHandle, Running, SqliteCapture};
use check::{Checker, Plan};
pub use check::{native_check, native_check_with};
pub use inspect::*;
pub use limits::{Verdict, check_with_limits, describe_not_checkable};
pub use replace::replace_live;

/// Bytes of pages sent to the engine per message (rounded down to whole pages); every message
/// becomes one of the engine's batches as it is. Half the engine's own read batch: a backup
/// holds about four of these at once (capture, reader, lookup, sealer), and 1 MiB keeps that
/// at 4 MiB without costing speed (measured on a 1.2 GiB database; see bench/README.md).
const BATCH_BYTES: usize = 1 << 20;
/// Pages SQLite caches while the capture scans the database (see `stream_pages`).
const SCAN_CACHE_PAGES: i64 = 16;
/// How long to wait for a writer's lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to retry opening the two transactions on one state before falling back.
const SAME_STATE_TRIES: usize = 5;

/// One reading of all pages: where the pages go, and where buffers the reader is done with
/// come back to be filled again.
type Pass = (SyncSender<io::Result<Vec<u8>>>, Receiver<Vec<u8>>);

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
    scratch: ScratchOptions,
    /// Validation rules run on the captured state (see [`Source::use_rules`]).
    rules: Vec<crate::rules::Rule>,
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
            scratch: ScratchOptions::default(),
            rules: Vec::new(),
        })
    }

    /// Opens the capture transaction, and the checker's on the same state when possible.
    /// Opens the capture transaction with the plan of backstop's own check, or, for a database
    /// outside that check's rules, with the checker's transaction on the same state if it can.
    fn open_transactions(&self) -> Result<(Connection, Option<Plan>, Option<Connection>), Error> {
        let path = &self.path;
        let capture = open_read_only(path)?;
        begin_read(&capture, path).map_err(|e| explain_start(path, e))?;
        if let Some(plan) = Plan::read(&capture, path) {
            return Ok((capture, Some(plan), None));
        }
        drop(capture);
        let (capture, checker) = self.open_same_state()?;
        Ok((capture, None, checker))
    }

    /// Opens the capture transaction, and the checker's on the same state when possible.
    fn open_same_state(&self) -> Result<(Connection, Option<Connection>), Error> {
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

/// Streams all pages of the capture transaction through `first`, and again through every
/// further pass asked for on `again` (the same transaction, so the same bytes) until its
/// sender is dropped; then (without a checker) runs the quick check in the same transaction,
/// and the source's validation rules when `complete` asks for them.
fn stream_pages(
    conn: Connection,
    path: PathBuf,
    page_size: usize,
    page_count: u64,
    (first, again): (Pass, Receiver<Pass>),
    checking: Checking,
    rules: Option<RulesRun>,
) -> Result<Option<Checked>, Error> {
    // The scan reads each page once, so SQLite's page cache buys nothing here, and at its
    // default size (2 MB) every buffer it recycles has left the processor's cache by then: with
    // a small cache the scan costs 15 to 30 % less CPU. A check that runs in this transaction
    // afterwards gets the usual cache back.
    let cache_size: Option<i64> = conn
        .pragma_query_value(None, "cache_size", |r| r.get(0))
        .ok();
    let _ = conn.pragma_update(None, "cache_size", SCAN_CACHE_PAGES);
    let mut pass = Some(first);
    let mut checked = None;
    while let Some((tx, free)) = pass.take() {
        let mut checker = match &checking {
            Checking::Native {
                plan,
                wanted,
                scratch,
                ..
            } if wanted.load(Ordering::Relaxed) => Some((
                Checker::new(plan.clone(), page_count, scratch),
                wanted.clone(),
            )),
            _ => None,
        };
        if !scan_pages(
            &conn,
            &path,
            page_size,
            page_count,
            &tx,
            &free,
            &mut checker,
        )? {
            // The engine stopped reading (it reports its own error): this capture must never
            // complete an item.
            return Err(Error::Invalid(format!(
                "SQLite database {}: the page stream was not read to its end",
                path.display()
            )));
        }
        drop(tx);
        checked = checker.map(|(c, _)| c).or(checked);
        pass = again.recv().ok();
    }
    if let Some(n) = cache_size {
        let _ = conn.pragma_update(None, "cache_size", n);
    }
    let check = match (checking, checked) {
        (Checking::Native { tables, .. }, Some(checker)) => {
            Some(native_verdict(&conn, &path, checker, tables)?)
        }
        (Checking::Native { .. }, None) | (Checking::Elsewhere, _) => None,
        (Checking::Here(tables), _) => Some(check_and_count(&conn, &path, tables)?),
    };
    // Ending a read transaction cannot lose anything; on a damaged database SQLite may still
    // report the damage here, which the check above has recorded.
    if let Some(r) = rules
        && r.go.recv() == Ok(true)
    {
        let _ = r
            .done
            .send(crate::rules::run_in_transaction(&conn, &r.rules));
    }
    let _ = conn.execute_batch("COMMIT");
    Ok(check)
}

/// The capture thread's end of the validation rules (see `capture::RulesHandle`).
struct RulesRun {
    rules: Vec<crate::rules::Rule>,
    go: Receiver<bool>,
    done: Sender<Vec<crate::rules::RuleResult>>,
}

/// The two ends of a run of `rules` at capture, when there are any.
fn rules_at_capture(rules: &[crate::rules::Rule]) -> (Option<RulesRun>, Option<RulesHandle>) {
    if rules.is_empty() {
        return (None, None);
    }
    let (go_tx, go) = channel();
    let (done, done_rx) = channel();
    let run = RulesRun {
        rules: rules.to_vec(),
        go,
        done,
    };
    let handle = RulesHandle {
        fingerprint: crate::rules::fingerprint(rules),
        go: go_tx,
        done: done_rx,
    };
    (Some(run), Some(handle))
}

/// Calls `f` with every page of the read transaction on `conn`, in order from 1, checking that
/// each has `page_size` bytes and that there are `page_count` of them. Stops early (returning
/// false) when `f` does.
fn each_page(
    conn: &Connection,
    path: &Path,
    page_size: usize,
    page_count: u64,
    mut f: impl FnMut(u32, &[u8]) -> bool,
) -> Result<bool, Error> {
    let mut st = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage('main')")
        .map_err(|e| {
            sql_err(
                path,
                "reading pages (this build of backstop needs SQLite with SQLITE_ENABLE_DBPAGE_VTAB)",
                e,
            )
        })?;
    let mut rows = st
        .query([])
        .map_err(|e| sql_err(path, "reading pages", e))?;
    let mut expected = 1u64;
    while let Some(r) = rows.next().map_err(|e| sql_err(path, "reading pages", e))? {
        let pgno: i64 = r.get(0).map_err(|e| sql_err(path, "reading pages", e))?;
        let data = r
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(|e| sql_err(path, "reading pages", e))?;
        if pgno as u64 != expected || data.len() != page_size {
            return Err(Error::Invalid(format!(
                "SQLite database {}: page {pgno} came out of order or with {} bytes",
                path.display(),
                data.len()
            )));
        }
        expected += 1;
        if !f(pgno as u32, data) {
            return Ok(false);
        }
    }
    if expected - 1 != page_count {
        return Err(Error::Invalid(format!(
            "SQLite database {}: {} pages read, {page_count} expected",
            path.display(),
            expected - 1
        )));
    }
    Ok(true)
}

/// Sends every page, in order, in buffers of about [`BATCH_BYTES`], reusing the buffers that
/// come back on `free`, and shows each to the checker if there is one. False if the receiver
/// went away.
fn scan_pages(
    conn: &Connection,
    path: &Path,
    page_size: usize,
    page_count: u64,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
    checker: &mut Option<(Checker, Arc<AtomicBool>)>,
) -> Result<bool, Error> {
    let batch_bytes = (BATCH_BYTES / page_size).max(1) * page_size;
    let mut batch = Vec::with_capacity(batch_bytes);
    let sent = each_page(conn, path, page_size, page_count, |pgno, data| {
        if let Some((c, _)) = checker {
            c.page(pgno, data);
        }
        batch.extend_from_slice(data);
        if batch.len() < batch_bytes {
            return true;
        }
        // The engine may have decided meanwhile that this pass only hashes.
        if checker
            .as_ref()
            .is_some_and(|(_, w)| !w.load(Ordering::Relaxed))
        {
            *checker = None;
        }
        if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
            return false;
        }
        // A buffer the reader is done with, if there is one yet; looked for only after the
        // send, which may have waited for the reader to hand one back.
        batch = match free.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(batch_bytes),
        };
        true
    })?;
    Ok(sent && (batch.is_empty() || tx.send(Ok(batch)).is_ok()))
}

/// Tables to count: all of them, and those not to count (virtual tables).
type Tables = (Vec<TableRows>, Vec<String>);
/// The result of `PRAGMA quick_check`, each table's row count, and the tables it could not
/// check.
type Checked = (String, Vec<TableRows>, Vec<NotCheckable>);

/// How a capture checks the database.
enum Checking {
    /// backstop's own check (`check`), on the pages of every pass it is `wanted` for when the
    /// pass starts (the engine clears it for a pass that only hashes).
    Native {
        plan: Plan,
        wanted: Arc<AtomicBool>,
        tables: Tables,
        scratch: ScratchOptions,
    },
    /// `PRAGMA quick_check` in the capture's transaction, after the capture.
    Here(Tables),
    /// `PRAGMA quick_check` on the checker connection.
    Elsewhere,
}

/// The verdict of backstop's own check, with row counts; if it found anything, SQLite's
/// `PRAGMA quick_check` decides and words the result (see `check`).
fn native_verdict(
    conn: &Connection,
    path: &Path,
    checker: Checker,
    (mut tables, skip): Tables,
) -> Result<Checked, Error> {
    let (problems, counts) = checker.finish(conn);
    if !problems.is_empty() {
        return check_and_count(conn, path, (tables, skip));
    }
    for t in &mut tables {
        t.rows = counts.get(&t.name).copied();
    }
    Ok(("ok".into(), tables, Vec::new()))
}

/// Runs the quick check and counts rows, inside the caller's transaction.
fn check_and_count(
    conn: &Connection,
    path: &Path,
    (mut tables, skip): Tables,
) -> Result<Checked, Error> {
    let check = check_with_limits(conn, path, "quick_check")?;
    count_rows(conn, &mut tables, &skip);
    Ok((check.result, tables, check.not_checkable))
}

/// How a capture is checked, and the handles its [`SqliteCapture`] keeps on the check.
struct CheckSetup {
    checking: Checking,
    checker: Option<Running>,
    start_check: Option<Sender<bool>>,
    on_change: Option<OnChange>,
    check_pass: Option<Arc<AtomicBool>>,
}

impl CheckSetup {
    /// backstop's own check with `plan`; else `PRAGMA quick_check` on `checker`, a transaction
    /// on the captured state, when there is one; else in the capture's own transaction.
    fn start(
        path: &Path,
        plan: Option<Plan>,
        checker: Option<Connection>,
        tables: Tables,
        scratch: &ScratchOptions,
    ) -> Result<Self, Error> {
        let in_capture = |checking, check_pass| Self {
            checking,
            checker: None,
            start_check: None,
            on_change: None,
            check_pass,
        };
        if let Some(plan) = plan {
            // Checked on the captured pages themselves: no checker connection.
            let wanted = Arc::new(AtomicBool::new(true));
            let checking = Checking::Native {
                plan,
                wanted: wanted.clone(),
                tables,
                scratch: scratch.clone(),
            };
            return Ok(in_capture(checking, Some(wanted)));
        }
        let Some(conn) = checker else {
            return Ok(in_capture(Checking::Here(tables), None));
        };
        // The checker's transaction is open on the captured state; its check runs once the
        // engine says the content changed (an unchanged database keeps its last result). The
        // first message decides: `true` runs the check, `false` cancels it.
        let (go, wait) = channel::<bool>();
        let path = path.to_path_buf();
        let checker = std::thread::Builder::new()
            .name("sqlite-check".into())
            .spawn(move || {
                let r = match wait.recv() {
                    Ok(true) => check_and_count(&conn, &path, tables).map(Some),
                    _ => Ok(None),
                };
                let _ = conn.execute_batch("COMMIT");
                r
            })
            .map_err(|e| Error::io("starting the check thread", e))?;
        let signal = go.clone();
        Ok(Self {
            checking: Checking::Elsewhere,
            checker: Some(checker),
            start_check: Some(go),
            on_change: Some(Box::new(move || {
                let _ = signal.send(true);
            })),
            check_pass: None,
        })
    }
}

impl Source for SqliteSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }

    fn describe(&self) -> Vec<String> {
        vec![self.path.display().to_string()]
    }

    fn use_scratch(&mut self, scratch: &ScratchOptions) {
        self.scratch = scratch.clone();
    }

    fn use_rules(&mut self, rules: &[crate::rules::Rule]) {
        self.rules = rules.to_vec();
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        let md = std::fs::metadata(&self.path)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        let (capture, plan, checker) = self.open_transactions()?;
        // Row counts wait for the check below: an unchanged database keeps its last ones.
        let info = inspect_shape(&capture, &self.path)?;
        if !(512..=65536).contains(&info.page_size) || !info.page_size.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "{}: unsupported page size {}",
                self.path.display(),
                info.page_size
            )));
        }
        let tables: Tables = (info.tables.clone(), info.virtual_tables.clone());
        let check = CheckSetup::start(&self.path, plan, checker, tables, &self.scratch)?;
        let (first, stream) = PageStream::pass();
        let (again_tx, again) = channel();
        let (path, ps, pc) = (self.path.clone(), info.page_size as usize, info.page_count);
        let checking = check.checking;
        let (rules_run, rules) = rules_at_capture(&self.rules);
        let capture = std::thread::Builder::new()
            .name("sqlite-capture".into())
            .spawn(move || stream_pages(capture, path, ps, pc, (first, again), checking, rules_run))
            .map_err(|e| Error::io("starting the capture thread", e))?;
        let mut item =
            crate::files::item_from_metadata(self.item_name.clone(), ItemKind::Sqlite, &md);
        item.size = info.page_count * u64::from(info.page_size);
        let meta = DatabaseMeta {
            page_size: info.page_size,
            page_count: info.page_count,
            journal_mode: info.journal_mode,
            user_version: info.user_version,
            schema_fingerprint: info.schema_fingerprint,
            tables: info.tables,
            quick_check: String::new(),
            not_checkable: Vec::new(),
            source_path: self.path.display().to_string(),
            validation: None,
        };
        let capture = SqliteCapture {
            path: self.path.clone(),
            page_size: info.page_size,
            meta,
            capture,
            again: Some(again_tx),
            checker: check.checker,
            start_check: check.start_check,
            on_change: check.on_change,
            check_pass: check.check_pass,
            rules,
        };
        Ok(Some(Entry {
            item,
            content: Some(EntryContent::Captured {
                buffers: Box::new(stream),
                capture: Box::new(capture),
            }),
            required: true,
            reuse_unchanged: false,
        }))
    }

    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
