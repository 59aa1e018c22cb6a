//! Restore: plan first (what would be written, what exists already), then write.

use std::path::{Path, PathBuf};

use backstop_format::manifest::{DatabaseMeta, Item, ItemKind, Snapshot};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::restore::{FilesPlan, FilesRestorer, plan};
use backstop_sources::sqlite::{QUICK_CHECK_AGAIN, QUICK_CHECK_AT_CAPTURE, check_image};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::indexed::Indexed;

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
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<(RestorePlan, Vec<Item>)> {
    let items = ix.loader().read_items(&snap.items)?;
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
    ix: &Indexed<'_>,
    plan: RestorePlan,
    items: &[Item],
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let _lock = crate::repository::lock::Lock::for_reading(ix, "restore", &opts.host, progress)?;
    let loader = ix.loader();
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
                let mut write = |w: &mut dyn std::io::Write| {
                    if let Some(c) = &item.content
                        && let Err(e) = loader.write_content(c, w, progress)
                    {
                        let msg = e.to_string();
                        err = Some(e);
                        return Err(backstop_sources::Error::Invalid(msg));
                    }
                    Ok(())
                };
                let r = match &item.database {
                    Some(meta) if item.kind == ItemKind::Sqlite => {
                        let mut check_err = None;
                        let r = out.database(item, &mut write, &mut |image| {
                            check_database(item, meta, image, progress).map_err(|e| {
                                let msg = e.to_string();
                                check_err = Some(e);
                                backstop_sources::Error::Invalid(msg)
                            })
                        });
                        if let Some(e) = check_err {
                            return Err(e);
                        }
                        r
                    }
                    _ => out.file(item, &mut write),
                };
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

/// Checks a restored database image (every chunk already matched its id) against what was
/// recorded at capture before it is moved into place. A database that was already damaged when
/// captured is restored as it was, with a warning: it is the data there was.
fn check_database(
    item: &Item,
    meta: &DatabaseMeta,
    image: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let checks = check_image(image, meta, false, false)?;
    let bad: Vec<String> = checks
        .iter()
        // A database damaged at capture fails these again: it is the data there was.
        .filter(|c| !c.passed && c.name != QUICK_CHECK_AT_CAPTURE && c.name != QUICK_CHECK_AGAIN)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !bad.is_empty() {
        return Err(Error::Integrity(format!(
            "the restored database {} does not match its snapshot ({})",
            item.path,
            bad.join("; ")
        )));
    }
    if !meta.is_healthy() {
        progress.warning(&format!(
            "{} was restored as captured; it had failed its integrity check then ({})",
            item.path, meta.quick_check
        ));
    }
    Ok(())
}
