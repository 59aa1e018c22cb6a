//! Locks (issue 13, items 4 and 6). A disaster restore from a repository that cannot be written
//! (a write-protected copy, a full disk, another user's files): readers proceed without a lock
//! and say so, and still refuse to run beside an exclusive lock they can see. A lock left by a
//! crashed prune on another machine: the error says who holds it and since when, and
//! `backstop unlock` removes it.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::*;

/// A command that runs the binary as an unprivileged user: root ignores file permissions, so
/// as root the test runs `setpriv` (or `runuser`) to become `nobody`; any other user already
/// cannot write a repository made read-only. `None` (with the reason printed) if root has
/// neither tool.
fn unprivileged(sb: &Sandbox) -> Option<Command> {
    let uid = run_tool("id", &["-u"])?;
    let mut c = if uid.trim() != "0" {
        Command::new(bin())
    } else if run_tool("setpriv", &["--version"]).is_some() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin());
        c
    } else if run_tool("runuser", &["--version"]).is_some() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(bin());
        c
    } else {
        eprintln!("skipped: running as root and neither setpriv nor runuser exists");
        return None;
    };
    c.current_dir(sb.path())
        .env_remove("BACKSTOP_REPO")
        .env_remove("BACKSTOP_PASSWORD")
        .env_remove("BACKSTOP_PASSWORD_FILE")
        .env("HOME", sb.path())
        .arg("--repo")
        .arg(&sb.repo);
    Some(c)
}

fn run_tool(tool: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(tool).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn chmod_tree(p: &Path, writable: bool) {
    let meta = fs::symlink_metadata(p).unwrap();
    if meta.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chmod_tree(&e.unwrap().path(), writable);
        }
    }
    let mode = meta.permissions().mode();
    let mode = if writable {
        mode | 0o200
    } else {
        mode & !0o222
    };
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// An exclusive lock as another host's prune would have written it, in an unencrypted
/// repository (object encoding: flag 0, the JSON, 16 bytes of BLAKE3 of both).
fn write_prune_lock(repo: &Path) {
    write_lock(repo, "ab", "office-pc", 0);
}

