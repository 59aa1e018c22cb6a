//! Database-like content: page-chunked versions stored as deltas against the previous tree, restored
//! exactly, and what a delta costs.

use backstop_engine::BackupSummary;
use backstop_format::tree::Content;

use super::*;

/// A source with one database-like item: fixed 4 KiB chunks, with the item kind and metadata
/// that make the engine store later versions as deltas against the first one's tree.
struct PagesSource {
    data: Option<Vec<u8>>,
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
            validation: None,
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

/// Backs `db` up as a [`PagesSource`] at time `t`: the summary and the item's content.
fn back_up_pages(repo: &Repository, db: &[u8], t: i64) -> (BackupSummary, Content) {
    let ix = Indexed::load(repo).unwrap();
    let mut src = PagesSource {
        data: Some(db.to_vec()),
    };
    let s = backup(&ix, &mut src, &opts("db", t), &NoProgress).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let ix = Indexed::load(repo).unwrap();
    let item = ix.loader().read_items(&snap.items).unwrap().remove(0);
    (s, item.content.unwrap())
}

#[test]
fn database_versions_are_deltas_that_restore_exactly() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let run = |db: &[u8], t: i64| back_up_pages(&repo, db, t);
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
    let snaps = repo.snapshots().unwrap().readable;
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
        let ix = Indexed::load(&repo).unwrap();
        let mut src = PagesSource {
            data: Some(db.to_vec()),
        };
        backup(&ix, &mut src, &opts("db", t), &NoProgress).unwrap()
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
    let ix = Indexed::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let item = ix.loader().read_items(&snap.items).unwrap().remove(0);
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

/// A delta whose patch records move to a scratch file one at a time (`patches: 0`) is stored
/// exactly as one built in memory, both as a delta (a few scattered pages changed) and when it
/// turns into a full tree halfway (most pages changed), and restores byte for byte.
#[test]
fn deltas_with_their_patches_on_disk_are_the_deltas_built_in_memory() {
    let scratch = tempfile::tempdir().unwrap();
    let on_disk = SpillOptions {
        dir: Some(scratch.path().to_path_buf()),
        ..SpillOptions::all_above(0)
    };
    let mut days = vec![pagey(6 << 20, 11)];
    let mut day1 = days[0].clone();
    for page in (7..1536).step_by(97) {
        day1[page * 4096 + 100] ^= 0x5a;
    }
    days.push(day1.clone());
    let mut day2 = day1;
    for page in (0..1536).filter(|p| p % 5 != 0) {
        day2[page * 4096 + 7] ^= 0xa5;
    }
    day2.truncate(day2.len() - 3 * 4096 - 10); // shorter than the base, too
    days.push(day2);
    let contents = |spill: &SpillOptions| {
        let repo = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
        let mut out = Vec::new();
        for (t, db) in days.iter().enumerate() {
            let ix = Indexed::load_for_backup(&repo, spill).unwrap();
            let mut src = PagesSource {
                data: Some(db.clone()),
            };
            let s = backup(&ix, &mut src, &opts("db", t as i64), &NoProgress).unwrap();
            assert_eq!(restore_all(&repo, &s.id)[0].1, *db, "day {t}");
            let ix = Indexed::load(&repo).unwrap();
            let snap = repo.load_snapshot(&s.id).unwrap();
            let items = ix.loader().read_items(&snap.items).unwrap();
            out.push(items[0].content.clone().unwrap());
        }
        assert!(verify_data(&repo).is_clean());
        out
    };
    let (memory, disk) = (contents(&SpillOptions::default()), contents(&on_disk));
    let delta = memory[1].delta.as_ref().expect("day 1 is a delta");
    assert_eq!(delta.patches, 16);
    assert!(
        memory[2].delta.is_none(),
        "day 2 changed too much for a delta"
    );
    assert_eq!(disk, memory);
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

/// The previous version's patch list is damaged where it is stored: the next backup cannot
/// compare with it, counts the database as changed, and still stores a version that restores
/// exactly (its own patch list is new).
#[test]
fn a_previous_patch_list_that_cannot_be_read_costs_the_comparison_not_the_backup() {
    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(None)).unwrap();
    let run = |db: &[u8], t: i64| back_up_pages(&repo, db, t);
    let mut db = pagey(2000 * 4096, 21);
    run(&db, 0);
    for p in (3..2000).step_by(50) {
        db[p * 4096 + 9] ^= 1;
    }
    let (_, c1) = run(&db, 1);
    let d = c1.delta.expect("day 1 is a delta");
    assert!(!d.patch.chunks.is_empty(), "a short list is inline");
    let ix = Indexed::load(&repo).unwrap();
    for r in &d.patch.chunks {
        let loc = ix.index().get(&r.id).unwrap();
        let pack = ix.index().pack(loc.pack).id.to_hex();
        storage.corrupt(Kind::Pack, &pack, |b| b[loc.offset as usize + 3] ^= 0xff);
    }
    assert!(ix.loader().read_content(&d.patch).is_err());
    db[7 * 4096] ^= 2;
    let (s, c2) = run(&db, 2);
    assert!(c2.delta.is_some(), "still a delta against the base");
    assert_eq!(restore_all(&repo, &s.id)[0].1, db);
}
