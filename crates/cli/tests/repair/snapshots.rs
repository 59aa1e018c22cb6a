//! `repair snapshots`: database and file snapshots with lost content or item lists, damage found by
//! `--read-data`, and forgetting a snapshot that cannot be read.

use super::*;

// ---------------------------------------------------------------------------------------------
// Item 1: snapshots part of which is lost

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
