//! Storing new content: deduplication against the index, parallel compression and
//! encryption, packing, and the content trees that describe each item.
//!
//! Crash safety (see docs/design.md, "Write ordering"): packs are written first, each under a
//! temporary name, synced, then renamed; the index file naming them is written only after all
//! of its packs are durable; the snapshot is written last. A crash before the snapshot leaves
//! packs (and perhaps an index) that no snapshot references: harmless, and collected by prune.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use backstop_format::blob::{FRAME_TARGET, seal_chunk, seal_frame};
use backstop_format::crypto::Crypter;
use backstop_format::pack::{BlobEntry, BlobKind, IndexFile, IndexPack, PackBuilder};
use backstop_format::tree::{ChunkRef, Content, INLINE_MAX, TreeNode, is_boundary};
use backstop_format::{ChunkId, IndexId, PackId};
use backstop_storage::{Kind, Storage};
use rayon::prelude::*;

use crate::chunker::Batch;
use crate::error::{Error, Result};
use crate::index::{IdSet, Index};
use crate::repo::Repository;

type FinishedPack = (PackId, Vec<u8>, Vec<BlobEntry>);

/// Index entries after which the pack writer writes an index file: bounds the memory that
/// entries of a long backup hold (a 1 GiB database is 262,144 entries, 15 MiB).
const INDEX_FILE_ENTRIES: usize = 32 * 1024;

/// Writes packs on a thread of its own so compression goes on while a pack is synced, and
/// writes index files for the packs it has stored: an index file is written only after every
/// pack it names is durable, and the snapshot only after the last index file.
struct PackWriter {
    tx: Option<SyncSender<FinishedPack>>,
    /// Bytes of index files written.
    handle: Option<JoinHandle<Result<u64>>>,
}

fn write_index(
    storage: &dyn Storage,
    crypter: &Crypter,
    packs: &mut Vec<IndexPack>,
) -> Result<u64> {
    if packs.is_empty() {
        return Ok(0);
    }
    let file = IndexFile {
        packs: std::mem::take(packs),
        supersedes: Vec::new(),
    };
    let bytes = file.encode(crypter);
    storage.write(Kind::Index, &IndexId::random().to_hex(), &bytes)?;
    Ok(bytes.len() as u64)
}

impl PackWriter {
    fn spawn(storage: Arc<dyn Storage>, crypter: Crypter) -> Self {
        let (tx, rx): (SyncSender<FinishedPack>, Receiver<FinishedPack>) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("pack-writer".into())
            .spawn(move || {
                let mut pending = Vec::new();
                let mut entries = 0;
                let mut index_bytes = 0;
                for (id, bytes, blobs) in rx {
                    storage.write(Kind::Pack, &id.to_hex(), &bytes)?;
                    entries += blobs.len();
                    pending.push(IndexPack {
                        id,
                        size: bytes.len() as u64,
                        blobs,
                    });
                    if entries >= INDEX_FILE_ENTRIES {
                        index_bytes += write_index(storage.as_ref(), &crypter, &mut pending)?;
                        entries = 0;
                    }
                }
                index_bytes += write_index(storage.as_ref(), &crypter, &mut pending)?;
                Ok(index_bytes)
            })
            .expect("spawning a thread");
        Self {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&mut self, pack: FinishedPack) -> Result<()> {
        let tx = self.tx.as_ref().expect("writer is open until finish");
        if tx.send(pack).is_err() {
            // The writer stopped on an error: report that error.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::Invalid("pack writer stopped".into())));
        }
        Ok(())
    }

    fn join(&mut self) -> Result<u64> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Invalid("the pack writer panicked".into()))?,
            None => Ok(0),
        }
    }
}

/// Largest tree pack.
const TREE_PACK_SIZE: usize = 4 << 20;

/// Room for a full data pack, so its buffer is allocated once and never copied while growing.
fn data_capacity(pack_size: usize) -> usize {
    // A pack ends at most one frame past the limit, and its trailer takes about 50 bytes per
    // chunk (3 % of a pack of 1.5 KiB compressed pages).
    pack_size + pack_size / 16 + 4 * FRAME_TARGET
}

/// Stored bytes of the frames in a pack's entries (each frame counted once).
fn frame_bytes(entries: &[BlobEntry]) -> u64 {
    let mut last = None;
    let mut sum = 0;
    for e in entries {
        if last != Some(e.offset) {
            sum += u64::from(e.length);
            last = Some(e.offset);
        }
    }
    sum
}

/// Counts of what a store added.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreStats {
    /// Packs written.
    pub packs: u64,
    pub chunks: u64,
    pub chunks_new: u64,
    /// Plaintext bytes of new chunks.
    pub raw_added: u64,
    /// Stored bytes of new chunks.
    pub bytes_added: u64,
}

/// Adds chunks to a repository during one backup.
pub struct ChunkStore<'a> {
    index: &'a Index,
    crypter: Crypter,
    level: i32,
    pack_size: usize,
    /// Chunks stored by this backup so far.
    session: IdSet,
    data: PackBuilder,
    tree: PackBuilder,
    writer: PackWriter,
    pub stats: StoreStats,
}

impl<'a> ChunkStore<'a> {
    pub fn new(repo: &Repository, index: &'a Index) -> Self {
        Self {
            index,
            crypter: repo.crypter().clone(),
            level: repo.config().compression,
            pack_size: repo.config().pack_size as usize,
            session: IdSet::default(),
            data: PackBuilder::with_capacity(data_capacity(repo.config().pack_size as usize)),
            tree: PackBuilder::new(),
            writer: PackWriter::spawn(repo.storage().clone(), repo.crypter().clone()),
            stats: StoreStats::default(),
        }
    }

