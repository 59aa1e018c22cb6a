//! The checks on each page by itself, as the capture streams it.

use std::borrow::Cow;
use std::collections::HashMap;

use super::*;

/// Reads a big-endian u16 / u32.
pub(super) fn be2(p: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([p[at], p[at + 1]]))
}
pub(super) fn be4(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// A standard SQLite varint at `at`, or `None` if it runs off the page.
#[inline]
pub(super) fn varint(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..8 {
        let b = *p.get(at + i)?;
        v = (v << 7) | u64::from(b & 0x7f);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    Some(((v << 8) | u64::from(*p.get(at + 8)?), 9))
}

/// The payload-size varint as the b-tree layer reads it (at most 9 bytes, 7 bits each, 32
/// bits kept).
fn payload_varint(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut i = at;
    let mut v = u64::from(*p.get(i)?);
    if v >= 0x80 {
        v &= 0x7f;
        loop {
            i += 1;
            let b = *p.get(i)?;
            v = (v << 7) | u64::from(b & 0x7f);
            if b < 0x80 || i >= at + 8 {
                break;
            }
        }
        v &= 0xffff_ffff;
    }
    Some((v, i + 1 - at))
}

impl Geometry {
    fn local_limits(&self, kind: u8) -> (usize, usize) {
        let min = (self.usable - 12) * 32 / 255 - 23;
        if kind == TABLE_LEAF || kind == TABLE_INTERIOR {
            (self.usable - 35, min)
        } else {
            ((self.usable - 12) * 64 / 255 - 23, min)
        }
    }

    pub(super) fn parse_cell(&self, p: &[u8], kind: u8, at: usize) -> Option<Cell> {
        let child = if kind == TABLE_INTERIOR || kind == INDEX_INTERIOR {
            4
        } else {
            0
        };
        if kind == TABLE_INTERIOR {
            let (key, n) = varint(p, at + 4)?;
            return Some(Cell {
                size: 4 + n,
                payload: 0,
                local: 0,
                payload_at: at + 4 + n,
                key: key as i64,
            });
        }
        let (payload, n) = payload_varint(p, at + child)?;
        let mut pos = at + child + n;
        let mut key = payload as i64;
        if kind == TABLE_LEAF {
            let (k, n) = varint(p, pos)?;
            key = k as i64;
            pos += n;
        }
        let (max_local, min_local) = self.local_limits(kind);
        let (local, size) = if payload <= max_local as u64 {
            let local = payload as usize;
            (local, (pos - at + local).max(4))
        } else {
            let surplus =
                min_local as u64 + (payload - min_local as u64) % (self.usable as u64 - 4);
            let local = if surplus <= max_local as u64 {
                surplus as usize
            } else {
                min_local
            };
            (local, pos - at + local + 4)
        };
        Some(Cell {
            size,
            payload,
            local,
            payload_at: pos,
            key,
        })
    }

    /// The pointer-map page holding the entry of page `pgno` (0 for pages 0 and 1).
    pub(super) fn ptrmap_page(&self, pgno: u32) -> u32 {
        if pgno < 2 {
            return 0;
        }
        let per = (self.usable / 5) as u32 + 1;
        let mut at = (pgno - 2) / per * per + 2;
        if at == self.lock_page {
            at += 1;
        }
        at
    }

    pub(super) fn is_ptrmap(&self, pgno: u32) -> bool {
        self.auto_vacuum && self.ptrmap_page(pgno) == pgno
    }
}

impl Checker {
    pub(crate) fn new(plan: Plan, page_count: u64, scratch: &ScratchOptions) -> Self {
        let n = usize::try_from(page_count).unwrap_or(0) + 2;
        let aux = Summaries::new(page_count, scratch);
        let page_count = u32::try_from(page_count).unwrap_or(u32::MAX);
        Self {
            plan,
            geo: None,
            page_count,
            kind: vec![NOT_BTREE; n],
            broken: HashMap::new(),
            at: Extents::new(n),
            aux,
            record: Vec::with_capacity(256),
            too_large: false,
            shapes: Vec::new(),
            shape_ids: HashMap::new(),
            ptrmaps: HashMap::new(),
            freelist_head: 0,
            freelist_count: 0,
            root_in_header: 0,
            incremental: 0,
            children: Vec::with_capacity(1024),
            overflow: Vec::with_capacity(64),
            fields: Vec::with_capacity(256),
            spans: Vec::with_capacity(1024),
            freeblocks: Vec::with_capacity(64),
            bits: Vec::with_capacity(1024),
            width: 0,
            next: 1,
        }
    }

    /// Takes the next page (pages come in order, from 1).
    pub(crate) fn page(&mut self, pgno: u32, p: &[u8]) {
        debug_assert_eq!(pgno, self.next);
        self.next = pgno + 1;
        let i = pgno as usize;
        if i + 1 >= self.kind.len() {
            return; // more pages than counted: `finish` reports it
        }
        if pgno == 1 {
            let page_size = p.len();
            let reserved = usize::from(p[20]);
            let lock = 0x4000_0000 / page_size as u32 + 1;
            self.geo = Some(Geometry {
                page_size,
                usable: page_size.saturating_sub(reserved).max(480),
                auto_vacuum: be4(p, 52) != 0,
                page_count: self.page_count,
                lock_page: lock,
            });
            self.freelist_head = be4(p, 32);
            self.freelist_count = be4(p, 36);
            self.root_in_header = be4(p, 52);
            self.incremental = be4(p, 64);
        }
        let start = self.aux_len();
        let Some(geo) = self.geo else {
            let end = self.aux_len();
            self.at.set(i, start, end);
            return;
        };
        let hdr = if pgno == 1 { 100 } else { 0 };
        let kind = p[hdr];
        if geo.is_ptrmap(pgno) {
            self.ptrmaps.insert(pgno, p.to_vec());
        } else if matches!(
            kind,
            INDEX_INTERIOR | TABLE_INTERIOR | INDEX_LEAF | TABLE_LEAF
        ) {
            self.children.clear();
            self.overflow.clear();
            self.fields.clear();
            match self.parse_page(&geo, pgno, p, hdr, kind) {
                Ok(summary) => {
                    self.kind[i] = kind;
                    self.encode(kind, summary);
                }
                Err(e) => {
                    self.kind[i] = BROKEN;
                    self.broken.insert(pgno, e);
                }
            }
        }
        if !is_btree(self.kind[i]) {
            self.aux.append(&p[..4]);
        }
        let end = self.aux_len();
        self.at.set(i, start, end);
    }

    fn aux_len(&mut self) -> u32 {
        u32::try_from(self.aux.len()).unwrap_or_else(|_| {
            // Past 4 GiB of summaries (never for a database of `MAX_PAGES`): give up, and
            // let SQLite check (a false alarm costs time, not a verdict).
            self.too_large = true;
            self.aux.clear();
            0
        })
    }

    /// Appends the summary of a b-tree page that passed its own checks (see [`Summary`]):
    /// `keys` and the field summary in `fields` of a table leaf, the children and overflow
    /// chains from the scratch vectors.
    fn encode(&mut self, kind: u8, (cells, keys, shortest): (usize, (i64, i64), u16)) {
        let out = &mut self.record;
        out.clear();
        put_varint(out, cells as u64);
        if kind == TABLE_LEAF {
            put_varint(out, zigzag(keys.0));
            put_varint(out, keys.1.wrapping_sub(keys.0) as u64);
            let mut shape = Vec::with_capacity(2 + self.fields.len());
            shape.extend_from_slice(&shortest.to_le_bytes());
            shape.extend_from_slice(&self.fields);
            match self.shape_ids.get(&shape) {
                Some(&id) => put_varint(out, 2 * u64::from(id)),
                None if self.shapes.len() < MAX_SHAPES => {
                    let id = self.shapes.len() as u32;
                    put_varint(out, 2 * u64::from(id));
                    self.shape_ids.insert(shape.clone(), id);
                    self.shapes.push(shape);
                }
                None => {
                    put_varint(out, 2 * shape.len() as u64 + 1);
                    out.extend_from_slice(&shape);
                }
            }
        }
        if let Some((&(right, _), left)) = self.children.split_last() {
            put_varint(out, u64::from(right));
            let mut last = 0i64;
            for &(child, key) in left {
                put_varint(out, u64::from(child));
                if kind == TABLE_INTERIOR {
                    put_varint(out, zigzag(key.wrapping_sub(last)));
                    last = key;
                }
            }
        }
        put_varint(out, self.overflow.len() as u64);
        for &(head, pages) in &self.overflow {
            put_varint(out, u64::from(head));
            put_varint(out, u64::from(pages));
        }
        self.aux.append(&self.record);
    }

    fn record_of(&self, pgno: u32) -> Cow<'_, [u8]> {
        let i = pgno as usize;
        match self.at.get(i) {
            Some((s, e)) if !self.too_large => self.aux.get(u64::from(s), u64::from(e)),
            _ => Cow::Borrowed(&[]),
        }
    }

    /// The first four bytes of a page that is not a b-tree page (the next page of an overflow
    /// chain or freelist). A b-tree page's are its header, read as a page number far past any
    /// database of `MAX_PAGES`: `u32::MAX` stands for them (out of range all the same).
    pub(super) fn first4(&self, pgno: u32) -> u32 {
        if is_btree(self.kind.get(pgno as usize).copied().unwrap_or(NOT_BTREE)) {
            return u32::MAX;
        }
        self.record_of(pgno)
            .get(..4)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    /// The summary of b-tree page `pgno`, of kind `kind` (see [`Summary`]).
    pub(super) fn summary(&self, pgno: u32, kind: u8) -> Summary<'_> {
        let record = self.record_of(pgno);
        let r: &[u8] = &record;
        let mut at = 0;
        let mut next = || {
            let (v, n) = get_varint(r, at).unwrap_or((0, r.len() - at.min(r.len())));
            at += n.max(1);
            v
        };
        let mut s = Summary {
            cells: next() as usize,
            ..Summary::default()
        };
        if kind == TABLE_LEAF {
            let lo = unzigzag(next());
            s.keys = (lo, lo.wrapping_add(next() as i64));
            let tag = next();
            s.shape = if tag.is_multiple_of(2) {
                Cow::Borrowed(
                    self.shapes
                        .get((tag / 2) as usize)
                        .map_or(&[][..], Vec::as_slice),
                )
            } else {
                let len = (tag / 2) as usize;
                let shape = r.get(at..at + len).unwrap_or(&[]).to_vec();
                at += len;
                Cow::Owned(shape)
            };
        }
        let mut next = || {
            let (v, n) = get_varint(r, at).unwrap_or((0, r.len() - at.min(r.len())));
            at += n.max(1);
            v
        };
        if kind == TABLE_INTERIOR || kind == INDEX_INTERIOR {
            let right = next() as u32;
            s.children.reserve_exact(s.cells + 1);
            let mut key = 0i64;
            for _ in 0..s.cells {
                let child = next() as u32;
                if kind == TABLE_INTERIOR {
                    key = key.wrapping_add(unzigzag(next()));
                }
                s.children.push((child, key));
            }
            s.children.push((right, i64::MAX));
        }
        let n = next() as usize;
        s.overflow = (0..n).map(|_| (next() as u32, next() as u32)).collect();
        s
    }

    /// The checks SQLite makes on one b-tree page by itself (btreeInitPage,
    /// btreeComputeFreeSpace and the per-cell part of checkTreePage), and the record checks.
    fn parse_page(
        &mut self,
        geo: &Geometry,
        pgno: u32,
        p: &[u8],
        hdr: usize,
        kind: u8,
    ) -> Result<(usize, (i64, i64), u16), String> {
        let _ = pgno;
        let leaf = kind >= INDEX_LEAF;
        let child_size = if leaf { 0 } else { 4 };
        let usable = geo.usable;
        let n = be2(p, hdr + 3);
        if n > (geo.page_size - 8) / 6 {
            return Err(format!("{n} cells"));
        }
        // btreeComputeFreeSpace
        let top = match be2(p, hdr + 5) {
            0 => 65536,
            t => t,
        };
        let first = hdr + 8 + child_size + 2 * n;
        let last = usable - 4;
        let mut free = usize::from(p[hdr + 7]) + top;
        let mut fb = be2(p, hdr + 1);
        self.spans.clear();
        self.freeblocks.clear();
        if fb > 0 {
            if fb < top {
                return Err("freeblock before the cell content area".into());
            }
            loop {
                if fb > last {
                    return Err("freeblock off the end of the page".into());
                }
                let (next, size) = (be2(p, fb), be2(p, fb + 2));
                if size < 4 {
                    return Err("freeblock smaller than 4 bytes".into());
                }
                free += size;
                self.freeblocks.push((fb, fb + size - 1));
                if next < fb + size + 4 {
                    if next > 0 {
                        return Err("freeblocks out of order".into());
                    }
                    if fb + size > usable {
                        return Err("freeblock past the end of the page".into());
                    }
                    break;
                }
                fb = next;
            }
        }
        if free > usable || free < first {
            return Err("free space out of bounds".into());
        }
        // The cells, last to first as SQLite checks them.
        let mut key_max = i64::MAX;
        let mut key_min = i64::MAX;
        let mut fields_min = u16::MAX;
        let base = 0;
        self.width = base;
        let cell_start = hdr + 8 + child_size;
        let right = if leaf { 0 } else { be4(p, hdr + 8) };
        let children_from = self.children.len();
        for c in (0..n).rev() {
            let pc = be2(p, cell_start + 2 * c);
            if pc < top || pc > usable - 4 {
                return Err(format!("cell {c} offset {pc} out of range"));
            }
            let cell = geo
                .parse_cell(p, kind, pc)
                .ok_or_else(|| format!("cell {c} runs off the page"))?;
            if pc + cell.size > usable {
                return Err(format!("cell {c} extends off the end of the page"));
            }
            if cell.payload > 0 && p[cell.payload_at] < 2 {
                return Err(format!("cell {c}: bad record header size"));
            }
            if kind == TABLE_LEAF || kind == TABLE_INTERIOR {
                if c + 1 < n && cell.key >= key_min {
                    return Err(format!("cell {c}: rowid {} out of order", cell.key));
                }
                if c + 1 == n {
                    key_max = cell.key;
                }
                key_min = cell.key;
            }
            if cell.payload > cell.local as u64 {
                let pages =
                    (cell.payload - cell.local as u64 + usable as u64 - 5) / (usable as u64 - 4);
                let head = be4(p, pc + cell.size - 4);
                self.overflow
                    .push((head, u32::try_from(pages).unwrap_or(u32::MAX)));
            }
            if !leaf {
                self.children.push((be4(p, pc), cell.key));
            }
            if kind == TABLE_LEAF {
                let count = self
                    .record(p, &cell, base)
                    .map_err(|e| format!("cell {c}: {e}"))?;
                fields_min = fields_min.min(count);
            }
            self.spans.push((pc, pc + cell.size - 1));
        }
        if !leaf {
            // Children were pushed last to first: put them in page order, right child last.
            self.children[children_from..].reverse();
            self.children.push((right, i64::MAX));
        }
        // Coverage: cells and freeblocks must not overlap, and the bytes between them must add
        // up to the fragment count in the header. Every span lies in top..usable (checked
        // above). Cells written in key order lie in order already: one pass finds an overlap;
        // otherwise a bitmap of the content area does, without sorting.
        let mut used = 0;
        if self.freeblocks.is_empty() && self.spans.is_sorted() {
            let mut free_from = top;
            for &(s, e) in &self.spans {
                if s < free_from {
                    return Err(format!("multiple uses for byte {s}"));
                }
                used += e + 1 - s;
                free_from = e + 1;
            }
        } else {
            self.bits.clear();
            self.bits.resize(usable.div_ceil(64), 0);
            for &(s, e) in self.spans.iter().chain(&self.freeblocks) {
                if mark(&mut self.bits, s, e) {
                    return Err(format!("multiple uses for byte {s}"));
                }
                used += e + 1 - s;
            }
        }
        let frag = usable - top - used;
        if frag != usize::from(p[hdr + 7]) {
            return Err(format!(
                "fragmentation of {frag} bytes reported as {}",
                p[hdr + 7]
            ));
        }
        if kind == TABLE_LEAF {
            self.fields.truncate(self.width);
        }
        let shortest = if n == 0 { 0 } else { fields_min };
        Ok((n, (key_min, key_max), shortest))
    }

    /// Checks a table row's record header against its payload and notes the classes of its
    /// values in the page's field summary (from `base`). Returns the number of fields.
    fn record(&mut self, p: &[u8], cell: &Cell, base: usize) -> Result<u16, String> {
        let rec = &p[cell.payload_at..cell.payload_at + cell.local];
        let (header, n) = varint(rec, 0).ok_or("record header in an overflow page")?;
        if header > 98307 || header > cell.payload || header as usize > rec.len() {
            return Err("record header too large".into());
        }
        let hdr = &rec[..header as usize];
        // At most one field per header byte: make room once instead of per field.
        if self.fields.len() < base + hdr.len() {
            self.fields.resize(base + hdr.len(), 0);
        }
        let fields = &mut self.fields[base..base + hdr.len()];
        let mut at = n;
        let mut body = header;
        let mut field = 0;
        let mut seen = 0;
        while at < hdr.len() {
            let b = hdr[at];
            let (len, class) = if b < 0x80 {
                at += 1;
                SMALL_SERIAL[usize::from(b)]
            } else {
                let (t, k) = varint(hdr, at).ok_or("record header cut short")?;
                at += k;
                // A small type may be written in more bytes than it needs.
                match usize::try_from(t) {
                    Ok(t) if t < SMALL_SERIAL.len() => SMALL_SERIAL[t],
                    _ => ((t - 12) / 2, if t & 1 == 1 { TEXT } else { 0 }),
                }
            };
            let mut class = class;
            if class & (REAL | TEXT) != 0 {
                // A value partly in an overflow page is suspect; the texts in the page are
                // looked at only where a numeric column holds one (`Walk::numeric_texts`):
                // that is rare, and reading every text is not.
                let value = usize::try_from(body)
                    .ok()
                    .zip(usize::try_from(body.saturating_add(len)).ok())
                    .and_then(|(s, e)| rec.get(s..e));
                if class == REAL {
                    let nan = value
                        .and_then(|v| <[u8; 8]>::try_from(v).ok())
                        .is_none_or(|v| f64::from_be_bytes(v).is_nan());
                    if nan {
                        class |= MAYBE_NAN;
                    }
                } else if value.is_none() {
                    class |= MAYBE_NUMERIC;
                }
            }
            seen |= class;
            body = body.saturating_add(len);
            fields[field] |= class;
            field += 1;
        }
        if seen & RESERVED != 0 {
            return Err("reserved serial type 10 or 11".into());
        }
        if at != hdr.len() || body != cell.payload {
            return Err("record sizes do not add up to the payload".into());
        }
        self.width = self.width.max(base + field);
        Ok(u16::try_from(field).unwrap_or(u16::MAX))
    }
}

/// Distinct field summaries kept; past that, a leaf stores its own.
const MAX_SHAPES: usize = 1 << 16;

fn is_btree(kind: u8) -> bool {
    matches!(
        kind,
        INDEX_INTERIOR | TABLE_INTERIOR | INDEX_LEAF | TABLE_LEAF
    )
}

/// LEB128, for the summaries (not SQLite's varint).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in p.get(at..)?.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Marks bytes `s..=e` in `bits`; true if any was marked before.
fn mark(bits: &mut [u64], s: usize, e: usize) -> bool {
    let (first, last) = (s / 64, e / 64);
    let mut overlap = false;
    for (w, word) in bits[first..=last].iter_mut().enumerate() {
        let lo = if w == 0 { s % 64 } else { 0 };
        let hi = if w == last - first { e % 64 } else { 63 };
        let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
        overlap |= *word & mask != 0;
        *word |= mask;
    }
    overlap
}

/// Would SQLite's numeric affinity turn `text` into a number? Mirrors `sqlite3AtoF`: the text
/// up to a NUL, spaces around it, then `[+-]`, digits with an optional fraction (at least one
/// digit in all) and an optional exponent with digits.
pub(super) fn maybe_numeric(text: &[u8]) -> bool {
    let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let digits = |t: &[u8], i: usize| t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = text.iter().take_while(|b| space(b)).count();
    if matches!(text.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let whole = digits(text, i);
    i += whole;
    let mut fraction = 0;
    if text.get(i) == Some(&b'.') {
        fraction = digits(text, i + 1);
        i += 1 + fraction;
    }
    if whole + fraction == 0 {
        return false;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits(text, i);
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    text[i..].iter().all(space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> Checker {
        let plan = Plan {
            tables: Vec::new(),
            trees: Vec::new(),
        };
        Checker::new(plan, 1, &ScratchOptions::default())
    }

    fn record(bytes: &[u8]) -> Result<(u16, u8), String> {
        let cell = Cell {
            size: bytes.len(),
            payload: bytes.len() as u64,
            local: bytes.len(),
            payload_at: 0,
            key: 1,
        };
        let mut c = checker();
        let n = c.record(bytes, &cell, 0)?;
        Ok((n, c.fields[0]))
    }

    #[test]
    fn serial_types_written_in_more_bytes_than_needed_are_read_alike() {
        // Header of 3 bytes: its size, then serial type 1 (an 8-bit integer) as 0x80 0x01.
        assert_eq!(record(&[3, 0x80, 0x01, 42]), Ok((1, INT)));
        assert_eq!(record(&[2, 0x01, 42]), Ok((1, INT)));
        // Serial type 10 is reserved, however it is written.
        assert!(record(&[3, 0x80, 0x0a]).is_err());
        // The sizes must add up to the payload.
        assert!(record(&[2, 0x01, 42, 43]).is_err());
    }

    #[test]
    fn numbers_as_sqlite_reads_them() {
        for yes in ["1", " -2.5e3 ", "+.5", "7.", "1e-7", "12\0abc", "\t3\n"] {
            assert!(maybe_numeric(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "", " ", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "- 1", "0x10", "abc", "12a",
        ] {
            assert!(!maybe_numeric(no.as_bytes()), "{no:?}");
        }
    }
}
