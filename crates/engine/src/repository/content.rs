//! Reading content back: resolving an item's tree into its chunks, fetching chunks from packs
//! in parallel, and checking every chunk against its id before handing out a single byte.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{channel, sync_channel};

use backstop_format::ChunkId;
use backstop_format::blob::{open_chunk, open_chunk_into};
use backstop_format::manifest::Item;
use backstop_format::pack::BlobKind;
use backstop_format::tree::{ChunkRef, Content, TreeNode, decode_patches};
use backstop_storage::Kind;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::direct::ALIGN;
use crate::repository::index::{Index, Location};

/// Plaintext bytes decoded per window of a restore; two windows are in flight at once.
const WINDOW: u64 = 8 << 20;
/// Largest single read from a pack.
const MAX_RANGE: u64 = 4 << 20;
/// The same two from a remote storage (one that keeps several requests in flight): each read
/// is a request that costs both ends far more than a disk read, so there are fewer, larger
/// ones, for about 40 MiB more memory. A database restored from a bucket on the same machine
/// made 444 requests with the local sizes and about half as many with these, taking the
/// server's CPU time from 2.3 to 1.7 s and the restore from 3.4 to 2.8 s (bench/README.md,
/// "S3 bench").
const REMOTE_WINDOW: u64 = 16 << 20;
const REMOTE_MAX_RANGE: u64 = 16 << 20;
/// Largest gap between two frames of a pack that one read spans: reading (and copying) 64 KiB
/// it does not need costs less than a read call of its own.
const MAX_GAP: u64 = 64 << 10;

/// One read from a pack: pack position, offset, length.
type Read = (u32, u64, u64);

/// A frame a restore window needs: its stored bytes, its location (of any of its chunks: the
/// frame fields are the same), how many of the window's chunks are in it, and, when they are
/// all of its chunks in order one after the other, the position of the first of them.
struct Frame<'b> {
    stored: &'b [u8],
    loc: &'b Location,
    jobs: usize,
    whole: Option<usize>,
}

/// A slice of a restore window and the chunks (of one frame) that go into it.
type Slot<'w, 'j> = (&'w mut [u8], &'j [(usize, &'j ChunkId, &'j Location)]);

/// A restore window whose frames have been read: its chunks and their locations, for each
/// frame the chunk whose location names it and where it lies in `reads`, and for each chunk
/// its frame.
struct Fetched {
    refs: Vec<ChunkRef>,
    locs: Vec<Location>,
    firsts: Vec<usize>,
    frame_of_chunk: Vec<usize>,
    placed: Vec<(usize, usize)>,
    reads: Vec<Vec<u8>>,
}

/// Reads chunks of one repository through its index.
#[derive(Debug, Clone, Copy)]
pub struct Loader<'a> {
    pub repo: &'a Repository,
    pub index: &'a Index,
    /// Check every chunk against its id (see [`Loader::trusting_content_hash`]).
    check_chunks: bool,
}

