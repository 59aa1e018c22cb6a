//! Chunk and object envelopes: zstd compression (skipped where it does not help), then
//! encryption.

use std::borrow::Cow;

use crate::FormatError;
use crate::crypto::Crypter;

/// A frame as it is stored inside a pack: one or more chunks' plaintexts, concatenated,
/// compressed together and sealed. Compressing small chunks (4 KiB pages) in frames of about
/// [`FRAME_TARGET`] bytes is both faster and smaller than one by one, while each chunk keeps its
/// own id and index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChunk {
    pub bytes: Vec<u8>,
    pub compressed: bool,
    /// Plaintext length of the whole frame.
    pub raw_len: u32,
}

/// Plaintext bytes after which a frame is closed.
pub const FRAME_TARGET: usize = 64 * 1024;

/// Compresses `plain` at `level` if that saves at least 1/32 of its size; otherwise keeps it raw
/// so that incompressible data (already compressed files, encrypted pages) costs no CPU to read.
pub fn compress(plain: &[u8], level: i32) -> Option<Vec<u8>> {
    if plain.len() < 64 || level == 0 {
        return None;
    }
    // One compression context per thread and level: creating a context costs more than
    // compressing a 4 KiB page.
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let out = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        c.as_mut()?.1.compress(plain).ok()
    })?;
    (out.len() < plain.len() - plain.len() / 32).then_some(out)
}

/// Runs `f` with this thread's zstd decompressor (made on first use); `None` if it cannot be made.
fn with_decompressor<T>(f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> T) -> Option<T> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        d.as_mut().map(f)
    })
}

fn decompress(body: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    with_decompressor(|d| d.decompress(body, raw_len).ok()).flatten()
}

/// Decompresses `body` into all of `out`; false unless it is exactly `out.len()` bytes.
fn decompress_into(body: &[u8], out: &mut [u8]) -> bool {
    with_decompressor(|d| d.decompress_to_buffer(body, out).ok())
        .flatten()
        .is_some_and(|n| n == out.len())
}

/// A frame's body: decrypted, or without encryption the stored bytes themselves (no copy).
fn opened<'a>(crypter: &Crypter, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, FormatError> {
    if crypter.is_encrypted() {
        Ok(Cow::Owned(crypter.open(stored)?))
    } else {
        Ok(Cow::Borrowed(stored))
    }
}

/// Seals one chunk's plaintext as a frame of its own.
pub fn seal_chunk(crypter: &Crypter, plain: &[u8], level: i32) -> SealedChunk {
    seal_frame(crypter, &[plain], level)
}

/// Seals several chunks as one frame.
pub fn seal_frame(crypter: &Crypter, parts: &[&[u8]], level: i32) -> SealedChunk {
    let joined;
    let plain: &[u8] = match parts {
        [one] => one,
        _ => {
            joined = parts.concat();
            &joined
        }
    };
    let raw_len = u32::try_from(plain.len()).expect("frames are far smaller than 4 GiB");
    let (body, compressed) = match compress(plain, level) {
        Some(c) => (c, true),
        None => (plain.to_vec(), false),
    };
    SealedChunk {
        bytes: crypter.seal(body),
        compressed,
        raw_len,
    }
}

/// Opens one stored frame of `raw_len` plaintext bytes. The caller slices out its chunk and
/// checks it against the chunk id.
pub fn open_chunk(
    crypter: &Crypter,
    stored: &[u8],
    compressed: bool,
    raw_len: u32,
) -> Result<Vec<u8>, FormatError> {
    let body = opened(crypter, stored)?;
    if !compressed {
        if body.len() != raw_len as usize {
            return Err(FormatError::Corrupt(
                "chunk length differs from its index entry",
            ));
        }
        return Ok(body.into_owned());
    }
    let out = decompress(&body, raw_len as usize)
        .ok_or(FormatError::Corrupt("chunk does not decompress"))?;
    if out.len() != raw_len as usize {
        return Err(FormatError::Corrupt(
            "chunk length differs from its index entry",
        ));
    }
    Ok(out)
}

/// Like [`open_chunk`], into `out`, which has the frame's plaintext length: a restore decodes
/// frames straight into its output buffer. The caller checks each chunk against its id.
pub fn open_chunk_into(
    crypter: &Crypter,
    stored: &[u8],
    compressed: bool,
    out: &mut [u8],
) -> Result<(), FormatError> {
    let body = opened(crypter, stored)?;
    if !compressed {
        if body.len() != out.len() {
            return Err(FormatError::Corrupt(
                "chunk length differs from its index entry",
            ));
        }
        out.copy_from_slice(&body);
        return Ok(());
    }
    if decompress_into(&body, out) {
        Ok(())
    } else {
        Err(FormatError::Corrupt(
            "chunk does not decompress to its indexed length",
        ))
    }
}

const OBJ_RAW: u8 = 0;
const OBJ_ZSTD: u8 = 1;

/// zstd level of objects. Most of their bytes are chunk ids, which do not compress at any
/// level: level 1 stores a 1 GiB database's pack trailers and index files (23 MB) as small as
/// level 3 did, in half the time.
const OBJECT_LEVEL: i32 = 1;

/// Bytes of the checksum that ends every object's plaintext.
const OBJECT_CHECKSUM: usize = 16;

