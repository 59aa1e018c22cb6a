//! Engine tests on in-memory and local storage: round trips, deduplication of content and
//! metadata, encryption, damage, locks, and sources that fail.

use std::io::Cursor;
use std::sync::Arc;

use backstop_engine::content::Loader;
use backstop_engine::lock::Lock;
use backstop_engine::{
    BackupOptions, Error, Index, InitOptions, NoProgress, Repository, SpillOptions, VerifyOptions,
    backup, verify,
};
use backstop_format::crypto::KdfParams;
use backstop_format::manifest::{BackupKind, Item, ItemKind, SourceKind};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::{Buffers, Capture, Chunking, Entry, EntryContent, Source};
use backstop_storage::{Kind, LocalStorage, MemoryStorage, Storage};

/// A source made of in-memory items.
struct VecSource {
    items: Vec<(String, Vec<u8>, Chunking)>,
    next: usize,
    fail_at_finish: bool,
}

impl VecSource {
    fn new(items: Vec<(&str, Vec<u8>, Chunking)>) -> Self {
        Self {
            items: items
                .into_iter()
                .map(|(p, d, c)| (p.to_string(), d, c))
                .collect(),
            next: 0,
            fail_at_finish: false,
        }
    }
}

impl Source for VecSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }
    fn describe(&self) -> Vec<String> {
        vec!["test".into()]
    }
    fn next_entry(&mut self) -> Result<Option<Entry>, backstop_sources::Error> {
        let Some((path, data, chunking)) = self.items.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(Entry {
            item: Item {
                size: data.len() as u64,
                ..Item::new(path, ItemKind::File)
            },
            content: Some(EntryContent::Stream {
                reader: Box::new(Cursor::new(data)),
                chunking,
            }),
            required: true,
            reuse_unchanged: false,
        }))
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<(), backstop_sources::Error> {
        if self.fail_at_finish {
            return Err(backstop_sources::Error::Invalid("dump failed".into()));
        }
        Ok(())
    }
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

/// Data that compresses (text-like) but does not dedup within itself.
fn pagey(n: usize, seed: u64) -> Vec<u8> {
    let noise = pseudo_random(n / 6 + 1, seed);
    noise
        .iter()
        .flat_map(|b| format!("{:02x}-row,", b).into_bytes())
        .take(n)
        .collect()
}

fn cheap_init(passphrase: Option<&str>) -> InitOptions {
    let mut o = InitOptions::new(
        passphrase.map(str::to_string),
        Timestamp::UNIX_EPOCH,
        "test-host".into(),
    );
    o.kdf = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    o.pack_size = 1 << 20;
    o
}

fn opts(name: &str, t: i64) -> BackupOptions {
    BackupOptions {
        source_name: name.into(),
        kind: BackupKind::Manual,
        description: None,
        tags: vec![],
        ticket: None,
        time: Timestamp::from_second(1_700_000_000 + t).unwrap(),
        host: "test-host".into(),
        program: "test".into(),
        force: false,
        skip_unchanged: false,
    }
}

fn restore_all(repo: &Repository, id: &SnapshotId) -> Vec<(String, Vec<u8>)> {
    let (index, problems) = Index::load(repo).unwrap();
    assert!(problems.is_empty());
    let snap = repo.load_snapshot(id).unwrap();
    let loader = Loader::new(repo, &index);
    loader
        .read_items(&snap.items)
        .unwrap()
        .into_iter()
        .map(|i| {
            let data = loader.read_content(i.content.as_ref().unwrap()).unwrap();
            assert_eq!(
                blake3::hash(&data).to_hex().as_str(),
                i.content.as_ref().unwrap().hash
            );
            (i.path, data)
        })
        .collect()
}

