//! SQLite restores that must never strand data (issue 12):
//!
//! - a database with tables only its application can read (an FTS5 table with a custom
//!   tokenizer, a virtual table of an unknown module) backs up with those tables listed as not
//!   checkable, restores byte for byte with `--to` and `--in-place`, and drills as passed with
//!   limits;
//! - a really damaged image is refused unless `--force`, which leaves a record in the repository;
//! - a live database that cannot be opened (truncated, zeroed header, stale `-wal`/`-shm`) is
//!   kept as files in a `pre-restore` snapshot and replaced, with `--in-place` and with
//!   `--to LIVE --overwrite`.
//!
//! Databases are made with the `sqlite3` command-line tool.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The `database` metadata of a snapshot's one item.
fn database_meta(sb: &Sandbox, spec: &str) -> Value {
    let show = sb.json(&["show", spec]);
    show["item_list"][0]["database"].clone()
}

fn check_names(checks: &Value) -> Vec<String> {
    checks
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn all_passed(checks: &Value) {
    for c in checks.as_array().expect("checks") {
        assert_eq!(c["passed"], true, "{checks:#}");
    }
}

/// A database like SQLite's documentation search database: an ordinary table, an FTS5 table
/// whose tokenizer `stoken` only the application registers, a virtual table of a module no one
/// here has, and an R-Tree.
fn make_search_db(db: &Path) {
    sql(
        db,
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
           INSERT INTO docs(title, body) SELECT 'page ' || i, hex(randomblob(300)) FROM n;
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
    );
}

/// Equal databases, but for the counters in the header that SQLite bumps when it writes: the
/// change counter, version-valid-for and the SQLite version that wrote (bytes 24..28, 92..100)
/// on every commit, and the schema cookie (40..44), which the backup API increments so that
/// open connections reload the schema.
#[track_caller]
fn assert_same_pages(a: &[u8], b: &[u8]) {
    assert_eq!(a.len(), b.len());
    let mask = |x: &[u8]| {
        let mut x = x.to_vec();
        x[24..28].fill(0);
        x[40..44].fill(0);
        x[92..100].fill(0);
        x
    };
    let (a, b) = (mask(a), mask(b));
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).take(20).collect();
    assert!(differ.is_empty(), "the pages differ at bytes {differ:?}");
}

