//! Reusing the previous description of a database image that did not change.
//!
//! A database is read in full at every backup: its bytes are what proves the capture. When the
//! source guesses from metadata that the image is unchanged (`Capture::probably_unchanged`), the
//! engine first only hashes it, which costs one BLAKE3 pass instead of a BLAKE3 pass, a hash
//! per page, an index lookup per page and a walk of the previous tree. Why this cannot miss a
//! change: the image counts as unchanged only if its BLAKE3 hash and size equal those the
//! previous snapshot recorded for its content, and BLAKE3 is collision resistant, so the bytes
//! are the previous bytes, page for page; equal pages have equal chunk ids, so the chunks the
//! full path would cut are exactly the previous content's chunks. The description is then
//! built by the same rules as the full path ([`crate::builder::delta_content`]), from the same
//! base and the same patches, so it is the description the full path would have computed; and
//! like the full path it is only used when every chunk it names is in the index and every node
//! of its base can be read (otherwise the full path re-stores what is missing, which needs the
//! bytes: the source reads them again).

use std::io::Read;

use backstop_format::manifest::Item;
use backstop_format::tree::{ChunkRef, Content, decode_patches};
use backstop_sources::{Buffers, Chunking};
use rayon::prelude::*;

use crate::builder::{DeltaBase, delta_content};
use crate::content::{Loader, Step};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::ChunkStore;

/// Chunk ids looked up in the index at a time, in parallel.
const LOOKUP_BATCH: usize = 8192;

/// An entry's content as the source hands it over.
pub(crate) enum Stream {
    Reader(Box<dyn Read + Send>),
    Buffers(Box<dyn Buffers>),
}

impl Stream {
    /// Puts the next piece of the content into `buf` and returns its length (0 at the end): read
    /// into `buf` (`read_len` bytes, fewer only at the end), or a buffer of the source's own in
    /// place of `buf`, which goes back to the source to be filled again.
    pub(crate) fn next_piece(
        &mut self,
        buf: &mut Vec<u8>,
        read_len: usize,
    ) -> std::io::Result<usize> {
        match self {
            Stream::Reader(r) => {
                buf.resize(read_len, 0);
                let n = read_full(r.as_mut(), buf)?;
                buf.truncate(n);
                Ok(n)
            }
            Stream::Buffers(b) => {
                let old = std::mem::take(buf);
                match b.next_buffer((old.capacity() > 0).then_some(old))? {
                    Some(next) => {
                        *buf = next;
                        Ok(buf.len())
                    }
                    None => Ok(0),
                }
            }
        }
    }
}

pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the previous content of an item is made of, when it can be reused for an identical
/// image: the base of the description the full path would build, and the previous patches.
pub(crate) struct Reusable<'a> {
    content: &'a Content,
    base: DeltaBase,
}

/// Whether `prev`'s content could describe this entry's image if the image turns out the
/// same (checked before reading anything): a page-chunked content of the same size whose
/// base the full path would use (`base`, from `backup::delta_base`).
pub(crate) fn reusable<'a>(
    item: &Item,
    chunking: Chunking,
    prev: &'a Item,
    base: Option<DeltaBase>,
) -> Option<Reusable<'a>> {
    let Chunking::Fixed(size) = chunking else {
        return None;
    };
    let content = prev.content.as_ref()?;
    let base = base.filter(|b| b.chunk_size == size && size > 0)?;
    let same_base = match (&content.delta, content.tree) {
        (Some(d), _) => d.base == base.root && d.chunk_size == size,
        (None, Some(root)) => root == base.root,
        (None, None) => false,
    };
    (same_base && content.size == item.size).then_some(Reusable { content, base })
}

