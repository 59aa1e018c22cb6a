//! The checks of [`Storage::write_new`]: objects that must never be replaced.

use super::{bytes, expect_invalid, id, ok, sorted_list};
use crate::{Error, Kind, Result, Storage};

/// write_new() creates a missing object, refuses an existing one with Exists
/// (keeping its content), and refuses invalid names.
pub fn write_new_once(s: &dyn Storage) {
    ok(s.create(), "create()");
    for kind in [Kind::Config, Kind::Lock, Kind::Pack] {
        let name = if kind == Kind::Config {
            "config".to_owned()
        } else {
            id(21)
        };
        let first = bytes(1, 300);
        ok(
            s.write_new(kind, &name, &first),
            format!("write_new({kind}) of a new name"),
        );
        match s.write_new(kind, &name, b"second") {
            Err(Error::Exists {
                kind: k, name: n, ..
            }) if k == kind && n == name => {}
            other => panic!("second write_new({kind}, {name}) gave {other:?}, not Exists"),
        }
        let got = ok(
            s.read(kind, &name),
            format!("read({kind}) after a refused write_new"),
        );
        assert!(
            got == first,
            "a refused write_new({kind}) changed the object"
        );
        assert_eq!(
            sorted_list(s, kind),
            [(name.clone(), first.len() as u64)],
            "list({kind}) after a refused write_new"
        );
        // A deleted object can be created anew.
        ok(s.delete(kind, &name), format!("delete({kind})"));
        ok(
            s.write_new(kind, &name, b"again"),
            format!("write_new({kind}) after delete"),
        );
        assert_eq!(
            ok(s.read(kind, &name), "read()"),
            b"again",
            "write_new after delete"
        );
    }
    expect_invalid(
        s.write_new(Kind::Lock, "a/b", b"x"),
        "write_new(lock, \"a/b\")",
    );
}

/// 8 threads racing to create one name: exactly one succeeds, the others get
/// Exists, and the object holds the winner's bytes.
pub fn write_new_race(s: &dyn Storage) {
    ok(s.create(), "create()");
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 3;
    for round in 0..ROUNDS {
        let name = id(1000 + round);
        let barrier = std::sync::Barrier::new(THREADS as usize);
        let outcomes: Vec<(u64, Result<()>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (name, barrier) = (&name, &barrier);
                    scope.spawn(move || {
                        let data = bytes(round * 100 + t, 2000 + t as usize);
                        barrier.wait();
                        (t, s.write_new(Kind::Lock, name, &data))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("racing thread"))
                .collect()
        });
        let mut winners = Vec::new();
        for (t, outcome) in outcomes {
            match outcome {
                Ok(()) => winners.push(t),
                Err(Error::Exists { .. }) => {}
                Err(e) => panic!("round {round}: thread {t}'s write_new failed: {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: winners of write_new: {winners:?}"
        );
        let t = winners[0];
        let got = ok(s.read(Kind::Lock, &name), "read() after the race");
        assert!(
            got == bytes(round * 100 + t, 2000 + t as usize),
            "round {round}: the object does not hold the bytes of the winner, thread {t}"
        );
    }
}
