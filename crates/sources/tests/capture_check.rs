//! The integrity check a capture records: backstop's own page check where it applies, and
//! SQLite's `PRAGMA quick_check`, word for word, where it does not or where the own check
//! found anything.

use std::fs;
use std::path::{Path, PathBuf};

use backstop_format::manifest::DatabaseMeta;
use backstop_format::tree::Content;
use backstop_sources::sqlite::{SqliteSource, native_check};
use backstop_sources::{EntryContent, Source};
use rusqlite::Connection;
use tempfile::TempDir;

fn chinook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/sqlite/chinook.sqlite")
}

/// Captures `path` the way a backup does (stream read to the end, then `complete`).
fn capture(path: &Path) -> DatabaseMeta {
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
    item.database.unwrap()
}

/// What `PRAGMA quick_check` says about the file, as a capture records it: the lines joined,
/// or the error that stopped it.
fn sqlite_quick_check(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    let lines: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect();
    match lines {
        Ok(lines) => lines.join("; "),
        Err(e) => format!("quick_check stopped: {e}"),
    }
}

fn counts(path: &Path) -> Vec<(String, Option<u64>)> {
    let conn = Connection::open(path).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|n| {
            let rows: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{n}\""), [], |r| r.get(0))
                .unwrap();
            (n, Some(rows as u64))
        })
        .collect()
}

fn recorded_counts(meta: &DatabaseMeta) -> Vec<(String, Option<u64>)> {
    let mut v: Vec<_> = meta
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.rows))
        .collect();
    v.sort();
    v
}

#[test]
fn a_sound_database_is_checked_natively_with_exact_row_counts() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("chinook.sqlite");
    fs::copy(chinook(), &db).unwrap();
    assert_eq!(
        native_check(&db).unwrap(),
        Some(vec![]),
        "Chinook is for the native check"
    );
    let meta = capture(&db);
    assert_eq!(meta.quick_check, "ok");
    assert_eq!(recorded_counts(&meta), counts(&db));
}

#[test]
fn a_database_left_to_sqlite_still_gets_its_check_and_counts() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("kv.sqlite");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TABLE log(id INTEGER PRIMARY KEY, msg TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO kv SELECT 'key' || i, randomblob(40) FROM n;
         INSERT INTO log(msg) SELECT k FROM kv;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        native_check(&db).unwrap(),
        None,
        "WITHOUT ROWID is left to SQLite"
    );
    let meta = capture(&db);
    assert_eq!(meta.quick_check, "ok");
    assert_eq!(recorded_counts(&meta), counts(&db));
}

/// The own check finds the damage; the snapshot records SQLite's verdict in SQLite's words.
#[test]
fn damage_is_recorded_in_sqlites_words() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("damaged.sqlite");
    fs::copy(chinook(), &db).unwrap();
    let mut bytes = fs::read(&db).unwrap();
    let page = 1024; // Chinook's pages are 1 KiB
    // The cell count of a b-tree page in the middle of the file, doubled: cells overlap.
    let at = 200 * page;
    assert!(
        matches!(bytes[at], 2 | 5 | 10 | 13),
        "page 201 is a b-tree page"
    );
    let cells = u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]);
    bytes[at + 3..at + 5].copy_from_slice(&(cells * 2).to_be_bytes());
    fs::write(&db, &bytes).unwrap();

    let expected = sqlite_quick_check(&db);
    assert_ne!(expected, "ok", "SQLite notices the damage");
    let found = native_check(&db)
        .unwrap()
        .expect("Chinook is for the native check");
    assert!(!found.is_empty(), "the own check notices it too");
    assert_eq!(capture(&db).quick_check, expected);
}
