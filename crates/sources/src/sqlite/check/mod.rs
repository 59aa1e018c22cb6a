//! backstop's own integrity check of a SQLite database image, run on the pages as the capture
//! streams them, instead of `PRAGMA quick_check` on a second connection.
//!
//! `PRAGMA quick_check` reads the whole database a second time through the pager and walks
//! every row of every table in SQLite's bytecode engine: about 3 CPU-seconds per GiB on one
//! core, more than the rest of a day's incremental backup. The capture already holds every page
//! in memory once, so this module checks them there, at a fraction of the cost. It makes the
//! checks `quick_check` makes (SQLite's `sqlite3BtreeIntegrityCheck` and the row loop of
//! `PRAGMA quick_check` in pragma.c), on the same rules:
//!
//! - each b-tree page: its type, cell count, freeblock chain and free-space total, every cell
//!   inside the cell-content area and the page, cells and freeblocks not overlapping and
//!   covering the page but for the fragment count in the header, record headers of at least
//!   2 bytes, rowids in order against the parent's keys, all leaves at one depth;
//! - overflow chains of the right length; the freelist (trunks, leaf counts, total); the
//!   pointer map of an auto-vacuum database; every page used exactly once (the lock-byte page
//!   and pointer-map pages excepted); each non-partial index as many entries as its table rows;
//! - each row: a sound record header whose sizes add up to the payload, no NULL (nor NaN) in a
//!   NOT NULL column, no number in a TEXT column, no numeric-looking text in a numeric column.
//!
//! It is stricter than `quick_check` where exactness would cost code (a record whose header
//! does not add up is always reported, a value partly in an overflow page counts as suspect, a
//! page of the wrong kind in a b-tree is reported), and it only claims databases whose rules it
//! knows: virtual tables, WITHOUT ROWID
//! and STRICT tables, CHECK constraints, generated columns and text encodings other than UTF-8
//! are left to SQLite (`Plan::read` gives `None`). When it finds anything, the caller runs the
//! real `PRAGMA quick_check`, whose words are recorded: a false alarm costs time, never a wrong
//! verdict. What must never happen is the opposite, and tests/native_check/ corrupts
//! databases at random to show it does not.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use super::{open_read_only, sql_err};
use crate::{Error, ScratchOptions};
use summaries::{Extents, Summaries};

mod page;
mod schema;
mod summaries;
mod walk;

pub(crate) use schema::Plan;

/// Larger databases are left to `PRAGMA quick_check`: the check keeps 5 bytes a page in memory
/// and about 12 more in memory or a scratch file (80 MB in all for 16 GiB of 4 KiB pages).
const MAX_PAGES: u64 = 1 << 22;
/// The b-tree depth SQLite's cursors allow.
const MAX_DEPTH: usize = 20;
/// Problems worth listing: one is enough to hand the verdict to SQLite.
const MAX_PROBLEMS: usize = 10;

/// Page kinds (the b-tree page type byte), and locally broken b-tree pages.
const INDEX_INTERIOR: u8 = 2;
const TABLE_INTERIOR: u8 = 5;
const INDEX_LEAF: u8 = 10;
const TABLE_LEAF: u8 = 13;
const NOT_BTREE: u8 = 0;
const BROKEN: u8 = 0xff;

/// Value classes seen in a record field.
const NULL: u8 = 1;
const INT: u8 = 2;
const REAL: u8 = 4;
const TEXT: u8 = 8;
/// A REAL that is NaN (SQLite reads it as NULL) or lies in an overflow page.
const MAYBE_NAN: u8 = 16;
/// A TEXT that lies partly in an overflow page (so it might read as a number).
const MAYBE_NUMERIC: u8 = 32;

/// Length and class of the values of serial types 0 to 9.
const SERIAL: [(u64, u8); 10] = [
    (0, NULL),
    (1, INT),
    (2, INT),
    (3, INT),
    (4, INT),
    (6, INT),
    (8, INT),
    (8, REAL),
    (0, INT),
    (0, INT),
];

/// Serial types 10 and 11 are reserved.
const RESERVED: u8 = 64;

/// Length and class of the values of the serial types that fit in one byte (0 to 127).
const SMALL_SERIAL: [(u64, u8); 128] = {
    let mut t = [(0, 0); 128];
    let mut i = 0;
    while i < 128 {
        t[i] = if i < 10 {
            SERIAL[i]
        } else if i < 12 {
            (0, RESERVED)
        } else if i % 2 == 1 {
            ((i as u64 - 13) / 2, TEXT)
        } else {
            ((i as u64 - 12) / 2, 0)
        };
        i += 1;
    }
    t
};

/// Pointer-map entry types.
const PTRMAP_ROOTPAGE: u8 = 1;
const PTRMAP_FREEPAGE: u8 = 2;
const PTRMAP_OVERFLOW1: u8 = 3;
const PTRMAP_OVERFLOW2: u8 = 4;
const PTRMAP_BTREE: u8 = 5;

/// A cell as SQLite's `xParseCell` sees it.
struct Cell {
    size: usize,
    payload: u64,
    local: usize,
    /// Offset of the payload in the page.
    payload_at: usize,
    key: i64,
}