/// Hashes `stream` to its end and, if it is the previous content byte for byte, returns that
/// content's description as the full path would build it; `None` if the image differs or the
/// previous description cannot be reused (see the module documentation). An error is a
/// failure of the repository.
pub(crate) fn reuse(
    store: &mut ChunkStore<'_>,
    loader: Loader<'_>,
    reusable: Reusable<'_>,
    mut stream: Stream,
    progress: &dyn Progress,
) -> Result<Option<Content>> {
    let Reusable { content, base } = reusable;
    let (hashed, usable) = std::thread::scope(|s| {
        // The previous description is checked while the image is hashed.
        let check = std::thread::Builder::new()
            .name("reuse-check".into())
            .spawn_scoped(s, move || usable(loader, content, base))
            .expect("spawning a thread");
        let hashed = hash_stream(&mut stream, progress);
        (hashed, check.join())
    });
    // The stream must have been read to its end before the source may read it again.
    let (size, hash) = hashed.map_err(|e| {
        Error::Source(backstop_sources::Error::Io {
            context: "reading the content".into(),
            cause: e,
        })
    })?;
    let Some((patches, base_chunks)) = usable.ok().flatten() else {
        return Ok(None);
    };
    if size != content.size || hash != content.hash {
        return Ok(None);
    }
    let count = size.div_ceil(u64::from(base.chunk_size));
    store.count_known(count);
    let exhausted = base_chunks <= count;
    delta_content(store, base, exhausted, size, hash, &patches).map(Some)
}

