//! Trees of many small files: stored in groups (one batch of chunks for many files), files that
//! grow or fail while waiting in a group, and the previous snapshot's items read alongside the
//! walk, in the sources' path order and out of it.

use std::io::{Cursor, Read};
use std::sync::Arc;

use backstop_engine::{Indexed, NoProgress, Repository, backup};
use backstop_format::Timestamp;
use backstop_format::manifest::{Item, ItemKind, SourceKind};
use backstop_sources::{Chunking, Entry, EntryContent, Source};
use backstop_storage::MemoryStorage;

use super::{cheap_init, opts, pagey, pseudo_random, verify_data};

/// What a test entry's reader gives.
#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// These bytes, then a read error.
    FailsAfter(Vec<u8>),
}

/// A test entry: path, kind, the size its metadata claims, its content.
#[derive(Clone)]
struct Spec {
    path: String,
    kind: ItemKind,
    claimed: u64,
    body: Option<Body>,
    required: bool,
    /// A symlink's target.
    link: Option<String>,
}

impl Spec {
    fn file(path: &str, data: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            kind: ItemKind::File,
            claimed: data.len() as u64,
            body: Some(Body::Bytes(data)),
            required: false,
            link: None,
        }
    }

    fn dir(path: &str) -> Self {
        Self {
            path: path.into(),
            kind: ItemKind::Dir,
            claimed: 0,
            body: None,
            required: false,
            link: None,
        }
    }

    fn link(path: &str, to: &str) -> Self {
        Self {
            kind: ItemKind::Symlink,
            link: Some(to.into()),
            ..Self::dir(path)
        }
    }
}

struct Failing(Cursor<Vec<u8>>);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("the disk went away")),
            n => Ok(n),
        }
    }
}

/// Entries as a files source hands them over: unchanged files may be reused, all with an old
/// modification time.
struct TreeSource {
    specs: std::collections::VecDeque<Spec>,
}

impl TreeSource {
    fn new(specs: &[Spec]) -> Self {
        Self {
            specs: specs.iter().cloned().collect(),
        }
    }
}

impl Source for TreeSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }
    fn describe(&self) -> Vec<String> {
        vec!["tree".into()]
    }
    fn next_entry(&mut self) -> Result<Option<Entry>, backstop_sources::Error> {
        let Some(s) = self.specs.pop_front() else {
            return Ok(None);
        };
        let content = s.body.map(|b| {
            let reader: Box<dyn Read + Send> = match b {
                Body::Bytes(d) => Box::new(Cursor::new(d)),
                Body::FailsAfter(d) => Box::new(Failing(Cursor::new(d))),
            };
            EntryContent::Stream {
                reader,
                chunking: Chunking::ContentDefined,
            }
        });
        Ok(Some(Entry {
            item: Item {
                size: s.claimed,
                mtime: Some(Timestamp::from_second(1_600_000_000).unwrap()),
                target: s.link,
                ..Item::new(s.path, s.kind)
            },
            content,
            required: s.required,
            reuse_unchanged: s.kind == ItemKind::File,
        }))
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<(), backstop_sources::Error> {
        Ok(())
    }
}

/// 2,000 files of 0 to 6 KB in 40 folders, a few of them alike, with a 3 MiB and a 900 KiB
/// file among them: in path order, as a files source walks.
fn tree() -> Vec<Spec> {
    let mut specs = Vec::new();
    for d in 0..40 {
        let dir = format!("app/d{d:02}");
        specs.push(Spec::dir(&dir));
        for f in 0..50u64 {
            let n = (d * 50 + f) as usize;
            let data = match n % 7 {
                0 => b"same bytes in many files\n".to_vec(),
                1 => Vec::new(),
                k if k % 2 == 0 => pagey(n * 37 % 6000, n as u64),
                _ => pseudo_random(n * 53 % 6000, n as u64),
            };
            specs.push(Spec::file(&format!("{dir}/f{f:03}"), data));
        }
        if d == 10 {
            specs.push(Spec::file(&format!("{dir}/zbig"), pagey(3 << 20, 99)));
        }
        if d == 20 {
            specs.push(Spec::file(
                &format!("{dir}/zmid"),
                pseudo_random(900 << 10, 98),
            ));
        }
    }
    specs
}

fn contents(specs: &[Spec]) -> Vec<(String, Vec<u8>)> {
    specs
        .iter()
        .filter_map(|s| match &s.body {
            Some(Body::Bytes(d)) => Some((s.path.clone(), d.clone())),
            _ => None,
        })
        .collect()
}

fn repo() -> Repository {
    Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(Some("pw"))).unwrap()
}