/// `verify --read-data` of the whole repository.
fn verify_data(repo: &Repository) -> backstop_engine::VerifyReport {
    verify(
        repo,
        &VerifyOptions {
            read_data: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap()
}

#[test]
fn round_trip_plain_and_encrypted_on_memory_and_local() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn Storage>> = vec![
        Arc::new(MemoryStorage::new()),
        Arc::new(LocalStorage::new(dir.path().join("repo"))),
    ];
    for storage in stores {
        for pass in [None, Some("pw")] {
            let _ = storage.create();
            let fresh: Arc<dyn Storage> = if storage.exists(Kind::Config, "config").unwrap() {
                Arc::new(MemoryStorage::new())
            } else {
                storage.clone()
            };
            let repo = Repository::init(fresh, &cheap_init(pass)).unwrap();
            let files = vec![
                ("empty", Vec::new(), Chunking::ContentDefined),
                ("small", b"hello".to_vec(), Chunking::ContentDefined),
                ("big", pagey(3 << 20, 1), Chunking::ContentDefined),
                ("pages", pagey(1 << 20, 2), Chunking::Fixed(4096)),
            ];
            let mut src = VecSource::new(files.clone());
            let s = backup(
                &repo,
                &Index::default(),
                &mut src,
                &opts("t", 0),
                &NoProgress,
            )
            .unwrap();
            assert_eq!(s.items, 4);
            assert_eq!(s.bytes_in, (4 << 20) + 5);
            let got = restore_all(&repo, &s.id);
            let want: Vec<(String, Vec<u8>)> = files
                .into_iter()
                .map(|(p, d, _)| (p.to_string(), d))
                .collect();
            assert_eq!(got, want);
            assert_eq!(repo.is_encrypted(), pass.is_some());
            let report = verify_data(&repo);
            assert!(report.is_clean(), "{:?}", report.problems);
        }
    }
}

#[test]
fn unchanged_content_adds_only_the_snapshot_and_one_page_adds_little() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    // 16 MiB of 4 KiB pages: 4096 chunk references, so the content is a multi-level tree.
    let mut db = pagey(16 << 20, 3);
    let run = |db: &[u8], t| {
        let (index, _) = Index::load(&repo).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.to_vec(), Chunking::Fixed(4096))]);
        backup(&repo, &index, &mut src, &opts("shop", t), &NoProgress).unwrap()
    };
    let first = run(&db, 0);
    assert!(
        first.bytes_added > 2 << 20,
        "first backup stores the data: {}",
        first.bytes_added
    );
    let again = run(&db, 1);
    assert_eq!(again.chunks_new, 0);
    assert!(
        again.bytes_added < 2048,
        "unchanged: {} bytes added",
        again.bytes_added
    );
    // Change one page in the middle: one new data chunk plus the tree nodes above it.
    db[8 << 20] ^= 0xff;
    let one = run(&db, 2);
    // The changed page, and the item list chunk that records the item's new tree root.
    assert_eq!(one.chunks_new, 2);
    assert!(
        one.bytes_added < 24 * 1024,
        "one page changed: {} bytes added",
        one.bytes_added
    );
    assert_eq!(restore_all(&repo, &one.id)[0].1, db);
    assert_eq!(
        restore_all(&repo, &first.id)[0].1[8 << 20],
        db[8 << 20] ^ 0xff
    );
}

/// Every page of `db` is looked up in an index kept on disk and in a set of new chunks moved
/// to sorted runs after every batch: the same chunks are new as with everything in memory,
/// nothing is new the second time, and every snapshot restores byte for byte.
#[test]
fn backups_with_the_index_and_new_chunks_on_disk_dedup_and_restore() {
    let scratch = tempfile::tempdir().unwrap();
    let spill = SpillOptions {
        dir: Some(scratch.path().to_path_buf()),
        ..SpillOptions::all_above(0)
    };
    // 6 MiB of pages, then its first 3 MiB again: duplicates a batch or more apart, found
    // in this backup's runs on disk.
    let mut db = pagey(6 << 20, 5);
    db.extend_from_within(..3 << 20);
    let run = |repo: &Repository, spill: &SpillOptions, db: &[u8], t| {
        let (index, _) = Index::load_for_backup(repo, spill).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.to_vec(), Chunking::Fixed(4096))]);
        let s = backup(repo, &index, &mut src, &opts("shop", t), &NoProgress).unwrap();
        (s, index.is_on_disk())
    };
    let memory = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let (expected, on_disk) = run(&memory, &SpillOptions::default(), &db, 0);
    assert!(!on_disk);
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let (first, _) = run(&repo, &spill, &db, 0);
    assert_eq!(first.chunks_new, expected.chunks_new);
    assert_eq!(first.chunks, expected.chunks);
    let (again, on_disk) = run(&repo, &spill, &db, 1);
    assert!(on_disk, "the index went to a scratch file");
    assert_eq!(again.chunks_new, 0);
    db[4 << 20] ^= 0xff;
    let (one, _) = run(&repo, &spill, &db, 2);
    assert_eq!(one.chunks_new, 2, "the changed page and the item list");
    assert_eq!(restore_all(&repo, &one.id)[0].1, db);
    db[4 << 20] ^= 0xff;
    assert_eq!(restore_all(&repo, &first.id)[0].1, db);
    assert!(verify_data(&repo).is_clean());
    // Scratch files are anonymous: nothing is left in their folder.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

