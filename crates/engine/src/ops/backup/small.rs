//! Small files, read and stored many at a time.
//!
//! A tree of an application's folder is mostly files of a few kilobytes. Reading each on a
//! thread of its own and handing each to the sealer as a batch of one chunk costs a thread, a
//! dozen hand-offs between threads and a compression set-up per file: for 300,000 files of
//! 3 KB that was most of the time of a backup (docs/plans/issue-19.md). So the entries of
//! ordinary files up to [`SMALL_FILE`] bytes wait in a [`Group`] (with the entries without
//! content that come between them, to keep the item list in order) until the group holds
//! [`GROUP_BYTES`] or [`GROUP_FILES`] files; then the group's files are read whole and hashed on
//! the thread pool, cut into one batch of chunks, looked up and sealed as one batch (so that a
//! frame packs the chunks of several files and the sealer is woken once per group), and their
//! items recorded in order.
//!
//! The chunks are exactly those the streaming path cuts (the cutter's cuts do not depend on how
//! the bytes arrive), so a file stored here and the same file stored by the streaming path share
//! their chunks. A file that grew past what its metadata said by more than [`GROWTH`] bytes is
//! not read whole: what was read and the rest of the file go through the streaming path.

use std::io::Read;

use backstop_format::config::ChunkerParams;
use backstop_format::manifest::{Item, ItemKind};
use backstop_sources::{Chunking, Entry};
use rayon::prelude::*;

use crate::store::chunker::{Batch, Cutter};

/// Ordinary files up to this size (by their metadata) are read whole, in groups.
pub(super) const SMALL_FILE: u64 = 1 << 20;
/// A group is stored once its files' sizes reach this many bytes...
const GROUP_BYTES: u64 = 8 << 20;
/// ... or it holds this many files: each is an open file until the group is read, and a process
/// may have only about a thousand open at a time on some systems.
const GROUP_FILES: usize = 256;
/// Bytes a small file may have grown since its metadata was read and still be read whole.
const GROWTH: u64 = 64 * 1024;

/// An entry waiting in a group: its content's reader (none for an entry without content).
pub(super) struct Queued {
    pub entry: Entry,
    reader: Option<(Box<dyn Read + Send>, Chunking)>,
}

/// What reading a small file whole gave.
pub(super) enum Outcome {
    /// The whole content: its chunks are `chunks` of the group's batch.
    Whole {
        chunks: std::ops::Range<usize>,
        size: u64,
        hash: String,
    },
    /// The file grew: what was read, then the rest, for the streaming path.
    Grown(Box<dyn Read + Send>, Chunking),
    Failed(std::io::Error),
}

/// Entries waiting to be stored together (see the module documentation).
#[derive(Default)]
pub(super) struct Group {
    queued: Vec<Queued>,
    bytes: u64,
    files: usize,
}

impl Group {
    /// Whether an entry with this item and content chunking is stored in a group.
    pub fn takes(item: &Item, chunking: Chunking) -> bool {
        item.kind == ItemKind::File
            && item.size <= SMALL_FILE
            && !matches!(chunking, Chunking::Fixed(_))
    }

    /// Queues a small file (see [`Group::takes`]).
    pub fn push_file(&mut self, entry: Entry, reader: Box<dyn Read + Send>, chunking: Chunking) {
        self.bytes += entry.item.size;
        self.files += 1;
        self.queued.push(Queued {
            entry,
            reader: Some((reader, chunking)),
        });
    }

    /// Queues an entry without content, to be recorded after the files before it.
    pub fn push_plain(&mut self, entry: Entry) {
        self.queued.push(Queued {
            entry,
            reader: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether the group should be stored now.
    pub fn is_full(&self) -> bool {
        self.bytes >= GROUP_BYTES || self.files >= GROUP_FILES
    }

    /// Reads every queued file whole (in parallel) and cuts them into one batch: the entries in
    /// order, each with the outcome of reading it (`None` for an entry without content), and
    /// the batch. The group is left empty.
    pub fn read(&mut self, params: ChunkerParams) -> (Vec<(Entry, Option<Outcome>)>, Batch) {
        let queued = std::mem::take(&mut self.queued);
        self.bytes = 0;
        self.files = 0;
        let (entries, readers): (Vec<Entry>, Vec<_>) = queued
            .into_iter()
            .map(|q| {
                let size = q.entry.item.size;
                (q.entry, q.reader.map(|(r, chunking)| (r, chunking, size)))
            })
            .unzip();
        let read: Vec<Option<Read1>> = readers
            .into_par_iter()
            .map(|r| r.map(|(r, chunking, size)| read_whole(r, chunking, size)))
            .collect();
        let bytes = read
            .iter()
            .map(|r| match r {
                Some(Read1::Whole { bytes, .. }) => bytes.len(),
                _ => 0,
            })
            .sum();
        let mut batch = Batch::with_capacity(bytes);
        let entries = entries
            .into_iter()
            .zip(read)
            .map(|(entry, r)| {
                let outcome = r.map(|r| match r {
                    Read1::Whole {
                        bytes,
                        hash,
                        chunking,
                    } => {
                        let first = batch.len();
                        let mut cutter = Cutter::new(chunking, params);
                        cutter.push(&bytes, &mut batch);
                        cutter.finish(&mut batch);
                        Outcome::Whole {
                            chunks: first..batch.len(),
                            size: bytes.len() as u64,
                            hash,
                        }
                    }
                    Read1::Grown(r, chunking) => Outcome::Grown(r, chunking),
                    Read1::Failed(e) => Outcome::Failed(e),
                });
                (entry, outcome)
            })
            .collect();
        (entries, batch)
    }
}

/// One file read on the thread pool.
enum Read1 {
    Whole {
        bytes: Vec<u8>,
        hash: String,
        chunking: Chunking,
    },
    Grown(Box<dyn Read + Send>, Chunking),
    Failed(std::io::Error),
}

/// Reads a file of about `size` bytes whole and hashes it.
fn read_whole(mut reader: Box<dyn Read + Send>, chunking: Chunking, size: u64) -> Read1 {
    let limit = size + GROWTH;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    if let Err(e) = reader.by_ref().take(limit).read_to_end(&mut bytes) {
        return Read1::Failed(e);
    }
    if bytes.len() as u64 >= limit {
        let rest = std::io::Cursor::new(bytes).chain(reader);
        return Read1::Grown(Box::new(rest), chunking);
    }
    let hash = blake3::hash(&bytes).to_hex().to_string();
    Read1::Whole {
        bytes,
        hash,
        chunking,
    }
}
