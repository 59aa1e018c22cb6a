//! Backup: capture a source, store what is new, and write the snapshot last.

mod previous;
mod read;
mod small;
mod unchanged;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, sync_channel};

use backstop_format::config::ChunkerParams;
use backstop_format::manifest::{
    BackupKind, Item, ItemKind, SNAPSHOT_VERSION, Snapshot, SnapshotStats, SourceKind, SourceRef,
};
use backstop_format::tree::Content;
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::{Capture, Chunking, Entry, EntryContent, Source};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::index::Index;
use crate::repository::indexed::Indexed;
use crate::repository::lock::Lock;
use crate::store::builder::{ContentBuilder, DeltaBase, MetaWriter, Previous};
use crate::store::chunker::Batch;
use crate::store::packing::Stored;
use crate::store::patches::PatchReader;
use crate::store::{ChunkStore, TreeBuilder};
use previous::PreviousItems;
use read::{Stream, read_batches};
use small::{Group, Outcome};
use unchanged::{reusable, reuse};

/// What to record about a backup. Shared by the CLI, the config file and (later) the web API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupOptions {
    /// The source's name; snapshots are grouped by it.
    pub source_name: String,
    pub kind: BackupKind,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub ticket: Option<String>,
    /// The snapshot's time.
    pub time: Timestamp,
    pub host: String,
    /// Program name and version recorded in the snapshot.
    pub program: String,
    /// Read every file even when its size and modification time match the previous snapshot.
    #[serde(default)]
    pub force: bool,
    /// Record no new snapshot when the content is the same as the previous snapshot's.
    #[serde(default)]
    pub skip_unchanged: bool,
}

/// The result of a backup, as printed by `backup --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupSummary {
    pub id: SnapshotId,
    pub source: String,
    pub source_kind: SourceKind,
    pub kind: BackupKind,
    pub time: Timestamp,
    pub parent: Option<SnapshotId>,
    pub items: u64,
    pub files: u64,
    pub dirs: u64,
    /// True when nothing changed since the previous snapshot and, as asked with
    /// `skip_unchanged`, no snapshot was written: `id` is then the previous snapshot's.
    pub skipped: bool,
    /// Content bytes the snapshot holds.
    pub bytes_in: u64,
    /// Content bytes actually read (files unchanged since the previous snapshot are not read).
    pub bytes_read: u64,
    /// Files whose content was taken from the previous snapshot without reading them.
    pub files_unchanged: u64,
    /// Bytes of packs and index files this backup added to the repository (the snapshot
    /// object itself, a few hundred bytes, is not counted).
    pub bytes_added: u64,
    pub chunks: u64,
    pub chunks_new: u64,
    pub warnings: Vec<String>,
    /// The source's data validation rules as they ran on the captured state (see
    /// `Source::use_rules`); empty without rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<backstop_format::manifest::RuleOutcome>,
}

/// Runs one backup into `ix`'s repository, deduplicating against its index as loaded before.
/// The index is not updated: load it again for another backup in the same process.
pub fn backup(
    ix: &Indexed<'_>,
    source: &mut dyn Source,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    // What the backup stored, to say what a failure left behind (a backup that ran out of
    // space leaves hundreds of megabytes nothing uses until prune collects them).
    let stored = Arc::new(Stored::default());
    run_backup(ix, source, opts, progress, &stored).map_err(|cause| {
        let packs = stored.packs.load(Ordering::Relaxed);
        let index_files = stored.index_files.load(Ordering::Relaxed);
        if packs == 0 && index_files == 0 {
            return cause;
        }
        Error::BackupLeftovers {
            cause: Box::new(cause),
            packs,
            size: backstop_policy::format_bytes(stored.pack_bytes.load(Ordering::Relaxed)),
            index_files,
        }
    })
}

