//! Prune correctness: what it keeps (everything a remaining snapshot uses, including the base
//! pages of deltas), what it removes (replaced base pages, unreferenced packs, second copies,
//! records of forgotten snapshots), when it refuses (damage), and that a backup whose index
//! was loaded before a prune stops instead of deduplicating against deleted chunks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;

use backstop_engine::lock::Lock;
use backstop_engine::{
    BackupSummary, Error, ErrorKind, ForgetOptions, Indexed, InitOptions, NoProgress, PruneOptions,
    PruneSummary, Repository, VerifyOptions, VerifyReport, backup, forget, prune, verify,
};
use backstop_format::manifest::{DatabaseMeta, Item, ItemKind, SourceKind};
use backstop_format::pack::IndexFile;
use backstop_format::record::{MARK_VERIFIED, PIN, Record};
use backstop_format::tree::{ChunkRef, Content};
use backstop_format::{ChunkId, PackId, SnapshotId, Timestamp};
use backstop_policy::{Lifecycle, Policy};
use backstop_sources::{Capture, Chunking, Entry, EntryContent, Source};
use backstop_storage::{Kind, MemoryStorage, Storage};
use rstest::rstest;

#[path = "support/pieces.rs"]
mod pieces;
use pieces::{Pieces, opts};

const HOST: &str = "test-host";
const PAGE: usize = 4096;

/// A source of in-memory items: files (content-defined chunks) or one SQLite-like item of
/// fixed 4 KiB pages, which the engine stores as a delta against the previous version's tree.
struct TestSource {
    items: Vec<(String, Vec<u8>)>,
    kind: SourceKind,
}

impl Source for TestSource {
    fn kind(&self) -> SourceKind {
        self.kind
    }
    fn describe(&self) -> Vec<String> {
        vec!["test".into()]
    }
    fn next_entry(&mut self) -> Result<Option<Entry>, backstop_sources::Error> {
        let Some((path, data)) = self.items.pop() else {
            return Ok(None);
        };
        let size = data.len() as u64;
        let (kind, content) = match self.kind {
            SourceKind::Sqlite => (
                ItemKind::Sqlite,
                EntryContent::Captured {
                    buffers: Pieces::of(&data),
                    capture: Box::new(DbCapture),
                },
            ),
            _ => (
                ItemKind::File,
                EntryContent::Stream {
                    reader: Box::new(Cursor::new(data)),
                    chunking: Chunking::ContentDefined,
                },
            ),
        };
        Ok(Some(Entry {
            item: Item {
                size,
                ..Item::new(path, kind)
            },
            content: Some(content),
            required: true,
            reuse_unchanged: false,
        }))
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn finish(&mut self) -> SourceResult {
        Ok(())
    }
}

/// The capture of a [`TestSource`]'s SQLite-like item.
struct DbCapture;

impl Capture for DbCapture {
    fn chunking(&self) -> Chunking {
        Chunking::Fixed(PAGE as u32)
    }
    fn complete(self: Box<Self>, item: &mut Item, _: Option<&Item>) -> SourceResult {
        // What makes the engine store later versions as deltas: the page size.
        item.database = Some(DatabaseMeta {
            page_size: PAGE as u32,
            page_count: item.size / PAGE as u64,
            journal_mode: "wal".into(),
            user_version: 0,
            schema_fingerprint: String::new(),
            tables: vec![],
            quick_check: "ok".into(),
            not_checkable: Vec::new(),
            source_path: "/db".into(),
            validation: None,
        });
        Ok(())
    }
}

type SourceResult = Result<(), backstop_sources::Error>;

/// Data that compresses (text-like) but does not dedup within itself.
fn pagey(n: usize, seed: u64) -> Vec<u8> {
    let mut noise = vec![0u8; n / 6 + 1];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut noise);
    noise
        .iter()
        .flat_map(|b| format!("{b:02x}-row,").into_bytes())
        .take(n)
        .collect()
}

/// An unencrypted in-memory repository with small packs, so a few MiB make many packs.
fn new_repo() -> (Arc<MemoryStorage>, Repository) {
    new_repo_with(None)
}

/// Like [`new_repo`], encrypted when given a passphrase (with a cheap key derivation).
fn new_repo_with(pass: Option<&str>) -> (Arc<MemoryStorage>, Repository) {
    let storage = Arc::new(MemoryStorage::new());
    let mut o = InitOptions::new(pass.map(str::to_string), Timestamp::UNIX_EPOCH, HOST.into());
    o.pack_size = 256 << 10;
    o.kdf.m_kib = 64;
    let repo = Repository::init(storage.clone(), &o).unwrap();
    (storage, repo)
}

