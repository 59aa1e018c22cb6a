//! The walk over the b-trees, the freelist and the pointer map, once every page was seen.

use std::collections::HashMap;

use rusqlite::Connection;

use super::page::{be2, be4, maybe_numeric, varint};
use super::schema::{Affinity, Tree};
use super::*;

impl Checker {
    /// Walks every b-tree from its root, the freelist and the pointer map, and accounts for
    /// every page. Returns the problems found (empty if none) and each table's row count.
    pub(crate) fn finish(mut self, conn: &Connection) -> (Vec<String>, HashMap<String, u64>) {
        let Some(geo) = self.geo else {
            return (vec!["no pages were read".into()], HashMap::new());
        };
        let scratch_failed = self.aux.finish_writing();
        let mut walk = Walk {
            c: &self,
            geo,
            referenced: vec![0; self.kind.len().div_ceil(64)],
            problems: Vec::new(),
            errors: 0,
            depth: 0,
            texts: Vec::new(),
        };
        if self.too_large {
            walk.problem("the check's page summaries outgrew 4 GiB".into());
        }
        if let Some(e) = scratch_failed {
            walk.problem(e);
        }
        if self.next != self.page_count.wrapping_add(1) {
            walk.problem(format!(
                "{} pages read, {} expected",
                self.next - 1,
                self.page_count
            ));
        }
        if geo.lock_page <= geo.page_count {
            walk.mark(geo.lock_page);
        }
        walk.freelist(conn);
        let max_root = self.plan.trees.iter().map(|t| t.root).max().unwrap_or(1);
        if geo.auto_vacuum {
            if max_root != self.root_in_header {
                walk.problem(format!(
                    "max rootpage ({max_root}) disagrees with header ({})",
                    self.root_in_header
                ));
            }
        } else if self.incremental != 0 {
            walk.problem("incremental_vacuum enabled with a max rootpage of zero".into());
        }
        let mut rows = vec![0u64; self.plan.trees.len()];
        for (t, tree) in self.plan.trees.iter().enumerate() {
            if geo.auto_vacuum && tree.root > 1 {
                walk.ptrmap(tree.root, PTRMAP_ROOTPAGE, 0);
            }
            walk.tree_page(tree, tree.root, i64::MAX, true, &mut rows[t]);
        }
        for p in 1..=geo.page_count {
            let used = walk.is_referenced(p);
            let map = geo.is_ptrmap(p);
            if !used && !map {
                walk.problem(format!("page {p}: never used"));
            } else if used && map {
                walk.problem(format!("page {p}: pointer map referenced"));
            }
        }
        walk.numeric_texts(conn);
        if let Some(e) = self.aux.read_failure() {
            walk.problem(e);
        }
        let mut problems = walk.problems;
        let mut table_rows = vec![None; self.plan.tables.len()];
        for (t, tree) in self.plan.trees.iter().enumerate() {
            if !tree.index {
                table_rows[tree.table] = Some(rows[t]);
            }
        }
        for (t, tree) in self.plan.trees.iter().enumerate() {
            if tree.index && !tree.partial && Some(rows[t]) != table_rows[tree.table] {
                problems.push(format!(
                    "wrong # of entries in an index of {}",
                    self.plan.tables[tree.table].name
                ));
            }
        }
        problems.truncate(MAX_PROBLEMS);
        let counts = self
            .plan
            .tables
            .iter()
            .zip(table_rows)
            .skip(1)
            .filter_map(|(t, rows)| Some((t.name.clone(), rows?)))
            .collect();
        (problems, counts)
    }
}

/// Does a record on table leaf `p` hold, in one of `fields`, a text that might read as a
/// number? (True also if the page cannot be read as it was when first checked.)
fn numeric_text(geo: &Geometry, p: &[u8], pgno: u32, fields: &[usize]) -> bool {
    let hdr = if pgno == 1 { 100 } else { 0 };
    if p.len() != geo.page_size || p[hdr] != TABLE_LEAF || hdr + 8 + 2 * be2(p, hdr + 3) > p.len() {
        return true;
    }
    for c in 0..be2(p, hdr + 3) {
        let Some(cell) = geo.parse_cell(p, TABLE_LEAF, be2(p, hdr + 8 + 2 * c)) else {
            return true;
        };
        let Some(rec) = p.get(cell.payload_at..cell.payload_at + cell.local) else {
            return true;
        };
        let Some((header, n)) = varint(rec, 0) else {
            return true;
        };
        let (mut at, mut body, mut field) = (n, header, 0);
        while (at as u64) < header {
            let Some((t, k)) = varint(rec, at) else {
                return true;
            };
            at += k;
            let len = match t {
                0..=9 => SERIAL[t as usize].0,
                t => (t.max(12) - 12) / 2,
            };
            if t >= 13 && t & 1 == 1 && fields.contains(&field) {
                let text = usize::try_from(body)
                    .ok()
                    .zip(usize::try_from(body.saturating_add(len)).ok())
                    .and_then(|(s, e)| rec.get(s..e));
                if text.is_none_or(maybe_numeric) {
                    return true;
                }
            }
            body = body.saturating_add(len);
            field += 1;
        }
    }
    false
}

