//! Getting data back from a damaged repository: `repair index`, `repair snapshots`,
//! `repair records`, damaged key files, and `verify` naming the repair for each problem.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A repository with three snapshots of a SQLite database (changed between them, so each
/// later one shares most pages with the first) and one of a directory of files.
struct Fixture {
    sb: Sandbox,
    /// Each database snapshot's id and the database's bytes when it was taken.
    dbs: Vec<(String, Vec<u8>)>,
    files: (String, PathBuf),
    /// The index files each backup added, in backup order.
    index_files: Vec<Vec<PathBuf>>,
}

fn fixture(password: Option<&str>) -> Fixture {
    let sb = match password {
        Some(p) => Sandbox::encrypted(p),
        None => Sandbox::plain(),
    };
    let db = sb.p("shop.db");
    fs::write(&db, fs::read(testdata("sqlite/chinook.sqlite")).unwrap()).unwrap();
    let mut dbs = Vec::new();
    let mut index_files = Vec::new();
    let mut new_index = |sb: &Sandbox| {
        let seen: Vec<PathBuf> = index_files.iter().flatten().cloned().collect();
        let now: Vec<PathBuf> = files_under(&sb.repo.join("index"))
            .into_iter()
            .filter(|f| !seen.contains(f))
            .collect();
        index_files.push(now);
    };
    for i in 0..3 {
        if i > 0 {
            sql(
                &db,
                &format!(
                    "UPDATE Track SET Milliseconds = Milliseconds + {i} WHERE TrackId % 5 = {i}"
                ),
            );
        }
        let s = sb.backup(&[&db], &[]);
        assert_eq!(s["source_kind"], "sqlite", "{s:#}");
        dbs.push((
            s["id"].as_str().unwrap().to_string(),
            fs::read(&db).unwrap(),
        ));
        new_index(&sb);
    }
    let data = sb.p("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("big.bin"), random_bytes(7, 2_500_000)).unwrap();
    fs::write(data.join("notes.txt"), "some notes\n").unwrap();
    fs::write(data.join("sub/z.txt"), "zulu\n".repeat(1000)).unwrap();
    let s = sb.backup(&[&data], &[]);
    let files = (s["id"].as_str().unwrap().to_string(), data);
    new_index(&sb);
    Fixture {
        sb,
        dbs,
        files,
        index_files,
    }
}

impl Fixture {
    /// Every snapshot restores, byte for byte.
    #[track_caller]
    fn assert_everything_restores(&self) {
        for (i, (id, bytes)) in self.dbs.iter().enumerate() {
            let out = self.sb.p(&format!("restored-{i}.db"));
            let _ = fs::remove_file(&out);
            self.sb.restore(id, &out);
            assert!(
                fs::read(&out).unwrap() == *bytes,
                "database snapshot {id} restored with other bytes"
            );
        }
        let out = self.sb.p("restored-files");
        let _ = fs::remove_dir_all(&out);
        self.sb.restore(&self.files.0, &out);
        assert_same_tree(&self.files.1, &out.join("data"));
    }

    fn repair(&self, what: &str, extra: &[&str]) -> Value {
        let mut args = vec!["repair", what];
        args.extend_from_slice(extra);
        self.sb.json(&args)
    }
}

fn problems_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Item 1: one lost index file

fn lost_index_file(password: Option<&str>) {
    let fx = fixture(password);
    let sb = &fx.sb;
    let packs_before = packs(&sb.repo);
    // The first backup's index names the pages every later database snapshot shares.
    assert_eq!(fx.index_files[0].len(), 1);
    fs::remove_file(&fx.index_files[0][0]).unwrap();

    // The failure as reported: intact packs, yet no database snapshot restores.
    for (id, _) in &fx.dbs {
        let o = sb.run(&["restore", id, "--to", "lost.db"]).code(4);
        assert!(o.stderr.contains("not in the index"), "{o:#?}");
    }
    // Verify says that the index is what needs repair, not that the packs are "harmless".
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4);
    let missing = problems_of(&report, "missing-chunk");
    assert!(!missing.is_empty(), "{report:#}");
    // One problem per pack that holds them, not one per chunk.
    assert!(missing.len() <= packs_before.len(), "{report:#}");
    for p in &missing {
        let pack = p["object"].as_str().unwrap();
        assert!(packs_before.iter().any(|f| f.ends_with(pack)), "{p:#}");
    }
    for p in &report["problems"].as_array().unwrap()[..] {
        assert_eq!(p["repair"], "backstop repair index", "{p:#}");
    }
    assert!(
        report["unindexed_needed_packs"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    let o = sb.run(&["verify"]).code(4);
    assert!(o.stdout.contains("run `backstop repair index`"), "{o:#?}");
    assert!(!o.stdout.contains("harmless"), "{o:#?}");

    // Repairing snapshots now would count unindexed data as lost: it refuses.
    let o = sb.run(&["repair", "snapshots"]).code(4);
    assert!(o.stderr.contains("backstop repair index` first"), "{o:#?}");
    assert_eq!(
        sb.run(&["--json", "snapshots"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // A dry run changes nothing.
    let dry = fx.repair("index", &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["packs_indexed"].as_u64().unwrap() > 0, "{dry:#}");
    assert_eq!(
        files_under(&sb.repo.join("index")).len(),
        fx.index_files.iter().flatten().count() - 1
    );

    let s = fx.repair("index", &[]);
    assert!(s["packs_indexed"].as_u64().unwrap() > 0, "{s:#}");
    assert!(s["index_files_written"].as_u64().unwrap() >= 1, "{s:#}");
    assert_eq!(s["index_files_deleted"], 0, "sound index files stay: {s:#}");
    assert_eq!(packs(&sb.repo), packs_before, "no pack was touched");

    sb.assert_clean();
    fx.assert_everything_restores();
    let again = fx.repair("index", &[]);
    assert_eq!(again["packs_indexed"], 0, "{again:#}");
    assert_eq!(again["index_files_written"], 0, "{again:#}");
}

#[test]
fn lost_index_file_plain() {
    lost_index_file(None);
}

#[test]
fn lost_index_file_encrypted() {
    lost_index_file(Some("pw"));
}

/// A damaged (not deleted) index file is replaced; the new index stays encrypted.
#[test]
fn damaged_index_file_is_replaced() {
    let fx = fixture(Some("pw"));
    let sb = &fx.sb;
    let f = &fx.index_files[1][0];
    let mut b = fs::read(f).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    fs::write(f, &b).unwrap();
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4);
    let di = problems_of(&report, "damaged-index");
    assert_eq!(di.len(), 1, "{report:#}");
    assert_eq!(di[0]["repair"], "backstop repair index");

    let s = fx.repair("index", &[]);
    let damaged = s["damaged_index_files"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{s:#}");
    assert_eq!(damaged[0]["name"], f.file_name().unwrap().to_str().unwrap());
    assert_eq!(s["index_files_deleted"], 1, "{s:#}");
    assert!(!f.exists());
    // Every index file is sealed: with a wrong passphrase nothing of it can be read, and verify
    // (which opens each file with the repository's key) is clean.
    sb.assert_clean();
    fx.assert_everything_restores();
}

/// An index file that names a pack that is gone is rewritten without it, and chunks also held
/// by a pack no index named (an interrupted backup's) are read from there.
#[test]
fn stale_index_entries_give_way_to_an_intact_copy() {
    // Encrypted: the second copy gets other packs (an unencrypted one would be byte-identical
    // and have the same names).
    let fx = fixture(Some("pw"));
    let sb = &fx.sb;
    // Lose the files snapshot's index and back the same files up again: the new backup
    // stores its chunks a second time, in new packs, and indexes those. Then lose the new
    // packs: the only intact copies are in packs no index names.
    let files_index = &fx.index_files[3];
    let before = packs(&sb.repo);
    for f in files_index {
        fs::remove_file(f).unwrap();
    }
    let again = sb.backup(&[&fx.files.1], &[]);
    let new_packs: Vec<PathBuf> = packs(&sb.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(
        !new_packs.is_empty(),
        "the second backup stored its chunks again"
    );
    for p in &new_packs {
        fs::remove_file(p).unwrap();
    }
    let again = again["id"].as_str().unwrap().to_string();
    assert_ne!(sb.run(&["restore", &again, "--to", "x"]).code, 0);
    let (_, report) = sb.verify(false);
    let mp = problems_of(&report, "missing-pack");
    assert_eq!(mp.len(), new_packs.len(), "{report:#}");
    assert!(
        mp.iter().any(|p| p["repair"] == "backstop repair index"),
        "an intact copy exists: {report:#}"
    );

    let s = fx.repair("index", &[]);
    assert_eq!(
        s["missing_packs"].as_array().unwrap().len(),
        new_packs.len(),
        "{s:#}"
    );
    assert_eq!(s["stale_index_files"].as_array().unwrap().len(), 1, "{s:#}");
    sb.assert_clean();
    fx.assert_everything_restores();
    let out = sb.p("again");
    sb.restore(&again, &out);
    assert_same_tree(&fx.files.1, &out.join("data"));
}

// ---------------------------------------------------------------------------------------------
// Item 7: damaged records

/// A damaged pin record passed verify and blocked forget with no command to deal with it.
#[test]
fn damaged_pin_record_is_reported_and_repaired() {
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(d.join("f.txt"), format!("version {i}\n")).unwrap();
        ids.push(sb.backup(&[&d], &[])["id"].as_str().unwrap().to_string());
    }
    sb.run(&["pin", &ids[0]]).ok();
    let first_pin = files_under(&sb.repo.join("records"));
    assert_eq!(first_pin.len(), 1);
    sb.run(&["pin", &ids[1]]).ok();
    let mut b = fs::read(&first_pin[0]).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x08;
    fs::write(&first_pin[0], &b).unwrap();

    let o = sb.run(&["forget", "--keep-last", "1"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("backstop repair records"), "{o:#?}");

    let (code, report) = sb.verify(false);
    assert_eq!(code, 4, "a damaged record is a problem: {report:#}");
    let dr = problems_of(&report, "damaged-record");
    assert_eq!(dr.len(), 1, "{report:#}");
    assert_eq!(
        dr[0]["object"],
        first_pin[0].file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(dr[0]["repair"], "backstop repair records");

    let dry = sb.json(&["repair", "records", "--dry-run"]);
    assert_eq!(dry["deleted"], 0);
    assert!(first_pin[0].exists());
    let s = sb.json(&["repair", "records"]);
    assert_eq!(s["damaged"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(s["deleted"], 1);
    assert_eq!(s["pinned"], serde_json::json!([ids[1]]), "{s:#}");
    let o = sb.run(&["repair", "records"]).ok();
    assert!(o.stdout.contains("nothing to repair"), "{o:#?}");
    sb.assert_clean();
    sb.run(&["forget", "--keep-last", "1"]).ok();
    let left: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        [ids[1].clone(), ids[2].clone()],
        "the pin that could be read holds"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 7: damaged key files

/// One changed byte anywhere in the only key file: never "wrong passphrase" (exit 12), but
/// "damaged key file", naming it (exit 4), unless the byte is one that unwrapping does not use.
#[test]
fn a_damaged_key_file_is_not_a_wrong_passphrase() {
    let sb = Sandbox::encrypted("pw");
    let keys = files_under(&sb.repo.join("keys"));
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    let name = key.file_name().unwrap().to_str().unwrap().to_string();
    let orig = fs::read(key).unwrap();
    let text = String::from_utf8(orig.clone()).unwrap();
    let wrapped_at = text.find("\"wrapped\"").unwrap() + 12;
    let mut positions: Vec<usize> = (0..orig.len()).step_by(orig.len() / 16).collect();
    // The case reported: a digit of the wrapped key changed into another hex digit.
    positions.push(wrapped_at);
    let mut damaged = 0;
    for pos in positions {
        let mut b = orig.clone();
        b[pos] = match b[pos] {
            b'0' => b'1',
            c if c.is_ascii_hexdigit() => b'0',
            c => c ^ 0x01,
        };
        fs::write(key, &b).unwrap();
        let o = sb.run(&["snapshots"]);
        assert!(o.code == 0 || o.code == 4, "change at {pos}: {o:#?}");
        if o.code == 4 {
            damaged += 1;
            assert!(o.stderr.contains(&format!("keys/{name}")), "{o:#?}");
            assert!(o.stderr.contains("damaged"), "{o:#?}");
            assert!(o.stderr.contains("backstop key add"), "{o:#?}");
            assert!(!o.stderr.contains("wrong passphrase"), "{o:#?}");
        }
        if pos == wrapped_at {
            assert_eq!(o.code, 4, "{o:#?}");
        }
    }
    assert!(damaged >= 10, "only {damaged} changes were noticed");
    fs::write(key, &orig).unwrap();
    sb.run(&["snapshots"]).ok();
    // A second key file that is damaged: the repository opens with the first, verify names it.
    let second = "ab".repeat(32);
    let mut b = orig.clone();
    b[wrapped_at] = if b[wrapped_at] == b'0' { b'1' } else { b'0' };
    fs::write(sb.repo.join("keys").join(&second), &b).unwrap();
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4);
    let dk = problems_of(&report, "damaged-key");
    assert_eq!(dk.len(), 1, "{report:#}");
    assert_eq!(dk[0]["object"], second.as_str());
    fs::remove_file(sb.repo.join("keys").join(&second)).unwrap();
    // A wrong passphrase stays exactly that.
    let mut c = sb.cmd();
    c.env("BACKSTOP_PASSWORD", "not-it").arg("snapshots");
    let o = run(c).code(12);
    assert!(o.stderr.contains("wrong passphrase"), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// Item 1: snapshots part of which is lost

/// The packs that appeared between two listings.
fn new_packs(before: &[PathBuf], repo: &Path) -> Vec<PathBuf> {
    packs(repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect()
}

/// The third database snapshot stores the pages changed since the first as a delta, in a data
/// pack of its own. Losing that pack loses those pages: the repaired copy keeps every other
/// page at its place and zeros for the lost ones, and says which.
fn repaired_database_snapshot_keeps_every_page_that_can_be_read(password: Option<&str>) {
    let sb = match password {
        Some(p) => Sandbox::encrypted(p),
        None => Sandbox::plain(),
    };
    let db = sb.p("shop.db");
    fs::write(&db, fs::read(testdata("sqlite/chinook.sqlite")).unwrap()).unwrap();
    sb.backup(&[&db], &[]);
    sql(
        &db,
        "UPDATE Track SET Milliseconds = Milliseconds + 1 WHERE TrackId % 9 = 1",
    );
    let before = packs(&sb.repo);
    let third = sb.backup(&[&db], &[])["id"].as_str().unwrap().to_string();
    let image = fs::read(&db).unwrap();
    // Of the packs the backup added, lose the one that holds only pages (not the item list).
    let added = new_packs(&before, &sb.repo);
    let mut lost = None;
    for p in &added {
        let bytes = fs::read(p).unwrap();
        fs::remove_file(p).unwrap();
        let (_, report) = sb.verify(false);
        let items: Vec<String> = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["affected"].as_array().unwrap().clone())
            .flat_map(|a| a["items"].as_array().unwrap().clone())
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        if items == ["shop.db"] {
            lost = Some(p.clone());
            break;
        }
        fs::write(p, bytes).unwrap();
    }
    assert!(lost.is_some(), "no pack of only pages among {added:?}");
    let (_, report) = sb.verify(false);
    let mp = problems_of(&report, "missing-pack");
    assert_eq!(mp[0]["repair"], "backstop repair snapshots", "{report:#}");
    assert_ne!(sb.run(&["restore", &third, "--to", "lost.db"]).code, 0);

    let dry = sb.json(&["repair", "snapshots", "--dry-run"]);
    assert_eq!(dry["repaired"].as_array().unwrap().len(), 1, "{dry:#}");
    assert_eq!(sb.snapshots().len(), 2);
    sb.run(&["pin", &third]).ok();

    let s = sb.json(&["repair", "snapshots"]);
    let r = &s["repaired"].as_array().unwrap()[..];
    assert_eq!(r.len(), 1, "{s:#}");
    assert_eq!(r[0]["from"], third.as_str());
    let copy = r[0]["id"].as_str().unwrap().to_string();
    let loss = &r[0]["losses"][0];
    assert_eq!(loss["path"], "shop.db", "{s:#}");
    assert_eq!(loss.get("dropped"), None, "{s:#}");
    let ranges: Vec<(usize, usize)> = loss["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert!(!ranges.is_empty());
    let lost_bytes: usize = ranges.iter().map(|(a, b)| b - a).sum();
    assert!(
        lost_bytes < image.len() / 4,
        "only changed pages are lost: {ranges:?}"
    );
    for (a, b) in &ranges {
        assert!(a % 1024 == 0 && b % 1024 == 0, "whole pages: {ranges:?}");
    }

    // The copy restores: every page that could be read is byte for byte the database's, the
    // lost ones are zeros.
    let out = sb.p("copy");
    sb.restore(&copy, &out);
    let got = fs::read(out.join("shop.db")).unwrap();
    assert_eq!(got.len(), image.len());
    let mut expected = image.clone();
    for (a, b) in &ranges {
        expected[*a..*b].fill(0);
    }
    assert!(
        got == expected,
        "the repaired copy differs outside the lost pages"
    );

    // Both are listed; the copy says what it repaired; the damaged one is kept.
    let rows = sb.snapshots();
    assert_eq!(rows.len(), 3);
    let row = rows.iter().find(|r| r["id"] == copy.as_str()).unwrap();
    assert_eq!(row["repaired_from"], third.as_str(), "{row:#}");
    assert_eq!(row["pinned"], true, "the pin goes with the copy: {row:#}");
    let o = sb.run(&["snapshots"]).ok();
    assert!(o.stdout.contains("repaired"), "{o:#?}");
    let show = sb.json(&["show", &copy]);
    assert_eq!(show["repaired"]["from"], third.as_str(), "{show:#}");
    let o = sb.run(&["show", &copy]).ok();
    assert!(o.stdout.contains("lost"), "{o:#?}");

    // Verify names only the damaged snapshot; a second repair does not copy it again.
    let (_, report) = sb.verify(false);
    for p in report["problems"].as_array().unwrap() {
        for a in p["affected"].as_array().unwrap() {
            assert_eq!(a["snapshot"], third.as_str(), "{report:#}");
        }
    }
    let o = sb.run(&["verify"]).code(4);
    assert!(
        o.stdout.contains(&format!("repaired copy: {}", &copy[..8])),
        "{o:#?}"
    );
    assert!(o.stdout.contains("repair snapshots --forget"), "{o:#?}");
    let again = sb.json(&["repair", "snapshots"]);
    assert_eq!(again["repaired"].as_array().unwrap().len(), 0, "{again:#}");
    assert_eq!(again["already_repaired"], serde_json::json!([third]));

    // Once the copy is checked, the damaged snapshot is forgotten on request; then the
    // repository verifies clean, prunes, and the copy still restores.
    let dry = sb.json(&["repair", "snapshots", "--forget", "--dry-run"]);
    assert_eq!(dry["forgotten"], serde_json::json!([third]));
    assert_eq!(sb.snapshots().len(), 3);
    let f = sb.json(&["repair", "snapshots", "--forget"]);
    assert_eq!(f["forgotten"], serde_json::json!([third]), "{f:#}");
    let ids: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.contains(&third) && ids.contains(&copy), "{ids:?}");
    sb.run(&["prune"]).ok();
    sb.assert_clean();
    let out = sb.p("copy-after-prune");
    sb.restore(&copy, &out);
    assert!(fs::read(out.join("shop.db")).unwrap() == expected);
}

#[test]
fn repaired_database_snapshot_plain() {
    repaired_database_snapshot_keeps_every_page_that_can_be_read(None);
}

/// What the repair writes (zeros, tree nodes, item list, snapshot) is sealed like the rest:
/// verify opens every object with the key, and the copy restores.
#[test]
fn repaired_database_snapshot_encrypted() {
    repaired_database_snapshot_keeps_every_page_that_can_be_read(Some("pw"));
}

/// Damaged bytes inside a pack that looks whole: `--read-data` finds them, and the copy loses
/// only the chunk that holds them.
#[test]
fn repair_with_read_data_finds_damage_inside_a_pack() {
    let fx = fixture(None);
    let sb = &fx.sb;
    let (files, data) = fx.files.clone();
    let pack = new_packs(&[], &sb.repo)
        .into_iter()
        .find(|p| fs::metadata(p).unwrap().len() > 2_500_000)
        .unwrap();
    let mut b = fs::read(&pack).unwrap();
    b[1_000_000] ^= 0x10;
    fs::write(&pack, &b).unwrap();
    let s = fx.repair("snapshots", &[]);
    assert_eq!(
        s["repaired"].as_array().unwrap().len(),
        0,
        "structure is intact: {s:#}"
    );
    let s = fx.repair("snapshots", &["--read-data"]);
    let r = &s["repaired"].as_array().unwrap()[..];
    assert_eq!(r.len(), 1, "{s:#}");
    assert_eq!(r[0]["from"], files.as_str());
    let losses = r[0]["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 1, "{s:#}");
    assert_eq!(losses[0]["path"], "data/big.bin");
    let ranges = losses[0]["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{s:#}");
    let (a, z) = (
        ranges[0][0].as_u64().unwrap() as usize,
        ranges[0][1].as_u64().unwrap() as usize,
    );
    assert!(z - a <= 256 * 1024, "one chunk at most: {a}..{z}");

    let out = sb.p("copy");
    sb.restore(r[0]["id"].as_str().unwrap(), &out);
    let mut expected = fs::read(data.join("big.bin")).unwrap();
    expected[a..z].fill(0);
    assert!(fs::read(out.join("data/big.bin")).unwrap() == expected);
    for f in ["notes.txt", "sub/z.txt"] {
        assert_eq!(
            fs::read(out.join("data").join(f)).unwrap(),
            fs::read(data.join(f)).unwrap()
        );
    }
    // The database snapshots were not touched.
    for (id, _) in &fx.dbs {
        assert!(!r.iter().any(|x| x["from"] == id.as_str()));
    }
}

/// A repository with nothing lost: repair writes nothing.
#[test]
fn repair_snapshots_of_an_intact_repository_writes_nothing() {
    let fx = fixture(None);
    let before = files_under(&fx.sb.repo);
    let s = fx.repair("snapshots", &["--read-data"]);
    assert_eq!(s["repaired"].as_array().unwrap().len(), 0, "{s:#}");
    let s = fx.repair("index", &[]);
    assert_eq!(s["index_files_written"], 0, "{s:#}");
    let r = fx.repair("records", &[]);
    assert_eq!(r["deleted"], 0);
    let after: Vec<PathBuf> = files_under(&fx.sb.repo)
        .into_iter()
        .filter(|p| !p.starts_with(fx.sb.repo.join("locks")))
        .collect();
    assert_eq!(before, after);
}

/// A pack no index names whose trailer is cut off cannot be indexed: it is reported and left
/// where it is, and every other pack is indexed.
#[test]
fn a_pack_without_its_trailer_is_reported_and_kept() {
    let fx = fixture(None);
    let sb = &fx.sb;
    for f in fx.index_files.iter().flatten() {
        fs::remove_file(f).unwrap();
    }
    let all = packs(&sb.repo);
    let cut = all[0].clone();
    let len = fs::metadata(&cut).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // Everything else is indexed, but the repository is still damaged: exit 4, and the
    // error says what is left to do.
    let o = sb.run(&["--json", "repair", "index"]).code(4);
    assert!(o.stderr.contains("could not be indexed"), "{o:#?}");
    assert!(o.stderr.contains("repair snapshots"), "{o:#?}");
    let s = o.json();
    let bad = s["unreadable_packs"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{s:#}");
    assert_eq!(bad[0]["name"], cut.file_name().unwrap().to_str().unwrap());
    assert_eq!(s["packs_indexed"], all.len() - 1, "{s:#}");
    assert!(cut.exists(), "a pack is never deleted");
    assert_eq!(packs(&sb.repo).len(), all.len());
}

/// The state a `repair index` killed between writing its new index files and deleting the
/// stale ones leaves: old and new files side by side. It reads as well as before the repair
/// (every entry still points at a pack that exists or did before), and running the repair again
/// finishes the job.
#[test]
fn repair_index_interrupted_before_deleting_is_finished_by_the_next_run() {
    let fx = fixture(Some("pw"));
    let sb = &fx.sb;
    // A stale index file: the files snapshot's index names a pack that is gone.
    let lost = new_packs(&[], &sb.repo)
        .into_iter()
        .find(|p| fs::metadata(p).unwrap().len() > 2_500_000)
        .unwrap();
    fs::remove_file(&lost).unwrap();
    let stale: Vec<(PathBuf, Vec<u8>)> = fx.index_files[3]
        .iter()
        .map(|f| (f.clone(), fs::read(f).unwrap()))
        .collect();
    let s = fx.repair("index", &[]);
    assert_eq!(s["stale_index_files"].as_array().unwrap().len(), 1, "{s:#}");
    // Put the deleted stale file back: the crash came just before step 4.
    for (f, b) in &stale {
        fs::write(f, b).unwrap();
    }
    for (i, (id, bytes)) in fx.dbs.iter().enumerate() {
        let out = sb.p(&format!("mid-{i}.db"));
        sb.restore(id, &out);
        assert!(fs::read(&out).unwrap() == *bytes);
    }
    let again = fx.repair("index", &[]);
    assert_eq!(
        again["stale_index_files"].as_array().unwrap().len(),
        1,
        "{again:#}"
    );
    assert_eq!(again["index_files_deleted"], 1, "{again:#}");
    assert!(!stale[0].0.exists());
    let last = fx.repair("index", &[]);
    assert_eq!(last["index_files_written"], 0, "{last:#}");
    assert_eq!(last["index_files_deleted"], 0, "{last:#}");
    let (_, report) = sb.verify(false);
    for p in report["problems"].as_array().unwrap() {
        assert_ne!(p["kind"], "damaged-index", "{report:#}");
        assert_ne!(p["repair"], "backstop repair index", "{report:#}");
    }
}

/// Damage in the middle of a long item list: the items stored in the damaged part are lost,
/// every other item is in the repaired copy and restores byte for byte, and the loss says
/// between which items it lies.
#[test]
fn partly_lost_item_list_keeps_every_item_it_can_read() {
    let sb = Sandbox::plain();
    let d = sb.p("many");
    fs::create_dir(&d).unwrap();
    for i in 0..500 {
        let name = format!(
            "file-{i:04}-{}.dat",
            blake3::hash(&[i as u8, (i >> 8) as u8]).to_hex()
        );
        fs::write(d.join(name), random_bytes(i, 1500)).unwrap();
    }
    let id = sb.backup(&[&d], &[])["id"].as_str().unwrap().to_string();
    // The item list is alone in the smallest pack (the file contents fill the other).
    let tree = packs(&sb.repo).pop().unwrap();
    let mut b = fs::read(&tree).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x20;
    fs::write(&tree, &b).unwrap();
    assert_ne!(sb.run(&["restore", &id, "--to", "x"]).code, 0);

    let s = sb.json(&["repair", "snapshots"]);
    let r = &s["repaired"][0];
    assert_eq!(r["from"], id.as_str(), "{s:#}");
    let loss = &r["losses"][0];
    assert_eq!(loss["path"], "(item list)", "{s:#}");
    assert!(
        loss["detail"]
            .as_str()
            .unwrap()
            .contains("after many/file-"),
        "{s:#}"
    );
    let kept = r["items"].as_u64().unwrap();
    assert!(kept > 50 && kept < 501, "{kept} of 501 items kept: {s:#}");

    let out = sb.p("copy");
    sb.restore(r["id"].as_str().unwrap(), &out);
    let restored = files_under(&out.join("many"));
    assert_eq!(
        restored.len() as u64,
        kept - 1,
        "every kept file (and the directory)"
    );
    for f in &restored {
        assert_eq!(
            fs::read(f).unwrap(),
            fs::read(d.join(f.file_name().unwrap())).unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A snapshot object that cannot be read at all: nothing in it can be repaired, and it keeps
// prune from running. `forget ID` deletes it.

/// Flips a byte in the middle of the snapshot object `id`.
fn damage_snapshot_object(repo: &Path, id: &str) -> PathBuf {
    let f = files_under(&repo.join("snapshots"))
        .into_iter()
        .find(|f| f.file_name().unwrap().to_str().unwrap() == id)
        .expect("the snapshot object");
    let mut b = fs::read(&f).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x21;
    fs::write(&f, &b).unwrap();
    f
}

#[test]
fn an_unreadable_snapshot_object_is_forgotten_by_id_and_prune_runs_again() {
    let fx = fixture(Some("pw"));
    let sb = &fx.sb;
    let id = fx.files.0.clone();
    let object = damage_snapshot_object(&sb.repo, &id);

    // verify names it and the command that deals with it.
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4);
    let damaged = problems_of(&report, "damaged-snapshot");
    assert_eq!(damaged.len(), 1, "{report:#}");
    assert_eq!(damaged[0]["object"], id.as_str());
    assert_eq!(damaged[0]["repair"], "backstop forget", "{report:#}");
    let o = sb.run(&["verify"]).code(4);
    assert!(
        o.stdout.contains(&format!("backstop forget {id}")),
        "{o:#?}"
    );

    // The failure: prune cannot run while it is there, and its message says how to go on.
    let o = sb.run(&["prune"]).code(4);
    assert!(
        o.stderr.contains(&format!("backstop forget {id}")),
        "{o:#?}"
    );
    // A policy forget keeps it (nothing is known about it) and says how to delete it.
    let o = sb.run(&["forget", "--keep-last", "1", "--dry-run"]).ok();
    assert!(
        o.stdout.contains(&format!("backstop forget {id}")),
        "{o:#?}"
    );

    // A dry run, by a unique start of the id, changes nothing, and plans the prune as if it
    // were gone.
    let short = &id[..8];
    let dry = sb.json(&["forget", short, "--dry-run", "--prune"]);
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    assert_eq!(dry["snapshots"][0]["id"], id.as_str(), "{dry:#}");
    assert!(dry["snapshots"][0]["unreadable"].is_string(), "{dry:#}");
    assert!(dry["prune"].is_object(), "{dry:#}");
    assert!(object.exists());

    let s = sb.json(&["forget", short]);
    assert_eq!(s["forgotten"], 1, "{s:#}");
    assert!(!object.exists());
    sb.run(&["prune"]).ok();
    // Everything else is intact.
    let (code, report) = sb.verify(true);
    assert_eq!(code, 0, "{report:#}");
    for (i, (sid, bytes)) in fx.dbs.iter().enumerate() {
        let out = sb.p(&format!("after-{i}.db"));
        sb.restore(sid, &out);
        assert!(fs::read(&out).unwrap() == *bytes, "snapshot {sid}");
    }
}

#[test]
fn forget_by_id_refuses_pinned_unknown_and_ambiguous_ids() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(data.join("a.txt"), format!("version {i}\n")).unwrap();
        ids.push(sb.backup(&[&data], &[])["id"].as_str().unwrap().to_string());
    }
    sb.run(&["pin", &ids[0]]).ok();
    let o = sb.run(&["forget", &ids[0]]).code(2);
    assert!(o.stderr.contains("pinned"), "{o:#?}");
    let o = sb.run(&["forget", "0123456789abcdef0123"]).code(13);
    assert!(o.stderr.contains("no snapshot with id"), "{o:#?}");
    let o = sb.run(&["forget", "not-an-id"]).code(2);
    assert!(o.stderr.contains("is not a snapshot id"), "{o:#?}");
    // Policy flags and ids do not mix.
    sb.run(&["forget", &ids[1], "--keep-last", "1"]).code(2);
    assert_eq!(sb.snapshots().len(), 3, "nothing was forgotten");

    // Two ids at once; the pin record of a forgotten snapshot goes with it.
    sb.run(&["unpin", &ids[0]]).ok();
    let s = sb.json(&["forget", &ids[0], &ids[1]]);
    assert_eq!(s["forgotten"], 2, "{s:#}");
    assert!(s["records_deleted"].as_u64().unwrap() >= 2, "{s:#}");
    let left: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![ids[2].clone()]);
    sb.run(&["prune"]).ok();
    sb.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// A second key

#[test]
fn a_second_key_opens_the_repository_when_the_first_key_file_is_damaged() {
    let fx = fixture(Some("first"));
    let sb = &fx.sb;
    let with = |pass: &str, args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--repo").arg(&sb.repo).env("BACKSTOP_PASSWORD", pass);
        c.args(args);
        run(c)
    };
    // One key: list says so and recommends a second.
    let o = sb.run(&["key", "list"]).ok();
    assert!(o.stdout.contains("only one usable key"), "{o:#?}");
    let first = files_under(&sb.repo.join("keys"));
    assert_eq!(first.len(), 1);

    // No new passphrase given: a usage error, nothing written.
    let o = sb.run(&["key", "add"]).code(2);
    assert!(o.stderr.contains("BACKSTOP_NEW_PASSWORD"), "{o:#?}");
    let mut c = sb.cmd();
    c.args(["--json", "key", "add"])
        .env("BACKSTOP_NEW_PASSWORD", "second");
    let added = run(c).ok().json();
    let second_id = added["id"].as_str().unwrap().to_string();
    assert_eq!(files_under(&sb.repo.join("keys")).len(), 2);

    // The new passphrase opens it; list marks which key each passphrase opens.
    let list = with("second", &["--json", "key", "list"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for k in list {
        assert_eq!(k["current"], k["id"] == second_id.as_str(), "{k:#}");
    }
    // A wrong one still does not.
    with("third", &["snapshots"]).code(12);

    // The first key file is damaged: the first passphrase is refused as damage (exit 4),
    // the second opens the repository and every snapshot restores.
    let mut b = fs::read(&first[0]).unwrap();
    let n = b.len();
    b[n / 2] = if b[n / 2] == b'a' { b'b' } else { b'a' };
    fs::write(&first[0], &b).unwrap();
    with("first", &["snapshots"]).code(4);
    let list = with("second", &["--json", "key", "list"]).ok().json();
    let damaged: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["damaged"].is_string())
        .collect();
    assert_eq!(damaged.len(), 1, "{list:#}");
    for (i, (id, bytes)) in fx.dbs.iter().enumerate() {
        let out = sb.p(&format!("second-{i}.db"));
        let mut c = sb.bare();
        c.arg("--repo")
            .arg(&sb.repo)
            .env("BACKSTOP_PASSWORD", "second")
            .args(["restore", id, "--to"])
            .arg(&out);
        run(c).ok();
        assert!(fs::read(&out).unwrap() == *bytes);
    }

    // The key a passphrase opens is never removed with that passphrase; the damaged one is.
    let o = with("second", &["key", "remove", &second_id[..10]]).code(2);
    assert!(o.stderr.contains("this passphrase opens"), "{o:#?}");
    let damaged_id = damaged[0]["id"].as_str().unwrap().to_string();
    with("second", &["key", "remove", &damaged_id]).ok();
    assert_eq!(files_under(&sb.repo.join("keys")).len(), 1);
    with("second", &["verify"]).ok();

    // An unencrypted repository has no keys.
    let plain = Sandbox::plain();
    let o = plain.run(&["key", "list"]).code(2);
    assert!(o.stderr.contains("not encrypted"), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// kill -9 during `repair index`

/// `repair index` killed at many points while it rebuilds the index of a repository whose
/// index files are all gone: the next run always finishes the job, no pack is ever lost, and
/// then every snapshot restores byte for byte.
#[test]
fn repair_index_killed_at_any_point_is_finished_by_the_next_run() {
    let fx = fixture(None);
    let sb = &fx.sb;
    let all_packs = packs(&sb.repo);
    let index_files: Vec<(PathBuf, Vec<u8>)> = fx
        .index_files
        .iter()
        .flatten()
        .map(|f| (f.clone(), fs::read(f).unwrap()))
        .collect();
    // How long a whole repair takes here (start of the process included): the kills are spread
    // over that span, so they land mid-way however fast or loaded the machine is.
    let mut spans: Vec<std::time::Duration> = (0..3)
        .map(|_| {
            for f in files_under(&sb.repo.join("index")) {
                fs::remove_file(f).unwrap();
            }
            let started = std::time::Instant::now();
            sb.json(&["repair", "index"]);
            started.elapsed()
        })
        .collect();
    spans.sort();
    let span = spans[1];
    let mut killed_mid_way = 0;
    for round in 0..12u32 {
        // Start from the same damage each round: every index file lost, and (every other
        // round) the leftovers of the previous killed repair kept, to repair on top of them.
        if round % 2 == 0 {
            for f in files_under(&sb.repo.join("index")) {
                fs::remove_file(f).unwrap();
            }
        }
        let mut c = sb.cmd();
        c.args(["repair", "index"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(span * (2 * round + 1) / 24);
        if child.try_wait().unwrap().is_none() {
            killed_mid_way += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        assert_eq!(packs(&sb.repo), all_packs, "round {round}: a pack was lost");
        // Reads never see a half-written index file: each one there decodes.
        let o = sb.run(&["--json", "verify"]);
        assert!(o.code == 0 || o.code == 4, "{o:#?}");
        for p in o.json()["problems"].as_array().unwrap() {
            assert_ne!(p["kind"], "damaged-index", "round {round}: {p:#}");
        }
        // The next run finishes the job (a killed repair's lock is stale: it is taken over).
        sb.json(&["repair", "index"]);
        let (code, report) = sb.verify(false);
        assert_eq!(code, 0, "round {round}: {report:#}");
    }
    assert!(
        killed_mid_way >= 3,
        "only {killed_mid_way} kills landed mid-way"
    );
    sb.assert_clean();
    fx.assert_everything_restores();
    // The original index files were replaced by equivalent ones: restore them and check that
    // the two together still read (duplicates are harmless).
    for (f, b) in &index_files {
        fs::write(f, b).unwrap();
    }
    fx.assert_everything_restores();
}
