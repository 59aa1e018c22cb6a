//! Getting data back from a damaged repository: `repair index`, `repair snapshots`,
//! `repair records`, damaged key files, and `verify` naming the repair for each problem.

#[path = "../common/mod.rs"]
mod common;
mod index;
mod records;
mod snapshots;

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

/// The packs that appeared between two listings.
fn new_packs(before: &[PathBuf], repo: &Path) -> Vec<PathBuf> {
    packs(repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect()
}
