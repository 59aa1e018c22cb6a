//! In-place restores of a live database: the safety snapshot, concurrent readers, a long read
//! transaction, the schema guard, a missing or corrupted live database, a new page size.

use super::*;

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
