//! `repair index`: a lost, damaged or stale index file, a pack without its trailer, and a run
//! interrupted or killed part way.

use super::*;

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
