//! End-to-end tests of the SQLite features: capture metadata, restore to a new file, in-place
//! restore (dry run, confirmation, safety snapshot, schema guard, concurrent readers), WAL
//! databases, incremental cost, restore drills and `latest-verified`, `--skip-unchanged`, and
//! config sources of kind `sqlite`.
//!
//! Databases are created, changed and read with the `sqlite3` command-line tool.

#[path = "../common/mod.rs"]
mod common;
mod drills;
mod in_place;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Rows of InvoiceLine in chinook.sqlite.
const INVOICE_LINES: u64 = 2240;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Copies chinook.sqlite to `dst` as a writable file (the shared copy is read-only).
fn copy_chinook(dst: &Path) {
    fs::write(dst, fs::read(testdata("sqlite/chinook.sqlite")).unwrap()).unwrap();
}

/// Runs SQL on a WAL database without checkpointing on close: the changes stay in `-wal`.
#[track_caller]
fn sql_in_wal(db: &Path, sql: &str) {
    sqlite3(
        db,
        &[
            ".dbconfig no_ckpt_on_close on",
            "PRAGMA wal_autocheckpoint=0;",
            sql,
        ],
    );
}

#[track_caller]
fn rows(db: &Path, table: &str) -> u64 {
    sql(db, &format!("SELECT count(*) FROM \"{table}\""))
        .parse()
        .unwrap()
}

/// Every table's row count, as sqlite3 reports it.
fn table_counts(db: &Path) -> BTreeMap<String, u64> {
    sql(
        db,
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
    )
    .lines()
    .map(|t| (t.to_string(), rows(db, t)))
    .collect()
}

/// The table row counts recorded in database metadata (or a restore plan's `rows_snapshot`).
fn meta_counts(tables: &Value, key: &str) -> BTreeMap<String, u64> {
    tables
        .as_array()
        .expect("tables is an array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t[key].as_u64().unwrap(),
            )
        })
        .collect()
}

#[track_caller]
fn integrity_ok(db: &Path) {
    assert_eq!(sql(db, "PRAGMA integrity_check"), "ok", "{}", db.display());
}