impl<'a> Loader<'a> {
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        Self {
            repo,
            index,
            check_chunks: true,
        }
    }

    /// This loader without the check of each chunk against its id, for a caller that hashes
    /// the whole content as it is written and uses nothing it wrote unless that hash equals
    /// the snapshot's: the hash covers every byte, and one BLAKE3 pass fewer is about a sixth
    /// of a database restore's work. (Encrypted frames are authenticated either way.)
    pub fn trusting_content_hash(self) -> Self {
        Self {
            check_chunks: false,
            ..self
        }
    }

    /// Whether reads go to a remote storage (see [`REMOTE_WINDOW`]).
    fn remote(&self) -> bool {
        self.repo.storage().parallelism() > 1
    }

    fn locate(&self, id: &ChunkId) -> Result<Location> {
        self.index.get(id).ok_or_else(|| {
            Error::Integrity(format!(
                "chunk {id} is not in the index (missing index file or pack)"
            ))
        })
    }

    /// Decodes one frame from its stored bytes.
    pub(crate) fn open_frame(&self, loc: &Location, stored: &[u8]) -> Result<Vec<u8>> {
        open_chunk(
            self.repo.crypter(),
            stored,
            loc.compressed,
            loc.frame_length,
        )
        .map_err(|e| self.frame_error(loc, e))
    }

    fn frame_error(&self, loc: &Location, e: backstop_format::FormatError) -> Error {
        let pack = self.index.pack(loc.pack).id;
        Error::Integrity(format!("frame at {} in pack {pack}: {e}", loc.offset))
    }

    /// Cuts one chunk out of its decoded frame and checks it against its id.
    pub(crate) fn cut(&self, id: &ChunkId, loc: &Location, frame: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; loc.raw_length as usize];
        self.cut_into(id, loc, frame, &mut out)?;
        Ok(out)
    }

    /// Like [`Loader::cut`], into a slice of exactly the chunk's length.
    fn cut_into(&self, id: &ChunkId, loc: &Location, frame: &[u8], out: &mut [u8]) -> Result<()> {
        let a = loc.raw_offset as usize;
        let plain = frame
            .get(a..a + loc.raw_length as usize)
            .ok_or_else(|| Error::Integrity(format!("chunk {id} lies outside its frame")))?;
        self.check_id(id, loc, plain)?;
        out.copy_from_slice(plain);
        Ok(())
    }

    /// Checks a chunk's plaintext against its id.
    fn check_id(&self, id: &ChunkId, loc: &Location, plain: &[u8]) -> Result<()> {
        if self.check_chunks && self.repo.crypter().chunk_id(plain) != *id {
            let pack = self.index.pack(loc.pack).id;
            return Err(Error::Integrity(format!(
                "chunk {id} in pack {pack} does not match its id (damaged data)"
            )));
        }
        Ok(())
    }

    /// Decodes one chunk from its frame's stored bytes and checks it against its id.
    fn decode(&self, id: &ChunkId, loc: &Location, stored: &[u8]) -> Result<Vec<u8>> {
        self.cut(id, loc, &self.open_frame(loc, stored)?)
    }

    /// Reads a range of a pack. A pack that is missing or shorter than the index says is damage
    /// to the repository (an integrity error), not an ordinary I/O failure.
    fn read_pack(&self, pack: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        let id = self.index.pack(pack).id;
        match self
            .repo
            .storage()
            .read_range(Kind::Pack, &id.to_hex(), offset, len)
        {
            Ok(b) => Ok(b),
            Err(
                e @ (backstop_storage::Error::NotFound { .. }
                | backstop_storage::Error::ShortRead { .. }),
            ) => Err(Error::Integrity(format!("pack {id}: {e}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads and checks one chunk. A tree node or item list chunk is read through the
    /// storage's cache of tree packs where it has one (`Storage::read_range_cached`): later
    /// runs read the same nodes again.
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        let pack = self.index.pack(loc.pack).id.to_hex();
        let (offset, len) = (loc.offset.into(), loc.length.into());
        let storage = self.repo.storage();
        let stored = match loc.kind {
            BlobKind::Tree => storage.read_range_cached(Kind::Pack, &pack, offset, len)?,
            BlobKind::Data => storage.read_range(Kind::Pack, &pack, offset, len)?,
        };
        self.decode(id, &loc, &stored)
    }

    fn read_node(&self, r: &ChunkRef) -> Result<TreeNode> {
        let bytes = self.read_chunk(&r.id)?;
        let node = TreeNode::decode(&bytes)
            .map_err(|e| Error::format(format!("tree node {}", r.id), e))?;
        if node.size() != r.size {
            return Err(Error::Integrity(format!(
                "tree node {} covers the wrong number of bytes",
                r.id
            )));
        }
        Ok(node)
    }

    /// A cursor over a full tree (not a delta), reading one node per level at a time.
    pub fn cursor(&self, content: &Content) -> Cursor<'a> {
        Cursor {
            loader: *self,
            inline: content.chunks.clone(),
            inline_pos: 0,
            root: content.tree,
            pending: None,
            stack: Vec::new(),
        }
    }

    /// A cursor over the full tree with this root node.
    pub fn tree_cursor(&self, root: ChunkRef) -> Cursor<'a> {
        Cursor {
            loader: *self,
            inline: Vec::new(),
            inline_pos: 0,
            root: Some(root),
            pending: None,
            stack: Vec::new(),
        }
    }

    /// Calls `f` for every data chunk of `content`, in order, and `on_node` for every tree node
    /// (and patch list chunk) on the way, before reading it.
    pub fn walk(
        &self,
        content: &Content,
        on_node: &mut dyn FnMut(&ChunkRef),
        f: &mut dyn FnMut(ChunkRef) -> Result<()>,
    ) -> Result<()> {
        let Some(d) = &content.delta else {
            let mut c = self.cursor(content);
            while let Some(step) = c.next_step()? {
                match step {
                    Step::Node(r) => on_node(&r),
                    Step::Chunk(r) => f(r)?,
                }
            }
            return Ok(());
        };
        if d.patch.delta.is_some() || d.chunk_size == 0 {
            return Err(Error::Integrity(
                "a delta's patch list is itself a delta".into(),
            ));
        }
        let mut patch_chunks = Vec::new();
        self.walk(&d.patch, on_node, &mut |r| {
            patch_chunks.push(r);
            Ok(())
        })?;
        for r in &patch_chunks {
            on_node(r);
        }
        let bytes = self.read_content(&d.patch)?;
        let patches =
            decode_patches(&bytes).map_err(|e| Error::format("reading a delta's patch list", e))?;
        if patches.len() as u64 != d.patches {
            return Err(Error::Integrity(
                "a delta's patch list has the wrong length".into(),
            ));
        }
        let count = content.size.div_ceil(u64::from(d.chunk_size));
        let mut base = self.tree_cursor(d.base);
        let mut next_patch = patches.iter().peekable();
        for i in 0..count {
            let from_base = base.next_chunk_with(on_node)?;
            let r = match next_patch.peek() {
                Some((pi, r)) if *pi == i => {
                    next_patch.next();
                    *r
                }
                _ => from_base.ok_or_else(|| {
                    Error::Integrity(format!("a delta needs chunk {i}, past the end of its base"))
                })?,
            };
            f(r)?;
        }
        if next_patch.next().is_some() {
            return Err(Error::Integrity(
                "a delta's patch lies past the end of its content".into(),
            ));
        }
        Ok(())
    }

    /// Writes `content` to `out`, decoding in parallel while writing; every chunk is checked
    /// against its id first, and the total length against the content's size.
    pub fn write_content(
        &self,
        content: &Content,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut written = 0u64;
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = sync_channel::<Result<(Vec<u8>, usize)>>(1);
            // Written windows come back to be filled again: no window is allocated, zeroed
            // and faulted in afresh.
            let (done, free) = channel::<Vec<u8>>();
            // Three stages, a window apart: the walk reads the tree and fetches each window's
            // frames from the packs, a decoder opens them into a window buffer, and this
            // thread writes. Fetching window N+1 goes on while window N is decoded.
            let (fetched_tx, fetched_rx) = sync_channel::<Result<Fetched>>(1);
            let window_size = if self.remote() { REMOTE_WINDOW } else { WINDOW };
            let decoder = s.spawn(move || {
                for fetched in fetched_rx {
                    let batch = fetched
                        .and_then(|f| self.decode_window(&f, free.try_recv().unwrap_or_default()));
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            let producer = s.spawn(move || {
                let mut window: Vec<ChunkRef> = Vec::new();
                let mut window_bytes = 0u64;
                let send = |w: &mut Vec<ChunkRef>| -> bool {
                    let fetched = self.fetch_window(std::mem::take(w));
                    let failed = fetched.is_err();
                    fetched_tx.send(fetched).is_ok() && !failed
                };
                let r = self.walk(content, &mut |_| {}, &mut |r| {
                    window_bytes += r.size;
                    window.push(r);
                    if window_bytes >= window_size {
                        window_bytes = 0;
                        if !send(&mut window) {
                            return Err(Error::Cancelled);
                        }
                    }
                    Ok(())
                });
                match r {
                    Ok(()) => {
                        if !window.is_empty() {
                            send(&mut window);
                        }
                    }
                    Err(Error::Cancelled) => {}
                    Err(e) => {
                        let _ = fetched_tx.send(Err(e));
                    }
                }
            });
            for batch in rx {
                let (window, at) = batch?;
                let bytes = &window[at..];
                out.write_all(bytes).map_err(|e| {
                    Error::Source(backstop_sources::Error::Io {
                        context: "writing restored data".into(),
                        cause: e,
                    })
                })?;
                written += bytes.len() as u64;
                progress.bytes(bytes.len() as u64);
                let _ = done.send(window);
            }
            producer
                .join()
                .map_err(|_| Error::Internal("restore reader panicked".into()))?;
            decoder
                .join()
                .map_err(|_| Error::Internal("restore decoder panicked".into()))?;
            Ok(())
        })?;
        if written != content.size {
            return Err(Error::Integrity(format!(
                "content has {written} bytes, the snapshot says {}",
                content.size
            )));
        }
        Ok(())
    }

    /// Whether `content` is small enough for [`Loader::write_small`]: a few chunks named in the
    /// item itself (no tree, no delta).
    pub fn is_small(content: &Content) -> bool {
        content.tree.is_none() && content.delta.is_none() && content.size <= SMALL_CONTENT
    }

    /// Writes a small content (see [`Loader::is_small`]) to `out` on this thread, checking every
    /// chunk against its id and the total length, as [`Loader::write_content`] does for any
    /// content with threads of its own. The frames it decodes stay in `cache`: the small files
    /// of a tree were stored many to a frame, and are restored in the order they were stored.
    pub fn write_small(
        &self,
        content: &Content,
        out: &mut dyn Write,
        cache: &mut FrameCache,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut written = 0u64;
        for r in &content.chunks {
            let loc = self.locate(&r.id)?;
            if u64::from(loc.raw_length) != r.size {
                return Err(Error::Integrity(format!(
                    "chunk {} has the wrong length",
                    r.id
                )));
            }
            let frame = cache.frame(&loc, || {
                let stored = self.read_pack(loc.pack, loc.offset.into(), loc.length.into())?;
                self.open_frame(&loc, &stored)
            })?;
            let a = loc.raw_offset as usize;
            let plain = frame.get(a..a + loc.raw_length as usize).ok_or_else(|| {
                Error::Integrity(format!("chunk {} lies outside its frame", r.id))
            })?;
            self.check_id(&r.id, &loc, plain)?;
            out.write_all(plain).map_err(|e| {
                Error::Source(backstop_sources::Error::Io {
                    context: "writing restored data".into(),
                    cause: e,
                })
            })?;
            written += r.size;
            progress.bytes(r.size);
        }
        if written != content.size {
            return Err(Error::Integrity(format!(
                "content has {written} bytes, the snapshot says {}",
                content.size
            )));
        }
        Ok(())
    }

    /// Locates a window's chunks and reads the frames they are in: each frame once, the frames
    /// of one pack joined into range reads (see [`plan_reads`]), the reads in parallel.
    fn fetch_window(&self, refs: Vec<ChunkRef>) -> Result<Fetched> {
        let mut locs = Vec::with_capacity(refs.len());
        for r in &refs {
            let loc = self.locate(&r.id)?;
            if u64::from(loc.raw_length) != r.size {
                return Err(Error::Integrity(format!(
                    "chunk {} has the wrong length",
                    r.id
                )));
            }
            locs.push(loc);
        }
        let mut frame_of: HashMap<(u32, u32), usize> = HashMap::new();
        let mut firsts: Vec<usize> = Vec::new();
        let mut frame_of_chunk = Vec::with_capacity(refs.len());
        for (i, loc) in locs.iter().enumerate() {
            let f = *frame_of.entry((loc.pack, loc.offset)).or_insert_with(|| {
                firsts.push(i);
                firsts.len() - 1
            });
            frame_of_chunk.push(f);
        }
        let wanted: Vec<&Location> = firsts.iter().map(|&i| &locs[i]).collect();
        let max_range = if self.remote() {
            REMOTE_MAX_RANGE
        } else {
            MAX_RANGE
        };
        let (ranges, placed) = plan_reads(&wanted, max_range);
        // On this thread, one read after another: the pool decodes the window before while
        // the reads wait for the disk (or the network). (Several reads at a time from S3 were
        // tried: no faster on the bench, and 35 MiB more RSS; bench/README.md, "S3 bench".)
        let reads: Vec<Vec<u8>> = ranges
            .iter()
            .map(|&(pack, start, len)| self.read_pack(pack, start, len))
            .collect::<Result<_>>()?;
        Ok(Fetched {
            refs,
            locs,
            firsts,
            frame_of_chunk,
            placed,
            reads,
        })
    }

    /// Decodes a fetched window into `out` (a buffer to reuse, whatever it holds), from an
    /// address aligned to [`ALIGN`] (so that a file written past the page cache takes it as it
    /// is), and returns it with that offset. Frames are decoded in parallel.
    fn decode_window(&self, w: &Fetched, mut out: Vec<u8>) -> Result<(Vec<u8>, usize)> {
        let mut frames: Vec<Frame<'_>> = w
            .firsts
            .iter()
            .zip(&w.placed)
            .map(|(&i, &(read, at))| {
                let loc = &w.locs[i];
                Frame {
                    stored: &w.reads[read][at..at + loc.length as usize],
                    loc,
                    jobs: 0,
                    whole: None,
                }
            })
            .collect();
        let jobs: Vec<(usize, &ChunkId, &Location)> = w
            .frame_of_chunk
            .iter()
            .zip(w.refs.iter().zip(&w.locs))
            .map(|(&f, (r, loc))| (f, &r.id, loc))
            .collect();
        for (f, _, _) in &jobs {
            frames[*f].jobs += 1;
        }
        // A frame whose chunks follow each other in the window, in frame order and covering
        // the whole frame (the usual case: a run of pages stored together), is decoded straight
        // into the window; the others are decoded aside and cut out.
        let mut j = 0;
        while j < jobs.len() {
            let f = jobs[j].0;
            let frame = &mut frames[f];
            let run = &jobs[j..(j + frame.jobs).min(jobs.len())];
            let mut next = 0u64;
            let in_order = run.len() == frame.jobs
                && run.iter().all(|(g, _, loc)| {
                    let ok = *g == f && u64::from(loc.raw_offset) == next;
                    next += u64::from(loc.raw_length);
                    ok
                });
            if in_order && next == u64::from(frame.loc.frame_length) {
                frame.whole = Some(j);
                j += run.len();
            } else {
                j += 1;
            }
        }
        // One buffer for the window, cut into disjoint slices (a whole frame, or one chunk),
        // grouped by frame and filled in parallel, a frame at a time. Every byte is
        // overwritten, so only the part a reused buffer lacks is zeroed first. With room for
        // the alignment reserved first, the buffer does not move when it is resized.
        let total: usize = jobs.iter().map(|(_, _, loc)| loc.raw_length as usize).sum();
        out.reserve((total + ALIGN).saturating_sub(out.len()));
        let at = out.as_ptr().align_offset(ALIGN);
        out.resize(at + total, 0);
        let mut slots: Vec<Vec<Slot<'_, '_>>> = frames.iter().map(|_| Vec::new()).collect();
        let mut rest = &mut out[at..];
        let mut j = 0;
        while j < jobs.len() {
            let f = jobs[j].0;
            let n = if frames[f].whole == Some(j) {
                frames[f].jobs
            } else {
                1
            };
            let len: usize = jobs[j..j + n]
                .iter()
                .map(|(_, _, l)| l.raw_length as usize)
                .sum();
            let (head, tail) = rest.split_at_mut(len);
            slots[f].push((head, &jobs[j..j + n]));
            rest = tail;
            j += n;
        }
        frames
            .par_iter()
            .zip(slots.into_par_iter())
            .try_for_each(|(fr, slots)| self.fill_from_frame(fr, slots))?;
        Ok((out, at))
    }

    /// Decodes one frame into the window's slices that need it: straight into the slice when
    /// the window needs the whole frame in order, else into a scratch buffer to cut the chunks
    /// out of. Every chunk is checked against its id.
    fn fill_from_frame(&self, fr: &Frame<'_>, slots: Vec<Slot<'_, '_>>) -> Result<()> {
        thread_local! {
            /// Frames decoded aside: one buffer per thread, not one allocation per frame.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let open = |into: &mut [u8]| {
            open_chunk_into(self.repo.crypter(), fr.stored, fr.loc.compressed, into)
                .map_err(|e| self.frame_error(fr.loc, e))
        };
        if fr.whole.is_some() {
            for (slot, members) in slots {
                open(slot)?;
                let mut at = 0;
                for (_, id, loc) in members {
                    let chunk = &slot[at..at + loc.raw_length as usize];
                    self.check_id(id, loc, chunk)?;
                    at += chunk.len();
                }
            }
            return Ok(());
        }
        SCRATCH.with(|scratch| {
            let mut frame = scratch.borrow_mut();
            frame.resize(fr.loc.frame_length as usize, 0);
            open(&mut frame)?;
            for (slot, members) in slots {
                let (_, id, loc) = members[0];
                self.cut_into(id, loc, &frame, slot)?;
            }
            Ok(())
        })
    }

    /// Adds every chunk and tree node `content` uses to `used`: for a delta, the base's nodes
    /// and only the base chunks it does not patch. What was found before an error is added too.
    pub fn collect_ids(
        &self,
        content: &Content,
        used: &mut crate::repository::index::IdSet,
    ) -> Result<()> {
        let mut nodes = Vec::new();
        let r = self.walk(content, &mut |n| nodes.push(n.id), &mut |c| {
            used.insert(c.id);
            Ok(())
        });
        used.extend(nodes);
        r
    }

    /// Adds everything a snapshot uses (its item list and every item's content) to `used`.
    /// Contents whose tree root is in `walked` were added before (an unchanged file, a
    /// database version identical to its base) and are skipped. Goes on past damage, adding
    /// what can be read, and returns the first error.
    pub fn collect_snapshot_ids(
        &self,
        snap: &backstop_format::manifest::Snapshot,
        used: &mut crate::repository::index::IdSet,
        walked: &mut std::collections::HashSet<ChunkId>,
    ) -> Result<()> {
        let mut first = self.collect_ids(&snap.items, used).err();
        let items = match self.read_items(&snap.items) {
            Ok(items) => items,
            Err(e) => return Err(first.unwrap_or(e)),
        };
        for c in items.iter().filter_map(|i| i.content.as_ref()) {
            if let Some(root) = c.tree.map(|t| t.id)
                && !walked.insert(root)
            {
                continue;
            }
            if let Err(e) = self.collect_ids(c, used) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Reads a whole content into memory (item lists, small files).
    pub fn read_content(&self, content: &Content) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(content.size).unwrap_or(0).min(64 << 20));
        self.write_content(content, &mut out, &crate::progress::NoProgress)?;
        Ok(out)
    }

    /// The items of a snapshot's item list.
    pub fn read_items(&self, list: &Content) -> Result<Vec<Item>> {
        let bytes = self.read_content(list)?;
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(parse_item)
            .collect()
    }

    /// The items of a snapshot's item list, read a chunk at a time: memory is one chunk of the
    /// list and one item, whatever the number of items.
    pub fn item_reader(&self, list: &Content) -> ItemReader<'a> {
        ItemReader {
            loader: *self,
            cursor: self.cursor(list),
            delta: list.delta.is_some(),
            size: list.size,
            read: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
            failed: false,
        }
    }
}

fn parse_item(line: &[u8]) -> Result<Item> {
    serde_json::from_slice(line).map_err(|e| {
        Error::format(
            "reading the item list",
            backstop_format::FormatError::Json(e.to_string()),
        )
    })
}

/// Contents up to this size without a tree are written by [`Loader::write_small`] (an item names
/// at most [`backstop_format::tree::INLINE_MAX`] chunks itself, up to 256 KiB each).
const SMALL_CONTENT: u64 = 4 << 20;

/// The frames [`Loader::write_small`] decoded last, by pack and offset.
#[derive(Default)]
pub struct FrameCache {
    frames: std::collections::VecDeque<((u32, u32), Vec<u8>)>,
}

impl FrameCache {
    /// Frames kept: a few, for small files whose chunks lie in frames taken in turns.
    const FRAMES: usize = 8;

    fn frame(&mut self, loc: &Location, load: impl FnOnce() -> Result<Vec<u8>>) -> Result<&[u8]> {
        let key = (loc.pack, loc.offset);
        let i = match self.frames.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if self.frames.len() == Self::FRAMES {
                    self.frames.pop_front();
                }
                self.frames.push_back((key, load()?));
                self.frames.len() - 1
            }
        };
        Ok(&self.frames[i].1)
    }
}