/// The rules of one database's pages.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    page_size: usize,
    usable: usize,
    auto_vacuum: bool,
    page_count: u32,
    /// The lock-byte page, if the database reaches it.
    lock_page: u32,
}

/// The check's view of every page, filled in page order as the capture reads them.
///
/// What it keeps per page is what the walk in `walk.rs` needs, as compactly as it reads: a
/// kind byte and where the page's summary lies in one byte stream (`aux`: a length byte, and an
/// offset every 16 pages, see [`Extents`]), about 2.3 bytes per page, and the summary itself in
/// varints (see [`Summary`]): about 12 bytes per page for a typical database, where fixed-width
/// arrays took about 60. Past `check_pages_in_memory` pages the summaries go to a scratch file
/// (`summaries.rs`), so a 10 GiB database keeps about 7 MiB in memory instead of 46.
pub(crate) struct Checker {
    plan: Plan,
    geo: Option<Geometry>,
    page_count: u32,
    /// Page kind, and the local problem of each `BROKEN` page.
    kind: Vec<u8>,
    broken: HashMap<u32, String>,
    /// Where page `p`'s summary (see [`Summary`]) lies in `aux`, in memory or, for a large
    /// database, in a scratch file (see `summaries.rs`).
    at: Extents,
    aux: Summaries,
    /// Scratch: the summary of the current page, as it is encoded.
    record: Vec<u8>,
    /// The summary outgrew what `at` can address: the check gives up (a false alarm).
    too_large: bool,
    /// Distinct field summaries of table leaves (the shortest record's field count, two bytes,
    /// then the value classes per field): leaves of one table mostly share one, so a leaf
    /// stores its number.
    shapes: Vec<Vec<u8>>,
    shape_ids: HashMap<Vec<u8>, u32>,
    ptrmaps: HashMap<u32, Vec<u8>>,
    /// From the database header: the first freelist trunk, the freelist's length, the largest
    /// root page (auto-vacuum) and the incremental-vacuum flag.
    freelist_head: u32,
    freelist_count: u32,
    root_in_header: u32,
    incremental: u32,
    /// Scratch for the current page: children (page, key) of an interior page, right child
    /// last; overflow chains (first page, length) its cells start; value classes per record
    /// field of a table leaf.
    children: Vec<(u32, i64)>,
    overflow: Vec<(u32, u32)>,
    fields: Vec<u8>,
    /// Scratch: spans of cells and freeblocks on the current page.
    spans: Vec<(usize, usize)>,
    /// End of the current page's field summary in `fields` (records reserve room as they go).
    width: usize,
    /// Scratch: a bit per byte of the current page, for the coverage check.
    bits: Vec<u64>,
    /// Scratch: the freeblocks of the current page (in offset order, as the chain must be).
    freeblocks: Vec<(usize, usize)>,
    next: u32,
}

/// What the walk knows of one b-tree page, decoded from its bytes in `Checker::aux`: the cell
/// count (varint); for a table leaf its smallest rowid (zigzag varint), the distance to its
/// largest (varint) and its field summary (varint: twice a number in `Checker::shapes`, or
/// twice the length plus one followed by the bytes); for an interior page its children (the
/// right child first, then each cell's child in page order, each a varint page number, and for
/// a table its key as a zigzag varint, the first whole, then the differences); then the
/// overflow chains (a count, then first page and length as varints). A page that is not a
/// b-tree page (or a broken one) stores only its first four bytes, raw: the next page of an
/// overflow chain or freelist.
#[derive(Default)]
pub(crate) struct Summary<'a> {
    cells: usize,
    keys: (i64, i64),
    /// Shortest record's field count (two bytes, little-endian), then the classes per field.
    shape: Cow<'a, [u8]>,
    children: Vec<(u32, i64)>,
    overflow: Vec<(u32, u32)>,
}

/// Runs the check on the database at `path` in one read transaction, as a capture does.
/// `Ok(None)`: the database uses something the check leaves to SQLite (see the module doc).
/// `Ok(Some(problems))`: empty means it passed.
pub fn native_check(path: &Path) -> Result<Option<Vec<String>>, Error> {
    native_check_with(path, &ScratchOptions::default())
}

/// [`native_check`] with its page summaries kept as `scratch` says (a test runs both ways).
pub fn native_check_with(
    path: &Path,
    scratch: &ScratchOptions,
) -> Result<Option<Vec<String>>, Error> {
    let conn = open_read_only(path)?;
    super::begin_read(&conn, path)?;
    let page_count: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| sql_err(path, "PRAGMA page_count", e))?;
    let page_count = page_count as u64;
    let Some(plan) = Plan::read(&conn, path) else {
        return Ok(None);
    };
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| sql_err(path, "PRAGMA page_size", e))?;
    let mut checker = Checker::new(plan, page_count, scratch);
    super::each_page(&conn, path, page_size as usize, page_count, |pgno, data| {
        checker.page(pgno, data);
        true
    })?;
    let (problems, _) = checker.finish(&conn);
    let _ = conn.execute_batch("COMMIT");
    Ok(Some(problems))
}
