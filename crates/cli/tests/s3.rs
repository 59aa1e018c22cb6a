//! A repository in an S3-compatible bucket, through the real binary against a real server
//! (SeaweedFS, started by each test; `scripts/test` installs it): the disaster journey, and
//! the faults a remote repository adds, each with its own exit code and within seconds.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backstop_storage::testing::{
    ACCESS_KEY_ID, APPEND_ONLY_ACCESS_KEY_ID, APPEND_ONLY_SECRET_ACCESS_KEY, REGION,
    SECRET_ACCESS_KEY, SeaweedFs,
};
use backstop_storage::{Kind, Storage};
use common::*;

const PASSWORD: &str = "correct horse battery staple";

/// A `backstop` command in `dir` with `--repo LOCATION`, the endpoint and keys in the usual AWS
/// variables, and a home directory of its own (a new machine has nothing else).
fn s3(dir: &Path, endpoint: &str, location: &str) -> Command {
    let mut c = command_in(dir);
    c.env("HOME", dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_SESSION_TOKEN")
        .arg("--repo")
        .arg(location);
    c
}

/// A server with an unencrypted repository at `s3://bkt/repo`, and a sandbox with an empty
/// `docs/` folder to back up.
fn plain_repository() -> (SeaweedFs, Sandbox) {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let sb = Sandbox::empty();
    run(in_bucket(
        &sb,
        &server.endpoint(),
        &["init", "--encryption", "none"],
    ))
    .ok();
    fs::create_dir(sb.p("docs")).unwrap();
    (server, sb)
}

/// `backstop --repo s3://bkt/repo ARGS` in `sb`.
fn in_bucket(sb: &Sandbox, endpoint: &str, args: &[&str]) -> Command {
    let mut c = s3(sb.path(), endpoint, "s3://bkt/repo");
    c.args(args);
    c
}

/// Nothing named like a scheme was created as a local folder.
fn assert_no_local_repository(dir: &Path) {
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("s3") && n != "backstop-repo"),
        "a local folder was made for the bucket: {names:?}"
    );
}

/// The ids in `snapshots --json` output, in its order.
fn snapshot_ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `restore latest --to TARGET` with `cmd`; TARGET then holds `docs` as it is.
fn restores_docs(docs: &Path, target: &Path, cmd: impl Fn(&[&str]) -> Command) {
    run(cmd(&[
        "restore",
        "latest",
        "--to",
        target.to_str().unwrap(),
    ]))
    .ok();
    assert_same_tree(docs, &target.join("docs"));
}

/// Runs `cmd` (a backup or a copy into `bkt/PREFIX`), stops the server once the first pack is
/// in the bucket, and returns what the command did; the server is restarted.
fn server_dies_after_the_first_pack(server: &mut SeaweedFs, prefix: &str, mut cmd: Command) -> Out {
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let storage = server.storage("bkt", prefix);
    let t0 = Instant::now();
    while storage
        .list(Kind::Pack)
        .map(|l| l.is_empty())
        .unwrap_or(true)
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no pack arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    let out = Out::from_output(child.wait_with_output().unwrap());
    server.restart();
    out
}

