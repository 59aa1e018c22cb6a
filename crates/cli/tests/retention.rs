//! End-to-end tests of retention: `forget` plans and their reasons (count and calendar rules,
//! time zones, per-source policies from backstop.toml, the lifecycle rules: pins, pre-change
//! and pre-restore snapshots, restore drills), `prune` (space reclaimed, remaining snapshots
//! intact, dry runs, repacking, refusal under a backup's lock) and `stats`.
//!
//! A source's plan is compared as one line (see `plan`): each snapshot newest first, as its
//! index in the list of ids the test made, `:` and its reasons, or `-` when it is forgotten.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// 1. keep-last, dry run, one group per source

#[test]
fn forget_keep_last_dry_run_then_real_per_source() {
    let sb = Sandbox::plain();
    let alpha = series(&sb, "alpha", 5);
    let beta = series(&sb, "beta", 3);

    let (before, files_before) = (sb.snapshots(), listing(&sb.repo));
    let dry = cli(&sb, "forget --keep-last 2 --dry-run");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["forgotten"], 0);
    assert_eq!(dry["prune"], Value::Null);
    assert_eq!(group_names(&dry), ["alpha", "beta"]);
    assert_eq!(plan(&dry, "alpha", &alpha), "4:last 3:last 2:- 1:- 0:-");
    assert_eq!(plan(&dry, "beta", &beta), "2:last 1:last 0:-");
    let g = group(&dry, "alpha");
    assert_eq!((&g["keep"], &g["forget"]), (&2.into(), &3.into()));
    assert_eq!(g["policy"]["keep_last"], 2, "{g:#}");
    assert_eq!(g["policy"]["keep_daily"], Value::Null, "{g:#}");
    assert_eq!(sb.snapshots(), before, "a dry run forgets nothing");
    assert_eq!(listing(&sb.repo), files_before, "a dry run changes no file");

    // --source: only that group is planned and applied.
    let out = cli(&sb, "forget --keep-last 2 --source beta");
    assert_eq!(group_names(&out), ["beta"]);
    assert_eq!(out["forgotten"], 1, "{out:#}");
    let mut left: Vec<String> = alpha.iter().chain(&beta[1..]).cloned().collect();
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left.clone()));

    // Then every source: exactly what the dry run said of alpha goes.
    let out = cli(&sb, "forget --keep-last 2");
    assert_eq!(out["dry_run"], false);
    assert_eq!(out["forgotten"], 3, "{out:#}");
    assert_eq!(plan(&out, "alpha", &alpha), "4:last 3:last 2:- 1:- 0:-");
    assert_eq!(group(&out, "beta")["forget"], 0);
    left.retain(|id| !alpha[..3].contains(id));
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left.clone()));

    // An unknown source: not found, nothing changed.
    let o = cli_run(&sb, "forget --keep-last 1 --source gamma").code(13);
    assert!(o.stderr.contains("gamma"), "{o:#?}");
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left));
}

// ---------------------------------------------------------------------------------------------
// 2. Calendar rules and time zones

