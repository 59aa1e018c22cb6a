//! Putting files back: writes items under a target directory and never outside it.
//!
//! Safety rules, whatever a manifest says:
//! - every item path is checked with [`check_item_path`] (no absolute paths, no `..`);
//! - before anything is written under a path, each of its parent components inside the target
//!   must be a real directory, not a symlink, so a link stored in the snapshot (or planted in the
//!   target) cannot redirect a later write outside the target;
//! - file content is written to a temporary file beside its destination and renamed into place
//!   only when complete and verified, so a failed restore leaves no half-written file, and an
//!   existing symlink at the destination is replaced, never followed;
//! - existing paths are only replaced with `overwrite`; the check runs over all items before the
//!   first byte is written.

use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use backstop_format::manifest::{Item, ItemKind, check_item_path};

use crate::Error;

/// What a restore into a directory would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FilesPlan {
    pub target: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Paths that exist already and would be replaced.
    pub existing: Vec<String>,
}

/// Computes the plan and refuses unsafe paths.
pub fn plan(target: &Path, items: &[Item]) -> Result<FilesPlan, Error> {
    let mut p = FilesPlan::new(target);
    for item in items {
        p.add(target, item)?;
    }
    Ok(p)
}

impl FilesPlan {
    /// An empty plan for a restore into `target`, to [`FilesPlan::add`] items to one by one.
    pub fn new(target: &Path) -> Self {
        Self {
            target: target.display().to_string(),
            ..Self::default()
        }
    }

    /// Adds an item to the plan, refusing an unsafe path.
    pub fn add(&mut self, target: &Path, item: &Item) -> Result<(), Error> {
        check_item_path(&item.path)?;
        check_platform_name(&item.path)?;
        match item.kind {
            ItemKind::Dir => self.dirs += 1,
            ItemKind::Symlink => self.symlinks += 1,
            _ => {
                self.files += 1;
                self.bytes += item.content.as_ref().map_or(0, |c| c.size);
            }
        }
        let dest = target.join(&item.path);
        if let Ok(md) = fs::symlink_metadata(&dest)
            && !(md.is_dir() && item.kind == ItemKind::Dir)
        {
            self.existing.push(item.path.clone());
        }
        // A database's leftover companions are replaced too (removed: see `database`).
        if item.kind == ItemKind::Sqlite {
            for suffix in DATABASE_COMPANIONS {
                if fs::symlink_metadata(with_suffix(&dest, suffix)).is_ok() {
                    self.existing.push(format!("{}{suffix}", item.path));
                }
            }
        }
        Ok(())
    }
}

/// Looks at a restored database image before it is moved into place (see
/// [`FilesRestorer::database`]).
pub type ImageCheck<'a> = dyn FnMut(&Path) -> Result<(), Error> + 'a;

/// The files SQLite keeps beside a database.
const DATABASE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes items under a target directory.
#[derive(Debug)]
pub struct FilesRestorer {
    target: PathBuf,
    /// Directories whose metadata is set after their contents are written.
    dirs: Vec<(PathBuf, Item)>,
    /// The last parent directory found to be a real directory (see [`FilesRestorer::dest`]);
    /// forgotten whenever this restorer removes a path or makes a symlink, which could turn it
    /// into something else.
    checked_parent: Option<PathBuf>,
}

impl FilesRestorer {
    /// Checks the plan against `overwrite` and creates the target directory.
    pub fn new(target: &Path, plan: &FilesPlan, overwrite: bool) -> Result<Self, Error> {
        if !overwrite && !plan.existing.is_empty() {
            return Err(Error::WouldOverwrite {
                target: target.display().to_string(),
                count: plan.existing.len(),
                first: plan.existing[0].clone(),
            });
        }
        fs::create_dir_all(target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
        Ok(Self {
            target: target.to_path_buf(),
            dirs: Vec::new(),
            checked_parent: None,
        })
    }

    /// The destination of an item, after checking its path and that no parent is a symlink.
    /// Items come directory by directory: the parent checked for the item before is not
    /// checked again, unless this restorer changed something since.
    fn dest(&mut self, item: &Item) -> Result<PathBuf, Error> {
        check_item_path(&item.path)?;
        check_platform_name(&item.path)?;
        let comps: Vec<&str> = item.path.split('/').collect();
        let (name, parents) = comps.split_last().expect("a checked path has a component");
        if let Some(parent) = &self.checked_parent
            && parent.strip_prefix(&self.target).is_ok_and(|p| {
                p.components()
                    .map(|c| c.as_os_str())
                    .eq(parents.iter().map(std::ffi::OsStr::new))
            })
        {
            return Ok(parent.join(name));
        }
        let mut cur = self.target.clone();
        for c in parents {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Error::Invalid(format!(
                        "refusing to restore {}: {} is not a directory (a symlink or file is in the way)",
                        item.path,
                        cur.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur)
                        .map_err(|e| Error::io(format!("creating {}", cur.display()), e))?;
                }
                Err(e) => return Err(Error::io(format!("checking {}", cur.display()), e)),
            }
        }
        let dest = cur.join(name);
        self.checked_parent = Some(cur);
        Ok(dest)
    }

