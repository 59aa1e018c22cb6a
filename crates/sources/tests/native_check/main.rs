//! backstop's native page-level check (`backstop_sources::sqlite::native_check`) against
//! SQLite's own `PRAGMA quick_check`. Pristine databases of many shapes pass; shapes the native
//! check leaves to SQLite say so; and nothing SQLite finds wrong ever passes the native check: a
//! false negative would let a damaged database into a backup unflagged, while a false positive
//! only costs the time of a real quick_check.
//!
//! Randomness comes from a seeded xorshift generator, so every failure prints what reproduces
//! it. `NATIVE_CHECK_SEED`, `NATIVE_CHECK_ITERATIONS` (per shape), `NATIVE_CHECK_SHAPE` and
//! `NATIVE_CHECK_ITERATION` narrow a run down to one case; `NATIVE_CHECK_KEEP` names a
//! directory where the database of every false negative is saved.

mod corrupt;
mod schema_edits;
mod shapes;
mod tally;
mod verdict;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use rusqlite::Connection;
use tempfile::TempDir;

use corrupt::{Rng, Targets, corrupt};
use schema_edits::{DECLARED, EDGE_EDITS, STORED, cases, redeclared, required_violations, retype};
use shapes::{EDGE_TEXTS, PLAIN_TEXTS, SHAPES, Shape, build};
use tally::{Tally, changes_geometry, describe_bytes, remove_side_files};
use verdict::{Native, Sqlite, native_verdict, short, sqlite_verdict};

const DEFAULT_SEED: u64 = 0xBAC4_5709_5EED_0001;
const DEFAULT_ITERATIONS: u64 = 80;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.trim().parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Pristine and unsupported shapes

#[test]
fn pristine_shapes_pass() {
    let dir = TempDir::new().unwrap();
    let mut failures = Vec::new();
    for shape in SHAPES.map(Shape::parse) {
        let path = build(dir.path(), &shape, EDGE_TEXTS);
        let conn = Connection::open(&path).unwrap();
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        if !shape.odd && shape.auto_vacuum != "full" {
            assert!(free > 1, "{}: a freelist of {free} pages", shape.name);
        }
        assert_eq!(
            sqlite_verdict(&path),
            Sqlite::Ok,
            "{}: SQLite's quick_check",
            shape.name
        );
        let native = native_verdict(&path);
        let size = fs::metadata(&path).unwrap().len();
        println!(
            "{}: {size} bytes, {free} free pages, native {native:?}",
            shape.name
        );
        if !matches!(native, Native::Passed) {
            failures.push(format!("{}: native check says {native:?}", shape.name));
        }
    }
    // Which texts of EDGE_TEXTS a failure is about, redeclared_columns_agree_with_quick_check
    // prints: it stores each under every declared type.
    assert!(failures.is_empty(), "pristine shapes: {failures:#?}");
}

/// One shape a line: its name, then what makes it a database the native check leaves to SQLite.
const UNSUPPORTED: &str = "\
    without-rowid: CREATE TABLE u(a PRIMARY KEY, b) WITHOUT ROWID; INSERT INTO u VALUES (1, 2);
    strict: CREATE TABLE u(a INTEGER, b TEXT) STRICT; INSERT INTO u VALUES (1, 'x');
    column-check: CREATE TABLE u(a INTEGER CHECK (a > 0)); INSERT INTO u VALUES (1);
    table-check: CREATE TABLE u(a, b, CHECK (a < b)); INSERT INTO u VALUES (1, 2);
    generated-virtual: CREATE TABLE u(a, b AS (a * 2)); INSERT INTO u(a) VALUES (1);
    generated-stored: CREATE TABLE u(a, b AS (a * 2) STORED); INSERT INTO u(a) VALUES (1);
    fts5: CREATE VIRTUAL TABLE u USING fts5(body); INSERT INTO u VALUES ('hello world');
    rtree: CREATE VIRTUAL TABLE u USING rtree(id, x0, x1); INSERT INTO u VALUES (1, 0, 1);
    utf16le: PRAGMA encoding = 'UTF-16le'; CREATE TABLE u(a TEXT); INSERT INTO u VALUES ('x');
    utf16be: PRAGMA encoding = 'UTF-16be'; CREATE TABLE u(a TEXT); INSERT INTO u VALUES ('x');";