/// An item list read as it is walked ([`Loader::item_reader`]). Every chunk is checked against
/// its id, and the list's length against its description, as [`Loader::read_items`] does.
pub struct ItemReader<'a> {
    loader: Loader<'a>,
    cursor: Cursor<'a>,
    /// Item lists are never deltas: one that claims to be is damaged.
    delta: bool,
    size: u64,
    read: u64,
    /// Bytes read and not yet parsed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    failed: bool,
}

impl ItemReader<'_> {
    fn next_item(&mut self) -> Result<Option<Item>> {
        if self.delta {
            return Err(Error::Integrity("an item list is stored as a delta".into()));
        }
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(n) = rest.iter().position(|&b| b == b'\n') {
                let line = &rest[..n];
                self.pos += n + 1;
                if line.is_empty() {
                    continue;
                }
                return parse_item(line).map(Some);
            }
            if self.done {
                if rest.is_empty() {
                    return Ok(None);
                }
                let item = parse_item(rest)?;
                self.pos = self.buf.len();
                return Ok(Some(item));
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            match self.cursor.next_chunk()? {
                Some(r) => {
                    let chunk = self.loader.read_chunk(&r.id)?;
                    if chunk.len() as u64 != r.size {
                        return Err(Error::Integrity(format!(
                            "chunk {} of an item list has the wrong length",
                            r.id
                        )));
                    }
                    self.read += r.size;
                    self.buf.extend_from_slice(&chunk);
                }
                None if self.read != self.size => {
                    return Err(Error::Integrity(
                        "an item list is shorter than its description says".into(),
                    ));
                }
                None => self.done = true,
            }
        }
    }
}

