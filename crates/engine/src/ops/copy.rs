//! Copying snapshots to another repository: the offsite copy of a 3-2-1 setup.
//!
//! Where the destination makes the same chunk ids as the source (the same id key: a repository
//! made by [`Repository::init_like`], or two unencrypted ones), a copy is a matter of
//! chunks: every chunk a snapshot needs (its item list, and every item's tree nodes, patch
//! list and data) that the destination does not hold is read from the source (checked against
//! its id), stored in the destination (compressed and encrypted with its own settings), and
//! then the manifest is written there under the snapshot's own id: a copied snapshot keeps its
//! identity, so both repositories show it as the same snapshot. Into a repository with other
//! keys (made on its own), the contents are restored and stored again as the destination cuts
//! them (see [`rechunk`]), under the same snapshot ids.
//!
//! Crash safety is the backup's: the manifests are written only after `ChunkStore::finish`
//! has made every chunk they name durable and indexed (docs/design.md, "Write ordering"), under
//! the destination's shared lock. An interrupted copy leaves at most unreferenced packs, or
//! indexed chunks that the next copy finds and does not send again (it is resumable), and a
//! snapshot already in the destination is never copied twice (it is idempotent).

use std::cell::RefCell;
use std::collections::HashSet;

use backstop_format::manifest::Snapshot;
use backstop_format::pack::BlobKind;
use backstop_format::tree::Content;
use backstop_format::{ChunkId, SnapshotId, Timestamp};
use backstop_storage::Kind;

use crate::error::{Error, Result};
use crate::ops::backup::{ItemList, store_reader};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::indexed::Indexed;
use crate::repository::lock::Lock;
use crate::store::ChunkStore;
use crate::store::chunker::Batch;
use backstop_sources::Chunking;

/// Bytes of chunks gathered before they are handed to the destination's store.
const BATCH_BYTES: usize = 4 << 20;

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The snapshots to copy; empty copies every snapshot the destination lacks.
    pub snapshots: Vec<SnapshotId>,
    /// The host named in the destination's lock.
    pub host: String,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Snapshots copied, oldest first.
    pub copied: Vec<SnapshotId>,
    /// Snapshots asked for (or all) that the destination already held.
    pub present: Vec<SnapshotId>,
    /// Chunks sent: those the destination lacked.
    pub chunks_new: u64,
    /// Stored bytes they took in the destination.
    pub bytes_added: u64,
}

/// Whether `to` makes the same chunk ids as `from`: the condition for copying chunk by chunk.
pub fn same_chunk_ids(from: &Repository, to: &Repository) -> bool {
    let probe = b"backstop: do these repositories share their chunk ids?";
    from.crypter().chunk_id(probe) == to.crypter().chunk_id(probe)
}

