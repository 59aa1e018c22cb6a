//! What a person relies on when naming snapshots and reading `status`: `latest` never silently
//! means an older snapshot, `latest-verified` never brings back a rolled-back state, times name
//! snapshots, a failing source neither stops the others nor goes unnoticed, and bad input
//! (an empty stream, an unsupported location) never leaves something that looks like a backup.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn snapshot_file(repo: &Path, id: &str) -> PathBuf {
    let p = repo.join("snapshots").join(id);
    assert!(p.is_file(), "no snapshot object at {}", p.display());
    p
}

fn flip_middle(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    fs::write(p, b).unwrap();
}

fn status(sb: &Sandbox, code: i32) -> Value {
    let mut c = sb.cmd();
    c.args(["--json", "status"]);
    run(c).code(code).json()
}

#[test]
fn latest_with_a_damaged_newest_snapshot_fails_and_names_the_newest_intact_one() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "first\n").unwrap();
    let older = sb.backup(&[&data], &[]);
    fs::write(data.join("a.txt"), "second\n").unwrap();
    let newest = sb.backup(&[&data], &[]);
    let newest_id = newest["id"].as_str().unwrap();
    flip_middle(&snapshot_file(&sb.repo, newest_id));

    // Before: `latest:data` quietly restored the older snapshot with exit 0.
    let out = sb.p("out");
    let o = sb
        .run(&["restore", "latest:data", "--to", out.to_str().unwrap()])
        .code(4);
    assert!(o.stderr.contains(&newest_id[..12]), "{o:#?}");
    let older_short = &older["id"].as_str().unwrap()[..8];
    assert!(o.stderr.contains(older_short), "{o:#?}");
    assert!(o.stderr.contains("hint:"), "{o:#?}");
    assert!(!out.exists(), "nothing may be restored");

    // Asked for by id: the damage is named (exit 4), not "no snapshot with id" (exit 13).
    let o = sb.run(&["show", &newest_id[..10]]).code(4);
    assert!(o.stderr.contains("damaged"), "{o:#?}");

    // The intact one by id still restores.
    sb.restore(older["id"].as_str().unwrap(), &out);
    assert_eq!(
        fs::read_to_string(out.join("data/a.txt")).unwrap(),
        "first\n"
    );
}

#[test]
fn a_time_names_the_newest_snapshot_at_or_before_it() {
    let sb = Sandbox::plain();
    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\ntime_zone = \"Europe/Berlin\"\n",
    )
    .unwrap();
    let f = sb.p("notes.txt");
    let mut ids = Vec::new();
    // 17:00, 18:00 and 19:00 in Berlin (UTC+1 in December).
    for (hour, text) in [(16, "five"), (17, "six"), (18, "seven")] {
        fs::write(&f, text).unwrap();
        let s = sb.backup(&[&f], &["--time", &format!("2026-12-04T{hour}:00:00Z")]);
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    let show = |spec: &str| {
        let mut c = sb.cmd();
        c.args(["--json", "show", spec]);
        run(c)
    };
    for (spec, want) in [
        ("notes.txt@2026-12-04T18:00", 1),
        ("notes.txt@2026-12-04 18:30", 1),
        ("notes.txt@2026-12-04T17:59:59", 0),
        ("notes.txt@2026-12-04", 2),
        ("notes.txt@2026-12-04T17:00:00Z", 1),
        ("@2026-12-04 19:00", 2),
    ] {
        assert_eq!(show(spec).ok().json()["id"], ids[want], "{spec}");
    }
    // restore --source with @TIME.
    let out = sb.p("out");
    sb.run(&[
        "restore",
        "@2026-12-04 18:05",
        "--source",
        "notes.txt",
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "six");
    // Before the first snapshot: not found; in the future or garbled: a usage error.
    assert!(
        show("notes.txt@2026-12-04 16:00")
            .code(13)
            .stderr
            .contains("at or before")
    );
    assert!(
        show("notes.txt@2999-01-01 00:00")
            .code(2)
            .stderr
            .contains("future")
    );
    assert!(
        show("notes.txt@half past six")
            .code(2)
            .stderr
            .contains("2026-12-04T18:00")
    );
}

#[test]
fn latest_verified_and_drills_skip_the_safety_snapshot_of_an_in_place_restore() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    sql(
        &db,
        "CREATE TABLE stock(id INTEGER PRIMARY KEY, qty INT); INSERT INTO stock(qty) VALUES (1),(2),(3);",
    );
    let good = sb.backup(&[&db], &[]);
    sb.run(&["verify", "--restore-test", "latest"]).ok();
    // A bad change, then an in-place restore of the good snapshot: its safety snapshot holds
    // the bad state.
    sql(&db, "DELETE FROM stock;");
    sb.run(&["restore", "latest-verified:shop.db", "--in-place", "--yes"])
        .ok();
    assert_eq!(sql(&db, "SELECT count(*) FROM stock"), "3");
    let snaps = sb.snapshots();
    let safety = snaps.last().unwrap();
    assert_eq!(safety["kind"], "pre-restore", "{snaps:#?}");

    // The scheduled-style drill (--latest) drills the newest real backup, not the safety one.
    let drilled = sb.json(&["verify", "--restore-test", "--latest"]);
    assert_eq!(drilled[0]["snapshot"], good["id"], "{drilled:#}");
    // Even a safety snapshot that passed a drill is never latest-verified.
    sb.run(&["verify", "--restore-test", safety["id"].as_str().unwrap()])
        .ok();
    assert_eq!(sb.json(&["show", "latest-verified"])["id"], good["id"]);
    assert_eq!(
        sb.json(&["show", "latest-verified:shop.db"])["id"],
        good["id"]
    );
}

