//! Files and directories: regular files, directories and symlinks with permissions and
//! modification times. Special files (sockets, pipes, devices) are skipped with a warning, and a
//! file or directory that cannot be read is a warning, not an abort.
//!
//! Each path given becomes a top-level item named after its last component (`data/shop.db`
//! becomes `shop.db`), so a restore into a directory recreates the names the user knows.
//!
//! A regular file that starts with the SQLite header (whatever its name) is a database that an
//! application may be writing: copying its bytes, and its `-wal` beside it, at different instants
//! gives a torn copy. So the walk hands such a file to the same capture a single-database source
//! uses ([`SqliteSource`]: one read transaction, the page image in page-sized chunks, the
//! database metadata and its check), and stores it as a `sqlite` item at its place in the tree;
//! its entry holds that capture's [`Capture`] handle, which adds a warning to the walk's if the
//! database fails its integrity check. Its `-wal`, `-shm` and `-journal` files are then not
//! stored: the image already holds every commit they hold. A file that has the header but
//! cannot be captured as a database (garbage after the header, a hot journal left by a crashed
//! writer) is stored byte for byte with a warning, and so are its companion files: nothing is
//! left out.
//!
//! [`Exclusions`] (gitignore-style patterns, marker files, cache tags) leave entries below the
//! given paths out; an excluded directory is not read at all. An excluded file takes its
//! `-wal`, `-shm` and `-journal` with it (a database's companions are no use without it).

use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use backstop_format::Timestamp;
use backstop_format::manifest::{Excludes, Item, ItemKind, SourceKind};

use crate::exclude::Exclusions;
use crate::sqlite::SqliteSource;
use crate::{
    Buffers, Capture, Chunking, Entry, EntryContent, Error, OnChange, ScratchOptions, Source,
};

/// The files SQLite keeps beside a database (`<db>-wal`, `<db>-shm`, `<db>-journal`).
const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Captures files and directory trees.
pub struct FilesSource {
    given: Vec<String>,
    /// Paths still to visit: (path on disk, item path, is a top-level path). Popped from the
    /// end, so children are pushed in reverse order.
    stack: Vec<(PathBuf, String, bool)>,
    exclude: Vec<PathBuf>,
    warnings: Warnings,
    /// Whether SQLite databases are captured as databases (see the module documentation).
    databases: bool,
    /// Databases captured as databases or excluded, whose companion files are not stored.
    captured: HashSet<PathBuf>,
    /// What the user asked to leave out.
    exclusions: Option<Exclusions>,
    /// Where database captures keep large working state.
    scratch: ScratchOptions,
}

impl FilesSource {
    /// `paths` are captured recursively; anything under an `exclude` path (the repository
    /// itself, typically) is left out.
    pub fn new(paths: Vec<PathBuf>, exclude: Vec<PathBuf>) -> Result<Self, Error> {
        if paths.is_empty() {
            return Err(Error::Invalid("no paths to back up".into()));
        }
        let mut roots: Vec<(PathBuf, String, bool)> = Vec::new();
        for p in &paths {
            let name = top_level_name(p)?;
            if let Some((other, _, _)) = roots.iter().find(|(_, n, _)| *n == name) {
                return Err(Error::Invalid(format!(
                    "{} and {} would both be stored as {name:?}; back them up as separate sources",
                    other.display(),
                    p.display()
                )));
            }
            roots.push((p.clone(), name, true));
        }
        roots.sort_by(|a, b| b.1.cmp(&a.1));
        Ok(Self {
            given: paths.iter().map(|p| p.display().to_string()).collect(),
            stack: roots,
            exclude: exclude
                .iter()
                .filter_map(|p| fs::canonicalize(p).ok())
                .collect(),
            warnings: Warnings::default(),
            databases: true,
            captured: HashSet::new(),
            exclusions: None,
            scratch: ScratchOptions::default(),
        })
    }

