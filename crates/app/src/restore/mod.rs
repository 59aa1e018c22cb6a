//! Restores as both front ends ask for them: where a database goes, the options a request
//! turns into, and the plan of an in-place restore of a configured source, its rows compared
//! with the snapshot's and what it does said in words. Also the other way out of a change:
//! marking its pre-change snapshot verified.

use std::path::{Path, PathBuf};

use backstop_engine::Error as E;
use backstop_engine::database::{
    DatabasePlan, DatabaseRestoreOptions, TableChange, database_item, plan_database,
};
pub use backstop_engine::ops::compare::{COMPARE_LIMIT_BYTES, CompareOptions, RowComparison};
use backstop_engine::{Indexed, Repository};
use backstop_format::manifest::{BackupKind, Item};
use backstop_format::record::{MARK_VERIFIED, Record};
use backstop_format::{SnapshotId, Timestamp};
use jiff::tz::TimeZone;

mod words;

pub use words::{describe, describe_tables};

use crate::backup::Runtime;
use crate::config::Config;
use crate::snapshots::Found;

/// A database restore as a front end asks for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseRequest {
    /// Replace the live database (after a safety snapshot) instead of writing a new file.
    pub in_place: bool,
    pub overwrite: bool,
    pub allow_schema_change: bool,
    pub full_check: bool,
    /// Put the image in place even though it failed its checks (recorded).
    pub force: bool,
}

impl DatabaseRequest {
    /// The daemon's in-place restore: never forced, never a full check, consent to a schema
    /// change only when asked.
    pub fn in_place_from_daemon(allow_schema_change: bool) -> Self {
        Self {
            in_place: true,
            allow_schema_change,
            ..Self::default()
        }
    }

    /// A download: a new file in a scratch folder, nothing else.
    pub fn download() -> Self {
        Self::default()
    }

    /// The engine's options for writing to `target`.
    pub fn options(&self, target: PathBuf, rt: &Runtime, now: Timestamp) -> DatabaseRestoreOptions {
        DatabaseRestoreOptions {
            target,
            in_place: self.in_place,
            overwrite: self.overwrite,
            allow_schema_change: self.allow_schema_change,
            full_check: self.full_check,
            force: self.force,
            time: now,
            host: rt.host.clone(),
            program: rt.program.clone(),
        }
    }
}

/// Where a database snapshot's `item` is restored. In place: the path configured for
/// `source`, since the database may have moved since the snapshot, else the path it was
/// captured from. Otherwise `to`: a directory (existing, or written with a trailing slash)
/// receives the database under its own name; any other path is the new database file itself.
pub fn database_target(
    config: &Config,
    source: Option<&str>,
    item: &Item,
    to: Option<&Path>,
    in_place: bool,
) -> anyhow::Result<PathBuf> {
    if in_place {
        let configured = source
            .and_then(|s| config.sources.get(s))
            .and_then(|s| s.path.as_deref())
            .map(|p| config.resolve(p));
        let captured = item
            .database
            .as_ref()
            .map(|meta| PathBuf::from(&meta.source_path))
            .ok_or_else(|| E::Invalid(format!("{} is not a database item", item.path)))?;
        return Ok(configured.unwrap_or(captured));
    }
    let to = to.ok_or_else(|| E::Invalid("a restore needs a target".into()))?;
    let as_dir = to.is_dir()
        || to
            .as_os_str()
            .to_string_lossy()
            .ends_with(['/', std::path::MAIN_SEPARATOR]);
    Ok(if as_dir {
        to.join(&item.path)
    } else {
        to.to_path_buf()
    })
}

/// The plan of an in-place restore of the snapshot `found` into the live database at `live`,
/// with the database item and the indexed repository it was planned with (the restore uses
/// both).
pub struct InPlacePlan<'r> {
    pub plan: DatabasePlan,
    pub item: Item,
    pub ix: Indexed<'r>,
}

