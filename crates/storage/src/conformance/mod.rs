//! Checks that every [`Storage`] backend must pass.
//!
//! Each check takes a storage at a fresh, empty location and panics with a
//! message naming the violated rule. [`run_all`] runs every check on its own
//! fresh storage:
//!
//! ```
//! use backstop_storage::{MemoryStorage, Storage, conformance};
//!
//! conformance::run_all(&|| Box::new(MemoryStorage::new()) as Box<dyn Storage>);
//! ```

use std::fmt::{Debug, Display};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Kind, Result, Storage};

mod write_new;
pub use write_new::{write_new_once, write_new_race};

/// A named check.
pub type Check = (&'static str, fn(&dyn Storage));

/// Every check, in the order [`run_all`] runs them.
pub const CHECKS: &[Check] = &[
    ("create_on_empty_location", create_on_empty_location),
    (
        "create_fails_when_config_exists",
        create_fails_when_config_exists,
    ),
    ("round_trip_every_kind", round_trip_every_kind),
    ("list_per_kind", list_per_kind),
    (
        "kinds_are_separate_namespaces",
        kinds_are_separate_namespaces,
    ),
    ("stat", stat),
    ("read_range", read_range),
    ("not_found", not_found),
    ("delete", delete),
    ("overwrite", overwrite),
    ("invalid_names", invalid_names),
    ("valid_edge_names", valid_edge_names),
    ("concurrent_writers", concurrent_writers),
    ("concurrent_overwrite", concurrent_overwrite),
    ("write_new_once", write_new_once),
    ("write_new_race", write_new_race),
    (
        "remove_stale_temporary_keeps_objects",
        remove_stale_temporary_keeps_objects,
    ),
];

/// Runs every check in [`CHECKS`], each on a new storage from `make`, which
/// must return a storage at a fresh, empty location every time.
///
/// # Panics
///
/// On the first violation, naming the check, the location and the rule.
pub fn run_all(make: &dyn Fn() -> Box<dyn Storage>) {
    for &(name, check) in CHECKS {
        let storage = make();
        let location = storage.location();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(storage.as_ref())));
        if let Err(payload) = outcome {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!("storage conformance check `{name}` failed on {location}: {message}");
        }
    }
}

/// A fresh location can be prepared, and preparing it again is harmless while
/// no config has been written.
pub fn create_on_empty_location(s: &dyn Storage) {
    ok(s.create(), "create() on an empty location");
    for kind in Kind::ALL {
        let list = ok(s.list(kind), format!("list({kind}) after create()"));
        assert!(list.is_empty(), "list({kind}) after create() gave {list:?}");
    }
    ok(s.create(), "create() again before any config exists");
}

/// create() refuses a location holding a config, and leaves the config alone.
pub fn create_fails_when_config_exists(s: &dyn Storage) {
    ok(s.create(), "create()");
    ok(s.write(Kind::Config, "config", b"cfg"), "write(config)");
    match s.create() {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("create() over an existing config gave {other:?}, not AlreadyExists"),
    }
    let cfg = ok(s.read(Kind::Config, "config"), "read(config)");
    assert_eq!(cfg, b"cfg", "create() changed the existing config");
}

/// Objects of every kind read back exactly, from empty to 5 MiB.
pub fn round_trip_every_kind(s: &dyn Storage) {
    ok(s.create(), "create()");
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        for (i, len) in [0, 1, 1000, 5 << 20].into_iter().enumerate() {
            let seed = (k * 10 + i) as u64;
            let name = id(seed);
            let data = bytes(seed, len);
            ok(
                s.write(kind, &name, &data),
                format!("write({kind}, {name}, {len} bytes)"),
            );
            let got = ok(s.read(kind, &name), format!("read({kind}, {name})"));
            assert!(
                got == data,
                "read({kind}, {name}) gave {} bytes that differ from the {len} written",
                got.len()
            );
            let info = ok(s.stat(kind, &name), format!("stat({kind}, {name})"));
            assert_eq!(info.size, len as u64, "stat({kind}, {name}).size");
        }
    }
}