impl Iterator for ItemReader<'_> {
    type Item = Result<Item>;

    /// The next item; after an error, none.
    fn next(&mut self) -> Option<Result<Item>> {
        if self.failed {
            return None;
        }
        let next = self.next_item().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// The reads that fetch `frames` (one location of each): frames of one pack close to each
/// other are one read, through gaps of at most [`MAX_GAP`] bytes, up to `max_range` bytes.
/// Returns the reads (pack, offset, length) and, per frame, its read and its offset in it. A
/// database restore takes most of a window from the base version's packs and the pages changed
/// since from newer ones: in window order those alternate, sorted they are a read or two each.
fn plan_reads(frames: &[&Location], max_range: u64) -> (Vec<Read>, Vec<(usize, usize)>) {
    let mut order: Vec<usize> = (0..frames.len()).collect();
    order.sort_unstable_by_key(|&f| (frames[f].pack, frames[f].offset));
    let mut reads: Vec<Read> = Vec::new();
    let mut placed = vec![(0, 0); frames.len()];
    for f in order {
        let loc = frames[f];
        let (off, len) = (u64::from(loc.offset), u64::from(loc.length));
        match reads.last_mut() {
            Some((pack, start, rlen))
                if *pack == loc.pack
                    && off <= *start + *rlen + MAX_GAP
                    && off + len - *start <= max_range =>
            {
                *rlen = (*rlen).max(off + len - *start);
            }
            _ => reads.push((loc.pack, off, len)),
        }
        let (_, start, _) = reads.last().expect("just pushed");
        placed[f] = (reads.len() - 1, (off - start) as usize);
    }
    (reads, placed)
}

/// One step of a walk through a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A tree node, about to be read.
    Node(ChunkRef),
    /// A data chunk.
    Chunk(ChunkRef),
}

