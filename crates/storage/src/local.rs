//! A repository in a directory of the local file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Kind, ObjectInfo, Removed, Result, Storage, is_valid_name, validate_name};

/// Directory under the root that holds writes in progress.
const TMP_DIR: &str = "tmp";

/// Suffix of temporary files; the dot makes them invalid object names, so they
/// can never be mistaken for objects even if one ends up in a kind directory.
const TMP_SUFFIX: &str = ".tmp";

/// A repository stored in a local directory.
///
/// Layout under the root:
///
/// ```text
/// config                 the Kind::Config object
/// keys/<name>
/// data/<ab>/<name>       packs, fanned out by the first two characters
/// index/<name>
/// snapshots/<name>
/// locks/<name>
/// records/<name>
/// tmp/<random>.tmp       writes in progress
/// ```
///
/// Writes go to a temporary file that is synced and then renamed into place
/// (hard-linked for [`Storage::write_new`], which must not replace an existing
/// object: the file system then needs hard links), and the containing
/// directory is synced afterwards (on Unix), so an object is either absent or
/// complete, even across a crash.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A storage rooted at `root`. Nothing is touched until the first call.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The repository's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding objects of `kind`.
    fn kind_dir(&self, kind: Kind) -> PathBuf {
        match kind {
            Kind::Config => self.root.clone(),
            _ => self.root.join(kind.dir()),
        }
    }

    /// The final path of an object, after validating its name.
    fn object_path(&self, kind: Kind, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        // Config objects share the root with the kind directories, so a
        // config named like one of them would collide with the layout.
        if kind == Kind::Config && is_reserved_root_name(name) {
            return Err(Error::InvalidName(name.to_owned()));
        }
        let dir = self.kind_dir(kind);
        Ok(match kind {
            Kind::Pack => dir.join(fan_out(name)).join(name),
            _ => dir.join(name),
        })
    }

    fn not_found(&self, kind: Kind, name: &str) -> Error {
        Error::NotFound {
            kind,
            name: name.to_owned(),
            location: self.location(),
        }
    }

    /// Maps "no such file" to [`Error::NotFound`] and anything else to an
    /// [`Error::Io`] that names the operation and path.
    ///
    /// "Not a directory" counts as missing too: it means a file sits where a
    /// directory on the object's path should be, so the object cannot exist.
    fn map_err(&self, kind: Kind, name: &str, doing: &str, path: &Path, e: io::Error) -> Error {
        if matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ) {
            self.not_found(kind, name)
        } else {
            Error::io(format!("{doing} {}", path.display()), e)
        }
    }

    /// Opens an object for reading, returning the file, its size and path.
    /// Anything but a regular file (say, a directory) is not an object.
    fn open_object(&self, kind: Kind, name: &str) -> Result<(File, u64, PathBuf)> {
        let path = self.object_path(kind, name)?;
        let err = |e| self.map_err(kind, name, "reading", &path, e);
        let file = match File::open(&path) {
            Ok(file) => file,
            // Windows refuses to open a directory as a file at all.
            Err(_) if path.is_dir() => return Err(self.not_found(kind, name)),
            Err(e) => return Err(err(e)),
        };
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(self.not_found(kind, name));
        }
        Ok((file, meta.len(), path))
    }

    /// Lists the valid-named regular files directly in `dir`. A missing
    /// directory is empty.
    fn list_dir(dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_valid_name(&name) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Deleted between listing and stat: it is simply gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("reading metadata of {}", entry.path().display()),
                        e,
                    ));
                }
            };
            if meta.is_file() {
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }

    /// Makes sure `<root>/tmp` exists. The root itself is not created, so
    /// writing to a location that was never set up fails instead of silently
    /// making a new repository somewhere unexpected.
    fn ensure_tmp_dir(&self) -> Result<PathBuf> {
        let tmp = self.root.join(TMP_DIR);
        match fs::create_dir(&tmp) {
            Ok(()) => sync_dir(&self.root)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating {}", tmp.display()), e)),
        }
        Ok(tmp)
    }

    /// Creates `dir` (a kind directory or a pack fan-out directory under the
    /// root) and any missing parents, syncing each parent that gained an entry
    /// so the new directories survive a crash along with the object.
    fn ensure_parent_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = dir;
        while cur != self.root && !cur.is_dir() {
            missing.push(cur);
            match cur.parent() {
                Some(parent) => cur = parent,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                // Another writer created it concurrently. Still sync below:
                // that writer may not have got round to it yet, and our object
                // is only durable once the directory entry is.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(Error::io(format!("creating {}", d.display()), e)),
            }
            if let Some(parent) = d.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Stores `data` under the object's name: writes and syncs a temporary
    /// file, has `place` move or link it to the object's path (its parent
    /// directory created), then syncs that directory, since the new entry is
    /// only durable once the directory is. The temporary file is removed if
    /// anything fails.
    fn put(
        &self,
        kind: Kind,
        name: &str,
        data: &[u8],
        place: impl FnOnce(&Path, &Path) -> Result<()>,
    ) -> Result<()> {
        let path = self.object_path(kind, name)?;
        let parent = path
            .parent()
            .expect("an object path always has a parent directory");
        let tmp_dir = self.ensure_tmp_dir()?;
        let tmp = Self::write_temp(&tmp_dir, data)?;
        let result = self
            .ensure_parent_dir(parent)
            .and_then(|()| place(&tmp, &path));
        if let Err(e) = result {
            remove_quietly(&tmp);
            return Err(e);
        }
        sync_dir(parent)
    }

    /// Writes `data` to a new temporary file in `tmp_dir` and syncs it,
    /// returning its path. The file is removed again on failure.
    fn write_temp(tmp_dir: &Path, data: &[u8]) -> Result<PathBuf> {
        let path = tmp_dir.join(format!("{}{TMP_SUFFIX}", random_hex()?));
        let result = (|| {
            // create_new: a name collision must never clobber another
            // writer's temp file.
            if data.len() >= DIRECT_MIN && write_direct(&path, data)? {
                return Ok(());
            }
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            file.write_all(data)?;
            file.sync_all()
        })();
        match result {
            Ok(()) => Ok(path),
            Err(e) => {
                remove_quietly(&path);
                Err(Error::io(format!("writing {}", path.display()), e))
            }
        }
    }
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        match self.stat(Kind::Config, "config") {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    location: self.location(),
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&self.root)
            .map_err(|e| Error::io(format!("creating {}", self.root.display()), e))?;
        let dirs = Kind::ALL
            .iter()
            .filter(|&&k| k != Kind::Config)
            .map(|k| k.dir())
            .chain([TMP_DIR]);
        for dir in dirs {
            let path = self.root.join(dir);
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
        sync_dir(&self.root)
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let dir = self.kind_dir(kind);
        let mut out = Vec::new();
        match kind {
            Kind::Config => {
                Self::list_dir(&dir, &mut out)?;
                out.retain(|o| !is_reserved_root_name(&o.name));
            }
            Kind::Pack => {
                let subdirs = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
                };
                for entry in subdirs {
                    let entry =
                        entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
                    let Some(prefix) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    if !is_valid_name(&prefix) || !entry.path().is_dir() {
                        continue;
                    }
                    let start = out.len();
                    Self::list_dir(&entry.path(), &mut out)?;
                    // A pack in the wrong fan-out directory could be listed
                    // but never read; it is not an object of this storage.
                    let mut i = start;
                    while i < out.len() {
                        if fan_out(&out[i].name) == prefix {
                            i += 1;
                        } else {
                            out.swap_remove(i);
                        }
                    }
                }
            }
            _ => Self::list_dir(&dir, &mut out)?,
        }
        Ok(out)
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        let path = self.object_path(kind, name)?;
        let meta = fs::metadata(&path)
            .map_err(|e| self.map_err(kind, name, "reading metadata of", &path, e))?;
        if !meta.is_file() {
            return Err(self.not_found(kind, name));
        }
        Ok(ObjectInfo {
            name: name.to_owned(),
            size: meta.len(),
        })
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let (mut file, size, path) = self.open_object(kind, name)?;
        // The size is only a hint: the file is read to its actual end.
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut buf)
            .map_err(|e| self.map_err(kind, name, "reading", &path, e))?;
        Ok(buf)
    }

    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (mut file, size, path) = self.open_object(kind, name)?;
        let err = |e| self.map_err(kind, name, "reading", &path, e);
        let short = |got: u64| Error::short_read(kind, name, offset, len, got);
        // Checking the size first avoids allocating a huge buffer for a bogus
        // length, e.g. from a corrupted index.
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(short(size.saturating_sub(offset)));
        }
        let cap = usize::try_from(len)
            .map_err(|_| Error::Other(format!("range of {len} bytes does not fit in memory")))?;
        file.seek(SeekFrom::Start(offset)).map_err(err)?;
        let mut buf = Vec::with_capacity(cap);
        // read_to_end on a limited reader rather than read_exact, so that a
        // file truncated since the size check reports how much was there.
        (&mut file).take(len).read_to_end(&mut buf).map_err(err)?;
        if (buf.len() as u64) < len {
            return Err(short(buf.len() as u64));
        }
        Ok(buf)
    }

    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put(kind, name, data, |tmp, path| {
            // On Windows std's rename replaces an existing target too, but can
            // fail while another process holds the target open.
            fs::rename(tmp, path).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), path.display()),
                    e,
                )
            })
        })
    }

    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put(kind, name, data, |tmp, path| {
            // A hard link, unlike a rename, fails if the name exists: the
            // check and the creation are one step of the file system, and the
            // object appears complete, as the synced temporary file is.
            let linked = fs::hard_link(tmp, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::Exists {
                        kind,
                        name: name.to_owned(),
                        location: self.location(),
                    }
                } else {
                    Error::io(
                        format!("linking {} to {}", tmp.display(), path.display()),
                        e,
                    )
                }
            });
            // The object (if linked) keeps the data; the temporary name goes
            // either way. A crash before this leaves a temporary file, which
            // remove_stale_temporary cleans up.
            remove_quietly(tmp);
            linked
        })
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let path = self.object_path(kind, name)?;
        if path.is_dir() {
            return Err(self.not_found(kind, name));
        }
        fs::remove_file(&path).map_err(|e| self.map_err(kind, name, "deleting", &path, e))?;
        // Sync so a deleted lock or pack does not come back after a crash.
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn remove_stale_temporary(&self, older_than: std::time::Duration) -> Result<Removed> {
        let tmp = self.root.join(TMP_DIR);
        let mut removed = Removed::default();
        let entries = match fs::read_dir(&tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(Error::io(format!("listing {}", tmp.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", tmp.display()), e))?;
            let is_temp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(TMP_SUFFIX));
            // Gone since listing, or not ours: leave it.
            let Ok(meta) = entry.metadata() else { continue };
            let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
            if !is_temp || !meta.is_file() || age.is_none_or(|a| a < older_than) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    removed.files += 1;
                    removed.bytes += meta.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(format!("deleting {}", entry.path().display()), e));
                }
            }
        }
        Ok(removed)
    }

    fn free_space(&self) -> Option<u64> {
        // The repository may not exist yet: ask about the nearest existing ancestor.
        let mut dir = self.root.as_path();
        loop {
            if dir.exists() {
                return fs4::available_space(dir).ok();
            }
            dir = match dir.parent()? {
                p if p.as_os_str().is_empty() => Path::new("."),
                p => p,
            };
        }
    }
}

