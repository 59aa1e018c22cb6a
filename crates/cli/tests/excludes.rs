//! End-to-end tests of exclusions: `--exclude`, `--exclude-file`, `--exclude-if-present`,
//! `--exclude-caches` and a configured source's `exclude*` keys leave exactly what they match
//! out of a backup, `show` lists the rules, and bad rules are usage errors.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# made by a test\n";

/// An application folder with caches, logs and temp files, and the files a backup must keep
/// (relative to `app`'s parent) when the rules the tests give apply; with the connection that
/// keeps `app/scratch.db`'s `-wal` and `-shm` in place.
fn app_tree(root: &Path) -> (Vec<&'static str>, rusqlite::Connection) {
    let files: [(&str, &str); 16] = [
        ("app/notes.txt", "keep"),
        ("app/debug.log", "log"),
        ("app/keep.log", "re-included"),
        ("app/sub/deep/trace.log", "nested log"),
        ("app/sub/deep/data.csv", "a,b"),
        ("app/.cache/blob", "cache"),
        ("app/sub/.cache/blob", "nested cache"),
        ("app/thumbs/CACHEDIR.TAG", TAG),
        ("app/thumbs/1.png", "png"),
        ("app/fake/CACHEDIR.TAG", "Signature: not one"),
        ("app/fake/f", "kept: the tag has no signature"),
        ("app/private/.nobackup", ""),
        ("app/private/secret", "s"),
        ("app/tmp/t", "anchored temp"),
        ("app/sub/tmp/t", "not at the top: kept"),
        ("app/cachefile", "a file, and cache/ is directories only"),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let db = rusqlite::Connection::open(root.join("app/scratch.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    assert!(root.join("app/scratch.db-wal").exists());
    let kept = vec![
        "app/cachefile",
        "app/fake/CACHEDIR.TAG",
        "app/fake/f",
        "app/keep.log",
        "app/notes.txt",
        "app/sub/deep/data.csv",
        "app/sub/tmp/t",
    ];
    (kept, db)
}

const EXCLUDE_FILE: &str = "# temp files at the top\n/tmp\n\n.cache/\ncachefile/\n";

/// The regular files under `dir`, relative to it, `/`-separated.
fn relative_files(dir: &Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| {
            p.strip_prefix(dir)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[test]
fn flags_leave_out_exactly_what_they_match_and_show_lists_them() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    let (kept, _open) = app_tree(&data);
    let exclude_file = sb.p("excludes.txt");
    fs::write(&exclude_file, EXCLUDE_FILE).unwrap();
    let app = data.join("app");
    let summary = sb.backup(
        &[&app],
        &[
            "--exclude",
            "*.log",
            "--exclude",
            "!keep.log",
            "--exclude",
            "scratch.db",
            "--exclude-file",
            exclude_file.to_str().unwrap(),
            "--exclude-if-present",
            ".nobackup",
            "--exclude-caches",
        ],
    );
    assert_eq!(summary["warnings"], json!([]), "{summary:#}");

    let out = sb.p("out");
    sb.restore("latest:app", &out);
    assert_eq!(relative_files(&out), kept);
    // Excluded directories are not even created: they were not descended into.
    for gone in ["app/.cache", "app/thumbs", "app/private", "app/tmp"] {
        assert!(!out.join(gone).exists(), "{gone} restored");
    }

    let shown = sb.json(&["show", "latest:app"]);
    assert_eq!(
        shown["excludes"],
        json!({
            "patterns": ["*.log", "!keep.log", "scratch.db", "/tmp", ".cache/", "cachefile/"],
            "if_present": [".nobackup"],
            "caches": true,
        })
    );
    let text = sb.run(&["show", "latest:app"]).ok().stdout;
    for line in [
        "exclude     *.log",
        "exclude     !keep.log",
        "exclude     directories holding .nobackup",
        "exclude     cache directories (CACHEDIR.TAG)",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }

    // Without rules, everything is there and the snapshot records none.
    sb.backup(&[&app], &["--name", "all"]);
    assert!(sb.json(&["show", "latest:all"]).get("excludes").is_none());
    let all = sb.p("all");
    sb.restore("latest:all", &all);
    let every = relative_files(&all);
    assert!(every.len() > kept.len() + 8, "{every:?}");
    assert!(every.contains(&"app/scratch.db".to_string()));
}

#[test]
fn config_exclude_keys_and_flags_combine() {
    let sb = Sandbox::empty();
    let site = sb.p("site");
    let (kept, _open) = app_tree(&site);
    fs::write(site.join("excludes.txt"), EXCLUDE_FILE).unwrap();
    fs::write(
        site.join("backstop.toml"),
        r#"repository = "repo"

[sources.app]
path = "app"
exclude = ["*.log", "!keep.log"]
exclude_file = "excludes.txt"
exclude_if_present = [".nobackup"]
exclude_caches = true
"#,
    )
    .unwrap();
    let in_site = |args: &[&str]| {
        let mut c = command_in(&site);
        c.args(args);
        run(c)
    };
    in_site(&["init", "--encryption", "none"]).ok();
    // A flag's rules come after the config's.
    let s = in_site(&["--json", "backup", "--exclude", "scratch.db"])
        .ok()
        .json();
    assert_eq!(s["warnings"], json!([]), "{s:#}");
    in_site(&["restore", "latest:app", "--to", "out"]).ok();
    assert_eq!(relative_files(&site.join("out")), kept);
    let shown = in_site(&["--json", "show", "latest:app"]).ok().json();
    assert_eq!(
        shown["excludes"],
        json!({
            "patterns": ["*.log", "!keep.log", "/tmp", ".cache/", "cachefile/", "scratch.db"],
            "if_present": [".nobackup"],
            "caches": true,
        })
    );
}

#[test]
fn bad_exclusions_are_usage_errors() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    let db = data.join("shop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x);")
        .unwrap();
    let backup = |args: &[&str]| {
        let mut c = sb.cmd();
        c.arg("backup").args(args);
        run(c).code(2).stderr
    };
    let data_s = data.to_str().unwrap();
    let err = backup(&[data_s, "--exclude", "ok", "--exclude", "a["]);
    assert!(err.contains("\"a[\""), "{err}");
    let err = backup(&[data_s, "--exclude-file", "missing.txt"]);
    assert!(err.contains("missing.txt"), "{err}");
    let err = backup(&[db.to_str().unwrap(), "--exclude", "*.log"]);
    assert!(err.contains("one SQLite database"), "{err}");
    let err = backup(&["--name", "dump", "--exclude-caches", "--", "echo", "x"]);
    assert!(err.contains("command"), "{err}");
    assert_eq!(sb.snapshots().len(), 0, "nothing was backed up");

    let cfg: PathBuf = sb.p("backstop.toml");
    for (toml, says) in [
        (
            "[sources.dump]\ncommand = [\"echo\", \"x\"]\nexclude = [\"*.log\"]\n",
            "files sources only",
        ),
        ("[sources.d]\npath = \"data\"\nexclude = [\"[\"]\n", "\"[\""),
    ] {
        fs::write(&cfg, toml).unwrap();
        let mut c = sb.cmd();
        c.arg("--config").arg(&cfg).arg("backup");
        let err = run(c).code(2).stderr;
        assert!(err.contains(says), "{toml}: {err}");
    }
}
