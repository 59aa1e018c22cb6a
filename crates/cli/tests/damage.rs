//! Damage tests: a repository whose files were flipped, truncated or deleted. `verify` must
//! find and name the damage, and `restore` must never write wrong bytes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A repository holding one snapshot of `data/`: a 3 MB random file (first in item order, and
/// stored raw since it does not compress), a copy of chinook.sqlite and two small files.
struct Fixture {
    sb: Sandbox,
    data: PathBuf,
    snapshot: String,
}

fn fixture(password: Option<&str>) -> Fixture {
    let sb = match password {
        Some(p) => Sandbox::encrypted(p),
        None => Sandbox::plain(),
    };
    let data = sb.p("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("big.bin"), random_bytes(3, 3_000_000)).unwrap();
    fs::copy(
        testdata("sqlite/chinook.sqlite"),
        data.join("chinook.sqlite"),
    )
    .unwrap();
    fs::write(data.join("notes.txt"), "some notes\n").unwrap();
    fs::write(data.join("sub/z.txt"), "zulu\n".repeat(1000)).unwrap();
    let s = sb.backup(&[&data], &[]);
    let snapshot = s["id"].as_str().unwrap().to_string();
    Fixture { sb, data, snapshot }
}

fn pack_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn problems_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect()
}

/// The items a problem lists as affected in `snapshot`.
fn affected_items(problem: &Value, snapshot: &str) -> Vec<String> {
    problem["affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["snapshot"] == snapshot)
        .flat_map(|a| a["items"].as_array().unwrap().iter())
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// Restores `spec` into a new directory and checks that whatever was written is exactly the
/// source, and that no temporary file is left. Returns the exit code.
fn restore_never_writes_wrong_bytes(fx: &Fixture, spec: &str, to: &str) -> i32 {
    let out = fx.sb.p(to);
    let mut c = fx.sb.cmd();
    c.args(["restore", spec, "--to"]).arg(&out);
    let o = run(c);
    for f in files_under(&out) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains("backstop-restore"),
            "temporary file left: {}",
            f.display()
        );
        let rel = f.strip_prefix(out.join("data")).unwrap();
        let src = fx.data.join(rel);
        assert!(
            fs::read(&f).unwrap() == fs::read(&src).unwrap(),
            "{} restored with wrong bytes",
            f.display()
        );
    }
    if o.code == 0 {
        assert_same_tree(&fx.data, &out.join("data"));
    }
    o.code
}

// (a) One flipped byte inside a pack.
fn flipped_byte_in_a_pack(password: Option<&str>) {
    let fx = fixture(password);
    let sb = &fx.sb;
    sb.assert_clean();
    let pack = packs(&sb.repo)[0].clone();
    let mut bytes = fs::read(&pack).unwrap();
    assert!(bytes.len() > 3_000_000, "the largest pack holds big.bin");
    // big.bin is the first item, so its chunks start the data pack.
    bytes[1_000_000] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();

    // Structure only: sizes still match, so this may pass; it must not fail otherwise.
    let (code, report) = sb.verify(false);
    assert!(code == 0 || !report["problems"].as_array().unwrap().is_empty());

    let (code, report) = sb.verify(true);
    assert_eq!(code, 4, "{report:#}");
    let dp = problems_of(&report, "damaged-pack");
    assert_eq!(dp.len(), 1, "{report:#}");
    assert_eq!(dp[0]["object"], pack_name(&pack));
    assert_eq!(
        affected_items(dp[0], &fx.snapshot),
        ["data/big.bin"],
        "{report:#}"
    );
    let dc = problems_of(&report, "damaged-chunk");
    assert_eq!(dc.len(), 1, "one chunk holds the flipped byte: {report:#}");
    assert!(
        dc[0]["message"]
            .as_str()
            .unwrap()
            .contains(&pack_name(&pack)),
        "{report:#}"
    );
    let a = dc[0]["affected"].as_array().unwrap();
    assert_eq!(a.len(), 1, "{report:#}");
    assert_eq!(a[0]["snapshot"], fx.snapshot.as_str());
    assert_eq!(a[0]["source"], "data");
    assert_eq!(a[0]["items"], serde_json::json!(["data/big.bin"]));

    // Human output names the pack and the item too.
    let o = sb.run(&["verify", "--read-data"]).code(4);
    assert!(o.stdout.contains(&pack_name(&pack)), "{o:#?}");
    assert!(o.stdout.contains("data/big.bin"), "{o:#?}");

    let code = restore_never_writes_wrong_bytes(&fx, "latest", "out");
    assert_eq!(code, 4);
    assert!(!fx.sb.p("out/data/big.bin").exists());
}

#[test]
fn flipped_byte_in_a_pack_plain() {
    flipped_byte_in_a_pack(None);
}

#[test]
fn flipped_byte_in_a_pack_encrypted() {
    flipped_byte_in_a_pack(Some("pw"));
}