#[test]
fn keep_daily_follows_the_time_zone() {
    let sb = Sandbox::plain();
    let f = sb.p("f.txt");
    fs::write(&f, "daily\n").unwrap();
    // Two snapshots on each of four days (UTC). 2024-03-03T23:30Z is 00:30 on 4 March in
    // Berlin (CET, UTC+1: summer time starts on 31 March).
    let times = ["01T08:00", "01T14:00", "02T09:00", "02T16:00"];
    let times = times
        .iter()
        .chain(&["03T10:00", "03T23:30", "04T07:00", "04T12:00"]);
    let time = |t: &str| format!("2024-03-{t}:00Z");
    let id: Vec<String> = times.map(|t| snap(&sb, &f, "cal", &time(t))).collect();
    let utc = "7:daily@2024-03-04 6:- 5:daily@2024-03-03 4:- 3:daily@2024-03-02 2:- 1:- 0:-";
    let berlin = "7:daily@2024-03-04 6:- 5:- 4:daily@2024-03-03 3:daily@2024-03-02 2:- 1:- 0:-";

    let out = cli(&sb, "forget --keep-daily 3 --time-zone UTC --dry-run");
    assert_eq!(plan(&out, "cal", &id), utc);
    let berlin_args = "forget --keep-daily 3 --time-zone Europe/Berlin";
    let out = cli(&sb, &format!("{berlin_args} --dry-run"));
    assert_eq!(out["plan"]["time_zone"], "Europe/Berlin");
    assert_eq!(plan(&out, "cal", &id), berlin);

    // `time_zone` in the config is the default; --time-zone overrides it.
    let cfg = write_config(&sb, "tz.toml", "time_zone = \"Europe/Berlin\"\n");
    let args = format!("--config {cfg} forget --keep-daily 3 --dry-run");
    assert_eq!(plan(&cli(&sb, &args), "cal", &id), berlin);
    let args = format!("--config {cfg} forget --keep-daily 3 --dry-run --time-zone UTC");
    assert_eq!(plan(&cli(&sb, &args), "cal", &id), utc);
    assert_eq!(sb.snapshots().len(), 8);

    let out = cli(&sb, berlin_args);
    assert_eq!(out["forgotten"], 5, "{out:#}");
    let left = vec![id[7].clone(), id[4].clone(), id[3].clone()];
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left));

    let o = cli_run(&sb, "forget --keep-daily 1 --time-zone Mars/Olympus").code(2);
    assert!(o.stderr.contains("Mars/Olympus"), "{o:#?}");
    assert_eq!(sb.snapshots().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// 3. Lifecycle rules

#[test]
fn pinned_snapshot_survives_until_unpinned() {
    let sb = Sandbox::plain();
    let id = series(&sb, "app", 3);
    cli_run(&sb, &format!("pin {} --note audit", id[0])).ok();
    let pinned = |sb: &Sandbox| -> Vec<bool> {
        sb.snapshots().iter().map(|s| s["pinned"] == true).collect()
    };
    assert_eq!(pinned(&sb), [true, false, false]);

    let out = cli(&sb, "forget --keep-last 1");
    assert_eq!(plan(&out, "app", &id), "2:last 1:- 0:pinned");
    assert_eq!(out["forgotten"], 1);
    assert_eq!(ids(&sb.snapshots()), [id[0].clone(), id[2].clone()]);

    cli_run(&sb, &format!("unpin {}", id[0])).ok();
    assert_eq!(pinned(&sb), [false, false]);
    let out = cli(&sb, "forget --keep-last 1");
    assert_eq!(plan(&out, "app", &id), "2:last 0:-");
    assert_eq!(out["forgotten"], 1);
    assert_eq!(out["records_deleted"], 2, "the pin and the unpin: {out:#}");
    assert_eq!(ids(&sb.snapshots()), [id[2].clone()]);
    assert_eq!(count_files(&sb.repo.join("records")), 0);
}

#[test]
fn pre_change_snapshot_is_kept_until_verified_and_through_the_grace_period() {
    let sb = Sandbox::plain();
    let f = sb.p("f.txt");
    fs::write(&f, "before the migration\n").unwrap();
    let args = "--name app --time 2024-03-01T08:00:00Z --kind pre-change";
    let pre = backup_id(&sb, &f, args);
    let id = vec![pre.clone(), snap(&sb, &f, "app", "2024-03-02T08:00:00Z")];
    let other = snap(&sb, &f, "other", "2024-03-01T08:00:00Z");

    let dry = cli(&sb, "forget --keep-last 1 --source app --dry-run");
    assert_eq!(plan(&dry, "app", &id), "1:last 0:pre-change-pending");
    let state = &row(&sb, &pre)["pre_change"]["state"];
    assert_eq!(state, "pending-verification");

    // Only pre-change snapshots are marked verified.
    let o = cli_run(&sb, &format!("mark-verified {other} --by ana")).code(2);
    assert!(o.stderr.contains("pin"), "{o:#?}");
    assert_eq!(row(&sb, &other)["pre_change"], Value::Null);

    sb.run(&[
        "mark-verified",
        &pre,
        "--by",
        "ana",
        "--note",
        "orders look right",
    ])
    .ok();
    let p = &row(&sb, &pre)["pre_change"];
    assert_eq!(p["state"], "verified", "{p:#}");
    assert_eq!(p["verified_by"], "ana", "{p:#}");
    let (until, at) = (ts(&p["until"]), ts(&p["verified_at"]));
    assert_eq!(until.duration_since(at), days(7), "{p:#}");

    // Default lifecycle: the grace period keeps it.
    let out = cli(&sb, "forget --keep-last 1 --source app");
    assert_eq!(plan(&out, "app", &id), "1:last 0:pre-change-grace");
    assert_eq!(out["forgotten"], 0, "{out:#}");
    let r = reason(&out, "app", &pre, "pre-change-grace");
    assert_eq!(ts(&r["until"]), until);

    // No grace: retired, and forgotten.
    let text = "[lifecycle]\npre_change_grace = \"0d\"\n";
    let cfg = write_config(&sb, "nograce.toml", text);
    let snaps = cli(&sb, &format!("--config {cfg} snapshots"));
    let p = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == pre.as_str());
    assert_eq!(p.unwrap()["pre_change"]["state"], "retired", "{p:#?}");
    let out = cli(&sb, &format!("--config {cfg} forget --keep-last 1"));
    assert_eq!(plan(&out, "app", &id), "1:last 0:-");
    assert_eq!(out["forgotten"], 1);
    let left = sorted(vec![id[1].clone(), other]);
    assert_eq!(sorted(ids(&sb.snapshots())), left);
}