/// Copies the snapshots of `from` that `to` lacks (or those `opts` names) into `to`.
pub fn copy(
    from: &Indexed<'_>,
    to: &Indexed<'_>,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopySummary> {
    let (src, dst) = (from.repo(), to.repo());
    let _lock = Lock::acquire(dst, false, "copy", &opts.host, Timestamp::now())?;
    // The index was loaded before the lock: a prune in between may have removed chunks it
    // lists, and skipping those would leave a copied snapshot without them.
    to.check_current()?;
    let list = src.snapshots()?;
    let wanted: Vec<&(SnapshotId, Snapshot)> = if opts.snapshots.is_empty() {
        list.readable.iter().collect()
    } else {
        let mut w = Vec::new();
        for id in &opts.snapshots {
            match list.readable.iter().find(|(s, _)| s == id) {
                Some(found) => w.push(found),
                None => {
                    return Err(Error::NotFound(format!(
                        "snapshot {id} is not in {} (or cannot be read there)",
                        src.location()
                    )));
                }
            }
        }
        w
    };
    let there: HashSet<String> = dst
        .storage()
        .list(Kind::Snapshot)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let mut summary = CopySummary::default();
    let (todo, present): (Vec<_>, Vec<_>) = wanted
        .into_iter()
        .partition(|(id, _)| !there.contains(&id.to_hex()));
    summary.present = present.iter().map(|(id, _)| *id).collect();
    if todo.is_empty() {
        return Ok(summary);
    }
    progress.phase("copy", None);
    if !same_chunk_ids(src, dst) {
        return rechunk(from, to, &todo, summary, progress);
    }
    let mut store = ChunkStore::new(to);
    let mut sender = Sender {
        loader: from.loader(),
        data: Batch::new(),
        meta: Batch::new(),
        pending: HashSet::new(),
        progress,
    };
    for (_, snap) in &todo {
        sender.content(&mut store, &snap.items)?;
        for item in sender.loader.read_items(&snap.items)? {
            if let Some(c) = &item.content {
                sender.content(&mut store, c)?;
            }
        }
    }
    sender.flush(&mut store)?;
    let stats = store.finish()?;
    summary.chunks_new = stats.chunks_new;
    summary.bytes_added = stats.bytes_added;
    for (id, snap) in &todo {
        if dst.write_snapshot_as(id, snap)? {
            summary.copied.push(*id);
        } else {
            summary.present.push(*id);
        }
    }
    Ok(summary)
}

/// The copy into a repository with other keys (made on its own, or one of two unencrypted
/// and encrypted ones): its chunk ids differ, so no tree of the source can be used there.
/// Each item's content is restored from the source and stored again as the destination cuts
/// it (a database by its pages, a file by content), as a full tree; the item list is written
/// again with the new contents, and the manifest, otherwise the source's, under the snapshot's
/// own id. A content whose bytes do not hash to what the snapshot says stops the copy. Chunks
/// the destination holds already (from an earlier copy, or another version) are not stored
/// again; the destination's ids keep it deduplicated from then on.
fn rechunk(
    from: &Indexed<'_>,
    to: &Indexed<'_>,
    todo: &[&(SnapshotId, Snapshot)],
    mut summary: CopySummary,
    progress: &dyn Progress,
) -> Result<CopySummary> {
    let loader = from.loader();
    let params = to.repo().config().chunker;
    let mut store = ChunkStore::new(to);
    let mut made = Vec::with_capacity(todo.len());
    for (id, snap) in todo {
        let mut list = ItemList::new();
        for mut item in loader.read_items(&snap.items)? {
            if let Some(content) = item.content.take() {
                let chunking = match (&content.delta, &item.database) {
                    (Some(d), _) => Chunking::Fixed(d.chunk_size),
                    (None, Some(db)) => Chunking::Fixed(db.page_size),
                    (None, None) => backstop_sources::chunking_for(&item.path),
                };
                let again = restore_into(&mut store, loader, &content, chunking, params, progress)
                    .map_err(|e| match e {
                        Error::Integrity(why) => Error::Integrity(format!(
                            "snapshot {}, {}: {why}",
                            id.short(),
                            item.path
                        )),
                        e => e,
                    })?;
                item.content = Some(again);
            }
            list.push(&mut store, &item)?;
        }
        let items = list.finish(&mut store)?;
        made.push((
            *id,
            Snapshot {
                items,
                ..snap.clone()
            },
        ));
    }
    let stats = store.finish()?;
    summary.chunks_new = stats.chunks_new;
    summary.bytes_added = stats.bytes_added;
    for (id, snap) in &made {
        if to.repo().write_snapshot_as(id, snap)? {
            summary.copied.push(*id);
        } else {
            summary.present.push(*id);
        }
    }
    Ok(summary)
}

