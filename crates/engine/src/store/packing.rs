//! The two threads behind a [`crate::store::ChunkStore`]: the sealer, which compresses (and
//! encrypts) the frames of one batch of data chunks and packs them while the backup hashes the
//! next batch, and the pack writer, which finishes each pack, stores it durably (several at a
//! time where the storage asks for it: a remote store) and then writes the index files that
//! name the stored packs.
//!
//! Crash safety (see docs/design.md, "Write ordering"): a pack is written under a temporary
//! name, synced, then renamed; an index file is written only after every pack it names is
//! durable; the snapshot only after [`Sealer::finish`] and [`PackWriter::join`] returned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use backstop_format::blob::{FRAME_TARGET, SealedChunk, seal_frame};
use backstop_format::crypto::Crypter;
use backstop_format::pack::{BlobEntry, BlobKind, IndexFile, IndexPack, PackBuilder};
use backstop_format::{ChunkId, IndexId};
use backstop_storage::{Kind, Storage};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::store::chunker::Batch;

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

/// Index entries after which the pack writer writes an index file: bounds the memory that
/// entries of a long backup hold (a 1 GiB database is 262,144 entries, 15 MiB).
const INDEX_FILE_ENTRIES: usize = 32 * 1024;

/// A full pack to finish and store, and where its buffer goes once stored (to be filled again
/// instead of allocated and faulted in afresh).
pub(crate) struct PackJob {
    pub pack: PackBuilder,
    pub recycle: Option<Sender<Vec<u8>>>,
}

/// What the writer did: packs stored, and the bytes of pack headers, trailers and index files
/// (everything but the frames, which the sealer counts).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub packs: u64,
    pub overhead: u64,
}

/// What a writer has stored so far, readable after it failed: what a failed backup leaves.
#[derive(Debug, Default)]
pub struct Stored {
    pub packs: AtomicU64,
    pub pack_bytes: AtomicU64,
    pub index_files: AtomicU64,
}