/// The on-disk index is built from the index files there are at each load: chunks of a file
/// added since are found, those of a file removed since are not.
#[test]
fn an_index_on_disk_follows_the_index_files() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let spill = SpillOptions::all_above(0);
    let store = |data: Vec<u8>, t| {
        let (index, _) = Index::load_for_backup(&repo, &spill).unwrap();
        let mut src = VecSource::new(vec![("f", data, Chunking::Fixed(4096))]);
        backup(&repo, &index, &mut src, &opts("s", t), &NoProgress).unwrap();
    };
    let ids = |data: &[u8]| -> Vec<backstop_format::ChunkId> {
        data.chunks(4096)
            .map(|c| repo.crypter().chunk_id(c))
            .collect()
    };
    let (a, b) = (pagey(64 << 10, 1), pagey(64 << 10, 2));
    store(a.clone(), 0);
    let first_files = storage.list(Kind::Index).unwrap();
    let (index, _) = Index::load_for_backup(&repo, &spill).unwrap();
    assert!(index.is_on_disk());
    assert!(ids(&a).iter().all(|id| index.contains(id)));
    assert!(!ids(&b).iter().any(|id| index.contains(id)));
    store(b.clone(), 1);
    let (index, _) = Index::load_for_backup(&repo, &spill).unwrap();
    assert!(ids(&a).iter().chain(&ids(&b)).all(|id| index.contains(id)));
    for f in &first_files {
        storage.delete(Kind::Index, &f.name).unwrap();
    }
    let (index, _) = Index::load_for_backup(&repo, &spill).unwrap();
    assert!(!ids(&a).iter().any(|id| index.contains(id)));
    assert!(ids(&b).iter().all(|id| index.contains(id)));
    index.disk_error().unwrap();
}

#[test]
fn wrong_or_missing_passphrase_is_its_own_error() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    Repository::init(storage.clone(), &cheap_init(Some("right"))).unwrap();
    assert!(matches!(
        Repository::open(storage.clone(), Some("wrong")),
        Err(Error::WrongPassphrase(_))
    ));
    assert!(matches!(
        Repository::open(storage.clone(), None),
        Err(Error::PassphraseRequired(_))
    ));
    assert!(
        Repository::open(storage, Some("right"))
            .unwrap()
            .is_encrypted()
    );
    let empty: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    assert!(matches!(
        Repository::open(empty, None),
        Err(Error::NoRepository(_))
    ));
}

#[test]
fn encrypted_packs_hide_content_and_ids() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(Some("pw"))).unwrap();
    let secret = b"CUSTOMER-SECRET-".repeat(4096);
    let mut src = VecSource::new(vec![("f", secret.clone(), Chunking::ContentDefined)]);
    backup(
        &repo,
        &Index::default(),
        &mut src,
        &opts("s", 0),
        &NoProgress,
    )
    .unwrap();
    for kind in [Kind::Pack, Kind::Index, Kind::Snapshot] {
        for o in storage.list(kind).unwrap() {
            let raw = storage.read(kind, &o.name).unwrap();
            assert!(
                !raw.windows(16).any(|w| w == b"CUSTOMER-SECRET-"),
                "{kind} {} leaks plaintext",
                o.name
            );
            assert!(
                !raw.windows(32)
                    .any(|w| w == blake3::hash(&secret).as_bytes()),
                "{kind} leaks an unkeyed hash"
            );
        }
    }
}