/// list() gives exactly the objects written, per kind, with their sizes.
pub fn list_per_kind(s: &dyn Storage) {
    ok(s.create(), "create()");
    let mut expected: Vec<Vec<(String, u64)>> = Vec::new();
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        let mut objects = Vec::new();
        for j in 0..(k + 1) * 3 {
            let seed = (k * 1000 + j) as u64;
            objects.push((id(seed), bytes(seed, j * 7 + k)));
        }
        // The same name in every kind, with a different size in each.
        objects.push(("shared".to_owned(), bytes(k as u64, k + 1)));
        for (name, data) in &objects {
            ok(s.write(kind, name, data), format!("write({kind}, {name})"));
        }
        let mut want: Vec<_> = objects
            .iter()
            .map(|(n, d)| (n.clone(), d.len() as u64))
            .collect();
        want.sort();
        expected.push(want);
    }
    for (kind, want) in Kind::ALL.into_iter().zip(expected) {
        assert_eq!(sorted_list(s, kind), want, "list({kind})");
    }
}

/// The same name under two kinds is two independent objects.
pub fn kinds_are_separate_namespaces(s: &dyn Storage) {
    ok(s.create(), "create()");
    let name = id(7);
    ok(s.write(Kind::Pack, &name, b"pack"), "write(pack)");
    ok(s.write(Kind::Index, &name, b"index!"), "write(index)");
    assert_eq!(ok(s.read(Kind::Pack, &name), "read(pack)"), b"pack");
    assert_eq!(ok(s.read(Kind::Index, &name), "read(index)"), b"index!");
    ok(s.delete(Kind::Pack, &name), "delete(pack)");
    expect_not_found(
        s.read(Kind::Pack, &name),
        Kind::Pack,
        &name,
        "read(pack) after delete",
    );
    let index = ok(
        s.read(Kind::Index, &name),
        "read(index) after deleting the pack",
    );
    assert_eq!(
        index, b"index!",
        "deleting a pack changed an index of the same name"
    );
}

/// stat() reports the name and size, also of an empty object.
pub fn stat(s: &dyn Storage) {
    ok(s.create(), "create()");
    for (name, len) in [("empty", 0), (id(1).as_str(), 4321)] {
        ok(
            s.write(Kind::Snapshot, name, &bytes(1, len)),
            "write(snapshot)",
        );
        let info = ok(
            s.stat(Kind::Snapshot, name),
            format!("stat(snapshot, {name})"),
        );
        assert_eq!(info.name, name, "stat().name");
        assert_eq!(info.size, len as u64, "stat({name}).size");
        assert!(
            ok(s.exists(Kind::Snapshot, name), "exists()"),
            "exists({name})"
        );
    }
}

/// read_range() gives exactly the bytes asked for, or ShortRead past the end.
pub fn read_range(s: &dyn Storage) {
    ok(s.create(), "create()");
    let data = bytes(3, 1000);
    for kind in [Kind::Pack, Kind::Index] {
        let name = id(3);
        ok(s.write(kind, &name, &data), format!("write({kind})"));
        for (offset, len) in [(0, 10), (500, 100), (990, 10), (0, 1000), (0, 0), (1000, 0)] {
            let got = ok(
                s.read_range(kind, &name, offset, len),
                format!("read_range({kind}, {offset}, {len})"),
            );
            let want = &data[offset as usize..(offset + len) as usize];
            assert!(
                got == want,
                "read_range({kind}, {offset}, {len}) gave the wrong bytes"
            );
        }
        for (offset, len, got) in [(995, 10, 5), (1000, 1, 0), (2000, 1, 0), (u64::MAX, 2, 0)] {
            match s.read_range(kind, &name, offset, len) {
                Err(Error::ShortRead {
                    kind: k,
                    name: n,
                    offset: o,
                    wanted: w,
                    got: g,
                }) => assert_eq!(
                    (k, n.as_str(), o, w, g),
                    (kind, name.as_str(), offset, len, got),
                    "ShortRead fields of read_range({kind}, {offset}, {len})"
                ),
                other => panic!(
                    "read_range({kind}, {offset}, {len}) of a 1000-byte object gave {:?}, \
                     not ShortRead",
                    other.map(|v| v.len())
                ),
            }
        }
    }
}

/// Missing objects give NotFound from every method, even when their kind
/// holds other objects.
pub fn not_found(s: &dyn Storage) {
    ok(s.create(), "create()");
    for kind in Kind::ALL {
        let missing = id(99);
        for present in [false, true] {
            if present {
                // A neighbour sharing the pack fan-out prefix.
                let last = if missing.ends_with('0') { '1' } else { '0' };
                let neighbour = format!("{}{last}", &missing[..63]);
                ok(s.write(kind, &neighbour, b"x"), format!("write({kind})"));
            }
            let n = &missing;
            expect_not_found(s.read(kind, n), kind, n, "read()");
            expect_not_found(s.stat(kind, n), kind, n, "stat()");
            expect_not_found(s.delete(kind, n), kind, n, "delete()");
            expect_not_found(s.read_range(kind, n, 0, 0), kind, n, "read_range()");
            assert!(
                !ok(s.exists(kind, n), "exists()"),
                "exists() of a missing {kind}"
            );
        }
    }
}