/// A backup with a freshly loaded index.
fn run(repo: &Repository, src: TestSource, name: &str, t: i64) -> BackupSummary {
    let ix = Indexed::load(repo).unwrap();
    assert!(ix.unreadable().is_empty(), "{:?}", ix.unreadable());
    run_on(&ix, src, name, t).unwrap()
}

/// A backup with the given index (loaded earlier).
fn run_on(
    ix: &Indexed<'_>,
    mut src: TestSource,
    name: &str,
    t: i64,
) -> Result<BackupSummary, Error> {
    backup(ix, &mut src, &opts(name, t), &NoProgress)
}

fn files(items: &[(&str, &[u8])]) -> TestSource {
    let items = items.iter().rev().map(|(p, d)| (p.to_string(), d.to_vec()));
    TestSource {
        items: items.collect(),
        kind: SourceKind::Files,
    }
}

fn db(image: &[u8]) -> TestSource {
    TestSource {
        items: vec![("db".into(), image.to_vec())],
        kind: SourceKind::Sqlite,
    }
}

/// Every item of a snapshot with its bytes, each checked against its recorded hash.
fn restore_all(repo: &Repository, id: &SnapshotId) -> Vec<(String, Vec<u8>)> {
    let ix = Indexed::load(repo).unwrap();
    assert!(ix.unreadable().is_empty(), "{:?}", ix.unreadable());
    let snap = repo.load_snapshot(id).unwrap();
    let loader = ix.loader();
    loader
        .read_items(&snap.items)
        .unwrap()
        .into_iter()
        .map(|i| {
            let c = i.content.as_ref().unwrap();
            let data = loader.read_content(c).unwrap();
            assert_eq!(blake3::hash(&data).to_hex().as_str(), c.hash, "{}", i.path);
            (i.path, data)
        })
        .collect()
}

/// The content of an item of a snapshot (the first when `path` is empty).
fn content_of(repo: &Repository, id: &SnapshotId, path: &str) -> Content {
    let ix = Indexed::load(repo).unwrap();
    let snap = repo.load_snapshot(id).unwrap();
    let items = ix.loader().read_items(&snap.items).unwrap();
    let item = items
        .into_iter()
        .find(|i| path.is_empty() || i.path == path);
    item.unwrap().content.unwrap()
}

/// The data chunks of an item of a snapshot, in order.
fn item_chunks(repo: &Repository, id: &SnapshotId, path: &str) -> Vec<ChunkId> {
    let ix = Indexed::load(repo).unwrap();
    let mut ids = Vec::new();
    let mut chunk = |r: ChunkRef| {
        ids.push(r.id);
        Ok(())
    };
    let content = content_of(repo, id, path);
    let loader = ix.loader();
    loader.walk(&content, &mut |_| {}, &mut chunk).unwrap();
    ids
}

/// `verify --read-data`.
fn verify_data(repo: &Repository) -> VerifyReport {
    let o = VerifyOptions {
        read_data: true,
        host: HOST.into(),
    };
    verify(repo, &o, &NoProgress).unwrap()
}

/// `verify --read-data`, asserted clean.
#[track_caller]
fn assert_clean(repo: &Repository) -> VerifyReport {
    let report = verify_data(repo);
    assert!(report.is_clean(), "{:#?}", report.problems);
    report
}

fn forget_keep_last(repo: &Repository, n: u32) {
    forget(repo, &keep_last(n), false).unwrap();
}

/// Forget options that keep the `n` newest snapshots of each source.
fn keep_last(n: u32) -> ForgetOptions {
    ForgetOptions {
        policy: Policy {
            keep_last: Some(n),
            ..Policy::default()
        },
        per_source: BTreeMap::new(),
        sources: vec![],
        lifecycle: Lifecycle::default(),
        now: Timestamp::from_second(1_800_000_000).unwrap(),
        time_zone: jiff::tz::TimeZone::UTC,
        host: HOST.into(),
    }
}

fn prune_with(repo: &Repository, max_unused_percent: f64) -> Result<PruneSummary, Error> {
    let mut o = PruneOptions::new(HOST.into());
    o.max_unused_percent = max_unused_percent;
    prune(repo, &o, false, &NoProgress)
}