    /// Restores a directory (its times are set in [`FilesRestorer::finish`]).
    pub fn dir(&mut self, item: &Item) -> Result<(), Error> {
        let dest = self.dest(item)?;
        match fs::symlink_metadata(&dest) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                self.checked_parent = None;
                remove_path(&dest)?;
                fs::create_dir(&dest)
                    .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
            }
            Err(_) => fs::create_dir(&dest)
                .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?,
        }
        self.dirs.push((dest, item.clone()));
        Ok(())
    }

    /// Restores a file: `write` fills it; it is renamed into place only if `write` succeeds.
    pub fn file(
        &mut self,
        item: &Item,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.write_file(item, write, None)
    }

    /// Restores a database image like [`FilesRestorer::file`]; `check` sees the complete
    /// temporary file before it is used. The destination's `-wal`, `-shm` and `-journal` files
    /// (left by the database being replaced) are removed before the image is moved into place:
    /// SQLite would otherwise replay a foreign WAL or journal into it.
    pub fn database(
        &mut self,
        item: &Item,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), Error>,
        check: &mut ImageCheck<'_>,
    ) -> Result<(), Error> {
        self.write_file(item, write, Some(check))
    }

    fn write_file(
        &mut self,
        item: &Item,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), Error>,
        check: Option<&mut ImageCheck<'_>>,
    ) -> Result<(), Error> {
        let dest = self.prepare_file(item)?;
        let written = write_temp(&dest.0, item, write, check)?;
        make_durable(&self.target, &[&written])?;
        if put_in_place(written)? {
            self.checked_parent = None;
        }
        Ok(())
    }

    /// Checks a file item's path and parents (see [`FilesRestorer::dest`]) and returns where it
    /// goes, for [`FilesRestorer::write_prepared`]. Items are prepared in their order; the
    /// writes of files prepared one after another may then run at the same time.
    pub fn prepare_file(&mut self, item: &Item) -> Result<Prepared, Error> {
        Ok(Prepared(self.dest(item)?))
    }

    /// Writes a prepared file under a temporary name beside its destination, like
    /// [`FilesRestorer::file`] but without moving it into place: the files of a group are
    /// written (by several threads), then made durable together where they replace existing
    /// ones ([`FilesRestorer::make_durable`]), then moved into place
    /// ([`FilesRestorer::put_in_place`]), and the caller calls [`FilesRestorer::wrote_prepared`]
    /// with what that returned before preparing the next item.
    pub fn write_prepared(
        &self,
        prepared: &Prepared,
        item: &Item,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), Error>,
    ) -> Result<Written, Error> {
        write_temp(&prepared.0, item, write, None)
    }

    /// Syncs the written files that replace existing paths, all at once (see the module
    /// documentation).
    pub fn make_durable(&self, written: &[&Written]) -> Result<(), Error> {
        make_durable(&self.target, written)
    }

    /// Moves written files into place, in order; files not moved (after a failure) are
    /// removed.
    pub fn put_in_place(&self, written: Vec<Written>) -> Result<Replaced, Error> {
        let mut replaced = false;
        for w in written {
            replaced |= put_in_place(w)?;
        }
        Ok(Replaced(replaced))
    }

    /// Takes note of what prepared writes replaced: a directory a file took the place of may
    /// have been the parent checked last.
    pub fn wrote_prepared(&mut self, replaced: Replaced) {
        if replaced.0 {
            self.checked_parent = None;
        }
    }

    /// Restores a symlink as a link (its target is not checked or followed).
    pub fn symlink(&mut self, item: &Item) -> Result<(), Error> {
        let dest = self.dest(item)?;
        self.checked_parent = None;
        let target = item.target.as_deref().unwrap_or_default();
        if fs::symlink_metadata(&dest).is_ok() {
            remove_path(&dest)?;
        }
        make_symlink(target, &dest)
    }

    /// Sets directory times last, since writing into a directory changes them.
    pub fn finish(mut self) -> Result<(), Error> {
        while let Some((path, item)) = self.dirs.pop() {
            apply_metadata(&path, &item)?;
        }
        Ok(())
    }
}