#[test]
fn pre_restore_snapshot_is_kept_for_its_minimum_age() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    fs::write(&db, fs::read(testdata("sqlite/chinook.sqlite")).unwrap()).unwrap();
    let hour_ago = Timestamp::now() - SignedDuration::from_hours(1);
    let first = snap(&sb, &db, "shop", &hour_ago.to_string());
    // `backup --kind pre-restore` is refused (e2e.rs): only an in-place restore makes one, and
    // at the current time.
    let r = cli(&sb, &format!("restore {first} --in-place --yes"));
    let safety = r["safety_snapshot"].as_str().expect("safety snapshot");
    let newest = backup_id(&sb, &db, "--name shop");
    let id = vec![first, safety.to_string(), newest.clone()];
    assert_eq!(row(&sb, safety)["kind"], "pre-restore");
    let safety_time = ts(&row(&sb, safety)["time"]);

    let out = cli(&sb, "forget --keep-last 1");
    assert_eq!(plan(&out, "shop", &id), "2:last 1:pre-restore-min-age 0:-");
    let r = reason(&out, "shop", safety, "pre-restore-min-age");
    assert_eq!(ts(&r["until"]).duration_since(safety_time), days(7));

    // Older than the minimum age: the policy alone decides.
    let text = "[lifecycle]\npre_restore_min_age = \"0d\"\n";
    let cfg = write_config(&sb, "young.toml", text);
    let out = cli(&sb, &format!("--config {cfg} forget --keep-last 1"));
    assert_eq!(plan(&out, "shop", &id), "2:last 1:-");
    assert_eq!(ids(&sb.snapshots()), [newest]);
}

#[test]
fn newest_drilled_snapshot_is_kept() {
    let sb = Sandbox::plain();
    let id = series(&sb, "app", 3);
    cli_run(&sb, &format!("verify --restore-test {}", id[0])).ok();
    cli_run(&sb, &format!("verify --restore-test {}", id[1])).ok();
    assert_eq!(row(&sb, &id[1])["verification"]["state"], "passed");

    let dry = cli(&sb, "forget --keep-last 1 --dry-run");
    let out = cli(&sb, "forget --keep-last 1");
    for o in [&dry, &out] {
        assert_eq!(plan(o, "app", &id), "2:last 1:newest-drilled 0:-");
    }
    assert_eq!(ids(&sb.snapshots()), [id[1].clone(), id[2].clone()]);
}

// ---------------------------------------------------------------------------------------------
// 4. Policies from backstop.toml

