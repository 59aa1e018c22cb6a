//! Crash test for prune: `prune --max-unused 0` killed with SIGKILL at many moments (after
//! fixed delays, and on the first index file or pack it writes or deletes) must leave a
//! repository that verifies clean, in which every remaining snapshot restores byte for byte,
//! and which the next prune tidies up completely.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const FILES: usize = 6;
const FILE_SIZE: usize = 600_000;
/// Bytes overwritten in a file that is not rewritten whole.
const PATCH: usize = 60_000;
const SNAPSHOTS: usize = 8;
const KEEP: usize = 3;
/// Small packs (the default is 8 MiB) so that a few MB per snapshot make dozens of packs.
const PACK_SIZE: u64 = 512 << 10;

/// When to kill a running prune.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After a fixed delay.
    After(Duration),
    /// As soon as a file appears under this repository directory.
    OnNewFileIn(&'static str),
    /// As soon as a file that was there disappears from this repository directory.
    OnFileGoneFrom(&'static str),
}

impl Kill {
    /// A name for the report.
    fn label(self) -> String {
        match self {
            Kill::After(d) => format!("after {} ms", d.as_millis()),
            Kill::OnNewFileIn(d) => format!("new file in {d}/"),
            Kill::OnFileGoneFrom(d) => format!("file gone from {d}/"),
        }
    }
}

/// Runs `backstop ARGS`, kills it when `kill` says so, and returns whether it was still
/// running (died of the signal) rather than finished.
fn kill_run(sb: &Sandbox, args: &[&str], kill: Kill) -> bool {
    let watched = match kill {
        Kill::After(_) => None,
        Kill::OnNewFileIn(d) | Kill::OnFileGoneFrom(d) => Some(sb.repo.join(d)),
    };
    // Listed before the start, so that nothing the prune does is missed.
    let before: BTreeSet<PathBuf> = watched
        .as_deref()
        .map(|d| files_under(d).into_iter().collect())
        .unwrap_or_default();
    let mut child = sb
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    match kill {
        Kill::After(d) => std::thread::sleep(d),
        Kill::OnNewFileIn(_) | Kill::OnFileGoneFrom(_) => {
            let dir = watched.expect("a watched directory");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                let now: BTreeSet<PathBuf> = files_under(&dir).into_iter().collect();
                let hit = match kill {
                    Kill::OnNewFileIn(_) => now.difference(&before).next().is_some(),
                    _ => before.difference(&now).next().is_some(),
                };
                if hit {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    if status.signal() == Some(9) {
        return true;
    }
    assert!(status.success(), "{kill:?}: prune failed: {status:?}");
    false
}

/// Copies a directory tree (the repository before prune) to `to`, replacing what is there.
fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).unwrap();
    }
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// File name to BLAKE3 of every file in `dir`.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    files_under(dir)
        .iter()
        .map(|p| {
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            (name, blake3_file(p))
        })
        .collect()
}

/// Restores every snapshot in `want` and compares each file's hash with the one remembered.
#[track_caller]
fn assert_restores(sb: &Sandbox, want: &BTreeMap<String, BTreeMap<String, String>>, what: &str) {
    for (id, files) in want {
        let out = sb.p("out");
        if out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
        sb.restore(id, &out);
        assert_eq!(&hashes(&out.join("data")), files, "{what}: snapshot {id}");
    }
    fs::remove_dir_all(sb.p("out")).unwrap();
}

/// The ids of the snapshots in the repository.
fn snapshot_ids(sb: &Sandbox) -> BTreeSet<String> {
    sb.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// A repository of `SNAPSHOTS` snapshots of a directory whose files change between backups,
/// then `forget --keep-last KEEP`. Returns the kept snapshots with their files' hashes.
fn build(sb: &Sandbox) -> BTreeMap<String, BTreeMap<String, String>> {
    let config = sb.repo.join("config");
    let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    c["pack_size"] = PACK_SIZE.into();
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();

    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    let mut snapshots = Vec::new();
    let mut rng = Rng::new(99);
    for round in 0..SNAPSHOTS {
        // Each round rewrites one file whole (which one rotates) and overwrites a stretch of
        // every other file: packs come to hold chunks that stay beside chunks that go.
        for i in 0..FILES {
            let path = data.join(format!("f{i}.bin"));
            let seed = (round * FILES + i) as u64;
            if round == 0 || i == round % FILES {
                fs::write(&path, random_bytes(seed, FILE_SIZE)).unwrap();
            } else {
                let mut bytes = fs::read(&path).unwrap();
                let at = rng.below((FILE_SIZE - PATCH) as u64) as usize;
                bytes[at..at + PATCH].copy_from_slice(&random_bytes(seed, PATCH));
                fs::write(&path, bytes).unwrap();
            }
        }
        let s = sb.backup(&[&data], &[]);
        snapshots.push((s["id"].as_str().unwrap().to_string(), hashes(&data)));
    }
    let out = sb.json(&["forget", "--keep-last", &KEEP.to_string()]);
    assert_eq!(out["forgotten"], (SNAPSHOTS - KEEP) as u64, "{out:#}");
    let kept: BTreeMap<_, _> = snapshots.into_iter().skip(SNAPSHOTS - KEEP).collect();
    assert_eq!(snapshot_ids(sb), kept.keys().cloned().collect());
    kept
}

#[test]
fn killed_prunes_leave_a_sound_encrypted_repository() {
    crash_prunes(&Sandbox::encrypted("crash-test"));
}

#[test]
fn killed_prunes_leave_a_sound_unencrypted_repository() {
    // Repacking without encryption is deterministic: the next prune writes a pack with the
    // same bytes and name as one the killed prune wrote, which it has planned to delete
    // (unreferenced, or holding nothing the index picked), and deletes it after indexing it.
    crash_prunes(&Sandbox::plain());
}

/// Kills `prune --max-unused 0` at many moments in copies of one repository.
fn crash_prunes(sb: &Sandbox) {
    let started = Instant::now();
    let kept = build(sb);
    let master = sb.p("master");
    copy_tree(&sb.repo, &master);
    let packs_before = count_files(&sb.repo.join("data"));

    // One prune to the end: what it does, and how long it takes.
    let t0 = Instant::now();
    let full = sb.json(&["prune", "--max-unused", "0"]);
    let full_time = t0.elapsed();
    let plan = &full["plan"];
    eprintln!(
        "{packs_before} packs; a full prune takes {full_time:?}: {} deleted, {} repacked, {} \
         packs written",
        plan["delete_packs"], plan["repack_packs"], full["packs_written"]
    );
    assert!(packs_before >= 24, "only {packs_before} packs");
    assert!(plan["delete_packs"].as_u64().unwrap() > 0, "{full:#}");
    assert!(plan["repack_packs"].as_u64().unwrap() > 2, "{full:#}");
    sb.assert_clean();
    assert_restores(sb, &kept, "after a full prune");

    let mut kills: Vec<Kill> = [0.0, 0.1, 0.25, 0.4, 0.6, 0.8]
        .iter()
        .map(|f| Kill::After(full_time.mul_f64(*f)))
        .collect();
    for _ in 0..2 {
        kills.extend([
            Kill::OnNewFileIn("data"),
            Kill::OnNewFileIn("index"),
            Kill::OnFileGoneFrom("index"),
            Kill::OnFileGoneFrom("data"),
        ]);
    }
    let mut hits: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, &kill) in kills.iter().enumerate() {
        copy_tree(&master, &sb.repo);
        let was_running = kill_run(sb, &["prune", "--max-unused", "0", "-q"], kill);
        let e = hits.entry(kill.label()).or_default();
        e.0 += usize::from(was_running);
        e.1 += 1;
        let what = format!("iteration {i} ({}, killed: {was_running})", kill.label());

        // Prune never touches snapshots; unreferenced packs are a note, not a problem.
        assert_eq!(snapshot_ids(sb), kept.keys().cloned().collect(), "{what}");
        let (code, report) = sb.verify(true);
        assert_eq!(code, 0, "{what}: {report:#}");
        assert_restores(sb, &kept, &what);

        // The killed prune's lock is stale at once (its process is gone): the next prune runs
        // and removes what the killed one left behind.
        sb.json(&["prune"]);
        let (code, report) = sb.verify(true);
        assert_eq!(code, 0, "{what}, pruned again: {report:#}");
        assert_eq!(
            report["unreferenced_packs"], 0,
            "{what}, pruned again: {report:#}"
        );
        assert_eq!(
            report["problems"],
            serde_json::json!([]),
            "{what}: {report:#}"
        );
    }
    let killed: usize = hits.values().map(|h| h.0).sum();
    for (label, (hit, n)) in &hits {
        eprintln!("killed while running, {label}: {hit} of {n}");
    }
    eprintln!(
        "{killed} of {} prunes killed while running; {:?} in all",
        kills.len(),
        started.elapsed()
    );
    assert!(
        killed * 2 >= kills.len(),
        "only {killed} of {} kills landed during a prune: the test did not test much",
        kills.len()
    );
}

#[test]
fn prune_removes_the_stale_lock_of_a_killed_process() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("big.bin"), random_bytes(1, 20_000_000)).unwrap();
    let args = ["backup", "-q", data.to_str().unwrap()];
    assert!(kill_run(&sb, &args, Kill::OnNewFileIn("locks")));
    assert_eq!(
        count_files(&sb.repo.join("locks")),
        1,
        "the killed backup's lock"
    );
    // Stale at once (its process is gone), so prune runs, and as the exclusive holder it
    // should clear it away (a later process with the same pid would make it look held).
    sb.json(&["prune"]);
    assert_eq!(
        count_files(&sb.repo.join("locks")),
        0,
        "stale lock left behind"
    );
}