/// Writes packs on a thread of its own, so that compression goes on while a pack is synced.
pub(crate) struct PackWriter {
    tx: Option<SyncSender<PackJob>>,
    handle: Option<JoinHandle<Result<Written>>>,
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
    // Index files are never replaced (prune writes new ones and deletes the old).
    storage.write_new(Kind::Index, &IndexId::random().to_hex(), &bytes)?;
    Ok(bytes.len() as u64)
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

/// Packs stored at once at most, whatever the storage asks: each holds a pack buffer.
const MAX_UPLOADS: usize = 4;

/// Finishes a pack (its trailer and hash, off the thread that feeds the compression), stores
/// it, and hands its buffer back: its index entry once it is stored.
fn store_pack(
    storage: &dyn Storage,
    crypter: &Crypter,
    stored: &Stored,
    job: PackJob,
) -> Result<IndexPack> {
    let (id, bytes, blobs) = job.pack.finish(crypter);
    // Packs of tree nodes and item lists are read again by later runs: a storage with a
    // local cache keeps them.
    if blobs.first().is_some_and(|b| b.kind == BlobKind::Tree) {
        storage.write_cached(Kind::Pack, &id.to_hex(), &bytes)?;
    } else {
        storage.write(Kind::Pack, &id.to_hex(), &bytes)?;
    }
    stored.packs.fetch_add(1, Ordering::Relaxed);
    stored
        .pack_bytes
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let pack = IndexPack {
        id,
        size: bytes.len() as u64,
        blobs,
    };
    if let Some(r) = job.recycle {
        let _ = r.send(bytes);
    }
    Ok(pack)
}

impl PackWriter {
    /// A writer storing up to `storage.parallelism()` packs at a time (one on a local disk,
    /// several to a remote store, where each write waits mostly on the network).
    pub fn spawn(storage: Arc<dyn Storage>, crypter: Crypter, stored: Arc<Stored>) -> Self {
        // A rendezvous channel: a full pack waits in the sealer's hands until an uploader is
        // free. A queued pack would be one more pack buffer in memory (a pack size each)
        // while writing rarely takes longer than sealing the next pack.
        let (tx, rx) = sync_channel::<PackJob>(0);
        let uploaders = storage.parallelism().clamp(1, MAX_UPLOADS);
        let handle = std::thread::Builder::new()
            .name("pack-writer".into())
            .spawn(move || {
                let rx = Mutex::new(rx);
                // Set at the first failure: an uploader then takes no further pack, so that
                // the sealer's next send fails once every uploader is gone (it holds the
                // receiver until then).
                let failed = AtomicBool::new(false);
                std::thread::scope(|s| {
                    // Stored packs, from whichever uploader stored them: only a stored pack is
                    // named by an index file.
                    let (done_tx, done_rx) = channel::<Result<IndexPack>>();
                    for i in 0..uploaders {
                        let (rx, done_tx, failed) = (&rx, done_tx.clone(), &failed);
                        let (storage, crypter, stored) = (&storage, &crypter, &stored);
                        std::thread::Builder::new()
                            .name(format!("pack-upload-{i}"))
                            .spawn_scoped(s, move || {
                                loop {
                                    // The lock is held only while waiting for the next job.
                                    let job = rx.lock().expect("pack queue").recv();
                                    let Ok(job) = job else { return };
                                    if failed.load(Ordering::Relaxed) {
                                        return;
                                    }
                                    let r = store_pack(storage.as_ref(), crypter, stored, job);
                                    let stop = r.is_err();
                                    if done_tx.send(r).is_err() || stop {
                                        return;
                                    }
                                }
                            })
                            .expect("spawning a thread");
                    }
                    drop(done_tx);
                    let collect = || -> Result<Written> {
                        let mut pending = Vec::new();
                        let mut entries = 0;
                        let mut done = Written::default();
                        for r in &done_rx {
                            let pack = r?;
                            done.packs += 1;
                            done.overhead += pack.size.saturating_sub(frame_bytes(&pack.blobs));
                            entries += pack.blobs.len();
                            pending.push(pack);
                            if entries >= INDEX_FILE_ENTRIES {
                                done.overhead +=
                                    write_index(storage.as_ref(), &crypter, &mut pending)?;
                                stored.index_files.fetch_add(1, Ordering::Relaxed);
                                entries = 0;
                            }
                        }
                        if !pending.is_empty() {
                            done.overhead += write_index(storage.as_ref(), &crypter, &mut pending)?;
                            stored.index_files.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(done)
                    };
                    let written = collect();
                    if written.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    // The receiver of stored packs goes before the uploaders are waited for:
                    // their next send fails and they stop.
                    drop(done_rx);
                    written
                })
            })
            .expect("spawning a thread");
        Self {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// A sender for another thread that makes packs (the sealer).
    pub fn sender(&self) -> SyncSender<PackJob> {
        self.tx.clone().expect("writer is open until joined")
    }

    pub fn send(&mut self, job: PackJob) -> Result<()> {
        let tx = self.tx.as_ref().expect("writer is open until joined");
        if tx.send(job).is_err() {
            // The writer stopped on an error: report that error.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::Internal("pack writer stopped".into())));
        }
        Ok(())
    }

    /// Waits until every pack sent (by this handle and by every sender it gave out, all of
    /// which must be gone) is stored and named by an index file.
    pub fn join(&mut self) -> Result<Written> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Internal("the pack writer panicked".into()))?,
            None => Ok(Written::default()),
        }
    }
}

/// Room for a full data pack, so its buffer is allocated once and never copied while growing.
pub(crate) fn data_capacity(pack_size: usize) -> usize {
    // A pack ends at most one frame past the limit, and its trailer takes about 50 bytes per
    // chunk (3 % of a pack of 1.5 KiB compressed pages).
    pack_size + pack_size / 16 + 4 * FRAME_TARGET
}

/// The new chunks of a batch, in order, grouped into frames of about [`FRAME_TARGET`] bytes.
pub(crate) fn plan_frames(chunks: &Batch, fresh: &[bool]) -> Vec<Vec<usize>> {
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
    frames
}

/// A batch's new chunks, grouped into frames and sealed: what [`pack_frames`] appends to a pack.
pub(crate) struct SealedBatch<'b> {
    chunks: &'b Batch,
    /// Ids of all chunks of the batch.
    ids: &'b [ChunkId],
    frames: &'b [Vec<usize>],
    sealed: Vec<SealedChunk>,
}

/// Compresses and encrypts the frames of a batch, in parallel.
pub(crate) fn seal_frames<'b>(
    crypter: &Crypter,
    chunks: &'b Batch,
    ids: &'b [ChunkId],
    frames: &'b [Vec<usize>],
    level: i32,
) -> SealedBatch<'b> {
    let sealed = frames
        .par_iter()
        .map(|members| {
            // New chunks that follow each other in the batch are one slice already: no need
            // to join them (the usual case, a run of new pages).
            let (first, last) = (members[0], members[members.len() - 1]);
            if last - first + 1 == members.len() {
                return seal_frame(crypter, &[chunks.span(first, last)], level);
            }
            let parts: Vec<&[u8]> = members.iter().map(|&i| chunks.get(i)).collect();
            seal_frame(crypter, &parts, level)
        })
        .collect();
    SealedBatch {
        chunks,
        ids,
        frames,
        sealed,
    }
}

