//! Restore drills: restore a snapshot into a scratch directory, check it thoroughly, time it,
//! and record the result in the repository, so that "this backup restores" is a dated fact and
//! not a hope.
//!
//! A database is written out and checked with `PRAGMA integrity_check` and
//! `foreign_key_check`, its row counts, schema and image hash against those recorded at capture.
//! Tables whose module, tokenizer or collation only the application defines cannot be checked
//! here: they are listed in a passing `not checkable` check (the drill passed with limits), and
//! every other table is checked.
//! Files are restored and each one's BLAKE3 compared with the snapshot's; a database inside
//! the tree gets a database's checks as well.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backstop_format::manifest::{ItemKind, ServerDatabase, Snapshot};
use backstop_format::record::{Check, RECORD_VERSION, RESTORE_DRILL, Record};
use backstop_format::{SnapshotId, Timestamp};
use backstop_sources::sqlite::check_image;

use crate::error::Result;
use crate::ops::database::{ImageWrite, database_item, image_hash_check, write_image};
use crate::ops::restore::{RestoreOptions, plan_restore, restore};
use crate::progress::Progress;
use crate::repository::indexed::Indexed;

/// Where and when a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// A directory for the scratch copy (removed afterwards).
    pub scratch: PathBuf,
    pub time: Timestamp,
    pub host: String,
    /// Where a server database's dump is drilled (its source's server); without one, such a
    /// snapshot's drill fails saying so.
    pub server: Option<Arc<dyn ServerDrill>>,
    /// The source's data validation rules, run on a database snapshot's restored image (the
    /// check `rules`).
    pub rules: Vec<backstop_sources::rules::Rule>,
}

/// A drill of a server database's dump (PostgreSQL): load it into a scratch database on a
/// server, compare it with what the dump was taken from, drop it; one check per step.
pub trait ServerDrill: std::fmt::Debug + Send + Sync {
    /// `feed` writes the dump; `expected` is the item's record of what it was taken from;
    /// `rules`, the source's data validation rules, run on the loaded data (the check `rules`).
    fn drill(
        &self,
        expected: &ServerDatabase,
        rules: &[backstop_sources::rules::Rule],
        feed: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
    ) -> Vec<Check>;
}