/// Walks a full tree depth-first with an explicit stack of (node, next position): memory is
/// one node per level, whatever the size of the content.
pub struct Cursor<'a> {
    loader: Loader<'a>,
    inline: Vec<ChunkRef>,
    inline_pos: usize,
    /// The root, not yet announced.
    root: Option<ChunkRef>,
    /// A node announced but not yet read, with the level its parent expects.
    pending: Option<(ChunkRef, Option<u8>)>,
    stack: Vec<(TreeNode, usize)>,
}

impl Cursor<'_> {
    /// The next node or chunk.
    pub fn next_step(&mut self) -> Result<Option<Step>> {
        if let Some(r) = self.inline.get(self.inline_pos) {
            self.inline_pos += 1;
            return Ok(Some(Step::Chunk(*r)));
        }
        if let Some(r) = self.root.take() {
            self.pending = Some((r, None));
            return Ok(Some(Step::Node(r)));
        }
        if let Some((r, level)) = self.pending.take() {
            let node = self.loader.read_node(&r)?;
            if level.is_some_and(|l| l != node.level) {
                return Err(Error::Integrity(format!(
                    "tree node {} has the wrong level",
                    r.id
                )));
            }
            self.stack.push((node, 0));
        }
        while let Some((node, pos)) = self.stack.last_mut() {
            let Some(r) = node.entries.get(*pos).copied() else {
                self.stack.pop();
                continue;
            };
            *pos += 1;
            if node.level == 0 {
                return Ok(Some(Step::Chunk(r)));
            }
            self.pending = Some((r, Some(node.level - 1)));
            return Ok(Some(Step::Node(r)));
        }
        Ok(None)
    }

    /// The next data chunk, reporting the nodes passed on the way.
    pub fn next_chunk_with(
        &mut self,
        on_node: &mut dyn FnMut(&ChunkRef),
    ) -> Result<Option<ChunkRef>> {
        loop {
            match self.next_step()? {
                Some(Step::Node(r)) => on_node(&r),
                Some(Step::Chunk(r)) => return Ok(Some(r)),
                None => return Ok(None),
            }
        }
    }

    /// The next data chunk.
    pub fn next_chunk(&mut self) -> Result<Option<ChunkRef>> {
        self.next_chunk_with(&mut |_| {})
    }
}