/// Every stored object but locks, with a hash of its bytes.
fn objects(storage: &dyn Storage) -> BTreeSet<(&'static str, String, String)> {
    let mut out = BTreeSet::new();
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Lock) {
        for o in storage.list(kind).unwrap() {
            let hash = blake3::hash(&storage.read(kind, &o.name).unwrap());
            out.insert((kind.name(), o.name, hash.to_hex().to_string()));
        }
    }
    out
}

/// Asserts that no object was added, changed or deleted, and no lock is left.
#[track_caller]
fn assert_unchanged(storage: &dyn Storage, before: &BTreeSet<(&str, String, String)>) {
    assert_eq!(&objects(storage), before, "objects changed");
    assert_eq!(names(storage, Kind::Lock), BTreeSet::new(), "lock left");
}

fn names(storage: &dyn Storage, kind: Kind) -> BTreeSet<String> {
    let list = storage.list(kind).unwrap();
    list.into_iter().map(|o| o.name).collect()
}

fn pack_bytes(storage: &dyn Storage) -> u64 {
    let list = storage.list(Kind::Pack).unwrap();
    list.iter().map(|o| o.size).sum()
}

fn page(db: &[u8], p: usize) -> &[u8] {
    &db[p * PAGE..(p + 1) * PAGE]
}

#[test]
fn a_backup_whose_index_predates_a_prune_stops_and_writes_nothing() {
    let (storage, repo) = new_repo();
    let old = pagey(1 << 20, 1);
    let new = pagey(1 << 20, 2);
    let s0 = run(&repo, files(&[("f", &old)]), "s", 0);
    run(&repo, files(&[("f", &new)]), "s", 1);
    let old_chunk = item_chunks(&repo, &s0.id, "f")[0];
    let stale = Indexed::load(&repo).unwrap();

    // Meanwhile: the old version is forgotten and pruned, so chunks the stale index lists are
    // gone. Deduplicating against them would make a snapshot that cannot be restored.
    forget_keep_last(&repo, 1);
    prune_with(&repo, 0.0).unwrap();
    let fresh = Indexed::load(&repo).unwrap();
    assert!(stale.index().contains(&old_chunk) && !fresh.index().contains(&old_chunk));

    let before = objects(storage.as_ref());
    let err = run_on(&stale, files(&[("f", &old)]), "s", 2).unwrap_err();
    assert!(matches!(err, Error::IndexChanged), "{err}");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.is_transient());
    assert_unchanged(storage.as_ref(), &before);
    // Readers holding a stale index are stopped the same way.
    let err = Lock::for_reading(&stale, "restore", HOST, &backstop_engine::NoProgress).unwrap_err();
    assert!(matches!(err, Error::IndexChanged), "{err}");

    // With the index loaded again the same backup stores the old data anew.
    let s = run(&repo, files(&[("f", &old)]), "s", 2);
    assert!(s.chunks_new > 0);
    assert_eq!(restore_all(&repo, &s.id), [("f".to_string(), old)]);
    assert_clean(&repo);
}

/// Replaces every `step`th page of `db` from `first` on with new content.
fn rewrite_pages(db: &mut [u8], first: usize, step: usize, seed: u64) {
    for p in (first..db.len() / PAGE).step_by(step) {
        db[p * PAGE..(p + 1) * PAGE].copy_from_slice(&pagey(PAGE, seed + p as u64));
    }
}

