//! Restoring SQLite databases: to a new file, or in place into the live database.
//!
//! Both first write the snapshot's image to a temporary file beside the destination, hashing it
//! on the way: the image hash must equal the one recorded at capture (which, with every chunk
//! checked against its id, proves the bytes are the captured ones), and the file is opened and
//! checked against the captured metadata before anything is replaced (an image that fails is
//! refused before any snapshot is taken or file touched). To a new file, the checked image is
//! renamed into place (stale `-wal`/`-shm` files of an overwritten database are removed first,
//! since SQLite would otherwise replay a foreign WAL into it). In place, a `pre-restore` safety
//! snapshot of the current database is taken once the image is checked, then the image is
//! copied into the live database through SQLite's backup API in one step: connections that
//! hold the database open see the old content or the new, never a mix.
//!
//! A live database that SQLite cannot open (truncated, a broken header: the day an emergency
//! restore is needed) can neither be captured page by page nor receive pages through the backup
//! API. Its bytes, with any `-wal`, `-shm` and `-journal` beside it, are kept as a `pre-restore`
//! snapshot of files instead; then the checked image, synced, replaces it by rename (the stale
//! `-wal`/`-shm`/`-journal` removed first, since SQLite would replay a foreign WAL into it), and
//! the directory is synced. A crash leaves the old file or the new one; the old bytes are in the
//! repository before anything is removed.
//!
//! An image that fails a check is never put in place unless the caller forces it; a forced
//! restore writes a `forced-restore` record to the repository first (the audit trail).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use backstop_format::manifest::{BackupKind, Item, ItemKind, Snapshot};
use backstop_format::record::{FORCED_RESTORE, RECORD_VERSION, Record};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::Source;
use backstop_sources::files::FilesSource;
use backstop_sources::sqlite::{self, Check, LiveState, SqliteSource, check_image};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::direct::DirectFile;
use crate::repository::indexed::Indexed;
use crate::{BackupOptions, backup};

/// How to restore a database.
#[derive(Debug, Clone)]
pub struct DatabaseRestoreOptions {
    /// The database file to write, or the live database with `in_place`.
    pub target: PathBuf,
    pub in_place: bool,
    pub overwrite: bool,
    /// Allow a restore whose schema differs from the live database's.
    pub allow_schema_change: bool,
    /// Also run `PRAGMA integrity_check` on the restored image (slow on large databases; the
    /// image hash already proves the bytes are those that passed the capture's quick check).
    pub full_check: bool,
    /// Put the image in place even though it failed a check (recorded as a `forced-restore`
    /// record in the repository).
    pub force: bool,
    /// Time and host recorded in the safety snapshot.
    pub time: Timestamp,
    pub host: String,
    pub program: String,
}

/// One table: rows now (in the target) and in the snapshot; once compared
/// ([`crate::ops::compare`]), the rows added, deleted and changed since the snapshot; once
/// worded (by the application layer), what the restore does to it in a sentence.
#[derive(Debug, Clone, Serialize)]
pub struct TableChange {
    pub name: String,
    pub rows_now: Option<u64>,
    pub rows_snapshot: Option<u64>,
    /// What the restore does to the row count: rows in the snapshot minus rows now (`None`
    /// when either is unknown).
    pub difference: Option<i64>,
    /// Rows matched by key against the snapshot's: entered, deleted and changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<RowsSince>,
    /// Why this table's rows were not compared when the others were (its schema differs...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
    /// The table has no primary key: its rows were matched by their whole content, so a row
    /// changed since the snapshot counts as one entered and one deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_content: bool,
    /// What the restore does to this table, in a sentence (`None`: nothing, or not worded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<String>,
}

impl TableChange {
    /// A table with its row counts, not compared row by row.
    pub fn new(name: String, rows_now: Option<u64>, rows_snapshot: Option<u64>) -> Self {
        Self {
            name,
            rows_now,
            rows_snapshot,
            difference: rows_now
                .zip(rows_snapshot)
                .map(|(now, then)| then as i64 - now as i64),
            since: None,
            not_compared: None,
            by_content: false,
            words: None,
        }
    }
}

