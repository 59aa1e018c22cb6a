//! Databases with parts only their application defines (issue 12, item 2): an FTS5 table with a
//! custom tokenizer, a virtual table of an unknown module, an index on a custom collation. The
//! capture records those tables as not checkable and checks every other table; a restored image
//! passes its checks (also a snapshot recorded before backstop knew these limits); real damage
//! next to such a table is still a failed check.
//!
//! The databases are made the way the application's own connection leaves them: the schema
//! names a tokenizer or collation that this process does not register (written through
//! `PRAGMA writable_schema`, as SQLite's documentation search database has them).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use backstop_format::manifest::{DatabaseMeta, NotCheckable};
use backstop_format::record::NOT_CHECKABLE;
use backstop_format::tree::Content;
use backstop_sources::sqlite::{SqliteSource, check_image};
use backstop_sources::{EntryContent, Source};
use rusqlite::Connection;
use tempfile::TempDir;

/// What the `sqlite3` shell's `PRAGMA quick_check` prints (stdout and stderr).
fn shell_quick_check(path: &Path) -> String {
    let o = Command::new("sqlite3")
        .arg("-batch")
        .arg(path)
        .arg("PRAGMA quick_check")
        .stdin(Stdio::null())
        .output()
        .expect("running sqlite3 (apt-get install -y sqlite3)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// Captures `path` as a backup does; returns the metadata and the image.
fn capture(path: &Path) -> (DatabaseMeta, Vec<u8>) {
    let mut src = SqliteSource::new(path.to_path_buf(), "db.sqlite".into()).unwrap();
    let entry = src.next_entry().unwrap().unwrap();
    let mut item = entry.item;
    let Some(EntryContent::Captured {
        mut buffers,
        capture,
    }) = entry.content
    else {
        panic!("a database entry is captured");
    };
    let mut image = Vec::new();
    while let Some(b) = buffers.next_buffer(None).unwrap() {
        image.extend_from_slice(&b);
    }
    drop(buffers);
    item.content = Some(Content {
        size: image.len() as u64,
        hash: blake3::hash(&image).to_hex().to_string(),
        chunks: vec![],
        tree: None,
        delta: None,
    });
    capture.complete(&mut item, None).unwrap();
    src.finish().unwrap();
    (item.database.unwrap(), image)
}

/// A database with an ordinary table `docs` (with an index), an FTS5 table `search` whose
/// tokenizer `stoken` only the application registers, a virtual table `v` of a module nobody
/// here has, and an R-Tree `r` (which this build can check).
fn make_search_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
         CREATE INDEX docs_title ON docs(title);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
           INSERT INTO docs(title, body) SELECT 'page ' || i, hex(randomblob(200)) FROM n;
         CREATE VIRTUAL TABLE search USING fts5(title, body);
         INSERT INTO search SELECT title, body FROM docs;
         CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx);
         INSERT INTO r VALUES (1, 0, 10), (2, 5, 6);
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema
            SET sql = 'CREATE VIRTUAL TABLE search USING fts5(title, body, tokenize=''stoken'')'
          WHERE name = 'search';
         INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql)
           VALUES ('table', 'v', 'v', 0, 'CREATE VIRTUAL TABLE v USING nosuchmodule(a, b)');
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
}

fn reason<'a>(n: &'a [NotCheckable], table: &str) -> Option<&'a str> {
    n.iter()
        .find(|n| n.table == table)
        .map(|n| n.reason.as_str())
}

#[test]
fn an_fts5_table_with_an_app_tokenizer_is_not_checkable_and_the_rest_is_checked() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("search.db");
    make_search_db(&path);
    assert_eq!(shell_quick_check(&path), "ok", "sqlite3 calls it healthy");
    {
        // What made every restore fail: SQLite stops the whole check.
        let c = Connection::open(&path).unwrap();
        let stopped = c
            .prepare("PRAGMA quick_check")
            .and_then(|mut st| st.query([])?.next().map(|_| ()));
        assert!(stopped.is_err(), "{stopped:?}");
    }

    let (meta, image) = capture(&path);
    assert!(image == fs::read(&path).unwrap(), "the image is the file");
    assert_eq!(meta.quick_check, "ok", "{meta:#?}");
    assert_eq!(
        reason(&meta.not_checkable, "search"),
        Some("no such tokenizer: stoken")
    );
    assert_eq!(
        reason(&meta.not_checkable, "v"),
        Some("no such module: nosuchmodule")
    );
    assert_eq!(meta.not_checkable.len(), 2, "{:?}", meta.not_checkable);
    let rows = |t: &str| meta.tables.iter().find(|x| x.name == t).unwrap().rows;
    assert_eq!(rows("docs"), Some(300));
    assert_eq!(rows("search_content"), Some(300));
    // The R-Tree's module is built in: checked, so not listed above; its node table counted.
    assert_eq!(rows("r_rowid"), Some(2));
    assert_eq!(rows("search"), None);

    // The restored image passes a restore's checks and a drill's, naming what was not checked.
    let restored = tmp.path().join("restored.db");
    fs::write(&restored, &image).unwrap();
    for (full, fk) in [(false, false), (true, true)] {
        let checks = check_image(&restored, &meta, full, fk).unwrap();
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        let limits = checks.iter().find(|c| c.name == NOT_CHECKABLE).unwrap();
        assert!(
            limits.detail.contains("search (no such tokenizer: stoken)"),
            "{limits:?}"
        );
    }
}