// (b) A truncated pack.
#[test]
fn truncated_pack() {
    let fx = fixture(None);
    let sb = &fx.sb;
    let pack = packs(&sb.repo)[0].clone();
    let len = fs::metadata(&pack).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for read_data in [false, true] {
        let (code, report) = sb.verify(read_data);
        assert_eq!(code, 4, "{report:#}");
        let ps = problems_of(&report, "pack-size");
        assert_eq!(ps.len(), 1, "{report:#}");
        assert_eq!(ps[0]["object"], pack_name(&pack));
    }
    let code = restore_never_writes_wrong_bytes(&fx, "latest", "out");
    assert_ne!(code, 0);
}

/// The snapshot's item list is stored at the end of its data pack, so a truncated pack makes
/// the whole snapshot unreadable; the pack-size problem should still say which snapshot it
/// affects.
#[test]
fn truncated_pack_names_the_affected_snapshot() {
    let fx = fixture(None);
    let pack = packs(&fx.sb.repo)[0].clone();
    let len = fs::metadata(&pack).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (code, report) = fx.sb.verify(false);
    assert_eq!(code, 4);
    let ps = problems_of(&report, "pack-size");
    let snaps: Vec<&Value> = ps[0]["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["snapshot"])
        .collect();
    assert_eq!(snaps, [&Value::from(fx.snapshot.as_str())], "{report:#}");
}

/// Cutting only the pack's trailer leaves every chunk readable: verify reports the size,
/// restore may succeed, but only with exact bytes.
#[test]
fn pack_trailer_cut_off() {
    let fx = fixture(None);
    let pack = packs(&fx.sb.repo)[0].clone();
    let len = fs::metadata(&pack).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    let (code, report) = fx.sb.verify(false);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(problems_of(&report, "pack-size").len(), 1);
    restore_never_writes_wrong_bytes(&fx, "latest", "out");
}

// (c) A deleted pack.
#[test]
fn missing_pack() {
    let fx = fixture(Some("pw"));
    let sb = &fx.sb;
    let pack = packs(&sb.repo)[0].clone();
    fs::remove_file(&pack).unwrap();
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4, "{report:#}");
    let mp = problems_of(&report, "missing-pack");
    assert_eq!(mp.len(), 1, "{report:#}");
    assert_eq!(mp[0]["object"], pack_name(&pack));
    let code = restore_never_writes_wrong_bytes(&fx, "latest", "out");
    assert_ne!(code, 0);
    assert!(!fx.sb.p("out/data/big.bin").exists());
}

#[test]
fn restore_with_a_missing_pack_exits_4() {
    let fx = fixture(None);
    fs::remove_file(&packs(&fx.sb.repo)[0]).unwrap();
    let code = restore_never_writes_wrong_bytes(&fx, "latest", "out");
    assert_eq!(code, 4);
}

// (d) Deleted index files.
#[test]
fn deleted_index_fails_verify_and_restore() {
    let fx = fixture(None);
    let sb = &fx.sb;
    let index = files_under(&sb.repo.join("index"));
    assert_eq!(index.len(), 1);
    fs::remove_file(&index[0]).unwrap();
    let (code, report) = sb.verify(true);
    assert_eq!(code, 4, "{report:#}");
    assert!(!report["problems"].as_array().unwrap().is_empty());
    assert_eq!(report["unreferenced_packs"], packs(&sb.repo).len());
    let code = restore_never_writes_wrong_bytes(&fx, "latest", "out");
    assert_eq!(code, 4);
    assert!(files_under(&fx.sb.p("out")).is_empty());
}

#[test]
fn deleted_index_is_reported_as_missing_chunks() {
    let fx = fixture(None);
    fs::remove_file(&files_under(&fx.sb.repo.join("index"))[0]).unwrap();
    let (code, report) = fx.sb.verify(false);
    assert_eq!(code, 4);
    assert!(
        !problems_of(&report, "missing-chunk").is_empty(),
        "{report:#}"
    );
}