/// Appends sealed frames to `pack`, counting them in `stats`; calls `flush` whenever the pack
/// reaches `limit` bytes.
pub(crate) fn pack_frames(
    pack: &mut PackBuilder,
    stats: &mut StoreStats,
    batch: &SealedBatch<'_>,
    kind: BlobKind,
    limit: usize,
    flush: &mut dyn FnMut(&mut PackBuilder) -> Result<()>,
) -> Result<()> {
    for (members, s) in batch.frames.iter().zip(&batch.sealed) {
        let entries: Vec<_> = members
            .iter()
            .map(|&i| (batch.ids[i], kind, batch.chunks.get(i).len() as u32))
            .collect();
        stats.chunks_new += members.len() as u64;
        stats.raw_added += u64::from(s.raw_len);
        stats.bytes_added += s.bytes.len() as u64;
        pack.add_frame(&entries, s);
        if pack.len() >= limit {
            flush(pack)?;
        }
    }
    Ok(())
}

/// One batch of data chunks for the sealer: the batch, the ids of all its chunks, its new
/// chunks grouped into frames, and where the batch goes once sealed (back to its reader).
pub(crate) struct SealJob {
    pub chunks: Batch,
    pub ids: Vec<ChunkId>,
    pub frames: Vec<Vec<usize>>,
    pub recycle: Option<Sender<Batch>>,
}

enum SealMsg {
    Batch(SealJob),
    /// Pack what is left and stop. A sealer whose channel closes without this (a backup that
    /// failed) stops without writing its last, partial pack.
    Finish,
}

/// Seals and packs the data chunks of a backup on a thread of its own: batch N is compressed
/// (on the thread pool) and packed while the caller hashes batch N+1 and looks its chunks up.
pub(crate) struct Sealer {
    tx: Option<SyncSender<SealMsg>>,
    handle: Option<JoinHandle<Result<StoreStats>>>,
}

impl Sealer {
    pub fn spawn(
        crypter: Crypter,
        level: i32,
        pack_size: usize,
        writer: SyncSender<PackJob>,
    ) -> Self {
        // A rendezvous channel: the caller hashes batch N+1 while batch N is sealed, and hands
        // N+1 over when the sealer is ready for it (a queued batch would be one more in memory).
        let (tx, rx) = sync_channel::<SealMsg>(0);
        let handle = std::thread::Builder::new()
            .name("sealer".into())
            .spawn(move || seal_loop(&rx, &crypter, level, pack_size, &writer))
            .expect("spawning a thread");
        Self {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn send(&mut self, job: SealJob) -> Result<()> {
        let tx = self.tx.as_ref().expect("sealer is open until finished");
        if tx.send(SealMsg::Batch(job)).is_err() {
            return Err(self
                .finish()
                .err()
                .unwrap_or_else(|| Error::Internal("the sealer stopped".into())));
        }
        Ok(())
    }

    /// Packs what is left and returns the counts of what was sealed.
    pub fn finish(&mut self) -> Result<StoreStats> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(SealMsg::Finish);
        }
        self.join()
    }

    /// Stops without packing what is left (a failed backup).
    pub fn abandon(&mut self) {
        self.tx = None;
        let _ = self.join();
    }

    fn join(&mut self) -> Result<StoreStats> {
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Internal("the sealer panicked".into()))?,
            None => Ok(StoreStats::default()),
        }
    }
}

fn seal_loop(
    rx: &Receiver<SealMsg>,
    crypter: &Crypter,
    level: i32,
    pack_size: usize,
    writer: &SyncSender<PackJob>,
) -> Result<StoreStats> {
    let mut stats = StoreStats::default();
    // Stored packs' buffers come back from the writer to be filled again.
    let (recycle, buffers) = channel::<Vec<u8>>();
    let fresh = |buffers: &Receiver<Vec<u8>>| match buffers.try_recv() {
        Ok(buf) => PackBuilder::with_buffer(buf),
        Err(_) => PackBuilder::with_capacity(data_capacity(pack_size)),
    };
    let mut pack = fresh(&buffers);
    let mut flush = |pack: &mut PackBuilder| -> Result<()> {
        if pack.is_empty() {
            return Ok(());
        }
        writer
            .send(PackJob {
                pack: std::mem::take(pack),
                recycle: Some(recycle.clone()),
            })
            .map_err(|_| Error::Internal("the pack writer stopped".into()))?;
        // Only now: the writer took this pack after handing back the buffer of the one before,
        // so two pack buffers are all that ever circulate.
        *pack = fresh(&buffers);
        Ok(())
    };
    for msg in rx {
        let job = match msg {
            SealMsg::Batch(job) => job,
            SealMsg::Finish => {
                flush(&mut pack)?;
                return Ok(stats);
            }
        };
        let sealed = seal_frames(crypter, &job.chunks, &job.ids, &job.frames, level);
        pack_frames(
            &mut pack,
            &mut stats,
            &sealed,
            BlobKind::Data,
            pack_size,
            &mut flush,
        )?;
        if let Some(r) = job.recycle {
            let _ = r.send(job.chunks);
        }
    }
    Ok(stats)
}
