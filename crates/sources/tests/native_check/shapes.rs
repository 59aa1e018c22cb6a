//! Database shapes: page sizes, auto_vacuum and journal modes, reserved bytes, and the content
//! every shape is built with.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, FileControl};

/// Shapes by name: `p<page size>-<auto_vacuum>-<journal mode>`, then `-r<n>` for n reserved
/// bytes per page and `-odd` for the less common content. A failure prints the name.
pub(crate) const SHAPES: [&str; 9] = [
    "p512-none-delete",
    "p512-incremental-wal-r32",
    "p1024-full-delete",
    "p1024-none-wal",
    "p4096-incremental-delete",
    "p4096-full-wal-r8",
    "p65536-none-delete",
    "p65536-incremental-wal",
    "p4096-none-delete-odd",
];

pub(crate) struct Shape {
    pub(crate) name: &'static str,
    page_size: usize,
    pub(crate) auto_vacuum: &'static str,
    wal: bool,
    reserve: u8,
    pub(crate) odd: bool,
}

impl Shape {
    pub(crate) fn parse(name: &'static str) -> Shape {
        let mut parts = name.split('-');
        let mut next = || parts.next().expect("a shape name has three parts");
        let page_size = next()[1..].parse().expect("p<page size>");
        let (auto_vacuum, wal) = (next(), next() == "wal");
        let mut shape = Shape {
            name,
            page_size,
            auto_vacuum,
            wal,
            reserve: 0,
            odd: false,
        };
        for part in parts {
            match part.strip_prefix('r') {
                Some(n) => shape.reserve = n.parse().expect("r<reserved bytes>"),
                None => shape.odd = part == "odd",
            }
        }
        shape
    }
}

/// Texts, split at `|`, that numeric affinity may or may not turn into numbers: whatever
/// SQLite stored, its quick_check accepts, so the native check must too.
pub(crate) const EDGE_TEXTS: &str = "12abc||  |0x1F|inf|-inf|NaN|1e|1e5| 42 |+7|-0|0.0|1.5e-3|\
    9223372036854775807|9223372036854775808|-9223372036854775809|\
    123456789012345678901234567890|1.0000000000000000001|\u{661}\u{662}|12\0|\t5|5\n|1_000|\
    .5|5.|1e999|-1e-999|00012|3.0|1e+|-|.|e5|1.2.3|1e5x|1 2|-.5|1ee5";

/// Texts no numeric affinity touches, for the fuzz: its databases must pass the native check
/// before they are damaged, whatever that check thinks of the edge texts.
pub(crate) const PLAIN_TEXTS: &str = "abc|12abc||n/a|0x1F";

/// Builds `shape` in `dir`, putting `texts` (split at `|`) into columns of every affinity.
pub(crate) fn build(dir: &Path, shape: &Shape, texts: &str) -> PathBuf {
    let path = dir.join(format!("{}.db", shape.name));
    let conn = Connection::open(&path).unwrap();
    let page_size = format!("PRAGMA page_size = {};", shape.page_size);
    conn.execute_batch(&page_size).unwrap();
    // Before anything writes page 1 (auto_vacuum's pragma does), or the reserve is ignored.
    let mut reserve = std::ffi::c_int::from(shape.reserve);
    let reserve = FileControl::ReserveBytes(&mut reserve);
    conn.file_control(Some("main"), reserve).unwrap();
    let mode = if shape.wal { "wal" } else { "delete" };
    let pragmas = format!(
        "PRAGMA auto_vacuum = {}; PRAGMA journal_mode = {mode}; PRAGMA synchronous = OFF;
         CREATE TEMP TABLE n AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL
             SELECT i + 1 FROM n WHERE i < 1499) SELECT i FROM n;
         CREATE TEMP TABLE edge(k INTEGER PRIMARY KEY, t);",
        shape.auto_vacuum
    );
    conn.execute_batch(&pragmas).unwrap();
    let mut edge = conn.prepare("INSERT INTO edge(t) VALUES (?)").unwrap();
    let count = texts.split('|').map(|t| edge.execute([t]).unwrap()).count();
    drop(edge);
    // `{e<k>}`: the texts in turn, the next one every k rows, so that every column using one
    // gets all of them.
    let sql = if shape.odd {
        ODD_CONTENT
    } else {
        MIXED_CONTENT
    };
    let sql = (1..=5).fold(sql.to_owned(), |sql, k| {
        let text = format!("(SELECT t FROM edge WHERE k = 1 + i / {k} % {count})");
        sql.replace(&format!("{{e{k}}}"), &text)
    });
    let docs = (400_000 / (shape.page_size * 7 / 4)).clamp(4, 250);
    let sql = sql
        .replace("{ps}", &shape.page_size.to_string())
        .replace("{docs}", &docs.to_string());
    conn.execute_batch(&sql).unwrap();
    if shape.wal {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, mode, "{}", shape.name);
    drop(conn);
    let head = fs::read(&path).unwrap();
    assert_eq!(head[20], shape.reserve, "{}: reserved bytes", shape.name);
    path
}