pub use backstop_sources::sqlite::compare::RowsSince;

/// What a database restore will do.
#[derive(Debug, Clone, Serialize)]
pub struct DatabasePlan {
    pub snapshot: SnapshotId,
    pub source: String,
    pub time: Timestamp,
    pub item: String,
    pub target: String,
    pub in_place: bool,
    pub target_exists: bool,
    pub bytes: u64,
    pub quick_check_at_capture: String,
    /// `None` when there is no database at the target to compare with.
    pub schema_matches: Option<bool>,
    pub user_version_now: Option<i64>,
    pub user_version_snapshot: i64,
    pub page_size_now: Option<u32>,
    pub page_size_snapshot: u32,
    pub journal_mode_now: Option<String>,
    pub tables: Vec<TableChange>,
    /// Why the file at the target cannot be opened as a database (it is then kept as files
    /// and replaced by rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_unreadable: Option<String>,
    /// Whether the rows were compared with the snapshot's one by one ([`crate::ops::compare`]);
    /// `None`: not asked for (a restore's own plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<crate::ops::compare::RowComparison>,
    /// What the restore does, in one sentence (once worded by the application layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// The result of a database restore.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseRestoreSummary {
    #[serde(flatten)]
    pub plan: DatabasePlan,
    /// The `pre-restore` snapshot of the database as it was (in place, or of an unreadable
    /// file that was replaced: then a snapshot of files).
    pub safety_snapshot: Option<SnapshotId>,
    pub checks: Vec<Check>,
    /// Stale `-wal`, `-shm` and `-journal` files removed beside the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The image failed a check and was put in place anyway (`force`; recorded).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// The one SQLite item of a snapshot, if it is a database snapshot.
pub fn database_item(items: &[Item]) -> Option<&Item> {
    match items {
        [one] if one.kind == ItemKind::Sqlite && one.database.is_some() => Some(one),
        _ => None,
    }
}

/// Computes the plan: the database now at the target against the snapshot.
pub fn plan_database(
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    target: &Path,
    in_place: bool,
) -> Result<DatabasePlan> {
    let meta = item
        .database
        .as_ref()
        .ok_or_else(|| Error::Invalid("not a database item".into()))?;
    let (now, unreadable) = match sqlite::inspect_live(target)? {
        LiveState::Database(i) => (Some(i), None),
        LiveState::Unreadable(why) => (None, Some(why)),
        LiveState::Absent => (None, None),
    };
    let mut tables: Vec<TableChange> = meta
        .tables
        .iter()
        .map(|t| {
            let rows_now = now
                .as_ref()
                .and_then(|n| n.tables.iter().find(|x| x.name == t.name))
                .and_then(|x| x.rows);
            TableChange::new(t.name.clone(), rows_now, t.rows)
        })
        .collect();
    if let Some(n) = &now {
        for t in &n.tables {
            if !meta.tables.iter().any(|m| m.name == t.name) {
                tables.push(TableChange::new(t.name.clone(), t.rows, None));
            }
        }
    }
    Ok(DatabasePlan {
        snapshot: id,
        source: snap.source.name.clone(),
        time: snap.time,
        item: item.path.clone(),
        target: target.display().to_string(),
        in_place,
        target_exists: target.exists(),
        bytes: item.content.as_ref().map_or(0, |c| c.size),
        quick_check_at_capture: meta.quick_check.clone(),
        schema_matches: now.as_ref().map(|n| {
            n.schema_fingerprint == meta.schema_fingerprint && n.user_version == meta.user_version
        }),
        user_version_now: now.as_ref().map(|n| n.user_version),
        user_version_snapshot: meta.user_version,
        page_size_now: now.as_ref().map(|n| n.page_size),
        page_size_snapshot: meta.page_size,
        journal_mode_now: now.as_ref().map(|n| n.journal_mode.clone()),
        tables,
        target_unreadable: unreadable,
        comparison: None,
        summary: None,
    })
}

/// The check that [`write_image`] makes.
pub(crate) fn image_hash_check() -> Check {
    Check {
        name: "image hash".into(),
        passed: true,
        detail: "equals the hash recorded at capture".into(),
    }
}

/// How [`write_image`] writes the image file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImageWrite {
    /// Synced before use.
    pub durable: bool,
    /// Past the page cache where the system allows it (see `crate::repository::direct`): for an image that
    /// is kept, not for one read whole right after (a restore drill).
    pub direct: bool,
}