/// Plans the in-place restore of `found` into `live`. A snapshot without a database item is
/// refused.
pub fn in_place_plan<'r>(
    repo: &'r Repository,
    found: &Found,
    live: &Path,
    warn: &dyn Fn(&str),
) -> anyhow::Result<InPlacePlan<'r>> {
    let ix = crate::repository::load_index(repo, warn)?;
    let items = ix.loader().read_items(&found.snapshot.items)?;
    let item = database_item(&items)
        .ok_or_else(|| {
            E::Invalid(format!(
                "snapshot {} is not a database snapshot",
                found.id.short()
            ))
        })?
        .clone();
    let plan = plan_database(found.id, &found.snapshot, &item, live, true)?;
    Ok(InPlacePlan { plan, item, ix })
}

impl InPlacePlan<'_> {
    /// Compares the rows with the snapshot's and words the plan ([`compare_rows`],
    /// [`describe`]), as the restore page and the API's dry run show it.
    pub fn compare_and_describe(&mut self, opts: &CompareOptions, tz: &TimeZone) {
        compare_rows(&self.ix, &self.item, &mut self.plan, opts, tz);
    }
}

/// Compares the rows of a SQLite plan's live database with the snapshot's, one by one, up to
/// the size in `opts` (a temporary image of the snapshot in `opts.scratch`, removed
/// afterwards; the live database only read), then words the plan ([`describe`]). A comparison
/// that cannot be made leaves the row counts and says why: the plan is never refused for it.
pub fn compare_rows(
    ix: &Indexed<'_>,
    item: &Item,
    plan: &mut DatabasePlan,
    opts: &CompareOptions,
    tz: &TimeZone,
) {
    backstop_engine::ops::compare::compare_rows(ix, item, plan, opts, &backstop_engine::NoProgress);
    describe(plan, tz);
}

/// What marking a pre-change snapshot verified did; `backstop mark-verified --json` prints the
/// same fields.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MarkedVerified {
    pub snapshot: SnapshotId,
    pub source: String,
    /// False when it already was marked verified (nothing was written).
    pub changed: bool,
    /// The record written, if any.
    pub record: Option<Record>,
    pub message: String,
}

/// Marks the pre-change snapshot `found` verified: the change it was taken before went well,
/// and retention may apply to it after the grace period. Writes the `mark-verified` record
/// `backstop mark-verified` writes, naming `by`; a snapshot already marked is left as it is,
/// and a snapshot of another kind is refused ([`E::Invalid`]).
pub fn mark_verified(
    repo: &Repository,
    found: &Found,
    by: Option<String>,
    note: Option<String>,
    host: &str,
    tz: &TimeZone,
) -> anyhow::Result<MarkedVerified> {
    let (id, snap) = (found.id, &found.snapshot);
    if snap.kind != BackupKind::PreChange {
        return Err(E::Invalid(format!(
            "snapshot {} is a {} snapshot; only pre-change snapshots are marked verified (to \
             keep another snapshot, pin it: `backstop pin {}`)",
            id.short(),
            snap.kind.as_str(),
            id.short()
        ))
        .into());
    }
    let source = snap.source.name.clone();
    if let Some(r) = repo.marks()?.remove(&id).and_then(|m| m.verified) {
        return Ok(MarkedVerified {
            snapshot: id,
            message: format!(
                "snapshot {} was already marked verified at {}{}",
                id.short(),
                crate::snapshots::local_time(r.time, tz),
                r.by.as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
            source,
            changed: false,
            record: None,
        });
    }
    let record = Record::mark(MARK_VERIFIED, id, Timestamp::now(), host, by, note);
    repo.write_record(&record)?;
    Ok(MarkedVerified {
        snapshot: id,
        message: format!(
            "snapshot {} of {source} marked verified: retention applies to it after the grace \
             period",
            id.short()
        ),
        source,
        changed: true,
        record: Some(record),
    })
}

/// A database server's database as it is now, for a restore's plan.
pub use backstop_sources::server::{Observed, Server};

/// What writes a dump's `content` from the repository into a database tool's input (a
/// [`backstop_sources::server::Feed`]), as often as it is called.
fn feed<'a>(
    ix: &'a backstop_engine::Indexed<'_>,
    content: &'a backstop_format::tree::Content,
) -> impl FnMut(&mut dyn std::io::Write) -> Result<(), backstop_sources::Error> + 'a {
    move |w| {
        ix.loader()
            .write_content(content, w, &backstop_engine::NoProgress)
            .map_err(|e| backstop_sources::Error::Invalid(format!("{e}")))
    }
}