/// A deleted object is gone from read, stat and list, and deleting it again
/// gives NotFound.
pub fn delete(s: &dyn Storage) {
    ok(s.create(), "create()");
    for kind in Kind::ALL {
        let name = id(5);
        ok(s.write(kind, &name, b"doomed"), format!("write({kind})"));
        ok(s.delete(kind, &name), format!("delete({kind})"));
        expect_not_found(s.read(kind, &name), kind, &name, "read() after delete");
        expect_not_found(s.stat(kind, &name), kind, &name, "stat() after delete");
        expect_not_found(s.delete(kind, &name), kind, &name, "second delete()");
        assert!(sorted_list(s, kind).is_empty(), "list({kind}) after delete");
    }
}

/// Writing an existing name replaces the object entirely.
pub fn overwrite(s: &dyn Storage) {
    ok(s.create(), "create()");
    for kind in [Kind::Config, Kind::Pack, Kind::Lock] {
        let name = id(11);
        for len in [1000, 10, 0, 2000] {
            let data = bytes(len as u64, len);
            ok(
                s.write(kind, &name, &data),
                format!("overwrite({kind}, {len} bytes)"),
            );
            let got = ok(s.read(kind, &name), format!("read({kind})"));
            assert!(
                got == data,
                "after overwrite, read({kind}) gave {} bytes",
                got.len()
            );
            assert_eq!(
                sorted_list(s, kind),
                [(name.clone(), len as u64)],
                "list({kind}) after overwrite"
            );
        }
    }
}

/// Invalid names are refused by every method, and nothing gets stored.
pub fn invalid_names(s: &dyn Storage) {
    ok(s.create(), "create()");
    let long = "a".repeat(129);
    let bad = [
        "../x",
        "a/b",
        "/abs",
        "A",
        "",
        ".hidden",
        "x.tmp",
        "a\\b",
        "a b",
        "nul\0",
        "é",
        long.as_str(),
    ];
    for kind in [Kind::Config, Kind::Pack, Kind::Index] {
        for name in bad {
            let what = |op: &str| format!("{op}({kind}, {name:?})");
            expect_invalid(s.write(kind, name, b"x"), what("write"));
            expect_invalid(s.read(kind, name), what("read"));
            expect_invalid(s.delete(kind, name), what("delete"));
            expect_invalid(s.stat(kind, name), what("stat"));
            expect_invalid(s.read_range(kind, name, 0, 0), what("read_range"));
            expect_invalid(s.exists(kind, name), what("exists"));
        }
    }
    for kind in Kind::ALL {
        assert!(
            sorted_list(s, kind).is_empty(),
            "list({kind}) after rejected writes"
        );
    }
}

/// The shortest and longest names, and the punctuation allowed, all work.
pub fn valid_edge_names(s: &dyn Storage) {
    ok(s.create(), "create()");
    let long = "z".repeat(128);
    for kind in [Kind::Pack, Kind::Index] {
        let names = ["a", "0", "a-b_c", "-", "_x", long.as_str()];
        for name in names {
            ok(
                s.write(kind, name, name.as_bytes()),
                format!("write({kind}, {name})"),
            );
            let got = ok(s.read(kind, name), format!("read({kind}, {name})"));
            assert_eq!(got, name.as_bytes(), "read({kind}, {name})");
        }
        let mut want: Vec<_> = names
            .iter()
            .map(|n| (n.to_string(), n.len() as u64))
            .collect();
        want.sort();
        assert_eq!(sorted_list(s, kind), want, "list({kind})");
    }
}

