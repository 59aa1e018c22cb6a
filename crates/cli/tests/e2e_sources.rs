//! End-to-end tests of the `backstop` binary, continued: command and stdin sources, the config
//! file, the default repository, partial backups and concurrent backups.

mod common;

use std::fs;
use std::io::Write as _;
use std::process::Stdio;

use common::*;
use serde_json::Value;

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------------------
// 6. Command and stdin sources

#[cfg(unix)]
#[test]
fn command_source_and_failing_command() {
    let sb = Sandbox::plain();
    let s = sb.json(&["backup", "--name", "dump", "--", "sh", "-c", "printf hello"]);
    assert_eq!(s["source"], "dump");
    assert_eq!(s["source_kind"], "command");
    assert_eq!(s["bytes_in"], 5);
    let out = sb.p("out");
    sb.restore("latest:dump", &out);
    assert_eq!(fs::read(out.join("dump")).unwrap(), b"hello");
    let shown = sb.json(&["show", "latest:dump"]);
    assert_eq!(shown["item_list"][0]["type"], "stream");
    assert_eq!(
        shown["item_list"][0]["content"]["hash"],
        blake3::hash(b"hello").to_hex().to_string()
    );

    let before = sb.snapshots().len();
    let o = sb.run(&[
        "backup",
        "--name",
        "dump",
        "--",
        "sh",
        "-c",
        "echo partial; echo oops >&2; exit 3",
    ]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert_ne!(o.code, 3, "a failed dump is not a partial backup");
    assert!(o.stderr.contains("exit status: 3"), "{o:#?}");
    assert!(
        o.stderr.contains("oops"),
        "stderr of the command is shown: {o:#?}"
    );
    assert_eq!(sb.snapshots().len(), before, "no snapshot of a failed dump");
    let out = sb.p("out2");
    sb.restore("latest:dump", &out);
    assert_eq!(fs::read(out.join("dump")).unwrap(), b"hello");

    // --filename names the item; a missing program is an error and no snapshot.
    sb.json(&[
        "backup",
        "--name",
        "db",
        "--filename",
        "db.sql",
        "--",
        "sh",
        "-c",
        "printf 'CREATE TABLE t;'",
    ]);
    let out = sb.p("out3");
    sb.restore("latest:db", &out);
    assert_eq!(
        fs::read_to_string(out.join("db.sql")).unwrap(),
        "CREATE TABLE t;"
    );
    let o = sb.run(&["backup", "--name", "x", "--", "/nonexistent/prog"]);
    assert_ne!(o.code, 0);
    assert_eq!(sb.snapshots().len(), before + 1);
    let o = sb.run(&["backup", "--", "true"]).code(2);
    assert!(o.stderr.contains("--name"), "{o:#?}");
}

#[test]
fn stdin_source() {
    let sb = Sandbox::plain();
    let data = fs::read(testdata("postgres/pagila-data.sql")).unwrap();
    let mut c = sb.cmd();
    c.args(["--json", "backup", "--stdin", "--name", "pagila"])
        .args(["--filename", "pagila.sql"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let o = Out::from_output(child.wait_with_output().unwrap()).ok();
    writer.join().unwrap().unwrap();
    let s = o.json();
    assert_eq!(s["source"], "pagila");
    assert_eq!(s["bytes_in"], data.len() as u64);
    let out = sb.p("out");
    sb.restore("latest:pagila", &out);
    assert!(fs::read(out.join("pagila.sql")).unwrap() == data);
    let o = sb.run(&["backup", "--stdin"]).code(2);
    assert!(o.stderr.contains("--name"), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Config file

#[cfg(unix)]
#[test]
fn config_file_sources() {
    let sb = Sandbox::empty();
    let cfgdir = sb.p("site");
    fs::create_dir_all(cfgdir.join("data")).unwrap();
    fs::create_dir_all(cfgdir.join("docs/sub")).unwrap();
    fs::copy(
        testdata("sqlite/chinook.sqlite"),
        cfgdir.join("data/shop.db"),
    )
    .unwrap();
    fs::write(cfgdir.join("docs/sub/readme.md"), "# docs").unwrap();
    fs::write(cfgdir.join("notes.txt"), "notes").unwrap();
    fs::write(
        cfgdir.join("backstop.toml"),
        r#"repository = "backups/repo"

[sources.shop]
path = "data/shop.db"

[sources.docs]
paths = ["docs", "notes.txt"]
tags = ["cfg"]
description = "documents"

[sources.dump]
command = ["sh", "-c", "printf dumped"]
filename = "dump.txt"
"#,
    )
    .unwrap();

    let in_cfgdir = |args: &[&str]| {
        let mut c = command_in(&cfgdir);
        c.args(args);
        run(c)
    };
    in_cfgdir(&["init"]).ok();
    assert!(cfgdir.join("backups/repo/config").is_file());

    let all = in_cfgdir(&["--json", "backup"]).ok().json();
    let all = all.as_array().expect("several backups print an array");
    let mut names: Vec<&str> = all.iter().map(|s| s["source"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["docs", "dump", "shop"]);
    let rows = in_cfgdir(&["--json", "snapshots"]).ok().json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let docs = rows.iter().find(|r| r["source"] == "docs").unwrap();
    assert_eq!(docs["tags"], serde_json::json!(["cfg"]));
    assert_eq!(docs["description"], "documents");
    let shop_first = rows.iter().find(|r| r["source"] == "shop").unwrap()["id"].clone();

    let one = in_cfgdir(&["--json", "backup", "--source", "shop"])
        .ok()
        .json();
    assert_eq!(one["source"], "shop");
    assert_eq!(one["parent"], shop_first);

    // From another directory with --config: paths are relative to the file.
    let cfg = cfgdir.join("backstop.toml");
    let elsewhere = sb.p("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let mut c = command_in(&elsewhere);
    c.arg("--config")
        .arg(&cfg)
        .args(["--json", "backup", "--source", "shop"]);
    let s = run(c).ok().json();
    assert_eq!(
        s["bytes_in"],
        fs::metadata(cfgdir.join("data/shop.db")).unwrap().len()
    );
    assert!(!elsewhere.join("backups").exists());
    assert!(!elsewhere.join("backstop-repo").exists());
    let mut c = command_in(&elsewhere);
    c.arg("--config")
        .arg(&cfg)
        .args(["restore", "latest:shop", "--to", "out/"]);
    run(c).ok();
    assert!(
        fs::read(elsewhere.join("out/shop.db")).unwrap()
            == fs::read(cfgdir.join("data/shop.db")).unwrap()
    );
    let mut c = command_in(&elsewhere);
    c.arg("--config")
        .arg(&cfg)
        .args(["restore", "latest:docs", "--to", "out"]);
    run(c).ok();
    assert_eq!(
        fs::read_to_string(elsewhere.join("out/docs/sub/readme.md")).unwrap(),
        "# docs"
    );
    assert_eq!(
        fs::read_to_string(elsewhere.join("out/notes.txt")).unwrap(),
        "notes"
    );
    let mut c = command_in(&elsewhere);
    c.arg("--config")
        .arg(&cfg)
        .args(["restore", "latest:dump", "--to", "out"]);
    run(c).ok();
    assert_eq!(
        fs::read_to_string(elsewhere.join("out/dump.txt")).unwrap(),
        "dumped"
    );
    // --repo on the command line wins over the config.
    let mut c = command_in(&elsewhere);
    c.arg("--config")
        .arg(&cfg)
        .args(["--repo", "nowhere", "snapshots"]);
    run(c).code(10);
}

// ---------------------------------------------------------------------------------------------
// 8. Default repository

#[test]
fn default_repository_is_created_in_the_working_directory() {
    let sb = Sandbox::empty();
    fs::write(sb.p("somefile.txt"), "first").unwrap();
    fs::write(sb.p("other.txt"), "second").unwrap();
    let mut c = sb.bare();
    c.args(["backup", "somefile.txt"]);
    let o = run(c).ok();
    assert!(o.stderr.contains("backstop-repo"), "{o:#?}");
    assert!(o.stderr.contains("created"), "{o:#?}");
    assert!(o.stderr.contains("NOT encrypted"), "{o:#?}");
    assert!(sb.p("backstop-repo/config").is_file());

    let mut c = sb.bare();
    c.args(["backup", "other.txt"]);
    let o = run(c).ok();
    assert!(!o.stderr.contains("created"), "{o:#?}");

    // Backing up the working directory leaves the repository out.
    let mut c = sb.bare();
    c.args(["--json", "backup", ".", "--name", "cwd"]);
    run(c).ok();

    let mut c = sb.bare();
    c.args(["--repo", "backstop-repo", "--json", "snapshots"]);
    let rows = run(c).ok().json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["source"], "somefile.txt");
    assert_eq!(rows[1]["source"], "other.txt");

    let mut c = sb.bare();
    c.args(["--repo", "backstop-repo", "--json", "show", "latest:cwd"]);
    let shown = run(c).ok().json();
    let paths: Vec<&str> = shown["item_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/somefile.txt")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("backstop-repo")),
        "{paths:?}"
    );

    // Other commands do not default to ./backstop-repo.
    let mut c = sb.bare();
    c.arg("snapshots");
    let o = run(c).code(2);
    assert!(o.stderr.contains("--repo"), "{o:#?}");
}

#[test]
fn default_repository_is_encrypted_when_a_passphrase_is_set() {
    let sb = Sandbox::empty();
    fs::write(sb.p("f.txt"), "x").unwrap();
    let mut c = sb.bare();
    c.args(["backup", "f.txt"]).env("BACKSTOP_PASSWORD", "pw");
    let o = run(c).ok();
    assert!(o.stderr.contains("encrypted"), "{o:#?}");
    assert!(!o.stderr.contains("NOT encrypted"), "{o:#?}");
    let mut c = sb.bare();
    c.args(["--repo", "backstop-repo", "--json", "info"])
        .env("BACKSTOP_PASSWORD", "pw");
    assert_eq!(run(c).ok().json()["encrypted"], true);
}

// ---------------------------------------------------------------------------------------------
// 9. Partial backups

#[cfg(unix)]
#[test]
fn special_file_is_skipped_with_a_warning_and_exit_3() {
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("keep.txt"), "kept").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(d.join("app.sock")).unwrap();
    let mut c = sb.cmd();
    c.args(["--json", "backup"]).arg(&d);
    let o = run(c).code(3);
    let s = o.json();
    assert!(is_hex64(&s["id"]));
    let w = s["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{s:#}");
    assert!(w[0].as_str().unwrap().contains("app.sock"), "{s:#}");
    let rows = sb.snapshots();
    assert_eq!(rows.len(), 1, "the partial snapshot is saved");
    assert_eq!(rows[0]["id"], s["id"]);
    assert_eq!(rows[0]["warnings"], 1);
    let out = sb.p("out");
    sb.restore("latest", &out);
    assert_eq!(fs::read_to_string(out.join("d/keep.txt")).unwrap(), "kept");
    assert!(!out.join("d/app.sock").exists());
    // Human output mentions the warning on stderr too.
    let mut c = sb.cmd();
    c.arg("backup").arg(&d);
    let o = run(c).code(3);
    assert!(o.stderr.contains("app.sock"), "{o:#?}");
}

/// A file name with a backslash is legal on Unix. If backup stores it without a warning, the
/// snapshot must restore.
#[cfg(unix)]
#[test]
fn backslash_in_a_file_name_does_not_make_the_snapshot_unrestorable() {
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("a\\b.txt"), "odd name").unwrap();
    fs::write(d.join("normal.txt"), "normal").unwrap();
    let mut c = sb.cmd();
    c.args(["--json", "backup"]).arg(&d);
    let o = run(c);
    let s = o.json();
    if o.code == 0 {
        assert_eq!(s["warnings"], serde_json::json!([]));
        sb.assert_clean();
        let out = sb.p("out");
        let mut c = sb.cmd();
        c.args(["restore", "latest", "--to"]).arg(&out);
        run(c).ok();
        assert_eq!(
            fs::read_to_string(out.join("d/a\\b.txt")).unwrap(),
            "odd name"
        );
    } else {
        // Skipping the file with a warning is acceptable; the rest must restore.
        assert_eq!(o.code, 3, "{o:#?}");
        let out = sb.p("out");
        sb.restore("latest", &out);
        assert_eq!(
            fs::read_to_string(out.join("d/normal.txt")).unwrap(),
            "normal"
        );
    }
}

#[cfg(unix)]
#[test]
fn non_unicode_name_is_skipped_with_a_warning_and_exit_3() {
    use std::os::unix::ffi::OsStrExt as _;
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")), "x").unwrap();
    fs::write(d.join("ok.txt"), "ok").unwrap();
    let mut c = sb.cmd();
    c.args(["--json", "backup"]).arg(&d);
    let s = run(c).code(3).json();
    assert_eq!(s["files"], 1);
    let w = s["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{s:#}");
    assert!(w[0].as_str().unwrap().contains("Unicode"), "{s:#}");
    assert_eq!(sb.snapshots().len(), 1);
}

/// `c:data` is an ordinary file name on Unix.
#[cfg(unix)]
#[test]
fn top_level_name_with_a_colon() {
    let sb = Sandbox::plain();
    fs::write(sb.p("c:data"), "colon").unwrap();
    let mut c = sb.cmd();
    c.args(["--json", "backup", "c:data"]);
    run(c).ok();
    let out = sb.p("out");
    sb.restore("latest", &out);
    assert_eq!(fs::read_to_string(out.join("c:data")).unwrap(), "colon");
}

/// The snapshot records what its backup added; `show` prints it.
#[test]
fn show_reports_what_the_backup_added() {
    let sb = Sandbox::plain();
    fs::write(sb.p("big.bin"), random_bytes(5, 1_000_000)).unwrap();
    let s = sb.backup(&[&sb.p("big.bin")], &[]);
    assert!(s["bytes_added"].as_u64().unwrap() > 1_000_000);
    let shown = sb.json(&["show", "latest"]);
    assert_eq!(shown["stats"]["bytes_added"], s["bytes_added"], "{shown:#}");
    let o = sb.run(&["show", "latest"]).ok();
    assert!(!o.stdout.contains("added 0 B"), "{}", o.stdout);
}

// ---------------------------------------------------------------------------------------------
// 11. Concurrent backups

#[test]
fn concurrent_backups_into_one_repository() {
    let sb = Sandbox::plain();
    for round in 0..3u64 {
        let mut dirs = Vec::new();
        for who in 0..2u64 {
            let d = sb.p(&format!("r{round}/src{who}"));
            fs::create_dir_all(d.join("sub")).unwrap();
            let seed = round * 10 + who;
            fs::write(d.join("big.bin"), compressible(seed, 2_000_000)).unwrap();
            fs::write(
                d.join("sub/small.txt"),
                format!("round {round} writer {who}"),
            )
            .unwrap();
            dirs.push(d);
        }
        let children: Vec<_> = dirs
            .iter()
            .map(|d| {
                let mut c = sb.cmd();
                c.args(["--json", "backup"])
                    .arg(d)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let results: Vec<Value> = children
            .into_iter()
            .map(|c| Out::from_output(c.wait_with_output().unwrap()).ok().json())
            .collect();
        sb.assert_clean();
        for (d, s) in dirs.iter().zip(&results) {
            let out = sb.p(&format!("out-{round}-{}", s["id"].as_str().unwrap()));
            sb.restore(s["id"].as_str().unwrap(), &out);
            assert_same_tree(d, &out.join(d.file_name().unwrap()));
        }
        assert_eq!(sb.snapshots().len() as u64, 2 * (round + 1));
    }
    assert_eq!(count_files(&sb.repo.join("locks")), 0, "locks are released");
}
