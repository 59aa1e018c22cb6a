//! The S3 backend against a real S3-compatible server: SeaweedFS, started by each test
//! through `backstop_storage::testing` (one at a time per machine; see that module).
//!
//! Objects are reached "out of band" through a second storage whose prefix is an object's
//! directory: its config-kind object `NAME` is the key `DIR/NAME`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backstop_storage::testing::{SECRET_ACCESS_KEY, SeaweedFs};
use backstop_storage::{
    Error, Kind, RetryOptions, Retrying, S3Location, S3Options, S3Storage, Storage, conformance,
};

const PACK: &str = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

fn server(bucket: &str) -> SeaweedFs {
    let server = SeaweedFs::start();
    server.create_bucket(bucket);
    server
}

/// `len` bytes that differ with `seed`.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Retries as configured by default, but giving up sooner, for tests that expect failures.
fn impatient() -> RetryOptions {
    RetryOptions {
        max_elapsed: Duration::from_secs(3),
        ..RetryOptions::default()
    }
}

#[test]
fn s3_storage_conforms() {
    let server = server("conformance");
    let run = AtomicUsize::new(0);
    conformance::run_all(&|| {
        let prefix = format!("runs/{}", run.fetch_add(1, Ordering::Relaxed));
        Box::new(server.storage("conformance", &prefix))
    });
    // Through the retry wrapper too, at the bucket's root.
    let wrapped = Retrying::new(server.storage("conformance", ""), RetryOptions::default());
    conformance::round_trip_every_kind(&wrapped);
}

#[test]
fn layout_is_the_local_one() {
    let server = server("layout");
    let s = server.storage("layout", "host/repo");
    s.create().unwrap();
    s.write(Kind::Config, "config", b"cfg").unwrap();
    s.write(Kind::Pack, PACK, b"pack").unwrap();
    s.write(Kind::Snapshot, "s1", b"snap").unwrap();
    let at = |dir: &str, name: &str| server.storage("layout", dir).read(Kind::Config, name);
    assert_eq!(at("host/repo", "config").unwrap(), b"cfg");
    assert_eq!(at("host/repo/data/ab", PACK).unwrap(), b"pack");
    assert_eq!(at("host/repo/snapshots", "s1").unwrap(), b"snap");
    // The kinds' "directories" are not config objects.
    let configs = s.list(Kind::Config).unwrap();
    assert_eq!(configs.len(), 1, "{configs:?}");
}

#[test]
fn listing_pages_and_skips_what_is_not_an_object() {
    let server = server("listing");
    let mut options = server.options("listing", "repo");
    options.list_page_size = 7;
    let s = S3Storage::new(options).unwrap();
    s.create().unwrap();
    let mut packs: Vec<String> = (0..40)
        .map(|i| format!("{:02x}{i:062}", i * 37 % 256))
        .collect();
    let mut indexes: Vec<String> = (0..23).map(|i| format!("index{i:03}")).collect();
    for name in &packs {
        s.write(Kind::Pack, name, b"p").unwrap();
    }
    for name in &indexes {
        s.write(Kind::Index, name, &data(1, 10)).unwrap();
    }
    // Keys that are not objects of the repository: nested too deep, a pack under the
    // wrong fan-out prefix, and a neighbouring prefix.
    server
        .storage("listing", "repo/index/nested")
        .write(Kind::Config, "x1", b"x")
        .unwrap();
    server
        .storage("listing", "repo/data/zz")
        .write(Kind::Config, "ab12", b"x")
        .unwrap();
    server
        .storage("listing", "repo/data")
        .write(Kind::Config, "cd", b"x")
        .unwrap();
    server
        .storage("listing", "repo2/index")
        .write(Kind::Config, "other", b"x")
        .unwrap();
    let names = |kind| {
        let mut names: Vec<String> = s.list(kind).unwrap().into_iter().map(|o| o.name).collect();
        names.sort();
        names
    };
    packs.sort();
    indexes.sort();
    assert_eq!(names(Kind::Pack), packs);
    assert_eq!(names(Kind::Index), indexes);
    let sizes: Vec<u64> = s
        .list(Kind::Index)
        .unwrap()
        .iter()
        .map(|o| o.size)
        .collect();
    assert!(sizes.iter().all(|&size| size == 10), "{sizes:?}");
}