/// The `database` metadata of a snapshot's one item.
fn database_meta(sb: &Sandbox, spec: &str) -> Value {
    let show = sb.json(&["show", spec]);
    let items = show["item_list"].as_array().expect("item_list");
    assert_eq!(items.len(), 1, "{show:#}");
    items[0]["database"].clone()
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn snapshot_ids(sb: &Sandbox) -> Vec<String> {
    sb.snapshots()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_checks_passed(checks: &Value, expected_names: &[&str]) {
    let checks = checks.as_array().expect("checks is an array");
    for c in checks {
        assert_eq!(c["passed"], true, "check failed: {c:#}");
    }
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for n in expected_names {
        assert!(names.contains(n), "no {n:?} check in {names:?}");
    }
}

/// A database in WAL mode with table `t` of `n` rows.
fn make_wal_db(db: &Path, n: u64) {
    let out = sql(
        db,
        &format!(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
             INSERT INTO t SELECT x, hex(randomblob(40)) FROM c;"
        ),
    );
    assert_eq!(out, "wal");
}

// ---------------------------------------------------------------------------------------------
// 1. Capture metadata and restore to a new file

#[test]
fn metadata_matches_sqlite3_and_restore_to_a_file_is_byte_identical() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);

    let s = sb.backup(&[&db], &[]);
    assert_eq!(s["source"], "shop.db", "{s:#}");
    assert_eq!(s["source_kind"], "sqlite", "{s:#}");
    assert_eq!(s["items"], 1, "{s:#}");
    assert_eq!(s["skipped"], false);
    assert_eq!(s["bytes_in"], fs::metadata(&db).unwrap().len());

    let show = sb.json(&["show", "latest"]);
    assert_eq!(show["source"]["name"], "shop.db");
    assert_eq!(show["source"]["kind"], "sqlite");
    let item = &show["item_list"][0];
    assert_eq!(item["type"], "sqlite", "{item:#}");
    assert_eq!(item["path"], "shop.db");
    let meta = &item["database"];
    let num = |pragma: &str| -> u64 { sql(&db, &format!("PRAGMA {pragma}")).parse().unwrap() };
    assert_eq!(meta["page_size"], num("page_size"), "{meta:#}");
    assert_eq!(meta["page_count"], num("page_count"), "{meta:#}");
    assert_eq!(meta["user_version"], num("user_version"));
    assert_eq!(meta["journal_mode"], "delete");
    assert_eq!(meta["quick_check"], "ok");
    let fp = meta["schema_fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fp}"
    );
    assert_eq!(
        Path::new(meta["source_path"].as_str().unwrap()),
        fs::canonicalize(&db).unwrap()
    );
    let counts = table_counts(&db);
    assert_eq!(counts.len(), 11, "{counts:?}");
    assert_eq!(counts["InvoiceLine"], INVOICE_LINES);
    assert_eq!(meta_counts(&meta["tables"], "rows"), counts);

    // To a new file: checked, printed, byte for byte the source (rollback mode, no writer).
    let new = sb.p("new.db");
    let r = sb.json(&["restore", "latest", "--to", new.to_str().unwrap()]);
    assert_eq!(r["in_place"], false, "{r:#}");
    assert_eq!(r["safety_snapshot"], Value::Null, "{r:#}");
    // The image hash proves the bytes are those captured (and counted at capture), so a plain
    // restore does not count rows again; --full-check does, and runs integrity_check.
    assert_checks_passed(
        &r["checks"],
        &["image hash", "pages", "schema", "quick_check at capture"],
    );
    integrity_ok(&new);
    assert!(fs::read(&new).unwrap() == fs::read(&db).unwrap());
    assert_eq!(table_counts(&new), counts);
    let full = sb.p("full.db");
    let r = sb.json(&[
        "restore",
        "latest",
        "--full-check",
        "--to",
        full.to_str().unwrap(),
    ]);
    assert_checks_passed(
        &r["checks"],
        &[
            "image hash",
            "pages",
            "schema",
            "row counts",
            "integrity_check",
        ],
    );

    // The human form prints the checks.
    let o = sb
        .run(&[
            "restore",
            "latest",
            "--to",
            sb.p("human.db").to_str().unwrap(),
        ])
        .ok();
    for name in ["image hash", "pages", "schema", "quick_check at capture"] {
        assert!(o.stdout.contains(name), "{o:#?}");
    }

    // An existing directory, or a path ending in '/', receives the file under the item name.
    fs::create_dir(sb.p("dir")).unwrap();
    sb.restore("latest", &sb.p("dir"));
    assert!(fs::read(sb.p("dir/shop.db")).unwrap() == fs::read(&db).unwrap());
    let mut c = sb.cmd();
    c.args(["restore", "latest", "--to", "fresh/"]);
    run(c).ok();
    assert!(fs::read(sb.p("fresh/shop.db")).unwrap() == fs::read(&db).unwrap());

    // An existing file is not overwritten without --overwrite.
    fs::write(&new, b"precious").unwrap();
    let o = sb.run(&["restore", "latest", "--to", new.to_str().unwrap()]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert_eq!(fs::read(&new).unwrap(), b"precious");
    sb.run(&[
        "restore",
        "latest",
        "--to",
        new.to_str().unwrap(),
        "--overwrite",
    ])
    .ok();
    assert!(fs::read(&new).unwrap() == fs::read(&db).unwrap());
}

// ---------------------------------------------------------------------------------------------
// 5. WAL databases

#[test]
fn wal_content_is_captured_and_a_stale_wal_is_not_replayed() {
    let sb = Sandbox::plain();
    let db = sb.p("wal.db");
    make_wal_db(&db, 3000);
    let a = sb.backup(&[&db], &[]);
    let meta = database_meta(&sb, "latest");
    assert_eq!(meta["journal_mode"], "wal", "{meta:#}");
    assert_eq!(meta_counts(&meta["tables"], "rows")["t"], 3000);

    // 500 rows that live only in the WAL.
    let db_bytes = fs::read(&db).unwrap();
    sql_in_wal(
        &db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
         INSERT INTO t(v) SELECT 'added ' || x FROM c;",
    );
    let wal = with_suffix(&db, "-wal");
    assert!(
        fs::metadata(&wal).unwrap().len() > 0,
        "the change is in the WAL"
    );
    assert!(
        fs::read(&db).unwrap() == db_bytes,
        "the main file is untouched"
    );
    let stale_wal = fs::read(&wal).unwrap();
    let stale_shm = fs::read(with_suffix(&db, "-shm")).unwrap();

    let b = sb.backup(&[&db], &[]);
    assert_ne!(a["id"], b["id"]);
    let meta = database_meta(&sb, "latest");
    assert_eq!(meta_counts(&meta["tables"], "rows")["t"], 3500, "{meta:#}");
    assert_eq!(meta["quick_check"], "ok");

    let restored = sb.p("b.db");
    let r = sb.json(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    assert_checks_passed(&r["checks"], &["image hash", "pages", "schema"]);
    integrity_ok(&restored);
    assert_eq!(rows(&restored, "t"), 3500);
    assert_eq!(
        sql(&restored, "SELECT count(*) FROM t WHERE v LIKE 'added %'"),
        "500"
    );

    // A target with a WAL left beside it: that WAL (the 500 rows) would be replayed into the
    // restored snapshot A if it stayed.
    let a_id = a["id"].as_str().unwrap();
    let x = sb.p("x.db");
    sb.restore(a_id, &x);
    let probe = sb.p("probe.db");
    fs::copy(&x, &probe).unwrap();
    fs::write(with_suffix(&probe, "-wal"), &stale_wal).unwrap();
    assert_eq!(rows(&probe, "t"), 3500, "sqlite3 replays a stale WAL");

    fs::write(with_suffix(&x, "-wal"), &stale_wal).unwrap();
    fs::write(with_suffix(&x, "-shm"), &stale_shm).unwrap();
    sb.run(&["restore", a_id, "--to", x.to_str().unwrap(), "--overwrite"])
        .ok();
    for suffix in ["-wal", "-shm"] {
        assert!(
            !with_suffix(&x, suffix).exists(),
            "the stale {suffix} was left beside the restored database"
        );
    }
    assert_eq!(rows(&x, "t"), 3000);
    integrity_ok(&x);

    // A drill of the WAL snapshot passes.
    let drill = sb.json(&["verify", "--restore-test", "latest"]);
    assert_eq!(drill[0]["snapshot"], b["id"]);
    assert_eq!(drill[0]["passed"], true, "{drill:#}");

    // In place into the live WAL database, back to A.
    sb.run(&["restore", a_id, "--in-place", "--yes"]).ok();
    assert_eq!(rows(&db, "t"), 3000);
    integrity_ok(&db);
}

// ---------------------------------------------------------------------------------------------
// 6. Incremental cost

#[test]
fn a_few_changed_rows_add_little_to_the_repository() {
    let sb = Sandbox::plain();
    let db = sb.p("big.db");
    sql(
        &db,
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
         INSERT INTO notes SELECT x, 'note ' || x || ' ' || hex(randomblob(90)) FROM c;",
    );
    let size = fs::metadata(&db).unwrap().len();
    assert!(size > 3_000_000, "{size}");

    let first = sb.backup(&[&db], &[]);
    sql(
        &db,
        "UPDATE notes SET body = 'changed ' || id WHERE id IN (7, 5000, 12345, 19999);",
    );
    let second = sb.backup(&[&db], &[]);
    let (a, b) = (
        first["bytes_added"].as_u64().unwrap(),
        second["bytes_added"].as_u64().unwrap(),
    );
    assert!(a > 1_000_000, "{first:#}");
    assert!(b * 10 < a, "second backup added {b} bytes, the first {a}");
    assert!(second["chunks_new"].as_u64().unwrap() < 20, "{second:#}");
    let restored = sb.p("restored.db");
    sb.restore("latest", &restored);
    assert_eq!(
        sql(&restored, "SELECT body FROM notes WHERE id = 12345"),
        "changed 12345"
    );
    assert_eq!(rows(&restored, "notes"), 20000);
}

// ---------------------------------------------------------------------------------------------
// 9. kind = "sqlite" on something else

#[test]
fn sqlite_kind_on_a_non_sqlite_file_is_a_usage_error() {
    let sb = Sandbox::plain();
    fs::write(sb.p("notes.txt"), "not a database\n".repeat(100)).unwrap();
    fs::write(
        sb.p("backstop.toml"),
        "[sources.notes]\npath = \"notes.txt\"\nkind = \"sqlite\"\n",
    )
    .unwrap();
    let o = sb.run(&["backup", "--source", "notes"]).code(2);
    assert!(o.stderr.contains("notes.txt"), "{o:#?}");
    assert!(o.stderr.contains("SQLite"), "{o:#?}");
    assert!(o.stderr.contains("not"), "{o:#?}");
    assert_eq!(sb.snapshots().len(), 0);
}

/// `BACKSTOP_SPILL_ENTRIES=0` keeps the index and the backup's set of new chunks in scratch
/// files (what a large repository does): the database restores byte for byte, a second backup
/// adds no chunk, and no scratch file is left behind.
#[test]
fn sqlite_backup_with_the_index_on_disk_restores_byte_for_byte_and_dedups() {
    let s = Sandbox::plain();
    let db = s.p("shop.db");
    copy_chinook(&db);
    let scratch = s.p("scratch");
    fs::create_dir(&scratch).unwrap();
    let backup = || {
        let mut c = s.cmd();
        c.env("BACKSTOP_SPILL_ENTRIES", "0")
            .env("BACKSTOP_SCRATCH_DIR", &scratch)
            .args(["--json", "backup"])
            .arg(&db);
        run(c).ok().json()
    };
    let first = backup();
    assert!(first["chunks_new"].as_u64().unwrap() > 0, "{first:#}");
    let again = backup();
    assert_eq!(again["chunks_new"], 0, "{again:#}");
    s.restore(again["id"].as_str().unwrap(), &s.p("out.db"));
    assert_eq!(blake3_file(&s.p("out.db")), blake3_file(&db));
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
    s.assert_clean();
    // A threshold that is not a number is refused, naming the variable.
    let mut c = s.cmd();
    c.env("BACKSTOP_SPILL_ENTRIES", "lots")
        .arg("backup")
        .arg(&db);
    let o = run(c);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("BACKSTOP_SPILL_ENTRIES"), "{o:#?}");
}