/// Every item of a snapshot with its content (empty for a directory).
fn restore_all(repo: &Repository, id: &backstop_format::SnapshotId) -> Vec<(String, Vec<u8>)> {
    let ix = Indexed::load(repo).unwrap();
    let loader = ix.loader();
    let snap = repo.load_snapshot(id).unwrap();
    let items = loader.read_items(&snap.items).unwrap();
    items
        .into_iter()
        .map(|i| match &i.content {
            Some(c) => (i.path.clone(), loader.read_content(c).unwrap()),
            None => (i.path.clone(), Vec::new()),
        })
        .collect()
}

fn run(repo: &Repository, specs: &[Spec], t: i64) -> backstop_engine::BackupSummary {
    let ix = Indexed::load(repo).unwrap();
    backup(
        &ix,
        &mut TreeSource::new(specs),
        &opts("tree", t),
        &NoProgress,
    )
    .unwrap()
}

#[test]
fn a_tree_of_small_files_round_trips_and_shares_chunks_with_the_streaming_path() {
    let repo = repo();
    let specs = tree();
    let first = run(&repo, &specs, 0);
    assert_eq!(first.files, 2002);
    assert_eq!(first.dirs, 40);
    let files: Vec<_> = restore_all(&repo, &first.id)
        .into_iter()
        .filter(|(p, _)| p.contains("/f") || p.contains("/z"))
        .collect();
    assert_eq!(files.len(), 2002);
    assert_eq!(files, contents(&specs));
    assert!(verify_data(&repo).is_clean());

    // The same files once more, every one claiming to be large and read (`force`): each goes
    // through the streaming path, which cuts the very chunks the groups cut, so nothing at all
    // is new, not even the item list.
    let mut big = specs.clone();
    for s in &mut big {
        if s.kind == ItemKind::File {
            s.claimed = 2 << 20;
        }
    }
    let streamed = {
        let ix = Indexed::load(&repo).unwrap();
        let mut o = opts("tree", 1);
        o.force = true;
        backup(&ix, &mut TreeSource::new(&big), &o, &NoProgress).unwrap()
    };
    assert_eq!(streamed.files_unchanged, 0);
    assert_eq!(streamed.bytes_read, first.bytes_in);
    assert_eq!(streamed.chunks, first.chunks);
    assert_eq!(streamed.chunks_new, 0);
}

#[test]
fn a_file_that_grew_or_failed_while_waiting_in_a_group() {
    let repo = repo();
    let grown = pagey(300 << 10, 5);
    let mut specs = vec![
        Spec::dir("app"),
        Spec::file("app/a", b"first".to_vec()),
        // Claims 1,000 bytes and has 300 KiB by the time it is read.
        Spec {
            claimed: 1000,
            ..Spec::file("app/b-grown", grown.clone())
        },
        // Claims more than it has: read as it is.
        Spec {
            claimed: 5000,
            ..Spec::file("app/c-shrunk", b"short".to_vec())
        },
        Spec {
            body: Some(Body::FailsAfter(b"partial".to_vec())),
            claimed: 7,
            ..Spec::file("app/d-fails", Vec::new())
        },
        Spec::dir("app/e"),
        Spec::file("app/e/last", b"last".to_vec()),
    ];
    let s = run(&repo, &specs, 0);
    assert_eq!(s.files, 4, "the failed file is left out");
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("app/d-fails") && s.warnings[0].contains("the disk went away"),
        "{:?}",
        s.warnings
    );
    let restored = restore_all(&repo, &s.id);
    let paths: Vec<&str> = restored.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "app",
            "app/a",
            "app/b-grown",
            "app/c-shrunk",
            "app/e",
            "app/e/last"
        ]
    );
    assert_eq!(restored[2].1, grown);
    assert_eq!(restored[3].1, b"short");
    let ix = Indexed::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let items = ix.loader().read_items(&snap.items).unwrap();
    assert_eq!(
        items[2].size,
        grown.len() as u64,
        "the size read, not claimed"
    );
    assert_eq!(items[3].size, 5);

    // A required file that fails fails the backup, and no snapshot is written.
    specs[4].required = true;
    let ix = Indexed::load(&repo).unwrap();
    let e = backup(
        &ix,
        &mut TreeSource::new(&specs),
        &opts("tree", 1),
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("app/d-fails"), "{e}");
    assert_eq!(repo.snapshots().unwrap().readable.len(), 1);
}