#[test]
fn status_flags_a_failed_newest_drill_and_an_unconfigured_source_never_drilled() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.bin"), random_bytes(1, 200_000)).unwrap();
    sb.backup(&[&data], &[]);
    // Never drilled and not configured: not "ok".
    let r = status(&sb, 5);
    assert_eq!(status_source(&r, "data")["state"], "unverified", "{r:#}");

    sb.run(&["verify", "--restore-test", "--latest"]).ok();
    let r = status(&sb, 0);
    assert_eq!(status_source(&r, "data")["state"], "ok", "{r:#}");

    // A newer snapshot whose own pack is damaged fails its drill: an older pass does not hide it.
    let before = packs(&sb.repo);
    fs::write(data.join("b.bin"), random_bytes(2, 200_000)).unwrap();
    sb.backup(&[&data], &[]);
    // The data pack (the largest new one): the item list stays readable.
    let data_pack = packs(&sb.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip_middle(&data_pack);
    sb.run(&["verify", "--restore-test", "--latest"]).code(4);
    let r = status(&sb, 5);
    let d = status_source(&r, "data");
    assert_eq!(d["state"], "drill-failed", "{d:#}");
    assert!(
        d["verified"].is_object(),
        "the older pass is still shown: {d:#}"
    );
}

#[test]
fn one_failing_source_does_not_stop_the_others_and_status_names_it() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/a.txt"), "a\n").unwrap();
    fs::create_dir(sb.p("zeta")).unwrap();
    fs::write(sb.p("zeta/z.txt"), "z\n").unwrap();
    // `ledger` sorts between the two and its path is missing.
    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\ndrill_max_age = \"off\"\n\
         [sources.docs]\npath = \"docs\"\n\
         [sources.ledger]\npath = \"ledger-data\"\n\
         [sources.zeta]\npath = \"zeta\"\n",
    )
    .unwrap();
    let o = run({
        let mut c = sb.bare();
        c.args(["backup"]);
        c
    });
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("ledger"), "{o:#?}");
    let names: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|s| s["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"docs".into()) && names.contains(&"zeta".into()));

    let r = run({
        let mut c = sb.bare();
        c.args(["--json", "status"]);
        c
    })
    .code(5)
    .json();
    let l = status_source(&r, "ledger");
    assert_eq!(l["state"], "backup-failed", "{l:#}");
    assert!(
        l["last_failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("ledger-data"),
        "{l:#}"
    );

    // Once the path exists and a backup succeeds, the failure is history.
    fs::create_dir(sb.p("ledger-data")).unwrap();
    fs::write(sb.p("ledger-data/l.txt"), "l\n").unwrap();
    run({
        let mut c = sb.bare();
        c.args(["backup", "--source", "ledger"]);
        c
    })
    .ok();
    let r = run({
        let mut c = sb.bare();
        c.args(["--json", "status"]);
        c
    })
    .json();
    let l = status_source(&r, "ledger");
    assert!(l["last_failure"].is_null(), "{l:#}");
    assert_ne!(l["state"], "backup-failed", "{l:#}");
}

#[test]
fn an_empty_stream_is_not_a_backup_unless_allowed() {
    let sb = Sandbox::plain();
    let mut c = sb.cmd();
    c.args(["backup", "--stdin", "--name", "dump"]);
    c.stdin(std::process::Stdio::null());
    let o = run(c);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("no data"), "{o:#?}");
    assert!(o.stderr.contains("--allow-empty"), "{o:#?}");
    assert!(sb.snapshots().is_empty());

    // A command that prints nothing and exits 0 is refused the same way.
    let o = sb.run(&["backup", "--name", "dump", "--", "true"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(sb.snapshots().is_empty());

    let mut c = sb.cmd();
    c.args(["backup", "--stdin", "--name", "dump", "--allow-empty"]);
    c.stdin(std::process::Stdio::null());
    run(c).ok();
    assert_eq!(sb.snapshots().len(), 1);
}

#[test]
fn a_location_with_a_scheme_is_refused_and_creates_nothing() {
    let sb = Sandbox::empty();
    for loc in ["sftp://host/backups", "webdav://host/x"] {
        let mut c = sb.bare();
        c.args(["init", "--repo", loc]);
        let o = run(c).code(2);
        assert!(o.stderr.contains("not supported"), "{o:#?}");
    }
    // An s3:// location without keys names what is missing, before any request.
    fs::write(sb.p("backstop.toml"), "repository = \"s3://bucket/y\"\n").unwrap();
    fs::write(sb.p("f.txt"), "f").unwrap();
    let mut c = sb.bare();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    ] {
        c.env_remove(var);
    }
    c.args(["backup", "f.txt"]);
    let o = run(c).code(2);
    assert!(o.stderr.contains("AWS_ACCESS_KEY_ID"), "{o:#?}");
    let left: Vec<_> = fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|n| n == "backstop.toml" || n == "f.txt"),
        "created {left:?}"
    );
}

#[test]
fn a_configured_sources_path_is_that_source() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("data")).unwrap();
    let db = sb.p("data/shop.db");
    sql(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\n[sources.shop]\npath = \"data/shop.db\"\ntags = [\"till\"]\n",
    )
    .unwrap();
    let backup = |args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--json").arg("backup").args(args);
        run(c).ok().json()
    };
    let a = backup(&["data/shop.db"]);
    let b = backup(&["--source", "shop"]);
    assert_eq!(a["source"], "shop", "{a:#}");
    assert_eq!(b["source"], "shop");
    let snaps = sb.snapshots();
    assert!(snaps.iter().all(|s| s["source"] == "shop"), "{snaps:#?}");
    assert_eq!(snaps[0]["tags"][0], "till");
    // An explicit other name still files it elsewhere.
    assert_eq!(
        backup(&["data/shop.db", "--name", "copy"])["source"],
        "copy"
    );
}
