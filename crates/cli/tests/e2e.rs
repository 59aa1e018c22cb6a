//! End-to-end tests of the `backstop` binary: round trips, deduplication, snapshot selection,
//! restore safety, error exit codes, command and stdin sources, the config file, the default
//! repository, partial backups and concurrent backups.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Whether `needle` occurs anywhere in the repository's pack files.
fn packs_contain(repo: &Path, needle: &[u8]) -> bool {
    packs(repo).iter().any(|p| {
        fs::read(p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Round trips

/// Backs up a varied tree and checks snapshots, show, restore and info.
fn round_trip(sb: &Sandbox, encrypted: bool) {
    let src = sb.p("src/tree");
    build_tree(&src);
    let all_files = files_under(&src);
    let file_bytes: u64 = all_files
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();

    let s = sb.backup(&[&src], &[]);
    assert!(is_hex64(&s["id"]), "{s:#}");
    assert_eq!(s["source"], "tree");
    assert_eq!(s["source_kind"], "files");
    assert_eq!(s["kind"], "manual");
    assert_eq!(s["parent"], Value::Null);
    assert_eq!(s["warnings"], serde_json::json!([]));
    assert_eq!(s["files"], all_files.len() as u64);
    assert_eq!(s["dirs"], 5, "tree, docs, nested, deep, empty-dir: {s:#}");
    assert_eq!(s["bytes_in"], file_bytes);
    assert_eq!(s["bytes_read"], file_bytes);
    assert!(s["chunks_new"].as_u64().unwrap() > 10, "{s:#}");
    let symlinks = if cfg!(unix) { 2 } else { 0 };
    assert_eq!(
        s["items"],
        all_files.len() as u64 + 5 + symlinks,
        "items = files + dirs + links: {s:#}"
    );

    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1);
    let row = &snaps[0];
    assert_eq!(row["id"], s["id"]);
    assert_eq!(row["time"], s["time"]);
    assert_eq!(row["source"], "tree");
    assert_eq!(row["source_kind"], "files");
    assert_eq!(row["kind"], "manual");
    assert_eq!(row["tags"], serde_json::json!([]));
    assert_eq!(row["description"], Value::Null);
    assert_eq!(row["ticket"], Value::Null);
    assert!(!row["host"].as_str().unwrap().is_empty());
    assert_eq!(row["paths"], serde_json::json!([src.display().to_string()]));
    assert_eq!(row["bytes"], file_bytes);
    assert_eq!(row["items"], s["items"]);
    assert_eq!(row["warnings"], 0);

    // show: every item matches the disk, and file hashes are BLAKE3 of the content.
    let shown = sb.json(&["show", s["id"].as_str().unwrap()]);
    assert_eq!(shown["id"], s["id"]);
    let items = shown["item_list"].as_array().unwrap();
    assert_eq!(items.len() as u64, s["items"].as_u64().unwrap());
    let mut seen_files = 0;
    for it in items {
        let path = it["path"].as_str().unwrap();
        let disk = src.parent().unwrap().join(path);
        let md = fs::symlink_metadata(&disk).unwrap_or_else(|e| panic!("{path}: {e}"));
        match it["type"].as_str().unwrap() {
            "file" => {
                seen_files += 1;
                assert!(md.is_file(), "{path}");
                assert_eq!(it["size"], md.len(), "{path}");
                assert_eq!(it["content"]["size"], md.len(), "{path}");
                assert_eq!(it["content"]["hash"], blake3_file(&disk), "{path}");
            }
            "dir" => assert!(md.is_dir(), "{path}"),
            "symlink" => {
                assert!(md.file_type().is_symlink(), "{path}");
                assert_eq!(
                    it["target"],
                    fs::read_link(&disk).unwrap().display().to_string()
                );
            }
            other => panic!("unexpected item type {other} for {path}"),
        }
        #[cfg(unix)]
        if !md.file_type().is_symlink() {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(it["mode"], md.permissions().mode() & 0o7777, "{path}");
        }
    }
    assert_eq!(seen_files, all_files.len());
    let secret = items.iter().find(|i| i["path"] == "tree/secret.txt");
    #[cfg(unix)]
    assert_eq!(secret.unwrap()["mode"], 0o640);
    #[cfg(not(unix))]
    assert!(secret.is_none());

    // Restore into a new directory: an exact copy.
    let out = sb.p("restored");
    sb.restore("latest", &out);
    assert_same_tree(&src, &out.join("tree"));
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        1,
        "only the top-level item is restored into the target"
    );

    let info = sb.json(&["info"]);
    assert_eq!(info["encrypted"], encrypted, "{info:#}");
    let encryption = info["encryption"].as_str().unwrap();
    if encrypted {
        assert!(encryption.contains("argon2id"), "{info:#}");
    } else {
        assert_eq!(encryption, "none");
    }
    assert_eq!(info["snapshots"], 1);
    assert_eq!(info["version"], 1);
    assert!(info["packs"].as_u64().unwrap() >= 1);
    assert!(info["chunks"].as_u64().unwrap() >= s["chunks_new"].as_u64().unwrap());
    assert!(
        info["stored_bytes"].as_u64().unwrap() > 3_000_000,
        "{info:#}"
    );
    assert_eq!(info["index_files"], 1);

    // The 3 MB random file cannot be compressed, so a plain repository holds its bytes as
    // they are; an encrypted one must not.
    let big = fs::read(src.join("big.bin")).unwrap();
    let probe = &big[1_500_000..1_500_064];
    assert_eq!(packs_contain(&sb.repo, probe), !encrypted);
    sb.assert_clean();
}

#[test]
fn round_trip_plain() {
    let sb = Sandbox::empty();
    let init = sb.json(&["init"]);
    assert_eq!(init["encrypted"], false, "{init:#}");
    assert_eq!(init["version"], 1);
    assert!(!init["id"].as_str().unwrap().is_empty());
    assert_eq!(init["repository"], sb.repo.display().to_string());
    assert!(sb.repo.join("config").is_file());
    round_trip(&sb, false);
}

#[test]
fn round_trip_encrypted_with_env_passphrase() {
    let mut sb = Sandbox::empty();
    sb.password = Some("correct horse battery staple".into());
    let init = sb.json(&["init"]);
    assert_eq!(
        init["encrypted"], true,
        "a passphrase given means encrypted"
    );
    assert_eq!(count_files(&sb.repo.join("keys")), 1);
    round_trip(&sb, true);
}

#[test]
fn round_trip_encrypted_with_password_file() {
    let mut sb = Sandbox::empty();
    let pw = sb.p("pw.txt");
    fs::write(&pw, "s3cret passphrase\n").unwrap();
    sb.password_file = Some(pw);
    let init = sb.json(&["init", "--encryption", "passphrase"]);
    assert_eq!(init["encrypted"], true);
    round_trip(&sb, true);
    // The trailing newline of the file is not part of the passphrase.
    let mut c = sb.bare();
    c.args(["--repo"]).arg(&sb.repo).arg("snapshots");
    c.env("BACKSTOP_PASSWORD", "s3cret passphrase");
    run(c).ok();
}

#[test]
fn init_says_whether_the_repository_is_encrypted() {
    let sb = Sandbox::empty();
    let o = sb.run(&["init"]).ok();
    assert!(o.stdout.contains("NOT encrypted"), "{o:#?}");

    let mut sb = Sandbox::empty();
    sb.password = Some("pw".into());
    let o = sb.run(&["init"]).ok();
    assert!(o.stdout.contains("encrypted"), "{o:#?}");
    assert!(!o.stdout.contains("NOT encrypted"), "{o:#?}");

    // A second init at the same place fails and leaves the repository as it was.
    let config = fs::read(sb.repo.join("config")).unwrap();
    let o = sb.run(&["init"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert_eq!(fs::read(sb.repo.join("config")).unwrap(), config);
    assert_eq!(count_files(&sb.repo.join("keys")), 1);

    // --encryption passphrase without any passphrase is a usage error.
    let sb = Sandbox::empty();
    let o = sb.run(&["init", "--encryption", "passphrase"]);
    assert_eq!(o.code, 2, "{o:#?}");
    assert!(!sb.repo.join("config").exists());
}

// ---------------------------------------------------------------------------------------------
// 2. Deduplication

#[test]
fn dedup_unchanged_forced_and_one_byte_changed() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    let big = data.join("big.bin");
    fs::write(&big, random_bytes(11, 3_000_000)).unwrap();
    fs::copy(
        testdata("sqlite/chinook.sqlite"),
        data.join("chinook.sqlite"),
    )
    .unwrap();
    fs::write(data.join("note.txt"), "hello\n").unwrap();
    for f in files_under(&data) {
        set_mtime(&f, past(1));
    }
    let total: u64 = files_under(&data)
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();

    let first = sb.backup(&[&data], &[]);
    assert!(first["bytes_added"].as_u64().unwrap() > 3_000_000);
    assert_eq!(first["bytes_read"], total);

    // Same data again: files are old, so they are not even read.
    let second = sb.backup(&[&data], &[]);
    assert_eq!(second["parent"], first["id"]);
    assert!(second["bytes_added"].as_u64().unwrap() < 4096, "{second:#}");
    assert_eq!(second["chunks_new"], 0, "{second:#}");
    assert_eq!(second["files_unchanged"], 3, "{second:#}");
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["bytes_in"], total);

    // --force reads everything again but finds nothing new.
    let forced = sb.backup(&[&data], &["--force"]);
    assert_eq!(forced["bytes_read"], total, "{forced:#}");
    assert_eq!(forced["files_unchanged"], 0);
    assert_eq!(forced["chunks_new"], 0, "{forced:#}");
    assert!(forced["bytes_added"].as_u64().unwrap() < 4096, "{forced:#}");

    // One byte changed in the middle of the 3 MB file.
    let mut bytes = fs::read(&big).unwrap();
    let original = bytes[1_500_000];
    bytes[1_500_000] ^= 0x5a;
    fs::write(&big, &bytes).unwrap();
    set_mtime(&big, past(2));
    let changed = sb.backup(&[&data], &[]);
    let added = changed["bytes_added"].as_u64().unwrap();
    assert!(added < 300 * 1024, "one byte changed added {added} bytes");
    assert!(added > 0);
    assert_eq!(changed["bytes_read"], 3_000_000, "only big.bin is read");
    assert_eq!(changed["files_unchanged"], 2);

    // Both versions restore exactly.
    let out_new = sb.p("out-new");
    sb.restore("latest", &out_new);
    assert_same_tree(&data, &out_new.join("data"));
    let out_old = sb.p("out-old");
    sb.restore(first["id"].as_str().unwrap(), &out_old);
    let old = fs::read(out_old.join("data/big.bin")).unwrap();
    assert_eq!(old.len(), 3_000_000);
    assert_eq!(old[1_500_000], original);
    bytes[1_500_000] = original;
    assert!(old == bytes, "the first snapshot still has the original");
    sb.assert_clean();
}

/// A file rewritten with new content but the same size must not be taken from the previous
/// snapshot when its mtime changed, even by less than a second.
#[test]
fn same_size_new_content_is_read_again() {
    let sb = Sandbox::plain();
    let data = sb.p("d");
    fs::create_dir(&data).unwrap();
    let f = data.join("f.txt");
    fs::write(&f, "version-1").unwrap();
    let t = past(3);
    set_mtime(&f, t);
    sb.backup(&[&data], &[]);
    fs::write(&f, "version-2").unwrap();
    set_mtime(&f, t + std::time::Duration::from_millis(300));
    let s = sb.backup(&[&data], &[]);
    assert_eq!(s["files_unchanged"], 0, "{s:#}");
    let out = sb.p("out");
    sb.restore("latest", &out);
    assert_eq!(
        fs::read_to_string(out.join("d/f.txt")).unwrap(),
        "version-2"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Snapshot selection and recorded metadata

#[test]
fn snapshot_selection_and_metadata() {
    let sb = Sandbox::plain();
    let alpha = sb.p("alpha");
    let beta = sb.p("beta");
    fs::create_dir(&alpha).unwrap();
    fs::create_dir(&beta).unwrap();
    fs::write(alpha.join("a.txt"), "alpha-1").unwrap();
    fs::write(beta.join("b.txt"), "beta-1").unwrap();

    let s1 = sb.backup(
        &[&alpha],
        &[
            "--time",
            "2024-01-01T10:00:00Z",
            "-m",
            "before the upgrade",
            "--tag",
            "daily",
            "--tag",
            "upgrade",
            "--ticket",
            "CHG-42",
            "--kind",
            "pre-change",
        ],
    );
    let s2 = sb.backup(
        &[&beta],
        &["--time", "2024-01-02T10:00:00Z", "--tag", "weekly"],
    );
    fs::write(alpha.join("a.txt"), "alpha-2").unwrap();
    let s3 = sb.backup(&[&alpha], &["--time", "2024-01-03T10:00:00Z"]);
    assert_eq!(s1["kind"], "pre-change");
    assert_eq!(s1["time"], "2024-01-01T10:00:00Z");
    assert_eq!(s3["parent"], s1["id"]);

    let rows = sb.snapshots();
    let id_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&rows),
        [id_of(&s1), id_of(&s2), id_of(&s3)],
        "oldest first"
    );
    let r1 = &rows[0];
    assert_eq!(r1["time"], "2024-01-01T10:00:00Z");
    assert_eq!(r1["description"], "before the upgrade");
    assert_eq!(r1["ticket"], "CHG-42");
    assert_eq!(r1["kind"], "pre-change");
    assert_eq!(r1["tags"], serde_json::json!(["daily", "upgrade"]));
    assert_eq!(rows[1]["time"], "2024-01-02T10:00:00Z");
    assert_eq!(rows[2]["kind"], "manual");

    // Filters.
    let by_source = sb.json(&["snapshots", "--source", "alpha"]);
    assert_eq!(ids(by_source.as_array().unwrap()), [id_of(&s1), id_of(&s3)]);
    let by_tag = sb.json(&["snapshots", "--tag", "weekly"]);
    assert_eq!(ids(by_tag.as_array().unwrap()), [id_of(&s2)]);
    let none = sb.json(&["snapshots", "--tag", "no-such-tag"]);
    assert_eq!(none, serde_json::json!([]));

    // latest, latest:SOURCE, prefixes.
    assert_eq!(sb.json(&["show", "latest"])["id"], s3["id"]);
    assert_eq!(sb.json(&["show", "latest:beta"])["id"], s2["id"]);
    assert_eq!(sb.json(&["show", "latest:alpha"])["id"], s3["id"]);
    let id1 = s1["id"].as_str().unwrap();
    let shown = sb.json(&["show", &id1[..12]]);
    assert_eq!(shown["id"], s1["id"]);
    assert_eq!(shown["description"], "before the upgrade");
    assert_eq!(shown["ticket"], "CHG-42");
    assert_eq!(sb.json(&["show", &id1.to_uppercase()])["id"], s1["id"]);

    let out = sb.p("out");
    sb.restore(&id1[..12], &out);
    assert_eq!(
        fs::read_to_string(out.join("alpha/a.txt")).unwrap(),
        "alpha-1"
    );
    let out = sb.p("out-beta");
    sb.restore("latest:beta", &out);
    assert_eq!(
        fs::read_to_string(out.join("beta/b.txt")).unwrap(),
        "beta-1"
    );

    // An unknown prefix and an unknown source.
    let all: Vec<String> = ids(&sb.snapshots());
    let unknown = (0..0x1_0000u32)
        .map(|n| format!("{n:04x}"))
        .find(|p| !all.iter().any(|id| id.starts_with(p)))
        .unwrap();
    let o = sb.run(&["show", &unknown]).code(13);
    assert!(o.stderr.contains("no snapshot"), "{o:#?}");
    let o = sb.run(&["restore", "latest:gamma", "--to", "x"]).code(13);
    assert!(o.stderr.contains("gamma"), "{o:#?}");
    assert!(!sb.p("x").exists());
    let o = sb.run(&["show", "not-an-id"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not-an-id"), "{o:#?}");

    // Ambiguous prefix: with 17 snapshots two ids must share their first digit.
    let mut all = all;
    let ambiguous = loop {
        let mut firsts: BTreeMap<char, usize> = BTreeMap::new();
        for id in &all {
            *firsts.entry(id.chars().next().unwrap()).or_default() += 1;
        }
        if let Some((c, _)) = firsts.into_iter().find(|(_, n)| *n > 1) {
            break c.to_string();
        }
        assert!(all.len() <= 16);
        let s = sb.backup(&[&beta], &["--name", "filler"]);
        all.push(s["id"].as_str().unwrap().to_string());
    };
    let o = sb.run(&["show", &ambiguous]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("ambiguous"), "{o:#?}");
    let o = sb.run(&["restore", &ambiguous, "--to", "amb"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(!sb.p("amb").exists());
}

#[test]
fn time_must_be_rfc3339() {
    let sb = Sandbox::plain();
    fs::write(sb.p("f"), "x").unwrap();
    let o = sb.run(&["backup", "f", "--time", "yesterday"]).code(2);
    assert!(o.stderr.contains("RFC 3339"), "{o:#?}");
    let o = sb.run(&["backup", "f", "--kind", "pre-restore"]).code(2);
    assert!(o.stderr.contains("pre-restore"), "{o:#?}");
    assert_eq!(sb.snapshots().len(), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Restore safety

#[test]
fn restore_refuses_to_overwrite_and_dry_run_writes_nothing() {
    let sb = Sandbox::plain();
    let site = sb.p("site");
    fs::create_dir_all(site.join("css")).unwrap();
    fs::write(site.join("index.html"), "<h1>backed up</h1>").unwrap();
    fs::write(site.join("css/x.css"), "body{}").unwrap();
    let s = sb.backup(&[&site], &[]);

    let out = sb.p("out");
    fs::create_dir_all(out.join("site")).unwrap();
    fs::write(out.join("site/index.html"), "LOCAL EDIT").unwrap();

    let o = sb.run(&["restore", "latest", "--to", "out"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("overwrite"), "{o:#?}");
    assert_eq!(
        fs::read_to_string(out.join("site/index.html")).unwrap(),
        "LOCAL EDIT"
    );
    assert!(!out.join("site/css").exists(), "nothing is written");

    // Dry run: the plan lists the existing file; nothing is written.
    let plan = sb.json(&["restore", "latest", "--to", "out", "--dry-run"]);
    assert_eq!(plan["snapshot"], s["id"]);
    assert_eq!(plan["source"], "site");
    assert_eq!(plan["time"], s["time"]);
    assert_eq!(plan["files"], 2);
    assert_eq!(plan["dirs"], 2);
    assert_eq!(plan["symlinks"], 0);
    assert_eq!(plan["bytes"], 24);
    assert_eq!(plan["existing"], serde_json::json!(["site/index.html"]));
    assert_eq!(plan["overwrite"], false);
    assert!(plan["target"].as_str().unwrap().ends_with("out"));
    let plan = sb.json(&[
        "restore",
        "latest",
        "--to",
        "out",
        "--dry-run",
        "--overwrite",
    ]);
    assert_eq!(plan["overwrite"], true);
    assert!(!out.join("site/css").exists());
    assert_eq!(
        fs::read_to_string(out.join("site/index.html")).unwrap(),
        "LOCAL EDIT"
    );

    // A dry run into a new directory does not create it.
    let plan = sb.json(&["restore", "latest", "--to", "fresh", "--dry-run"]);
    assert_eq!(plan["existing"], serde_json::json!([]));
    assert!(!sb.p("fresh").exists());

    // With --overwrite the snapshot's content wins, and no temporary files remain.
    sb.run(&["restore", "latest", "--to", "out", "--overwrite"])
        .ok();
    assert_eq!(
        fs::read_to_string(out.join("site/index.html")).unwrap(),
        "<h1>backed up</h1>"
    );
    assert_eq!(
        fs::read_to_string(out.join("site/css/x.css")).unwrap(),
        "body{}"
    );
    assert_eq!(files_under(&out).len(), 2, "{:?}", files_under(&out));
}

#[cfg(unix)]
#[test]
fn overwrite_replaces_a_symlink_without_following_it() {
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("f"), "from the snapshot").unwrap();
    sb.backup(&[&d], &[]);
    let victim = sb.p("victim.txt");
    fs::write(&victim, "must stay").unwrap();
    let out = sb.p("out");
    fs::create_dir_all(out.join("d")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("d/f")).unwrap();
    sb.run(&["restore", "latest", "--to", "out", "--overwrite"])
        .ok();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "must stay");
    assert!(!fs::symlink_metadata(out.join("d/f")).unwrap().is_symlink());
    assert_eq!(
        fs::read_to_string(out.join("d/f")).unwrap(),
        "from the snapshot"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Errors and exit codes

#[test]
fn passphrase_errors_exit_12() {
    let sb = Sandbox::encrypted("right");
    fs::write(sb.p("f.txt"), "x").unwrap();
    sb.backup(&[&sb.p("f.txt")], &[]);

    let mut c = sb.bare();
    c.arg("--repo").arg(&sb.repo).arg("snapshots");
    c.env("BACKSTOP_PASSWORD", "wrong");
    let o = run(c).code(12);
    assert!(o.stderr.contains("wrong passphrase"), "{o:#?}");

    let pw = sb.p("wrong.txt");
    fs::write(&pw, "also wrong\n").unwrap();
    let mut c = sb.bare();
    c.arg("--repo")
        .arg(&sb.repo)
        .arg("--password-file")
        .arg(&pw)
        .args(["restore", "latest", "--to", "out"]);
    let o = run(c).code(12);
    assert!(o.stderr.contains("wrong passphrase"), "{o:#?}");
    assert!(!sb.p("out").exists());

    for args in [
        &["snapshots"][..],
        &["backup", "f.txt"],
        &["verify"],
        &["info"],
    ] {
        let mut c = sb.bare();
        c.arg("--repo").arg(&sb.repo).args(args);
        let o = run(c).code(12);
        assert!(o.stderr.contains("BACKSTOP_PASSWORD"), "{args:?}: {o:#?}");
    }
    assert_eq!(sb.snapshots().len(), 1, "no backup without the passphrase");

    // --json errors are JSON on stderr with the exit code.
    let mut c = sb.bare();
    c.arg("--repo").arg(&sb.repo).args(["--json", "snapshots"]);
    let o = run(c).code(12);
    let e: Value = serde_json::from_str(o.stderr.trim()).expect("JSON error");
    assert_eq!(e["exit_code"], 12);
}

#[test]
fn missing_repository_exits_10() {
    let sb = Sandbox::empty();
    for args in [
        &["snapshots"][..],
        &["info"],
        &["verify"],
        &["show", "latest"],
        &["restore", "latest", "--to", "out"],
    ] {
        let o = sb.run(args).code(10);
        assert!(o.stderr.contains("backstop init"), "{args:?}: {o:#?}");
    }
    fs::write(sb.p("f"), "x").unwrap();
    let o = sb.run(&["backup", "f"]).code(10);
    assert!(o.stderr.contains("backstop init"), "{o:#?}");
    assert!(!sb.repo.exists(), "backup with --repo does not create it");
}

#[test]
fn bad_config_exits_2_naming_the_line() {
    let sb = Sandbox::empty();
    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\n\n[sources.shop]\npath = \"shop.db\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let o = run({
        let mut c = sb.bare();
        c.arg("snapshots");
        c
    })
    .code(2);
    assert!(o.stderr.contains("line 5"), "{o:#?}");
    assert!(o.stderr.contains("colour"), "{o:#?}");

    fs::write(
        sb.p("other.toml"),
        "[sources.x]\npath = \"a\"\ncommand = [\"b\"]\n",
    )
    .unwrap();
    let mut c = sb.bare();
    c.args(["--config", "other.toml", "backup"]);
    let o = run(c).code(2);
    assert!(o.stderr.contains("exactly one"), "{o:#?}");

    let mut c = sb.bare();
    c.args(["--config", "missing.toml", "snapshots"]);
    let o = run(c);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("missing.toml"), "{o:#?}");
}

#[test]
fn unknown_snapshot_exits_13() {
    let sb = Sandbox::plain();
    let o = sb.run(&["restore", "latest", "--to", "out"]).code(13);
    assert!(o.stderr.contains("no snapshots"), "{o:#?}");
    fs::write(sb.p("f"), "x").unwrap();
    sb.backup(&[&sb.p("f")], &[]);
    let id = sb.snapshots()[0]["id"].as_str().unwrap().to_string();
    let other = if id.starts_with('0') { "1" } else { "0" }.repeat(64);
    sb.run(&["show", &other]).code(13);
    sb.run(&["restore", &other, "--to", "out"]).code(13);
    sb.run(&["show", "latest:nope"]).code(13);
    assert!(!sb.p("out").exists());
}

#[test]
fn unknown_config_source_exits_13() {
    let sb = Sandbox::empty();
    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n",
    )
    .unwrap();
    let mut c = sb.bare();
    c.arg("init");
    run(c).ok();
    let mut c = sb.bare();
    c.args(["backup", "--source", "nope"]);
    let o = run(c);
    assert!(o.stderr.contains("nope"), "{o:#?}");
    assert_eq!(o.code, 13, "{o:#?}");
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
