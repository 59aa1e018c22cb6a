//! End-to-end tests of the SQLite features: capture metadata, restore to a new file, in-place
//! restore (dry run, confirmation, safety snapshot, schema guard, concurrent readers), WAL
//! databases, incremental cost, restore drills and `latest-verified`, `--skip-unchanged`, and
//! config sources of kind `sqlite`.
//!
//! Databases are created, changed and read with the `sqlite3` command-line tool.

mod common;

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
// 2. The small shop's bad day

#[test]
fn in_place_restore_after_a_bad_delete_keeps_a_safety_snapshot() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let good = table_counts(&db);
    let first = sb.backup(&[&db], &[]);

    sql(&db, "DELETE FROM InvoiceLine WHERE InvoiceLineId > 100");
    assert_eq!(rows(&db, "InvoiceLine"), 100);
    let damaged = table_counts(&db);
    let damaged_hash = blake3_file(&db);

    // Dry run: the plan shows what would come back.
    let plan = sb.json(&["restore", "latest", "--in-place", "--dry-run"]);
    assert_eq!(plan["snapshot"], first["id"], "{plan:#}");
    assert_eq!(plan["source"], "shop.db");
    assert_eq!(plan["item"], "shop.db");
    assert_eq!(plan["in_place"], true);
    assert_eq!(plan["target_exists"], true);
    assert_eq!(
        Path::new(plan["target"].as_str().unwrap()),
        fs::canonicalize(&db).unwrap()
    );
    assert_eq!(plan["schema_matches"], true, "{plan:#}");
    assert_eq!(plan["quick_check_at_capture"], "ok");
    assert_eq!(plan["user_version_now"], 0);
    assert_eq!(plan["user_version_snapshot"], 0);
    assert_eq!(plan["bytes"], fs::metadata(&db).unwrap().len());
    assert_eq!(meta_counts(&plan["tables"], "rows_now"), damaged);
    assert_eq!(meta_counts(&plan["tables"], "rows_snapshot"), good);
    let il = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "InvoiceLine")
        .unwrap();
    assert_eq!(il["rows_now"], 100);
    assert_eq!(il["rows_snapshot"], INVOICE_LINES);
    assert_eq!(blake3_file(&db), damaged_hash, "a dry run changes nothing");
    assert_eq!(
        sb.snapshots().len(),
        1,
        "a dry run takes no safety snapshot"
    );

    // No terminal and no --yes: refused, nothing changed.
    let o = sb.run(&["restore", "latest", "--in-place"]).code(2);
    assert!(o.stderr.contains("--yes"), "{o:#?}");
    assert_eq!(blake3_file(&db), damaged_hash);
    assert_eq!(sb.snapshots().len(), 1);

    // With --yes: restored, after a pre-restore snapshot of the damaged state.
    let r = sb.json(&["restore", "latest", "--in-place", "--yes"]);
    assert_eq!(r["snapshot"], first["id"], "{r:#}");
    assert_checks_passed(&r["checks"], &["image hash", "schema"]);
    let safety = r["safety_snapshot"]
        .as_str()
        .expect("safety_snapshot")
        .to_string();
    assert_eq!(rows(&db, "InvoiceLine"), INVOICE_LINES);
    assert_eq!(table_counts(&db), good);
    integrity_ok(&db);
    assert_eq!(sql(&db, "PRAGMA foreign_key_check"), "");

    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:#?}");
    let pre = snaps
        .iter()
        .find(|s| s["id"] == safety.as_str())
        .expect("the safety snapshot is listed");
    assert_eq!(pre["kind"], "pre-restore", "{pre:#}");
    assert_eq!(pre["source"], "shop.db");
    assert_eq!(pre["source_kind"], "sqlite");
    assert_eq!(
        snaps[1]["id"],
        safety.as_str(),
        "the safety snapshot is the newest"
    );

    // Nothing is lost: the damaged state is in the safety snapshot...
    let kept = sb.p("kept.db");
    sb.restore(&safety, &kept);
    assert_eq!(table_counts(&kept), damaged);
    integrity_ok(&kept);
    // ... which is now `latest`.
    let x = sb.p("x.db");
    sb.restore("latest", &x);
    assert_eq!(rows(&x, "InvoiceLine"), 100);
    assert_eq!(blake3_file(&x), blake3_file(&kept));
}