fn run_backup(
    ix: &Indexed<'_>,
    source: &mut dyn Source,
    opts: &BackupOptions,
    progress: &dyn Progress,
    stored: &Arc<Stored>,
) -> Result<BackupSummary> {
    let (repo, index) = (ix.repo(), ix.index());
    if opts.source_name.is_empty() {
        return Err(Error::Invalid("the source name is empty".into()));
    }
    backstop_format::limits::check_snapshot_texts(
        opts.description.as_deref(),
        opts.ticket.as_deref(),
        &opts.tags,
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    // Locks live in real time, whatever time the snapshot records (`--time` for imports must
    // not make a running prune's lock look stale).
    let lock = Lock::acquire(repo, false, "backup", &opts.host, Timestamp::now())?;
    // The index was loaded before the lock: a prune that ran in between may have removed
    // chunks it lists, and deduplicating against those would lose data.
    ix.check_current()?;
    let snaps = repo.snapshots()?.readable;
    let parent = snaps
        .iter()
        .rev()
        .find(|(_, s)| s.source.name == opts.source_name);
    let mut previous = match parent {
        Some((_, snap)) => PreviousItems::of(Loader::new(repo, index), snap, progress),
        None => PreviousItems::none(progress),
    };
    let since = parent.map(|(_, s)| s.time);
    // The total a job page or a bar shows: the previous snapshot's size and item count, raised
    // when a database's size is known as its capture starts.
    let mut estimate = parent.map_or(0, |(_, s)| s.stats.bytes);
    let estimated_items = parent.map(|(_, s)| s.stats.items);
    let parent = parent.map(|(id, _)| *id);

    let mut run = Run {
        repo,
        index,
        store: ChunkStore::counting(repo, index, stored.clone()),
        params: repo.config().chunker,
        since,
        progress,
        list: ItemList::new(),
        stats: SnapshotStats::default(),
        warnings: Vec::new(),
        validation: Vec::new(),
        bytes_read: 0,
        files_unchanged: 0,
    };
    let mut group = Group::default();
    progress.phase("backup", None);
    if estimate > 0 {
        progress.estimate(estimate, estimated_items);
    }
    source.use_scratch(&index.spill_options().for_sources());
    while let Some(mut entry) = source.next_entry()? {
        if let Err(e) = backstop_format::manifest::check_item_path(&entry.item.path) {
            if entry.required {
                return Err(Error::format("the source produced an unsafe item path", e));
            }
            run.warn(format!("skipped: {e}"));
            continue;
        }
        if let Some(EntryContent::Captured { .. }) = &entry.content
            && run.stats.bytes + entry.item.size > estimate
        {
            estimate = run.stats.bytes + entry.item.size;
            progress.estimate(estimate, estimated_items);
        }
        progress.item(&entry.item.path);
        // `--force` reads everything, but still compares the result with the previous one.
        let prev = match opts.force {
            true => None,
            false => previous.take(&entry.item.path),
        };
        if entry.reuse_unchanged
            && let Some(p) = prev.as_ref()
            && let Some(c) = unchanged(p, &entry.item, index)
        {
            entry.content = None;
            entry.item.content = Some(c.clone());
            // What was read of the same bytes last time (a workbook's sheets) still holds.
            entry.item.workbook = p.workbook.clone();
            run.stats.bytes += c.size;
            progress.bytes(c.size);
            run.files_unchanged += 1;
        }
        match entry.content.take() {
            Some(EntryContent::Stream { reader, chunking })
                if Group::takes(&entry.item, chunking) =>
            {
                group.push_file(entry, reader, chunking);
                if group.is_full() {
                    run.store_group(&mut group)?;
                }
            }
            Some(content) => {
                run.store_group(&mut group)?;
                run.store_entry(entry, content, prev.as_ref())?;
            }
            None if group.is_empty() => run.record(&entry.item)?,
            None => group.push_plain(entry),
        }
    }
    run.store_group(&mut group)?;
    let Run {
        mut store,
        list,
        mut stats,
        mut warnings,
        validation,
        bytes_read,
        files_unchanged,
        ..
    } = run;
    // A source that cannot vouch for its capture (a failed dump) stops here: packs already
    // written stay unreferenced and no snapshot is made.
    source.finish()?;
    for w in source.take_warnings() {
        progress.warning(&w);
        warnings.push(w);
    }
    let signature = list.signature.finalize();
    let items = list.finish(&mut store)?;
    let st = store.finish()?;
    stats.chunks = st.chunks;
    stats.chunks_new = st.chunks_new;
    stats.bytes_added = st.bytes_added;
    let summary = |id: SnapshotId, skipped: bool, warnings: Vec<String>| BackupSummary {
        id,
        source: opts.source_name.clone(),
        source_kind: source.kind(),
        kind: opts.kind,
        time: opts.time,
        parent,
        skipped,
        items: stats.items,
        files: stats.files,
        dirs: stats.dirs,
        bytes_in: stats.bytes,
        bytes_read,
        files_unchanged,
        bytes_added: st.bytes_added,
        chunks: st.chunks,
        chunks_new: st.chunks_new,
        warnings,
        validation: validation.clone(),
    };
    if opts.skip_unchanged
        && let Some(pid) = parent
        && previous.signature() == Some(signature)
    {
        lock.release()?;
        crate::repository::attempts::clear_backup_failures(repo, &opts.source_name);
        return Ok(summary(pid, true, warnings));
    }
    let snap = Snapshot {
        version: SNAPSHOT_VERSION,
        time: opts.time,
        host: opts.host.clone(),
        source: SourceRef {
            name: opts.source_name.clone(),
            kind: source.kind(),
        },
        kind: opts.kind,
        description: opts.description.clone(),
        tags: opts.tags.clone(),
        ticket: opts.ticket.clone(),
        parent,
        paths: source.describe(),
        items,
        stats: stats.clone(),
        warnings: warnings.clone(),
        program: opts.program.clone(),
        repaired: None,
        excludes: source.excludes(),
    };
    let id = repo.write_snapshot(&snap)?;
    lock.release()?;
    crate::repository::attempts::clear_backup_failures(repo, &opts.source_name);
    Ok(summary(id, false, warnings))
}

/// A backup in progress: where it stores, and what it has recorded so far.
struct Run<'a> {
    repo: &'a Repository,
    index: &'a Index,
    store: ChunkStore<'a>,
    params: ChunkerParams,
    /// The previous snapshot's time.
    since: Option<Timestamp>,
    progress: &'a dyn Progress,
    list: ItemList,
    stats: SnapshotStats,
    warnings: Vec<String>,
    validation: Vec<backstop_format::manifest::RuleOutcome>,
    bytes_read: u64,
    files_unchanged: u64,
}

