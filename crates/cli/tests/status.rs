//! `backstop status`: per-source state without a daemon, and its exit code for cron users.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// Writes `backstop.toml` (repository = the sandbox's) with `body` and returns its path.
fn config(sb: &Sandbox, body: &str) -> String {
    let p = sb.p("backstop.toml");
    fs::write(&p, format!("repository = \"repo\"\n{body}")).unwrap();
    p.to_str().unwrap().to_string()
}

fn status(sb: &Sandbox, cfg: &str, code: i32) -> Value {
    let mut c = sb.bare();
    c.args(["--config", cfg, "--json", "status"]);
    run(c).code(code).json()
}

fn ago(hours: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours)).to_string()
}

#[test]
fn overdue_never_backed_up_and_unverified_sources_need_attention() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/a.txt"), "a\n").unwrap();
    let cfg = config(
        &sb,
        "[sources.docs]\npath = \"docs\"\nevery = \"6h\"\n\
         [sources.shop]\npath = \"shop.db\"\ncron = \"0 */6 * * *\"\n",
    );
    // Nothing backed up: both need attention.
    let r = status(&sb, &cfg, 5);
    assert_eq!(
        status_source(&r, "docs")["state"],
        "never-backed-up",
        "{r:#}"
    );
    assert_eq!(
        status_source(&r, "shop")["state"],
        "never-backed-up",
        "{r:#}"
    );
    assert_eq!(status_source(&r, "shop")["schedule"], "cron 0 */6 * * *");

    // A backup 10 hours ago on a 6-hour schedule: overdue (next run + 3 h of grace passed).
    let docs = sb.p("docs");
    sb.backup(&[&docs], &["--name", "docs", "--time", &ago(10)]);
    let r = status(&sb, &cfg, 5);
    let d = status_source(&r, "docs");
    assert_eq!(d["state"], "overdue", "{d:#}");
    assert_eq!(d["overdue"], true);
    assert_eq!(d["snapshots"], 1);
    let age = d["last_backup_age_seconds"].as_i64().unwrap();
    assert!((10 * 3600 - 60..10 * 3600 + 60).contains(&age), "{d:#}");

    // 8 hours ago is within the grace (next run at -2 h, overdue at +1 h); but no drill yet.
    sb.backup(&[&docs], &["--name", "docs", "--time", &ago(8)]);
    let r = status(&sb, &cfg, 5);
    let d = status_source(&r, "docs");
    assert_eq!(d["overdue"], false, "{d:#}");
    assert_eq!(d["state"], "unverified", "{d:#}");
    assert_eq!(d["verified"], Value::Null);

    // A passed drill clears it; with the shop source dropped from the config, all is well.
    sb.run(&["verify", "--restore-test", "latest:docs"]).ok();
    let cfg = config(&sb, "[sources.docs]\npath = \"docs\"\nevery = \"6h\"\n");
    let r = status(&sb, &cfg, 0);
    let d = status_source(&r, "docs");
    assert_eq!(d["state"], "ok", "{d:#}");
    assert!(d["problems"].as_array().unwrap().is_empty(), "{d:#}");
    assert!(
        d["verified"]["age_seconds"].as_i64().unwrap() < 120,
        "{d:#}"
    );
    assert_eq!(d["verified"]["snapshot"], d["last_snapshot"], "{d:#}");

    // The drill limit: "off" never complains; a limit shorter than the drill's age does.
    fs::write(sb.p("docs/a.txt"), "b\n").unwrap();
    sb.backup(&[&docs], &["--name", "docs"]);
    let cfg = config(
        &sb,
        "[sources.docs]\npath = \"docs\"\nevery = \"6h\"\ndrill_max_age = \"off\"\n",
    );
    assert_eq!(status_source(&status(&sb, &cfg, 0), "docs")["state"], "ok");

    // The human form names the problem.
    let cfg = config(&sb, "[sources.docs]\npath = \"docs\"\nevery = \"1h\"\n");
    sb.backup(&[&docs], &["--name", "docs", "--time", &ago(5)]);
    let mut c = sb.bare();
    c.args(["--config", &cfg, "status"]);
    let o = run(c);
    // The newest snapshot is the one just made (now), so docs is fine; 5 h ago is older.
    assert_eq!(o.code, 0, "{o:#?}");
    assert!(o.stdout.contains("ok docs"), "{o:#?}");
}

