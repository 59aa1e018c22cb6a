//! Bookkeeping for the corruption fuzz: counts per corruption mode, what each case changed, and
//! the printed summary.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use crate::verdict::{Native, short};

/// What one kind of corruption led to: corruptions, SQLite not ok, native not ok, false
/// positives.
type Counts = [usize; 4];

#[derive(Default)]
pub(crate) struct Tally {
    by_mode: BTreeMap<&'static str, Counts>,
    pub(crate) skipped_header: usize,
    pub(crate) skipped_unreadable: usize,
    native_left_to_sqlite: usize,
    native_errors: Vec<String>,
    false_positives: Vec<String>,
    pub(crate) false_negatives: Vec<String>,
}

impl Tally {
    /// Counts one readable corruption; `true` if the native check passed it and SQLite did not.
    pub(crate) fn record(
        &mut self,
        mode: &'static str,
        case: String,
        sqlite: Option<String>,
        native: Native,
    ) -> bool {
        let counts = self.by_mode.entry(mode).or_default();
        counts[0] += 1;
        counts[1] += usize::from(sqlite.is_some());
        let missed = match (&native, &sqlite) {
            (Native::Passed, None) => return false,
            (Native::Passed, Some(msg)) => format!("{case}\n  SQLite: {}", short(msg)),
            (Native::Panicked, _) => format!("{case}\n  native check panicked; SQLite: {sqlite:?}"),
            (Native::LeftToSqlite, _) => {
                self.native_left_to_sqlite += 1;
                String::new()
            }
            (Native::Failed(e), _) => {
                self.native_errors
                    .push(format!("{case}\n  {e}\n  SQLite: {sqlite:?}"));
                String::new()
            }
            (Native::Flagged(_), _) => String::new(),
        };
        if !missed.is_empty() {
            eprintln!("FALSE NEGATIVE: {missed}");
            self.false_negatives.push(missed);
            return true;
        }
        counts[2] += 1;
        if sqlite.is_none() {
            counts[3] += 1;
            let native = match native {
                Native::Flagged(problems) => problems.join("; "),
                other => format!("{other:?}"),
            };
            self.false_positives
                .push(format!("{case}\n  native: {}", short(&native)));
        }
        false
    }

    pub(crate) fn print(&self, seed: u64, per_shape: u64, started: Instant) {
        println!(
            "fuzz seed {seed:#x}, {per_shape} per shape, {:.1?}",
            started.elapsed()
        );
        let row = |name: &str, c: &Counts| {
            println!(
                "{name:>14} {:>11} {:>13} {:>13} {:>15}",
                c[0], c[1], c[2], c[3]
            );
        };
        println!(
            "{:>14} {:>11} {:>13} {:>13} {:>15}",
            "corruption", "iterations", "SQLite not ok", "native not ok", "false positives"
        );
        let mut all = Counts::default();
        for (mode, counts) in &self.by_mode {
            row(mode, counts);
            all.iter_mut().zip(counts).for_each(|(a, c)| *a += c);
        }
        row("all", &all);
        println!(
            "skipped: {} (page size, version or encoding bytes), {} (SQLite cannot read the \
             schema); native: {} left to SQLite, {} errors, {} false negatives",
            self.skipped_header,
            self.skipped_unreadable,
            self.native_left_to_sqlite,
            self.native_errors.len(),
            self.false_negatives.len()
        );
        for e in self.native_errors.iter().take(3) {
            println!("native check error: {e}");
        }
        for fp in self.false_positives.iter().take(5) {
            println!("false positive: {fp}");
        }
    }
}

/// Header bytes that change page size, file format versions or text encoding.
pub(crate) fn changes_geometry(offset: usize) -> bool {
    (16..20).contains(&offset) || (56..60).contains(&offset)
}

/// The first few changed bytes (comparing page by page: a byte-wise scan of every image is slow
/// in a debug build).
pub(crate) fn describe_bytes(base: &[u8], b: &[u8], page_size: usize) -> String {
    let mut changed = Vec::new();
    for (page, (x, y)) in base.chunks(page_size).zip(b.chunks(page_size)).enumerate() {
        if x == y {
            continue;
        }
        for (i, (old, new)) in x.iter().zip(y).enumerate().filter(|(_, (o, n))| o != n) {
            if changed.len() == 8 {
                return changed.join(", ") + ", ...";
            }
            let at = page * page_size + i;
            changed.push(format!(
                "{at} (page {} +{i}): {old:#04x}->{new:#04x}",
                page + 1
            ));
        }
    }
    changed.join(", ")
}

pub(crate) fn remove_side_files(path: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(side);
    }
}
