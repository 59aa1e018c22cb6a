//! `replace_live`: an image put in place under a reader, reading only the image.

use super::*;

#[test]
fn replace_live_under_a_reader() {
    let tmp = TempDir::new().unwrap();
    let live = tmp.path().join("live.sqlite");
    let writer = create_counter_db(&live, None, true, 100);
    let old = capture(&live);
    let (image, img_conn) = restore(tmp.path(), "old.sqlite", &old.image);
    let old_rows = rows_hash(&img_conn);
    drop(img_conn);
    writer.execute(INSERT_ROWS, [150]).unwrap();
    writer.execute(SYNC_COUNTER, []).unwrap();
    assert_eq!(count(&writer, "t"), 250);
    drop(writer);

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let reader = {
        let (live, stop, seen) = (live.clone(), stop.clone(), seen.clone());
        thread::spawn(move || -> Vec<rusqlite::Error> {
            let mut c = Connection::open(&live).unwrap();
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = c.transaction().and_then(|tx| {
                    let n: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                    let m: i64 = tx.query_row("SELECT n FROM counter", [], |r| r.get(0))?;
                    tx.commit()?;
                    Ok((n as u64, m as u64))
                });
                match r {
                    Ok((n, m)) => {
                        assert_eq!(n, m, "the reader saw a mixed state");
                        seen.lock().unwrap().push(n);
                    }
                    Err(e) => errors.push(e),
                }
            }
            errors
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "the reader is stuck");
            thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for(20);
    replace_live(&live, &image).expect("replace_live");
    let after = seen.lock().unwrap().len();
    wait_for(after + 20);
    stop.store(true, Ordering::SeqCst);
    let errors = reader.join().expect("reader panicked");
    let seen = seen.lock().unwrap().clone();

    for e in &errors {
        assert_eq!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy),
            "reader error other than busy: {e}"
        );
    }
    assert_eq!(seen[0], 250);
    // At most one read was under way when replace_live returned: all later ones see the image.
    assert!(
        seen[after + 1..].iter().all(|&n| n == 100),
        "the reader saw the old state after replace_live returned"
    );
    let switch = seen.iter().position(|&n| n == 100).unwrap();
    assert!(
        seen[..switch].iter().all(|&n| n == 250) && seen[switch..].iter().all(|&n| n == 100),
        "the reader saw something other than the old state then the new: {seen:?}"
    );

    let c = open(&live);
    assert_eq!(check(&c, "integrity_check"), "ok");
    assert_eq!(count(&c, "t"), 100);
    assert_eq!(counter(&c), 100);
    assert_eq!(rows_hash(&c), old_rows);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn replace_live_reads_only_the_image() {
    let tmp = TempDir::new().unwrap();
    let live = tmp.path().join("live.sqlite");
    drop(create_counter_db(&live, None, true, 100));
    let cap = capture(&live);
    let image = tmp.path().join("image.sqlite");
    fs::write(&image, &cap.image).unwrap();
    let expected = rows_hash(&open(&image));
    // A stale WAL of a later state of the same database next to the image, as a previous
    // restore to the same place could leave behind.
    let other = tmp.path().join("other.sqlite");
    fs::write(&other, &cap.image).unwrap();
    let c = open(&other);
    c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    c.execute(INSERT_ROWS, [50]).unwrap();
    c.execute(SYNC_COUNTER, []).unwrap();
    for f in ["image.sqlite-wal", "image.sqlite-shm"] {
        let _ = fs::remove_file(tmp.path().join(f));
    }
    fs::copy(
        tmp.path().join("other.sqlite-wal"),
        tmp.path().join("image.sqlite-wal"),
    )
    .unwrap();
    drop(c);
    assert!(
        fs::metadata(tmp.path().join("image.sqlite-wal"))
            .unwrap()
            .len()
            > 0
    );

    open(&live).execute(INSERT_ROWS, [7]).unwrap();
    replace_live(&live, &image).expect("replace_live");
    let c = open(&live);
    assert_eq!(check(&c, "integrity_check"), "ok");
    assert_eq!(
        count(&c, "t"),
        100,
        "rows from the stale WAL next to the image leaked in"
    );
    assert_eq!(rows_hash(&c), expected);
}
