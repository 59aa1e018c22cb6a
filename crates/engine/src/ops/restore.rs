//! Restore: plan first (what would be written, what exists already), then write.

use std::path::{Path, PathBuf};

use backstop_format::manifest::{DatabaseMeta, Item, ItemKind, Snapshot};
use backstop_format::tree::Content;
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::restore::{FilesPlan, FilesRestorer, Prepared, Replaced, Written};
use backstop_sources::sqlite::{QUICK_CHECK_AGAIN, QUICK_CHECK_AT_CAPTURE, check_image};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::content::{FrameCache, ItemReader, Loader};
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

/// The items of a snapshot to restore: its item list, read as the restore goes (a tree of a
/// million files has an item list of hundreds of megabytes once parsed).
#[derive(Debug, Clone)]
pub struct RestoreItems {
    list: Content,
}

impl RestoreItems {
    /// The items, one at a time.
    pub fn read<'a>(&self, ix: &'a Indexed<'_>) -> ItemReader<'a> {
        ix.loader().item_reader(&self.list)
    }
}

/// Reads a snapshot's items and computes the plan.
pub fn plan_restore(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<(RestorePlan, RestoreItems)> {
    let items = RestoreItems {
        list: snap.items.clone(),
    };
    let mut files = FilesPlan::new(&opts.target);
    for item in items.read(ix) {
        files.add(&opts.target, &item?)?;
    }
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
    items: &RestoreItems,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let _lock = crate::repository::lock::Lock::for_reading(ix, "restore", &opts.host, progress)?;
    let loader = ix.loader();
    let mut out = FilesRestorer::new(&opts.target, &plan.files, opts.overwrite)?;
    progress.phase("restore", Some(plan.files.bytes));
    let mut written = 0;
    let mut frames = FrameCache::default();
    let mut group = Group::default();
    for item in items.read(ix) {
        let item = item?;
        progress.item(&item.path);
        if Group::takes(&item) {
            let prepared = out.prepare_file(&item)?;
            group.push(item, prepared);
            if group.is_full() {
                written += group.write(loader, &mut out, progress)?;
            }
            continue;
        }
        // A directory is made at once: the waiting files are in directories made before (a
        // directory comes before its contents), and making one never makes a link. Anything
        // else waits for them: a link could take the place of a directory they go into.
        if item.kind == ItemKind::Dir {
            out.dir(&item)?;
            continue;
        }
        written += group.write(loader, &mut out, progress)?;
        let item = &item;
        match item.kind {
            // Made above, without waiting for the group.
            ItemKind::Dir => {}
            ItemKind::Symlink => out.symlink(item)?,
            ItemKind::File | ItemKind::Stream | ItemKind::Sqlite => {
                let mut err = None;
                let mut write = |w: &mut dyn std::io::Write| {
                    let r = match &item.content {
                        None => return Ok(()),
                        Some(c) if Loader::is_small(c) => {
                            loader.write_small(c, w, &mut frames, progress)
                        }
                        Some(c) => loader.write_content(c, w, progress),
                    };
                    if let Err(e) = r {
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
    written += group.write(loader, &mut out, progress)?;
    out.finish()?;
    Ok(RestoreSummary {
        plan,
        bytes_written: written,
    })
}

/// Small files waiting to be written, their paths checked in order: a tree of small files is
/// mostly the creation of files, which the system does for several at a time as fast as for
/// one. The group's files are split into one run per thread, each written in order with a
/// frame cache of its own (neighbouring small files share frames).
#[derive(Default)]
struct Group {
    files: Vec<(Item, Prepared)>,
    bytes: u64,
}

impl Group {
    /// Files written at a time at most, and their bytes.
    const FILES: usize = 512;
    const BYTES: u64 = 32 << 20;

    /// Whether an item is a small plain file (see [`Loader::is_small`]).
    fn takes(item: &Item) -> bool {
        matches!(item.kind, ItemKind::File | ItemKind::Stream)
            && item.database.is_none()
            && item.content.as_ref().is_none_or(Loader::is_small)
    }

    fn push(&mut self, item: Item, prepared: Prepared) {
        self.bytes += item.content.as_ref().map_or(0, |c| c.size);
        self.files.push((item, prepared));
    }

    fn is_full(&self) -> bool {
        self.files.len() >= Self::FILES || self.bytes >= Self::BYTES
    }

    /// Writes the group's files and returns their bytes; the first failure, in item order, is
    /// the error.
    fn write(
        &mut self,
        loader: Loader<'_>,
        out: &mut FilesRestorer,
        progress: &dyn Progress,
    ) -> Result<u64> {
        if self.files.is_empty() {
            return Ok(0);
        }
        let files = std::mem::take(&mut self.files);
        self.bytes = 0;
        let per_thread = files.len().div_ceil(rayon::current_num_threads().max(1));
        let shared = &*out;
        // Every file to its temporary name (on every thread)...
        let runs: Vec<Result<Vec<Written>>> = files
            .par_chunks(per_thread)
            .map(|run| {
                let mut frames = FrameCache::default();
                let mut done = Vec::with_capacity(run.len());
                for (item, prepared) in run {
                    let mut err = None;
                    let mut write = |w: &mut dyn std::io::Write| match &item.content {
                        None => Ok(()),
                        Some(c) => loader
                            .write_small(c, w, &mut frames, progress)
                            .map_err(|e| {
                                let msg = e.to_string();
                                err = Some(e);
                                backstop_sources::Error::Invalid(msg)
                            }),
                    };
                    let r = shared.write_prepared(prepared, item, &mut write);
                    if let Some(e) = err {
                        return Err(e);
                    }
                    done.push(r?);
                }
                Ok(done)
            })
            .collect();
        // ... (the first failure in item order is the error; the temporary files of the
        // others go with them) ...
        let runs: Vec<Vec<Written>> = runs.into_iter().collect::<Result<_>>()?;
        // ... the replacements made durable at once, then every file moved into place.
        let all: Vec<&Written> = runs.iter().flatten().collect();
        out.make_durable(&all)?;
        let replaced: Vec<Result<Replaced>> = runs
            .into_par_iter()
            .map(|run| Ok(shared.put_in_place(run)?))
            .collect();
        for r in replaced {
            out.wrote_prepared(r?);
        }
        Ok(files
            .iter()
            .map(|(item, _)| item.content.as_ref().map_or(0, |c| c.size))
            .sum())
    }
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