#[test]
fn a_database_with_an_app_tokenizer_backs_up_restores_and_drills_with_limits() {
    let sb = Sandbox::plain();
    let db = sb.p("docs.db");
    make_search_db(&db);
    assert_eq!(
        sql(&db, "PRAGMA quick_check"),
        "ok",
        "sqlite3 calls it healthy"
    );
    let original = fs::read(&db).unwrap();
    let snap = sb.backup(&[&db], &[]);
    let id = snap["id"].as_str().unwrap().to_string();

    let meta = database_meta(&sb, &id);
    assert_eq!(meta["quick_check"], "ok", "{meta:#}");
    let nc = meta["not_checkable"].as_array().expect("not_checkable");
    let reason = |t: &str| {
        nc.iter()
            .find(|n| n["table"] == t)
            .map(|n| n["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(
        reason("search").as_deref(),
        Some("no such tokenizer: stoken")
    );
    assert_eq!(reason("v").as_deref(), Some("no such module: nosuchmodule"));
    assert_eq!(nc.len(), 2, "{nc:#?}");
    let show = sb.run(&["show", &id]).ok();
    assert!(
        show.stdout
            .contains("not checkable (only the application defines what they need): search (no such tokenizer: stoken)"),
        "{}",
        show.stdout
    );

    // To a new file: byte for byte, checks passed, the limits said.
    let new = sb.p("new.db");
    let o = sb
        .run(&["restore", &id, "--to", new.to_str().unwrap()])
        .ok();
    assert!(
        o.stdout
            .contains("--   not checkable: search (no such tokenizer: stoken)"),
        "{}",
        o.stdout
    );
    assert!(
        fs::read(&new).unwrap() == original,
        "restored byte for byte"
    );

    // In place, after a bad delete: every row back, the pages as captured.
    sql(&db, "DELETE FROM docs WHERE id > 10");
    let r = sb.json(&["restore", &id, "--in-place", "--yes"]);
    all_passed(&r["checks"]);
    assert!(check_names(&r["checks"]).contains(&"not checkable".to_string()));
    assert!(r["safety_snapshot"].is_string(), "{r:#}");
    assert_eq!(sql(&db, "SELECT count(*) FROM docs"), "500");
    assert_eq!(sql(&db, "PRAGMA quick_check"), "ok");
    assert_same_pages(&fs::read(&db).unwrap(), &original);

    // A drill passes with limits and says what it could not check.
    let d = sb.run(&["verify", "--restore-test", &id]).ok();
    assert!(d.stdout.contains("PASSED with limits"), "{}", d.stdout);
    assert!(
        d.stdout.contains("search (no such tokenizer: stoken)"),
        "{}",
        d.stdout
    );
    let mut c = sb.cmd();
    c.args(["--json", "verify", "--restore-test", &id]);
    let rec = &run(c).ok().json()[0];
    assert_eq!(rec["passed"], true, "{rec:#}");
    all_passed(&rec["checks"]);
    let names = check_names(&rec["checks"]);
    for n in [
        "image hash",
        "integrity_check",
        "foreign_key_check",
        "not checkable",
    ] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let show = sb.run(&["show", &id]).ok();
    assert!(
        show.stdout.contains("restore drill passed with limits"),
        "{}",
        show.stdout
    );
}

/// Overwrites the cell count and content offset of the root page of `table` with nonsense.
fn damage_table(db: &Path, table: &str) {
    let root: usize = sql(
        db,
        &format!("SELECT rootpage FROM sqlite_schema WHERE name = '{table}'"),
    )
    .parse()
    .unwrap();
    let page_size: usize = sql(db, "PRAGMA page_size").parse().unwrap();
    let mut bytes = fs::read(db).unwrap();
    let at = (root - 1) * page_size;
    bytes[at + 3..at + 8].copy_from_slice(&[0xff, 0xf0, 0x00, 0x07, 0x00]);
    fs::write(db, &bytes).unwrap();
}

#[test]
fn a_damaged_image_is_refused_unless_forced_and_the_force_is_recorded() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    sql(
        &db,
        "CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO a(v) VALUES ('x'), ('y');
         INSERT INTO b(v) VALUES ('z');",
    );
    damage_table(&db, "a");
    let qc = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA quick_check")
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&qc.stdout).trim(),
        "ok",
        "sqlite3 sees the damage"
    );
    let id = sb.backup(&[&db], &[])["id"].as_str().unwrap().to_string();
    assert_ne!(database_meta(&sb, &id)["quick_check"], "ok");

    // The live database now differs; a restore of the damaged image is refused: exit 4,
    // nothing replaced, the remedy named.
    sql(&db, "INSERT INTO b(v) VALUES ('after')");
    let live = fs::read(&db).unwrap();
    let snapshots = sb.snapshots().len();
    let o = sb.run(&["restore", &id, "--in-place", "--yes"]).code(4);
    assert!(o.stderr.contains("failed its checks"), "{o:#?}");
    assert!(o.stderr.contains("--force"), "{o:#?}");
    assert!(fs::read(&db).unwrap() == live, "nothing was replaced");
    let to = sb.p("copy.db");
    sb.run(&["restore", &id, "--to", to.to_str().unwrap()])
        .code(4);
    assert!(!to.exists());
    assert_eq!(
        sb.snapshots().len(),
        snapshots,
        "a refused restore takes no snapshot"
    );
    assert!(
        sb.json(&["show", &id])["verification"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Forced: put in place, said, and recorded in the repository.
    let r = sb.json(&["restore", &id, "--in-place", "--yes", "--force"]);
    assert_eq!(r["forced"], true, "{r:#}");
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["passed"] == false)
    );
    assert_eq!(sql(&db, "SELECT count(*) FROM b"), "1");
    let records = sb.json(&["show", &id])["verification"].clone();
    let forced: Vec<&Value> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "forced-restore")
        .collect();
    assert_eq!(forced.len(), 1, "{records:#}");
    assert_eq!(forced[0]["passed"], false);
    assert!(
        forced[0]["note"].as_str().unwrap().contains("shop.db"),
        "{records:#}"
    );
    let show = sb.run(&["show", &id]).ok();
    assert!(
        show.stdout.contains("forced      restore at"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("no restore drill yet"),
        "a forced restore is no drill: {}",
        show.stdout
    );
    let o = sb
        .run(&["restore", &id, "--to", to.to_str().unwrap(), "--force"])
        .ok();
    assert!(o.stdout.contains("FORCED"), "{}", o.stdout);
}

/// The ways a live database can be beyond opening.
#[derive(Debug, Clone, Copy)]
enum Damage {
    TruncatedToHalf,
    ZeroedHeader,
    TruncatedWithStaleWal,
}