impl Run<'_> {
    fn warn(&mut self, msg: String) {
        self.progress.warning(&msg);
        self.warnings.push(msg);
    }

    /// Adds an item, its content stored, to the snapshot.
    fn record(&mut self, item: &Item) -> Result<()> {
        match item.kind {
            ItemKind::Dir => self.stats.dirs += 1,
            ItemKind::File | ItemKind::Stream | ItemKind::Sqlite => self.stats.files += 1,
            _ => {}
        }
        self.stats.items += 1;
        self.list.push(&mut self.store, item)
    }

    /// Counts a content just read and stored, and puts it in its item.
    fn stored(&mut self, item: &mut Item, content: Content) {
        item.size = content.size;
        self.stats.bytes += content.size;
        self.bytes_read += content.size;
        item.content = Some(content);
    }

    /// The failure to read an entry's content: a warning, and the entry left out, unless the
    /// entry is required.
    fn read_failed(&mut self, entry: &Entry, e: std::io::Error) -> Result<()> {
        if entry.required {
            return Err(Error::Source(backstop_sources::Error::Io {
                context: format!("reading {}", entry.item.path),
                cause: e,
            }));
        }
        self.warn(format!("skipped {}: read failed: {e}", entry.item.path));
        Ok(())
    }

    /// Stores an entry's content through the streaming path and records the entry.
    fn store_entry(
        &mut self,
        mut entry: Entry,
        content: EntryContent,
        prev: Option<&Item>,
    ) -> Result<()> {
        let mut reading = Reading::new(content);
        let content = store_content(
            &mut self.store,
            Loader::new(self.repo, self.index),
            &mut entry.item,
            &mut reading,
            prev,
            self.since,
            self.params,
            self.progress,
        )?;
        match content {
            Ok(content) => {
                self.stored(&mut entry.item, content);
                if let Some(capture) = reading.capture {
                    capture.complete(&mut entry.item, prev)?;
                }
                let validated = match (&entry.item.database, &entry.item.server) {
                    (Some(d), _) => d.validation.as_ref(),
                    (None, Some(s)) => s.validation.as_ref(),
                    (None, None) => None,
                };
                if let Some(v) = validated {
                    self.validation.extend(v.results.iter().cloned());
                }
                self.record(&entry.item)
            }
            Err(e) => self.read_failed(&entry, e),
        }
    }

    /// Stores the files of a group as one batch and records its entries in order (see
    /// [`small`]).
    fn store_group(&mut self, group: &mut Group) -> Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let (entries, batch) = group.read(self.params);
        let refs = match batch.is_empty() {
            true => Vec::new(),
            false => self.store.add_data_batch(batch, None)?,
        };
        for (mut entry, outcome) in entries {
            match outcome {
                None => {}
                Some(Outcome::Whole { chunks, size, hash }) => {
                    let mut tree = TreeBuilder::new();
                    for r in &refs[chunks] {
                        tree.push(&mut self.store, *r)?;
                    }
                    let content = tree.finish(&mut self.store, hash)?;
                    debug_assert_eq!(content.size, size);
                    self.progress.bytes(size);
                    self.stored(&mut entry.item, content);
                }
                Some(Outcome::Grown(reader, chunking)) => {
                    let content = EntryContent::Stream { reader, chunking };
                    self.store_entry(entry, content, None)?;
                    continue;
                }
                Some(Outcome::Failed(e)) => {
                    self.read_failed(&entry, e)?;
                    continue;
                }
            }
            self.record(&entry.item)?;
        }
        Ok(())
    }
}