#[test]
fn an_unhealthy_database_and_unconfigured_sources_are_reported() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    fs::copy(testdata("sqlite/chinook.sqlite"), &db).unwrap();
    sb.backup(&[&db], &["--name", "shop"]);
    let other = sb.p("other.txt");
    fs::write(&other, "x").unwrap();
    sb.backup(&[&other], &["--name", "loose"]);
    let cfg = config(
        &sb,
        "drill_max_age = \"off\"\n[sources.shop]\npath = \"shop.db\"\nevery = \"1d\"\n",
    );
    // An unconfigured source that never passed a drill needs attention (it has no drill age
    // limit, but "never proven" is not "ok").
    let r = status(&sb, &cfg, 5);
    assert_eq!(status_source(&r, "loose")["state"], "unverified", "{r:#}");
    sb.run(&["verify", "--restore-test", "latest:loose"]).ok();
    let r = status(&sb, &cfg, 0);
    let s = status_source(&r, "shop");
    assert_eq!(s["database_health"], "ok", "{s:#}");
    assert_eq!(s["configured"], true);
    let l = status_source(&r, "loose");
    assert_eq!(l["configured"], false, "{l:#}");
    assert_eq!(l["schedule"], Value::Null);
    assert_eq!(l["state"], "ok", "{l:#}");

    // Three pages overwritten with noise: the next capture's quick check says so, and status
    // calls the source unhealthy.
    let mut bytes = fs::read(&db).unwrap();
    bytes[100 * 4096..103 * 4096].copy_from_slice(&random_bytes(3, 3 * 4096));
    fs::write(&db, &bytes).unwrap();
    sb.backup(&[&db], &["--name", "shop"]);
    let r = status(&sb, &cfg, 5);
    let s = status_source(&r, "shop");
    assert_eq!(s["state"], "unhealthy", "{s:#}");
    assert_ne!(s["database_health"], "ok", "{s:#}");

    // Bad schedules are configuration errors that name the source and the key.
    for (body, key) in [
        ("every = \"soon\"", "every"),
        ("cron = \"at noon\"", "cron"),
        ("every = \"1h\"\ncron = \"0 * * * *\"", "every"),
        ("drill_max_age = \"a week\"", "drill_max_age"),
    ] {
        let cfg = config(
            &sb,
            &format!("[sources.shop]\npath = \"shop.db\"\n{body}\n"),
        );
        let mut c = sb.bare();
        c.args(["--config", &cfg, "status"]);
        let o = run(c).code(2);
        assert!(
            o.stderr.contains("shop") && o.stderr.contains(key),
            "{body}: {o:#?}"
        );
    }
}

/// 3-2-1: a source with `copy_to` and `copies = 2` needs attention until its newest snapshot is
/// in both repositories; `offsite = true` until one of them is remote (here never: both are
/// local folders); a copy that cannot be read is named; each copy shows its newest verified
/// snapshot.
#[test]
fn copies_of_the_newest_snapshot_are_counted_against_the_sources_rules() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/a.txt"), "a\n").unwrap();
    let rules = |extra: &str| {
        config(
            &sb,
            &format!(
                "drill_max_age = \"off\"\n\
                 [repositories.second]\nlocation = \"second-repo\"\n\
                 [sources.docs]\npath = \"docs\"\ncopy_to = [\"second\"]\ncopies = 2\n{extra}"
            ),
        )
    };
    let cfg = rules("");
    let docs = sb.p("docs");
    sb.backup(&[&docs], &["--name", "docs"]);
    // Not copied yet: the second repository does not even exist.
    let r = status(&sb, &cfg, 5);
    let d = status_source(&r, "docs");
    assert_eq!(d["state"], "copies", "{d:#}");
    assert_eq!(d["copies"]["copies"], 1, "{d:#}");
    let problems = d["problems"].to_string();
    assert!(problems.contains("1 of the required 2 copies"), "{d:#}");
    assert!(problems.contains("second-repo failing"), "{d:#}");

    let mut c = sb.bare();
    c.args(["--config", &cfg, "copy", "--to", "second"]);
    run(c).ok();
    let mut c = sb.bare();
    c.args([
        "--config",
        &cfg,
        "--repo",
        "second",
        "verify",
        "--restore-test",
        "latest:docs",
    ]);
    run(c).ok();
    let r = status(&sb, &cfg, 0);
    let d = status_source(&r, "docs");
    assert_eq!(d["state"], "ok", "{d:#}");
    let copies = &d["copies"];
    assert_eq!(
        (copies["copies"].as_u64(), copies["storage_kinds"].as_u64()),
        (Some(2), Some(1)),
        "{d:#}"
    );
    let second = &copies["repositories"][1];
    assert_eq!(second["name"], "second", "{d:#}");
    assert_eq!(second["holds_newest"], true, "{d:#}");
    assert_eq!(second["newest_verified"], d["last_snapshot"], "{d:#}");
    assert_eq!(
        copies["repositories"][0]["newest_verified"],
        Value::Null,
        "{d:#}"
    );

    // A newer snapshot not copied yet: one copy behind.
    fs::write(sb.p("docs/a.txt"), "b\n").unwrap();
    sb.backup(&[&docs], &["--name", "docs"]);
    let d = status_source(&status(&sb, &cfg, 5), "docs").clone();
    assert_eq!(
        d["copies"]["repositories"][1]["holds_newest"], false,
        "{d:#}"
    );

    // Offsite required: two local folders never meet it.
    let mut c = sb.bare();
    c.args(["--config", &cfg, "copy", "--to", "second"]);
    run(c).ok();
    let cfg = rules("offsite = true\n");
    let d = status_source(&status(&sb, &cfg, 5), "docs").clone();
    assert!(
        d["problems"].to_string().contains("no offsite copy"),
        "{d:#}"
    );
    let mut c = sb.bare();
    c.args(["--config", &cfg, "status"]);
    let text = run(c).code(5).stdout;
    assert!(
        text.contains("2 hold the newest snapshot (local, local), none offsite"),
        "{text}"
    );

    // A rule that cannot be met is refused when the config loads.
    let cfg = config(&sb, "[sources.docs]\npath = \"docs\"\ncopies = 2\n");
    let mut c = sb.bare();
    c.args(["--config", &cfg, "status"]);
    let o = run(c).code(2);
    assert!(o.stderr.contains("copies = 2"), "{o:#?}");
}