/// The seed scenario: a SQLite database backed up into a bucket, twice, then listed, restored
/// and verified from another machine with nothing but the location, the keys and the passphrase.
#[test]
fn a_database_in_a_bucket_comes_back_on_a_new_machine() {
    let server = SeaweedFs::start();
    server.create_bucket("shop-backups");
    let endpoint = server.endpoint();
    let location = "s3://shop-backups/store-7";
    let office = Sandbox::empty();
    let db = office.p("shop.db");
    fs::copy(testdata("sqlite/chinook.sqlite"), &db).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = s3(office.path(), &endpoint, location);
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    run(cmd(&["init"])).ok();
    let first = run(cmd(&["--json", "backup", db.to_str().unwrap()]))
        .ok()
        .json();
    assert!(first["chunks_new"].as_u64().unwrap() > 0, "{first:#}");
    sql(
        &db,
        "UPDATE Track SET Name = Name || ' #offsite#' WHERE TrackId < 50",
    );
    let second = run(cmd(&["--json", "backup", db.to_str().unwrap()]))
        .ok()
        .json();
    // Only the changed pages travel: far fewer chunks than the first time.
    assert!(
        second["chunks_new"].as_u64().unwrap() < first["chunks_new"].as_u64().unwrap() / 4,
        "{second:#}"
    );
    assert_no_local_repository(office.path());

    // The new machine: another folder and home, no backstop.toml, no cache.
    let new_machine = Sandbox::empty();
    let there = |args: &[&str]| {
        let mut c = s3(new_machine.path(), &endpoint, location);
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    let list = run(there(&["--json", "snapshots"])).ok().json();
    let ids = snapshot_ids(&list);
    assert_eq!(ids.len(), 2, "{list:#}");
    assert!(ids.iter().any(|i| second["id"] == i.as_str()), "{list:#}");
    let restored = new_machine.p("shop.db");
    run(there(&[
        "restore",
        "latest:shop.db",
        "--to",
        restored.to_str().unwrap(),
    ]))
    .ok();
    let marked = "SELECT count(*) FROM Track WHERE Name LIKE '% #offsite#'";
    assert_eq!(sql(&restored, marked), "49");
    assert_eq!(blake3_file(&restored), blake3_file(&db));
    assert_eq!(sql(&restored, "PRAGMA integrity_check"), "ok");
    let (code, report) = {
        let o = run(there(&["--json", "verify", "--read-data"]));
        (o.code, o.json())
    };
    assert_eq!(code, 0, "{report:#}");
    // Without the passphrase the bucket gives nothing away.
    let mut c = s3(new_machine.path(), &endpoint, location);
    c.args(["snapshots"]);
    run(c).code(12);
    assert_no_local_repository(new_machine.path());
}

/// A wrong secret and a missing bucket are refusals (exit 15), a server that is down is
/// unreachable (exit 14); each is said within seconds, names the place, never the secret, and
/// leaves nothing behind.
#[test]
fn storage_faults_exit_with_their_own_codes_within_seconds() {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let sb = Sandbox::empty();
    let endpoint = server.endpoint();
    let timed = |mut c: Command| {
        let t0 = Instant::now();
        c.args(["init", "--encryption", "none"]);
        let o = run(c);
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(20), "took {took:?}: {o:#?}");
        o
    };

    let mut c = s3(sb.path(), &endpoint, "s3://bkt/x");
    c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all");
    let o = timed(c).code(15);
    assert!(!o.stderr.contains("not-the-secret-at-all"), "{o:#?}");
    assert!(o.stderr.contains("AWS_SECRET_ACCESS_KEY"), "a hint: {o:#?}");

    let o = timed(s3(sb.path(), &endpoint, "s3://no-such-bucket/x")).code(15);
    assert!(o.stderr.contains("no-such-bucket"), "{o:#?}");

    // A port nothing listens on (the server's own, once it is stopped).
    let mut server = server;
    server.stop();
    let o = timed(s3(sb.path(), &endpoint, "s3://bkt/x")).code(14);
    assert!(o.stderr.contains("127.0.0.1"), "names the endpoint: {o:#?}");
    assert!(!o.stderr.contains(SECRET_ACCESS_KEY), "{o:#?}");
    assert_no_local_repository(sb.path());
}

/// A pack damaged in the bucket is named by `verify --read-data` and never restored as good
/// data: the restore fails with the integrity code and writes nothing at the target.
#[test]
fn a_pack_damaged_in_the_bucket_is_found_and_never_restored() {
    let (server, sb) = plain_repository();
    let endpoint = server.endpoint();
    let cmd = |args: &[&str]| in_bucket(&sb, &endpoint, args);
    fs::write(sb.p("docs/ledger.bin"), random_bytes(7, 3 << 20)).unwrap();
    run(cmd(&["backup", "docs"])).ok();
    let storage = server.storage("bkt", "repo");
    let packs = storage.list(Kind::Pack).unwrap();
    assert!(!packs.is_empty());
    for pack in &packs {
        let mut bytes = storage.read(Kind::Pack, &pack.name).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        storage.write(Kind::Pack, &pack.name, &bytes).unwrap();
    }
    let o = run(cmd(&["--json", "verify", "--read-data"])).code(4);
    let report = o.json();
    assert!(report.to_string().contains(&packs[0].name), "{report:#}");
    let target = sb.p("restored");
    run(cmd(&[
        "restore",
        "latest",
        "--to",
        target.to_str().unwrap(),
    ]))
    .code(4);
    assert!(
        !target.join("docs/ledger.bin").exists(),
        "damaged data was restored"
    );
}