/// Loads a server database's dump (`content`, of an item recorded as `like`), or only its
/// `tables` when some are named, into the database `target` on a server of the same engine,
/// which is created first (one of that name must not exist),
/// under a shared lock of the repository (no prune meanwhile; `host` is named in it). A load
/// that fails drops the database again, so nothing is left half loaded, and the error says so.
pub fn into_new_database(
    ix: &backstop_engine::Indexed<'_>,
    content: &backstop_format::tree::Content,
    like: Option<&backstop_format::manifest::ServerDatabase>,
    target: &backstop_sources::server::Server,
    tables: &[String],
    host: &str,
) -> anyhow::Result<()> {
    let name = target.database();
    let _lock = backstop_engine::lock::Lock::for_reading(
        ix,
        "restore",
        host,
        &backstop_engine::NoProgress,
    )?;
    let target = &target.clone().for_dump(like);
    target.create(like)?;
    let loaded = target.restore_tables(tables, &mut feed(ix, content));
    if let Err(e) = loaded {
        let dropped = match target.drop_database() {
            Ok(()) => format!("the new database {name} was dropped again"),
            Err(d) => {
                format!("the new database {name} could not be dropped ({d}): drop it by hand")
            }
        };
        return Err(anyhow::anyhow!("{e}; {dropped}, nothing else changed"));
    }
    Ok(())
}

/// A server database's restore plan, table by table, as both front ends show it.
#[derive(Debug, Clone)]
pub struct ServerRows {
    /// Each table's rows now and in the snapshot, and (compared one by one) since.
    pub tables: Vec<TableChange>,
    /// How the rows were compared ([`compare_server_rows`]); `None` when the live database
    /// could not be read (`now`).
    pub comparison: Option<RowComparison>,
    /// What the restore does in one sentence (each table's in its `words`).
    pub summary: String,
}

/// The tables of the restore of a server database's dump (`content`, recorded as `record`, of
/// a snapshot taken at `time`) into `live`, as it is `now`: their rows, compared one by one
/// where the live database could be read ([`compare_server_rows`], dumps up to
/// [`SERVER_COMPARE_LIMIT_BYTES`]), and in words.
#[allow(clippy::too_many_arguments)]
pub fn server_plan_rows(
    ix: &Indexed<'_>,
    content: &backstop_format::tree::Content,
    record: &backstop_format::manifest::ServerDatabase,
    live: &Server,
    now: Option<&Observed>,
    time: Timestamp,
    tz: &TimeZone,
    host: &str,
) -> ServerRows {
    let mut tables = server_plan_tables(record, now);
    let comparison = now.is_some().then(|| {
        compare_server_rows(
            ix,
            content,
            record,
            live,
            &mut tables,
            SERVER_COMPARE_LIMIT_BYTES,
            host,
        )
    });
    let summary = describe_tables(
        &mut tables,
        time,
        comparison.as_ref().is_some_and(|c| c.rows),
        tz,
    );
    ServerRows {
        tables,
        comparison,
        summary,
    }
}

/// The tables of a restore plan of a server database: each of the dump's with its rows in the
/// snapshot (as `record` has them) and now (as `now` has them, when the live database could
/// be read), then the tables only the live database has.
fn server_plan_tables(
    record: &backstop_format::manifest::ServerDatabase,
    now: Option<&Observed>,
) -> Vec<TableChange> {
    let mut tables: Vec<TableChange> = record
        .tables
        .iter()
        .map(|t| {
            let rows_now = now
                .and_then(|n| n.tables.iter().find(|l| l.name == t.name))
                .and_then(|l| l.rows);
            TableChange::new(t.name.clone(), rows_now, t.rows)
        })
        .collect();
    if let Some(n) = now {
        tables.extend(
            n.tables
                .iter()
                .filter(|l| !record.tables.iter().any(|t| t.name == l.name))
                .map(|l| TableChange::new(l.name.clone(), l.rows, None)),
        );
    }
    tables
}

/// The size of a database server's dump up to which a restore plan compares its rows one by
/// one by default: 256 MiB. Comparing loads the dump into a scratch database first, which
/// takes as long as a restore's load.
pub const SERVER_COMPARE_LIMIT_BYTES: u64 = 256 << 20;

