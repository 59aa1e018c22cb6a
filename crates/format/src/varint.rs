//! LEB128 unsigned integers and a small cursor for the binary codecs.

use crate::FormatError;

/// Appends `v` as unsigned LEB128.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads binary fields from a byte slice; every read checks bounds so that damaged input is an
/// error, never a panic.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(FormatError::Corrupt("unexpected end of data"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn varint(&mut self) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or(FormatError::Corrupt("varint overflow"))?;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FormatError::Corrupt("varint too long"))
    }

    /// A varint that must fit in u32 (offsets and lengths inside a pack).
    pub fn varint_u32(&mut self) -> Result<u32, FormatError> {
        u32::try_from(self.varint()?).map_err(|_| FormatError::Corrupt("value out of range"))
    }

    /// A count of items that each take at least `min_item_len` bytes; bounded by what is left so
    /// that a damaged count cannot make us allocate gigabytes.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, FormatError> {
        let n = usize::try_from(self.varint()?).map_err(|_| FormatError::Corrupt("bad count"))?;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(min_item_len.max(1)) > left {
            return Err(FormatError::Corrupt("count larger than data"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(vals in proptest::collection::vec(any::<u64>(), 0..50)) {
            let mut out = Vec::new();
            for v in &vals { put(&mut out, *v); }
            let mut r = Reader::new(&out);
            for v in &vals { prop_assert_eq!(r.varint().unwrap(), *v); }
            prop_assert!(r.is_empty());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            while r.varint().is_ok() {}
        }
    }
}
