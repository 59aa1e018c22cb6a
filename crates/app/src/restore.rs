//! Restores as both front ends ask for them: where a database goes, the options a request
//! turns into, and the plan of an in-place restore of a configured source.

use std::path::{Path, PathBuf};

use backstop_engine::Error as E;
use backstop_engine::database::{
    DatabasePlan, DatabaseRestoreOptions, database_item, plan_database,
};
use backstop_engine::{Indexed, Repository};
use backstop_format::Timestamp;
use backstop_format::manifest::Item;

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