/// Whether `name` is used by the layout at the root, so cannot be a config
/// object's name.
pub(crate) fn is_reserved_root_name(name: &str) -> bool {
    name == TMP_DIR
        || Kind::ALL
            .iter()
            .any(|&k| k != Kind::Config && k.dir() == name)
}

/// The fan-out directory of a pack: its first two characters (or the whole
/// name if shorter). Names are ASCII, so byte slicing is safe.
pub(crate) fn fan_out(name: &str) -> &str {
    &name[..name.len().min(2)]
}

/// 32 random hex digits for a temporary file name.
pub(crate) fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("generating a temporary file name: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Best-effort cleanup of a temporary file: the operation has already failed
/// with a more useful error, and a leftover file in tmp/ is harmless.
/// Objects from this size on (packs) are written past the page cache where the system allows
/// it: a backup writes hundreds of megabytes it will not read again soon, and through the
/// cache it would evict what the applications on the machine had cached, and pay for memory
/// the system must find first (on a virtual machine whose free memory goes back to the host,
/// that cost more than the disk write: a full backup of a 1 GiB database spent 1.8-2.0 s of
/// system time instead of 0.8 s).
const DIRECT_MIN: usize = 1 << 20;

/// Largest piece of an object copied into the aligned buffer of [`write_direct`] at a time: the
/// buffer stays this size instead of growing to the largest pack and staying allocated for as
/// long as the writing thread lives (a whole pack size more memory during every backup).
const DIRECT_PIECE: usize = 1 << 20;

/// Writes `data` as the new file `path` past the page cache (see [`crate::direct`]), through an
/// aligned copy of at most [`DIRECT_PIECE`] bytes at a time, the last piece padded to whole
/// blocks, then sets the true length and syncs. `Ok(false)` if the file system refuses direct
/// I/O; no file is left then, so the ordinary write creates it anew.
fn write_direct(path: &Path, data: &[u8]) -> io::Result<bool> {
    use crate::direct::{self, ALIGN};
    use std::cell::RefCell;
    thread_local! {
        /// One aligned buffer per writing thread, not a fresh allocation (faulted in page by
        /// page) per pack.
        static STAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let Some(mut file) = direct::create_new(path)? else {
        return Ok(false);
    };
    let written = STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        if stage.len() < DIRECT_PIECE + ALIGN {
            *stage = vec![0; DIRECT_PIECE + ALIGN];
        }
        let at = stage.as_ptr().align_offset(ALIGN);
        for piece in data.chunks(DIRECT_PIECE) {
            let padded = piece.len().next_multiple_of(ALIGN);
            stage[at..at + piece.len()].copy_from_slice(piece);
            stage[at + piece.len()..at + padded].fill(0);
            file.write_all(&stage[at..at + padded])?;
        }
        Ok::<(), io::Error>(())
    });
    match written {
        Err(e) if direct::refused(&e) => {
            drop(file);
            remove_quietly(path);
            return Ok(false);
        }
        r => r?,
    }
    file.set_len(data.len() as u64)?;
    file.sync_all()?;
    Ok(true)
}

fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Makes the entries of a directory (new, renamed or removed files) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Makes the entries of a directory durable.
///
/// Skipped outside Unix: std cannot open a directory as a file on Windows,
/// and NTFS journals metadata changes such as renames itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
