//! The write path: storing new content with deduplication against the index, parallel
//! compression and encryption (`ChunkStore`, this file), packing (`packing`), chunking
//! (`chunker`) and the content trees that describe each item (`builder`). Operations that write
//! (backup, prune's repack, repair) go through here.
//!
//! Crash safety (see docs/design.md, "Write ordering"): packs are written first, each under a
//! temporary name, synced, then renamed; the index file naming them is written only after all
//! of its packs are durable; the snapshot is written last. A crash before the snapshot leaves
//! packs (and perhaps an index) that no snapshot references: harmless, and collected by prune.

pub(crate) mod builder;
pub mod chunker;
pub(crate) mod packing;
pub(crate) mod patches;

use std::sync::Arc;
use std::sync::mpsc::Sender;

use backstop_format::ChunkId;
use backstop_format::blob::seal_chunk;
use backstop_format::crypto::Crypter;
use backstop_format::pack::{BlobKind, PackBuilder};
use backstop_format::tree::{ChunkRef, Content, INLINE_MAX, TreeNode, is_boundary};
use rayon::prelude::*;

use crate::error::Error;
use crate::error::Result;
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::indexed::Indexed;
use crate::repository::spill::{NewChunks, SpillOptions};
use crate::store::chunker::Batch;
pub use crate::store::packing::StoreStats;
use crate::store::packing::{
    PackJob, PackWriter, SealJob, Sealer, Stored, pack_frames, plan_frames, seal_frames,
};

/// Largest tree pack.
const TREE_PACK_SIZE: usize = 4 << 20;

/// Adds chunks to a repository during one backup. Data chunks are hashed and looked up here,
/// then sealed and packed by the [`Sealer`] while the next batch is hashed; tree nodes and
/// metadata are sealed and packed here.
pub struct ChunkStore<'a> {
    index: &'a Index,
    crypter: Crypter,
    level: i32,
    pack_size: usize,
    /// Chunks stored by this backup so far (the latest in memory, older ones in sorted runs in
    /// a scratch file past `SpillOptions::new_chunks`).
    session: NewChunks,
    tree: PackBuilder,
    sealer: Sealer,
    writer: PackWriter,
    /// Counts of what this thread stored; the sealer's and the writer's are added by
    /// [`ChunkStore::finish`].
    stats: StoreStats,
}

impl<'a> ChunkStore<'a> {
    pub fn new(ix: &'a Indexed<'_>) -> Self {
        Self::counting(ix.repo(), ix.index(), Arc::default())
    }

    /// A store that counts what it stores in `stored`, which outlives a failed store.
    pub(crate) fn counting(repo: &Repository, index: &'a Index, stored: Arc<Stored>) -> Self {
        let writer = PackWriter::spawn(repo.storage().clone(), repo.crypter().clone(), stored);
        let pack_size = repo.config().pack_size as usize;
        let level = repo.config().compression;
        Self {
            index,
            crypter: repo.crypter().clone(),
            level,
            pack_size,
            session: NewChunks::new(index.spill_options().clone()),
            tree: PackBuilder::new(),
            sealer: Sealer::spawn(repo.crypter().clone(), level, pack_size, writer.sender()),
            writer,
            stats: StoreStats::default(),
        }
    }

    pub fn crypter(&self) -> &Crypter {
        &self.crypter
    }

    /// Stores a batch of data chunks (in parallel) and returns their references in order.
    pub fn add_data(&mut self, chunks: &Batch) -> Result<Vec<ChunkRef>> {
        self.add_data_batch(chunks.clone(), None)
    }

    /// Like [`ChunkStore::add_data`], taking the batch: it is sealed and packed while the
    /// caller goes on, and then sent to `recycle`, if given, to be filled again.
    pub fn add_data_batch(
        &mut self,
        chunks: Batch,
        recycle: Option<Sender<Batch>>,
    ) -> Result<Vec<ChunkRef>> {
        let (ids, fresh) = self.look_up(&chunks)?;
        let refs = refs(&ids, &chunks);
        let frames = plan_frames(&chunks, &fresh);
        self.stats.chunks += chunks.len() as u64;
        let job = SealJob {
            chunks,
            ids,
            frames,
            recycle,
        };
        if let Err(e) = self.sealer.send(job) {
            // A writer that failed says why the sealer stopped.
            return Err(self.writer.join().err().unwrap_or(e));
        }
        Ok(refs)
    }