/// Two backups of one source: the second reuses the first's chunks. Deleting the first
/// backup's index leaves the second's item list readable, so its missing chunks are named
/// with the items they belong to.
#[test]
fn deleted_older_index_names_missing_chunks_and_items() {
    let fx = fixture(None);
    let sb = &fx.sb;
    let first_index = files_under(&sb.repo.join("index"));
    fs::write(fx.data.join("notes.txt"), "changed notes\n").unwrap();
    let second = sb.backup(&[&fx.data], &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(files_under(&sb.repo.join("index")).len(), 2);
    fs::remove_file(&first_index[0]).unwrap();

    let (code, report) = sb.verify(false);
    assert_eq!(code, 4, "{report:#}");
    let mc = problems_of(&report, "missing-chunk");
    assert!(!mc.is_empty(), "{report:#}");
    let hit: Vec<String> = mc.iter().flat_map(|p| affected_items(p, &second)).collect();
    assert!(hit.contains(&"data/big.bin".to_string()), "{report:#}");
    assert!(
        hit.contains(&"data/chinook.sqlite".to_string()),
        "{report:#}"
    );
    assert!(
        !hit.contains(&"data/notes.txt".to_string()),
        "notes.txt was stored again by the second backup: {report:#}"
    );
    assert_ne!(restore_never_writes_wrong_bytes(&fx, &second, "out"), 0);
}

// (e) A damaged snapshot file.
fn damaged_snapshot(password: Option<&str>) {
    let fx = fixture(password);
    let sb = &fx.sb;
    fs::write(fx.data.join("notes.txt"), "second version\n").unwrap();
    let second = sb.backup(&[&fx.data], &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = sb.repo.join("snapshots").join(&fx.snapshot);
    let mut bytes = fs::read(&file).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 3..2 * n / 3] {
        *b = b'#';
    }
    fs::write(&file, &bytes).unwrap();

    let (code, report) = sb.verify(false);
    assert_eq!(code, 4, "{report:#}");
    let ds = problems_of(&report, "damaged-snapshot");
    assert_eq!(ds.len(), 1, "{report:#}");
    assert_eq!(ds[0]["object"], fx.snapshot.as_str());
    assert_eq!(report["snapshots"], 2);

    // The other snapshot is still listed (with a warning about the damaged one) and restores.
    let o = sb.run(&["--json", "snapshots"]).ok();
    let rows = o.json();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["id"], second.as_str());
    assert!(o.stderr.contains(&fx.snapshot), "{o:#?}");
    assert_eq!(restore_never_writes_wrong_bytes(&fx, "latest", "out"), 0);
    let o = sb.run(&["restore", &fx.snapshot, "--to", "out-damaged"]);
    assert_ne!(o.code, 0);
    assert!(files_under(&sb.p("out-damaged")).is_empty());
}

#[test]
fn damaged_snapshot_plain() {
    damaged_snapshot(None);
}

#[test]
fn damaged_snapshot_encrypted() {
    damaged_snapshot(Some("pw"));
}

/// Every single-bit flip of an encrypted snapshot is detected.
#[test]
fn any_bit_flip_in_an_encrypted_snapshot_is_detected() {
    let fx = fixture(Some("pw"));
    let file = fx.sb.repo.join("snapshots").join(&fx.snapshot);
    let orig = fs::read(&file).unwrap();
    for pos in (0..orig.len()).step_by(orig.len() / 12 + 1) {
        let mut b = orig.clone();
        b[pos] ^= 0x01;
        fs::write(&file, &b).unwrap();
        let (code, report) = fx.sb.verify(false);
        assert_eq!(code, 4, "flip at {pos}: {report:#}");
        assert_eq!(problems_of(&report, "damaged-snapshot").len(), 1);
    }
}

/// In an unencrypted repository a snapshot object is (compressed) plaintext with no checksum:
/// a flipped bit can change its time, host or description without verify noticing.
#[test]
fn any_bit_flip_in_a_plain_snapshot_is_detected() {
    let fx = fixture(None);
    let file = fx.sb.repo.join("snapshots").join(&fx.snapshot);
    let orig = fs::read(&file).unwrap();
    let before = fx.sb.snapshots();
    let mut undetected = Vec::new();
    for pos in 1..orig.len() {
        let mut b = orig.clone();
        b[pos] ^= 0x01;
        fs::write(&file, &b).unwrap();
        let (code, _) = fx.sb.verify(false);
        if code == 0 {
            let now = fx.sb.snapshots();
            if now != before {
                undetected.push((pos, now[0].clone()));
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "{} silent changes, e.g. {:#?}",
        undetected.len(),
        undetected.first()
    );
}

/// Damage to two snapshots' packs: each problem should name the items it affects, not every
/// item affected by any problem.
#[test]
fn problems_name_only_the_items_they_affect() {
    let sb = Sandbox::plain();
    let mut ids = Vec::new();
    let mut data_packs = Vec::new();
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        let d = sb.p(name);
        fs::create_dir(&d).unwrap();
        fs::write(d.join("f.bin"), random_bytes(40 + i as u64, 2_000_000)).unwrap();
        let before = packs(&sb.repo);
        ids.push(sb.backup(&[&d], &[])["id"].as_str().unwrap().to_string());
        let new: Vec<PathBuf> = packs(&sb.repo)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        data_packs.push(new[0].clone());
    }
    for p in &data_packs {
        let mut b = fs::read(p).unwrap();
        b[1_000_000] ^= 0x01;
        fs::write(p, &b).unwrap();
    }
    let (code, report) = sb.verify(true);
    assert_eq!(code, 4);
    for (i, p) in data_packs.iter().enumerate() {
        let dp = problems_of(&report, "damaged-pack")
            .into_iter()
            .find(|x| x["object"] == pack_name(p).as_str())
            .unwrap_or_else(|| panic!("no damaged-pack for {}: {report:#}", p.display()));
        let snaps: Vec<&Value> = dp["affected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["snapshot"])
            .collect();
        assert_eq!(snaps, [&Value::from(ids[i].as_str())], "{report:#}");
    }
}
