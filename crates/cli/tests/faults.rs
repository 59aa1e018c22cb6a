//! Repository faults seen from the command line (issue 13, items 5 and 8): what a failed backup
//! leaves, stale temporary files, sparse files, and error messages that name each cause once.

mod common;

use std::fs;

use common::*;

/// Every error message the binary prints names each cause once: no "X: X".
#[test]
fn an_error_names_its_cause_once() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a.txt"), b"stock\n").unwrap();
    sb.backup(&[&data], &[]);
    // A file where the index directory should be: listing it fails with an I/O error.
    fs::remove_dir_all(sb.repo.join("index")).unwrap();
    fs::write(sb.repo.join("index"), b"not a directory").unwrap();
    for args in [&["verify"][..], &["restore", "latest", "--to", "out"][..]] {
        let o = sb.run(args);
        assert_ne!(o.code, 0, "{args:?}: {o:#?}");
        let line = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(
            line.contains("index"),
            "{args:?}: the message names the path: {line}"
        );
        let cause = "ot a directory";
        assert_eq!(
            line.matches(cause).count(),
            1,
            "{args:?}: the cause must appear exactly once: {line}"
        );
        let o = sb.run(&[&["--json"][..], args].concat());
        let v: serde_json::Value = serde_json::from_str(o.stderr.trim()).unwrap();
        let err = v["error"].as_str().unwrap();
        assert_eq!(err.matches(cause).count(), 1, "{args:?} --json: {err}");
    }
}