/// An entry's content on its way into the repository: the stream still to read, how to cut
/// it, and the source's handle on a captured entry, which completes the item once it is stored.
struct Reading {
    stream: Option<Stream>,
    chunking: Chunking,
    capture: Option<Box<dyn Capture>>,
}

impl Reading {
    fn new(content: EntryContent) -> Self {
        match content {
            EntryContent::Stream { reader, chunking } => Self {
                stream: Some(Stream::Reader(reader)),
                chunking,
                capture: None,
            },
            EntryContent::Captured { buffers, capture } => Self {
                stream: Some(Stream::Buffers(buffers)),
                chunking: capture.chunking(),
                capture: Some(capture),
            },
        }
    }
}

/// Stores an entry's content, or reuses the description of the previous version when the
/// source guesses the content unchanged and its hash proves it (see `unchanged`).
/// Errors as for [`store_stream`].
#[allow(clippy::too_many_arguments)]
fn store_content(
    store: &mut ChunkStore<'_>,
    loader: Loader<'_>,
    item: &mut Item,
    reading: &mut Reading,
    prev: Option<&Item>,
    since: Option<Timestamp>,
    params: ChunkerParams,
    progress: &dyn Progress,
) -> Result<std::result::Result<Content, std::io::Error>> {
    let chunking = reading.chunking;
    let mut stream = reading.stream.take().expect("a new reading has its stream");
    let base = delta_base(item, chunking, prev, loader.index);
    if let (Some(p), Some(since), Some(capture)) = (prev, since, reading.capture.as_mut())
        && let Some(r) = reusable(item, chunking, p, base)
        && capture.probably_unchanged(item, p, since)
    {
        if let Some(content) = reuse(store, loader, r, stream, progress)? {
            return Ok(Ok(content));
        }
        stream = match capture.read_again()? {
            Some(b) => Stream::Buffers(b),
            None => {
                // The source's own failure, if it had one, says more.
                if let Some(capture) = reading.capture.take() {
                    capture.complete(item, prev)?;
                }
                return Err(Error::Invalid(format!(
                    "{} could not be read a second time",
                    item.path
                )));
            }
        };
    }
    let on_change = reading.capture.as_mut().and_then(|c| c.take_on_change());
    let builder = match base {
        Some(base) => match previous_patches(&loader, prev, &base) {
            Some(p) => ContentBuilder::against(loader, base, p, on_change, store.spill_options()),
            None => {
                // Nothing known about the previous version: count as changed.
                if let Some(f) = on_change {
                    f();
                }
                ContentBuilder::against(
                    loader,
                    base,
                    Previous::default(),
                    None,
                    store.spill_options(),
                )
            }
        },
        None => {
            // A database without a previous version to compare with: most of its pages are
            // new to the repository (a delta's are mostly known, and a set sized for all of
            // them would be touched all over by the few new ones).
            if let Chunking::Fixed(size) = chunking {
                store.expect_new_chunks(item.size / u64::from(size.max(1)));
            }
            ContentBuilder::full(on_change)
        }
    };
    store_stream(store, builder, stream, chunking, params, progress)
}