/// The server dies in the middle of a backup: the command fails (no half snapshot), the
/// repository still verifies, and once the server is back the next backup completes and
/// restores byte for byte.
#[test]
fn a_server_that_dies_in_the_middle_of_a_backup_leaves_no_half_snapshot() {
    let (mut server, sb) = plain_repository();
    let endpoint = server.endpoint();
    let cmd = |args: &[&str]| in_bucket(&sb, &endpoint, args);
    // Incompressible, so that it takes several packs and a few seconds to send.
    for i in 0..6 {
        fs::write(
            sb.p(&format!("docs/part{i}.bin")),
            random_bytes(100 + i, 16 << 20),
        )
        .unwrap();
    }
    // Once the first pack is in the bucket, the server goes down.
    let out = server_dies_after_the_first_pack(&mut server, "repo", cmd(&["backup", "docs"]));
    assert_ne!(
        out.code, 0,
        "the backup went on without its server: {out:#?}"
    );
    let storage = server.storage("bkt", "repo");
    assert!(
        storage.list(Kind::Snapshot).unwrap().is_empty(),
        "a snapshot was written: {out:#?}"
    );
    let o = run(cmd(&["--json", "verify", "--read-data"]));
    assert_eq!(o.code, 0, "{o:#?}");
    run(cmd(&["backup", "docs"])).ok();
    restores_docs(&sb.p("docs"), &sb.p("restored"), cmd);
}

/// The local cache of a bucket repository: it holds the index files, manifests and packs of
/// tree nodes a machine read or wrote, serves them without the bucket, follows what the bucket
/// lists (a snapshot forgotten elsewhere is gone here too), mends a damaged copy, and is left
/// out by `verify`, which judges the bucket itself, and by `--no-cache`.
#[test]
fn the_local_cache_follows_the_bucket_and_verify_reads_past_it() {
    let (server, sb) = plain_repository();
    let endpoint = server.endpoint();
    let cmd = |args: &[&str]| in_bucket(&sb, &endpoint, args);
    fs::write(sb.p("docs/ledger.bin"), random_bytes(9, 1 << 20)).unwrap();
    let first = run(cmd(&["--json", "backup", "docs"])).ok().json();
    fs::write(sb.p("docs/notes.txt"), "day two\n").unwrap();
    let second = run(cmd(&["--json", "backup", "docs"])).ok().json();

    // HOME is the sandbox: the cache is ~/.cache/backstop/<repository id>, tagged for backup
    // tools, with every index file and manifest, and the packs of tree nodes.
    let root = sb.p(".cache/backstop");
    assert!(root.join("CACHEDIR.TAG").exists());
    let repos: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(repos.len(), 1, "{repos:?}");
    let cache = &repos[0];
    let storage = server.storage("bkt", "repo");
    let names = |dir: &Path| -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        n.sort();
        n
    };
    let listed = |kind| -> Vec<String> {
        let mut n: Vec<String> = storage
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&cache.join("snapshots")), listed(Kind::Snapshot));
    assert_eq!(names(&cache.join("index")), listed(Kind::Index));
    let packs = names(&cache.join("data"));
    assert!(!packs.is_empty(), "no pack of tree nodes was kept");
    for p in &packs {
        let bytes = fs::read(cache.join("data").join(p)).unwrap();
        assert_eq!(&blake3::hash(&bytes).to_hex().to_string(), p);
    }
    assert!(
        packs.len() < listed(Kind::Pack).len(),
        "data packs were kept too"
    );

    // Served from the cache: with every index file in the bucket damaged, this machine still
    // restores; verify, which reads the bucket past the cache, finds the damage.
    for name in listed(Kind::Index) {
        let mut bytes = storage.read(Kind::Index, &name).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        storage.write(Kind::Index, &name, &bytes).unwrap();
    }
    restores_docs(&sb.p("docs"), &sb.p("restored"), cmd);
    // Its own cache is a temporary one, gone when it ends.
    let tmp = sb.p("tmp");
    fs::create_dir(&tmp).unwrap();
    let mut verify = cmd(&["--json", "verify"]);
    verify.env("TMPDIR", &tmp);
    let o = run(verify);
    assert_ne!(o.code, 0, "verify read the cache, not the bucket: {o:#?}");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "verify left its cache"
    );
    run(cmd(&["repair", "index"])).ok();
    assert_eq!(run(cmd(&["--json", "verify"])).code, 0);

    // Another machine (its own home, no cache) forgets the first snapshot: here the next
    // listing drops it, and its cached manifest with it.
    let elsewhere = Sandbox::empty();
    let mut forget = s3(elsewhere.path(), &endpoint, "s3://bkt/repo");
    forget.args(["--no-cache", "forget", first["id"].as_str().unwrap()]);
    run(forget).ok();
    assert!(!elsewhere.p(".cache").exists(), "--no-cache made a cache");
    let list = run(cmd(&["--json", "snapshots"])).ok().json();
    assert_eq!(snapshot_ids(&list), [second["id"].as_str().unwrap()]);
    assert_eq!(names(&cache.join("snapshots")), listed(Kind::Snapshot));

    // A damaged cached manifest is fetched again, and the copy mended.
    let manifest = cache.join("snapshots").join(&listed(Kind::Snapshot)[0]);
    let good = fs::read(&manifest).unwrap();
    let mut bad = good.clone();
    bad[3] ^= 0xff;
    fs::write(&manifest, &bad).unwrap();
    let list = run(cmd(&["--json", "snapshots"])).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(fs::read(&manifest).unwrap(), good);
}