/// Writes the image of `item` to a new temporary file in `dir` and checks its hash.
pub(crate) fn write_image(
    loader: &Loader<'_>,
    item: &Item,
    dir: &Path,
    how: ImageWrite,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let content = item
        .content
        .as_ref()
        .ok_or_else(|| Error::Invalid("database item without content".into()))?;
    let tmp = dir.join(format!(
        ".backstop-restore-{}.tmp",
        backstop_format::id::to_hex(&backstop_format::id::random_bytes::<8>())
    ));
    let io = |e: std::io::Error| {
        Error::Source(backstop_sources::Error::Io {
            context: format!("writing {}", tmp.display()),
            cause: e,
        })
    };
    let result = (|| -> Result<()> {
        let f = DirectFile::create_new(&tmp, how.direct).map_err(io)?;
        let mut w = HashingWriter {
            inner: f,
            hasher: blake3::Hasher::new(),
        };
        // The image hash below covers every byte, and the file is used only if it matches.
        loader
            .trusting_content_hash()
            .write_content(content, &mut w, progress)?;
        let hash = w.hasher.finalize().to_hex().to_string();
        w.inner.finish(how.durable).map_err(io)?;
        if hash != content.hash {
            return Err(Error::Integrity(format!(
                "the restored image of {} hashes to {hash}, the snapshot says {} (damaged data in the repository)",
                item.path, content.hash
            )));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write + Send> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Restore hands over whole windows of megabytes: the write (which waits for the disk,
        // or copies into the system's cache) stays on this thread while the hash runs on the
        // thread pool. (`rayon::join` from this thread would run the write on a pool thread,
        // which then waits instead of decoding the next window.)
        if buf.len() >= 1 << 20 {
            let (inner, hasher) = (&mut self.inner, &mut self.hasher);
            return std::thread::scope(|s| {
                let hashing = s.spawn(|| {
                    hasher.update_rayon(buf);
                });
                let written = inner.write_all(buf);
                if hashing.join().is_err() {
                    return Err(std::io::Error::other("the image hash panicked"));
                }
                written.map(|()| buf.len())
            });
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn failed(checks: &[Check]) -> Option<String> {
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Source(backstop_sources::Error::Io {
            context: format!("removing {}", p.display()),
            cause: e,
        })),
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Restores a database item: to a new file, or in place (see the module documentation).
pub fn restore_database(
    ix: &Indexed<'_>,
    plan: DatabasePlan,
    item: &Item,
    opts: &DatabaseRestoreOptions,
    progress: &dyn Progress,
) -> Result<DatabaseRestoreSummary> {
    let repo = ix.repo();
    let _lock = crate::repository::lock::Lock::for_reading(ix, "restore", &opts.host, progress)?;
    let meta = item
        .database
        .as_ref()
        .ok_or_else(|| Error::Invalid("not a database item".into()))?;
    let target = &opts.target;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let unreadable = plan.target_unreadable.clone();
    if opts.in_place {
        if !plan.target_exists {
            return Err(Error::NoLiveDatabase(target.display().to_string()));
        }
        if plan.schema_matches == Some(false) && !opts.allow_schema_change {
            return Err(Error::SchemaChanged(target.display().to_string()));
        }
    } else if plan.target_exists && !opts.overwrite {
        return Err(Error::Source(backstop_sources::Error::WouldOverwrite {
            target: target.display().to_string(),
            count: 1,
            first: target.display().to_string(),
        }));
    } else {
        fs::create_dir_all(&dir).map_err(|e| io_err(format!("creating {}", dir.display()), e))?;
    }
    progress.phase("restore", Some(plan.bytes));
    let loader = ix.loader();
    // Durable before it replaces an existing file by rename, so a crash leaves the old one or
    // the new one. A new file, like any copy, is flushed by the system; into a live database,
    // SQLite copies the image under its own durability rules.
    let by_rename = !opts.in_place || unreadable.is_some();
    let how = ImageWrite {
        durable: by_rename && plan.target_exists,
        direct: true,
    };
    let tmp = write_image(&loader, item, &dir, how, progress)?;
    let cleanup = |tmp: &Path| {
        let _ = fs::remove_file(tmp);
    };
    let checks = match check_image(&tmp, meta, opts.full_check, false).map_err(Error::from) {
        Ok(c) => std::iter::once(image_hash_check())
            .chain(c)
            .collect::<Vec<_>>(),
        Err(e) => {
            cleanup(&tmp);
            return Err(e);
        }
    };
    let forced = match failed(&checks) {
        None => false,
        Some(why) if !opts.force => {
            cleanup(&tmp);
            return Err(Error::FailedChecks(why));
        }
        Some(_) => true,
    };
    // The image is ready and checked (a refused restore changes nothing and takes no
    // snapshot); the safety snapshot comes next: whatever happens then, today's data is kept.
    let safety = match take_safety(ix, item, &plan, opts, progress) {
        Ok(s) => s,
        Err(e) => {
            cleanup(&tmp);
            return Err(e);
        }
    };
    // The audit record is written before anything is replaced.
    if forced && let Err(e) = record_forced(repo, &plan, &checks, opts) {
        cleanup(&tmp);
        return Err(e);
    }
    let mut removed = Vec::new();
    if by_rename {
        if let Err(e) = put_in_place(&tmp, target, &dir, &mut removed) {
            cleanup(&tmp);
            return Err(e);
        }
    } else {
        let r = sqlite::replace_live(target, &tmp);
        cleanup(&tmp);
        r?;
    }
    Ok(DatabaseRestoreSummary {
        plan,
        safety_snapshot: safety,
        checks,
        removed,
        forced,
    })
}

/// The `pre-restore` snapshot of what is at the target: the database (in place), or the bytes
/// of a file SQLite cannot open (as files); none for a new file.
fn take_safety(
    ix: &Indexed<'_>,
    item: &Item,
    plan: &DatabasePlan,
    opts: &DatabaseRestoreOptions,
    progress: &dyn Progress,
) -> Result<Option<SnapshotId>> {
    let target = &opts.target;
    let progress = &crate::progress::Within {
        inner: progress,
        name: "safety snapshot",
    };
    Ok(if let Some(why) = &plan.target_unreadable {
        progress.phase("safety snapshot", None);
        Some(keep_as_files(ix, target, why, plan, opts, progress)?)
    } else if opts.in_place {
        let mut source = SqliteSource::new(target.clone(), item.path.clone())?;
        let description = format!(
            "safety snapshot before restoring snapshot {}",
            plan.snapshot.short()
        );
        progress.phase("safety snapshot", None);
        let safety = Safety {
            description,
            read_everything: false,
        };
        Some(safety_backup(
            ix,
            &mut source,
            safety,
            plan,
            opts,
            progress,
        )?)
    } else {
        None
    })
}

fn io_err(context: String, e: std::io::Error) -> Error {
    Error::Source(backstop_sources::Error::Io { context, cause: e })
}

/// How a `pre-restore` snapshot is taken.
struct Safety {
    description: String,
    /// Read every file, even one whose size and modification time match the previous
    /// snapshot: the bytes of a damaged file are what must be kept, whatever its metadata says.
    read_everything: bool,
}

/// Takes a `pre-restore` snapshot of `source` under the plan's source name.
fn safety_backup(
    ix: &Indexed<'_>,
    source: &mut dyn Source,
    safety: Safety,
    plan: &DatabasePlan,
    opts: &DatabaseRestoreOptions,
    progress: &dyn Progress,
) -> Result<SnapshotId> {
    let o = BackupOptions {
        source_name: plan.source.clone(),
        kind: BackupKind::PreRestore,
        description: Some(safety.description),
        tags: vec![],
        ticket: None,
        time: opts.time,
        host: opts.host.clone(),
        program: opts.program.clone(),
        force: safety.read_everything,
        skip_unchanged: false,
    };
    let summary = backup(ix, source, &o, progress)?;
    // A file that could not be read is only a warning in a backup of files; here it would be
    // bytes lost.
    if !summary.warnings.is_empty() {
        return Err(Error::Invalid(format!(
            "the safety snapshot {} is incomplete ({}); nothing was replaced",
            summary.id.short(),
            summary.warnings.join("; ")
        )));
    }
    Ok(summary.id)
}

/// The `-wal`, `-shm` and `-journal` files SQLite keeps beside a database.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Keeps the bytes of a file SQLite cannot open as a database, and of the files SQLite keeps
/// beside it, as a `pre-restore` snapshot of files.
fn keep_as_files(
    ix: &Indexed<'_>,
    target: &Path,
    why: &str,
    plan: &DatabasePlan,
    opts: &DatabaseRestoreOptions,
    progress: &dyn Progress,
) -> Result<SnapshotId> {
    let mut paths = vec![target.to_path_buf()];
    paths.extend(
        SIDE_FILES
            .iter()
            .map(|s| with_suffix(target, s))
            .filter(|p| p.is_file()),
    );
    // Byte for byte: the file is kept because SQLite cannot read it.
    let mut source = FilesSource::new(paths, vec![])?.with_databases(false);
    let description = format!(
        "safety snapshot (as files: the database could not be opened: {why}) before restoring snapshot {}",
        plan.snapshot.short()
    );
    let safety = Safety {
        description,
        read_everything: true,
    };
    safety_backup(ix, &mut source, safety, plan, opts, progress)
}

/// Writes the `forced-restore` record of a restore whose image failed a check.
fn record_forced(
    repo: &Repository,
    plan: &DatabasePlan,
    checks: &[Check],
    opts: &DatabaseRestoreOptions,
) -> Result<()> {
    let record = Record {
        version: RECORD_VERSION,
        kind: FORCED_RESTORE.into(),
        snapshot: plan.snapshot,
        time: opts.time,
        host: opts.host.clone(),
        passed: false,
        duration_ms: 0,
        checks: checks.to_vec(),
        by: None,
        note: Some(format!(
            "restored {} into {} although it failed its checks",
            plan.item,
            opts.target.display()
        )),
        source: Some(plan.source.clone()),
    };
    repo.write_record(&record)?;
    Ok(())
}

/// Renames the checked image at `tmp` over `target`, after removing the files SQLite keeps
/// beside a database (a WAL or shared-memory file left from the file being replaced would be
/// replayed into the restored one), then syncs the directory.
fn put_in_place(tmp: &Path, target: &Path, dir: &Path, removed: &mut Vec<String>) -> Result<()> {
    for suffix in SIDE_FILES {
        let p = with_suffix(target, suffix);
        if p.exists() {
            remove_if_exists(&p)?;
            removed.push(p.display().to_string());
        }
    }
    fs::rename(tmp, target).map_err(|e| {
        io_err(
            format!("moving the restored database to {}", target.display()),
            e,
        )
    })?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(format!("syncing directory {}", dir.display()), e))
}

/// Makes a rename in `dir` durable. Outside Unix std cannot open a directory as a file, and
/// NTFS journals renames itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