    /// With `false`, SQLite databases are stored byte for byte like any file (safe only when
    /// nothing writes to them). On by default.
    pub fn with_databases(mut self, on: bool) -> Self {
        self.databases = on;
        self
    }

    /// Leaves out what `exclusions` match below the given paths.
    pub fn with_exclusions(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = Some(exclusions);
        self
    }

    /// Whether the exclusions leave out the entry at `path` (below a given path), or it is a
    /// companion of a database they left out.
    fn left_out(&mut self, path: &Path, item_path: &str, is_dir: bool) -> bool {
        let Some(ex) = &self.exclusions else {
            return false;
        };
        let relative = item_path.split_once('/').map_or(item_path, |(_, r)| r);
        if !ex.excludes(path, relative, is_dir) {
            return false;
        }
        if !is_dir {
            // Its companions, if it is a database, sort after it and are left out with it
            // (`is_companion`). Decided by name: reading its header to tell would open and
            // close the file, which drops the POSIX locks this process holds on it (a daemon's
            // own state database, excluded from a tree it backs up).
            self.captured.insert(path.to_path_buf());
        }
        true
    }

    /// Whether `path` is the `-wal`, `-shm` or `-journal` file of a database this walk captured
    /// as a database or left out. (A database sorts before its companions, so it is met first.)
    fn is_companion(&self, path: &Path) -> bool {
        let name = path.as_os_str().to_string_lossy();
        COMPANION_SUFFIXES.iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|db| self.captured.contains(Path::new(db)))
        })
    }

    /// Starts the capture of a file that begins with the SQLite header as a database; `None`
    /// (with a warning) when it cannot be captured as one, and is then stored as bytes.
    fn capture_database(&mut self, path: &Path, item_path: &str, md: &Metadata) -> Option<Entry> {
        let started = whole_pages(path, md).and_then(|()| {
            let mut db = SqliteSource::new(path.to_path_buf(), item_path.to_string())?;
            db.use_scratch(&self.scratch);
            db.next_entry()
        });
        match started {
            Ok(Some(mut entry)) => {
                entry.content = entry.content.map(|c| match c {
                    EntryContent::Captured { buffers, capture } => EntryContent::Captured {
                        buffers,
                        capture: Box::new(TreeDatabase {
                            inner: capture,
                            warnings: self.warnings.clone(),
                        }),
                    },
                    stream => stream,
                });
                self.captured.insert(path.to_path_buf());
                Some(entry)
            }
            Ok(None) => None,
            Err(e) => {
                self.warnings.push(format!(
                    "{} starts like a SQLite database but cannot be read as one ({e}); stored byte for byte as a plain file, which is only a consistent copy if nothing was writing to it",
                    path.display()
                ));
                None
            }
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        !self.exclude.is_empty()
            && fs::canonicalize(path).is_ok_and(|c| self.exclude.iter().any(|e| c.starts_with(e)))
    }

    fn push_children(&mut self, dir: &Path, item_path: &str) {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.warnings
                    .push(format!("cannot read directory {}: {e}", dir.display()));
                return;
            }
        };
        let mut children = Vec::new();
        for entry in rd {
            match entry {
                Ok(e) => match e.file_name().into_string() {
                    Ok(name) => children.push((e.path(), format!("{item_path}/{name}"), false)),
                    Err(raw) => self.warnings.push(format!(
                        "skipped {}: the name is not valid Unicode",
                        dir.join(raw).display()
                    )),
                },
                Err(e) => self
                    .warnings
                    .push(format!("cannot list {}: {e}", dir.display())),
            }
        }
        children.sort_by(|a, b| b.1.cmp(&a.1));
        self.stack.extend(children);
    }
}

/// Whether the first bytes of `f` are the SQLite header; leaves `f` at its start.
fn has_sqlite_header(f: &mut File) -> bool {
    let mut head = [0u8; 16];
    let found = f.read_exact(&mut head).is_ok() && &head == b"SQLite format 3\0";
    f.rewind().is_ok() && found
}