#[test]
fn configured_policies_per_source_top_level_and_built_in() {
    let sb = Sandbox::plain();
    let docs = series(&sb, "docs", 4);
    let mail = series(&sb, "mail", 5);

    // No config: the built-in default, which keeps all of these.
    let out = cli(&sb, "forget --dry-run");
    for name in ["docs", "mail"] {
        let p = &group(&out, name)["policy"];
        let counts = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];
        let got = counts.map(|k| p[format!("keep_{k}")].as_u64());
        assert_eq!(got, [Some(10), None, Some(30), Some(8), Some(12), None]);
        assert_eq!(group(&out, name)["forget"], 0);
    }
    let o = cli_run(&sb, "forget --dry-run").ok();
    let shown = "docs (keep last 10, daily 30, weekly 8, monthly 12)";
    assert!(o.stdout.contains(shown), "{o:#?}");

    let text = "[retention]\nkeep_last = 3\n\n[sources.docs]\npath = \"f.txt\"\n\
                [sources.docs.retention]\nkeep_last = 2\n";
    let cfg = write_config(&sb, "retention.toml", text);
    // Flags replace every configured policy.
    let args = format!("--config {cfg} forget --keep-last 1 --dry-run");
    let out = cli(&sb, &args);
    assert_eq!(group(&out, "docs")["policy"]["keep_last"], 1);
    assert_eq!(group(&out, "mail")["policy"]["keep_last"], 1);

    let out = cli(&sb, &format!("--config {cfg} forget"));
    assert_eq!(group(&out, "docs")["policy"]["keep_last"], 2, "{out:#}");
    assert_eq!(group(&out, "mail")["policy"]["keep_last"], 3, "{out:#}");
    assert_eq!(group(&out, "mail")["policy"]["keep_daily"], Value::Null);
    assert_eq!(plan(&out, "docs", &docs), "3:last 2:last 1:- 0:-");
    assert_eq!(plan(&out, "mail", &mail), "4:last 3:last 2:last 1:- 0:-");
    assert_eq!(out["forgotten"], 4);
    let left: Vec<String> = docs[2..].iter().chain(&mail[2..]).cloned().collect();
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left.clone()));

    // A misspelt rule is an error naming it, not a rule silently missing.
    let typos = [
        ("[retention]\nkeep_lats = 3\n", "keep_lats"),
        (
            "[sources.d]\npath = \"f\"\n[sources.d.retention]\nkeep_daly = 1\n",
            "keep_daly",
        ),
    ];
    for (text, key) in typos {
        let cfg = write_config(&sb, "typo.toml", text);
        let o = cli_run(&sb, &format!("--config {cfg} forget")).code(2);
        assert!(o.stderr.contains(key), "{o:#?}");
    }
    assert_eq!(sorted(ids(&sb.snapshots())), sorted(left));
}

// ---------------------------------------------------------------------------------------------
// 5. forget + prune

#[test]
fn forget_with_prune_reclaims_space_and_keeps_the_rest_intact() {
    let sb = Sandbox::plain();
    let states = evolve(&sb);
    let data = sb.repo.join("data");
    let size_before = dir_bytes(&data);

    let out = cli(&sb, "forget --keep-last 2 --prune");
    assert_eq!(out["forgotten"], 4, "{out:#}");
    let p = &out["prune"];
    assert_eq!(p["dry_run"], false, "{p:#}");
    assert!(p["packs_deleted"].as_u64().unwrap() > 0, "{p:#}");
    assert_eq!(p["plan"]["snapshots"], 2, "{p:#}");
    assert_eq!(p["bytes_before"], size_before, "{p:#}");
    let size_after = dir_bytes(&data);
    assert_eq!(p["bytes_after"], size_after, "{p:#}");
    assert!(size_after < size_before, "{size_after} >= {size_before}");

    let want: Vec<String> = states[4..].iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids(&sb.snapshots()), want);
    assert_restores(&sb, &states[4..]);
    let (_, v) = sb.verify(true);
    assert_eq!(v["unreferenced_packs"], 0, "{v:#}");
    sb.assert_clean();

    // Nothing left to do for a second prune.
    let again = cli(&sb, "prune");
    assert_eq!(again["plan"]["delete_packs"], 0, "{again:#}");
    assert_eq!(again["plan"]["repack_packs"], 0, "{again:#}");
    assert_eq!(again["packs_deleted"], 0, "{again:#}");
    assert_eq!(dir_bytes(&data), size_after);
}

#[test]
fn prune_dry_run_changes_nothing_and_predicts_the_real_run() {
    let sb = Sandbox::plain();
    let states = evolve(&sb);
    cli(&sb, "forget --keep-last 2");
    let before = listing(&sb.repo);

    let dry = cli(&sb, "prune --dry-run");
    assert_eq!(dry["dry_run"], true);
    let plan = dry["plan"].clone();
    assert!(plan["delete_packs"].as_u64().unwrap() > 0, "{dry:#}");
    assert_eq!(listing(&sb.repo), before, "prune --dry-run changed files");

    let real = cli(&sb, "prune");
    let keys = ["delete_packs", "repack_packs", "used_chunks", "bytes"];
    for k in keys {
        assert_eq!(real["plan"][k], plan[k], "{k}: {real:#}");
    }
    assert_ne!(listing(&sb.repo), before);
    let again = cli(&sb, "prune");
    assert_eq!(again["plan"]["delete_packs"], 0, "{again:#}");
    assert_eq!(again["plan"]["repack_packs"], 0, "{again:#}");
    assert_restores(&sb, &states[4..]);
}