#[test]
fn unchanged_files_are_found_in_the_previous_list_in_order_and_out_of_it() {
    let repo = repo();
    let specs = tree();
    let first = run(&repo, &specs, 0);
    let again = run(&repo, &specs, 1);
    assert_eq!(again.files_unchanged, 2002);
    assert_eq!(again.bytes_read, 0);
    assert_eq!(again.chunks_new, 0);

    // A changed file in the middle and a new one: only they are read.
    let mut changed = specs.clone();
    let i = changed
        .iter()
        .position(|s| s.path == "app/d17/f020")
        .unwrap();
    changed[i].body = Some(Body::Bytes(b"new content".to_vec()));
    changed[i].claimed = 11;
    changed.insert(i + 1, Spec::file("app/d17/f020a", b"inserted".to_vec()));
    let third = run(&repo, &changed, 2);
    assert_eq!(third.files_unchanged, 2002 - 1);
    assert_eq!(third.bytes_read, 11 + 8);

    // A source that hands its entries over in another order still finds them.
    let mut reversed = specs.clone();
    reversed.reverse();
    let fourth = run(&repo, &reversed, 3);
    // All but the file that differs from the third snapshot's.
    assert_eq!(fourth.files_unchanged, 2001);
    assert_eq!(restore_all(&repo, &fourth.id).len(), 2042);
    assert_ne!(first.id, fourth.id);
    // The reversed list read for lookups in path order: whatever it finds, the snapshot is
    // right; the next one, with a list in path order, finds everything again.
    let fifth = run(&repo, &specs, 4);
    let files = |id| {
        let mut all = restore_all(&repo, id);
        all.retain(|(p, _)| p.contains("/f") || p.contains("/z"));
        all
    };
    assert_eq!(files(&fifth.id), contents(&specs));
    let sixth = run(&repo, &specs, 5);
    assert_eq!(sixth.files_unchanged, 2002);
    assert_eq!(sixth.bytes_read, 0);
}

#[test]
fn skip_unchanged_compares_with_the_whole_previous_list() {
    let repo = repo();
    let specs = tree();
    let first = run(&repo, &specs, 0);
    let skip = |specs: &[Spec], t| {
        let ix = Indexed::load(&repo).unwrap();
        let mut o = opts("tree", t);
        o.skip_unchanged = true;
        backup(&ix, &mut TreeSource::new(specs), &o, &NoProgress).unwrap()
    };
    let same = skip(&specs, 1);
    assert!(same.skipped);
    assert_eq!(same.id, first.id);
    // Only the last file is gone: the previous list holds one more item.
    let fewer = skip(&specs[..specs.len() - 1], 2);
    assert!(!fewer.skipped);
}

#[test]
fn a_tree_restores_file_for_file_and_a_damaged_frame_stops_the_restore() {
    use backstop_engine::{RestoreOptions, plan_restore, restore};
    use backstop_storage::Kind;

    let storage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), &cheap_init(Some("pw"))).unwrap();
    let specs = tree();
    let s = run(&repo, &specs, 0);
    let ix = Indexed::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let restore_to = |to: &std::path::Path| {
        let opts = RestoreOptions {
            target: to.to_path_buf(),
            overwrite: false,
            host: "test-host".into(),
        };
        let (plan, items) = plan_restore(&ix, s.id, &snap, &opts)?;
        assert_eq!(plan.files.files, 2002);
        assert_eq!(plan.files.dirs, 40);
        restore(&ix, plan, &items, &opts, &NoProgress)
    };
    let done = restore_to(&dir.path().join("all")).unwrap();
    assert_eq!(done.bytes_written, s.bytes_in);
    for (path, data) in contents(&specs) {
        let got = std::fs::read(dir.path().join("all").join(&path)).unwrap();
        assert!(got == data, "{path} differs");
    }

    // Over the restored tree, with files changed and one replaced by a directory: every file
    // is replaced (made durable together, then moved into place) and no temporary file stays.
    let all = dir.path().join("all");
    std::fs::write(all.join("app/d03/f004"), b"changed since").unwrap();
    std::fs::remove_file(all.join("app/d30/f007")).unwrap();
    std::fs::create_dir_all(all.join("app/d30/f007/inside")).unwrap();
    let opts = RestoreOptions {
        target: all.clone(),
        overwrite: true,
        host: "test-host".into(),
    };
    let (plan, items) = plan_restore(&ix, s.id, &snap, &opts).unwrap();
    assert_eq!(plan.files.existing.len(), 2002);
    restore(&ix, plan, &items, &opts, &NoProgress).unwrap();
    for (path, data) in contents(&specs) {
        let got = std::fs::read(all.join(&path)).unwrap();
        assert!(got == data, "{path} differs after the restore over it");
    }
    assert_eq!(temporary_files(&all), 0);

    // A byte flipped in the frame of a small file in the middle of the tree: the restore stops
    // at the first file of that frame (which holds several small files), writes none of them,
    // and says why.
    let items: Vec<Item> = ix.loader().read_items(&snap.items).unwrap();
    let victim = items.iter().find(|i| i.path == "app/d20/f013").unwrap();
    let id = victim.content.as_ref().unwrap().chunks[0].id;
    let loc = ix.index().get(&id).unwrap();
    let pack = ix.index().pack(loc.pack).id.to_hex();
    storage.corrupt(Kind::Pack, &pack, |b| b[loc.offset as usize + 10] ^= 1);
    let ix = Indexed::load(&repo).unwrap();
    let to = dir.path().join("damaged");
    let opts = RestoreOptions {
        target: to.clone(),
        overwrite: false,
        host: "test-host".into(),
    };
    let (plan, items) = plan_restore(&ix, s.id, &snap, &opts).unwrap();
    let err = restore(&ix, plan, &items, &opts, &NoProgress).unwrap_err();
    assert!(matches!(err, backstop_engine::Error::Integrity(_)), "{err}");
    assert!(!to.join("app/d20/f013").exists());
    assert!(
        to.join("app/d00/f001").exists(),
        "files before it are in place"
    );
    assert_eq!(
        temporary_files(&to),
        0,
        "a failed group leaves no temporary file"
    );
}

