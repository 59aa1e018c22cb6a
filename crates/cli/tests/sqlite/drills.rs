//! Restore drills, `latest-verified`, and `--skip-unchanged` for databases.

use super::*;

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