/// Compares the rows of the live server database `live` with those of a snapshot's dump
/// (`content`, of an item recorded as `record`) one by one, and records each table's rows
/// entered, deleted and changed since the snapshot in `tables`
/// ([`backstop_sources::server_compare`]). The dump is loaded into a scratch database
/// `backstop_compare_*` on the live database's server, as an in-place restore loads it, and
/// dropped again in every case; the live database is only read. A dump larger than
/// `limit_bytes`, and a comparison that cannot be made, keep the row counts and say why in the
/// answer's note: a comparison never stops a plan.
pub fn compare_server_rows(
    ix: &Indexed<'_>,
    content: &backstop_format::tree::Content,
    record: &backstop_format::manifest::ServerDatabase,
    live: &Server,
    tables: &mut [TableChange],
    limit_bytes: u64,
    host: &str,
) -> RowComparison {
    let counts_only = |note: String| RowComparison {
        rows: false,
        note: Some(note),
        limit_bytes,
    };
    if content.size > limit_bytes {
        return counts_only(format!(
            "the dump is larger than {}, the limit for comparing rows one by one",
            backstop_policy::format_bytes(limit_bytes)
        ));
    }
    if let Err(e) = backstop_sources::server_compare::can_compare(live) {
        return counts_only(e.to_string());
    }
    let name = format!(
        "backstop_compare_{}",
        backstop_format::id::to_hex(&backstop_format::id::random_bytes::<6>())
    );
    let scratch = live.with_database(&name);
    if let Err(e) = into_new_database(ix, content, Some(record), &scratch, &[], host) {
        let grant = match live {
            Server::Postgres(_) => "the CREATEDB attribute",
            Server::Mariadb(_) => "GRANT ALL ON `backstop\\_compare\\_%`.*",
        };
        return counts_only(format!(
            "the snapshot could not be loaded into a scratch database to compare the rows \
             ({e:#}; comparing loads it into {name} on the same server and drops it again, \
             for which the user needs {grant})"
        ));
    }
    let compared = backstop_sources::server_compare::compare_databases(live, &scratch);
    let left = scratch.drop_database().err().map(|e| {
        format!("the scratch database {name} could not be dropped ({e}): drop it by hand")
    });
    match compared {
        Ok(compared) => {
            backstop_engine::ops::compare::record_comparison(tables, &compared);
            RowComparison {
                rows: true,
                note: left,
                limit_bytes,
            }
        }
        Err(e) => counts_only(match left {
            Some(left) => format!("the rows could not be compared: {e}; {left}"),
            None => format!("the rows could not be compared: {e}"),
        }),
    }
}

/// A table written as CSV by [`tables_as_csv`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CsvTable {
    pub table: String,
    pub path: std::path::PathBuf,
    pub rows: u64,
}

/// Writes each of `tables` of a server database's dump (`content`, of an item recorded as
/// `like`) as CSV into `dir` (created if need be), `TABLE.csv` each as named, under a shared
/// lock of the repository. PostgreSQL's rows come from the dump itself, with no server;
/// MariaDB's from a scratch database on `server`. Each file is written beside its place and
/// renamed into it once whole; a file of that name is refused unless `overwrite`, and nothing
/// is renamed into place unless every table was written.
#[allow(clippy::too_many_arguments)]
pub fn tables_as_csv(
    ix: &backstop_engine::Indexed<'_>,
    content: &backstop_format::tree::Content,
    like: Option<&backstop_format::manifest::ServerDatabase>,
    server: &backstop_sources::server::Server,
    tables: &[String],
    dir: &std::path::Path,
    overwrite: bool,
    host: &str,
) -> anyhow::Result<Vec<CsvTable>> {
    use anyhow::Context as _;
    let _lock = backstop_engine::lock::Lock::for_reading(
        ix,
        "restore",
        host,
        &backstop_engine::NoProgress,
    )?;
    let server = server.clone().for_dump(like);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut planned = Vec::new();
    for t in tables {
        let file: String = t
            .chars()
            .map(|c| match c {
                '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
                c => c,
            })
            .collect();
        let path = dir.join(format!("{file}.csv"));
        if path.exists() && !overwrite {
            return Err(crate::error::UsageError(format!(
                "{} exists: pass --overwrite to replace it, or choose another --to",
                path.display()
            ))
            .into());
        }
        planned.push((t, path));
    }
    let mut written = Vec::new();
    for (t, path) in &planned {
        let temp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing into {}", dir.display()))?;
        let file = temp.reopen().context("opening the CSV file")?;
        let rows = server
            .table_csv(t, &mut feed(ix, content), file)
            .with_context(|| format!("writing table {t} as CSV"))?;
        written.push((
            temp,
            CsvTable {
                table: (*t).clone(),
                path: path.clone(),
                rows,
            },
        ));
    }
    let mut done = Vec::new();
    for (temp, t) in written {
        temp.persist(&t.path)
            .with_context(|| format!("putting {} in place", t.path.display()))?;
        done.push(t);
    }
    Ok(done)
}