/// Reads a stream on a thread of its own (reading, cutting and whole-content hashing) while
/// this thread stores the previous batch. The outer error is a repository failure; the inner
/// one a read failure of the source, which the caller may treat as a warning.
fn store_stream(
    store: &mut ChunkStore<'_>,
    mut builder: ContentBuilder<'_>,
    reader: Stream,
    chunking: Chunking,
    params: ChunkerParams,
    progress: &dyn Progress,
) -> Result<std::result::Result<Content, std::io::Error>> {
    std::thread::scope(|s| {
        // A rendezvous channel: the reader cuts batch N+1 while this thread looks up batch N
        // (a queued batch would be one more in memory, for no speed: measured).
        let (tx, rx) = sync_channel::<std::io::Result<Batch>>(0);
        // Stored batches go back to the reader to be filled again: no buffer is allocated
        // (and faulted in page by page) per batch.
        let (done, free) = channel::<Batch>();
        let reader_thread = std::thread::Builder::new()
            .name("stream-reader".into())
            .spawn_scoped(s, move || {
                read_batches(reader, chunking, params, &tx, &free)
            })
            .expect("spawning a thread");
        let mut read_error = None;
        let mut size = 0;
        for batch in rx.iter() {
            match batch {
                Ok(chunks) => {
                    // The store hands the batch back to the reader once it is sealed.
                    let refs = store.add_data_batch(chunks, Some(done.clone()))?;
                    let n: u64 = refs.iter().map(|r| r.size).sum();
                    for r in refs {
                        builder.push(store, r)?;
                    }
                    size += n;
                    progress.bytes(n);
                }
                Err(e) => read_error = Some(e),
            }
        }
        let hash = reader_thread
            .join()
            .map_err(|_| Error::Invalid("the reader thread panicked".into()))?;
        match (read_error, hash) {
            (Some(e), _) => Ok(Err(e)),
            (None, Some(hash)) => Ok(Ok(builder.finish(store, size, hash)?)),
            (None, None) => Err(Error::Invalid("the reader stopped without a result".into())),
        }
    })
}

/// Stores what `reader` yields as a full content (no delta), cut by `chunking`: for a copy into
/// a repository with other keys, where nothing of the source's trees can be used. Errors as for
/// [`store_stream`].
pub(crate) fn store_reader(
    store: &mut ChunkStore<'_>,
    reader: Box<dyn std::io::Read + Send>,
    chunking: Chunking,
    params: ChunkerParams,
    progress: &dyn Progress,
) -> Result<std::result::Result<Content, std::io::Error>> {
    let builder = ContentBuilder::full(None);
    store_stream(
        store,
        builder,
        Stream::Reader(reader),
        chunking,
        params,
        progress,
    )
}

