//! What goes wrong: a damaged pack, a failing source, a storage that fills up, and a crafted
//! snapshot aiming outside the restore target.

use super::*;

#[test]
fn damaged_pack_is_named_and_never_restored() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let data = pseudo_random(200_000, 9);
    let mut src = VecSource::new(vec![("f", data, Chunking::ContentDefined)]);
    let s = backup(&Indexed::empty(&repo), &mut src, &opts("s", 0), &NoProgress).unwrap();
    let ix = Indexed::load(&repo).unwrap();
    // Flip a byte inside the first data chunk of the data pack.
    let snap = repo.load_snapshot(&s.id).unwrap();
    let items = ix.loader().read_items(&snap.items).unwrap();
    let first = items[0].content.as_ref().unwrap().chunks[0].id;
    let loc = ix.index().get(&first).unwrap();
    let pack = ix.index().pack(loc.pack).id.to_hex();
    storage.corrupt(Kind::Pack, &pack, |b| b[loc.offset as usize + 10] ^= 1);
    let err = ix
        .loader()
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
        &Indexed::empty(&repo),
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
/// fills up during a backup), and that asks for `parallelism` requests in flight (as a remote
/// store does).
#[derive(Debug)]
pub(crate) struct FillingUp {
    inner: MemoryStorage,
    packs_left: std::sync::atomic::AtomicUsize,
    parallelism: usize,
}

impl FillingUp {
    pub(crate) fn new(packs_left: usize, parallelism: usize) -> Self {
        Self {
            inner: MemoryStorage::new(),
            packs_left: packs_left.into(),
            parallelism,
        }
    }

    /// Room for any number of packs from now on.
    pub(crate) fn make_room(&self) {
        self.packs_left
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    }
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
    fn parallelism(&self) -> usize {
        self.parallelism
    }
}

#[test]
fn a_pack_write_that_fails_fails_the_backup_with_its_reason_and_leaves_no_snapshot() {
    // Several packs' worth of pages (1 MiB packs), so the failure comes while the sealer and
    // the writer are busy, and again with the very first pack; with one pack stored at a time,
    // and with four (several uploads and ranged reads in flight).
    for (packs_left, parallelism) in [(0, 1), (2, 1), (0, 4), (2, 4), (5, 4)] {
        let storage = Arc::new(FillingUp {
            inner: MemoryStorage::new(),
            packs_left: packs_left.into(),
            parallelism,
        });
        let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
        let mut src = VecSource::new(vec![(
            "shop.db",
            pseudo_random(6 << 20, 7),
            Chunking::Fixed(4096),
        )]);
        let err = backup(
            &Indexed::empty(&repo),
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
        let ix = Indexed::load(&repo).unwrap();
        let data = pseudo_random(6 << 20, 7);
        let mut src = VecSource::new(vec![("shop.db", data.clone(), Chunking::Fixed(4096))]);
        let s = backup(&ix, &mut src, &opts("db", 1), &NoProgress).unwrap();
        assert!(
            restore_all(&repo, &s.id) == [("shop.db".to_string(), data)],
            "the second backup restores byte for byte"
        );
    }
}

#[test]
fn a_crafted_snapshot_cannot_write_outside_the_target() {
    use backstop_engine::store::{ChunkStore, TreeBuilder};
    use backstop_engine::{RestoreOptions, plan_restore};
    use backstop_format::manifest::{SNAPSHOT_VERSION, Snapshot, SnapshotStats, SourceRef};

    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    for evil in ["../evil", "/etc/evil", "a/../../evil"] {
        let ix = Indexed::empty(&repo);
        let mut store = ChunkStore::new(&ix);
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
        let ix = Indexed::load(&repo).unwrap();
        let target = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: target.path().join("t"),
            overwrite: true,
            host: "test".into(),
        };
        let err = plan_restore(&ix, id, &snap, &opts).unwrap_err();
        assert!(err.to_string().contains("unsafe path"), "{evil}: {err}");
    }
    // And a source cannot produce such a snapshot in the first place.
    let mut src = VecSource::new(vec![("../x", vec![1], Chunking::ContentDefined)]);
    assert!(backup(&Indexed::empty(&repo), &mut src, &opts("s", 0), &NoProgress).is_err());
}

/// To a storage that wants several requests in flight, packs are stored several at a time
/// (and finish in any order): the content still restores in order, and a damaged pack fails the
/// restore.
#[test]
fn packs_stored_several_at_a_time_restore_in_order_and_damage_still_fails() {
    let storage = Arc::new(FillingUp {
        inner: MemoryStorage::new(),
        packs_left: usize::MAX.into(),
        parallelism: 4,
    });
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let data = pseudo_random(40 << 20, 3);
    let mut src = VecSource::new(vec![("big.bin", data.clone(), Chunking::Fixed(4096))]);
    let s = backup(&Indexed::empty(&repo), &mut src, &opts("f", 0), &NoProgress).unwrap();
    assert!(restore_all(&repo, &s.id) == [("big.bin".to_string(), data)]);
    let ix = Indexed::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let item = ix.loader().read_items(&snap.items).unwrap().remove(0);
    // A data pack in the middle of the content.
    let packs = storage.inner.list(Kind::Pack).unwrap();
    let data_packs: Vec<_> = packs.iter().filter(|p| p.size > 512 << 10).collect();
    assert!(data_packs.len() > 8, "{} packs", data_packs.len());
    let victim = &data_packs[data_packs.len() / 2].name;
    storage.inner.corrupt(Kind::Pack, victim, |b| {
        let at = b.len() / 3;
        b[at] ^= 0x40;
    });
    let err = ix
        .loader()
        .read_content(item.content.as_ref().unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("pack") || err.to_string().contains("chunk"),
        "{err}"
    );
}
