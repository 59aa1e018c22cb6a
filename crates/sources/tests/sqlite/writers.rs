//! Captures under concurrent writers, in WAL and rollback-journal mode: every capture is a
//! committed state, and it holds that state however long the engine takes to read it.

use super::*;

fn wal_with_writer(checkpoints: bool) {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("live.sqlite");
    let wal = tmp.path().join("live.sqlite-wal");
    drop(create_counter_db(&path, None, true, 50));
    // The last connection closed: everything is in the main file, no WAL.
    assert!(fs::metadata(&wal).map_or(true, |m| m.len() == 0));
    let main_before = file_hash(&path);

    // Without checkpoints the main file keeps the initial 50 rows: every row beyond those in an
    // image can only have come from the WAL. With frequent checkpoints (and deletes), pages
    // move from the WAL to the main file while captures read.
    let writer = if checkpoints {
        Writer::start(
            &path,
            Load::GrowAndDelete,
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 50",
        )
    } else {
        Writer::start(
            &path,
            Load::Grow,
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0",
        )
    };
    writer.wait_for_commits(5);
    let mut counts = Vec::new();
    let mut wal_sizes = Vec::new();
    let mut overlapping = 0;
    // At least 12 captures, and more (up to 60) until 4 of them overlapped a commit: on a
    // loaded machine the writer can be starved for a while.
    let mut i = 0;
    while i < 12 || (overlapping < 4 && i < 60) {
        let before = writer.commits();
        wal_sizes.push(fs::metadata(&wal).map_or(0, |m| m.len()));
        let cap = capture(&path);
        if writer.commits() > before {
            overlapping += 1;
        }
        assert_eq!(cap.db().journal_mode, "wal");
        counts.push(check_counter_image(
            tmp.path(),
            &format!("img{i}.sqlite"),
            &cap,
        ));
        thread::sleep(Duration::from_millis(5));
        i += 1;
    }
    let main_after = file_hash(&path);
    let total = writer.stop();

    assert!(
        overlapping >= 4,
        "the writer committed during only {overlapping} of {i} captures ({total} commits)"
    );
    assert!(wal_sizes.iter().any(|&s| s > 0), "{wal_sizes:?}");
    if checkpoints {
        let distinct: std::collections::BTreeSet<_> = counts.iter().collect();
        assert!(
            distinct.len() >= 4,
            "captures saw too few states: {counts:?}"
        );
    } else {
        assert!(wal_sizes.iter().all(|&s| s > 0), "{wal_sizes:?}");
        assert_eq!(main_before, main_after, "no checkpoint ran");
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]) && counts[0] < counts[counts.len() - 1],
            "later captures must see at least as many rows: {counts:?}"
        );
        assert!(
            counts[0] > 50,
            "WAL content missing from the image: {counts:?}"
        );
    }
    // The live database itself is fine.
    let c = open(&path);
    assert_eq!(check(&c, "integrity_check"), "ok");
    assert_eq!(counter(&c), count(&c, "t"));
}

#[test]
fn wal_capture_with_concurrent_writer() {
    wal_with_writer(false);
}

#[test]
fn wal_capture_with_concurrent_writer_checkpoints_and_deletes() {
    wal_with_writer(true);
}

/// A rollback-journal database under a writer committing as fast as it can (busy timeout 5 s):
/// every capture is a committed state and the writer never times out.
#[test]
fn rollback_capture_with_concurrent_writer() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("live.sqlite");
    drop(create_counter_db(&path, None, false, 150));
    let writer = Writer::start(&path, Load::Steady, "PRAGMA synchronous = OFF");
    writer.wait_for_commits(5);
    let start = writer.commits();
    let t0 = Instant::now();
    let mut images = std::collections::BTreeSet::new();
    let mut captures = 0u32;
    while captures < 600 && t0.elapsed() < Duration::from_secs(12) && writer.is_running() {
        let cap = capture(&path);
        assert_eq!(cap.db().journal_mode, "delete");
        if captures.is_multiple_of(25) {
            check_counter_image(tmp.path(), "img.sqlite", &cap);
        } else {
            let (_, c) = restore(tmp.path(), "img.sqlite", &cap.image);
            let n = count(&c, "t");
            assert_eq!(
                counter(&c),
                n,
                "capture {captures}: counter.n != count(*) of t"
            );
            assert_eq!(cap.rows("t"), Some(n));
            assert_eq!(cap.db().quick_check, "ok");
        }
        images.insert(cap.item.content.unwrap().hash);
        captures += 1;
    }
    let during = writer.commits() - start;
    eprintln!(
        "{captures} captures in {:?}, {during} commits",
        t0.elapsed()
    );
    writer.stop();
    assert!(during >= 10, "the writer hardly ran: {during} commits");
    assert!(
        images.len() >= 5,
        "captures saw too few states: {}",
        images.len()
    );
}

/// The capture is the state when `next_entry` returned, however long the engine takes to
/// read it: in WAL mode a writer goes on committing meanwhile; in rollback-journal mode it
/// waits (within its busy timeout) and then commits.
fn capture_holds_its_state(wal: bool) {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("live.sqlite");
    // Larger than the pages the capture thread can send ahead (3 batches of 256 pages), so
    // that it is still reading while the test waits.
    drop(create_counter_db(&path, None, wal, 5000));
    let size = fs::metadata(&path).unwrap().len();
    assert!(size > 6 << 20, "{size}");

    let mut src = SqliteSource::new(path.clone(), ITEM_NAME.into()).unwrap();
    let entry = parts(src.next_entry().unwrap().unwrap());
    let writer = Writer::start(&path, Load::Grow, "");
    thread::sleep(Duration::from_millis(300));
    let during = writer.commits();
    if wal {
        assert!(during > 0, "a WAL writer is not blocked by a capture");
    } else {
        assert_eq!(
            during, 0,
            "a rollback-mode writer must wait for the capture"
        );
    }
    let cap = read_and_complete(entry);
    src.finish().unwrap();
    writer.wait_for_commits(during + 5);
    writer.stop();

    assert_eq!(check_counter_image(tmp.path(), "img.sqlite", &cap), 5000);
}

#[test]
fn rollback_capture_holds_its_state_while_read() {
    capture_holds_its_state(false);
}

#[test]
fn wal_capture_holds_its_state_while_read() {
    capture_holds_its_state(true);
}