    /// Whether the chunk `id` is stored: in the index, or by this store before.
    pub(crate) fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.index.contains(id) || self.session.contains(id).map_err(Error::scratch)?)
    }

    /// When this backup moves what it holds into scratch files.
    pub(crate) fn spill_options(&self) -> &SpillOptions {
        self.index.spill_options()
    }

    /// Stores chunks of metadata (a snapshot's item list) with the tree nodes, so that reading
    /// a snapshot's structure never needs the data packs.
    pub fn add_meta(&mut self, chunks: &Batch) -> Result<Vec<ChunkRef>> {
        let (ids, fresh) = self.look_up(chunks)?;
        let frames = plan_frames(chunks, &fresh);
        let sealed = seal_frames(&self.crypter, chunks, &ids, &frames, self.level);
        let limit = self.pack_size.min(TREE_PACK_SIZE);
        let writer = &mut self.writer;
        pack_frames(
            &mut self.tree,
            &mut self.stats,
            &sealed,
            BlobKind::Tree,
            limit,
            &mut |pack| flush_tree(writer, pack),
        )?;
        self.stats.chunks += chunks.len() as u64;
        Ok(refs(&ids, chunks))
    }

    /// The ids of a batch's chunks (hashed in parallel), and which of them are new: neither in
    /// the index nor stored by this backup before.
    fn look_up(&mut self, chunks: &Batch) -> Result<(Vec<ChunkId>, Vec<bool>)> {
        let crypter = &self.crypter;
        let index = self.index;
        let session = &self.session;
        // Hashing and the lookups in the index and in this backup's runs on disk in parallel;
        // only this backup's in-memory set is sequential.
        let ids: Vec<(ChunkId, bool)> = (0..chunks.len())
            .into_par_iter()
            .map(|i| {
                let id = crypter.chunk_id(chunks.get(i));
                let known = index.contains(&id) || session.in_runs(&id)?;
                Ok((id, known))
            })
            .collect::<std::io::Result<_>>()
            .map_err(Error::scratch)?;
        let fresh = ids
            .iter()
            .map(|(id, known)| !known && self.session.insert(*id))
            .collect();
        self.session.spill_if_full().map_err(Error::scratch)?;
        Ok((ids.into_iter().map(|(id, _)| id).collect(), fresh))
    }

    /// Makes room in this backup's own set of new chunks for `n` more (up to the set's limit),
    /// before a content of about `n` chunks, most of them new, is stored: the set then never
    /// grows by doubling, which holds the old table and the new one (half as large again) at
    /// the same moment.
    pub fn expect_new_chunks(&mut self, n: u64) {
        self.session.reserve(n);
    }

    /// Counts `n` chunks of a content that was reused whole, all of them already stored, as
    /// [`ChunkStore::add_data`] would have counted them.
    pub fn count_known(&mut self, n: u64) {
        self.stats.chunks += n;
    }

    /// Stores one tree node and returns its id.
    fn add_tree(&mut self, node: &TreeNode) -> Result<ChunkId> {
        let bytes = node.encode();
        let id = self.crypter.chunk_id(&bytes);
        let known =
            self.index.contains(&id) || self.session.in_runs(&id).map_err(Error::scratch)?;
        if !known && self.session.insert(id) {
            self.session.spill_if_full().map_err(Error::scratch)?;
            let s = seal_chunk(&self.crypter, &bytes, self.level);
            self.stats.bytes_added += s.bytes.len() as u64;
            self.tree.add(id, BlobKind::Tree, &s);
            if self.tree.len() >= self.pack_size.min(TREE_PACK_SIZE) {
                flush_tree(&mut self.writer, &mut self.tree)?;
            }
        }
        Ok(id)
    }

    /// Writes the last packs and, once they are durable, the index file that names them.
    pub fn finish(mut self) -> Result<StoreStats> {
        let sealed = self.sealer.finish();
        flush_tree(&mut self.writer, &mut self.tree)?;
        let written = self.writer.join()?;
        let sealed = sealed?;
        // A lookup that could not read the index's scratch file answered "not stored": safe,
        // but the backup says so rather than pass.
        self.index.disk_error()?;
        let mut stats = self.stats;
        stats.chunks_new += sealed.chunks_new;
        stats.raw_added += sealed.raw_added;
        stats.bytes_added += sealed.bytes_added + written.overhead;
        // Every pack went through the writer.
        stats.packs = written.packs;
        Ok(stats)
    }
}

