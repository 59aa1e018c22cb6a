//! End-to-end tests of the `backstop` binary: round trips, deduplication, snapshot selection,
//! restore safety and error exit codes (sources, config and concurrency: `e2e_sources.rs`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

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
            // A database in the tree (chinook.sqlite) is captured as a database; nothing
            // writes to it, so its page image is the file byte for byte.
            "sqlite" => {
                seen_files += 1;
                assert!(md.is_file(), "{path}");
                assert_eq!(it["content"]["size"], md.len(), "{path}");
                assert_eq!(it["content"]["hash"], blake3_file(&disk), "{path}");
                assert_eq!(it["database"]["quick_check"], "ok", "{path}");
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

/// A tree restored with the index in a scratch file (`BACKSTOP_SPILL_ENTRIES=0`: what the
/// restore of a tree from a large repository does) comes back file for file, and no scratch
/// file is left behind.
#[test]
fn a_tree_restores_with_the_index_on_disk() {
    let sb = Sandbox::plain();
    let src = sb.p("src/tree");
    build_tree(&src);
    sb.backup(&[&src], &[]);
    let scratch = sb.p("scratch");
    fs::create_dir(&scratch).unwrap();
    let out = sb.p("restored");
    let mut c = sb.cmd();
    c.env("BACKSTOP_SPILL_ENTRIES", "0")
        .env("BACKSTOP_SCRATCH_DIR", &scratch)
        .args(["restore", "latest", "--to"])
        .arg(&out);
    run(c).ok();
    assert_same_tree(&src, &out.join("tree"));
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
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

    // Same data again: files are old, so they are not even read. The database is read (its
    // consistency comes from reading it in a transaction) and only hashed: nothing new.
    let db_bytes = fs::metadata(data.join("chinook.sqlite")).unwrap().len();
    let second = sb.backup(&[&data], &[]);
    assert_eq!(second["parent"], first["id"]);
    assert!(second["bytes_added"].as_u64().unwrap() < 4096, "{second:#}");
    assert_eq!(second["chunks_new"], 0, "{second:#}");
    assert_eq!(second["files_unchanged"], 2, "{second:#}");
    assert_eq!(second["bytes_read"], db_bytes);
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
    assert_eq!(
        changed["bytes_read"],
        3_000_000 + db_bytes,
        "only big.bin (and the database) is read"
    );
    assert_eq!(changed["files_unchanged"], 1);

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

/// `copy --to` a repository made on its own (another passphrase, so other keys): a real SQLite
/// database's snapshots are restored and stored again there, with the same ids; the copy
/// restores the database byte for byte and verifies clean, a second copy sends nothing, and a
/// snapshot of the changed database sends little.
#[test]
fn a_copy_into_a_repository_with_its_own_keys() {
    let sb = Sandbox::encrypted("source passphrase");
    let db = sb.p("chinook.sqlite");
    fs::copy(testdata("sqlite/chinook.sqlite"), &db).unwrap();
    sb.backup(&[&db], &["--name", "music"]);
    sqlite3(
        &db,
        &["UPDATE Artist SET Name = 'AC/DC (remastered)' WHERE ArtistId = 1;"],
    );
    sb.backup(&[&db], &["--name", "music"]);
    fs::write(sb.p("offsite.pass"), "offsite passphrase\n").unwrap();
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "[repositories.offsite]\nlocation = \"offsite\"\npassword_file = \"offsite.pass\"\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut c = sb.cmd();
        c.arg("--config").arg(&cfg).args(args);
        c
    };
    let mut init = sb.bare();
    init.arg("--config")
        .arg(&cfg)
        .args(["--repo", "offsite", "init"]);
    run(init).ok();
    let copied = run(with_config(&["--json", "copy", "--to", "offsite"]))
        .ok()
        .json();
    assert_eq!(copied["created"], false, "{copied:#}");
    assert_eq!(copied["copied"].as_array().unwrap().len(), 2, "{copied:#}");
    let offsite = |args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--config")
            .arg(&cfg)
            .args(["--repo", "offsite"])
            .args(args);
        c
    };
    let ids = |c: std::process::Command| -> Vec<String> {
        let list = run(c).ok().json();
        let list = list.as_array().unwrap();
        list.iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(offsite(&["--json", "snapshots", "--no-copies"])),
        ids(with_config(&["--json", "snapshots", "--no-copies"]))
    );
    run(offsite(&[
        "restore",
        "latest",
        "--to",
        sb.p("back").to_str().unwrap(),
    ]))
    .ok();
    assert_eq!(
        blake3_file(&sb.p("back")),
        blake3_file(&db),
        "the copy restores the database as it was"
    );
    assert_eq!(run(offsite(&["--json", "verify", "--read-data"])).code, 0);
    let again = run(with_config(&["--json", "copy", "--to", "offsite"]))
        .ok()
        .json();
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again:#}");
    sqlite3(
        &db,
        &["UPDATE Artist SET Name = 'Accept (live)' WHERE ArtistId = 2;"],
    );
    sb.backup(&[&db], &["--name", "music"]);
    let next = run(with_config(&["--json", "copy", "--to", "offsite"]))
        .ok()
        .json();
    assert_eq!(next["copied"].as_array().unwrap().len(), 1, "{next:#}");
    let sent = next["bytes_added"].as_u64().unwrap();
    assert!(
        sent < 200_000,
        "a changed page and its tree, not the database: {next:#}"
    );
}