#[test]
fn a_snapshot_that_recorded_the_stopped_check_still_restores() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("search.db");
    make_search_db(&path);
    let (mut meta, image) = capture(&path);
    // As backstop recorded it before it knew the limits of its check.
    meta.quick_check = "quick_check stopped: SQL logic error".into();
    meta.not_checkable.clear();
    let restored = tmp.path().join("restored.db");
    fs::write(&restored, &image).unwrap();
    let checks = check_image(&restored, &meta, false, false).unwrap();
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    let qc = checks.iter().find(|c| c.name == "quick_check").unwrap();
    assert!(qc.detail.starts_with("ok (at capture: "), "{qc:?}");
    assert!(checks.iter().any(|c| c.name == NOT_CHECKABLE));
}

#[test]
fn an_index_on_an_app_collation_is_not_checkable() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("coll.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE plain(id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO plain(v) VALUES ('a'), ('b');
             CREATE TABLE names(id INTEGER PRIMARY KEY, n TEXT COLLATE nocase);
             CREATE INDEX names_n ON names(n);
             INSERT INTO names(n) VALUES ('b'), ('A'), ('c');
             CREATE TABLE codes(k TEXT PRIMARY KEY COLLATE nocase);
             CREATE TABLE uses(id INTEGER PRIMARY KEY, k TEXT REFERENCES codes(k));
             INSERT INTO codes VALUES ('x'), ('y');
             INSERT INTO uses(k) VALUES ('x'), ('y');
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'nocase', 'mycoll')
              WHERE tbl_name IN ('names', 'codes');
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    // sqlite3 itself cannot check it either: its check stops on the missing collation.
    assert!(
        shell_quick_check(&path).contains("no such collation sequence: mycoll"),
        "{}",
        shell_quick_check(&path)
    );
    let (meta, image) = capture(&path);
    // backstop's own page check covers this database whole (it needs no collation).
    assert_eq!(meta.quick_check, "ok", "{meta:#?}");
    let restored = tmp.path().join("restored.db");
    fs::write(&restored, &image).unwrap();
    // A drill's integrity_check needs the collation: the table is not checkable, the rest is.
    let checks = check_image(&restored, &meta, true, true).unwrap();
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    let limits = checks.iter().find(|c| c.name == NOT_CHECKABLE).unwrap();
    assert!(
        limits
            .detail
            .contains("names (no such collation sequence: mycoll)"),
        "{limits:?}"
    );
    assert!(
        limits
            .detail
            .contains("codes (no such collation sequence: mycoll)"),
        "{limits:?}"
    );
    // The foreign key into `codes` needs its collation too.
    assert!(limits.detail.contains("(foreign keys) ("), "{limits:?}");
    assert!(!limits.detail.contains("plain"), "{limits:?}");
}

/// Overwrites the b-tree page header of the root page of `table` with nonsense.
fn damage_table(path: &Path, table: &str) {
    let (root, page_size): (i64, i64) = {
        let c = Connection::open(path).unwrap();
        (
            c.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap(),
            c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap(),
        )
    };
    let mut bytes = fs::read(path).unwrap();
    let at = ((root - 1) * page_size) as usize;
    // Page type 13 (table leaf) stays; the cell count and content offset become nonsense.
    bytes[at + 3..at + 8].copy_from_slice(&[0xff, 0xf0, 0x00, 0x07, 0x00]);
    fs::write(path, &bytes).unwrap();
}

#[test]
fn damage_beside_a_not_checkable_table_is_still_a_failed_check() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("search.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE small(id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO small(v) VALUES ('x'), ('y');",
        )
        .unwrap();
    }
    make_search_db(&path);
    damage_table(&path, "small");
    assert_ne!(shell_quick_check(&path), "ok", "sqlite3 sees the damage");
    let (meta, _) = capture(&path);
    assert_ne!(meta.quick_check, "ok", "{meta:#?}");
    assert!(!meta.is_healthy());
    assert_eq!(
        reason(&meta.not_checkable, "search"),
        Some("no such tokenizer: stoken")
    );
}