/// The walk over the b-trees (SQLite's checkTreePage and checkList), on the page summaries.
struct Walk<'a> {
    c: &'a Checker,
    geo: Geometry,
    /// A bit per page: used once already.
    referenced: Vec<u64>,
    problems: Vec<String>,
    errors: usize,
    depth: usize,
    /// Table leaves with a text in a numeric column: (page, table, field).
    texts: Vec<(u32, usize, usize)>,
}

impl Walk<'_> {
    fn problem(&mut self, what: String) {
        self.errors += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(what);
        }
    }

    /// Marks page `p` used; true if it was before.
    fn mark(&mut self, p: u32) -> bool {
        let (w, bit) = (p as usize / 64, 1u64 << (p % 64));
        let before = self.referenced[w] & bit != 0;
        self.referenced[w] |= bit;
        before
    }

    fn is_referenced(&self, p: u32) -> bool {
        self.referenced[p as usize / 64] & (1u64 << (p % 64)) != 0
    }

    /// Marks a page used; true (with a problem) if it is out of range or was used before.
    fn check_ref(&mut self, p: u32) -> bool {
        if p == 0 || p > self.c.page_count {
            self.problem(format!("invalid page number {p}"));
            return true;
        }
        if self.mark(p) {
            self.problem(format!("2nd reference to page {p}"));
            return true;
        }
        false
    }

    /// The pointer-map entry of `child` must say (`kind`, `parent`).
    fn ptrmap(&mut self, child: u32, kind: u8, parent: u32) {
        let map = self.geo.ptrmap_page(child);
        let entry = (map != 0 && child > map)
            .then(|| self.c.ptrmaps.get(&map))
            .flatten()
            .and_then(|page| {
                let at = 5 * (child - map - 1) as usize;
                Some((*page.get(at)?, be4(page.get(at..at + 5)?, 1)))
            });
        match entry {
            Some((k, p)) if (1..=5).contains(&k) => {
                if (k, p) != (kind, parent) {
                    self.problem(format!(
                        "bad ptr map entry key={child} expected=({kind},{parent}) got=({k},{p})"
                    ));
                }
            }
            _ => self.problem(format!("failed to read ptrmap key={child}")),
        }
    }

    /// The freelist: trunk pages (read again from the capture's transaction), their leaves,
    /// and the total in the header.
    fn freelist(&mut self, conn: &Connection) {
        let expected = i64::from(self.c.freelist_count);
        let mut left = expected;
        let errors = self.errors;
        let mut page = self.c.freelist_head;
        while page != 0 {
            if self.check_ref(page) {
                break;
            }
            left -= 1;
            let data: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT data FROM sqlite_dbpage WHERE pgno = ?1",
                    [page],
                    |r| r.get(0),
                )
                .ok()
                .filter(|d: &Vec<u8>| d.len() == self.geo.page_size);
            let Some(data) = data else {
                self.problem(format!("failed to get page {page}"));
                break;
            };
            if self.geo.auto_vacuum {
                self.ptrmap(page, PTRMAP_FREEPAGE, 0);
            }
            let n = be4(&data, 4);
            if n as usize > self.geo.usable / 4 - 2 {
                self.problem(format!("freelist leaf count too big on page {page}"));
                left -= 1;
            } else {
                for k in 0..n as usize {
                    let leaf = be4(&data, 8 + 4 * k);
                    if self.geo.auto_vacuum {
                        self.ptrmap(leaf, PTRMAP_FREEPAGE, 0);
                    }
                    self.check_ref(leaf);
                }
                left -= i64::from(n);
            }
            page = be4(&data, 0);
        }
        if left != 0 && self.errors == errors {
            self.problem(format!(
                "freelist size is {} but should be {expected}",
                expected - left
            ));
        }
    }

    /// An overflow chain of `expected` pages from `page`.
    fn overflow_chain(&mut self, mut page: u32, expected: u32) {
        let mut left = i64::from(expected);
        let errors = self.errors;
        while page != 0 {
            if self.check_ref(page) {
                break;
            }
            left -= 1;
            let next = self.c.first4(page);
            if self.geo.auto_vacuum && left != 0 {
                self.ptrmap(next, PTRMAP_OVERFLOW2, page);
            }
            page = next;
        }
        if left != 0 && self.errors == errors {
            self.problem(format!(
                "overflow list length is {} but should be {expected}",
                i64::from(expected) - left
            ));
        }
    }

    /// SQLite's checkTreePage: the depth of the subtree at `pgno` (leaves 0; 0 also when the
    /// page cannot be checked), and its smallest rowid (`None` leaves the caller's bound).
    fn tree_page(
        &mut self,
        tree: &Tree,
        pgno: u32,
        max_key: i64,
        root: bool,
        rows: &mut u64,
    ) -> (i32, Option<i64>) {
        if pgno == 0 || self.check_ref(pgno) {
            return (0, None);
        }
        let c = self.c;
        let i = pgno as usize;
        let kind = c.kind[i];
        let summary = if matches!(
            kind,
            INDEX_INTERIOR | TABLE_INTERIOR | INDEX_LEAF | TABLE_LEAF
        ) {
            c.summary(pgno, kind)
        } else {
            Summary::default()
        };
        let cells = summary.cells;
        let wrong = if kind == BROKEN {
            Some(c.broken.get(&pgno).cloned().unwrap_or_default())
        } else if kind == NOT_BTREE {
            Some("not a b-tree page".into())
        } else if tree.index != matches!(kind, INDEX_INTERIOR | INDEX_LEAF) {
            Some("a page of the wrong kind of b-tree".into())
        } else if !root && cells == 0 {
            Some("an empty page below the root".into())
        } else if self.depth >= MAX_DEPTH {
            Some(format!("b-tree depth exceeds {MAX_DEPTH}"))
        } else {
            None
        };
        if let Some(w) = wrong {
            self.problem(format!("tree {} page {pgno}: {w}", tree.root));
            return (0, None);
        }
        self.depth += 1;
        let leaf = kind >= INDEX_LEAF;
        let intkey = kind == TABLE_LEAF || kind == TABLE_INTERIOR;
        if leaf || !intkey {
            *rows += cells as u64;
        }
        let mut depth = -1;
        let mut min = max_key;
        if leaf {
            if intkey && cells > 0 {
                let (lo, hi) = summary.keys;
                if hi > max_key {
                    self.problem(format!(
                        "tree {} page {pgno}: rowid {hi} out of order",
                        tree.root
                    ));
                }
                min = lo;
            }
            if !tree.index && kind == TABLE_LEAF {
                self.values(tree.table, pgno, cells, &summary.shape);
            }
        } else {
            let children = &summary.children;
            let Some((&(right, _), left)) = children.split_last() else {
                self.depth -= 1;
                return (0, None);
            };
            if self.geo.auto_vacuum {
                self.ptrmap(right, PTRMAP_BTREE, pgno);
            }
            let (d, m) = self.tree_page(tree, right, min, false, rows);
            depth = d;
            min = m.unwrap_or(min);
            for &(child, key) in left.iter().rev() {
                if intkey {
                    if key >= min {
                        self.problem(format!(
                            "tree {} page {pgno}: rowid {key} out of order",
                            tree.root
                        ));
                    }
                    min = key;
                }
                if self.geo.auto_vacuum {
                    self.ptrmap(child, PTRMAP_BTREE, pgno);
                }
                let (d2, m2) = self.tree_page(tree, child, min, false, rows);
                if d2 != depth {
                    self.problem(format!(
                        "tree {} page {pgno}: child page depth differs",
                        tree.root
                    ));
                    depth = d2;
                }
                min = m2.unwrap_or(min);
            }
        }
        for &(head, pages) in &summary.overflow {
            if self.geo.auto_vacuum {
                self.ptrmap(head, PTRMAP_OVERFLOW1, pgno);
            }
            self.overflow_chain(head, pages);
        }
        self.depth -= 1;
        (depth + 1, Some(min))
    }

    /// A text in a numeric column must not read as a number: reads the pages that hold such
    /// texts again (from the capture's transaction) and looks at each.
    fn numeric_texts(&mut self, conn: &Connection) {
        let texts = std::mem::take(&mut self.texts);
        for group in texts.chunk_by(|a, b| a.0 == b.0) {
            let pgno = group[0].0;
            let page: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT data FROM sqlite_dbpage WHERE pgno = ?1",
                    [pgno],
                    |r| r.get(0),
                )
                .ok();
            let fields: Vec<usize> = group.iter().map(|t| t.2).collect();
            let found = page.map(|p| numeric_text(&self.geo, &p, pgno, &fields));
            if found != Some(false) {
                let t = &self.c.plan.tables[group[0].1];
                self.problem(format!(
                    "page {pgno}: a numeric column of {} holds a number as text",
                    t.name
                ));
            }
        }
    }

    /// The row checks of `PRAGMA quick_check` on one table leaf, from its field summary.
    fn values(&mut self, table: usize, pgno: u32, cells: usize, shape: &[u8]) {
        let c = self.c;
        if cells == 0 {
            return;
        }
        let shortest = shape
            .get(..2)
            .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
        let fields = shape.get(2..).unwrap_or(&[]);
        let t = &c.plan.tables[table];
        for (j, col) in t.columns.iter().enumerate() {
            if col.rowid {
                continue;
            }
            let class = fields.get(j).copied().unwrap_or(0);
            let bad = (col.not_null
                && (class & (NULL | MAYBE_NAN) != 0 || (j >= shortest && col.null_default)))
                || (col.affinity == Affinity::Text && class & (INT | REAL) != 0)
                || (col.affinity == Affinity::Numeric && class & MAYBE_NUMERIC != 0);
            if !bad && col.affinity == Affinity::Numeric && class & TEXT != 0 {
                self.texts.push((pgno, table, j));
            }
            if bad {
                self.problem(format!(
                    "page {pgno}: a value in {}.{} breaks the column's type or NOT NULL",
                    t.name, col.name
                ));
            }
        }
    }
}