/// Where a file prepared by [`FilesRestorer::prepare_file`] goes.
#[derive(Debug)]
pub struct Prepared(PathBuf);

/// Whether moving prepared files into place replaced a directory (see
/// [`FilesRestorer::wrote_prepared`]).
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct Replaced(bool);

/// A file written under a temporary name beside its destination, not yet moved into place
/// ([`FilesRestorer::put_in_place`]). Dropped before that, it removes its temporary file.
#[derive(Debug)]
pub struct Written {
    tmp: PathBuf,
    dest: PathBuf,
    /// The open file, kept for the sync when it replaces an existing path.
    replaces: Option<File>,
    placed: bool,
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a file to a temporary name beside `dest` (see the module documentation); `check`,
/// for a database, sees the complete image first.
fn write_temp(
    dest: &Path,
    item: &Item,
    write: &mut dyn FnMut(&mut dyn Write) -> Result<(), Error>,
    mut check: Option<&mut ImageCheck<'_>>,
) -> Result<Written, Error> {
    let dir = dest.parent().expect("dest has a parent inside the target");
    let tmp = dir.join(format!(
        ".backstop-restore-{}.tmp",
        backstop_format::id::to_hex(&backstop_format::id::random_bytes::<8>())
    ));
    let f =
        File::create_new(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    // From here on, a failure removes the temporary file (`Written::drop`).
    let mut written = Written {
        tmp,
        dest: dest.to_path_buf(),
        replaces: None,
        placed: false,
    };
    let tmp = &written.tmp;
    let size = item.content.as_ref().map_or(0, |c| c.size);
    let mut w = Sparse::new(f, size);
    write(&mut w)?;
    let f = w
        .finish()
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    // Through the open file: no second open, and a read-only file's time is set too.
    if check.is_none() {
        apply_file_metadata(&f, tmp, item)?;
    }
    if let Some(check) = check.as_mut() {
        drop(f);
        check(tmp)?;
        for suffix in DATABASE_COMPANIONS {
            let companion = with_suffix(dest, suffix);
            if fs::symlink_metadata(&companion).is_ok() {
                remove_path(&companion)?;
            }
        }
        apply_metadata(tmp, item)?;
        if fs::symlink_metadata(dest).is_ok() {
            let f =
                File::open(tmp).map_err(|e| Error::io(format!("reading {}", tmp.display()), e))?;
            written.replaces = Some(f);
        }
        return Ok(written);
    }
    if fs::symlink_metadata(dest).is_ok() {
        written.replaces = Some(f);
    }
    Ok(written)
}

/// Makes the contents of the written files that replace existing paths durable, before any of
/// them is moved into place: a crash then leaves the old file or the new one, never an empty
/// one. A new file has no old content to lose, and is flushed by the system like any copy (as
/// cp, restic and borg do). Several replacements cost one sync of the file system (Linux) or
/// one per file (elsewhere); `target` is where they are.
fn make_durable(target: &Path, written: &[&Written]) -> Result<(), Error> {
    let replacing: Vec<&File> = written.iter().filter_map(|w| w.replaces.as_ref()).collect();
    #[cfg(target_os = "linux")]
    if replacing.len() > 1 {
        let dir = File::open(target)
            .map_err(|e| Error::io(format!("opening {}", target.display()), e))?;
        return rustix::fs::syncfs(&dir)
            .map_err(|e| Error::io(format!("syncing {}", target.display()), e.into()));
    }
    for f in replacing {
        f.sync_all().map_err(|e| {
            Error::io(
                format!("syncing a file restored into {}", target.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Moves a written file into place. Returns whether a directory at its destination was
/// removed to make room.
fn put_in_place(mut w: Written) -> Result<bool, Error> {
    let mut removed_dir = false;
    if w.replaces.take().is_some() && fs::symlink_metadata(&w.dest).is_ok_and(|md| md.is_dir()) {
        removed_dir = true;
        remove_path(&w.dest)?;
    }
    fs::rename(&w.tmp, &w.dest)
        .map_err(|e| Error::io(format!("moving into place {}", w.dest.display()), e))?;
    w.placed = true;
    Ok(removed_dir)
}

/// The block size below which zeros are written rather than skipped: file systems allocate
/// whole blocks, so a shorter run of zeros would not save space.
const HOLE_BLOCK: usize = 4096;

/// Writes a restored file, leaving holes where whole aligned blocks are zeros: a 20 GiB sparse
/// file (a VM disk, a preallocated database) restores using the space its data needs, not
/// 20 GiB. Skipping is a seek past the end and a final `set_len`, which every platform supports
/// (where the file system keeps no holes the skipped blocks read as zeros all the same).
struct Sparse {
    out: io::BufWriter<File>,
    /// The start of the block being filled (a multiple of [`HOLE_BLOCK`]).
    len: u64,
    /// Zeros skipped but not yet seeked over, ending at `len`.
    hole: u64,
    /// The block being filled, shorter than [`HOLE_BLOCK`].
    partial: Vec<u8>,
}

impl Sparse {
    /// For a file of `size` bytes: a buffer of up to 1 MiB (not more than the file needs: a
    /// tree of small files is restored with one buffer each).
    fn new(file: File, size: u64) -> Self {
        let buffer = usize::try_from(size).map_or(1 << 20, |s| s.clamp(HOLE_BLOCK, 1 << 20));
        Self {
            out: io::BufWriter::with_capacity(buffer, file),
            len: 0,
            hole: 0,
            partial: Vec::with_capacity(HOLE_BLOCK),
        }
    }

    /// Writes out data, first skipping the pending hole.
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.hole > 0 {
            let skip = i64::try_from(self.hole).map_err(io::Error::other)?;
            self.out.seek(io::SeekFrom::Current(skip))?;
            self.hole = 0;
        }
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Whole blocks: zero ones become hole, runs of the others are written at once.
    fn blocks(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut run: Option<usize> = None;
        for (i, block) in bytes.chunks(HOLE_BLOCK).enumerate() {
            if block.iter().all(|&b| b == 0) {
                if let Some(start) = run.take() {
                    self.data(&bytes[start..i * HOLE_BLOCK])?;
                }
                self.hole += HOLE_BLOCK as u64;
                self.len += HOLE_BLOCK as u64;
            } else if run.is_none() {
                run = Some(i * HOLE_BLOCK);
            }
        }
        match run {
            Some(start) => self.data(&bytes[start..]),
            None => Ok(()),
        }
    }

    /// Writes the last partial block, flushes, and gives a file that ends in a hole its length.
    fn finish(mut self) -> io::Result<File> {
        let partial = std::mem::take(&mut self.partial);
        if !partial.is_empty() {
            self.data(&partial)?;
        }
        self.out.flush()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        if self.hole > 0 {
            file.set_len(self.len)?;
        }
        Ok(file)
    }
}

impl Write for Sparse {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.partial.is_empty() {
            let n = (HOLE_BLOCK - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.partial.len() < HOLE_BLOCK {
                return Ok(buf.len());
            }
            let block = std::mem::take(&mut self.partial);
            self.blocks(&block)?;
            self.partial = block;
            self.partial.clear();
        }
        let whole = rest.len() / HOLE_BLOCK * HOLE_BLOCK;
        self.blocks(&rest[..whole])?;
        self.partial.extend_from_slice(&rest[whole..]);
        Ok(buf.len())
    }

    /// Flushes what is written; the partial block stays until more comes or `finish`.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// On Windows, `\\` and `:` in a stored name would be a separator or a drive and
/// alternate-stream marker: such items are refused rather than written somewhere else.
#[cfg(windows)]
fn check_platform_name(path: &str) -> Result<(), Error> {
    if path.contains(['\\', ':', '<', '>', '"', '|', '?', '*']) {
        return Err(Error::Invalid(format!(
            "cannot restore {path:?} on Windows: the name has a character Windows does not allow"
        )));
    }
    Ok(())
}

#[cfg(not(windows))]
fn check_platform_name(_path: &str) -> Result<(), Error> {
    Ok(())
}

fn remove_path(p: &Path) -> Result<(), Error> {
    let md =
        fs::symlink_metadata(p).map_err(|e| Error::io(format!("checking {}", p.display()), e))?;
    let r = if md.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    r.map_err(|e| Error::io(format!("replacing {}", p.display()), e))
}

#[cfg(unix)]
fn make_symlink(target: &str, dest: &Path) -> Result<(), Error> {
    std::os::unix::fs::symlink(target, dest)
        .map_err(|e| Error::io(format!("creating link {}", dest.display()), e))
}

#[cfg(windows)]
fn make_symlink(target: &str, dest: &Path) -> Result<(), Error> {
    std::os::windows::fs::symlink_file(target, dest)
        .map_err(|e| Error::io(format!("creating link {}", dest.display()), e))
}

#[cfg(not(any(unix, windows)))]
fn make_symlink(_target: &str, dest: &Path) -> Result<(), Error> {
    Err(Error::Invalid(format!(
        "cannot create link {} on this platform",
        dest.display()
    )))
}

fn apply_metadata(path: &Path, item: &Item) -> Result<(), Error> {
    set_mode(path, item)?;
    if let Some(t) = item.mtime {
        let st = std::time::SystemTime::from(t);
        // Opening a directory for writing is not portable; on Windows directory times are
        // left as they are.
        let f = if item.kind == ItemKind::Dir {
            File::open(path)
        } else {
            File::options().write(true).open(path)
        };
        if let Ok(f) = f {
            let _ = f.set_modified(st);
        }
    }
    Ok(())
}

/// Sets a restored file's time and permissions through its open handle.
fn apply_file_metadata(f: &File, path: &Path, item: &Item) -> Result<(), Error> {
    if let Some(t) = item.mtime {
        let _ = f.set_modified(std::time::SystemTime::from(t));
    }
    let permissions = file_permissions(f, item)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if let Some(p) = permissions {
        f.set_permissions(p)
            .map_err(|e| Error::io(format!("setting permissions of {}", path.display()), e))?;
    }
    Ok(())
}

/// The permissions a restored file gets, if any are recorded.
#[cfg(unix)]
fn file_permissions(_f: &File, item: &Item) -> io::Result<Option<fs::Permissions>> {
    use std::os::unix::fs::PermissionsExt;
    Ok(item.mode.map(fs::Permissions::from_mode))
}

#[cfg(not(unix))]
fn file_permissions(f: &File, item: &Item) -> io::Result<Option<fs::Permissions>> {
    if !item.readonly {
        return Ok(None);
    }
    let mut p = f.metadata()?.permissions();
    p.set_readonly(true);
    Ok(Some(p))
}

#[cfg(unix)]
fn set_mode(path: &Path, item: &Item) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(m) = item.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(m))
            .map_err(|e| Error::io(format!("setting permissions of {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(path: &Path, item: &Item) -> Result<(), Error> {
    if item.readonly && item.kind != ItemKind::Dir {
        let mut p = fs::metadata(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .permissions();
        p.set_readonly(true);
        fs::set_permissions(path, p)
            .map_err(|e| Error::io(format!("setting permissions of {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, kind: ItemKind) -> Item {
        Item::new(path, kind)
    }

    /// Whatever the write sizes and wherever the zeros fall, the bytes read back are the bytes
    /// written, and whole zero blocks become holes (on Linux: fewer blocks allocated).
    #[test]
    fn sparse_writer_keeps_every_byte_and_leaves_holes() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = vec![0u8; 3 << 20];
        // Data at the start, a lone byte in a zero block, an unaligned run, zeros at the end.
        content[..5000].fill(7);
        content[1 << 20] = 1;
        content[(2 << 20) + 100..(2 << 20) + 9000].fill(9);
        for (n, sizes) in [[1usize, 4096, 7000], [4095, 4097, 1 << 20], [3 << 20, 1, 1]]
            .iter()
            .enumerate()
        {
            let path = dir.path().join(format!("f{n}"));
            let mut w = Sparse::new(File::create_new(&path).unwrap(), 1 << 20);
            let mut at = 0;
            for size in sizes.iter().cycle() {
                if at == content.len() {
                    break;
                }
                let end = (at + size).min(content.len());
                w.write_all(&content[at..end]).unwrap();
                at = end;
            }
            drop(w.finish().unwrap());
            assert!(fs::read(&path).unwrap() == content, "sizes {sizes:?}");
            #[cfg(target_os = "linux")]
            {
                use std::os::unix::fs::MetadataExt as _;
                let used = fs::metadata(&path).unwrap().blocks() * 512;
                assert!(used < 1 << 20, "sizes {sizes:?}: {used} bytes allocated");
            }
        }
        // A file that is zeros only, and an empty one.
        for len in [0usize, 1 << 20] {
            let path = dir.path().join(format!("z{len}"));
            let mut w = Sparse::new(File::create_new(&path).unwrap(), 1 << 20);
            w.write_all(&vec![0; len]).unwrap();
            drop(w.finish().unwrap());
            assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
        }
    }

    #[test]
    fn unsafe_paths_are_refused_in_the_plan() {
        let d = tempfile::tempdir().unwrap();
        assert!(plan(d.path(), &[item("../evil", ItemKind::File)]).is_err());
        assert!(plan(d.path(), &[item("/etc/passwd", ItemKind::File)]).is_err());
    }

    #[test]
    fn existing_files_need_overwrite() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "old").unwrap();
        let items = [item("a", ItemKind::File)];
        let p = plan(d.path(), &items).unwrap();
        assert_eq!(p.existing, ["a"]);
        assert!(matches!(
            FilesRestorer::new(d.path(), &p, false),
            Err(Error::WouldOverwrite { .. })
        ));
        let mut r = FilesRestorer::new(d.path(), &p, true).unwrap();
        r.file(&items[0], &mut |w| {
            w.write_all(b"new").map_err(|e| Error::io("w", e))
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!(fs::read(d.path().join("a")).unwrap(), b"new");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let items = [item("a", ItemKind::File)];
        let p = plan(d.path(), &items).unwrap();
        let mut r = FilesRestorer::new(d.path(), &p, false).unwrap();
        let err = r.file(&items[0], &mut |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::Invalid("chunk damaged".into()))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_in_snapshot_cannot_redirect_writes() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = d.path().join("t");
        let mut link = item("a", ItemKind::Symlink);
        link.target = Some(outside.path().display().to_string());
        let items = [link, item("a/evil", ItemKind::File)];
        let p = plan(&target, &items).unwrap();
        let mut r = FilesRestorer::new(&target, &p, false).unwrap();
        r.symlink(&items[0]).unwrap();
        let err = r.file(&items[1], &mut |w| {
            w.write_all(b"x").map_err(|e| Error::io("w", e))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    /// The parent checked for one file is not trusted for the next once a link took the place
    /// of that directory (a crafted list: a directory, a file in it, a link of the same name,
    /// another file under that name).
    #[cfg(unix)]
    #[test]
    fn a_link_replacing_a_checked_directory_cannot_redirect_writes() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = d.path().join("t");
        let mut link = item("a/b", ItemKind::Symlink);
        link.target = Some(outside.path().display().to_string());
        let items = [
            item("a", ItemKind::Dir),
            item("a/b", ItemKind::Dir),
            item("a/b/x", ItemKind::File),
            link,
            item("a/b/y", ItemKind::File),
        ];
        let p = FilesPlan::new(&target);
        let mut r = FilesRestorer::new(&target, &p, false).unwrap();
        let mut write = |w: &mut dyn Write| w.write_all(b"x").map_err(|e| Error::io("w", e));
        r.dir(&items[0]).unwrap();
        r.dir(&items[1]).unwrap();
        r.file(&items[2], &mut write).unwrap();
        r.symlink(&items[3]).unwrap();
        let err = r.file(&items[4], &mut write).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // Files side by side in one directory still land where they belong.
        r.file(&item("a/z1", ItemKind::File), &mut write).unwrap();
        r.file(&item("a/z2", ItemKind::File), &mut write).unwrap();
        r.file(&item("z3", ItemKind::File), &mut write).unwrap();
        assert!(target.join("a/z1").is_file() && target.join("a/z2").is_file());
        assert!(target.join("z3").is_file());
    }
}