// ---------------------------------------------------------------------------------------------
// 3. In-place restore under a reader

#[test]
fn readers_see_the_old_or_the_new_database_during_in_place_restores() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let full = sb.backup(&[&db], &[]);
    sql(&db, "DELETE FROM InvoiceLine WHERE InvoiceLineId % 3 = 0");
    let part = sb.backup(&[&db], &[]);
    let (full_n, part_n) = (INVOICE_LINES, INVOICE_LINES - INVOICE_LINES / 3);
    assert_eq!(rows(&db, "InvoiceLine"), part_n);

    // A reader loop (one sqlite3 process per read) runs through several in-place restores
    // that switch the database between the two snapshots.
    let reads = sb.p("reads.txt");
    let mut reader = Command::new("sh")
        .arg("-c")
        .arg(
            "while [ ! -e stop ]; do \
               sqlite3 -batch shop.db 'SELECT count(*) FROM InvoiceLine' >> reads.txt 2>&1; \
             done",
        )
        .current_dir(sb.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the reader loop");
    let lines = || -> Vec<String> {
        fs::read_to_string(&reads)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let wait_for = |what: &str, f: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&lines()) {
            assert!(Instant::now() < deadline, "reader loop: no {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("reads before the restores", &|l| l.len() >= 3);
    let started = Instant::now();
    let reads_before = lines().len();
    let mut safety = Vec::new();
    for spec in [&full, &part, &full, &part, &full] {
        let id = spec["id"].as_str().unwrap();
        let r = sb.json(&["restore", id, "--in-place", "--yes"]);
        assert_eq!(r["snapshot"], id, "{r:#}");
        safety.push(r["safety_snapshot"].as_str().unwrap().to_string());
    }
    let restoring = started.elapsed();
    let during = lines().len() - reads_before;
    let full_s = full_n.to_string();
    wait_for("reads after the restores", &|l| {
        l.iter().rev().take(3).all(|x| *x == full_s)
    });
    fs::write(sb.p("stop"), b"").unwrap();
    assert!(reader.wait().unwrap().success());

    let all = lines();
    let part_s = part_n.to_string();
    for l in &all {
        let lower = l.to_ascii_lowercase();
        assert!(
            *l == full_s || *l == part_s || lower.contains("locked") || lower.contains("busy"),
            "a reader saw {l:?} (the snapshots have {full_n} and {part_n} rows); all reads: {all:?}"
        );
    }
    assert!(
        during >= 3,
        "only {during} reads during {restoring:?} of restores: {all:?}"
    );
    assert!(all.contains(&part_s) && all.contains(&full_s), "{all:?}");
    assert_eq!(rows(&db, "InvoiceLine"), full_n);
    integrity_ok(&db);
    // Five restores, five safety snapshots.
    safety.sort();
    safety.dedup();
    assert_eq!(safety.len(), 5);
    assert_eq!(sb.snapshots().len(), 7);
}

#[test]
fn in_place_restore_waits_for_a_long_read_transaction() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    sb.backup(&[&db], &[]);
    sql(&db, "DELETE FROM InvoiceLine WHERE InvoiceLineId > 1000");

    // A reader holds one read transaction for a second and reads twice inside it.
    let held = Command::new("sqlite3")
        .arg("-batch")
        .arg(&db)
        .args([
            "BEGIN;",
            "SELECT count(*) FROM InvoiceLine;",
            ".shell touch started; sleep 1",
            "SELECT count(*) FROM InvoiceLine;",
            "COMMIT;",
        ])
        .current_dir(sb.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb.p("started").exists() {
        assert!(Instant::now() < deadline, "the reader did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    sb.run(&["restore", "latest", "--in-place", "--yes"]).ok();
    let o = held.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1000\n1000",
        "the reader's transaction saw one state"
    );
    assert_eq!(rows(&db, "InvoiceLine"), INVOICE_LINES);
    integrity_ok(&db);
}

// ---------------------------------------------------------------------------------------------
// 4. Schema guard

#[test]
fn in_place_restore_over_a_changed_schema_needs_allow_schema_change() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    sb.backup(&[&db], &[]);
    sql(
        &db,
        "CREATE TABLE Audit(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO Audit(note) VALUES ('migrated');",
    );
    let before = blake3_file(&db);

    let plan = sb.json(&["restore", "latest", "--in-place", "--dry-run"]);
    assert_eq!(plan["schema_matches"], false, "{plan:#}");
    let audit = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Audit")
        .expect("the new table is in the plan");
    assert_eq!(audit["rows_now"], 1);
    assert_eq!(audit["rows_snapshot"], Value::Null);

    let o = sb.run(&["restore", "latest", "--in-place", "--yes"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("--allow-schema-change"), "{o:#?}");
    assert_eq!(blake3_file(&db), before, "the live database was changed");
    assert_eq!(rows(&db, "Audit"), 1);
    assert_eq!(sb.snapshots().len(), 1, "no safety snapshot for a refusal");

    let r = sb.json(&[
        "restore",
        "latest",
        "--in-place",
        "--yes",
        "--allow-schema-change",
    ]);
    assert!(!table_counts(&db).contains_key("Audit"));
    assert_eq!(rows(&db, "InvoiceLine"), INVOICE_LINES);
    integrity_ok(&db);
    // The migrated state is kept in the safety snapshot.
    let kept = sb.p("kept.db");
    sb.restore(r["safety_snapshot"].as_str().unwrap(), &kept);
    assert_eq!(rows(&kept, "Audit"), 1);
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
// 7. Restore drills and latest-verified

#[test]
fn drills_are_recorded_and_latest_verified_restores_the_drilled_snapshot() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let drilled = sb.backup(&[&db], &[]);
    let drilled_id = drilled["id"].as_str().unwrap().to_string();

    // No drill yet: nothing is verified.
    sb.run(&["restore", "latest-verified", "--to", "never.db"])
        .code(13);
    sb.run(&["show", "latest-verified"]).code(13);
    sb.run(&["show", "latest-verified:shop.db"]).code(13);
    assert!(!sb.p("never.db").exists());
    assert_eq!(sb.snapshots()[0]["verification"], Value::Null);

    let scratch = sb.p("scratch");
    fs::create_dir(&scratch).unwrap();
    let mut c = sb.cmd();
    c.env("TMPDIR", &scratch)
        .args(["--json", "verify", "--restore-test", "--latest"]);
    let o = run(c).ok();
    let records = o.json();
    let records = records.as_array().expect("an array of records");
    assert_eq!(records.len(), 1, "{records:#?}");
    let rec = &records[0];
    assert_eq!(rec["snapshot"], drilled_id.as_str());
    assert_eq!(rec["passed"], true, "{rec:#}");
    assert!(rec["duration_ms"].is_u64());
    assert!(rec["time"].is_string());
    assert_checks_passed(
        &rec["checks"],
        &[
            "image hash",
            "pages",
            "schema",
            "row counts",
            "integrity_check",
            "foreign_key_check",
        ],
    );
    assert_eq!(count_files(&scratch), 0, "the drill left files behind");

    let snaps = sb.snapshots();
    let v = &snaps[0]["verification"];
    assert_eq!(v["state"], "passed", "{v:#}");
    assert_eq!(v["time"], rec["time"]);
    assert_eq!(v["duration_ms"], rec["duration_ms"]);
    let show = sb.json(&["show", &drilled_id]);
    let shown = show["verification"].as_array().expect("verification");
    assert_eq!(shown.len(), 1, "{show:#}");
    assert_eq!(shown[0]["passed"], true);
    assert_eq!(shown[0]["snapshot"], drilled_id.as_str());

    // A newer, undrilled snapshot: latest != latest-verified.
    sql(&db, "DELETE FROM InvoiceLine WHERE InvoiceLineId > 2000");
    let newer = sb.backup(&[&db], &[]);
    assert_eq!(sb.json(&["show", "latest"])["id"], newer["id"]);
    assert_eq!(
        sb.json(&["show", "latest-verified"])["id"],
        drilled_id.as_str()
    );
    assert_eq!(
        sb.json(&["show", "latest-verified:shop.db"])["id"],
        drilled_id.as_str()
    );
    assert_eq!(sb.snapshots()[1]["verification"], Value::Null);
    sql(&db, "DELETE FROM InvoiceLine WHERE InvoiceLineId > 10");

    let r = sb.json(&[
        "restore",
        "latest-verified",
        "--source",
        "shop.db",
        "--in-place",
        "--yes",
    ]);
    assert_eq!(r["snapshot"], drilled_id.as_str(), "{r:#}");
    assert_eq!(rows(&db, "InvoiceLine"), INVOICE_LINES);
    integrity_ok(&db);
    // The safety snapshot is newer but not drilled: latest-verified stays.
    assert_eq!(
        sb.json(&["show", "latest-verified"])["id"],
        drilled_id.as_str()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. --skip-unchanged and config sources

#[test]
fn skip_unchanged_records_nothing_until_the_database_changes() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let first = sb.backup(&[&db], &["--skip-unchanged"]);
    assert_eq!(
        first["skipped"], false,
        "the first backup is always recorded"
    );

    let again = sb.backup(&[&db], &["--skip-unchanged"]);
    assert_eq!(again["skipped"], true, "{again:#}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(snapshot_ids(&sb), [first["id"].as_str().unwrap()]);
    // The human form says so.
    let o = sb
        .run(&["backup", db.to_str().unwrap(), "--skip-unchanged"])
        .ok();
    assert!(o.stdout.contains("unchanged"), "{o:#?}");
    assert_eq!(sb.snapshots().len(), 1);

    sql(
        &db,
        "UPDATE Artist SET Name = 'AC/DC (remastered)' WHERE ArtistId = 1",
    );
    let changed = sb.backup(&[&db], &["--skip-unchanged"]);
    assert_eq!(changed["skipped"], false, "{changed:#}");
    assert_ne!(changed["id"], first["id"]);
    assert_eq!(changed["parent"], first["id"]);
    assert_eq!(sb.snapshots().len(), 2);
}

#[test]
fn config_source_infers_sqlite_and_honours_skip_unchanged() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("data")).unwrap();
    let db = sb.p("data/shop.db");
    copy_chinook(&db);
    fs::write(
        sb.p("backstop.toml"),
        "[sources.shop]\npath = \"data/shop.db\"\nskip_unchanged = true\n",
    )
    .unwrap();

    let first = sb.json(&["backup", "--source", "shop"]);
    assert_eq!(first["source"], "shop", "{first:#}");
    assert_eq!(first["source_kind"], "sqlite");
    assert_eq!(first["skipped"], false);
    let meta = database_meta(&sb, "latest:shop");
    assert_eq!(
        meta_counts(&meta["tables"], "rows")["InvoiceLine"],
        INVOICE_LINES
    );

    let again = sb.json(&["backup", "--source", "shop"]);
    assert_eq!(again["skipped"], true, "{again:#}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(sb.snapshots().len(), 1);

    // In place by source name, into the configured path.
    sql(&db, "DELETE FROM Track WHERE TrackId > 10");
    let r = sb.json(&[
        "restore",
        "latest",
        "--source",
        "shop",
        "--in-place",
        "--yes",
    ]);
    assert_eq!(r["snapshot"], first["id"], "{r:#}");
    assert_eq!(rows(&db, "Track"), 3503);
    let kinds: Vec<Value> = sb.snapshots().iter().map(|s| s["kind"].clone()).collect();
    assert_eq!(kinds, ["manual", "pre-restore"]);
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

// ---------------------------------------------------------------------------------------------
// More restore and drill cases

#[test]
fn in_place_restore_without_a_live_database_exits_13() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    sb.backup(&[&db], &[]);
    fs::remove_file(&db).unwrap();

    let plan = sb.json(&["restore", "latest", "--in-place", "--dry-run"]);
    assert_eq!(plan["target_exists"], false, "{plan:#}");
    assert_eq!(plan["schema_matches"], Value::Null);
    assert_eq!(plan["user_version_now"], Value::Null);
    let o = sb
        .run(&["restore", "latest", "--in-place", "--yes"])
        .code(13);
    assert!(o.stderr.contains("--to"), "{o:#?}");
    assert!(!db.exists());
    assert_eq!(sb.snapshots().len(), 1);
}

#[test]
fn a_failed_drill_exits_4_and_is_not_latest_verified() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let good = sb.backup(&[&db], &[]);
    sb.run(&["verify", "--restore-test", "latest"]).ok();

    // A second snapshot whose new chunks sit in packs of their own, then damage those packs.
    sql(&db, "UPDATE Track SET Name = Name || ' (live)'");
    let before: Vec<PathBuf> = packs(&sb.repo);
    let damaged = sb.backup(&[&db], &[]);
    let new_packs: Vec<PathBuf> = packs(&sb.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new_packs.is_empty());
    for p in &new_packs {
        let mut bytes = fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(p, &bytes).unwrap();
    }

    let mut c = sb.cmd();
    c.args(["--json", "verify", "--restore-test", "latest"]);
    let o = run(c).code(4);
    let rec = &o.json()[0];
    assert_eq!(rec["snapshot"], damaged["id"]);
    assert_eq!(rec["passed"], false, "{rec:#}");
    assert!(
        rec["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["passed"] == false),
        "{rec:#}"
    );
    let snaps = sb.snapshots();
    assert_eq!(snaps[0]["verification"]["state"], "passed");
    assert_eq!(
        snaps[1]["verification"]["state"], "failed",
        "{:#}",
        snaps[1]
    );
    assert_eq!(sb.json(&["show", "latest-verified"])["id"], good["id"]);

    let out = sb.p("verified.db");
    sb.run(&[
        "restore",
        "latest-verified",
        "--source",
        "shop.db",
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        sql(
            &out,
            "SELECT count(*) FROM Track WHERE Name GLOB '* (live)'"
        ),
        "0"
    );
    integrity_ok(&out);
}

#[test]
fn in_place_restore_repairs_a_corrupted_database() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    copy_chinook(&db);
    let good = table_counts(&db);
    sb.backup(&[&db], &[]);
    // Three pages in the middle of the file overwritten with noise.
    let mut bytes = fs::read(&db).unwrap();
    bytes[100 * 4096..103 * 4096].copy_from_slice(&random_bytes(3, 3 * 4096));
    fs::write(&db, &bytes).unwrap();
    let qc = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA quick_check")
        .output()
        .unwrap();
    assert!(
        !qc.status.success() || String::from_utf8_lossy(&qc.stdout).trim() != "ok",
        "the damage was not noticed by sqlite3"
    );

    let r = sb.json(&["restore", "latest", "--in-place", "--yes"]);
    assert_eq!(table_counts(&db), good);
    integrity_ok(&db);
    // The damaged state is kept, with its problems recorded.
    let kept = database_meta(&sb, r["safety_snapshot"].as_str().unwrap());
    assert_ne!(kept["quick_check"], "ok", "{kept:#}");
}

#[test]
fn in_place_restore_into_a_wal_database_with_a_new_page_size() {
    let sb = Sandbox::plain();
    let db = sb.p("wal.db");
    make_wal_db(&db, 3000);
    sb.backup(&[&db], &[]);
    sql(
        &db,
        "DELETE FROM t WHERE id > 100;
         PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL;",
    );
    assert_eq!(sql(&db, "PRAGMA page_size"), "8192");

    sb.run(&["restore", "latest", "--in-place", "--yes"]).ok();
    assert_eq!(rows(&db, "t"), 3000);
    assert_eq!(sql(&db, "PRAGMA page_size"), "4096");
    integrity_ok(&db);
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