#[test]
fn damaged_pack_is_named_and_never_restored() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let data = pseudo_random(200_000, 9);
    let mut src = VecSource::new(vec![("f", data, Chunking::ContentDefined)]);
    let s = backup(
        &repo,
        &Index::default(),
        &mut src,
        &opts("s", 0),
        &NoProgress,
    )
    .unwrap();
    let (index, _) = Index::load(&repo).unwrap();
    // Flip a byte inside the first data chunk of the data pack.
    let snap = repo.load_snapshot(&s.id).unwrap();
    let items = Loader::new(&repo, &index).read_items(&snap.items).unwrap();
    let first = items[0].content.as_ref().unwrap().chunks[0].id;
    let loc = index.get(&first).unwrap();
    let pack = index.pack(loc.pack).id.to_hex();
    storage.corrupt(Kind::Pack, &pack, |b| b[loc.offset as usize + 10] ^= 1);
    let err = Loader::new(&repo, &index)
        .read_content(items[0].content.as_ref().unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    let report = verify_data(&repo);
    let kinds: Vec<&str> = report.problems.iter().map(|p| p.kind.as_str()).collect();
    assert!(
        kinds.contains(&"damaged-pack") && kinds.contains(&"damaged-chunk"),
        "{kinds:?}"
    );
    let chunk_problem = report
        .problems
        .iter()
        .find(|p| p.kind == "damaged-chunk")
        .unwrap();
    assert_eq!(chunk_problem.object, first.to_hex());
    assert_eq!(chunk_problem.affected[0].snapshot, s.id);
    assert_eq!(chunk_problem.affected[0].items, ["f"]);
}

#[test]
fn failed_source_leaves_no_snapshot() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let mut src = VecSource::new(vec![(
        "dump.sql",
        pagey(100_000, 4),
        Chunking::ContentDefined,
    )]);
    src.fail_at_finish = true;
    let err = backup(
        &repo,
        &Index::default(),
        &mut src,
        &opts("db", 0),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("dump failed"));
    assert!(storage.list(Kind::Snapshot).unwrap().is_empty());
    assert!(
        storage.list(Kind::Lock).unwrap().is_empty(),
        "the lock is released on failure"
    );
    assert!(verify_data(&repo).is_clean());
}

/// A storage whose pack writes fail once `packs_left` of them have succeeded (a disk that
/// fills up during a backup).
#[derive(Debug)]
struct FillingUp {
    inner: MemoryStorage,
    packs_left: std::sync::atomic::AtomicUsize,
}

impl Storage for FillingUp {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> backstop_storage::Result<()> {
        self.inner.create()
    }
    fn list(&self, kind: Kind) -> backstop_storage::Result<Vec<backstop_storage::ObjectInfo>> {
        self.inner.list(kind)
    }
    fn stat(
        &self,
        kind: Kind,
        name: &str,
    ) -> backstop_storage::Result<backstop_storage::ObjectInfo> {
        self.inner.stat(kind, name)
    }
    fn read(&self, kind: Kind, name: &str) -> backstop_storage::Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn read_range(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> backstop_storage::Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, len)
    }
    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> backstop_storage::Result<()> {
        use std::sync::atomic::Ordering;
        if kind == Kind::Pack
            && self
                .packs_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(backstop_storage::Error::Io {
                context: format!("writing pack {name}"),
                cause: std::io::Error::other("no space left on device"),
            });
        }
        self.inner.write(kind, name, data)
    }
    fn delete(&self, kind: Kind, name: &str) -> backstop_storage::Result<()> {
        self.inner.delete(kind, name)
    }
}