/// A repository named in backstop.toml (`[repositories.offsite]`): its section holds the
/// endpoint, the key id, and the files with the secret and the passphrase, so nothing comes
/// from the environment; `repository = "offsite"` and `--repo offsite` both name it. A wrong
/// secret in the file is a refusal (exit 15) that never shows the secret.
#[test]
fn a_repository_named_in_the_config_needs_no_environment() {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let endpoint = server.endpoint();
    let sb = Sandbox::empty();
    fs::write(sb.p("offsite-secret"), format!("{SECRET_ACCESS_KEY}\n")).unwrap();
    fs::write(sb.p("offsite.pass"), format!("{PASSWORD}\n")).unwrap();
    fs::write(
        sb.p("backstop.toml"),
        format!(
            r#"repository = "offsite"

[repositories.offsite]
location = "s3://bkt/store-7"
endpoint = "{endpoint}"
region = "{REGION}"
access_key_id = "{ACCESS_KEY_ID}"
secret_access_key_file = "offsite-secret"
password_file = "offsite.pass"

[sources.docs]
path = "docs"
copies = 1
offsite = true
"#
        ),
    )
    .unwrap();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/prices.csv"), "sku,price\nA1,9.90\n").unwrap();
    let cmd = |args: &[&str]| {
        let mut c = command_in(sb.path());
        c.env("HOME", sb.path());
        for v in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            c.env_remove(v);
        }
        c.args(args);
        c
    };
    run(cmd(&["init"])).ok();
    let storage = server.storage("bkt", "store-7");
    assert!(
        !storage.list(Kind::Key).unwrap().is_empty(),
        "encrypted with the section's passphrase"
    );
    run(cmd(&["backup"])).ok();
    let list = run(cmd(&["--json", "--repo", "offsite", "snapshots"]))
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    restores_docs(&sb.p("docs"), &sb.p("restored"), cmd);
    assert_no_local_repository(sb.path());
    // The bucket is offsite: the 3-2-1 rules of the source are met (no drill passed yet, so
    // the source still needs attention for that).
    let report = run(cmd(&["--json", "status"])).code(5).json();
    let docs = &report["sources"][0];
    assert_eq!(docs["state"], "unverified", "{docs:#}");
    assert_eq!(docs["copies"]["offsite"], true, "{docs:#}");
    assert_eq!(
        docs["copies"]["repositories"][0]["storage"], "s3",
        "{docs:#}"
    );

    fs::write(sb.p("offsite-secret"), "not-the-secret-4711\n").unwrap();
    let o = run(cmd(&["snapshots"])).code(15);
    assert!(
        !o.stderr.contains("not-the-secret-4711") && !o.stdout.contains("not-the-secret-4711"),
        "{o:#?}"
    );
    fs::remove_file(sb.p("offsite-secret")).unwrap();
    let o = run(cmd(&["snapshots"])).code(2);
    assert!(o.stderr.contains("secret_access_key_file"), "{o:#?}");
}