/// 8 threads writing 20 objects each all succeed and every object is intact.
pub fn concurrent_writers(s: &dyn Storage) {
    ok(s.create(), "create()");
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20;
    let seed = |t: u64, j: u64| t * 100 + j;
    let size = |t: u64, j: u64| ((t * PER_THREAD + j) * 37 % 4096) as usize;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for j in 0..PER_THREAD {
                    let kind = if j % 2 == 0 { Kind::Pack } else { Kind::Index };
                    let name = id(seed(t, j));
                    let data = bytes(seed(t, j), size(t, j));
                    ok(
                        s.write(kind, &name, &data),
                        format!("thread {t}: write({kind}, {name})"),
                    );
                }
            });
        }
    });
    let mut count = 0;
    for t in 0..THREADS {
        for j in 0..PER_THREAD {
            let kind = if j % 2 == 0 { Kind::Pack } else { Kind::Index };
            let name = id(seed(t, j));
            let got = ok(s.read(kind, &name), format!("read({kind}, {name})"));
            assert!(
                got == bytes(seed(t, j), size(t, j)),
                "{kind} {name} written by thread {t} read back wrong"
            );
            count += 1;
        }
    }
    let listed = sorted_list(s, Kind::Pack).len() + sorted_list(s, Kind::Index).len();
    assert_eq!(listed, count, "objects listed after concurrent writes");
}

/// Readers racing with overwrites of a 1 MiB object only ever see one of the
/// two complete contents.
pub fn concurrent_overwrite(s: &dyn Storage) {
    ok(s.create(), "create()");
    const LEN: usize = 1 << 20;
    const ROUNDS: usize = 20;
    let name = id(42);
    let (a, b) = (bytes(1, LEN), bytes(2, LEN));
    ok(s.write(Kind::Pack, &name, &a), "write(pack)");
    let done = AtomicBool::new(false);
    let check = |got: Vec<u8>, how: &str| {
        assert!(
            got == a || got == b,
            "{how} during overwrite gave {} bytes matching neither complete version",
            got.len()
        );
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                check(
                    ok(s.read(Kind::Pack, &name), "read() during overwrite"),
                    "read()",
                );
            }
        });
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let got = s.read_range(Kind::Pack, &name, 0, LEN as u64);
                check(ok(got, "read_range() during overwrite"), "read_range()");
            }
        });
        scope.spawn(|| {
            // Stop the readers even if a write panics.
            struct Finish<'a>(&'a AtomicBool);
            impl Drop for Finish<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _finish = Finish(&done);
            for round in 0..ROUNDS {
                let data = if round % 2 == 0 { &b } else { &a };
                ok(s.write(Kind::Pack, &name, data), "overwrite(pack)");
            }
        });
    });
    let got = ok(s.read(Kind::Pack, &name), "read() after the overwrites");
    assert!(got == a, "the last overwrite did not stick");
}

/// Unwraps a result, panicking with what was being done.
fn ok<T>(result: Result<T>, what: impl Display) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

fn expect_not_found<T: Debug>(result: Result<T>, kind: Kind, name: &str, what: &str) {
    match result {
        Err(Error::NotFound {
            kind: k, name: n, ..
        }) if k == kind && n == name => {}
        other => panic!(
            "{what} of missing {kind} {name} gave {:?}, not NotFound for that object",
            other.map(|_| ())
        ),
    }
}

fn expect_invalid<T: Debug>(result: Result<T>, what: impl Display) {
    match result {
        Err(Error::InvalidName(_)) => {}
        other => panic!("{what} gave {:?}, not InvalidName", other.map(|_| ())),
    }
}

/// The kind's objects as sorted (name, size) pairs.
fn sorted_list(s: &dyn Storage, kind: Kind) -> Vec<(String, u64)> {
    let mut list: Vec<_> = ok(s.list(kind), format!("list({kind})"))
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    list.sort();
    list
}

/// SplitMix64: deterministic test data without a dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` pseudo-random bytes determined by `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5eed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A 64-hex-digit name determined by `seed`, like a real object id.
fn id(seed: u64) -> String {
    let mut state = seed;
    (0..4)
        .map(|_| format!("{:016x}", splitmix(&mut state)))
        .collect()
}

/// Removing stale temporary files, even with an age of zero, never touches an object.
pub fn remove_stale_temporary_keeps_objects(s: &dyn Storage) {
    ok(s.create(), "create()");
    let mut objects = Vec::new();
    for (k, &kind) in Kind::ALL.iter().enumerate() {
        let name = if kind == Kind::Config {
            "config".to_owned()
        } else {
            id(k as u64)
        };
        let data = bytes(k as u64, 100 + k);
        ok(
            s.write(kind, &name, &data),
            format!("write({kind}, {name})"),
        );
        objects.push((kind, name, data));
    }
    ok(
        s.remove_stale_temporary(std::time::Duration::ZERO),
        "remove_stale_temporary(0)",
    );
    for (kind, name, data) in objects {
        let got = ok(
            s.read(kind, &name),
            format!("read({kind}, {name}) after cleanup"),
        );
        assert_eq!(got, data, "remove_stale_temporary changed {kind} {name}");
    }
}
