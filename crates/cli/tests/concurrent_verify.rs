//! `verify --read-data` beside running backups: it judges what was committed when it started,
//! so a backup that finishes meanwhile must never show up as a problem (issue 13, item 3).

mod common;

use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BACKUPS: usize = 10;

#[test]
fn verify_read_data_beside_ten_backups_reports_no_problem() {
    let sb = Sandbox::plain();
    // Something to read from the start, so every verify spends time reading packs (the window
    // in which the backups commit).
    let base = sb.p("base");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("big.bin"), random_bytes(1, 2 << 20)).unwrap();
    sb.backup(&[&base], &[]);

    let dirs: Vec<_> = (0..BACKUPS)
        .map(|i| {
            let d = sb.p(&format!("src{i}"));
            fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let start = |n: usize, i: usize| -> Child {
        fs::write(
            dirs[i].join("data.bin"),
            random_bytes(100 + n as u64, 8 << 20),
        )
        .unwrap();
        let mut c = sb.cmd();
        c.arg("--quiet")
            .arg("backup")
            .arg(&dirs[i])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c.spawn().expect("starting a backup")
    };

    // Ten backups at a time; as one finishes the next starts, so commits fall at every moment
    // of the verify runs beside them.
    let total = 6 * BACKUPS;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut started = 0;
    let mut children: Vec<Option<Child>> = (0..BACKUPS)
        .map(|i| {
            started += 1;
            Some(start(i, i))
        })
        .collect();
    let mut verifies = 0;
    let mut backups_done = 0;
    while children.iter().any(Option::is_some) {
        let (code, report) = sb.verify(true);
        verifies += 1;
        assert_eq!(
            code, 0,
            "verify --read-data beside running backups reported problems: {report:#}"
        );
        assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));
        for (i, slot) in children.iter_mut().enumerate() {
            if let Some(child) = slot
                && child.try_wait().unwrap().is_some()
            {
                let o = slot.take().unwrap().wait_with_output().unwrap();
                assert!(
                    o.status.success(),
                    "a backup failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                backups_done += 1;
                if started < total {
                    *slot = Some(start(started, i));
                    started += 1;
                }
            }
        }
        assert!(Instant::now() < deadline, "backups did not finish in time");
    }
    let rounds = total / BACKUPS;
    assert_eq!(backups_done, rounds * BACKUPS);
    assert!(verifies >= 5, "only {verifies} verify runs");
    // And afterwards everything is there and clean.
    sb.assert_clean();
    assert_eq!(sb.snapshots().len(), 1 + rounds * BACKUPS);
    eprintln!("{verifies} verify --read-data runs beside {backups_done} backups: no problem");
}