/// An in-place restore of a database server's dump (PostgreSQL), as a front end asks for it:
/// the snapshot's dump replaces the live database of `source`.
pub struct ServerInPlace<'a> {
    /// The configured source whose database is replaced.
    pub source: &'a str,
    /// Its reader, for the safety snapshot (made only once the schema check passed).
    pub reader: &'a dyn Fn() -> anyhow::Result<crate::sources::SourceReader>,
    /// Its tags, for the safety snapshot.
    pub tags: Vec<String>,
    pub snapshot: backstop_format::SnapshotId,
    pub content: &'a backstop_format::tree::Content,
    /// What the dump was taken from.
    pub record: &'a backstop_format::manifest::ServerDatabase,
    /// The live database.
    pub live: &'a backstop_sources::server::Server,
    /// Restore even though the live schema or its version differs from the snapshot's.
    pub allow_schema_change: bool,
    pub rt: &'a Runtime,
    pub spill: &'a backstop_engine::SpillOptions,
}

/// What an in-place restore of a database server's dump did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInPlaceDone {
    /// The live database, now holding the snapshot's data.
    pub database: String,
    /// The `pre-restore` snapshot of the live database as it was.
    pub safety_snapshot: backstop_format::SnapshotId,
    /// The name the previous database is kept under on the server.
    pub previous_kept_as: String,
}