/// Whether a location holds a tree node.
pub fn is_tree(loc: &Location) -> bool {
    loc.kind == BlobKind::Tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pack: u32, offset: u32, length: u32) -> Location {
        Location {
            pack,
            offset,
            length,
            raw_length: 4096,
            raw_offset: 0,
            frame_length: 4096,
            compressed: true,
            kind: BlobKind::Data,
        }
    }

    #[test]
    fn frames_of_one_pack_are_read_together_whatever_the_window_order() {
        // A window alternating between a base pack (0) and a newer one (1), as a restored
        // database with scattered changed pages does.
        let locs = [
            frame(0, 100, 50),
            frame(1, 10, 20),
            frame(0, 150, 50),
            frame(1, 30, 20),
            frame(0, 200, 50),
        ];
        let refs: Vec<&Location> = locs.iter().collect();
        let (reads, placed) = plan_reads(&refs, MAX_RANGE);
        assert_eq!(reads, vec![(0, 100, 150), (1, 10, 40)]);
        assert_eq!(placed, vec![(0, 0), (1, 0), (0, 50), (1, 20), (0, 100)]);
    }

    #[test]
    fn a_wide_gap_or_a_full_read_starts_another_read() {
        let gap = u32::try_from(MAX_GAP).unwrap();
        let max = u32::try_from(MAX_RANGE).unwrap();
        let locs = [
            frame(0, 0, 10),
            // Just within the gap: read through it.
            frame(0, 10 + gap, 10),
            // Past it: a read of its own.
            frame(0, 21 + 2 * gap, 10),
            // This one would make the read longer than MAX_RANGE.
            frame(0, 31 + 2 * gap, max),
            // Another pack at the same offset is never the same read.
            frame(1, 0, 10),
        ];
        let refs: Vec<&Location> = locs.iter().collect();
        let (reads, placed) = plan_reads(&refs, MAX_RANGE);
        assert_eq!(
            reads,
            vec![
                (0, 0, u64::from(20 + gap)),
                (0, u64::from(21 + 2 * gap), 10),
                (0, u64::from(31 + 2 * gap), u64::from(max)),
                (1, 0, 10),
            ]
        );
        assert_eq!(
            placed,
            vec![(0, 0), (0, 10 + gap as usize), (1, 0), (2, 0), (3, 0)]
        );
    }
}