impl Drop for ChunkStore<'_> {
    /// A store dropped without [`ChunkStore::finish`] (a failed backup) stops its threads
    /// before the caller goes on (and releases its lock): the sealer drops what it has not
    /// packed, and the writer names the packs it stored in an index file, for later backups
    /// to find and prune to collect.
    fn drop(&mut self) {
        self.sealer.abandon();
        let _ = self.writer.join();
    }
}

/// References to a batch's chunks.
fn refs(ids: &[ChunkId], chunks: &Batch) -> Vec<ChunkRef> {
    ids.iter()
        .zip(chunks.iter())
        .map(|(id, c)| ChunkRef {
            id: *id,
            size: c.len() as u64,
        })
        .collect()
}

/// Hands a tree pack, if it holds anything, to the writer. Tree packs are kept smaller than
/// data packs: a large database's tree is megabytes that would otherwise sit in memory until
/// the end of the backup.
fn flush_tree(writer: &mut PackWriter, pack: &mut PackBuilder) -> Result<()> {
    if pack.is_empty() {
        return Ok(());
    }
    writer.send(PackJob {
        pack: std::mem::take(pack),
        recycle: None,
    })
}

/// Builds the content description of one item as its chunks arrive (see
/// `backstop_format::tree` for the shape).
#[derive(Debug, Default)]
pub struct TreeBuilder {
    /// Pending entries per level.
    levels: Vec<Vec<ChunkRef>>,
    size: u64,
    flushed_any: bool,
}

impl TreeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, store: &mut ChunkStore<'_>, r: ChunkRef) -> Result<()> {
        self.size += r.size;
        self.push_at(store, 0, r)
    }

    fn push_at(&mut self, store: &mut ChunkStore<'_>, level: usize, r: ChunkRef) -> Result<()> {
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        self.levels[level].push(r);
        if is_boundary(&r.id, self.levels[level].len()) {
            self.flush_level(store, level)?;
        }
        Ok(())
    }

    fn flush_level(&mut self, store: &mut ChunkStore<'_>, level: usize) -> Result<()> {
        let entries = std::mem::take(&mut self.levels[level]);
        let node = TreeNode {
            level: u8::try_from(level).expect("trees are far shallower than 256 levels"),
            entries,
        };
        let size = node.size();
        let id = store.add_tree(&node)?;
        self.flushed_any = true;
        self.push_at(store, level + 1, ChunkRef { id, size })
    }

    /// Completes the tree; `hash` is the whole-content hash.
    pub fn finish(mut self, store: &mut ChunkStore<'_>, hash: String) -> Result<Content> {
        let mut content = Content {
            size: self.size,
            hash,
            chunks: Vec::new(),
            tree: None,
            delta: None,
        };
        if !self.flushed_any && self.levels.first().is_none_or(|l| l.len() <= INLINE_MAX) {
            content.chunks = self.levels.pop().unwrap_or_default();
            return Ok(content);
        }
        let mut level = 0;
        loop {
            let top = level + 1 >= self.levels.len();
            if top && level > 0 && self.levels[level].len() == 1 {
                content.tree = self.levels[level].pop();
                return Ok(content);
            }
            if !self.levels[level].is_empty() {
                self.flush_level(store, level)?;
            }
            level += 1;
        }
    }
}