/// Replaces a live server database with a snapshot's dump, so that the application never sees
/// a half-loaded database and nothing is lost:
/// 1. the live schema and its version are compared with the snapshot's (a difference is refused
///    unless allowed: the restore would undo a migration);
/// 2. a `pre-restore` safety snapshot of the live database is taken;
/// 3. the dump is loaded into a new database beside it, its row counts checked against the
///    snapshot's record and its rows byte for byte against the dump's ([`Server::checksums`]:
///    a load that fails or does not match is dropped; the live database is untouched);
/// 4. the new database takes the live one's name ([`Server::replace_with`]), and the previous
///    one is kept under `NAME_before_SAFETY`, for the administrator to drop.
///
/// [`Server::replace_with`]: backstop_sources::server::Server::replace_with
pub fn server_in_place(
    repo: &Repository,
    ix: &Indexed<'_>,
    r: &ServerInPlace<'_>,
    warn: &dyn Fn(&str),
    progress: &dyn backstop_engine::Progress,
) -> anyhow::Result<ServerInPlaceDone> {
    let name = r.live.database();
    // Refused before anything is done, where the switch could not be made at the end.
    r.live.can_replace()?;
    r.live
        .check_replace()
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let now = r.live.observe().map_err(|e| {
        anyhow::anyhow!(
            "{e}: an in-place restore replaces a database that exists; nothing was changed (to \
             make {name} again from the snapshot, restore it with --to-database {name})"
        )
    })?;
    // The built-in export carries no owners: loaded in place, objects an application's role
    // owns would become ours, and the application could lose access to its own tables.
    if r.record.method == "builtin" {
        let others = r.live.other_owners()?;
        if !others.is_empty() {
            return Err(crate::error::UsageError(format!(
                "snapshot {} is a built-in export, which does not carry owners, and {name} has \
                 objects owned by {}: restored in place they would become the connecting \
                 user's, and the application could lose access to them. Restore it with \
                 --to-database NEWNAME and give the objects their owners, or back up with \
                 method = \"dump\" (its snapshots keep owners). Nothing was changed",
                r.snapshot.short(),
                others.join(", ")
            ))
            .into());
        }
    }
    let schema_differs = now.schema_fingerprint != r.record.schema_fingerprint;
    let version_differs = now.schema_version != r.record.schema_version;
    if (schema_differs || version_differs) && !r.allow_schema_change {
        let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        return Err(crate::error::UsageError(format!(
            "the schema of {name} differs from the snapshot's ({}): restoring would undo that \
             change; pass --allow-schema-change to restore anyway. Nothing was changed",
            match version_differs {
                true => format!(
                    "schema version {} in the snapshot, {} now",
                    v(&r.record.schema_version),
                    v(&now.schema_version)
                ),
                false => "its columns, their types or nullability changed".into(),
            }
        ))
        .into());
    }
    let mut reader = (r.reader)()?;
    let req = crate::backup::BackupRequest {
        kind: backstop_format::manifest::BackupKind::PreRestore,
        description: Some(format!(
            "safety snapshot before restoring snapshot {} in place",
            r.snapshot.short()
        )),
        tags: Vec::new(),
        ticket: None,
        time: None,
        force: false,
        skip_unchanged: crate::backup::SkipUnchanged::AsConfigured,
    };
    let settings = crate::backup::SourceSettings {
        tags: r.tags.clone(),
        description: None,
        skip_unchanged: false,
    };
    let safety = crate::backup::backup(
        repo,
        &mut reader,
        r.source,
        &settings,
        &req,
        r.rt,
        r.spill,
        warn,
        &backstop_engine::Within {
            inner: progress,
            name: "safety snapshot",
        },
    )
    .map_err(|e| e.context("taking the safety snapshot; nothing was changed"))?;
    drop(reader);
    let safety_short = safety.id.short();
    let new_name = limited(&format!("{name}_restoring_{safety_short}"));
    let kept = limited(&format!("{name}_before_{safety_short}"));
    // The application may log in as another role than ours: its objects keep their owners.
    let new = r
        .live
        .with_database(&new_name)
        .keeping_owners()
        .for_dump(Some(r.record));
    into_new_database(ix, r.content, Some(r.record), &new, &[], &r.rt.host).map_err(|e| {
        e.context(format!(
            "loading the snapshot beside {name}; {name} was not changed (safety snapshot \
             {safety_short})"
        ))
    })?;
    let drop_new = |why: String| -> anyhow::Error {
        let dropped = match new.drop_database() {
            Ok(()) => format!("{new_name} was dropped again"),
            Err(d) => format!("{new_name} could not be dropped ({d}): drop it by hand"),
        };
        anyhow::anyhow!("{why}; {dropped}; {name} was not changed (safety snapshot {safety_short})")
    };
    let loaded = new
        .observe()
        .map_err(|e| drop_new(format!("reading the loaded copy: {e}")))?;
    // Every table's rows: as many as recorded, and byte for byte the dump's.
    let sums = new.checksums(r.record, &mut feed(ix, r.content));
    let failed: Vec<String> = backstop_sources::server::Server::compare(r.record, &loaded)
        .into_iter()
        .filter(|c| c.name == "rows")
        .chain(sums)
        .filter(|c| !c.passed)
        .map(|c| c.detail)
        .collect();
    if !failed.is_empty() {
        return Err(drop_new(format!(
            "the loaded copy does not match the snapshot: {}",
            failed.join("; ")
        )));
    }
    let warnings = r
        .live
        .replace_with(&new_name, &kept)
        .map_err(|e| drop_new(format!("switching {name} to the restored copy: {e}")))?;
    for w in warnings {
        warn(&w);
    }
    Ok(ServerInPlaceDone {
        database: name,
        safety_snapshot: safety.id,
        previous_kept_as: kept,
    })
}

