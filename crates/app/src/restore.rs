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
pub use backstop_sources::server::Observed;

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
    target.create(like)?;
    let loaded = target.restore_tables(tables, &mut |w| {
        ix.loader()
            .write_content(content, w, &backstop_engine::NoProgress)
            .map_err(|e| backstop_sources::Error::Invalid(format!("{e}")))
    });
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