/// The previous version of a fixed-size-chunked item (a database), to store this one as a
/// delta against: its tree, or the base its own delta was against (deltas never chain).
fn delta_base(
    item: &Item,
    chunking: Chunking,
    previous: Option<&Item>,
    index: &Index,
) -> Option<DeltaBase> {
    let Chunking::Fixed(size) = chunking else {
        return None;
    };
    let prev = previous.filter(|p| p.kind == item.kind)?;
    let content = prev.content.as_ref()?;
    let base = match (&content.delta, content.tree) {
        (Some(d), _) if d.chunk_size == size => DeltaBase {
            root: d.base,
            chunk_size: size,
        },
        (None, Some(root)) if prev.database.as_ref().is_some_and(|d| d.page_size == size) => {
            DeltaBase {
                root,
                chunk_size: size,
            }
        }
        _ => return None,
    };
    index.contains(&base.root.id).then_some(base)
}

/// The previous version's patches against `base` (none when it is the base itself), or `None`
/// when they cannot be read: then nothing is known about what changed.
fn previous_patches<'l>(
    loader: &Loader<'l>,
    prev: Option<&Item>,
    base: &DeltaBase,
) -> Option<Previous<'l>> {
    let content = prev?.content.as_ref()?;
    let count = content.size.div_ceil(u64::from(base.chunk_size));
    let patches = match &content.delta {
        None => None,
        Some(d) => Some(PatchReader::new(*loader, d).ok()?),
    };
    Some(Previous::new(patches, count))
}

/// Adds what makes an item's content to a snapshot signature: path, type, content hash, link
/// target and permissions, but not times (a database file's time changes with every checkpoint
/// while its content may not).
pub(super) fn sign(h: &mut blake3::Hasher, i: &Item) {
    let hash = i.content.as_ref().map_or("", |c| c.hash.as_str());
    let line = serde_json::json!([i.path, i.kind, hash, i.target, i.mode]).to_string();
    h.update(line.as_bytes());
    h.update(b"\n");
}

/// The previous content of `item` if its size and modification time are unchanged and that
/// content is still indexed.
fn unchanged<'p>(prev: &'p Item, item: &Item, index: &Index) -> Option<&'p Content> {
    if prev.kind != ItemKind::File {
        return None;
    }
    let content = prev.content.as_ref()?;
    let same = prev.size == item.size
        && prev.mtime.is_some()
        && prev.mtime == item.mtime
        && content.size == item.size;
    let indexed = match (&content.tree, &content.delta) {
        (Some(root), _) => index.contains(&root.id),
        (None, Some(d)) => index.contains(&d.base.id),
        (None, None) => content.chunks.iter().all(|c| index.contains(&c.id)),
    };
    (same && indexed).then_some(content)
}

/// The snapshot's item list, written as JSON lines through the same chunking and trees as
/// content.
pub(crate) struct ItemList {
    writer: MetaWriter,
    line: Vec<u8>,
    /// See [`sign`].
    signature: blake3::Hasher,
}

impl ItemList {
    pub(crate) fn new() -> Self {
        Self {
            writer: MetaWriter::new(),
            line: Vec::new(),
            signature: blake3::Hasher::new(),
        }
    }

    pub(crate) fn push(&mut self, store: &mut ChunkStore<'_>, item: &Item) -> Result<()> {
        sign(&mut self.signature, item);
        self.line.clear();
        serde_json::to_writer(&mut self.line, item).expect("items serialize");
        self.line.push(b'\n');
        self.writer.write(store, &self.line)
    }

    pub(crate) fn finish(self, store: &mut ChunkStore<'_>) -> Result<Content> {
        self.writer.finish(store)
    }
}