/// A database file is a whole number of pages (SQLite writes nothing else); one that is not
/// holds bytes a page image would leave out.
fn whole_pages(path: &Path, md: &Metadata) -> Result<(), Error> {
    let mut head = [0u8; 18];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() || !md.len().is_multiple_of(page_size) {
        return Err(Error::Invalid(format!(
            "its size, {} bytes, is not a whole number of {page_size}-byte pages",
            md.len()
        )));
    }
    Ok(())
}

/// The name a top-level path is stored under.
fn top_level_name(p: &Path) -> Result<String, Error> {
    let abs =
        fs::canonicalize(p).map_err(|e| Error::io(format!("cannot back up {}", p.display()), e))?;
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".to_string());
    backstop_format::manifest::check_item_path(&name)?;
    Ok(name)
}

/// Item metadata from file metadata.
pub fn item_from_metadata(path: String, kind: ItemKind, md: &Metadata) -> Item {
    let mtime = md.modified().ok().and_then(jiff_from_system);
    Item {
        path,
        kind,
        size: if kind == ItemKind::File { md.len() } else { 0 },
        mode: mode_of(md),
        mtime,
        readonly: md.permissions().readonly(),
        target: None,
        content: None,
        database: None,
        server: None,
        workbook: None,
    }
}

fn jiff_from_system(t: std::time::SystemTime) -> Option<backstop_format::Timestamp> {
    backstop_format::Timestamp::try_from(t).ok()
}

#[cfg(unix)]
fn mode_of(md: &Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(md.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_of(_md: &Metadata) -> Option<u32> {
    None
}

impl Source for FilesSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }

    fn describe(&self) -> Vec<String> {
        self.given.clone()
    }

    fn excludes(&self) -> Excludes {
        self.exclusions
            .as_ref()
            .map(|e| e.rules().clone())
            .unwrap_or_default()
    }

    fn use_scratch(&mut self, scratch: &ScratchOptions) {
        self.scratch = scratch.clone();
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        while let Some((path, item_path, top)) = self.stack.pop() {
            // A top-level path is what the user named, so a symlink there is followed; below
            // it, symlinks are stored as links.
            let md = if top {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            let md = match md {
                Ok(md) => md,
                // A rollback journal listed with its directory is gone once its transaction
                // ended: no reason for a warning.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.is_companion(&path) => {
                    continue;
                }
                Err(e) => {
                    if top {
                        return Err(Error::io(format!("cannot back up {}", path.display()), e));
                    }
                    self.warnings
                        .push(format!("cannot read {}: {e}", path.display()));
                    continue;
                }
            };
            let ft = md.file_type();
            if !top && self.left_out(&path, &item_path, ft.is_dir()) {
                continue;
            }
            if ft.is_dir() {
                if !top && self.excluded(&path) {
                    continue;
                }
                self.push_children(&path, &item_path);
                return Ok(Some(Entry {
                    item: item_from_metadata(item_path, ItemKind::Dir, &md),
                    content: None,
                    required: false,
                    reuse_unchanged: false,
                }));
            }
            if ft.is_symlink() {
                match fs::read_link(&path) {
                    Ok(t) => {
                        let mut item = item_from_metadata(item_path, ItemKind::Symlink, &md);
                        item.target = Some(t.to_string_lossy().into_owned());
                        return Ok(Some(Entry {
                            item,
                            content: None,
                            required: false,
                            reuse_unchanged: false,
                        }));
                    }
                    Err(e) => {
                        self.warnings
                            .push(format!("cannot read link {}: {e}", path.display()));
                        continue;
                    }
                }
            }
            if !ft.is_file() {
                self.warnings.push(format!(
                    "skipped {}: not a regular file, directory or symlink",
                    path.display()
                ));
                continue;
            }
            if self.is_companion(&path) {
                continue;
            }
            let mut file = File::open(&path);
            if self.databases
                && let Ok(f) = &mut file
                && has_sqlite_header(f)
            {
                // Closing a file releases every POSIX lock this process holds on it, SQLite's
                // included: a descriptor closed while the capture's read transaction is open
                // would let writers change the database under it. So ours is closed first,
                // and opened again if the file is to be stored as bytes after all.
                drop(file);
                if let Some(entry) = self.capture_database(&path, &item_path, &md) {
                    return Ok(Some(entry));
                }
                file = File::open(&path);
            }
            match file {
                Ok(f) => {
                    let content = match crate::workbook::is_workbook(&item_path) {
                        // Read as tables once stored (its sheets in the manifest).
                        true => {
                            let warnings = self.warnings.clone();
                            crate::workbook::WorkbookCapture::content(
                                f,
                                &item_path,
                                Box::new(move |w| warnings.push(w)),
                            )
                        }
                        false => EntryContent::Stream {
                            reader: Box::new(f),
                            chunking: crate::chunking_for(&item_path),
                        },
                    };
                    return Ok(Some(Entry {
                        item: item_from_metadata(item_path, ItemKind::File, &md),
                        content: Some(content),
                        required: false,
                        reuse_unchanged: true,
                    }));
                }
                Err(e) => {
                    if top {
                        return Err(Error::io(format!("cannot open {}", path.display()), e));
                    }
                    self.warnings
                        .push(format!("cannot open {}: {e}", path.display()));
                }
            }
        }
        Ok(None)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        self.warnings.take()
    }

    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The warnings of a walk, shared with the captures of the databases in it: a database's
/// warning is added when its item is complete, after those of the walk up to it.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn push(&self, warning: String) {
        self.list().push(warning);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.list())
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The capture of a database met in the walk: a database that fails its integrity check is
/// stored as it is, with a warning.
struct TreeDatabase {
    inner: Box<dyn Capture>,
    warnings: Warnings,
}