/// Encodes a whole object (index, snapshot, lock, record, pack trailer): a one-byte
/// compression flag, the body, and a 16-byte BLAKE3 checksum of both (so that damage to an
/// object of an unencrypted repository is detected too), then encryption of all of it.
pub fn seal_object(crypter: &Crypter, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() / 2 + 32);
    match compress(plain, OBJECT_LEVEL) {
        Some(c) => {
            out.push(OBJ_ZSTD);
            out.extend_from_slice(&c);
        }
        None => {
            out.push(OBJ_RAW);
            out.extend_from_slice(plain);
        }
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(&sum.as_bytes()[..OBJECT_CHECKSUM]);
    crypter.seal(out)
}

/// Largest object plaintext we agree to decompress (1 GiB): damage must not exhaust memory.
const MAX_OBJECT: usize = 1 << 30;

/// Decodes an object written by [`seal_object`].
pub fn open_object(crypter: &Crypter, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
    let body = crypter.open(stored)?;
    let split = body
        .len()
        .checked_sub(OBJECT_CHECKSUM)
        .filter(|&n| n > 0)
        .ok_or(FormatError::Corrupt("object too short"))?;
    let (body, sum) = body.split_at(split);
    if &blake3::hash(body).as_bytes()[..OBJECT_CHECKSUM] != sum {
        return Err(FormatError::Corrupt("object checksum mismatch"));
    }
    match body.split_first() {
        Some((&OBJ_RAW, rest)) => Ok(rest.to_vec()),
        Some((&OBJ_ZSTD, rest)) => {
            // `seal_object` writes one frame that records its size: decompress it in one go
            // into a buffer of that size (an index file is megabytes; growing a buffer to it
            // copies it over and over and faults in fresh memory each time).
            if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(rest)
                && n <= MAX_OBJECT as u64
            {
                let mut out = Vec::with_capacity(n as usize);
                return match zstd::bulk::Decompressor::new()
                    .and_then(|mut d| d.decompress_to_buffer(rest, &mut out))
                {
                    Ok(got) if got as u64 == n => Ok(out),
                    _ => Err(FormatError::Corrupt("object does not decompress")),
                };
            }
            let mut out = Vec::new();
            let mut dec = zstd::stream::read::Decoder::new(rest)
                .map_err(|_| FormatError::Corrupt("object does not decompress"))?;
            let n = std::io::copy(
                &mut std::io::Read::take(&mut dec, MAX_OBJECT as u64 + 1),
                &mut out,
            )
            .map_err(|_| FormatError::Corrupt("object does not decompress"))?;
            if n as usize > MAX_OBJECT {
                return Err(FormatError::Corrupt("object too large"));
            }
            Ok(out)
        }
        Some(_) => Err(FormatError::Corrupt("unknown object encoding")),
        None => Err(FormatError::Corrupt("empty object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunk_round_trip(data in proptest::collection::vec(0u8..4, 0..5000), enc in any::<bool>()) {
            let c = if enc { Crypter::new(&MasterKey::generate()) } else { Crypter::None };
            let s = seal_chunk(&c, &data, 3);
            prop_assert_eq!(open_chunk(&c, &s.bytes, s.compressed, s.raw_len).unwrap(), data);
        }

        #[test]
        fn frame_round_trip(parts in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3000), 1..6), enc in any::<bool>()) {
            let c = if enc { Crypter::new(&MasterKey::generate()) } else { Crypter::None };
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let s = seal_frame(&c, &refs, 1);
            prop_assert_eq!(open_chunk(&c, &s.bytes, s.compressed, s.raw_len).unwrap(), parts.concat());
        }

        #[test]
        fn frame_opens_into_a_buffer(parts in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3000), 1..6), enc in any::<bool>(), level in 0i32..4) {
            let c = if enc { Crypter::new(&MasterKey::generate()) } else { Crypter::None };
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let s = seal_frame(&c, &refs, level);
            let mut out = vec![7u8; s.raw_len as usize];
            open_chunk_into(&c, &s.bytes, s.compressed, &mut out).unwrap();
            prop_assert_eq!(&out, &parts.concat());
            // A buffer of the wrong length is refused, never filled in part.
            let mut short = vec![0u8; out.len().saturating_sub(1)];
            prop_assert!(out.is_empty() || open_chunk_into(&c, &s.bytes, s.compressed, &mut short).is_err());
            let mut long = vec![0u8; out.len() + 1];
            prop_assert!(open_chunk_into(&c, &s.bytes, s.compressed, &mut long).is_err());
        }

        #[test]
        fn object_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), enc in any::<bool>()) {
            let c = if enc { Crypter::new(&MasterKey::generate()) } else { Crypter::None };
            prop_assert_eq!(open_object(&c, &seal_object(&c, &data)).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_in_an_object_is_detected(data in proptest::collection::vec(any::<u8>(), 1..300), pos in any::<usize>(), bit in 0u8..8) {
            let mut sealed = seal_object(&Crypter::None, &data);
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(open_object(&Crypter::None, &sealed).is_err());
        }

        #[test]
        fn damaged_object_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = open_object(&Crypter::None, &data);
            let _ = open_chunk(&Crypter::None, &data, true, 100);
        }
    }

    #[test]
    fn incompressible_stays_raw() {
        let mut data = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        let s = seal_chunk(&Crypter::None, &data, 3);
        assert!(!s.compressed);
        assert_eq!(s.bytes, data);
    }
}
