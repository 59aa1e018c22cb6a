//! Crash test: backups killed with SIGKILL at many different moments must never leave the
//! repository damaged, and must not block the next backup.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FILES: usize = 5;
const FILE_SIZE: usize = 8_000_000;
const ITERATIONS: usize = 12;

/// When to kill a running backup.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After a fixed delay.
    After(Duration),
    /// As soon as a new file appears under this repository directory (the lock, the first
    /// pack, the index file, the snapshot).
    OnNewFileIn(&'static str),
}

/// Waits until `kill` says so (or the child exits), then kills the child. Returns whether the
/// child was still running, i.e. died of the signal.
fn kill_backup(mut child: Child, kill: Kill, repo: &Path) -> bool {
    match kill {
        Kill::After(d) => std::thread::sleep(d),
        Kill::OnNewFileIn(dir) => {
            let dir = repo.join(dir);
            let before = files_under(&dir);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if files_under(&dir).iter().any(|f| !before.contains(f)) {
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    if status.signal() == Some(9) {
        return true;
    }
    assert!(status.success(), "{kill:?}: {status:?}");
    false
}

#[test]
fn killed_backups_leave_a_sound_repository() {
    let started = Instant::now();
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(data.join("small")).unwrap();
    for i in 0..20 {
        fs::write(
            data.join(format!("small/s{i}.txt")),
            format!("small file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    // Every iteration writes new content into all five 8 MB files: about 22 MB to store, more
    // than one 16 MiB pack, so a pack is written while the backup is still reading.
    let rewrite = |round: usize| {
        for i in 0..FILES {
            fs::write(
                data.join(format!("f{i}.bin")),
                compressible((round * FILES + i) as u64, FILE_SIZE),
            )
            .unwrap();
        }
    };
    rewrite(0);
    sb.backup(&[&data], &[]);
    rewrite(1);
    let t0 = Instant::now();
    sb.backup(&[&data], &["--force"]);
    let full = t0.elapsed();
    eprintln!("a backup of 40 MB with 22 MB new takes {full:?}");

    let mut killed_running = 0;
    let mut stale_locks_seen = 0;
    let mut left_unreferenced_packs = 0;
    let mut snapshots = sb.snapshots().len();
    let mut locks_before = 0;
    let mut unreferenced_before = 0;
    let events = ["locks", "data", "index", "snapshots"];
    for i in 0..ITERATIONS {
        rewrite(i + 2);
        let kill = if i % 2 == 0 {
            let frac = i as f64 / (ITERATIONS - 2) as f64;
            Kill::After(Duration::from_millis(5) + full.mul_f64(frac))
        } else {
            Kill::OnNewFileIn(events[(i / 2) % events.len()])
        };
        let child = sb
            .cmd()
            .args(["backup", "--force", "-q"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let was_killed = kill_backup(child, kill, &sb.repo);
        killed_running += usize::from(was_killed);

        let after_kill = sb.snapshots().len();
        if was_killed {
            assert!(
                after_kill == snapshots || after_kill == snapshots + 1,
                "iteration {i}: {snapshots} -> {after_kill} snapshots"
            );
        } else {
            assert_eq!(
                after_kill,
                snapshots + 1,
                "a finished backup saved one snapshot"
            );
        }

        // Unreferenced packs are allowed (a note, not a problem); anything else is not.
        let (code, report) = sb.verify(true);
        assert_eq!(
            code, 0,
            "iteration {i} ({kill:?}, killed: {was_killed}): {report:#}"
        );
        let unreferenced = report["unreferenced_packs"].as_u64().unwrap();
        if unreferenced > unreferenced_before {
            left_unreferenced_packs += 1;
        }
        unreferenced_before = unreferenced;

        // Locks of killed backups stay behind (nothing removes them but an exclusive holder).
        let locks = count_files(&sb.repo.join("locks"));
        assert!(locks == locks_before || locks == locks_before + 1);
        if locks > locks_before {
            assert!(
                was_killed,
                "iteration {i}: a finished backup released its lock"
            );
            stale_locks_seen += 1;
        }
        locks_before = locks;

        // The stale lock of the killed process does not block the next backup.
        let s = sb.backup(&[&data], &[]);
        assert_eq!(s["warnings"], serde_json::json!([]));
        snapshots = after_kill + 1;
        assert_eq!(
            count_files(&sb.repo.join("locks")),
            locks,
            "own lock released"
        );

        let out = sb.p(&format!("out{i}"));
        sb.restore(s["id"].as_str().unwrap(), &out);
        assert_same_tree(&data, &out.join("data"));
        fs::remove_dir_all(&out).unwrap();
    }
    eprintln!(
        "{killed_running} of {ITERATIONS} backups killed while running; {stale_locks_seen} left \
         a lock; {left_unreferenced_packs} left unreferenced packs; {:?} in all",
        started.elapsed()
    );
    assert!(
        killed_running >= ITERATIONS / 2,
        "only {killed_running} kills landed during a backup: the test did not test much"
    );
    assert!(stale_locks_seen > 0, "no kill left a stale lock behind");
    assert!(
        left_unreferenced_packs > 0,
        "no kill landed between writing a pack and its index"
    );
    sb.assert_clean();
}
