//! Writing a large new file past the system's page cache, where the system allows it (O_DIRECT
//! on Linux; elsewhere, and on file systems that refuse it, an ordinary file).
//!
//! A restored database image is gigabytes written once and read back at most once more. Through
//! the page cache every byte is first copied into memory the system must find (evicting what a
//! running application had cached), and on a virtual machine whose free memory goes back to
//! the host, touching that memory again costs more than the disk write: restoring 1 GiB took 0.5
//! to 3.9 s of system time on the development VM depending on what the host had reclaimed,
//! against 0.2 s written directly.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(crate) use backstop_storage::direct::ALIGN;

/// Size of the buffer that gathers writes not aligned in memory or in length.
const STAGE: usize = 1 << 20;

/// A new file written past the page cache where possible. Every write must go through
/// [`DirectFile::finish`], which writes the last, partial block and sets the file's length.
pub(crate) struct DirectFile {
    file: File,
    path: PathBuf,
    /// Writes go past the page cache (no direct write has been refused yet).
    direct: bool,
    /// Bytes waiting for a whole aligned block, at `stage[at..at + staged]` (`at` aligned).
    stage: Vec<u8>,
    at: usize,
    staged: usize,
}

impl DirectFile {
    /// Creates the file, which must not exist; past the page cache if `direct` and the system
    /// allows it.
    pub fn create_new(path: &Path, direct: bool) -> io::Result<Self> {
        let (file, direct) = if direct {
            open_new(path)?
        } else {
            (File::create_new(path)?, false)
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            direct,
            stage: Vec::new(),
            at: 0,
            staged: 0,
        })
    }

    /// Whether writes go past the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what is staged (padded to a whole block) and sets the file's true length; syncs
    /// it if `durable`. Returns the file.
    pub fn finish(mut self, durable: bool) -> io::Result<File> {
        if self.staged > 0 {
            let len = self.file.metadata()?.len() + self.staged as u64;
            let padded = self.staged.next_multiple_of(ALIGN);
            let (at, staged) = (self.at, self.staged);
            self.stage[at + staged..at + padded].fill(0);
            self.write_direct(at, padded)?;
            self.file.set_len(len)?;
        }
        if durable {
            self.file.sync_all()?;
        }
        Ok(self.file)
    }

    /// Writes `stage[at..at + len]` (the staged bytes, padded to a whole number of blocks)
    /// straight to the file; if the system refuses a direct write, goes on through the page
    /// cache, which writes the staged bytes without the padding.
    fn write_direct(&mut self, at: usize, len: usize) -> io::Result<()> {
        match self.file.write_all(&self.stage[at..at + len]) {
            Err(e) if backstop_storage::direct::refused(&e) => self.buffered(),
            r => r,
        }
    }

    /// Goes on through the page cache: reopens the file without direct I/O at the same place
    /// and writes what is staged.
    fn buffered(&mut self) -> io::Result<()> {
        use std::io::Seek;
        let end = self.file.stream_position()?;
        let mut file = File::options().write(true).open(&self.path)?;
        file.seek(io::SeekFrom::Start(end))?;
        file.write_all(&self.stage[self.at..self.at + self.staged])?;
        self.file = file;
        self.direct = false;
        self.staged = 0;
        Ok(())
    }

    /// Makes room for `STAGE` bytes at an aligned address.
    fn ensure_stage(&mut self) {
        if self.stage.is_empty() {
            self.stage = vec![0; STAGE + ALIGN];
            self.at = self.stage.as_ptr().align_offset(ALIGN);
        }
    }
}

impl Write for DirectFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if !self.direct {
            return self.file.write_all(buf);
        }
        // An aligned buffer with nothing staged before it goes out as it is, but for its tail.
        if self.staged == 0 && buf.as_ptr().align_offset(ALIGN) == 0 {
            let whole = buf.len() / ALIGN * ALIGN;
            if whole > 0 {
                match self.file.write_all(&buf[..whole]) {
                    Err(e) if backstop_storage::direct::refused(&e) => {
                        self.buffered()?;
                        return self.file.write_all(buf);
                    }
                    r => r?,
                }
                buf = &buf[whole..];
            }
        }
        while !buf.is_empty() {
            if !self.direct {
                return self.file.write_all(buf);
            }
            self.ensure_stage();
            let n = buf.len().min(STAGE - self.staged);
            let from = self.at + self.staged;
            self.stage[from..from + n].copy_from_slice(&buf[..n]);
            self.staged += n;
            buf = &buf[n..];
            if self.staged == STAGE {
                self.write_direct(self.at, STAGE)?;
                self.staged = 0;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Staged bytes are written by `finish`: a partial block cannot be written directly.
        Ok(())
    }
}

/// The new file, past the page cache if the system allows it.
fn open_new(path: &Path) -> io::Result<(File, bool)> {
    match backstop_storage::direct::create_new(path)? {
        Some(f) => Ok((f, true)),
        None => Ok((File::create_new(path)?, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `parts` and checks the file holds exactly their bytes.
    fn round_trip(dir: &Path, parts: &[&[u8]]) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.join(format!("f{n}"));
        let mut f = DirectFile::create_new(&path, true).unwrap();
        for p in parts {
            f.write_all(p).unwrap();
        }
        f.finish(true).unwrap();
        let want: Vec<u8> = parts.concat();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    fn aligned(len: usize, seed: u8) -> (Vec<u8>, usize) {
        let mut v = vec![0u8; len + ALIGN];
        let at = v.as_ptr().align_offset(ALIGN);
        for (i, b) in v[at..at + len].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        (v, at)
    }

    #[test]
    fn any_mix_of_writes_comes_out_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (a, at) = aligned(3 * ALIGN, 1);
        let (b, bt) = aligned(STAGE + 5 * ALIGN, 2);
        let odd: Vec<u8> = (0..12_345u32).map(|i| (i % 251) as u8).collect();
        // Aligned whole blocks, straight out.
        round_trip(dir.path(), &[&a[at..at + 3 * ALIGN]]);
        // Aligned, then odd lengths (staged), then aligned again (staged behind them).
        round_trip(
            dir.path(),
            &[
                &a[at..at + 3 * ALIGN],
                &odd,
                &b[bt..bt + STAGE + 5 * ALIGN],
                &odd[..7],
            ],
        );
        // Misaligned memory, more than the stage holds.
        round_trip(dir.path(), &[&b[bt + 1..bt + STAGE + 5 * ALIGN]]);
        // A tail shorter than a block only.
        round_trip(dir.path(), &[&odd[..100]]);
        // Nothing at all.
        round_trip(dir.path(), &[]);
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = DirectFile::create_new(&path, true).unwrap();
        let (a, at) = aligned(3 * ALIGN, 4);
        let odd: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
        f.write_all(&a[at..at + 3 * ALIGN]).unwrap();
        f.write_all(&odd[..10]).unwrap();
        // What a write refused with EINVAL does: the staged bytes and the rest go through an
        // ordinary handle, in order.
        f.buffered().unwrap();
        assert!(!f.is_direct());
        f.write_all(&odd).unwrap();
        f.finish(false).unwrap();
        let want = [&a[at..at + 3 * ALIGN], &odd[..10], &odd].concat();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