#[test]
fn a_pack_write_that_fails_fails_the_backup_with_its_reason_and_leaves_no_snapshot() {
    // Several packs' worth of pages (1 MiB packs), so the failure comes while the sealer and
    // the writer are busy, and again with the very first pack.
    for packs_left in [0, 2] {
        let storage = Arc::new(FillingUp {
            inner: MemoryStorage::new(),
            packs_left: packs_left.into(),
        });
        let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
        let mut src = VecSource::new(vec![(
            "shop.db",
            pseudo_random(6 << 20, 7),
            Chunking::Fixed(4096),
        )]);
        let err = backup(
            &repo,
            &Index::default(),
            &mut src,
            &opts("db", 0),
            &NoProgress,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no space left on device"),
            "the storage's own error is reported: {err}"
        );
        assert!(storage.list(Kind::Snapshot).unwrap().is_empty());
        assert!(
            storage.list(Kind::Lock).unwrap().is_empty(),
            "the lock is released on failure"
        );
        assert_eq!(storage.list(Kind::Pack).unwrap().len(), packs_left);
        // What was stored is consistent: verify finds no problem, and a backup with room to
        // spare goes through and restores.
        storage
            .packs_left
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let report = verify_data(&repo);
        assert!(report.is_clean(), "{:?}", report.problems);
        let (index, _) = Index::load(&repo).unwrap();
        let data = pseudo_random(6 << 20, 7);
        let mut src = VecSource::new(vec![("shop.db", data.clone(), Chunking::Fixed(4096))]);
        let s = backup(&repo, &index, &mut src, &opts("db", 1), &NoProgress).unwrap();
        assert!(
            restore_all(&repo, &s.id) == [("shop.db".to_string(), data)],
            "the second backup restores byte for byte"
        );
    }
}

#[test]
fn exclusive_lock_blocks_backups_until_released_or_stale() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let now = Timestamp::now();
    let prune = Lock::acquire(&repo, true, "prune", "test-host", now).unwrap();
    let mut src = VecSource::new(vec![("f", b"x".to_vec(), Chunking::ContentDefined)]);
    let mut o = opts("s", 0);
    o.time = now;
    let err = backup(&repo, &Index::default(), &mut src, &o, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    assert!(
        Lock::acquire(&repo, true, "prune", "test-host", now).is_err(),
        "two exclusive locks"
    );
    prune.release().unwrap();
    let shared = Lock::acquire(&repo, false, "backup", "test-host", now).unwrap();
    assert!(
        Lock::acquire(&repo, false, "backup", "test-host", now).is_ok(),
        "shared locks coexist"
    );
    assert!(
        Lock::acquire(&repo, true, "prune", "test-host", now).is_err(),
        "exclusive waits for backups"
    );
    // A lock not refreshed for longer than the stale period no longer blocks.
    let later = now
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let exclusive = Lock::acquire(&repo, true, "prune", "other-host", later).unwrap();
    drop(exclusive);
    drop(shared);
    assert!(storage.list(Kind::Lock).unwrap().is_empty());
}