#[test]
fn prune_keeps_what_deltas_use_and_a_reverted_page_is_stored_again() {
    let (storage, repo) = new_repo();
    let pages = 1024;
    let v1 = pagey(pages * PAGE, 11);
    // v2 rewrites every 5th page, v3 (on top of v2) the pages after those: v3 differs from v1
    // in 40 % of its pages, a delta against v1's tree like v2.
    let mut v2 = v1.clone();
    rewrite_pages(&mut v2, 0, 5, 1000);
    let mut v3 = v2.clone();
    rewrite_pages(&mut v3, 1, 5, 5000);
    let s1 = run(&repo, db(&v1), "db", 1);
    let s2 = run(&repo, db(&v2), "db", 2);
    let s3 = run(&repo, db(&v3), "db", 3);
    let base = content_of(&repo, &s1.id, "")
        .tree
        .expect("v1 is a full tree");
    for s in [&s2, &s3] {
        let c = content_of(&repo, &s.id, "");
        assert_eq!(c.delta.expect("a delta").base, base);
    }
    let v1_page = |p| repo.crypter().chunk_id(page(&v1, p));
    let (replaced, kept): (Vec<usize>, Vec<usize>) = (0..pages).partition(|p| p % 5 < 2);
    let bytes_before = pack_bytes(storage.as_ref());

    forget_keep_last(&repo, 1);
    let summary = prune_with(&repo, 0.0).unwrap();
    assert!(summary.plan.repack_packs + summary.plan.delete_packs > 0);
    assert_eq!(restore_all(&repo, &s3.id)[0].1, v3);
    let report = assert_clean(&repo);
    assert_eq!(report.unreferenced_packs, 0);
    let ix = Indexed::load(&repo).unwrap();
    assert!(
        replaced.iter().all(|&p| !ix.index().contains(&v1_page(p))),
        "base pages every remaining version replaced are gone"
    );
    assert!(
        kept.iter().all(|&p| ix.index().contains(&v1_page(p))),
        "base pages v3 uses stay"
    );
    let bytes_after = pack_bytes(storage.as_ref());
    assert_eq!(summary.bytes_after, bytes_after);
    assert!(
        bytes_after * 10 < bytes_before * 8,
        "the repository shrank: {bytes_before} -> {bytes_after}"
    );

    // v4 puts back v1's content in some of the replaced pages: those positions match the
    // base again (no patch), so v4 names chunks prune removed, which it must store anew.
    let mut v4 = v3.clone();
    let reverted: Vec<usize> = (0..pages).filter(|p| p % 10 < 2).collect();
    for &p in &reverted {
        v4[p * PAGE..(p + 1) * PAGE].copy_from_slice(page(&v1, p));
    }
    let s4 = run(&repo, db(&v4), "db", 4);
    assert!(s4.chunks_new as usize >= reverted.len());
    let d4 = content_of(&repo, &s4.id, "").delta.expect("a delta");
    assert_eq!(d4.base, base);
    assert_eq!(d4.patches as usize, replaced.len() - reverted.len());
    let ix = Indexed::load(&repo).unwrap();
    assert!(reverted.iter().all(|&p| ix.index().contains(&v1_page(p))));
    assert_eq!(restore_all(&repo, &s4.id)[0].1, v4);
    assert_eq!(restore_all(&repo, &s3.id)[0].1, v3);
    assert_clean(&repo);

    // And once more after pruning again: nothing v3 and v4 use may be taken.
    prune_with(&repo, 0.0).unwrap();
    assert_eq!(restore_all(&repo, &s3.id)[0].1, v3);
    assert_eq!(restore_all(&repo, &s4.id)[0].1, v4);
    assert_eq!(assert_clean(&repo).unreferenced_packs, 0);
}

#[test]
fn a_shrunken_database_grows_back_after_prune() {
    // v2 is the first half of v1 (with changes) stored as a delta: it uses only the part of
    // v1's tree that covers its pages. After v1 is pruned, v3 grows back to v1's length with
    // v1's old tail: whatever of v1's tree is gone, v3 must restore exactly.
    let (_, repo) = new_repo();
    let pages = 1024;
    let v1 = pagey(pages * PAGE, 21);
    let mut v2 = v1[..pages / 2 * PAGE].to_vec();
    rewrite_pages(&mut v2, 0, 7, 3000);
    let mut v3 = v2.clone();
    v3.extend_from_slice(&v1[pages / 2 * PAGE..]);
    run(&repo, db(&v1), "db", 1);
    let s2 = run(&repo, db(&v2), "db", 2);
    assert!(content_of(&repo, &s2.id, "").delta.is_some());
    forget_keep_last(&repo, 1);
    prune_with(&repo, 0.0).unwrap();
    assert_eq!(restore_all(&repo, &s2.id)[0].1, v2);
    // (The tail of v1's tree is gone, so v3 is stored as a full tree again.)
    let s3 = run(&repo, db(&v3), "db", 3);
    assert_eq!(restore_all(&repo, &s3.id)[0].1, v3);
    assert_eq!(restore_all(&repo, &s2.id)[0].1, v2);
    assert_clean(&repo);
}

