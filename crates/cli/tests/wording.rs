//! Output that must not mislead: one time format, drills that say age and duration, honest
//! stats, help that lists global options and environment variables once, remedies worded by
//! the CLI, the in-place prompt, and source names that are also another source's item.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Writes ./backstop.toml in the sandbox (the commands run there and pick it up).
fn config(sb: &Sandbox, body: &str) {
    fs::write(
        sb.p("backstop.toml"),
        format!("repository = \"repo\"\ntime_zone = \"Europe/Berlin\"\n{body}"),
    )
    .unwrap();
}

/// A small SQLite database at `rel` in the sandbox.
fn database(sb: &Sandbox, rel: &str) -> std::path::PathBuf {
    let db = sb.p(rel);
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    sql(
        &db,
        "CREATE TABLE t(x); INSERT INTO t VALUES (1); PRAGMA journal_mode=WAL;",
    );
    db
}

fn stdout(sb: &Sandbox, args: &[&str]) -> String {
    sb.run(args).ok().stdout
}

/// An RFC 3339 time (`2024-01-01T10:00:00Z`, with or without fractions) anywhere in `s`.
fn has_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(19)).any(|i| {
        b[i + 4] == b'-'
            && b[i + 7] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':'
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
    })
}

#[test]
fn help_shows_global_options_apart_and_each_environment_variable_once() {
    let sb = Sandbox::empty();
    let top = run({
        let mut c = sb.bare();
        c.arg("--help");
        c
    })
    .ok()
    .stdout;
    assert!(top.contains("Global options:"), "{top}");
    assert_eq!(top.matches("BACKSTOP_REPO").count(), 1, "{top}");
    for var in ["BACKSTOP_PASSWORD ", "BACKSTOP_PASSWORD_FILE", "TZ "] {
        assert!(top.contains(var), "{var} missing: {top}");
    }
    assert!(!top.contains("[env:"), "{top}");

    let restore = run({
        let mut c = sb.bare();
        c.args(["restore", "--help"]);
        c
    })
    .ok()
    .stdout;
    let own = restore.find("--allow-schema-change").unwrap();
    let global = restore.find("Global options:").expect(&restore);
    let repo = restore.find("--repo").unwrap();
    assert!(own < global && global < repo, "{restore}");
    assert!(!restore.contains("[env:"), "{restore}");
    assert!(restore.contains("see `backstop --help`"), "{restore}");
}

#[test]
fn human_output_shows_times_one_way_in_the_configured_zone_and_json_keeps_rfc3339() {
    let sb = Sandbox::plain();
    config(&sb, "[sources.docs]\npath = \"docs\"\n");
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/a.txt"), "a").unwrap();
    sb.run(&[
        "backup",
        "--source",
        "docs",
        "--time",
        "2024-01-01T10:00:00.123456789Z",
    ])
    .ok();
    sb.run(&["verify", "--restore-test", "--latest"]).ok();
    // 10:00 UTC is 11:00 in Berlin; seconds, no fraction, no offset.
    let local = "2024-01-01 11:00:00";
    for args in [
        &["show", "latest"][..],
        &["snapshots"],
        &["stats"],
        &["status"],
        &["restore", "latest", "--to", "out", "--dry-run"],
    ] {
        let out = sb.run(args);
        assert!(out.stdout.contains(local), "{args:?}: {out:#?}");
        assert!(!has_rfc3339(&out.stdout), "{args:?}: {out:#?}");
    }
    let show = stdout(&sb, &["show", "latest"]);
    let drilled = show.lines().find(|l| l.starts_with("verified")).unwrap();
    assert!(!has_rfc3339(drilled), "{drilled}");
    // --json is a contract: RFC 3339 as before.
    let v = sb.json(&["show", "latest"]);
    assert_eq!(v["time"], "2024-01-01T10:00:00.123456789Z");
    assert_eq!(sb.snapshots()[0]["time"], "2024-01-01T10:00:00.123456789Z");
}