/// Damages `db`; returns the files beside it that SQLite would use (with their bytes).
fn damage(db: &Path, how: Damage) -> Vec<(PathBuf, Vec<u8>)> {
    let mut bytes = fs::read(db).unwrap();
    let mut side = Vec::new();
    match how {
        Damage::TruncatedToHalf => bytes.truncate(bytes.len() / 2),
        Damage::ZeroedHeader => bytes[..100].fill(0),
        Damage::TruncatedWithStaleWal => {
            bytes.truncate(bytes.len() / 2);
            for (suffix, seed) in [("-wal", 1), ("-shm", 2)] {
                let p = with_suffix(db, suffix);
                let b = random_bytes(seed, 32768);
                fs::write(&p, &b).unwrap();
                side.push((p, b));
            }
        }
    }
    fs::write(db, &bytes).unwrap();
    let mut all = vec![(db.to_path_buf(), bytes)];
    all.extend(side);
    all
}

#[test]
fn an_unreadable_live_database_is_kept_as_files_and_replaced() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    fs::write(&db, fs::read(testdata("sqlite/chinook.sqlite")).unwrap()).unwrap();
    let original = fs::read(&db).unwrap();
    let id = sb.backup(&[&db], &[])["id"].as_str().unwrap().to_string();
    let dbs = db.to_str().unwrap();

    let mut n = 0;
    for how in [
        Damage::TruncatedToHalf,
        Damage::ZeroedHeader,
        Damage::TruncatedWithStaleWal,
    ] {
        for in_place in [true, false] {
            n += 1;
            let kept = damage(&db, how);
            let what = format!("{how:?}, in place {in_place}");
            let args: Vec<&str> = if in_place {
                vec!["restore", &id, "--in-place", "--yes"]
            } else {
                vec!["restore", &id, "--to", dbs, "--overwrite"]
            };
            let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
            let plan = sb.json(&dry);
            assert!(plan["target_unreadable"].is_string(), "{what}: {plan:#}");
            assert!(
                fs::read(&db).unwrap() == kept[0].1,
                "{what}: a dry run changes nothing"
            );

            // Odd runs print words, even runs JSON.
            let (safety, removed) = if n % 2 == 1 {
                let o = sb.run(&args).ok();
                assert!(
                    o.stdout.contains("could not be opened as a database"),
                    "{what}: {}",
                    o.stdout
                );
                assert!(
                    o.stdout.contains("are kept as files in safety snapshot"),
                    "{what}: {}",
                    o.stdout
                );
                let snaps = sb.snapshots();
                let newest = snaps.last().unwrap();
                assert_eq!(newest["kind"], "pre-restore", "{what}: {newest:#}");
                let removed = o
                    .stdout
                    .lines()
                    .filter(|l| l.starts_with("removed stale "))
                    .count();
                (newest["id"].as_str().unwrap().to_string(), removed)
            } else {
                let r = sb.json(&args);
                assert!(r["target_unreadable"].is_string(), "{what}: {r:#}");
                all_passed(&r["checks"]);
                let removed = r["removed"].as_array().map_or(0, Vec::len);
                (
                    r["safety_snapshot"]
                        .as_str()
                        .expect("safety_snapshot")
                        .to_string(),
                    removed,
                )
            };
            assert_eq!(removed, kept.len() - 1, "{what}");
            assert!(
                fs::read(&db).unwrap() == original,
                "{what}: the snapshot's bytes"
            );
            for suffix in ["-wal", "-shm", "-journal"] {
                assert!(!with_suffix(&db, suffix).exists(), "{what}: {suffix} left");
            }
            assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok", "{what}");

            // The damaged bytes, and the files beside them, come back byte for byte.
            let snaps = sb.snapshots();
            let pre = snaps.iter().find(|s| s["id"] == safety.as_str()).unwrap();
            assert_eq!(pre["kind"], "pre-restore", "{what}: {pre:#}");
            assert_eq!(pre["source_kind"], "files", "{what}: {pre:#}");
            let back = sb.p(&format!("back{n}"));
            sb.restore(&safety, &back);
            for (path, bytes) in &kept {
                let name = path.file_name().unwrap();
                let got = fs::read(back.join(name)).unwrap();
                if name.to_string_lossy().ends_with("-shm") {
                    // Shared memory SQLite rebuilds from the WAL whenever a connection opens
                    // the database, as the look at the live database did: not data.
                    assert_eq!(got.len(), bytes.len(), "{what}: {name:?}");
                } else {
                    assert!(got == *bytes, "{what}: {name:?}");
                }
            }
            assert_eq!(count_files(&back), kept.len(), "{what}");
        }
    }
    // The source goes on as before: its next backup follows the safety snapshots of files.
    let next = sb.backup(&[&db], &[]);
    assert_eq!(next["source_kind"], "sqlite", "{next:#}");
    let meta = database_meta(&sb, "latest");
    assert_eq!(meta["quick_check"], "ok", "{meta:#}");
    let again = sb.p("again.db");
    sb.run(&["restore", "latest", "--to", again.to_str().unwrap()])
        .ok();
    assert!(fs::read(&again).unwrap() == original);
}