/// The 3-2-1 journey: an encrypted local repository copied into a bucket. The first copy
/// creates the repository there with the same keys and passphrase; the copies keep their ids;
/// a second copy sends nothing, a later one only the new snapshot; the bucket restores on a
/// new machine.
#[test]
fn local_snapshots_copied_to_a_bucket_restore_from_it() {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let endpoint = server.endpoint();
    let sb = Sandbox::empty();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/ledger.bin"), random_bytes(21, 2 << 20)).unwrap();
    let local = |args: &[&str]| {
        let mut c = s3(sb.path(), &endpoint, "local-repo");
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    run(local(&["init"])).ok();
    run(local(&["backup", "docs"])).ok();
    let o = run(local(&["copy", "--to", "local-repo"])).code(2);
    assert!(o.stderr.contains("copied from"), "{o:#?}");
    fs::write(sb.p("docs/notes.txt"), "day two\n").unwrap();
    run(local(&["backup", "docs"])).ok();
    let first = run(local(&["--json", "copy", "--to", "s3://bkt/offsite"]))
        .ok()
        .json();
    assert_eq!(first["created"], true, "{first:#}");
    assert_eq!(first["copied"].as_array().unwrap().len(), 2, "{first:#}");
    let ids = |repo: &str| -> Vec<String> {
        let mut c = s3(sb.path(), &endpoint, repo);
        c.env("BACKSTOP_PASSWORD", PASSWORD)
            .args(["--json", "snapshots"]);
        snapshot_ids(&run(c).ok().json())
    };
    assert_eq!(ids("s3://bkt/offsite"), ids("local-repo"));
    let again = run(local(&["--json", "copy", "--to", "s3://bkt/offsite"]))
        .ok()
        .json();
    assert_eq!(
        (
            again["created"].as_bool(),
            again["copied"].as_array().unwrap().len()
        ),
        (Some(false), 0),
        "{again:#}"
    );
    assert_eq!(again["present"].as_array().unwrap().len(), 2);
    fs::write(sb.p("docs/notes.txt"), "day three\n").unwrap();
    run(local(&["backup", "docs"])).ok();
    let third = run(local(&["--json", "copy", "--to", "s3://bkt/offsite"]))
        .ok()
        .json();
    assert_eq!(third["copied"].as_array().unwrap().len(), 1, "{third:#}");
    assert!(third["chunks_new"].as_u64().unwrap() <= 6, "{third:#}");

    // Another machine with the bucket and the passphrase only.
    let elsewhere = Sandbox::empty();
    let there = |args: &[&str]| {
        let mut c = s3(elsewhere.path(), &endpoint, "s3://bkt/offsite");
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    restores_docs(&sb.p("docs"), &elsewhere.p("restored"), there);
    assert_eq!(run(there(&["--json", "verify", "--read-data"])).code, 0);
}

/// The server dies in the middle of a copy: the copy fails, no snapshot appears in the bucket,
/// the bucket's repository still verifies, and once the server is back the next copy
/// completes and restores byte for byte.
#[test]
fn a_server_that_dies_in_the_middle_of_a_copy_leaves_no_half_snapshot() {
    let (mut server, sb) = plain_repository();
    let endpoint = server.endpoint();
    for i in 0..6 {
        fs::write(
            sb.p(&format!("docs/part{i}.bin")),
            random_bytes(300 + i, 16 << 20),
        )
        .unwrap();
    }
    let local = |args: &[&str]| {
        let mut c = s3(sb.path(), &endpoint, "local-repo");
        c.args(args);
        c
    };
    run(local(&["init", "--encryption", "none"])).ok();
    run(local(&["backup", "docs"])).ok();
    let copying = local(&["copy", "--to", "s3://bkt/copy"]);
    let out = server_dies_after_the_first_pack(&mut server, "copy", copying);
    assert_ne!(out.code, 0, "the copy went on without its server: {out:#?}");
    let storage = server.storage("bkt", "copy");
    assert!(
        storage.list(Kind::Snapshot).unwrap().is_empty(),
        "a snapshot was written: {out:#?}"
    );
    let verify = |args: &[&str]| {
        let mut c = s3(sb.path(), &endpoint, "s3://bkt/copy");
        c.args(args);
        c
    };
    let o = run(verify(&["--json", "verify", "--read-data"]));
    assert_eq!(o.code, 0, "{o:#?}");
    let done = run(local(&["--json", "copy", "--to", "s3://bkt/copy"]))
        .ok()
        .json();
    assert_eq!(done["copied"].as_array().unwrap().len(), 1, "{done:#}");
    restores_docs(&sb.p("docs"), &sb.p("restored"), verify);
}

/// Keys that may write but not delete (an append-only policy, the defence against a machine
/// that is taken over): init, backups, copies, restores and verification work with them, the
/// locks they leave behind do not block the next run, and forget and prune refuse at once,
/// saying why, before anything changes. A key that may delete then forgets and prunes.
#[test]
fn an_append_only_key_backs_up_and_copies_but_cannot_forget() {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let endpoint = server.endpoint();
    let sb = Sandbox::empty();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/ledger.bin"), random_bytes(5, 1 << 20)).unwrap();
    let with_key = |append_only: bool, location: &str, args: &[&str]| {
        let mut c = s3(sb.path(), &endpoint, location);
        if append_only {
            c.env("AWS_ACCESS_KEY_ID", APPEND_ONLY_ACCESS_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", APPEND_ONLY_SECRET_ACCESS_KEY);
        }
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    let append = |args: &[&str]| with_key(true, "s3://bkt/repo", args);
    run(append(&["init"])).ok();
    run(append(&["backup", "docs"])).ok();
    fs::write(sb.p("docs/notes.txt"), "day two\n").unwrap();
    run(append(&["backup", "docs"])).ok();
    // A local repository copied into the bucket with the same key.
    run(with_key(true, "local-repo", &["init"])).ok();
    run(with_key(true, "local-repo", &["backup", "docs"])).ok();
    let copied = run(with_key(
        true,
        "local-repo",
        &["--json", "copy", "--to", "s3://bkt/offsite"],
    ))
    .ok()
    .json();
    assert_eq!(copied["copied"].as_array().unwrap().len(), 1, "{copied:#}");
    restores_docs(&sb.p("docs"), &sb.p("restored"), |a| append(a));
    restores_docs(&sb.p("docs"), &sb.p("restored-copy"), |a| {
        with_key(true, "s3://bkt/offsite", a)
    });
    assert_eq!(run(append(&["--json", "verify", "--read-data"])).code, 0);

    let ids = || snapshot_ids(&run(append(&["--json", "snapshots"])).ok().json());
    let before = ids();
    assert_eq!(before.len(), 2);
    let objects = || {
        let s = server.storage("bkt", "repo");
        (
            s.list(Kind::Pack).unwrap().len(),
            s.list(Kind::Index).unwrap().len(),
        )
    };
    let stored = objects();
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["prune"],
        &["forget", "--keep-last", "1", "--prune"],
    ] {
        let o = run(append(args)).code(15);
        assert!(o.stderr.contains("may not delete"), "{args:?}: {o:#?}");
        assert!(o.stderr.contains("nothing was changed"), "{args:?}: {o:#?}");
    }
    assert_eq!(ids(), before);
    assert_eq!(objects(), stored);
    // The append-only runs could not delete their locks: each is left marked released.
    let admin = server.storage("bkt", "repo");
    let repo = backstop_engine::Repository::open(
        std::sync::Arc::new(server.storage("bkt", "repo")),
        Some(PASSWORD),
    )
    .unwrap();
    let locks = backstop_engine::lock::list_locks(&repo, jiff::Timestamp::now(), "test").unwrap();
    assert!(!locks.is_empty());
    for l in &locks {
        assert!(l.info.as_ref().is_some_and(|i| i.released), "{l:?}");
        assert!(l.stale, "{l:?}");
    }

    // A key that may delete forgets and prunes; the append-only runs left nothing in its way.
    run(with_key(
        false,
        "s3://bkt/repo",
        &["forget", "--keep-last", "1", "--prune"],
    ))
    .ok();
    assert_eq!(ids(), [before[1].clone()], "the newest is kept");
    assert!(
        admin.list(Kind::Lock).unwrap().is_empty(),
        "prune removed them"
    );
    assert_eq!(run(append(&["--json", "verify", "--read-data"])).code, 0);
    restores_docs(&sb.p("docs"), &sb.p("restored-after"), |a| append(a));
}

/// `init --object-lock-days N` in a bucket with Object Lock: every object backstop writes from
/// then on, by any command, carries a compliance retention of N days (locks excepted, which
/// are rewritten and removed as they are held); the repository works as any other. A local
/// repository refuses the option, saying why, and creates nothing.
#[test]
fn object_lock_days_put_a_retention_on_every_object() {
    let server = SeaweedFs::start();
    server.create_bucket_with_object_lock("locked");
    let sb = Sandbox::empty();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/ledger.bin"), random_bytes(9, 1 << 20)).unwrap();
    let cmd = |location: &str, args: &[&str]| {
        let mut c = s3(sb.path(), &server.endpoint(), location);
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    let made = run(cmd(
        "s3://locked/repo",
        &["--json", "init", "--object-lock-days", "2"],
    ))
    .ok()
    .json();
    assert_eq!(made["object_lock_days"], 2, "{made:#}");
    run(cmd("s3://locked/repo", &["backup", "docs"])).ok();
    fs::write(sb.p("docs/notes.txt"), "day two\n").unwrap();
    run(cmd("s3://locked/repo", &["backup", "docs"])).ok();

    let storage = server.storage("locked", "repo");
    let now = jiff::Timestamp::now();
    let mut checked = 0;
    for kind in [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
    ] {
        for o in storage.list(kind).unwrap() {
            let (mode, until) = storage
                .retention_of(kind, &o.name)
                .unwrap()
                .unwrap_or_else(|| panic!("{kind} {} has no retention", o.name));
            assert_eq!(mode, "COMPLIANCE");
            let until: jiff::Timestamp = until.parse().unwrap();
            let days = until.duration_since(now).as_secs_f64() / 86_400.0;
            assert!(
                (1.9..=2.01).contains(&days),
                "{kind} {}: {days} days",
                o.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} objects");
    restores_docs(&sb.p("docs"), &sb.p("restored"), |a| {
        cmd("s3://locked/repo", a)
    });
    assert_eq!(
        run(cmd(
            "s3://locked/repo",
            &["--json", "verify", "--read-data"]
        ))
        .code,
        0
    );

    // On a versioned bucket a delete leaves the locked version behind a delete marker: forget
    // and prune work as anywhere, and the bucket keeps the old versions until they expire.
    let forgot = run(cmd(
        "s3://locked/repo",
        &["--json", "forget", "--keep-last", "1", "--prune"],
    ))
    .ok()
    .json();
    assert_eq!(forgot["forgotten"], 1, "{forgot:#}");
    let left = run(cmd("s3://locked/repo", &["--json", "snapshots"]))
        .ok()
        .json();
    assert_eq!(snapshot_ids(&left).len(), 1);
    restores_docs(&sb.p("docs"), &sb.p("restored-after"), |a| {
        cmd("s3://locked/repo", a)
    });
    let o = run(cmd("local-repo", &["init", "--object-lock-days", "2"])).code(2);
    assert!(o.stderr.contains("S3 bucket with Object Lock"), "{o:#?}");
    assert!(!sb.p("local-repo").exists(), "nothing was created");
}

/// `object-lock extend` lengthens the retention of every object but locks (so that old packs
/// new snapshots still use stay locked), never shortens one, refuses fewer days than the
/// repository's, and refuses a repository without an object lock.
#[test]
fn object_lock_extend_lengthens_every_retention_and_never_shortens_one() {
    let server = SeaweedFs::start();
    server.create_bucket_with_object_lock("locked");
    server.create_bucket("plain");
    let sb = Sandbox::empty();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/ledger.bin"), random_bytes(7, 1 << 20)).unwrap();
    let cmd = |location: &str, args: &[&str]| {
        let mut c = s3(sb.path(), &server.endpoint(), location);
        c.env("BACKSTOP_PASSWORD", PASSWORD).args(args);
        c
    };
    let repo = "s3://locked/repo";
    run(cmd(repo, &["init", "--object-lock-days", "2"])).ok();
    run(cmd(repo, &["backup", "docs"])).ok();
    let storage = server.storage("locked", "repo");
    let kinds = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
    ];
    // Days from now to each object's retain-until date.
    let retentions = || {
        let now = jiff::Timestamp::now();
        let mut out = Vec::new();
        for kind in kinds {
            for o in storage.list(kind).unwrap() {
                let (mode, until) = storage.retention_of(kind, &o.name).unwrap().unwrap();
                assert_eq!(mode, "COMPLIANCE");
                let until: jiff::Timestamp = until.parse().unwrap();
                out.push((kind, until.duration_since(now).as_secs_f64() / 86_400.0));
            }
        }
        out
    };
    let objects = retentions().len();
    assert!(objects >= 5, "{objects} objects");

    let dry = run(cmd(
        repo,
        &[
            "--json",
            "object-lock",
            "extend",
            "--days",
            "5",
            "--dry-run",
        ],
    ))
    .ok()
    .json();
    assert_eq!(dry["dry_run"], true);
    assert!(
        retentions().iter().all(|(_, d)| *d < 2.01),
        "a dry run changes nothing"
    );

    let done = run(cmd(
        repo,
        &["--json", "object-lock", "extend", "--days", "5"],
    ))
    .ok()
    .json();
    let extended: u64 = done["extended"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(extended as usize, objects, "{done:#}");
    assert_eq!(done["extended"]["snapshot"], 1, "{done:#}");
    assert_eq!(done["mode"], "compliance");
    for (kind, days) in retentions() {
        assert!((4.99..=5.01).contains(&days), "{kind}: {days} days");
    }
    // The repository's own 2 days would shorten them: each is left as it is.
    let again = run(cmd(repo, &["--json", "object-lock", "extend"]))
        .ok()
        .json();
    assert_eq!(
        again["already_longer"].as_u64(),
        Some(objects as u64),
        "{again:#}"
    );
    assert!(retentions().iter().all(|(_, d)| *d > 4.99));
    // Fewer days than the repository's, or a repository without an object lock: refused.
    let o = run(cmd(repo, &["object-lock", "extend", "--days", "1"])).code(2);
    assert!(
        o.stderr.contains("shorter than the repository's retention"),
        "{o:#?}"
    );
    run(cmd("s3://plain/repo", &["init"])).ok();
    let o = run(cmd("s3://plain/repo", &["object-lock", "extend"])).code(2);
    assert!(o.stderr.contains("has no object lock"), "{o:#?}");
    // What was locked still restores.
    restores_docs(&sb.p("docs"), &sb.p("restored"), |a| cmd(repo, a));
}

/// Issue 15's seed scenario through the daemon: a source kept in three repositories on two
/// kinds of storage, one of them offsite (the main one and a USB disk, local; a bucket), with
/// the rules `copies = 3` and `offsite = true`. The daemon backs up at start, copies to both,
/// and its status (the page's data) and `backstop status --json` say the rules are met.
#[cfg(unix)]
#[test]
fn three_copies_on_two_kinds_of_storage_one_offsite() {
    let server = SeaweedFs::start();
    server.create_bucket("bkt");
    let sb = Sandbox::empty();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/prices.txt"), "apples 2.10\n").unwrap();
    fs::write(sb.p("offsite.secret"), SECRET_ACCESS_KEY).unwrap();
    fs::write(sb.p("pass"), PASSWORD).unwrap();
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"repo\"\npassword_file = \"pass\"\ntime_zone = \"UTC\"\n\
             drill_max_age = \"off\"\n\
             [repositories.usb]\nlocation = \"usb\"\n\
             [repositories.offsite]\nlocation = \"s3://bkt/shop\"\nendpoint = \"{}\"\n\
             region = \"{REGION}\"\naccess_key_id = \"{ACCESS_KEY_ID}\"\n\
             secret_access_key_file = \"offsite.secret\"\n\
             [sources.docs]\npath = \"docs\"\nevery = \"6h\"\ncopy_to = [\"usb\", \"offsite\"]\n\
             copies = 3\noffsite = true\n\
             [daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\n",
            server.endpoint()
        ),
    )
    .unwrap();
    // A new machine: nothing in the environment, everything from the config.
    let bare = |args: &[&str]| {
        let mut c = command_in(sb.path());
        c.env("HOME", sb.path())
            .arg("--config")
            .arg(&cfg)
            .args(args);
        c
    };
    run(bare(&["init"])).ok();
    let token = run(bare(&["token", "add", "mon", "--scope", "read"]))
        .ok()
        .stdout
        .trim()
        .to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = bare(&["serve", "--listen", &listen]);
    serve
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _daemon = Daemon(serve.spawn().unwrap());
    let start = Instant::now();
    let docs = loop {
        if let Some((200, body)) = get(&format!("http://{listen}/api/v1/status"), &token) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let docs = status_source(&v, "docs").clone();
            if docs["copies"]["copies"] == 3 {
                break docs;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not three copies within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let copies = &docs["copies"];
    assert_eq!(copies["storage_kinds"], 2, "{docs:#}");
    assert_eq!(copies["offsite"], true, "{docs:#}");
    assert_eq!(docs["state"], "ok", "{docs:#}");
    let names: Vec<&str> = copies["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["storage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "local", "s3"], "{docs:#}");

    let report = run(bare(&["--json", "status"])).ok().json();
    let d = status_source(&report, "docs");
    assert_eq!(
        (
            &d["copies"]["copies"],
            &d["copies"]["storage_kinds"],
            &d["copies"]["offsite"]
        ),
        (&3.into(), &2.into(), &true.into()),
        "{d:#}"
    );
    // The bucket's copy restores on its own.
    restores_docs(&sb.p("docs"), &sb.p("from-bucket"), |a| {
        let mut c = bare(&["--repo", "offsite"]);
        c.args(a);
        c
    });
}