#[test]
fn forget_prune_dry_run_previews_what_the_forget_frees() {
    let sb = Sandbox::plain();
    evolve(&sb);
    let dry = cli(&sb, "forget --keep-last 2 --prune --dry-run");
    let real = cli(&sb, "forget --keep-last 2 --prune");
    assert_eq!(dry["prune"]["plan"]["snapshots"], 2, "{dry:#}");
    for k in ["delete_packs", "repack_packs", "used_chunks"] {
        let (d, r) = (&dry["prune"]["plan"][k], &real["prune"]["plan"][k]);
        assert_eq!(d, r, "{k}: {dry:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Repacking everything

#[test]
fn prune_max_unused_zero_leaves_no_unused_bytes() {
    let sb = Sandbox::plain();
    let states = evolve(&sb);
    cli(&sb, "forget --keep-last 2");
    let st = cli(&sb, "stats");
    assert!(st["unused_bytes"].as_u64().unwrap() > 1_000_000, "{st:#}");

    let out = cli(&sb, "prune --max-unused 0");
    let repacked = out["plan"]["repack_packs"].as_u64().unwrap();
    assert!(repacked >= 1, "{out:#}");
    assert_eq!(out["plan"]["unused_after"], 0, "{out:#}");
    let st = cli(&sb, "stats");
    let [unused, packs] = ["unused_bytes", "pack_bytes"].map(|k| st[k].as_u64().unwrap());
    assert!(unused * 100 < packs, "unused {unused} of {packs}: {st:#}");
    sb.assert_clean();
    assert_restores(&sb, &states[4..]);
    let o = cli_run(&sb, "prune --max-unused 150").code(2);
    assert!(o.stderr.contains("150"), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// 7. stats

#[test]
fn stats_reports_sizes_dedup_sources_and_growth() {
    let sb = Sandbox::plain();
    let dir = sb.p("same");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("r.bin"), random_bytes(70, 2_000_000)).unwrap();
    fs::write(dir.join("c.csv"), compressible(71, 500_000)).unwrap();

    backup_id(&sb, &dir, "--name one");
    let st = cli(&sb, "stats");
    let ratio = |st: &Value| st["dedup_ratio"].as_f64().unwrap();
    assert!(ratio(&st) < 1.5, "one copy: {st:#}");
    backup_id(&sb, &dir, "--name two");
    let st = cli(&sb, "stats");
    assert!(ratio(&st) > 1.5, "two copies: {st:#}");
    let three_days_ago = Timestamp::now() - SignedDuration::from_hours(72);
    snap(&sb, &dir, "one", &three_days_ago.to_string());

    let st = cli(&sb, "stats");
    assert_eq!(st["snapshots"], 3);
    assert_eq!(st["pack_bytes"], dir_bytes(&sb.repo.join("data")), "{st:#}");
    let [total, packs] = ["total_bytes", "pack_bytes"].map(|k| st[k].as_u64().unwrap());
    assert!(total > packs, "{st:#}");
    let sources = st["sources"].as_array().unwrap();
    let per: Vec<String> = sources
        .iter()
        .map(|s| format!("{} {}", s["name"].as_str().unwrap(), s["snapshots"]))
        .collect();
    assert_eq!(per, ["one 2", "two 1"]);
    assert!(st["free_bytes"].is_u64(), "{st:#}");

    let growth = st["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 30);
    let tz = jiff::tz::TimeZone::system();
    let day = |t: Timestamp| t.to_zoned(tz.clone()).date().to_string();
    let on = |date: &str| -> u64 {
        let d = growth.iter().find(|d| d["date"] == date);
        let d = d.unwrap_or_else(|| panic!("no growth entry for {date}: {growth:#?}"));
        d["snapshots"].as_u64().unwrap()
    };
    assert_eq!(growth[29]["date"], day(Timestamp::now()), "newest last");
    assert_eq!(on(&day(Timestamp::now())), 2, "{growth:#?}");
    assert_eq!(on(&day(three_days_ago)), 1, "{growth:#?}");
    let count = |d: &Value| d["snapshots"].as_u64().unwrap();
    assert_eq!(growth.iter().map(count).sum::<u64>(), 3);

    let week = cli(&sb, "stats --days 7");
    assert_eq!(week["growth"].as_array().unwrap().len(), 7);
}

// ---------------------------------------------------------------------------------------------
// 8. Locks and --json

#[test]
fn prune_is_refused_while_a_backup_holds_its_lock() {
    let sb = Sandbox::plain();
    let f = sb.p("f.bin");
    fs::write(&f, random_bytes(80, 1_000_000)).unwrap();
    snap(&sb, &f, "data", "2024-03-01T08:00:00Z");
    fs::write(&f, random_bytes(81, 1_000_000)).unwrap();
    set_mtime(&f, past(3));
    snap(&sb, &f, "data", "2024-03-02T08:00:00Z");
    cli(&sb, "forget --keep-last 1");

    let copy = sb.p("slow-copy.bin");
    let copy_s = copy.display();
    let script = format!("sleep 4; head -c 1000000 /dev/urandom | tee '{copy_s}'");
    let mut c = sb.cmd();
    c.args(["backup", "--name", "slow", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("starting the slow backup");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_files(&sb.repo.join("locks")) == 0 {
        assert!(Instant::now() < deadline, "the backup took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }

    let without_locks = |sb: &Sandbox| {
        let mut l = listing(&sb.repo);
        l.retain(|k, _| !k.starts_with("locks/"));
        l
    };
    let before = without_locks(&sb);
    let o = sb.run(&["prune"]).code(11);
    assert!(o.stderr.contains("backup"), "{o:#?}");
    assert!(o.stderr.contains(&format!("pid {}", child.id())), "{o:#?}");
    assert_eq!(without_locks(&sb), before, "a refused prune changed files");

    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    let out = cli(&sb, "prune");
    assert!(out["packs_deleted"].as_u64().unwrap() >= 1, "{out:#}");
    let to = sb.p("restored");
    sb.restore("latest:slow", &to);
    assert_eq!(fs::metadata(&copy).unwrap().len(), 1_000_000);
    assert!(fs::read(to.join("slow")).unwrap() == fs::read(&copy).unwrap());
    sb.assert_clean();
}

#[test]
fn repeated_marks_print_json_with_json() {
    let sb = Sandbox::plain();
    let f = sb.p("f.txt");
    fs::write(&f, "x\n").unwrap();
    let id = snap(&sb, &f, "app", "2024-03-01T08:00:00Z");
    let pre = backup_id(&sb, &f, "--name app --kind pre-change");
    let twice = |cmd: String| [cmd.clone(), cmd];
    let runs = [
        twice(format!("pin {id}")),
        twice(format!("unpin {id}")),
        twice(format!("mark-verified {pre} --by ana")),
    ];
    for pair in &runs {
        for (i, args) in pair.iter().enumerate() {
            let o = cli_run(&sb, &format!("--json {args}")).ok();
            let v: Value = serde_json::from_str(o.stdout.trim())
                .unwrap_or_else(|e| panic!("{args}: {e}: {o:#?}"));
            // The first call writes a record; the repeat changes nothing and says so.
            assert_eq!(v["changed"], i == 0, "{args}: {v:#}");
            assert_eq!(v["record"].is_object(), i == 0, "{args}: {v:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Retention per repository, and where copies are

/// A `[repositories.NAME]` section's own `retention` is what `forget --repo NAME` keeps there,
/// of every source; the main repository keeps its own. `snapshots` on either side shows the
/// same snapshot ids, and which other repositories hold each.
#[test]
fn each_repository_keeps_what_its_own_retention_says_and_snapshots_show_the_copies() {
    let sb = Sandbox::plain();
    let docs = series(&sb, "docs", 3);
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[retention]\nkeep_last = 5\n\
         [repositories.offsite]\nlocation = \"offsite-repo\"\n\
         [repositories.offsite.retention]\nkeep_last = 1\n\
         [sources.docs]\npath = \"docs.txt\"\ncopy_to = [\"offsite\"]\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg).arg("--json").args(args);
        run(c).ok().json()
    };
    let copied = with_config(&["copy", "--to", "offsite"]);
    assert_eq!(copied["copied"].as_array().unwrap().len(), 3, "{copied:#}");

    let rows = with_config(&["snapshots"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(sorted(ids(rows)), sorted(docs.clone()));
    assert!(
        rows.iter()
            .all(|r| r["copies"] == serde_json::json!(["offsite"]))
    );

    let out = with_config(&["--repo", "offsite", "forget"]);
    assert_eq!(out["forgotten"], 2, "{out:#}");
    assert_eq!(group(&out, "docs")["policy"]["keep_last"], 1, "{out:#}");
    let out = with_config(&["forget"]);
    assert_eq!(out["forgotten"], 0, "the main repository keeps 5: {out:#}");

    // The offsite copy keeps the newest; the main repository sees it there and nowhere else.
    let main_place = sb.repo.display().to_string();
    let there = with_config(&["--repo", "offsite", "snapshots"]);
    let there = there.as_array().unwrap();
    assert_eq!(ids(there), [docs[2].clone()]);
    assert_eq!(there[0]["copies"], serde_json::json!([main_place]));
    let rows = with_config(&["snapshots"]);
    for r in rows.as_array().unwrap() {
        let expected = match r["id"] == docs[2].as_str() {
            true => serde_json::json!(["offsite"]),
            false => serde_json::json!([]),
        };
        assert_eq!(r["copies"], expected, "{r:#}");
    }
    let mut c = sb.bare();
    c.arg("--config").arg(&cfg).arg("snapshots");
    let text = run(c).ok().stdout;
    assert!(text.contains("[also in offsite]"), "{text}");
    // --no-copies opens no other repository.
    let rows = with_config(&["snapshots", "--no-copies"]);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["copies"] == serde_json::json!([]))
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `backstop --json ARGS` (split at whitespace), asserts success and parses stdout.
#[track_caller]
fn cli(sb: &Sandbox, args: &str) -> Value {
    sb.json(&args.split_whitespace().collect::<Vec<_>>())
}

/// Runs `backstop ARGS` (split at whitespace).
fn cli_run(sb: &Sandbox, args: &str) -> Out {
    sb.run(&args.split_whitespace().collect::<Vec<_>>())
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// `backup --json PATH ARGS` (split at whitespace); returns the snapshot id.
#[track_caller]
fn backup_id(sb: &Sandbox, path: &Path, args: &str) -> String {
    let s = sb.backup(&[path], &args.split_whitespace().collect::<Vec<_>>());
    s["id"].as_str().expect("snapshot id").to_string()
}

/// Backs up `path` as source `name` recorded at `time` (RFC 3339).
#[track_caller]
fn snap(sb: &Sandbox, path: &Path, name: &str, time: &str) -> String {
    backup_id(sb, path, &format!("--name {name} --time {time}"))
}

/// `n` snapshots of a small file as source `name`, at 08:00Z on 1 to `n` March 2024.
fn series(sb: &Sandbox, name: &str, n: u32) -> Vec<String> {
    let f = sb.p(&format!("{name}.txt"));
    fs::write(&f, format!("{name}\n")).unwrap();
    let at = |d: u32| format!("2024-03-{d:02}T08:00:00Z");
    (1..=n).map(|d| snap(sb, &f, name, &at(d))).collect()
}

fn ids(rows: &[Value]) -> Vec<String> {
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();
    rows.iter().map(id).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The `snapshots --json` row of `id`.
fn row(sb: &Sandbox, id: &str) -> Value {
    let found = sb.snapshots().into_iter().find(|s| s["id"] == id);
    found.unwrap_or_else(|| panic!("no snapshot {id}"))
}

fn ts(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    s.parse().unwrap()
}

/// Writes a config file in the sandbox (not named backstop.toml: only `--config` reads it).
fn write_config(sb: &Sandbox, name: &str, text: &str) -> String {
    let p = sb.p(name);
    fs::write(&p, text).unwrap();
    let s = p.to_str().expect("a UTF-8 path");
    assert!(!s.contains(' '), "`cli` splits at spaces: {s}");
    s.to_string()
}

fn group_names(forget: &Value) -> Vec<String> {
    let groups = forget["plan"]["groups"].as_array().unwrap();
    let name = |g: &Value| g["source"].as_str().unwrap().to_string();
    groups.iter().map(name).collect()
}

/// The plan of `source` in `forget --json` output.
fn group<'a>(forget: &'a Value, source: &str) -> &'a Value {
    let groups = forget["plan"]["groups"].as_array().unwrap();
    let g = groups.iter().find(|g| g["source"] == source);
    g.unwrap_or_else(|| panic!("no group {source}: {forget:#}"))
}

/// `source`'s decisions, newest first, as `I:REASONS` separated by spaces: `I` the snapshot's
/// index in `ids`, REASONS each rule (with `@bucket` if it has one) joined by `+`, or `-`
/// when the snapshot is forgotten.
#[track_caller]
fn plan(forget: &Value, source: &str, ids: &[String]) -> String {
    let decisions = group(forget, source)["decisions"].as_array().unwrap();
    let shown = |d: &Value| -> String {
        let i = ids.iter().position(|id| d["id"] == id.as_str());
        let i = i.unwrap_or_else(|| panic!("unexpected snapshot: {d:#}"));
        let reasons = d["reasons"].as_array().unwrap();
        assert_eq!(d["keep"], !reasons.is_empty(), "kept iff a reason: {d:#}");
        let each = reasons.iter().map(|r| match r["bucket"].as_str() {
            Some(b) => format!("{}@{b}", r["rule"].as_str().unwrap()),
            None => r["rule"].as_str().unwrap().to_string(),
        });
        let r = each.collect::<Vec<_>>().join("+");
        format!("{i}:{}", if r.is_empty() { "-" } else { &r })
    };
    let all: Vec<String> = decisions.iter().map(shown).collect();
    all.join(" ")
}

/// The reason with `rule` of snapshot `id` in `source`'s plan.
fn reason<'a>(forget: &'a Value, source: &str, id: &str, rule: &str) -> &'a Value {
    let decisions = group(forget, source)["decisions"].as_array().unwrap();
    let d = decisions.iter().find(|d| d["id"] == id);
    let d = d.unwrap_or_else(|| panic!("no decision for {id}: {forget:#}"));
    let r = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule);
    r.unwrap_or_else(|| panic!("{id} has no reason {rule}: {d:#}"))
}

/// Every file under `dir`, by path relative to it, with its size.
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    files_under(dir)
        .iter()
        .map(|p| (rel(dir, p), size(p)))
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    listing(dir).values().sum()
}

/// BLAKE3 of every file under `dir`, by relative path.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let hash = |p: &Path| (rel(dir, p), blake3_file(p));
    files_under(dir).iter().map(|p| hash(p)).collect()
}

fn rel(dir: &Path, p: &Path) -> String {
    let r = p.strip_prefix(dir).expect("a path under dir");
    r.to_string_lossy().replace('\\', "/")
}

/// Restores each snapshot and compares every file with the state it was taken of.
#[track_caller]
fn assert_restores(sb: &Sandbox, states: &[(String, BTreeMap<String, String>)]) {
    for (id, files) in states {
        let to = sb.p(&format!("restored-{id}"));
        sb.restore(id, &to);
        assert_eq!(&hashes(&to.join("work")), files, "snapshot {id}");
    }
}

/// Six states of a directory `work`, each backed up as source `work` on 1 to 6 March 2024:
/// a few MB of random data in files that change one or two at a time (`b.bin` never changes,
/// so the first pack stays partly used). Returns each snapshot's id and its files' hashes.
fn evolve(sb: &Sandbox) -> Vec<(String, BTreeMap<String, String>)> {
    let dir = sb.p("work");
    fs::create_dir_all(&dir).unwrap();
    const MB: usize = 1 << 20;
    let changes: [&[(&str, u64, usize)]; 6] = [
        &[
            ("a.bin", 1, 3 * MB),
            ("b.bin", 2, 3 * MB),
            ("c.bin", 3, 2 * MB),
        ],
        &[("a.bin", 11, 3 * MB)],
        &[("c.bin", 12, 2 * MB), ("notes.txt", 20, 0)],
        &[("a.bin", 13, 3 * MB)],
        &[("d.bin", 14, MB)],
        &[("a.bin", 15, 3 * MB)],
    ];
    let mut out = Vec::new();
    for (day, files) in (1u32..).zip(changes) {
        for &(name, seed, len) in files {
            let p = dir.join(name);
            let bytes = match len {
                0 => format!("notes of day {day}\n").repeat(50).into_bytes(),
                n => random_bytes(seed, n),
            };
            fs::write(&p, bytes).unwrap();
            // A time of its own: a rewrite of the same size is never taken for unchanged.
            set_mtime(&p, past(seed + 100));
        }
        if day == 6 {
            fs::remove_file(dir.join("notes.txt")).unwrap();
        }
        let id = snap(sb, &dir, "work", &format!("2024-03-{day:02}T12:00:00Z"));
        out.push((id, hashes(&dir)));
    }
    out
}