impl Capture for TreeDatabase {
    fn chunking(&self) -> Chunking {
        self.inner.chunking()
    }

    fn probably_unchanged(&mut self, item: &Item, previous: &Item, since: Timestamp) -> bool {
        self.inner.probably_unchanged(item, previous, since)
    }

    fn read_again(&mut self) -> Result<Option<Box<dyn Buffers>>, Error> {
        self.inner.read_again()
    }

    fn take_on_change(&mut self) -> Option<OnChange> {
        self.inner.take_on_change()
    }

    fn complete(self: Box<Self>, item: &mut Item, previous: Option<&Item>) -> Result<(), Error> {
        self.inner.complete(item, previous)?;
        if let Some(meta) = item.database.as_ref().filter(|m| !m.is_healthy()) {
            self.warnings.push(format!(
                "the SQLite database {} failed its integrity check when captured ({}); stored as it is",
                item.path, meta.quick_check
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(src: &mut FilesSource) -> Vec<(String, ItemKind)> {
        let mut out = Vec::new();
        while let Some(e) = src.next_entry().unwrap() {
            out.push((e.item.path.clone(), e.item.kind));
        }
        out
    }

    #[test]
    fn walks_a_tree_in_order_with_top_level_names() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("docs");
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("b/c.txt"), "c").unwrap();
        fs::write(d.path().join("shop.db"), "db").unwrap();
        let mut s = FilesSource::new(vec![root.clone(), d.path().join("shop.db")], vec![]).unwrap();
        let got = collect(&mut s);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["docs", "docs/a.txt", "docs/b", "docs/b/c.txt", "shop.db"]
        );
        assert_eq!(got[0].1, ItemKind::Dir);
        assert_eq!(got[1].1, ItemKind::File);
    }

    #[test]
    fn excluded_directory_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("data/repo/data")).unwrap();
        fs::write(d.path().join("data/x"), "x").unwrap();
        let mut s = FilesSource::new(
            vec![d.path().join("data")],
            vec![d.path().join("data/repo")],
        )
        .unwrap();
        let names: Vec<String> = collect(&mut s).into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["data", "data/x"]);
    }

    fn with_rules(paths: Vec<PathBuf>, rules: Excludes) -> FilesSource {
        FilesSource::new(paths, vec![])
            .unwrap()
            .with_exclusions(Exclusions::new(rules).unwrap())
    }

    #[test]
    fn exclusions_leave_out_matches_at_any_depth_and_do_not_descend() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("app");
        for dir in [
            "cache/deep",
            "src/cache",
            "logs",
            "tmp",
            "src/tmp",
            "marked",
            "cc",
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for f in [
            "a.txt",
            "x.log",
            "keep.log",
            "src/y.log",
            "src/tmp/t",
            "tmp/t",
            "cache/deep/c",
        ] {
            fs::write(root.join(f), f).unwrap();
        }
        fs::write(root.join("marked/.nobackup"), "").unwrap();
        fs::write(root.join("marked/m"), "m").unwrap();
        fs::write(
            root.join("cc/CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        fs::write(root.join("logs/l"), "l").unwrap();
        // A file named like an excluded directory stays: `logs/` is directories only.
        fs::write(root.join("src/logs"), "k").unwrap();
        fs::write(root.join("logs.txt"), "l").unwrap();
        let rules = Excludes {
            patterns: vec![
                "*.log".into(),
                "!keep.log".into(),
                "cache".into(),
                "/tmp".into(),
                "logs/".into(),
            ],
            if_present: vec![".nobackup".into()],
            caches: true,
        };
        let mut s = with_rules(vec![root], rules.clone());
        let names: Vec<String> = collect(&mut s).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [
                "app",
                "app/a.txt",
                "app/keep.log",
                "app/logs.txt",
                "app/src",
                "app/src/logs",
                "app/src/tmp",
                "app/src/tmp/t",
            ]
        );
        assert_eq!(s.excludes(), rules, "recorded for the snapshot");
        assert!(s.take_warnings().is_empty());
    }

    #[test]
    fn a_given_path_is_never_excluded_and_anchors_are_inside_it() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("cache/cache")).unwrap();
        fs::write(d.path().join("cache/cache/x"), "x").unwrap();
        fs::write(d.path().join("cache/y"), "y").unwrap();
        let mut s = with_rules(
            vec![d.path().join("cache")],
            Excludes {
                patterns: vec!["/cache".into()],
                ..Excludes::default()
            },
        );
        let names: Vec<String> = collect(&mut s).into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["cache", "cache/y"]);
    }

    #[test]
    fn an_excluded_database_takes_its_companions() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("app");
        fs::create_dir(&root).unwrap();
        let _open = wal_database(&root.join("scratch.db"));
        let _kept = wal_database(&root.join("shop.db"));
        assert!(root.join("scratch.db-wal").exists());
        for databases in [true, false] {
            let mut s = with_rules(
                vec![root.clone()],
                Excludes {
                    patterns: vec!["scratch.db".into()],
                    ..Excludes::default()
                },
            )
            .with_databases(databases);
            let names: Vec<String> = collect(&mut s).into_iter().map(|(p, _)| p).collect();
            assert!(
                names.iter().all(|n| !n.contains("scratch")),
                "{databases}: {names:?}"
            );
            assert!(names.contains(&"app/shop.db".to_string()), "{names:?}");
        }
    }

    #[test]
    fn same_name_twice_is_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/x")).unwrap();
        fs::create_dir_all(d.path().join("b/x")).unwrap();
        let err = FilesSource::new(vec![d.path().join("a/x"), d.path().join("b/x")], vec![]);
        assert!(err.is_err());
    }

    #[test]
    fn missing_top_level_path_is_an_error() {
        assert!(FilesSource::new(vec!["/nonexistent/x".into()], vec![]).is_err());
    }

    /// A WAL database with uncheckpointed commits, so that its `-wal` and `-shm` exist.
    fn wal_database(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        c
    }

    #[test]
    fn databases_in_a_tree_are_captured_and_their_companions_left_out() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("app");
        fs::create_dir(&root).unwrap();
        // No .db extension: the header decides.
        let _open = wal_database(&root.join("inventory"));
        assert!(root.join("inventory-wal").exists());
        fs::write(root.join("notes.txt"), "n").unwrap();
        let mut s = FilesSource::new(vec![root], vec![]).unwrap();
        let got = collect(&mut s);
        assert_eq!(
            got,
            [
                ("app".into(), ItemKind::Dir),
                ("app/inventory".into(), ItemKind::Sqlite),
                ("app/notes.txt".into(), ItemKind::File),
            ]
        );
        assert!(s.take_warnings().is_empty());
    }

    #[test]
    fn a_journal_gone_after_listing_is_no_warning() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("app");
        fs::create_dir(&root).unwrap();
        let c = rusqlite::Connection::open(root.join("stock")).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(c);
        // As a writer's transaction leaves it in the middle of a walk: listed, then gone.
        fs::write(root.join("stock-journal"), b"").unwrap();
        let mut s = FilesSource::new(vec![root.clone()], vec![]).unwrap();
        assert_eq!(s.next_entry().unwrap().unwrap().item.kind, ItemKind::Dir);
        let db = s.next_entry().unwrap().unwrap();
        assert_eq!(
            (db.item.path.as_str(), db.item.kind),
            ("app/stock", ItemKind::Sqlite)
        );
        fs::remove_file(root.join("stock-journal")).unwrap();
        assert!(s.next_entry().unwrap().is_none());
        assert!(s.take_warnings().is_empty());
    }

    #[test]
    fn without_databases_a_database_is_a_plain_file() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("app");
        fs::create_dir(&root).unwrap();
        let _open = wal_database(&root.join("app.db"));
        let mut s = FilesSource::new(vec![root], vec![])
            .unwrap()
            .with_databases(false);
        let kinds: Vec<ItemKind> = collect(&mut s).into_iter().map(|(_, k)| k).collect();
        assert_eq!(kinds.len(), 4, "app, app.db, app.db-shm, app.db-wal");
        assert!(kinds[1..].iter().all(|k| *k == ItemKind::File));
    }

    #[test]
    fn a_file_that_only_looks_like_sqlite_is_stored_as_bytes_with_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        fs::create_dir(&root).unwrap();
        let mut bytes = b"SQLite format 3\0".to_vec();
        bytes.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        fs::write(root.join("fake.db"), &bytes).unwrap();
        // Its "companion" is an ordinary file of its own.
        fs::write(root.join("fake.db-wal"), "w").unwrap();
        let mut s = FilesSource::new(vec![root], vec![]).unwrap();
        let mut entries = Vec::new();
        while let Some(mut e) = s.next_entry().unwrap() {
            let mut content = Vec::new();
            if let Some(EntryContent::Stream { mut reader, .. }) = e.content.take() {
                reader.read_to_end(&mut content).unwrap();
            }
            entries.push((e.item.path.clone(), e.item.kind, content));
        }
        assert_eq!(entries.len(), 3, "t, t/fake.db, t/fake.db-wal");
        assert_eq!(entries[1].0, "t/fake.db");
        assert_eq!(entries[1].1, ItemKind::File);
        assert!(entries[1].2 == bytes, "read from its first byte");
        assert_eq!(entries[2].0, "t/fake.db-wal");
        let w = s.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("fake.db") && w[0].contains("byte for byte"),
            "{w:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_stored_and_specials_skipped() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let mut s = FilesSource::new(vec![root], vec![]).unwrap();
        let got = collect(&mut s);
        drop(sock);
        assert_eq!(
            got,
            [
                ("t".into(), ItemKind::Dir),
                ("t/link".into(), ItemKind::Symlink)
            ]
        );
        let w = s.take_warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("sock"), "{w:?}");
    }
}
