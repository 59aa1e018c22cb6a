//! Reading an entry's content in batches: the batch size, the source's stream (a reader or its
//! own buffers), and the reader thread that hashes and cuts it while the calling thread stores
//! the batch before. Both the full path (`super::store_stream`) and the unchanged-database
//! shortcut (`super::unchanged`) read through here.

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender};

use backstop_format::config::ChunkerParams;
use backstop_sources::{Buffers, Chunking};

use crate::store::chunker::{Batch, Cutter};

/// Bytes read from a source per batch. The reader thread, the calling thread and the sealer
/// each hold one; they hand batches to each other through rendezvous channels (none queued).
pub(crate) const READ_BATCH: usize = 2 << 20;

/// An entry's content as the source hands it over.
pub(crate) enum Stream {
    Reader(Box<dyn Read + Send>),
    Buffers(Box<dyn Buffers>),
}

impl Stream {
    /// Puts the next piece of the content into `buf` and returns its length (0 at the end): read
    /// into `buf` (`read_len` bytes, fewer only at the end), or a buffer of the source's own in
    /// place of `buf`, which goes back to the source to be filled again.
    pub(crate) fn next_piece(
        &mut self,
        buf: &mut Vec<u8>,
        read_len: usize,
    ) -> std::io::Result<usize> {
        match self {
            Stream::Reader(r) => {
                buf.resize(read_len, 0);
                let n = read_full(r.as_mut(), buf)?;
                buf.truncate(n);
                Ok(n)
            }
            Stream::Buffers(b) => {
                let old = std::mem::take(buf);
                match b.next_buffer((old.capacity() > 0).then_some(old))? {
                    Some(next) => {
                        *buf = next;
                        Ok(buf.len())
                    }
                    None => Ok(0),
                }
            }
        }
    }
}

pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The reader thread of `store_stream`: reads, hashes and cuts the stream into batches,
/// reusing the batches that come back on `free`. Returns the whole-content hash, or `None`
/// if it stopped early (after sending a read error, or because the receiver is gone).
pub(super) fn read_batches(
    mut reader: Stream,
    chunking: Chunking,
    params: ChunkerParams,
    tx: &SyncSender<std::io::Result<Batch>>,
    free: &Receiver<Batch>,
) -> Option<String> {
    let mut cutter = Cutter::new(chunking, params);
    let mut hasher = blake3::Hasher::new();
    // Fixed-size chunks are read a whole number of chunks at a time, so that every read (but
    // the last) becomes a batch as it is, without being copied.
    let fixed = match chunking {
        Chunking::Fixed(size) => Some(size.max(1) as usize),
        Chunking::ContentDefined | Chunking::Zip => None,
    };
    let read_len = fixed.map_or(READ_BATCH, |size| (READ_BATCH / size).max(1) * size);
    let mut buf = Vec::new();
    loop {
        let mut out = free.try_recv().unwrap_or_default();
        if fixed.is_some() {
            buf = out.take_buffer();
        } else {
            out.clear();
        }
        let n = match reader.next_piece(&mut buf, read_len) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return None;
            }
        };
        if n == 0 {
            break;
        }
        // The whole-content hash is one sequential pass over every byte: spread it over the
        // cores like the per-chunk work.
        hasher.update_rayon(&buf[..n]);
        if fixed.is_some() {
            buf.truncate(n);
            cutter.push_owned(std::mem::take(&mut buf), &mut out);
        } else {
            cutter.push(&buf[..n], &mut out);
        }
        if !out.is_empty() && tx.send(Ok(out)).is_err() {
            return None;
        }
    }
    let mut out = Batch::new();
    cutter.finish(&mut out);
    if !out.is_empty() && tx.send(Ok(out)).is_err() {
        return None;
    }
    Some(hasher.finalize().to_hex().to_string())
}