/// Runs a drill on one snapshot and stores its record. A drill that finds a problem is a
/// failed record, not an error; errors are for drills that could not run at all.
pub fn restore_drill(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<Record> {
    let repo = ix.repo();
    let lock =
        crate::repository::lock::Lock::for_reading(ix, "restore drill", &opts.host, progress)?;
    let dir = opts.scratch.join(format!(
        "backstop-drill-{}",
        backstop_format::id::to_hex(&backstop_format::id::random_bytes::<8>())
    ));
    fs::create_dir_all(&dir).map_err(|e| {
        crate::Error::Source(backstop_sources::Error::Io {
            context: format!("creating {}", dir.display()),
            cause: e,
        })
    })?;
    let started = Instant::now();
    let checks = run_checks(ix, id, snap, &dir, opts, progress);
    let duration_ms = started.elapsed().as_millis() as u64;
    let _ = fs::remove_dir_all(&dir);
    let record = Record {
        version: RECORD_VERSION,
        kind: RESTORE_DRILL.into(),
        snapshot: id,
        time: opts.time,
        host: opts.host.clone(),
        passed: checks.iter().all(|c| c.passed),
        duration_ms,
        checks,
        by: None,
        note: None,
        source: None,
    };
    match repo.write_record(&record) {
        Ok(_) => {}
        // A repository that could not take a lock (read-only media, no write permission)
        // cannot take the record either: the drill still ran, and its result is reported.
        Err(e) if !lock.is_held() => progress.warning(&format!(
            "the drill's result could not be recorded in the repository ({e}): it is only \
             reported here, and `status` will not count it"
        )),
        Err(e) => return Err(e),
    }
    drop(lock);
    Ok(record)
}

/// The check `rules`: the source's data validation rules on the restored image (none when it
/// has none). It fails when a rule does, naming each failing rule and its first rows.
fn rules_check(image: &Path, rules: &[backstop_sources::rules::Rule]) -> Option<Check> {
    if rules.is_empty() {
        return None;
    }
    let (passed, detail) =
        backstop_sources::rules::verdict(backstop_sources::rules::run_on_file(image, rules));
    Some(Check {
        name: "rules".into(),
        passed,
        detail,
    })
}

fn failed(name: &str, detail: String) -> Vec<Check> {
    vec![Check {
        name: name.into(),
        passed: false,
        detail,
    }]
}

fn run_checks(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    dir: &Path,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Vec<Check> {
    let host = opts.host.as_str();
    let loader = ix.loader();
    let items = match loader.read_items(&snap.items) {
        Ok(items) => items,
        Err(e) => return failed("item list", e.to_string()),
    };
    if let Some((item, expected)) = items.iter().find_map(|i| Some((i, i.server.as_ref()?))) {
        let Some(server) = &opts.server else {
            return failed(
                "server",
                format!(
                    "a {} dump is drilled in a scratch database on its server: name the \
                     source (its url) in backstop.toml",
                    expected.engine
                ),
            );
        };
        let Some(content) = &item.content else {
            return failed("restore", "the dump has no content".into());
        };
        progress.phase("restore drill", Some(content.size));
        return server.drill(expected, &opts.rules, &mut |w| {
            loader.write_content(content, w, progress)
        });
    }
    if let Some(item) = database_item(&items) {
        let meta = item.database.as_ref().expect("database_item checks it");
        progress.phase("restore drill", item.content.as_ref().map(|c| c.size));
        // Read whole right away by the checks: through the page cache.
        let how = ImageWrite {
            durable: false,
            direct: false,
        };
        let image = match write_image(&loader, item, dir, how, progress) {
            Ok(p) => p,
            Err(e) => return failed("restore", e.to_string()),
        };
        return match check_image(&image, meta, true, true) {
            Ok(checks) => std::iter::once(image_hash_check())
                .chain(checks)
                .chain(rules_check(&image, &opts.rules))
                .collect(),
            Err(e) => failed("open", e.to_string()),
        };
    }
    let opts = RestoreOptions {
        target: dir.join("restore"),
        overwrite: false,
        host: host.to_string(),
    };
    let r = plan_restore(ix, id, snap, &opts).and_then(|(plan, items)| {
        restore(ix, plan, &items, &opts, progress)?;
        Ok(items)
    });
    let items = match r {
        Ok(items) => items,
        Err(e) => return failed("restore", e.to_string()),
    };
    let mut bad = Vec::new();
    let mut files = 0;
    let mut databases = Vec::new();
    // A database's restored file is its image, whose hash the snapshot records like a file's.
    for item in items.read(ix) {
        let item = match item {
            Ok(item) => item,
            Err(e) => return failed("restore", e.to_string()),
        };
        if !matches!(
            item.kind,
            ItemKind::File | ItemKind::Stream | ItemKind::Sqlite
        ) {
            continue;
        }
        files += 1;
        let want = item
            .content
            .as_ref()
            .map(|c| c.hash.clone())
            .unwrap_or_default();
        let got = fs::File::open(opts.target.join(&item.path))
            .and_then(|f| blake3::Hasher::new().update_reader(f).map(|h| h.finalize()))
            .map(|h| h.to_hex().to_string())
            .unwrap_or_default();
        if got != want {
            bad.push(item.path.clone());
        }
        if item.kind == ItemKind::Sqlite {
            databases.push(item);
        }
    }
    let mut checks = vec![
        Check {
            name: "restore".into(),
            passed: true,
            detail: "every chunk matched its id".into(),
        },
        Check {
            name: "file hashes".into(),
            passed: bad.is_empty(),
            detail: if bad.is_empty() {
                format!("{files} file(s) equal the snapshot")
            } else {
                format!("differ: {}", bad.join(", "))
            },
        },
    ];
    checks.extend(database_checks(&databases, &opts.target));
    checks
}

/// The databases of a restored tree, each checked like a database snapshot's image:
/// `integrity_check`, `foreign_key_check`, row counts and schema against the capture. One check
/// per database, named after it.
fn database_checks(items: &[backstop_format::manifest::Item], root: &Path) -> Vec<Check> {
    items
        .iter()
        .filter(|i| i.kind == ItemKind::Sqlite)
        .filter_map(|i| Some((i, i.database.as_ref()?)))
        .map(|(item, meta)| {
            let name = format!("database {}", item.path);
            match check_image(&root.join(&item.path), meta, true, true) {
                Ok(checks) => Check {
                    name,
                    passed: checks.iter().all(|c| c.passed),
                    detail: checks
                        .iter()
                        .map(|c| format!("{}: {}", c.name, c.detail))
                        .collect::<Vec<_>>()
                        .join("; "),
                },
                Err(e) => Check {
                    name,
                    passed: false,
                    detail: e.to_string(),
                },
            }
        })
        .collect()
}