/// Reads the stream to its end, hashing it on all cores: its size and hex BLAKE3 hash.
fn hash_stream(stream: &mut Stream, progress: &dyn Progress) -> std::io::Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::new();
    let mut size = 0u64;
    loop {
        let n = stream.next_piece(&mut buf, crate::backup::READ_BATCH)?;
        if n == 0 {
            break;
        }
        hasher.update_rayon(&buf[..n]);
        size += n as u64;
        progress.bytes(n as u64);
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// The previous patches against `base` and the number of chunks of the base, if every node of
/// the base can be read and every chunk the previous content consists of (the base's chunks
/// it does not patch, and its patches) is in the index.
fn usable(
    loader: Loader<'_>,
    content: &Content,
    base: DeltaBase,
) -> Option<(Vec<(u64, ChunkRef)>, u64)> {
    let patches = match &content.delta {
        Some(d) => {
            let bytes = loader.read_content(&d.patch).ok()?;
            let p = decode_patches(&bytes).ok()?;
            (p.len() as u64 == d.patches).then_some(p)?
        }
        None => Vec::new(),
    };
    let index = loader.index;
    let all_indexed =
        |ids: &[backstop_format::ChunkId]| ids.par_iter().all(|id| index.contains(id));
    let patch_ids: Vec<_> = patches.iter().map(|(_, r)| r.id).collect();
    if !patch_ids.chunks(LOOKUP_BATCH).all(all_indexed) {
        return None;
    }
    let mut cursor = loader.tree_cursor(base.root);
    let mut next_patch = patches.iter().map(|(i, _)| *i).peekable();
    let mut pending = Vec::with_capacity(LOOKUP_BATCH);
    let mut position = 0u64;
    loop {
        match cursor.next_step() {
            Ok(Some(Step::Chunk(r))) => {
                // A patched chunk of the base need not exist any more (prune may drop it).
                while next_patch.next_if(|&i| i < position).is_some() {}
                if next_patch.next_if_eq(&position).is_none() {
                    pending.push(r.id);
                }
                position += 1;
                if pending.len() == LOOKUP_BATCH {
                    if !all_indexed(&pending) {
                        return None;
                    }
                    pending.clear();
                }
            }
            Ok(Some(Step::Node(_))) => {}
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    all_indexed(&pending).then_some((patches, position))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use backstop_format::Timestamp;
    use backstop_format::manifest::{BackupKind, DatabaseMeta, ItemKind, SourceKind};
    use backstop_sources::{Buffers, Capture, Entry, EntryContent, Source};
    use backstop_storage::{Kind, MemoryStorage, Storage};

    use super::*;
    use crate::{BackupOptions, Index, InitOptions, NoProgress, Repository, backup};

    const PAGE: u32 = 4096;

    /// A database-like source: page-chunked content in owned buffers, that guesses "unchanged"
    /// as told and can be read twice.
    struct PageSource {
        image: Vec<u8>,
        guess: bool,
        started: bool,
        rereads: Arc<AtomicUsize>,
        /// The modification time of the item and of the backup (racy: the same second).
        mtime: Timestamp,
        /// What `probably_unchanged` was shown as the previous item's time.
        previous_mtime: Arc<std::sync::Mutex<Option<Option<Timestamp>>>>,
    }

    struct Pieces(Vec<Vec<u8>>);

    impl Buffers for Pieces {
        fn next_buffer(&mut self, _: Option<Vec<u8>>) -> std::io::Result<Option<Vec<u8>>> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }

    /// Pieces of 3 pages, to cross the engine's batches at odd places.
    fn pieces(image: &[u8]) -> Box<dyn Buffers> {
        let pieces = image.chunks(3 * PAGE as usize).map(<[u8]>::to_vec);
        Box::new(Pieces(pieces.collect()))
    }

    /// The capture of a [`PageSource`]'s one entry.
    struct PageCapture {
        image: Vec<u8>,
        guess: bool,
        rereads: Arc<AtomicUsize>,
        previous_mtime: Arc<std::sync::Mutex<Option<Option<Timestamp>>>>,
    }

    impl Source for PageSource {
        fn kind(&self) -> SourceKind {
            SourceKind::Sqlite
        }
        fn describe(&self) -> Vec<String> {
            vec!["db".into()]
        }
        fn next_entry(&mut self) -> std::result::Result<Option<Entry>, backstop_sources::Error> {
            if std::mem::replace(&mut self.started, true) {
                return Ok(None);
            }
            let capture = PageCapture {
                image: self.image.clone(),
                guess: self.guess,
                rereads: self.rereads.clone(),
                previous_mtime: self.previous_mtime.clone(),
            };
            Ok(Some(Entry {
                item: Item {
                    size: self.image.len() as u64,
                    mtime: Some(self.mtime),
                    ..Item::new("db", ItemKind::Sqlite)
                },
                content: Some(EntryContent::Captured {
                    buffers: pieces(&self.image),
                    capture: Box::new(capture),
                }),
                required: true,
                reuse_unchanged: false,
            }))
        }
        fn take_warnings(&mut self) -> Vec<String> {
            Vec::new()
        }
        fn finish(&mut self) -> std::result::Result<(), backstop_sources::Error> {
            Ok(())
        }
    }

    impl Capture for PageCapture {
        fn chunking(&self) -> Chunking {
            Chunking::Fixed(PAGE)
        }
        fn probably_unchanged(&mut self, _: &Item, previous: &Item, _: Timestamp) -> bool {
            *self.previous_mtime.lock().unwrap() = Some(previous.mtime);
            self.guess
        }
        fn read_again(
            &mut self,
        ) -> std::result::Result<Option<Box<dyn Buffers>>, backstop_sources::Error> {
            self.rereads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(pieces(&self.image)))
        }
        fn complete(
            self: Box<Self>,
            item: &mut Item,
            _: Option<&Item>,
        ) -> std::result::Result<(), backstop_sources::Error> {
            item.database = Some(DatabaseMeta {
                page_size: PAGE,
                page_count: self.image.len() as u64 / u64::from(PAGE),
                journal_mode: "wal".into(),
                user_version: 0,
                schema_fingerprint: String::new(),
                tables: Vec::new(),
                quick_check: "ok".into(),
                not_checkable: Vec::new(),
                source_path: "db".into(),
            });
            Ok(())
        }
    }

    fn copy(from: &MemoryStorage) -> MemoryStorage {
        let to = MemoryStorage::new();
        for kind in Kind::ALL {
            for o in from.list(kind).unwrap() {
                to.write(kind, &o.name, &from.read(kind, &o.name).unwrap())
                    .unwrap();
            }
        }
        to
    }

    fn image(pages: usize, changed: &[usize], seed: u8) -> Vec<u8> {
        let mut v = vec![0u8; pages * PAGE as usize];
        for (i, page) in v.chunks_mut(PAGE as usize).enumerate() {
            let s = if changed.contains(&i) { seed } else { 0 };
            blake3::Hasher::new()
                .update(&[s, (i % 251) as u8, (i / 251) as u8])
                .finalize_xof()
                .fill(&mut page[..64]);
        }
        v
    }

    /// Backs `image` up into a fresh copy of `storage`'s objects; returns the new snapshot's
    /// item, its stats and the number of second readings.
    fn run(
        storage: &Arc<MemoryStorage>,
        image: &[u8],
        guess: bool,
        t: i64,
    ) -> (Item, backstop_format::manifest::SnapshotStats, usize) {
        let (item, stats, rereads, _) = run_seen(storage, image, guess, t);
        (item, stats, rereads)
    }

    /// [`run`], and the previous item's time `probably_unchanged` was shown (if it was asked).
    fn run_seen(
        storage: &Arc<MemoryStorage>,
        image: &[u8],
        guess: bool,
        t: i64,
    ) -> (
        Item,
        backstop_format::manifest::SnapshotStats,
        usize,
        Option<Option<Timestamp>>,
    ) {
        let repo = Repository::open(storage.clone(), None).unwrap();
        let (index, _) = Index::load(&repo).unwrap();
        let rereads = Arc::new(AtomicUsize::new(0));
        let previous_mtime = Arc::new(std::sync::Mutex::new(None));
        let time = Timestamp::from_second(1_700_000_000 + t).unwrap();
        let mut source = PageSource {
            image: image.to_vec(),
            guess,
            started: false,
            rereads: rereads.clone(),
            mtime: time,
            previous_mtime: previous_mtime.clone(),
        };
        let opts = BackupOptions {
            source_name: "db".into(),
            kind: BackupKind::Manual,
            description: None,
            tags: vec![],
            ticket: None,
            time,
            host: "h".into(),
            program: "test".into(),
            force: false,
            skip_unchanged: false,
        };
        let s = backup(&repo, &index, &mut source, &opts, &NoProgress).unwrap();
        let snap = repo.load_snapshot(&s.id).unwrap();
        let (index, _) = Index::load(&repo).unwrap();
        let loader = Loader::new(&repo, &index);
        let mut items = loader.read_items(&snap.items).unwrap();
        let item = items.remove(0);
        let restored = loader.read_content(item.content.as_ref().unwrap()).unwrap();
        assert!(restored == image, "the snapshot restores to the image");
        let seen = *previous_mtime.lock().unwrap();
        (item, snap.stats, rereads.load(Ordering::SeqCst), seen)
    }

    /// A database backed up in the second it was written keeps its time in the previous
    /// snapshot for the guess (the hash decides anyway), unlike a racy plain file, so the next
    /// backup of the unchanged database can take the shortcut.
    #[test]
    fn a_racy_database_time_still_reaches_the_guess() {
        let storage = Arc::new(MemoryStorage::new());
        Repository::init(
            storage.clone(),
            &InitOptions::new(None, Timestamp::now(), "h".into()),
        )
        .unwrap();
        let img = image(64, &[], 1);
        let (_, _, _, first) = run_seen(&storage, &img, true, 0);
        assert_eq!(first, None, "no previous snapshot, no guess");
        let (_, _, rereads, seen) = run_seen(&storage, &img, true, 10);
        assert_eq!(
            seen,
            Some(Some(Timestamp::from_second(1_700_000_000).unwrap())),
            "the racy time of the previous capture is kept for the guess"
        );
        assert_eq!(rereads, 0, "unchanged: reused without a second read");
    }

    /// Each scenario runs on two copies of one repository, the source guessing "unchanged" in
    /// one and "changed" in the other: the snapshots must describe the content identically.
    #[test]
    fn reuse_describes_content_as_the_full_path_does() {
        let storage = Arc::new(MemoryStorage::new());
        let mut init = InitOptions::new(None, Timestamp::UNIX_EPOCH, "h".into());
        init.pack_size = 1 << 20;
        Repository::init(storage.clone(), &init).unwrap();
        let v1 = image(300, &[], 0);
        let v2 = image(300, &[3, 77, 150, 299], 1);
        let v3 = image(300, &[3, 78], 2);
        let shorter = image(200, &[3, 78], 2);
        let mut t = 0;
        run(&storage, &v1, false, t);
        // Unchanged full tree, then a delta, unchanged delta, a wrong guess, and a shrink (not
        // tried: the size already says it changed). Second readings expected of each.
        for (img, expected) in [(&v1, 0), (&v2, 1), (&v2, 0), (&v3, 1), (&shorter, 0)] {
            t += 10;
            let guessed = Arc::new(copy(&storage));
            let plain = Arc::new(copy(&storage));
            let (a, sa, rereads) = run(&guessed, img, true, t);
            let (b, sb, _) = run(&plain, img, false, t);
            assert_eq!(a.content, b.content);
            assert_eq!(sa, sb);
            assert_eq!(rereads, expected, "read again only when it changed");
            // Go on from the repository the usual path wrote.
            run(&storage, img, false, t);
        }
    }
}