#[test]
fn concurrent_backups_into_one_repository() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().join("r")));
    Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let shared = pagey(2 << 20, 7);
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let storage = storage.clone();
            let mut data = shared.clone();
            data.extend(pagey(1 << 20, 100 + i));
            std::thread::spawn(move || {
                let repo = Repository::open(storage, None).unwrap();
                let (index, _) = Index::load(&repo).unwrap();
                let mut src = VecSource::new(vec![("f", data.clone(), Chunking::ContentDefined)]);
                let s = backup(
                    &repo,
                    &index,
                    &mut src,
                    &opts(&format!("s{i}"), i as i64),
                    &NoProgress,
                )
                .unwrap();
                (s.id, data)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let repo = Repository::open(storage, None).unwrap();
    assert!(verify_data(&repo).is_clean());
    for (id, data) in results {
        assert_eq!(restore_all(&repo, &id)[0].1, data);
    }
}

#[test]
fn snapshot_specs() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let mut ids = Vec::new();
    for (i, name) in ["a", "b", "a"].iter().enumerate() {
        let mut src = VecSource::new(vec![("f", vec![i as u8; 10], Chunking::ContentDefined)]);
        ids.push(
            backup(
                &repo,
                &Index::load(&repo).unwrap().0,
                &mut src,
                &opts(name, i as i64),
                &NoProgress,
            )
            .unwrap()
            .id,
        );
    }
    assert_eq!(repo.find_snapshot("latest").unwrap().0, ids[2]);
    assert_eq!(repo.find_snapshot("latest:b").unwrap().0, ids[1]);
    assert_eq!(
        repo.find_snapshot(&ids[0].to_hex()[..12]).unwrap().0,
        ids[0]
    );
    assert!(matches!(
        repo.find_snapshot("latest:zzz"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        repo.find_snapshot("not-hex"),
        Err(Error::Invalid(_))
    ));
    assert_eq!(repo.load_snapshot(&ids[2]).unwrap().parent, Some(ids[0]));
}

#[test]
fn a_crafted_snapshot_cannot_write_outside_the_target() {
    use backstop_engine::store::{ChunkStore, TreeBuilder};
    use backstop_engine::{RestoreOptions, plan_restore};
    use backstop_format::manifest::{SNAPSHOT_VERSION, Snapshot, SnapshotStats, SourceRef};

    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    for evil in ["../evil", "/etc/evil", "a/../../evil"] {
        let index = Index::default();
        let mut store = ChunkStore::new(&repo, &index);
        let line = format!("{{\"path\":{evil:?},\"type\":\"file\",\"size\":0}}\n").into_bytes();
        let mut tree = TreeBuilder::new();
        for r in store
            .add_data(&backstop_engine::chunker::Batch::of(&[&line]))
            .unwrap()
        {
            tree.push(&mut store, r).unwrap();
        }
        let items = tree
            .finish(&mut store, blake3::hash(&line).to_hex().to_string())
            .unwrap();
        store.finish().unwrap();
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            time: Timestamp::UNIX_EPOCH,
            host: "h".into(),
            source: SourceRef {
                name: "x".into(),
                kind: SourceKind::Files,
            },
            kind: BackupKind::Manual,
            description: None,
            tags: vec![],
            ticket: None,
            parent: None,
            paths: vec![],
            items,
            stats: SnapshotStats::default(),
            warnings: vec![],
            program: "crafted".into(),
            repaired: None,
            excludes: Default::default(),
        };
        let id = repo.write_snapshot(&snap).unwrap();
        let (index, _) = Index::load(&repo).unwrap();
        let target = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: target.path().join("t"),
            overwrite: true,
            host: "test".into(),
        };
        let err = plan_restore(&repo, &index, id, &snap, &opts).unwrap_err();
        assert!(err.to_string().contains("unsafe path"), "{evil}: {err}");
    }
    // And a source cannot produce such a snapshot in the first place.
    let mut src = VecSource::new(vec![("../x", vec![1], Chunking::ContentDefined)]);
    assert!(
        backup(
            &repo,
            &Index::default(),
            &mut src,
            &opts("s", 0),
            &NoProgress
        )
        .is_err()
    );
}

/// A source with one database-like item: fixed 4 KiB chunks, with the item kind and metadata
/// that make the engine store later versions as deltas against the first one's tree.
struct PagesSource {
    data: Option<Vec<u8>>,
}

/// Content in owned buffers, as a database capture hands it over; of 2 MiB, the engine's read
/// batch, so that the engine cuts the same batches as from a reader.
struct Pieces(std::vec::IntoIter<Vec<u8>>);

impl Pieces {
    fn of(data: &[u8]) -> Box<dyn Buffers> {
        let pieces: Vec<Vec<u8>> = data.chunks(2 << 20).map(<[u8]>::to_vec).collect();
        Box::new(Pieces(pieces.into_iter()))
    }
}

impl Buffers for Pieces {
    fn next_buffer(&mut self, _: Option<Vec<u8>>) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.next())
    }
}

/// The capture of a [`PagesSource`]'s item: completes it with database metadata.
struct PagesCapture;

impl Capture for PagesCapture {
    fn chunking(&self) -> Chunking {
        Chunking::Fixed(4096)
    }
    fn complete(
        self: Box<Self>,
        item: &mut Item,
        _: Option<&Item>,
    ) -> Result<(), backstop_sources::Error> {
        item.database = Some(backstop_format::manifest::DatabaseMeta {
            page_size: 4096,
            page_count: item.size / 4096,
            journal_mode: "wal".into(),
            user_version: 0,
            schema_fingerprint: String::new(),
            tables: vec![],
            quick_check: "ok".into(),
            not_checkable: Vec::new(),
            source_path: "/db".into(),
        });
        Ok(())
    }
}

impl Source for PagesSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }
    fn describe(&self) -> Vec<String> {
        vec!["db".into()]
    }
    fn next_entry(&mut self) -> Result<Option<Entry>, backstop_sources::Error> {
        Ok(self.data.take().map(|d| Entry {
            item: Item {
                size: d.len() as u64,
                ..Item::new("db", ItemKind::Sqlite)
            },
            content: Some(EntryContent::Captured {
                buffers: Pieces::of(&d),
                capture: Box::new(PagesCapture),
            }),
            required: true,
            reuse_unchanged: false,
        }))
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<(), backstop_sources::Error> {
        Ok(())
    }
}

