//! Files and directories: regular files, directories and symlinks with permissions and
//! modification times. Special files (sockets, pipes, devices) are skipped with a warning, and a
//! file or directory that cannot be read is a warning, not an abort.
//!
//! Each path given becomes a top-level item named after its last component (`data/shop.db`
//! becomes `shop.db`), so a restore into a directory recreates the names the user knows.

use std::fs::{self, File, Metadata};
use std::path::{Path, PathBuf};

use backstop_format::manifest::{Item, ItemKind, SourceKind};

use crate::{Chunking, Entry, Error, Source};

/// Captures files and directory trees.
pub struct FilesSource {
    given: Vec<String>,
    /// Paths still to visit: (path on disk, item path, is a top-level path). Popped from the
    /// end, so children are pushed in reverse order.
    stack: Vec<(PathBuf, String, bool)>,
    exclude: Vec<PathBuf>,
    warnings: Vec<String>,
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
            warnings: Vec::new(),
        })
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
            if ft.is_dir() {
                if !top && self.excluded(&path) {
                    continue;
                }
                self.push_children(&path, &item_path);
                return Ok(Some(Entry {
                    item: item_from_metadata(item_path, ItemKind::Dir, &md),
                    content: None,
                    chunking: Chunking::ContentDefined,
                    required: false,
                    reuse_unchanged: false,
                    on_change: None,
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
                            chunking: Chunking::ContentDefined,
                            required: false,
                            reuse_unchanged: false,
                            on_change: None,
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
            match File::open(&path) {
                Ok(f) => {
                    return Ok(Some(Entry {
                        item: item_from_metadata(item_path, ItemKind::File, &md),
                        content: Some(Box::new(f)),
                        chunking: Chunking::ContentDefined,
                        required: false,
                        reuse_unchanged: true,
                        on_change: None,
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
        std::mem::take(&mut self.warnings)
    }

    fn finish(&mut self) -> Result<(), Error> {
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