#[test]
fn ranged_reads() {
    let server = server("ranges");
    let s = server.storage("ranges", "r");
    let big = data(7, 3 << 20);
    s.write(Kind::Pack, PACK, &big).unwrap();
    for (offset, len) in [
        (0, 1),
        (1 << 20, 4096),
        ((3 << 20) - 10, 10),
        (12345, 2 << 20),
    ] {
        let got = s.read_range(Kind::Pack, PACK, offset, len).unwrap();
        assert!(
            got == big[offset as usize..(offset + len) as usize],
            "{offset}+{len}"
        );
    }
    let short = |offset, len| match s.read_range(Kind::Pack, PACK, offset, len) {
        Err(Error::ShortRead { got, .. }) => got,
        other => panic!(
            "read_range({offset}, {len}) gave {:?}",
            other.map(|v| v.len())
        ),
    };
    assert_eq!(short((3 << 20) - 10, 20), 10);
    assert_eq!(short(3 << 20, 1), 0);
    assert_eq!(short(u64::MAX - 1, 5), 0);
    s.write(Kind::Index, "empty", b"").unwrap();
    assert!(s.read_range(Kind::Index, "empty", 0, 0).unwrap().is_empty());
    assert!(matches!(
        s.read_range(Kind::Index, "empty", 0, 1),
        Err(Error::ShortRead { got: 0, .. })
    ));
    assert!(
        s.read_range(Kind::Pack, "missing", 0, 10)
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.read_range(Kind::Pack, "missing", 0, 0)
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn conditional_create() {
    let server = server("create");
    let s = server.storage("create", "c");
    s.write(Kind::Lock, "l1", b"written").unwrap();
    let err = s.write_new(Kind::Lock, "l1", b"new").unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("lock object l1 already exists in s3://create/c at http://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(s.read(Kind::Lock, "l1").unwrap(), b"written");
    // Many racers on one name: one wins, its bytes are stored.
    let barrier = std::sync::Barrier::new(16);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16u8)
            .map(|t| {
                let (s, barrier) = (&s, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    s.write_new(Kind::Lock, "race", &data(t, 100_000)).is_ok()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<u8> = (0..16).filter(|&t| outcomes[t as usize]).collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        s.read(Kind::Lock, "race").unwrap(),
        data(winners[0], 100_000)
    );
}

#[test]
fn wrong_secret_is_access_denied_at_once() {
    let server = server("denied");
    let mut options = server.options("denied", "p");
    options.secret_access_key = "not-the-secret-WRONG".to_owned();
    // A retry would pause at least 2.5 s (half the first delay), so a fast refusal was not
    // retried.
    let patient = RetryOptions {
        initial_delay: Duration::from_secs(5),
        ..RetryOptions::default()
    };
    let s = Retrying::new(S3Storage::new(options).unwrap(), patient);
    let refusals: [(&str, &dyn Fn() -> Error); 4] = [
        ("create", &|| s.create().unwrap_err()),
        ("read", &|| s.read(Kind::Config, "config").unwrap_err()),
        ("write", &|| s.write(Kind::Pack, PACK, b"x").unwrap_err()),
        ("list", &|| s.list(Kind::Snapshot).unwrap_err()),
    ];
    for (op, refusal) in refusals {
        let started = Instant::now();
        let err = refusal();
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(2),
            "{op} took {elapsed:?}: retried?"
        );
        assert!(matches!(err, Error::AccessDenied { .. }), "{op}: {err:?}");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with("access denied to s3://denied/p at http://127.0.0.1:"),
            "{op}: {text}"
        );
        assert!(!text.contains("not-the-secret-WRONG"), "{op}: {text}");
    }
}

/// The test server's append-only identity (a policy without `s3:DeleteObject`) writes, reads,
/// lists and creates, and a delete is refused with AccessDenied at once, leaving the object.
#[test]
fn an_append_only_key_may_write_but_not_delete() {
    let server = server("append");
    let s = Retrying::new(
        S3Storage::new(server.append_only_options("append", "p")).unwrap(),
        impatient(),
    );
    s.create().unwrap();
    s.write(Kind::Pack, PACK, b"pack").unwrap();
    s.write_new(Kind::Snapshot, "0123abcd", b"manifest")
        .unwrap();
    assert_eq!(s.read(Kind::Pack, PACK).unwrap(), b"pack");
    assert_eq!(s.list(Kind::Snapshot).unwrap().len(), 1);
    let started = Instant::now();
    let err = s.delete(Kind::Snapshot, "0123abcd").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "retried?");
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
    assert_eq!(s.read(Kind::Snapshot, "0123abcd").unwrap(), b"manifest");
    // The test identity that may do anything deletes it.
    server
        .storage("append", "p")
        .delete(Kind::Snapshot, "0123abcd")
        .unwrap();
}

#[test]
fn missing_bucket_is_named() {
    let server = server("present");
    let s = server.storage("absent-bucket", "p");
    let endpoint = server.endpoint();
    let want = format!("bucket absent-bucket does not exist at {endpoint}: create it first");
    for err in [
        s.create().unwrap_err(),
        s.read(Kind::Config, "config").unwrap_err(),
        s.write(Kind::Config, "config", b"x").unwrap_err(),
        s.list(Kind::Pack).unwrap_err(),
    ] {
        assert!(matches!(err, Error::BucketNotFound { .. }), "{err:?}");
        assert_eq!(err.to_string(), want);
        assert!(!err.is_transient());
    }
}

#[test]
fn endpoint_down_is_unreachable_within_seconds() {
    // A port nobody listens on (no server needed, so no machine lock either).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = S3Location::parse("s3://some-bucket/p").unwrap();
    let mut options = S3Options::new(location, "key", SECRET_ACCESS_KEY);
    options.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let s = Retrying::new(S3Storage::new(options).unwrap(), RetryOptions::default());
    let started = Instant::now();
    let err = s.create().unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot reach http://127.0.0.1:{port}: connection refused")
    );
    assert!(err.is_transient(), "a scheduler may try again later");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[test]
fn server_stopped_in_the_middle_of_writes() {
    let mut server = server("crash");
    let s = Retrying::new(server.storage("crash", "r"), impatient());
    s.create().unwrap();
    let name = |i: u8| format!("{i:02x}{}", &PACK[2..]);
    let object = |i: u8| data(i, 1 << 20);
    let mut outcomes = Vec::new();
    std::thread::scope(|scope| {
        // Writes until three have failed.
        let writer = scope.spawn(|| {
            let mut outcomes = Vec::new();
            for i in 0..100u8 {
                outcomes.push((i, s.write(Kind::Pack, &name(i), &object(i))));
                if outcomes.iter().filter(|(_, r)| r.is_err()).count() == 3 {
                    break;
                }
            }
            outcomes
        });
        // Let some writes land, then pull the plug.
        while s.list(Kind::Pack).map_or(0, |l| l.len()) < 5 {
            std::thread::sleep(Duration::from_millis(20));
        }
        server.stop();
        outcomes = writer.join().unwrap();
    });
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        !failed.is_empty(),
        "no write failed while the server was down"
    );
    for (i, err) in &failed {
        let err = err.as_ref().unwrap_err();
        let text = err.to_string();
        assert!(err.is_transient(), "write {i}: {err:?}");
        assert!(text.contains("http://127.0.0.1:"), "write {i}: {text}");
    }
    server.restart();
    // Every acknowledged write survived; no object is partial; the storage works again.
    let listed = s.list(Kind::Pack).unwrap();
    for (i, outcome) in &outcomes {
        match s.read(Kind::Pack, &name(*i)) {
            Ok(got) => assert!(
                got == object(*i),
                "pack {i} is not whole ({} bytes)",
                got.len()
            ),
            Err(e) if e.is_not_found() && outcome.is_err() => {}
            Err(e) => panic!("pack {i} (write gave {outcome:?}): {e}"),
        }
    }
    assert!(listed.iter().all(|o| o.size == 1 << 20), "{listed:?}");
    s.write(Kind::Pack, &name(200), &object(200)).unwrap();
    assert!(s.read(Kind::Pack, &name(200)).unwrap() == object(200));
}