#[test]
fn database_versions_are_deltas_that_restore_exactly() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let run = |db: &[u8], t: i64| {
        let (index, _) = Index::load(&repo).unwrap();
        let mut src = PagesSource {
            data: Some(db.to_vec()),
        };
        let s = backup(&repo, &index, &mut src, &opts("db", t), &NoProgress).unwrap();
        let snap = repo.load_snapshot(&s.id).unwrap();
        let (index, _) = Index::load(&repo).unwrap();
        let item = Loader::new(&repo, &index)
            .read_items(&snap.items)
            .unwrap()
            .remove(0);
        (s, item.content.unwrap())
    };
    let pages = 2000;
    let mut db = pagey(pages * 4096, 11);
    let (_, c0) = run(&db, 0);
    assert!(
        c0.tree.is_some() && c0.delta.is_none(),
        "the first version is a full tree"
    );
    let mut versions = vec![(0i64, db.clone())];
    // Day by day: scattered page changes (10 % of pages), growth, shrink, an unchanged day, and
    // a day that changes most pages (back to a full tree).
    let mut rng = 12345u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as usize
    };
    for day in 1..=6i64 {
        match day {
            3 => db.extend(pagey(37 * 4096 + 100, 99)), // grows, with a partial last page
            4 => db.truncate(1500 * 4096 + 17),         // shrinks
            5 => {}                                     // unchanged
            6 => db = pagey(db.len(), 1234),            // rewritten
            _ => {
                for _ in 0..pages / 10 {
                    let p = next() % (db.len() / 4096);
                    db[p * 4096 + next() % 4096] ^= 0x5a;
                }
            }
        }
        let (s, c) = run(&db, day);
        match day {
            5 => {
                assert_eq!(s.bytes_added, 0, "an unchanged database adds nothing");
            }
            6 => assert!(c.delta.is_none(), "most pages changed: a full tree again"),
            _ => {
                let d = c.delta.as_ref().expect("a delta against the first version");
                assert_eq!(
                    d.base,
                    c0.tree.unwrap(),
                    "deltas never chain: the base is the full tree"
                );
                assert!(d.patch.delta.is_none());
            }
        }
        versions.push((day, db.clone()));
    }
    // Every version restores exactly, and verify is clean.
    let (snaps, _) = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), versions.len());
    for ((id, _), (_, want)) in snaps.iter().zip(&versions) {
        assert_eq!(&restore_all(&repo, id)[0].1, want);
    }
    let report = verify_data(&repo);
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_delta_costs_the_changed_pages_not_the_whole_list() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let run = |db: &[u8], t: i64| {
        let (index, _) = Index::load(&repo).unwrap();
        let mut src = PagesSource {
            data: Some(db.to_vec()),
        };
        backup(&repo, &index, &mut src, &opts("db", t), &NoProgress).unwrap()
    };
    // 32 MiB of pages; change one byte in 10 % of them, spread over the whole file.
    let pages = 8192;
    let mut db = pagey(pages * 4096, 21);
    run(&db, 0);
    for p in (0..pages).step_by(10) {
        db[p * 4096 + 7] ^= 1;
    }
    let s = run(&db, 1);
    // The changed pages, the item list chunk, and the patch list (29 KiB: a few 8 KiB chunks).
    let changed = pages.div_ceil(10);
    assert!(
        (changed + 2..=changed + 6).contains(&(s.chunks_new as usize)),
        "{} new chunks",
        s.chunks_new
    );
    let (index, _) = Index::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let item = Loader::new(&repo, &index)
        .read_items(&snap.items)
        .unwrap()
        .remove(0);
    let d = item.content.unwrap().delta.expect("a delta");
    assert_eq!(d.patches as usize, pages.div_ceil(10));
    // A full tree would list every page's id again (8192 x 34 bytes = 272 KiB); the delta lists
    // the changed pages only.
    assert!(
        d.patch.size < 820 * 36,
        "patch list of {} bytes",
        d.patch.size
    );
}