/// A database name cut to 63 bytes (PostgreSQL's limit), at a character boundary.
fn limited(name: &str) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{BackupRequest, Runtime, SkipUnchanged, SourceSettings};

    /// A repository in `dir` with one snapshot of the database `shop.db` there, of `kind`.
    fn snapshot_of(dir: &Path, kind: BackupKind) -> (Repository, Found) {
        let location = crate::repository::Location::resolve(
            Some(&dir.join("repo").display().to_string()),
            &Default::default(),
        )
        .unwrap();
        let repo = crate::repository::open(&location, None).unwrap_or_else(|_| {
            let opts = backstop_engine::InitOptions::new(None, Timestamp::now(), "h".into());
            crate::repository::init(&location, &opts).unwrap()
        });
        let mut reader = crate::sources::sqlite(dir.join("shop.db"), "shop.db".into()).unwrap();
        let req = BackupRequest {
            kind,
            description: Some("before the price update".into()),
            tags: Vec::new(),
            ticket: Some("PO-7".into()),
            time: None,
            force: false,
            skip_unchanged: SkipUnchanged::AsConfigured,
        };
        let rt = Runtime {
            host: "h".into(),
            program: "test".into(),
        };
        let settings = SourceSettings {
            tags: Vec::new(),
            description: None,
            skip_unchanged: false,
        };
        let done = crate::backup::backup(
            &repo,
            &mut reader,
            "shop",
            &settings,
            &req,
            &rt,
            &backstop_engine::SpillOptions::default(),
            &|_| {},
            &backstop_engine::NoProgress,
        )
        .unwrap();
        let found = crate::snapshots::find(&repo, &done.id.to_hex(), None, &TimeZone::UTC).unwrap();
        (repo, found)
    }

    fn exec(path: &Path, sql: &str) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn table<'p>(plan: &'p DatabasePlan, name: &str) -> &'p backstop_engine::database::TableChange {
        plan.tables
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_plan_compares_rows_by_key_and_says_what_the_restore_changes() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("shop.db");
        exec(
            &live,
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             INSERT INTO customers SELECT i, 'customer ' || i, 'Oslo' FROM n;
             CREATE TABLE stock (sku TEXT, bin INT, qty INT, PRIMARY KEY (sku, bin)) WITHOUT ROWID;
             INSERT INTO stock VALUES ('A', 1, 4), ('A', 2, 0), ('B', 1, 7);
             CREATE TABLE orders (customer INT, total REAL);
             INSERT INTO orders VALUES (1, 9.5), (2, 3.0);
             CREATE TABLE prices (sku TEXT PRIMARY KEY, price REAL);
             INSERT INTO prices VALUES ('A', 1.5);",
        );
        let (repo, found) = snapshot_of(dir.path(), BackupKind::Manual);
        // Since the snapshot: 3 orders entered, 12 customers deleted and 2 changed, a stock
        // row of the table without rowid changed, another deleted, and a column added.
        exec(
            &live,
            "INSERT INTO orders VALUES (3, 1.0), (4, 2.0), (5, 4.0);
             DELETE FROM customers WHERE id > 8;
             UPDATE customers SET city = 'Bern' WHERE id IN (1, 2);
             UPDATE stock SET qty = 9 WHERE sku = 'A' AND bin = 2;
             DELETE FROM stock WHERE sku = 'B';
             ALTER TABLE prices ADD COLUMN currency TEXT;",
        );
        let live_bytes = std::fs::read(&live).unwrap();
        let scratch = dir.path().join("scratch");
        let opts = CompareOptions {
            scratch: scratch.clone(),
            limit_bytes: COMPARE_LIMIT_BYTES,
            host: "h".into(),
        };
        let mut p = in_place_plan(&repo, &found, &live, &|_| {}).unwrap();
        p.compare_and_describe(&opts, &TimeZone::UTC);
        let plan = &p.plan;
        assert!(
            plan.comparison.as_ref().unwrap().rows,
            "{:?}",
            plan.comparison
        );
        let since = |name| {
            table(plan, name)
                .since
                .map(|s| (s.added, s.deleted, s.changed))
        };
        assert_eq!(since("orders"), Some((3, 0, 0)), "matched by rowid");
        assert_eq!(since("customers"), Some((0, 12, 2)));
        assert_eq!(since("stock"), Some((0, 1, 1)), "WITHOUT ROWID, by its key");
        let prices = table(plan, "prices");
        assert_eq!(prices.since, None);
        assert_eq!(
            prices.not_compared.as_deref(),
            Some("schema differs, rows not compared")
        );
        assert_eq!(table(plan, "orders").difference, Some(-3));
        assert_eq!(table(plan, "customers").difference, Some(12));
        assert_eq!(
            table(plan, "orders").words.as_deref(),
            Some("3 rows of orders entered since the snapshot will be lost.")
        );
        assert_eq!(
            table(plan, "customers").words.as_deref(),
            Some(
                "12 rows of customers deleted since the snapshot will come back and 2 changed \
                 since then will go back to their old values."
            )
        );
        assert_eq!(
            table(plan, "prices").words.as_deref(),
            Some("prices: schema differs, rows not compared (1 now, 1 in the snapshot).")
        );
        let when = found
            .snapshot
            .time
            .to_zoned(TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M")
            .to_string();
        assert_eq!(
            plan.summary.as_deref().unwrap(),
            format!(
                "Restoring loses 3 rows of orders entered since {when}, brings back 12 deleted \
                 rows of customers and 1 deleted row of stock, and reverts 3 changed rows in 2 \
                 tables. The rows of prices were not compared (see below)."
            )
        );
        // The live database was only read; the snapshot's image is gone.
        assert_eq!(std::fs::read(&live).unwrap(), live_bytes);
        assert_eq!(files_in(&scratch), Vec::<PathBuf>::new());

        // Over the size limit: row counts, said so, and no image written.
        let mut p = in_place_plan(&repo, &found, &live, &|_| {}).unwrap();
        let small = CompareOptions {
            limit_bytes: 1024,
            ..opts.clone()
        };
        p.compare_and_describe(&small, &TimeZone::UTC);
        let c = p.plan.comparison.as_ref().unwrap();
        assert!(!c.rows);
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .contains("larger than 1.0 KiB, the limit"),
            "{c:?}"
        );
        assert!(p.plan.tables.iter().all(|t| t.since.is_none()));
        assert_eq!(
            table(&p.plan, "customers").words.as_deref(),
            Some(
                "customers has 12 rows fewer now than in the snapshot: restoring brings back the rows deleted since."
            )
        );
        assert!(
            p.plan.summary.as_deref().unwrap().starts_with(&format!(
                "By row counts, restoring to the snapshot of {when} removes 3 rows of orders and \
                 brings back 12 rows of customers and 1 row of stock;"
            )),
            "{:?}",
            p.plan.summary
        );

        // A comparison that fails (no scratch folder can be made) leaves the counts and why.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "a file, not a folder").unwrap();
        let mut p = in_place_plan(&repo, &found, &live, &|_| {}).unwrap();
        let failing = CompareOptions {
            scratch: blocked.join("scratch"),
            ..opts.clone()
        };
        p.compare_and_describe(&failing, &TimeZone::UTC);
        let c = p.plan.comparison.as_ref().unwrap();
        assert!(!c.rows);
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .starts_with("the rows could not be compared: "),
            "{c:?}"
        );
        assert!(
            p.plan
                .summary
                .as_deref()
                .unwrap()
                .starts_with("By row counts")
        );
        assert_eq!(std::fs::read(&live).unwrap(), live_bytes);
    }

    #[test]
    fn only_a_pre_change_snapshot_is_marked_verified_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        exec(&dir.path().join("shop.db"), "CREATE TABLE t (x);");
        let (repo, manual) = snapshot_of(dir.path(), BackupKind::Manual);
        let e = mark_verified(
            &repo,
            &manual,
            Some("dana".into()),
            None,
            "h",
            &TimeZone::UTC,
        )
        .unwrap_err();
        assert!(
            matches!(e.downcast_ref::<E>(), Some(E::Invalid(m)) if m.contains("only pre-change snapshots")),
            "{e:#}"
        );
        let (repo, pre) = snapshot_of(dir.path(), BackupKind::PreChange);
        let done = mark_verified(
            &repo,
            &pre,
            Some("dana".into()),
            Some("prices look right".into()),
            "h",
            &TimeZone::UTC,
        )
        .unwrap();
        assert!(done.changed);
        let marks = repo.marks().unwrap().remove(&pre.id).unwrap();
        let record = marks.verified.unwrap();
        assert_eq!(record.by.as_deref(), Some("dana"));
        assert_eq!(record.note.as_deref(), Some("prices look right"));
        let again =
            mark_verified(&repo, &pre, Some("sam".into()), None, "h", &TimeZone::UTC).unwrap();
        assert!(!again.changed);
        assert!(
            again.message.contains("already marked verified"),
            "{}",
            again.message
        );
        assert!(again.message.ends_with(" by dana"), "{}", again.message);
    }
}