/// `.backstop-restore-*.tmp` files under `root`.
fn temporary_files(root: &std::path::Path) -> usize {
    let mut n = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if e
                .file_name()
                .to_string_lossy()
                .starts_with(".backstop-restore-")
            {
                n += 1;
            }
        }
    }
    n
}

/// Files wait in a group while their parents are checked; a link that takes the place of one
/// of those parents (a crafted list: a directory, files in it, a link of the same name, more
/// files under that name) is made only after the waiting files are written, and the files
/// after it are refused: nothing is written outside the target.
#[cfg(unix)]
#[test]
fn a_link_in_place_of_a_directory_with_waiting_files_cannot_redirect_them() {
    use backstop_engine::{RestoreOptions, plan_restore, restore};

    let outside = tempfile::tempdir().unwrap();
    let mut specs = vec![Spec::dir("a"), Spec::dir("a/b")];
    for i in 0..20 {
        specs.push(Spec::file(&format!("a/b/x{i:02}"), b"inside".to_vec()));
    }
    specs.push(Spec::link("a/b", &outside.path().display().to_string()));
    for i in 0..20 {
        specs.push(Spec::file(&format!("a/b/y{i:02}"), b"evil".to_vec()));
    }
    let repo = repo();
    let s = run(&repo, &specs, 0);
    let ix = Indexed::load(&repo).unwrap();
    let snap = repo.load_snapshot(&s.id).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: dir.path().join("t"),
        overwrite: false,
        host: "test-host".into(),
    };
    let (plan, items) = plan_restore(&ix, s.id, &snap, &opts).unwrap();
    let err = restore(&ix, plan, &items, &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

/// Records what a backup reports: its estimates, the bytes and the items.
#[derive(Default)]
struct Recorder {
    estimates: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
    bytes: std::sync::atomic::AtomicU64,
    items: std::sync::atomic::AtomicU64,
}

impl backstop_engine::Progress for Recorder {
    fn estimate(&self, bytes: u64, items: Option<u64>) {
        self.estimates.lock().unwrap().push((bytes, items));
    }
    fn bytes(&self, n: u64) {
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn item(&self, _path: &str) {
        self.items
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A backup's progress has a total once there is a previous snapshot: its size and item
/// count, which the bytes and items reported reach when nothing changed.
#[test]
fn a_backup_estimates_its_total_from_the_previous_snapshot() {
    let repo = repo();
    let specs = tree();
    let backup_with = |t: i64| {
        let rec = Recorder::default();
        let ix = Indexed::load(&repo).unwrap();
        let s = backup(&ix, &mut TreeSource::new(&specs), &opts("tree", t), &rec).unwrap();
        (s, rec)
    };
    let (first, rec) = backup_with(0);
    assert!(
        rec.estimates.lock().unwrap().is_empty(),
        "no previous snapshot"
    );
    assert_eq!(
        rec.bytes.load(std::sync::atomic::Ordering::Relaxed),
        first.bytes_in
    );
    let (second, rec) = backup_with(1);
    assert_eq!(
        *rec.estimates.lock().unwrap(),
        [(first.bytes_in, Some(first.items))]
    );
    assert_eq!(
        rec.bytes.load(std::sync::atomic::Ordering::Relaxed),
        second.bytes_in
    );
    assert_eq!(second.bytes_in, first.bytes_in);
    assert_eq!(
        rec.items.load(std::sync::atomic::Ordering::Relaxed),
        second.items
    );
}