#[rstest]
#[case::unreadable_snapshot("snapshot")]
#[case::unreadable_index_file("index")]
#[case::missing_pack("missing pack")]
#[case::truncated_pack("truncated pack")]
fn prune_refuses_a_damaged_repository_and_deletes_nothing(#[case] damage: &str) {
    let (storage, repo) = new_repo();
    let data: Vec<Vec<u8>> = (0..3).map(|i| pagey(600 << 10, 30 + i)).collect();
    for (i, d) in data.iter().enumerate() {
        run(&repo, files(&[("a", d), ("b", &data[0])]), "s", i as i64);
    }
    forget_keep_last(&repo, 1);
    let snaps = repo.snapshots().unwrap().readable;
    let (kept, _) = &snaps[0];
    let flip = |b: &mut Vec<u8>| {
        let mid = b.len() / 2;
        b[mid] ^= 0x55;
    };
    match damage {
        // The one snapshot left cannot be read: prune would think nothing is used.
        "snapshot" => storage.corrupt(Kind::Snapshot, &kept.to_hex(), flip),
        "index" => {
            let name = &storage.list(Kind::Index).unwrap()[0].name;
            storage.corrupt(Kind::Index, name, flip);
        }
        _ => {
            // A pack holding chunks the snapshot left uses: gone, or one byte short.
            let id = item_chunks(&repo, kept, "a")[0];
            let ix = Indexed::load(&repo).unwrap();
            let pack = ix
                .index()
                .pack(ix.index().get(&id).unwrap().pack)
                .id
                .to_hex();
            if damage == "missing pack" {
                storage.delete(Kind::Pack, &pack).unwrap();
            } else {
                storage.corrupt(Kind::Pack, &pack, |b| b.truncate(b.len() - 1));
            }
        }
    }
    let before = objects(storage.as_ref());
    let err = prune_with(&repo, 0.0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{damage}: {err}");
    assert_unchanged(storage.as_ref(), &before);
    let dry = prune(&repo, &PruneOptions::new(HOST.into()), true, &NoProgress);
    assert_eq!(dry.unwrap_err().kind(), ErrorKind::Integrity, "dry run");
}

#[test]
fn prune_removes_unreferenced_packs_and_records_of_forgotten_snapshots() {
    let (storage, repo) = new_repo();
    let a = pagey(700 << 10, 41);
    let b = pagey(700 << 10, 42);
    let s1 = run(&repo, files(&[("f", &a)]), "s", 1);
    let s2 = run(&repo, files(&[("f", &b)]), "s", 2);
    let a_chunks = item_chunks(&repo, &s1.id, "f");

    // A backup killed before its index: its packs (named by their hash) but no index file.
    // Made in another repository and copied over; plus a copy of a pack under a new name.
    let (other_storage, other) = new_repo();
    run(&other, files(&[("g", &pagey(500 << 10, 43))]), "x", 0);
    copy_new(other_storage.as_ref(), storage.as_ref(), &[Kind::Pack]);
    let mut orphans = names(other_storage.as_ref(), Kind::Pack);
    let some_pack = &storage.list(Kind::Pack).unwrap()[0].name;
    let copy = PackId::from_slice(&[7u8; 32]).unwrap().to_hex();
    let bytes = storage.read(Kind::Pack, some_pack).unwrap();
    storage.write(Kind::Pack, &copy, &bytes).unwrap();
    orphans.insert(copy);
    assert_eq!(assert_clean(&repo).unreferenced_packs, orphans.len());

    // Records of both snapshots; then s1 goes as in a forget that crashed before deleting its
    // records.
    let mark = |kind, s: SnapshotId| {
        let r = Record::mark(kind, s, Timestamp::now(), HOST, None, None);
        repo.write_record(&r).unwrap().to_hex()
    };
    mark(PIN, s1.id);
    let live_record = mark(MARK_VERIFIED, s2.id);
    storage.delete(Kind::Snapshot, &s1.id.to_hex()).unwrap();

    let summary = prune_with(&repo, 5.0).unwrap();
    assert_eq!(summary.plan.unreferenced_packs, orphans.len());
    assert_eq!(summary.plan.orphan_records, 1);
    assert!(orphans.is_disjoint(&names(storage.as_ref(), Kind::Pack)));
    let records = names(storage.as_ref(), Kind::Record);
    assert_eq!(records, BTreeSet::from([live_record]));
    assert_eq!(assert_clean(&repo).unreferenced_packs, 0);
    assert_eq!(restore_all(&repo, &s2.id), [("f".to_string(), b)]);
    // s1's data went with it.
    let ix = Indexed::load(&repo).unwrap();
    assert!(a_chunks.iter().all(|id| !ix.index().contains(id)));
}

/// How many index entries each chunk has, over all index files (`storage`: the repository's).
fn index_entries(storage: &dyn Storage, repo: &Repository) -> BTreeMap<ChunkId, usize> {
    let mut n = BTreeMap::new();
    for o in storage.list(Kind::Index).unwrap() {
        let raw = storage.read(Kind::Index, &o.name).unwrap();
        let file = IndexFile::decode(repo.crypter(), &raw).unwrap();
        for b in file.packs.iter().flat_map(|p| &p.blobs) {
            *n.entry(b.id).or_default() += 1;
        }
    }
    n
}

#[test]
fn prune_keeps_one_usable_copy_of_a_chunk_stored_twice() {
    let (storage, repo) = new_repo();
    run(&repo, files(&[("base", &pagey(300 << 10, 50))]), "s", 0);
    // Two backups that raced: both loaded the index before either stored the shared new data,
    // so each stores it (interleaved with data of its own).
    let early = Indexed::load(&repo).unwrap();
    let shared = pagey(1500 << 10, 51);
    let own: Vec<Vec<u8>> = (0..2).map(|i| pagey(400 << 10, 52 + i)).collect();
    let mut ids = Vec::new();
    for (i, mine) in own.iter().enumerate() {
        let src = files(&[("own", mine), ("shared", &shared)]);
        let s = run_on(&early, src, &format!("r{i}"), 1).unwrap();
        ids.push((s.id, mine.clone()));
    }
    let entries = index_entries(storage.as_ref(), &repo);
    let shared_chunks = item_chunks(&repo, &ids[0].0, "shared");
    assert!(shared_chunks.len() > 10);
    for id in &shared_chunks {
        assert_eq!(entries.get(id), Some(&2), "the shared data is stored twice");
    }
    assert_clean(&repo);

    let check = |repo: &Repository| {
        for (id, mine) in &ids {
            let want = [("own", mine), ("shared", &shared)].map(|(p, d)| (p.into(), d.clone()));
            assert_eq!(restore_all(repo, id), want);
        }
        assert_eq!(assert_clean(repo).unreferenced_packs, 0);
    };
    prune_with(&repo, 5.0).unwrap();
    check(&repo);
    let s = prune_with(&repo, 0.0).unwrap();
    check(&repo);
    let entries = index_entries(storage.as_ref(), &repo);
    let extra: Vec<_> = entries.iter().filter(|(_, n)| **n != 1).collect();
    assert!(extra.is_empty(), "chunks indexed more than once: {extra:?}");
    // Every chunk left is stored once: pack bytes match what the index names.
    let ix = Indexed::load(&repo).unwrap();
    let indexed: u64 = ix.index().packs().iter().map(|p| p.size).sum();
    assert_eq!(indexed, pack_bytes(storage.as_ref()));
    assert_eq!(s.bytes_after, indexed);
}

/// Copies every object of the given kinds from `from` that `to` lacks.
fn copy_new(from: &dyn Storage, to: &dyn Storage, kinds: &[Kind]) {
    for &kind in kinds {
        for o in from.list(kind).unwrap() {
            if !to.exists(kind, &o.name).unwrap() {
                to.write(kind, &o.name, &from.read(kind, &o.name).unwrap())
                    .unwrap();
            }
        }
    }
}

/// Runs a prune to the end on a copy of the repository, then brings over the packs it wrote
/// and, with `indexed`, its index files: the state of a prune killed after writing its new
/// packs, before (`indexed` false) or after it wrote their index files (before it deleted
/// anything, so every old index file is still there).
fn interrupt_prune(storage: &MemoryStorage, pass: Option<&str>, indexed: bool) -> PruneSummary {
    let copy = Arc::new(MemoryStorage::new());
    copy_new(storage, copy.as_ref(), &Kind::ALL);
    let copy_repo = Repository::open(copy.clone(), pass).unwrap();
    let s = prune_with(&copy_repo, 0.0).unwrap();
    let kinds = [Kind::Pack, Kind::Index];
    copy_new(copy.as_ref(), storage, &kinds[..1 + usize::from(indexed)]);
    s
}

/// Prunes after an interrupted prune, many times (which copy of a chunk the index picks
/// varies); returns what went wrong.
fn prune_after_interrupted_prune(pass: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    for attempt in 0..8u64 {
        let (storage, repo) = new_repo_with(pass);
        let seed = 70 + attempt * 10;
        let v1 = pagey(1 << 20, seed);
        let mut v2 = v1.clone();
        v2[300 << 10..600 << 10].copy_from_slice(&pagey(300 << 10, seed + 1));
        let other = pagey(200 << 10, seed + 2);
        for (t, v) in [&v1, &v2].into_iter().enumerate() {
            run(&repo, files(&[("a", v), ("b", &other)]), "s", t as i64);
        }
        forget_keep_last(&repo, 1);
        let kept = repo.snapshots().unwrap().readable[0].0;
        let indexed = attempt % 2 == 1;
        let first = interrupt_prune(&storage, pass, indexed);
        assert!(first.plan.repack_packs > 0, "the interrupted prune repacks");
        assert_clean(&repo);
        let second = prune_with(&repo, 0.0).unwrap();
        let report = verify_data(&repo);
        if !report.is_clean() {
            let problems: Vec<_> = report.problems.iter().map(|p| &p.message).collect();
            let p = &second.plan;
            let (d, r, u) = (p.delete_packs, p.repack_packs, p.unreferenced_packs);
            failures.push(format!(
                "attempt {attempt} (new index files kept: {indexed}; {d} packs deleted, {r} \
                 repacked, {u} unreferenced): {problems:?}"
            ));
            continue;
        }
        assert_eq!(report.unreferenced_packs, 0);
        let want = [("a".to_string(), v2), ("b".to_string(), other)];
        assert_eq!(restore_all(&repo, &kept), want);
    }
    failures
}

#[test]
fn a_prune_after_an_interrupted_prune_loses_nothing_encrypted() {
    let failures = prune_after_interrupted_prune(Some("pw"));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_prune_after_an_interrupted_prune_loses_nothing_unencrypted() {
    // Repacking is deterministic without encryption (no random nonces), so the second prune
    // writes a pack with exactly the bytes, hence the name, of one the first prune wrote.
    // That pack is in its plan as unreferenced (no index file yet) or as holding nothing used
    // (the index picked the old copies of its chunks), so step 6 deletes what step 3 wrote.
    let failures = prune_after_interrupted_prune(None);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A snapshot the storage refuses to delete (a lock rule still holds it) is kept and named
/// while the others are forgotten; when every delete is refused (an append-only key), forget
/// and prune fail saying so and change nothing.
#[test]
fn snapshots_the_storage_refuses_to_delete_are_kept_and_named() {
    let storage = Arc::new(MemoryStorage::new());
    let mut o = InitOptions::new(None, Timestamp::UNIX_EPOCH, HOST.into());
    o.pack_size = 256 << 10;
    let repo = Repository::init(storage.clone(), &o).unwrap();
    let ids: Vec<SnapshotId> = (0..4)
        .map(|i| {
            let data = pagey(100_000, i);
            run(
                &repo,
                files(&[("a.bin", &data)]),
                "docs",
                1_700_000_000 + i as i64,
            )
            .id
        })
        .collect();
    // The second oldest is still held.
    storage.refuse_delete_of(Kind::Snapshot, &ids[1].to_hex());
    let o = keep_last(2);
    let s = forget(&repo, &o, false).unwrap();
    assert_eq!((s.forgotten, s.locked.clone()), (1, vec![ids[1]]));
    let left: BTreeSet<SnapshotId> = repo
        .snapshots()
        .unwrap()
        .readable
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, BTreeSet::from([ids[1], ids[2], ids[3]]));

    // Every delete refused: nothing forgotten is an error, and prune stops before it starts.
    storage.refuse_deletes(true);
    let before = objects(storage.as_ref());
    let o = keep_last(1);
    let err = forget(&repo, &o, false).unwrap_err();
    assert!(matches!(err, Error::CannotDelete { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Denied);
    let err = prune_with(&repo, 0.0).unwrap_err();
    assert!(matches!(err, Error::CannotDelete { .. }), "{err}");
    // Their locks are left marked released (they could not be deleted); nothing else moved.
    assert_eq!(objects(storage.as_ref()), before);
    storage.refuse_deletes(false);
    forget(&repo, &o, false).unwrap();
    prune_with(&repo, 0.0).unwrap();
    assert_clean(&repo);
    assert_eq!(restore_all(&repo, &ids[3])[0].1, pagey(100_000, 3));
}
