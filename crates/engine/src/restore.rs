//! Restore: plan first (what would be written, what exists already), then write.

use std::path::PathBuf;

use backstop_format::manifest::{Item, ItemKind, Snapshot};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::restore::{FilesPlan, FilesRestorer, plan};
use serde::Serialize;

use crate::content::Loader;
use crate::error::Result;
use crate::index::Index;
use crate::progress::Progress;
use crate::repo::Repository;

/// Where and how to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub overwrite: bool,
    /// Recorded in the shared lock held while reading.
    pub host: String,
}

/// What a restore will do, shown by `--dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub snapshot: SnapshotId,
    pub source: String,
    pub time: Timestamp,
    #[serde(flatten)]
    pub files: FilesPlan,
    pub overwrite: bool,
}

/// The result of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    #[serde(flatten)]
    pub plan: RestorePlan,
    pub bytes_written: u64,
}

/// Loads a snapshot's items and computes the plan.
pub fn plan_restore(
    repo: &Repository,
    index: &Index,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<(RestorePlan, Vec<Item>)> {
    let items = Loader::new(repo, index).read_items(&snap.items)?;
    let files = plan(&opts.target, &items)?;
    Ok((
        RestorePlan {
            snapshot: id,
            source: snap.source.name.clone(),
            time: snap.time,
            files,
            overwrite: opts.overwrite,
        },
        items,
    ))
}

/// Carries out a plan. Each file is written beside its destination and moved into place only
/// after all of its chunks were checked; a failure stops the restore with an error.
pub fn restore(
    repo: &Repository,
    index: &Index,
    plan: RestorePlan,
    items: &[Item],
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let _lock = crate::lock::Lock::for_reading(repo, index, "restore", &opts.host, progress)?;
    let loader = Loader::new(repo, index);
    let mut out = FilesRestorer::new(&opts.target, &plan.files, opts.overwrite)?;
    progress.phase("restore", Some(plan.files.bytes));
    let mut written = 0;
    for item in items {
        progress.item(&item.path);
        match item.kind {
            ItemKind::Dir => out.dir(item)?,
            ItemKind::Symlink => out.symlink(item)?,
            ItemKind::File | ItemKind::Stream | ItemKind::Sqlite => {
                let mut err = None;
                let r = out.file(item, &mut |w| {
                    if let Some(c) = &item.content
                        && let Err(e) = loader.write_content(c, w, progress)
                    {
                        let msg = e.to_string();
                        err = Some(e);
                        return Err(backstop_sources::Error::Invalid(msg));
                    }
                    Ok(())
                });
                if let Some(e) = err {
                    return Err(e);
                }
                r?;
                written += item.content.as_ref().map_or(0, |c| c.size);
            }
            ItemKind::Unknown => {
                progress.warning(&format!(
                    "skipped {}: written by a newer version",
                    item.path
                ));
            }
        }
    }
    out.finish()?;
    Ok(RestoreSummary {
        plan,
        bytes_written: written,
    })
}
