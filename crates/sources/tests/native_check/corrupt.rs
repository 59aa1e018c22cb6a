//! The corruption fuzz's seeded PRNG, the page geometry it aims at, and its corruption modes.

// ---------------------------------------------------------------------------------------------
// Randomness

/// xorshift64*: small, seeded, and the same everywhere, so a failing seed reproduces.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // splitmix64 spreads nearby seeds apart and never leaves the state zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..hi` (`lo < hi`).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn nonzero_byte(&mut self) -> u8 {
        (self.below(255) + 1) as u8
    }
}

// ---------------------------------------------------------------------------------------------
// Page geometry, enough to aim corruption at b-tree headers, cells and page pointers

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// SQLite's varint: the value and its length, if it fits before `end`.
fn varint(b: &[u8], at: usize, end: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(at + i).filter(|_| at + i < end)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

struct BtreePage {
    page: usize,
    /// Absolute offset of the b-tree page header.
    header: usize,
    /// 2, 5, 10 or 13: index interior, table interior, index leaf, table leaf.
    kind: u8,
    /// Absolute offsets of the cells, in cell-pointer order.
    cells: Vec<usize>,
}

impl BtreePage {
    fn interior(&self) -> bool {
        self.kind < 10
    }

    /// Absolute offset of the cell pointer array.
    fn pointer_array(&self) -> usize {
        self.header + if self.interior() { 12 } else { 8 }
    }
}

/// What the corruptions aim at, found once per shape in the pristine image.
pub(crate) struct Targets {
    pub(crate) page_size: usize,
    usable: usize,
    pages: usize,
    btree: Vec<BtreePage>,
    /// Absolute offsets of 4-byte page numbers: child, overflow, freelist, pointer-map parent.
    pointers: Vec<usize>,
}

impl Targets {
    pub(crate) fn of(b: &[u8]) -> Targets {
        let page_size = match be16(b, 16) {
            1 => 65536,
            n => n,
        };
        let mut t = Targets {
            page_size,
            usable: page_size - usize::from(b[20]),
            pages: b.len() / page_size,
            btree: Vec::new(),
            pointers: Vec::new(),
        };
        t.btree = (1..=t.pages)
            .filter_map(|page| t.btree_page(b, page))
            .collect();
        t.pointers = t.find_pointers(b);
        t
    }

    fn start(&self, page: usize) -> usize {
        (page - 1) * self.page_size
    }

    fn end(&self, page: usize) -> usize {
        self.start(page) + self.usable
    }

    fn btree_page(&self, b: &[u8], page: usize) -> Option<BtreePage> {
        let header = self.start(page) + if page == 1 { 100 } else { 0 };
        let mut bp = BtreePage {
            page,
            header,
            kind: b[header],
            cells: Vec::new(),
        };
        if !matches!(bp.kind, 2 | 5 | 10 | 13) {
            return None;
        }
        let array = bp.pointer_array();
        bp.cells = (0..be16(b, header + 3))
            .map(|i| array + 2 * i)
            .take_while(|&p| p + 2 <= self.end(page))
            .map(|p| self.start(page) + be16(b, p))
            .filter(|&c| c >= array && c < self.end(page))
            .collect();
        Some(bp)
    }

    /// Where a cell keeps the number of its first overflow page, if it overflows.
    fn overflow_slot(&self, b: &[u8], cell: usize, kind: u8, end: usize) -> Option<usize> {
        let mut p = cell + if kind == 2 { 4 } else { 0 };
        let (payload, n) = varint(b, p, end)?;
        p += n;
        if kind == 13 {
            p += varint(b, p, end)?.1;
        }
        let u = self.usable as u64;
        let max_local = if kind == 13 {
            u - 35
        } else {
            (u - 12) * 64 / 255 - 23
        };
        if payload <= max_local {
            return None;
        }
        let min_local = (u - 12) * 32 / 255 - 23;
        let k = min_local + (payload - min_local) % (u - 4);
        let slot = p + if k <= max_local { k } else { min_local } as usize;
        (slot + 4 <= end).then_some(slot)
    }

    fn find_pointers(&self, b: &[u8]) -> Vec<usize> {
        let valid = |n: usize| (2..=self.pages).contains(&n);
        let mut slots = vec![32];
        for bp in &self.btree {
            let end = self.end(bp.page);
            if bp.interior() {
                slots.push(bp.header + 8);
                slots.extend(bp.cells.iter().copied().filter(|&c| c + 4 <= end));
            }
            for &cell in bp.cells.iter().filter(|_| bp.kind != 5) {
                let Some(slot) = self.overflow_slot(b, cell, bp.kind, end) else {
                    continue;
                };
                slots.push(slot);
                // Each overflow page starts with the next one's number (0 on the last).
                let mut next = be32(b, slot);
                for _ in 0..64 {
                    if !valid(next) {
                        break;
                    }
                    slots.push(self.start(next));
                    next = be32(b, self.start(next));
                }
            }
        }
        let mut trunk = be32(b, 32);
        for _ in 0..self.pages {
            if !valid(trunk) {
                break;
            }
            let s = self.start(trunk);
            slots.push(s);
            let leaves = be32(b, s + 4).min(self.usable / 4 - 2);
            slots.extend((0..leaves).map(|i| s + 8 + 4 * i));
            trunk = be32(b, s);
        }
        if be32(b, 52) != 0 {
            let per_map = self.usable / 5;
            for map in (2..=self.pages).step_by(per_map + 1) {
                let s = self.start(map);
                let entries = (0..per_map).filter(|j| (1..=5).contains(&b[s + 5 * j]));
                slots.extend(entries.map(|j| s + 5 * j + 1));
            }
        }
        slots
    }
}

// ---------------------------------------------------------------------------------------------
// Corruption

/// Corrupts `b` one way picked by `rng`, and says how: the kind of corruption and where (the
/// changed bytes are listed apart).
pub(crate) fn corrupt(b: &mut [u8], t: &Targets, rng: &mut Rng) -> (&'static str, String) {
    let with_cells: Vec<&BtreePage> = t.btree.iter().filter(|p| !p.cells.is_empty()).collect();
    match rng.below(100) {
        0..13 => {}
        13..26 if !t.btree.is_empty() => {
            let bp = rng.pick(&t.btree);
            let at = rng.range(bp.header, bp.pointer_array() + 2 * bp.cells.len());
            b[at] ^= rng.nonzero_byte();
            return ("b-tree header", format!("page {}", bp.page));
        }
        26..38 if !with_cells.is_empty() => {
            let bp = rng.pick(&with_cells);
            let cell = *rng.pick(&bp.cells);
            let next = bp.cells.iter().copied().filter(|&c| c > cell).min();
            b[rng.range(cell, next.unwrap_or(t.end(bp.page)))] ^= rng.nonzero_byte();
            return (
                "cell",
                format!("cell at {cell}, page {} (kind {})", bp.page, bp.kind),
            );
        }
        38..50 => {
            if let Some(what) = corrupt_record_header(b, t, rng) {
                return ("record header", what);
            }
        }
        50..56 => {
            // Two cells change places: every cell stays whole, only the key order breaks.
            let multi: Vec<&&BtreePage> = with_cells.iter().filter(|p| p.cells.len() > 1).collect();
            if !multi.is_empty() {
                let bp = rng.pick(&multi);
                let i = rng.below(bp.cells.len() - 1);
                let at = bp.pointer_array() + 2 * i;
                let (x, y) = (be16(b, at), be16(b, at + 2));
                b[at..at + 4].copy_from_slice(&[(y >> 8) as u8, y as u8, (x >> 8) as u8, x as u8]);
                return (
                    "cell order",
                    format!("cells {i} and {} of page {}", i + 1, bp.page),
                );
            }
        }
        56..66 => {
            let field = *rng.pick(&[28, 32, 36, 52, 64]);
            if rng.below(2) == 0 {
                let v = rng.below(t.pages + 3) as u32;
                b[field..field + 4].copy_from_slice(&v.to_be_bytes());
                return ("page 1 field", format!("field {field} set to {v}"));
            }
            b[field + rng.below(4)] ^= rng.nonzero_byte();
            return ("page 1 field", format!("field {field} flipped"));
        }
        66..86 if !t.pointers.is_empty() => {
            let slot = *rng.pick(&t.pointers);
            let old = be32(b, slot);
            let mut new = rng.range(1, t.pages + 1);
            if new == old {
                new = new % t.pages + 1;
            }
            b[slot..slot + 4].copy_from_slice(&(new as u32).to_be_bytes());
            return ("page pointer", format!("at {slot}: {old} -> {new}"));
        }
        86.. if t.pages > 2 => {
            let x = rng.range(2, t.pages + 1);
            let y = (x - 2 + rng.range(1, t.pages - 1)) % (t.pages - 1) + 2;
            let (lo, hi) = (x.min(y), x.max(y));
            let (head, tail) = b.split_at_mut(t.start(hi));
            head[t.start(lo)..t.start(lo + 1)].swap_with_slice(&mut tail[..t.page_size]);
            return ("page swap", format!("pages {lo} and {hi}"));
        }
        _ => {}
    }
    let page = rng.range(1, t.pages + 1);
    for _ in 0..rng.range(1, 5) {
        b[t.start(page) + rng.below(t.page_size)] ^= rng.nonzero_byte();
    }
    ("random bytes", format!("page {page}"))
}

/// Overwrites a serial type (or the header size) in the record of a table row.
fn corrupt_record_header(b: &mut [u8], t: &Targets, rng: &mut Rng) -> Option<String> {
    let leaves: Vec<&BtreePage> = t
        .btree
        .iter()
        .filter(|p| p.kind == 13 && !p.cells.is_empty())
        .collect();
    if leaves.is_empty() {
        return None;
    }
    let bp = rng.pick(&leaves);
    let cell = *rng.pick(&bp.cells);
    let end = t.end(bp.page);
    let (_, n1) = varint(b, cell, end)?;
    let (_, n2) = varint(b, cell + n1, end)?;
    let record = cell + n1 + n2;
    let (size, _) = varint(b, record, end)?;
    let at = record + rng.below((size as usize).clamp(1, end.saturating_sub(record).max(1)));
    let new = *rng.pick(&[
        0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 19, 24, 33, 0x81,
    ]);
    if at >= end || b[at] == new {
        return None;
    }
    b[at] = new;
    Some(format!("cell at {cell}, page {}", bp.page))
}