    pub fn crypter(&self) -> &Crypter {
        &self.crypter
    }

    /// Stores a batch of data chunks (in parallel) and returns their references in order.
    pub fn add_data(&mut self, chunks: &Batch) -> Result<Vec<ChunkRef>> {
        self.add_chunks(chunks, BlobKind::Data)
    }

    /// Stores chunks of metadata (a snapshot's item list) with the tree nodes, so that reading
    /// a snapshot's structure never needs the data packs.
    pub fn add_meta(&mut self, chunks: &Batch) -> Result<Vec<ChunkRef>> {
        self.add_chunks(chunks, BlobKind::Tree)
    }

    fn add_chunks(&mut self, chunks: &Batch, kind: BlobKind) -> Result<Vec<ChunkRef>> {
        let crypter = &self.crypter;
        let index = self.index;
        // Hashing and the index lookup in parallel; only this backup's own set is sequential.
        let ids: Vec<(ChunkId, bool)> = (0..chunks.len())
            .into_par_iter()
            .map(|i| {
                let id = crypter.chunk_id(chunks.get(i));
                (id, index.contains(&id))
            })
            .collect();
        let fresh: Vec<bool> = ids
            .iter()
            .map(|(id, known)| !known && self.session.insert(*id))
            .collect();
        let ids: Vec<ChunkId> = ids.into_iter().map(|(id, _)| id).collect();
        // New chunks, in order, grouped into frames of about FRAME_TARGET bytes.
        let mut frames: Vec<Vec<usize>> = Vec::new();
        let mut frame_bytes = 0;
        for (i, c) in chunks.iter().enumerate().filter(|(i, _)| fresh[*i]) {
            if frames.is_empty()
                || frame_bytes >= FRAME_TARGET
                || frame_bytes + c.len() > 2 * FRAME_TARGET
            {
                frames.push(Vec::new());
                frame_bytes = 0;
            }
            frames.last_mut().expect("just pushed").push(i);
            frame_bytes += c.len();
        }
        let level = self.level;
        let sealed: Vec<_> = frames
            .par_iter()
            .map(|members| {
                // New chunks that follow each other in the batch are one slice already: no
                // need to join them (the usual case, a run of new pages).
                let (first, last) = (members[0], members[members.len() - 1]);
                if last - first + 1 == members.len() {
                    return seal_frame(crypter, &[chunks.span(first, last)], level);
                }
                let parts: Vec<&[u8]> = members.iter().map(|&i| chunks.get(i)).collect();
                seal_frame(crypter, &parts, level)
            })
            .collect();
        for (members, s) in frames.iter().zip(&sealed) {
            let entries: Vec<_> = members
                .iter()
                .map(|&i| (ids[i], kind, chunks.get(i).len() as u32))
                .collect();
            self.stats.chunks_new += members.len() as u64;
            self.stats.raw_added += u64::from(s.raw_len);
            self.stats.bytes_added += s.bytes.len() as u64;
            let builder = match kind {
                BlobKind::Data => &mut self.data,
                BlobKind::Tree => &mut self.tree,
            };
            builder.add_frame(&entries, s);
            if builder.len() >= self.limit(kind) {
                self.flush(kind)?;
            }
        }
        self.stats.chunks += chunks.len() as u64;
        Ok(ids
            .iter()
            .zip(chunks.iter())
            .map(|(id, c)| ChunkRef {
                id: *id,
                size: c.len() as u64,
            })
            .collect())
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
        if !self.index.contains(&id) && self.session.insert(id) {
            let s = seal_chunk(&self.crypter, &bytes, 3);
            self.stats.bytes_added += s.bytes.len() as u64;
            self.tree.add(id, BlobKind::Tree, &s);
            if self.tree.len() >= self.limit(BlobKind::Tree) {
                self.flush(BlobKind::Tree)?;
            }
        }
        Ok(id)
    }

    /// Size at which a pack is written. Tree packs are kept smaller: a large database's tree
    /// is megabytes that would otherwise sit in memory until the end of the backup.
    fn limit(&self, kind: BlobKind) -> usize {
        match kind {
            BlobKind::Data => self.pack_size,
            BlobKind::Tree => self.pack_size.min(TREE_PACK_SIZE),
        }
    }

    fn flush(&mut self, kind: BlobKind) -> Result<()> {
        let builder = match kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.tree,
        };
        if builder.is_empty() {
            return Ok(());
        }
        let fresh = match kind {
            BlobKind::Data => PackBuilder::with_capacity(data_capacity(self.pack_size)),
            BlobKind::Tree => PackBuilder::new(),
        };
        let full = std::mem::replace(builder, fresh);
        let pack = full.finish(&self.crypter);
        self.stats.packs += 1;
        // Pack headers and trailers count as added bytes too.
        self.stats.bytes_added += (pack.1.len() as u64).saturating_sub(frame_bytes(&pack.2));
        self.writer.send(pack)
    }

    /// Writes the last packs and, once they are durable, the index file that names them.
    pub fn finish(mut self) -> Result<StoreStats> {
        self.flush(BlobKind::Data)?;
        self.flush(BlobKind::Tree)?;
        self.stats.bytes_added += self.writer.join()?;
        Ok(self.stats)
    }
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