/// A lock of another host's prune, last refreshed `age_min` minutes ago, named by `fill`
/// repeated.
fn write_lock(repo: &Path, fill: &str, host: &str, age_min: u32) {
    let now = run_tool("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap();
    let then = run_tool(
        "date",
        &[
            "-u",
            "-d",
            &format!("{age_min} minutes ago"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ],
    )
    .unwrap();
    let json = format!(
        r#"{{"exclusive":true,"operation":"prune","host":"{host}","pid":4242,"created":"{0}","refreshed":"{0}"}}"#,
        if age_min == 0 {
            now.trim()
        } else {
            then.trim()
        }
    );
    let mut body = vec![0u8];
    body.extend_from_slice(json.as_bytes());
    let sum = blake3::hash(&body);
    body.extend_from_slice(&sum.as_bytes()[..16]);
    fs::write(repo.join("locks").join(fill.repeat(32)), body).unwrap();
}

#[test]
fn restore_and_verify_from_a_read_only_repository_as_an_unprivileged_user() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a.bin"), random_bytes(7, 3 << 20)).unwrap();
    fs::write(data.join("sub/b.txt"), b"invoice 17\n".repeat(1000)).unwrap();
    sb.backup(&[&data], &[]);

    // The sandbox is traversable by anyone; the repository is read-only for everyone; the
    // restore target's parent is writable by the unprivileged user.
    fs::set_permissions(sb.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chmod_tree(&sb.repo, false);
    let out_parent = sb.p("out");
    fs::create_dir(&out_parent).unwrap();
    fs::set_permissions(&out_parent, fs::Permissions::from_mode(0o777)).unwrap();

    let Some(mut c) = unprivileged(&sb) else {
        return;
    };
    c.arg("restore")
        .arg("latest")
        .arg("--to")
        .arg(out_parent.join("restored"));
    let o = run(c);
    let restored = out_parent.join("restored");
    assert_eq!(o.code, 0, "restore from a read-only repository: {o:#?}");
    assert!(
        o.stderr.contains("proceeding without a lock"),
        "the restore must say it runs without a lock: {o:#?}"
    );
    assert_same_tree(&data, &restored.join("data"));

    let mut c = unprivileged(&sb).unwrap();
    c.args(["--json", "verify", "--read-data"]);
    let o = run(c);
    assert_eq!(
        o.code, 0,
        "verify --read-data of a read-only repository: {o:#?}"
    );
    assert_eq!(o.json()["problems"].as_array().map(Vec::len), Some(0));

    // A restore drill runs too: its result is reported although it cannot be recorded.
    let mut c = unprivileged(&sb).unwrap();
    c.args(["verify", "--restore-test", "--latest"]);
    let o = run(c);
    assert_eq!(o.code, 0, "drill of a read-only repository: {o:#?}");
    assert!(o.stdout.contains("PASSED"), "{o:#?}");
    assert!(
        o.stderr.contains("could not be recorded"),
        "the drill must say its record was not written: {o:#?}"
    );
    assert!(files_under(&sb.repo.join("records")).is_empty());

    // Nothing was written into the repository: no lock, no temporary file.
    assert!(files_under(&sb.repo.join("locks")).is_empty());
    assert!(files_under(&sb.repo.join("tmp")).is_empty());

    // An exclusive lock it can see still stops it, with who holds it.
    chmod_tree(&sb.repo, true);
    write_prune_lock(&sb.repo);
    chmod_tree(&sb.repo, false);
    let mut c = unprivileged(&sb).unwrap();
    c.arg("restore")
        .arg("latest")
        .arg("--to")
        .arg(out_parent.join("again"));
    let o = run(c).code(11);
    assert!(
        o.stderr.contains("prune") && o.stderr.contains("office-pc"),
        "{o:#?}"
    );
    assert!(!out_parent.join("again").exists());
    let mut c = unprivileged(&sb).unwrap();
    c.arg("verify");
    run(c).code(11);
    chmod_tree(&sb.repo, true);
}

#[test]
fn a_crashed_prune_on_another_host_is_shown_and_unlock_removes_it() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a.txt"), b"ledger\n".repeat(100)).unwrap();
    sb.backup(&[&data], &[]);

    // A prune on another machine crashed a minute ago: its lock looks alive for 29 minutes.
    write_lock(&sb.repo, "ab", "office-pc", 1);
    // And one that crashed two hours ago: stale.
    write_lock(&sb.repo, "cd", "old-laptop", 120);
    let o = sb.run(&["restore", "latest", "--to", "out"]).code(11);
    assert!(
        o.stderr
            .contains("exclusive prune by office-pc (pid 4242) since ")
            && o.stderr.contains("last refreshed 1 min ago")
            && o.stderr.contains("backstop unlock"),
        "the error must say who holds the lock, since when, and how to remove it: {o:#?}"
    );
    assert!(
        !o.stderr.contains("old-laptop"),
        "a stale lock is no conflict: {o:#?}"
    );

    // unlock removes the stale lock only and shows the other.
    let o = sb.run(&["unlock"]).ok();
    assert!(
        o.stdout.contains("removed") && o.stdout.contains("old-laptop"),
        "{o:#?}"
    );
    assert!(
        o.stdout.contains("kept") && o.stdout.contains("office-pc"),
        "{o:#?}"
    );
    assert!(o.stdout.contains("--remove-all"), "{o:#?}");
    assert_eq!(files_under(&sb.repo.join("locks")).len(), 1);
    sb.run(&["restore", "latest", "--to", "out"]).code(11);

    // --remove-all removes it too, with a warning; then the restore runs.
    let o = sb.run(&["--json", "unlock", "--remove-all"]).ok();
    assert!(o.stderr.contains("warning: --remove-all"), "{o:#?}");
    let v = o.json();
    assert_eq!(v["removed"].as_array().map(Vec::len), Some(1), "{v:#}");
    assert_eq!(v["removed"][0]["info"]["host"], "office-pc");
    assert_eq!(v["kept"].as_array().map(Vec::len), Some(0));
    assert!(files_under(&sb.repo.join("locks")).is_empty());
    sb.restore("latest", &sb.p("out"));
    assert_same_tree(&data, &sb.p("out/data"));
    let o = sb.run(&["unlock"]).ok();
    assert!(o.stdout.contains("no locks"), "{o:#?}");
}