#[test]
fn damage_done_in_the_bucket_is_read_back_as_stored() {
    let server = server("damage");
    let s = server.storage("damage", "r");
    let original = data(3, 10_000);
    s.write(Kind::Pack, PACK, &original).unwrap();
    let raw = server.storage("damage", "r/data/ab");
    let mut damaged = original.clone();
    damaged[5000] ^= 0x40;
    raw.write(Kind::Config, PACK, &damaged).unwrap();
    assert!(s.read(Kind::Pack, PACK).unwrap() == damaged);
    assert_eq!(
        s.read_range(Kind::Pack, PACK, 4999, 2).unwrap(),
        &damaged[4999..5001]
    );
    raw.write(Kind::Config, PACK, &damaged[..100]).unwrap();
    assert_eq!(s.stat(Kind::Pack, PACK).unwrap().size, 100);
    assert!(matches!(
        s.read_range(Kind::Pack, PACK, 50, 100),
        Err(Error::ShortRead { got: 50, .. })
    ));
}

#[test]
fn secrets_are_never_shown() {
    let server = server("secrets");
    let mut options = server.options("secrets", "p");
    options.session_token = Some("SESSION-TOKEN-SECRET".to_owned());
    let shown = format!("{options:?}");
    let s = S3Storage::new(options).unwrap();
    let err = s.read(Kind::Config, "config").unwrap_err();
    for text in [
        shown,
        format!("{s:?}"),
        s.location(),
        err.to_string(),
        format!("{err:?}"),
    ] {
        assert!(!text.contains(SECRET_ACCESS_KEY), "{text}");
        assert!(!text.contains("SESSION-TOKEN-SECRET"), "{text}");
    }
}

#[test]
fn configured_from_the_environment() {
    let server = server("from-env");
    let endpoint = server.endpoint();
    let var = |name: &str| {
        let value = match name {
            "AWS_ENDPOINT_URL" => endpoint.as_str(),
            "AWS_ACCESS_KEY_ID" => backstop_storage::testing::ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY" => SECRET_ACCESS_KEY,
            _ => return None,
        };
        Some(value.to_owned())
    };
    let location = S3Location::parse("s3://from-env/backups/host1/").unwrap();
    let s = S3Storage::new(S3Options::from_env(location, var).unwrap()).unwrap();
    assert_eq!(
        s.location(),
        format!("s3://from-env/backups/host1 at {endpoint}")
    );
    s.create().unwrap();
    s.write_new(Kind::Config, "config", b"cfg").unwrap();
    assert!(matches!(s.create(), Err(Error::AlreadyExists { .. })));
}
