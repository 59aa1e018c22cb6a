//! Engine tests on in-memory and local storage: round trips, deduplication of content and
//! metadata, encryption, damage, locks, and sources that fail.

mod copies;
mod databases;
mod faults;
#[path = "../support/pieces.rs"]
mod pieces;
mod small_files;

use pieces::opts;

use std::io::Cursor;
use std::sync::Arc;

use backstop_engine::lock::Lock;
use backstop_engine::{
    Error, Indexed, InitOptions, NoProgress, Repository, SpillOptions, VerifyOptions, backup,
    verify,
};
use backstop_format::crypto::KdfParams;
use backstop_format::manifest::{BackupKind, Item, ItemKind, SourceKind};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::{Capture, Chunking, Entry, EntryContent, Source};
use backstop_storage::{Kind, LocalStorage, MemoryStorage, Storage};
use pieces::Pieces;

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

fn restore_all(repo: &Repository, id: &SnapshotId) -> Vec<(String, Vec<u8>)> {
    let ix = Indexed::load(repo).unwrap();
    assert!(ix.unreadable().is_empty());
    let snap = repo.load_snapshot(id).unwrap();
    let loader = ix.loader();
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
            let s = backup(&Indexed::empty(&repo), &mut src, &opts("t", 0), &NoProgress).unwrap();
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
        let ix = Indexed::load(&repo).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.to_vec(), Chunking::Fixed(4096))]);
        backup(&ix, &mut src, &opts("shop", t), &NoProgress).unwrap()
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
        let ix = Indexed::load_for_backup(repo, spill).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.to_vec(), Chunking::Fixed(4096))]);
        let s = backup(&ix, &mut src, &opts("shop", t), &NoProgress).unwrap();
        (s, ix.index().is_on_disk())
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
        let ix = Indexed::load_for_backup(&repo, &spill).unwrap();
        let mut src = VecSource::new(vec![("f", data, Chunking::Fixed(4096))]);
        backup(&ix, &mut src, &opts("s", t), &NoProgress).unwrap();
    };
    let ids = |data: &[u8]| -> Vec<backstop_format::ChunkId> {
        data.chunks(4096)
            .map(|c| repo.crypter().chunk_id(c))
            .collect()
    };
    let (a, b) = (pagey(64 << 10, 1), pagey(64 << 10, 2));
    store(a.clone(), 0);
    let first_files = storage.list(Kind::Index).unwrap();
    let ix = Indexed::load_for_backup(&repo, &spill).unwrap();
    assert!(ix.index().is_on_disk());
    assert!(ids(&a).iter().all(|id| ix.index().contains(id)));
    assert!(!ids(&b).iter().any(|id| ix.index().contains(id)));
    store(b.clone(), 1);
    let ix = Indexed::load_for_backup(&repo, &spill).unwrap();
    assert!(
        ids(&a)
            .iter()
            .chain(&ids(&b))
            .all(|id| ix.index().contains(id))
    );
    for f in &first_files {
        storage.delete(Kind::Index, &f.name).unwrap();
    }
    let ix = Indexed::load_for_backup(&repo, &spill).unwrap();
    assert!(!ids(&a).iter().any(|id| ix.index().contains(id)));
    assert!(ids(&b).iter().all(|id| ix.index().contains(id)));
    ix.index().disk_error().unwrap();
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
    backup(&Indexed::empty(&repo), &mut src, &opts("s", 0), &NoProgress).unwrap();
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
fn exclusive_lock_blocks_backups_until_released_or_stale() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let now = Timestamp::now();
    let prune = Lock::acquire(&repo, true, "prune", "test-host", now).unwrap();
    let mut src = VecSource::new(vec![("f", b"x".to_vec(), Chunking::ContentDefined)]);
    let mut o = opts("s", 0);
    o.time = now;
    let err = backup(&Indexed::empty(&repo), &mut src, &o, &NoProgress).unwrap_err();
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
                let ix = Indexed::load(&repo).unwrap();
                let mut src = VecSource::new(vec![("f", data.clone(), Chunking::ContentDefined)]);
                let s = backup(
                    &ix,
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
                &Indexed::load(&repo).unwrap(),
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