/// Rows of every kind: NULLs, integral REALs (stored as integers), texts, overflowing bodies
/// and blobs (also in an index); then columns added with defaults, so old rows have fewer
/// fields, and deletions, so the freelist has trunk and leaf pages.
const MIXED_CONTENT: &str = "
    CREATE TABLE people(
        id INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, age INTEGER, score REAL,
        balance NUMERIC, photo BLOB, note, email VARCHAR(40) UNIQUE,
        active BOOLEAN NOT NULL DEFAULT 1);
    CREATE INDEX people_age ON people(age);
    CREATE INDEX people_name_age ON people(name, age DESC);
    CREATE INDEX people_rich ON people(balance) WHERE balance > 100;
    CREATE TABLE events(ts INTEGER NOT NULL, kind TEXT, payload BLOB, amount NUMERIC, extra);
    CREATE INDEX events_kind ON events(kind, ts);
    CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, data BLOB);
    CREATE INDEX docs_body ON docs(body);
    CREATE TABLE scratch(x, y TEXT);
    BEGIN;
    INSERT INTO people(name, age, score, balance, photo, note, email, active)
    SELECT 'n' || (i * 7919 % 1000),
        CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN {e5} ELSE i * 37 % 100 END,
        CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN i % 10 * 1.0 WHEN 2 THEN {e4} ELSE i / 7.0 END,
        CASE i % 3 WHEN 0 THEN {e3} WHEN 1 THEN i * 13 % 500 ELSE i * 1.25 END,
        CASE WHEN i % 7 = 0 THEN CAST(printf('%0*d', 10 + i % 290, i) AS BLOB) END,
        CASE i % 4 WHEN 1 THEN i WHEN 2 THEN x'0102030405060708' WHEN 3 THEN 'note' || i END,
        CASE WHEN i % 9 != 0 THEN 'user' || i || '@example.org' END,
        i % 2
    FROM n WHERE i < 400;
    INSERT INTO events(ts, kind, payload, amount, extra)
    SELECT i * 1000, CASE WHEN i % 6 != 0 THEN substr('abcdefgh', 1 + i % 5, 1 + i % 7) END,
        zeroblob(i % 40), CASE i % 3 WHEN 0 THEN {e3} WHEN 2 THEN i * 17 % 1000 - 500 END,
        'x' || i
    FROM n WHERE i < 800;
    INSERT INTO docs(title, body, data)
    SELECT 'doc' || i, i || hex(zeroblob(({ps} / 2 + i * 7919 % ({ps} * 5 / 2)) / 2)),
        CAST(printf('%0*d', {ps} / 4 + i * 104729 % ({ps} * 7 / 4), i) AS BLOB)
    FROM n WHERE i < {docs};
    INSERT INTO scratch(x, y) SELECT CAST(printf('%0150d', i) AS BLOB), i FROM n;
    COMMIT;
    ALTER TABLE events ADD COLUMN region TEXT DEFAULT 'eu';
    ALTER TABLE people ADD COLUMN tag TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE people ADD COLUMN rank INTEGER DEFAULT 7;
    ALTER TABLE people ADD COLUMN flag NOT NULL DEFAULT TRUE;
    ALTER TABLE events ADD COLUMN code INTEGER NOT NULL DEFAULT (CAST(-1 AS TEXT));
    INSERT INTO events(ts, kind, region) VALUES (1, 'late', 'us'), (2, NULL, NULL);
    INSERT INTO people(name, tag, rank) VALUES ('late', 'x', NULL);
    DELETE FROM scratch WHERE rowid % 10 != 0;
    DELETE FROM docs WHERE id % 3 = 0;";

/// Less common but supported: AUTOINCREMENT, expression, NOCASE and DESC indexes, extreme
/// rowids, ANALYZE's stat tables, a view, a trigger, an empty table and index.
const ODD_CONTENT: &str = "
    CREATE TABLE parent(id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT COLLATE NOCASE NOT NULL);
    CREATE UNIQUE INDEX parent_name ON parent(name);
    CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id),
        v DOUBLE, w VARCHAR(5), d DATETIME, s STRING, f FLOATING POINT, c CHARINT);
    CREATE INDEX child_lower ON child(lower(w));
    CREATE INDEX child_nocase ON child(w COLLATE NOCASE DESC, v);
    CREATE TABLE empty(a, b);
    CREATE INDEX empty_a ON empty(a);
    CREATE VIEW child_view AS SELECT id, w FROM child;
    CREATE TRIGGER parent_del AFTER DELETE ON parent BEGIN
        DELETE FROM child WHERE parent_id = old.id; END;
    BEGIN;
    INSERT INTO parent(name) SELECT 'Name' || i FROM n WHERE i < 300;
    INSERT INTO child(parent_id, v, w, d, s, f, c)
    SELECT i % 300 + 1, {e1}, substr('AbCdEf', 1 + i % 6), {e1}, {e1}, {e1}, {e1}
    FROM n WHERE i < 600;
    -- Last: past the largest rowid, SQLite would pick new rowids at random.
    INSERT INTO child(id, parent_id, v) VALUES (-9223372036854775807 - 1, 1, 1), (-1, 2, 2),
        (0, 3, 3), (9223372036854775806, 4, 4), (9223372036854775807, 5, 5);
    COMMIT;
    DELETE FROM parent WHERE id % 10 = 0;
    ANALYZE;";