#[test]
fn a_drill_says_when_it_ran_and_how_long_it_took() {
    let sb = Sandbox::plain();
    config(&sb, "[sources.docs]\npath = \"docs\"\n");
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/a.txt"), "a").unwrap();
    sb.run(&["backup", "--source", "docs"]).ok();
    sb.run(&["verify", "--restore-test", "--latest"]).ok();
    for args in [&["status"][..], &["snapshots"]] {
        let out = stdout(&sb, args);
        let line = out
            .lines()
            .find(|l| l.contains("drill passed"))
            .unwrap_or_else(|| panic!("{args:?}: {out}"));
        assert!(
            line.contains("drill passed just now (took ") && line.contains(" s)"),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn stats_calls_compression_by_its_name_and_does_not_spread_one_backup_over_a_month() {
    let sb = Sandbox::plain();
    fs::write(sb.p("big.txt"), "all work and no play ".repeat(50_000)).unwrap();
    sb.backup(&[&sb.p("big.txt")], &[]);
    let out = stdout(&sb, &["stats"]);
    assert!(!out.contains("dedup ratio"), "{out}");
    assert!(out.contains("deduplication and compression"), "{out}");
    assert!(out.contains("too little history"), "{out}");
    assert!(!out.contains("a day on average"), "{out}");
    assert!(!out.contains("days at the average growth"), "{out}");

    // Four days of history: measured over those days, not thirty.
    let sb = Sandbox::plain();
    let f = sb.p("f.bin");
    let now = jiff::Timestamp::now();
    for days_ago in [4, 3, 2, 1] {
        fs::write(&f, random_bytes(days_ago, 100_000)).unwrap();
        let t = now - jiff::SignedDuration::from_hours(24 * days_ago as i64);
        sb.backup(&[&f], &["--time", &t.to_string()]);
    }
    let out = stdout(&sb, &["stats"]);
    let line = out.lines().find(|l| l.starts_with("growth")).unwrap();
    assert!(
        line.contains("a day on average since the first backup") && line.contains("4.0 days ago"),
        "{out}"
    );
}

#[test]
fn database_restore_refusals_word_their_remedy_in_the_cli() {
    let sb = Sandbox::plain();
    let db = database(&sb, "data/shop.db");
    config(&sb, "[sources.shop]\npath = \"data/shop.db\"\n");
    sb.run(&["backup", "--source", "shop"]).ok();

    sql(&db, "PRAGMA user_version = 7");
    let o = sb.run(&[
        "restore",
        "latest",
        "--source",
        "shop",
        "--in-place",
        "--yes",
    ]);
    assert_eq!(o.code, 2, "{o:#?}");
    let error = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(error.contains("differs from the snapshot's"), "{error}");
    assert!(!error.contains("--"), "the engine names no flag: {error}");
    assert!(o.stderr.contains("hint:") && o.stderr.contains("--allow-schema-change"));

    fs::remove_file(&db).unwrap();
    let o = sb.run(&[
        "restore",
        "latest",
        "--source",
        "shop",
        "--in-place",
        "--yes",
    ]);
    assert_eq!(o.code, 13, "{o:#?}");
    let error = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(error.contains("there is no database at"), "{error}");
    assert!(!error.contains("--"), "the engine names no flag: {error}");
    assert!(
        o.stderr.contains("hint: restore to a new file with --to"),
        "{o:#?}"
    );
}

/// Runs `backstop ARGS` on a terminal (through `script`) with `answer` typed at the prompt.
fn on_terminal(sb: &Sandbox, args: &str, answer: &str) -> Out {
    let line = format!("{} --repo {} {args}", bin().display(), sb.repo.display());
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(sb.path())
        .env_remove("BACKSTOP_REPO")
        .env_remove("BACKSTOP_PASSWORD")
        .env_remove("BACKSTOP_PASSWORD_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("running script (util-linux)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    Out::from_output(child.wait_with_output().unwrap())
}

#[test]
#[cfg(unix)]
fn the_in_place_prompt_accepts_only_the_database_name_it_asks_for() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to give the prompt a terminal");
        return;
    }
    let sb = Sandbox::plain();
    let db = database(&sb, "data/shop.db");
    config(&sb, "[sources.shop]\npath = \"data/shop.db\"\n");
    sb.run(&["backup", "--source", "shop"]).ok();
    sql(&db, "INSERT INTO t VALUES (2)");
    let restore = "restore latest --source shop --in-place";

    // The source's name is not what the prompt asks for.
    let o = on_terminal(&sb, restore, "shop\n");
    assert_eq!(o.code, 2, "{o:#?}");
    assert!(
        o.stdout.contains("Type the database name (shop.db)"),
        "{o:#?}"
    );
    assert!(o.stdout.contains("not confirmed"), "{o:#?}");
    assert_eq!(
        sql(&db, "SELECT count(*) FROM t"),
        "2",
        "nothing was changed"
    );
    assert_eq!(sb.snapshots().len(), 1, "no safety snapshot either");

    let o = on_terminal(&sb, restore, "shop.db\n");
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(sql(&db, "SELECT count(*) FROM t"), "1");
}

/// A repository where `shop.db` is both a source (an old backup filed under the database's
/// name) and the item of the configured source `shop` (newer).
fn two_histories(sb: &Sandbox, configured: &str) -> (String, String) {
    let db = database(sb, "data/shop.db");
    config(sb, configured);
    let old = sb.backup(
        &[Path::new("data/shop.db")],
        &["--name", "shop.db", "--time", "2024-01-01T10:00:00Z"],
    );
    sql(&db, "INSERT INTO t VALUES (2)");
    let new = sb.backup(&[Path::new("data/shop.db")], &["--name", "shop"]);
    (
        old["id"].as_str().unwrap().to_string(),
        new["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_name_that_is_a_source_and_another_sources_item_is_refused_naming_both() {
    let sb = Sandbox::plain();
    let (old, new) = two_histories(&sb, "[sources.shop]\npath = \"data/shop.db\"\n");
    let now = jiff::Timestamp::now().to_string();
    let at_now = format!("shop.db@{now}");

    for args in [
        &["restore", "latest:shop.db", "--to", "out.db"][..],
        &["show", "latest:shop.db"],
        &["pin", "latest:shop.db"],
        &["restore", &at_now, "--to", "out.db"],
    ] {
        let o = sb.run(args);
        assert_eq!(o.code, 2, "{args:?}: {o:#?}");
        for needed in [
            "ambiguous",
            &old[..8],
            &new[..8],
            "source shop.db",
            "source shop",
            "--source shop.db",
        ] {
            assert!(o.stderr.contains(needed), "{args:?}: {needed} in {o:#?}");
        }
    }
    assert!(!sb.p("out.db").exists(), "nothing restored");
    let o = sb.run(&["restore", "latest:shop.db", "--to", "out.db"]);
    assert!(o.stderr.contains("`latest:shop`"), "{o:#?}");
    let o = sb.run(&["restore", &at_now, "--to", "out.db"]);
    assert!(o.stderr.contains(&format!("`shop@{now}`")), "{o:#?}");

    // Each spelling the message offers takes what it says.
    let id_of = |args: &[&str]| sb.json(args)["id"].as_str().unwrap().to_string();
    assert_eq!(id_of(&["show", "latest", "--source", "shop.db"]), old);
    assert_eq!(id_of(&["show", "latest:shop"]), new);
    let v = sb.json(&["restore", "latest", "--source", "shop.db", "--to", "old.db"]);
    assert_eq!(v["snapshot"], old.as_str());
    assert_eq!(sql(&sb.p("old.db"), "SELECT count(*) FROM t"), "1");

    // Without the old history, the name is no source: not found, naming the one that holds it.
    let sb = Sandbox::plain();
    database(&sb, "data/shop.db");
    config(&sb, "[sources.shop]\npath = \"data/shop.db\"\n");
    sb.run(&["backup", "data/shop.db"]).ok();
    let o = sb.run(&["restore", "latest:shop.db", "--to", "out.db"]);
    assert_eq!(o.code, 13, "{o:#?}");
    assert!(o.stderr.contains("`latest:shop`"), "{o:#?}");
}

#[test]
fn a_configured_source_wins_with_a_note_naming_the_other_candidate() {
    let sb = Sandbox::plain();
    // Here `shop.db` is the configured source; `shop` is an ad-hoc history of the same file.
    let (old, new) = two_histories(&sb, "[sources.\"shop.db\"]\npath = \"data/shop.db\"\n");
    let o = sb.run(&["--json", "show", "latest:shop.db"]).ok();
    assert_eq!(o.json()["id"], old.as_str());
    assert!(o.stderr.contains("note:"), "{o:#?}");
    assert!(
        o.stderr.contains("configured") && o.stderr.contains(&new[..8]),
        "{o:#?}"
    );
    assert!(o.stderr.contains("`latest:shop`"), "{o:#?}");
}
