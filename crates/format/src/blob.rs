//! Chunk and object envelopes: zstd compression (skipped where it does not help), then
//! encryption.

use crate::FormatError;
use crate::crypto::Crypter;

/// A chunk as it is stored inside a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChunk {
    pub bytes: Vec<u8>,
    pub compressed: bool,
    pub raw_len: u32,
}

/// Compresses `plain` at `level` if that saves at least 1/32 of its size; otherwise keeps it raw
/// so that incompressible data (already compressed files, encrypted pages) costs no CPU to read.
pub fn compress(plain: &[u8], level: i32) -> Option<Vec<u8>> {
    if plain.len() < 64 || level == 0 {
        return None;
    }
    let out = zstd::bulk::compress(plain, level).ok()?;
    (out.len() < plain.len() - plain.len() / 32).then_some(out)
}

/// Seals one chunk's plaintext for a pack.
pub fn seal_chunk(crypter: &Crypter, plain: &[u8], level: i32) -> SealedChunk {
    let raw_len = u32::try_from(plain.len()).expect("chunks are far smaller than 4 GiB");
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

/// Opens one stored chunk. The caller checks the result against the chunk id.
pub fn open_chunk(
    crypter: &Crypter,
    stored: &[u8],
    compressed: bool,
    raw_len: u32,
) -> Result<Vec<u8>, FormatError> {
    let body = crypter.open(stored)?;
    if !compressed {
        if body.len() != raw_len as usize {
            return Err(FormatError::Corrupt(
                "chunk length differs from its index entry",
            ));
        }
        return Ok(body);
    }
    let out = zstd::bulk::decompress(&body, raw_len as usize)
        .map_err(|_| FormatError::Corrupt("chunk does not decompress"))?;
    if out.len() != raw_len as usize {
        return Err(FormatError::Corrupt(
            "chunk length differs from its index entry",
        ));
    }
    Ok(out)
}

const OBJ_RAW: u8 = 0;
const OBJ_ZSTD: u8 = 1;

/// Encodes a whole object (index, snapshot, record): a one-byte compression flag, the body,
/// then encryption of both.
pub fn seal_object(crypter: &Crypter, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() / 2 + 16);
    match compress(plain, 3) {
        Some(c) => {
            out.push(OBJ_ZSTD);
            out.extend_from_slice(&c);
        }
        None => {
            out.push(OBJ_RAW);
            out.extend_from_slice(plain);
        }
    }
    crypter.seal(out)
}

/// Largest object plaintext we agree to decompress (1 GiB): damage must not exhaust memory.
const MAX_OBJECT: usize = 1 << 30;

/// Decodes an object written by [`seal_object`].
pub fn open_object(crypter: &Crypter, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
    let body = crypter.open(stored)?;
    match body.split_first() {
        Some((&OBJ_RAW, rest)) => Ok(rest.to_vec()),
        Some((&OBJ_ZSTD, rest)) => {
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
        fn object_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), enc in any::<bool>()) {
            let c = if enc { Crypter::new(&MasterKey::generate()) } else { Crypter::None };
            prop_assert_eq!(open_object(&c, &seal_object(&c, &data)).unwrap(), data);
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