/// `content` restored from `loader` (on a thread of its own, through a pipe) and stored into
/// `store` as `chunking` cuts it; its size and hash must be the ones recorded.
fn restore_into(
    store: &mut ChunkStore<'_>,
    loader: Loader<'_>,
    content: &Content,
    chunking: Chunking,
    params: backstop_format::config::ChunkerParams,
    progress: &dyn Progress,
) -> Result<Content> {
    let (reader, mut writer) =
        std::io::pipe().map_err(|e| Error::Invalid(format!("cannot make a pipe: {e}")))?;
    std::thread::scope(|s| {
        let restorer = s.spawn(move || {
            let r = loader.write_content(content, &mut writer, &crate::progress::NoProgress);
            drop(writer);
            r
        });
        let stored = store_reader(store, Box::new(reader), chunking, params, progress);
        let restored = restorer
            .join()
            .map_err(|_| Error::Internal("the restoring thread panicked".into()))?;
        // The source's error first: a failed restore ends the stream early.
        restored?;
        let again = stored?.map_err(|e| Error::Invalid(format!("copying content: {e}")))?;
        if again.size != content.size || again.hash != content.hash {
            return Err(Error::Integrity(format!(
                "its bytes ({} bytes, hash {}) are not the ones recorded ({} bytes, hash {})",
                again.size, again.hash, content.size, content.hash
            )));
        }
        Ok(again)
    })
}

/// Gathers the chunks the destination lacks into batches by kind and stores them.
struct Sender<'a, 'p> {
    loader: Loader<'a>,
    data: Batch,
    meta: Batch,
    /// Chunks in the batches, not yet handed to the store.
    pending: HashSet<ChunkId>,
    progress: &'p dyn Progress,
}

impl Sender<'_, '_> {
    /// Every chunk of `content`: its tree nodes (or a delta's base nodes and patch list) and
    /// its data chunks.
    fn content(&mut self, store: &mut ChunkStore<'_>, content: &Content) -> Result<()> {
        let ids = RefCell::new(Vec::new());
        let loader = self.loader;
        let mut failed = None;
        let walked = loader.walk(
            content,
            &mut |node| ids.borrow_mut().push(node.id),
            &mut |r| {
                ids.borrow_mut().push(r.id);
                if ids.borrow().len() >= 4096 {
                    let batch = std::mem::take(&mut *ids.borrow_mut());
                    if let Err(e) = self.chunks(store, &batch) {
                        failed = Some(e);
                        return Err(Error::Cancelled);
                    }
                }
                Ok(())
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        walked?;
        self.chunks(store, &ids.into_inner())
    }

    fn chunks(&mut self, store: &mut ChunkStore<'_>, ids: &[ChunkId]) -> Result<()> {
        for id in ids {
            if self.pending.contains(id) || store.contains(id)? {
                continue;
            }
            let loc = self.loader.index.get(id).ok_or_else(|| {
                Error::Integrity(format!(
                    "chunk {id} is not in the source's index (missing index file or pack)"
                ))
            })?;
            let bytes = self.loader.read_chunk(id)?;
            self.progress.bytes(bytes.len() as u64);
            match loc.kind {
                BlobKind::Data => self.data.push(&bytes),
                BlobKind::Tree => self.meta.push(&bytes),
            }
            self.pending.insert(*id);
            if self.data.bytes() + self.meta.bytes() >= BATCH_BYTES {
                self.flush(store)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, store: &mut ChunkStore<'_>) -> Result<()> {
        let check = |refs: Vec<backstop_format::tree::ChunkRef>, pending: &HashSet<ChunkId>| {
            // The destination made the same ids (checked up front): a chunk that hashes to
            // another id there would be lost, so it stops the copy.
            match refs.iter().find(|r| !pending.contains(&r.id)) {
                Some(r) => Err(Error::Internal(format!(
                    "chunk {} was stored under another id in the destination",
                    r.id
                ))),
                None => Ok(()),
            }
        };
        if !self.data.is_empty() {
            let refs = store.add_data(&self.data)?;
            check(refs, &self.pending)?;
            self.data = Batch::new();
        }
        if !self.meta.is_empty() {
            let refs = store.add_meta(&self.meta)?;
            check(refs, &self.pending)?;
            self.meta = Batch::new();
        }
        self.pending.clear();
        Ok(())
    }
}
