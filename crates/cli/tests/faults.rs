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

/// A 1 GiB sparse file restores as a sparse file: the same bytes, little disk.
#[cfg(target_os = "linux")]
#[test]
fn a_sparse_file_restores_with_its_holes() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt as _;
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    let disk = data.join("disk.img");
    let mut f = fs::File::create(&disk).unwrap();
    f.write_all(&random_bytes(3, 1 << 20)).unwrap();
    f.seek(SeekFrom::Start(600 << 20)).unwrap();
    f.write_all(b"a record in the middle").unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    sb.backup(&[&data], &[]);
    let out = sb.p("out");
    sb.restore("latest", &out);
    let restored = out.join("data/disk.img");
    let meta = fs::metadata(&restored).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert_eq!(blake3_file(&restored), blake3_file(&disk));
    let used = meta.blocks() * 512;
    eprintln!("1 GiB sparse file restored using {used} bytes of disk");
    assert!(
        used < 16 << 20,
        "a 1 GiB sparse file with 1 MiB of data restored using {used} bytes"
    );
}

/// A backup that fails after storing data says what it left and how to reclaim it; prune then
/// does, and removes temporary files that no running command can own.
#[cfg(unix)]
#[test]
fn a_failed_backup_says_what_it_left_and_prune_reclaims_it() {
    let sb = Sandbox::plain();
    let before = packs(&sb.repo).len();
    // A dump command that writes 24 MB and then fails: the backup stores packs, then stops.
    let o = sb.run(&[
        "backup",
        "--name",
        "dump",
        "--",
        "sh",
        "-c",
        "head -c 24000000 /dev/urandom; echo 'dump failed' >&2; exit 3",
    ]);
    assert_ne!(o.code, 0, "{o:#?}");
    let left = packs(&sb.repo).len() - before;
    assert!(
        left >= 2,
        "the failed backup should have stored packs: {o:#?}"
    );
    let line = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains(&format!("the failed backup left {left} pack(s) (")) && line.contains("MiB"),
        "the error must say what the failed backup left: {o:#?}"
    );
    assert!(o.stderr.contains("backstop prune"), "{o:#?}");
    assert!(sb.snapshots().is_empty());

    // Temporary files: one from a command that died long ago, one that may be in use.
    let tmp = sb.repo.join("tmp");
    fs::write(tmp.join("0123456789abcdef.tmp"), vec![1u8; 1 << 20]).unwrap();
    set_mtime(&tmp.join("0123456789abcdef.tmp"), past(1));
    fs::write(tmp.join("fedcba9876543210.tmp"), b"being written").unwrap();

    let v = sb.json(&["prune"]);
    assert_eq!(
        packs(&sb.repo).len(),
        before,
        "prune reclaims the packs: {v:#}"
    );
    assert_eq!(v["temporary_files_removed"], 1, "{v:#}");
    assert!(!tmp.join("0123456789abcdef.tmp").exists());
    assert!(
        tmp.join("fedcba9876543210.tmp").exists(),
        "a fresh temporary file stays"
    );
    sb.assert_clean();
}

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
#[cfg(target_os = "linux")]
struct Tmpfs(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "20m") at `dir`, or `None` where this process may not
    /// mount (not root, or in a container without the capability).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let s = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success());
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A real full disk (a 20 MiB tmpfs holding the repository): the backup that fills it fails
/// with the disk's own error, leaves no snapshot, says what it left; a restore and a verify
/// of the earlier snapshot still work on the full disk; once there is space again, prune
/// reclaims what the failed backup left and the next backup succeeds.
#[cfg(target_os = "linux")]
#[test]
fn a_backup_that_fills_the_disk_leaves_no_snapshot_and_the_repository_still_restores() {
    let mut sb = Sandbox::empty();
    let disk = sb.p("disk");
    fs::create_dir(&disk).unwrap();
    let Some(mount) = Tmpfs::mount(&disk, "20m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    sb.repo = disk.join("repo");
    sb.run(&["init", "--encryption", "none"]).ok();
    let small = sb.p("small");
    fs::create_dir(&small).unwrap();
    fs::write(small.join("orders.csv"), b"17,widget,3\n".repeat(5000)).unwrap();
    let first = sb.backup(&[&small], &[])["id"]
        .as_str()
        .unwrap()
        .to_string();

    let big = sb.p("big");
    fs::create_dir(&big).unwrap();
    fs::write(big.join("scan.bin"), random_bytes(5, 48 << 20)).unwrap();
    let mut c = sb.cmd();
    c.arg("backup").arg(&big);
    let o = run(c);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr.contains("No space left") || o.stderr.contains("os error 28"),
        "the disk's own error is named: {o:#?}"
    );
    assert!(o.stderr.contains("the failed backup left"), "{o:#?}");
    assert!(o.stderr.contains("backstop prune"), "{o:#?}");
    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1, "no half snapshot: {snaps:#?}");
    assert!(
        files_under(&sb.repo.join("tmp")).is_empty(),
        "a failed write removes its temporary file"
    );

    // Restore and verify on the full disk.
    let out = sb.p("restored");
    sb.restore(&first, &out);
    assert_same_tree(&small, &out.join("small"));
    let (code, report) = sb.verify(true);
    assert_eq!(code, 0, "{report:#}");

    // Space again: prune reclaims the leftovers, the backup succeeds and restores.
    mount.resize("128m");
    let used_before = dir_size(&sb.repo);
    sb.json(&["prune"]);
    assert!(
        dir_size(&sb.repo) < used_before,
        "prune reclaimed the leftovers"
    );
    let id = sb.backup(&[&big], &[])["id"].as_str().unwrap().to_string();
    let out = sb.p("restored-big");
    sb.restore(&id, &out);
    assert_same_tree(&big, &out.join("big"));
    sb.assert_clean();
}

#[cfg(target_os = "linux")]
fn dir_size(dir: &std::path::Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}