#[test]
fn unsupported_shapes_are_left_to_sqlite() {
    let dir = TempDir::new().unwrap();
    let mut failures = Vec::new();
    for line in UNSUPPORTED.lines() {
        let (name, sql) = line.trim().split_once(": ").expect("name: sql");
        let path = dir.path().join(format!("{name}.db"));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        conn.execute_batch("CREATE TABLE plain(a NOT NULL); INSERT INTO plain VALUES (1);")
            .unwrap();
        drop(conn);
        assert_eq!(
            sqlite_verdict(&path),
            Sqlite::Ok,
            "{name}: SQLite's quick_check"
        );
        let native = native_verdict(&path);
        if !matches!(native, Native::LeftToSqlite) {
            failures.push(format!("{name}: native check says {native:?}, not None"));
        }
    }
    assert!(failures.is_empty(), "unsupported shapes: {failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// The corruption fuzz

#[test]
fn corruption_never_passes_the_native_check() {
    let seed = env_u64("NATIVE_CHECK_SEED").unwrap_or(DEFAULT_SEED);
    let per_shape = env_u64("NATIVE_CHECK_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS);
    let only_shape = std::env::var("NATIVE_CHECK_SHAPE").ok();
    let only_iteration = env_u64("NATIVE_CHECK_ITERATION");
    let keep = std::env::var_os("NATIVE_CHECK_KEEP").map(PathBuf::from);
    let dir = TempDir::new().unwrap();
    let copy = dir.path().join("fuzz.db");
    let mut tally = Tally::default();
    let started = Instant::now();
    for (si, shape) in SHAPES.map(Shape::parse).iter().enumerate() {
        if only_shape.as_deref().is_some_and(|s| s != shape.name) {
            continue;
        }
        let path = build(dir.path(), shape, PLAIN_TEXTS);
        // A damaged copy of a database the check already flags would prove nothing.
        let baseline = native_verdict(&path);
        assert!(
            matches!(baseline, Native::Passed),
            "{}: undamaged: {baseline:?}",
            shape.name
        );
        let base = fs::read(&path).unwrap();
        let targets = Targets::of(&base);
        for it in (0..per_shape).filter(|&it| only_iteration.is_none_or(|o| o == it)) {
            let mut rng = Rng::new(seed ^ ((si as u64) << 40) ^ it);
            let mut bytes = base.clone();
            let (mode, detail) = corrupt(&mut bytes, &targets, &mut rng);
            if bytes == base {
                continue;
            }
            if (0..100).any(|i| bytes[i] != base[i] && changes_geometry(i)) {
                tally.skipped_header += 1;
                continue;
            }
            remove_side_files(&copy);
            fs::write(&copy, &bytes).unwrap();
            let sqlite = match sqlite_verdict(&copy) {
                Sqlite::Unreadable(_) => {
                    tally.skipped_unreadable += 1;
                    continue;
                }
                Sqlite::Ok => None,
                Sqlite::NotOk(msg) => Some(msg),
            };
            let case = format!(
                "NATIVE_CHECK_SEED={seed:#x} NATIVE_CHECK_SHAPE={} NATIVE_CHECK_ITERATION={it}: \
                 {mode} ({detail}); bytes {}",
                shape.name,
                describe_bytes(&base, &bytes, targets.page_size)
            );
            if tally.record(mode, case, sqlite, native_verdict(&copy))
                && let Some(keep) = &keep
            {
                fs::create_dir_all(keep).unwrap();
                fs::write(
                    keep.join(format!("{}-{seed:x}-{it}.db", shape.name)),
                    &bytes,
                )
                .unwrap();
            }
        }
        remove_side_files(&copy);
    }
    tally.print(seed, per_shape, started);
    assert!(
        tally.false_negatives.is_empty(),
        "native check passed what SQLite's quick_check rejects:\n{}",
        tally.false_negatives.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Logical violations: rows stored under one schema, checked under another

#[test]
fn logical_violations_are_flagged() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("violation.db");
    let mut failures = Vec::new();
    for (what, setup, edit) in required_violations() {
        redeclared(&path, &setup, &edit);
        let sqlite = sqlite_verdict(&path);
        let native = native_verdict(&path);
        println!("{what}: SQLite {sqlite:?}, native {native:?}");
        assert!(
            matches!(sqlite, Sqlite::NotOk(_)),
            "{what}: SQLite's quick_check says {sqlite:?}"
        );
        if !matches!(native, Native::Flagged(_)) {
            failures.push(format!("{what}: native check says {native:?}"));
        }
    }
    assert!(failures.is_empty(), "violations not flagged: {failures:#?}");
}

#[test]
fn redeclared_columns_agree_with_quick_check() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("redeclared.db");
    let mut all = cases(EDGE_EDITS);
    let edges = all.len();
    for ty in DECLARED.split("; ") {
        for value in STORED.split("; ") {
            all.push((
                format!("{value} under {ty:?}"),
                format!("CREATE TABLE t(a); INSERT INTO t VALUES ({value});"),
                retype(&format!("CREATE TABLE t(a {ty})")),
            ));
        }
    }
    let started = Instant::now();
    let (mut sqlite_not_ok, mut false_negatives, mut others) = (0, Vec::new(), Vec::new());
    // Values the native check flags though SQLite accepts them, with the types they were under.
    let mut false_positives: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, (what, setup, edit)) in all.iter().enumerate() {
        redeclared(&path, setup, edit);
        let sqlite = sqlite_verdict(&path);
        let native = native_verdict(&path);
        sqlite_not_ok += usize::from(matches!(sqlite, Sqlite::NotOk(_)));
        if n < edges {
            println!(
                "{what}: SQLite {sqlite:?}, native {}",
                short(&format!("{native:?}"))
            );
        }
        match (&sqlite, &native) {
            (Sqlite::Unreadable(e), _) => {
                others.push(format!("{what}: SQLite cannot read it: {e}"))
            }
            (Sqlite::NotOk(msg), Native::Passed | Native::Panicked) => {
                false_negatives.push(format!("{what}: SQLite says {msg}, native {native:?}"));
            }
            (Sqlite::Ok, Native::Panicked) => {
                false_negatives.push(format!("{what}: native panicked"))
            }
            (Sqlite::Ok, Native::Flagged(_)) => match what.split_once(" under ") {
                Some((value, ty)) if n >= edges => {
                    false_positives
                        .entry(value.into())
                        .or_default()
                        .push(ty.into());
                }
                _ => others.push(format!("{what}: SQLite ok, native {native:?}")),
            },
            (Sqlite::Ok, Native::LeftToSqlite | Native::Failed(_)) => {
                others.push(format!("{what}: SQLite ok, native {native:?}"));
            }
            _ => {}
        }
    }
    println!(
        "{} redeclarations in {:.1?}: {sqlite_not_ok} SQLite not ok",
        all.len(),
        started.elapsed()
    );
    for (value, types) in &false_positives {
        println!(
            "false positive: {value} under {} types: {}",
            types.len(),
            types.join(", ")
        );
    }
    for other in &others {
        println!("{other}");
    }
    assert!(
        false_negatives.is_empty(),
        "native check passed what SQLite's quick_check rejects: {false_negatives:#?}"
    );
}

/// SQLite reads a stored NaN as NULL, so quick_check reports one in a NOT NULL column. No SQL
/// statement stores a NaN: the test writes one over a REAL's eight bytes in the file.
#[test]
fn nan_in_a_not_null_column_is_flagged() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nan.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(a REAL NOT NULL, b REAL); INSERT INTO t VALUES (1234.5, 8765.25);",
    )
    .unwrap();
    drop(conn);
    let pristine = fs::read(&path).unwrap();
    for (column, value) in [("a", 1234.5f64), ("b", 8765.25)] {
        let mut bytes = pristine.clone();
        let at = bytes
            .windows(8)
            .position(|w| w == value.to_be_bytes())
            .expect("the REAL's bytes");
        bytes[at..at + 8].copy_from_slice(&f64::NAN.to_be_bytes());
        fs::write(&path, &bytes).unwrap();
        let (sqlite, native) = (sqlite_verdict(&path), native_verdict(&path));
        println!("NaN in t.{column}: SQLite {sqlite:?}, native {native:?}");
        if column == "a" {
            assert!(
                matches!(sqlite, Sqlite::NotOk(_)),
                "SQLite's quick_check says {sqlite:?}"
            );
            assert!(
                matches!(native, Native::Flagged(_)),
                "native check says {native:?}"
            );
        } else {
            assert_eq!(sqlite, Sqlite::Ok);
        }
    }
}
