//! Status: is every source's data safe? Per source: the last backup and its age, the next
//! scheduled run, whether it is overdue, the database health at the last capture, and the
//! newest snapshot that passed a restore drill. `backstop status` prints it (and exits non-zero
//! when a source needs attention), the daemon's page shows the same.

use std::collections::BTreeMap;

use backstop_format::manifest::{BackupKind, DatabaseMeta, ItemKind, RuleOutcome, Snapshot};
use backstop_format::{SnapshotId, Timestamp};
use backstop_policy::Schedule;
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::Result;
use crate::repository::Repository;
use crate::repository::SnapshotList;
use crate::repository::content::Loader;
use crate::repository::index::Index;

/// What is expected of one source.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub name: String,
    /// When backups should run; `None`: never overdue.
    pub schedule: Option<Schedule>,
    /// The newest snapshot that passed a restore drill may be at most this old (by the time
    /// of the drill); `None`: no limit.
    pub drill_max_age: Option<SignedDuration>,
}

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub now: Timestamp,
    pub time_zone: TimeZone,
    /// Configured sources; sources found only in the repository are listed too, without
    /// expectations.
    pub sources: Vec<Expectation>,
}

/// The newest snapshot that passed a restore drill.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub snapshot: SnapshotId,
    pub snapshot_time: Timestamp,
    /// When the drill ran, and how long ago.
    pub drilled: Timestamp,
    pub age_seconds: i64,
    /// How old the data it proved is (the snapshot's age): what a restore now would lose at
    /// most, were every newer snapshot bad.
    pub snapshot_age_seconds: i64,
}

/// One source's status.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    /// In the config file (else only found in the repository).
    pub configured: bool,
    /// `ok`, or the first problem: `backup-failed`, `never-backed-up`, `overdue`, `unhealthy`,
    /// `drill-failed`, `unverified`, `rules-failing`.
    pub state: &'static str,
    /// Every problem, in words.
    pub problems: Vec<String>,
    pub schedule: Option<String>,
    pub snapshots: usize,
    pub last_backup: Option<Timestamp>,
    pub last_backup_age_seconds: Option<i64>,
    pub last_snapshot: Option<SnapshotId>,
    /// Content bytes of the last snapshot.
    pub last_bytes: Option<u64>,
    pub next_run: Option<Timestamp>,
    pub overdue: bool,
    /// `PRAGMA quick_check` of each database in the last snapshot: `ok` or the problems.
    pub database_health: Option<String>,
    /// The source's data validation rules as they ran at the last capture (absent when the
    /// last snapshot holds no results).
    pub validation: Option<ValidationStatus>,
    pub verified: Option<Verified>,
    pub drill_max_age_seconds: Option<i64>,
    /// The last backup attempt, when it failed after the last snapshot.
    pub last_failure: Option<Failure>,
}

/// How a source's data validation rules fared at its last capture.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationStatus {
    /// Rules that ran.
    pub rules: usize,
    /// The rules that failed, each with its table, count and first offending rows.
    pub failing: Vec<RuleOutcome>,
}

/// A failed backup attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub time: Timestamp,
    pub host: String,
    pub reason: String,
}

impl SourceStatus {
    pub fn needs_attention(&self) -> bool {
        self.state != "ok"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub now: Timestamp,
    pub sources: Vec<SourceStatus>,
    /// Unreadable snapshots (run verify).
    pub unreadable_snapshots: usize,
}

impl StatusReport {
    pub fn needs_attention(&self) -> bool {
        self.unreadable_snapshots > 0 || self.sources.iter().any(SourceStatus::needs_attention)
    }
}

pub fn status(repo: &Repository, opts: &StatusOptions) -> Result<StatusReport> {
    let SnapshotList {
        readable: snaps,
        unreadable: bad,
    } = repo.snapshots()?;
    let records = repo.records()?;
    let failures = crate::repository::attempts::last_failures(&records);
    let marks = crate::repository::Marks::from_records(records);
    let mut by_source: BTreeMap<&str, Vec<(SnapshotId, &Snapshot)>> = BTreeMap::new();
    for (id, s) in &snaps {
        by_source.entry(&s.source.name).or_default().push((*id, s));
    }
    let mut names: Vec<(String, Option<&Expectation>)> = opts
        .sources
        .iter()
        .map(|e| (e.name.clone(), Some(e)))
        .collect();
    for name in by_source
        .keys()
        .copied()
        .chain(failures.keys().map(String::as_str))
    {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.to_string(), None));
        }
    }
    let index = if snaps.is_empty() {
        Index::default()
    } else {
        Index::load(repo)?.index
    };
    let loader = Loader::new(repo, &index);
    let mut out = Vec::new();
    for (name, exp) in names {
        let list = by_source
            .get(name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let last = list.last();
        let mut st = SourceStatus {
            configured: exp.is_some(),
            state: "ok",
            problems: Vec::new(),
            schedule: exp
                .and_then(|e| e.schedule.as_ref())
                .map(ToString::to_string),
            snapshots: list.len(),
            last_backup: last.map(|(_, s)| s.time),
            last_backup_age_seconds: last.map(|(_, s)| opts.now.duration_since(s.time).as_secs()),
            last_snapshot: last.map(|(id, _)| *id),
            last_bytes: last.map(|(_, s)| s.stats.bytes),
            next_run: None,
            overdue: false,
            database_health: None,
            validation: None,
            verified: None,
            drill_max_age_seconds: exp.and_then(|e| e.drill_max_age).map(|d| d.as_secs()),
            last_failure: None,
            name,
        };
        let problem = |st: &mut SourceStatus, state: &'static str, msg: String| {
            if st.state == "ok" {
                st.state = state;
            }
            st.problems.push(msg);
        };
        if let Some(f) = failures.get(&st.name)
            && last.is_none_or(|(_, s)| s.time < f.time)
        {
            st.last_failure = Some(Failure {
                time: f.time,
                host: f.host.clone(),
                reason: f.note.clone().unwrap_or_default(),
            });
            problem(
                &mut st,
                "backup-failed",
                format!(
                    "the last backup attempt failed ({} on {}): {}",
                    f.time.strftime("%Y-%m-%d %H:%M UTC"),
                    f.host,
                    f.note.as_deref().unwrap_or("no reason recorded")
                ),
            );
        }
        if last.is_none() {
            problem(&mut st, "never-backed-up", "no backup yet".into());
        }
        if let Some(schedule) = exp.and_then(|e| e.schedule.as_ref()) {
            let last_time = last.map(|(_, s)| s.time);
            st.next_run = Some(schedule.next_run(last_time, opts.now, &opts.time_zone));
            if last_time.is_some()
                && schedule.overdue_at(last_time, opts.now, &opts.time_zone) <= opts.now
            {
                st.overdue = true;
                problem(
                    &mut st,
                    "overdue",
                    format!(
                        "overdue: the last backup is older than its schedule ({schedule}) allows"
                    ),
                );
            }
        }
        if let Some((_, snap)) = last {
            (st.database_health, st.validation) = capture_checks(&loader, snap);
            if let Some(h) = st.database_health.clone().filter(|h| h != "ok") {
                problem(
                    &mut st,
                    "unhealthy",
                    format!("the database check at the last capture found problems: {h}"),
                );
            }
            if let Some(v) = st.validation.clone().filter(|v| !v.failing.is_empty()) {
                problem(
                    &mut st,
                    "rules-failing",
                    format!(
                        "validation: {} of {} rules failing at the last capture: {}",
                        v.failing.len(),
                        v.rules,
                        v.failing
                            .iter()
                            .map(|r| format!("{} ({})", r.name, r.count))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        st.verified = list.iter().rev().find_map(|(id, s)| {
            if s.kind == BackupKind::PreRestore {
                return None;
            }
            let drill = marks.get(id)?.drill.as_ref().filter(|r| r.passed)?;
            Some(Verified {
                snapshot: *id,
                snapshot_time: s.time,
                drilled: drill.time,
                age_seconds: opts.now.duration_since(drill.time).as_secs(),
                snapshot_age_seconds: opts.now.duration_since(s.time).as_secs(),
            })
        });
        // The newest real backup (safety snapshots hold rolled-back state) failed its drill:
        // an older passed drill does not make the current data proven.
        let newest_regular = list
            .iter()
            .rev()
            .find(|(_, s)| s.kind != BackupKind::PreRestore);
        if let Some((id, s)) = newest_regular
            && let Some(drill) = marks.get(id).and_then(|m| m.drill.as_ref())
            && !drill.passed
        {
            problem(
                &mut st,
                "drill-failed",
                format!(
                    "the newest snapshot {} (taken {}) failed its restore drill on {}",
                    id.short(),
                    s.time.strftime("%Y-%m-%d %H:%M UTC"),
                    drill.time.strftime("%Y-%m-%d %H:%M UTC")
                ),
            );
        }
        if exp.is_none() && !list.is_empty() && st.verified.is_none() {
            problem(
                &mut st,
                "unverified",
                "no snapshot has passed a restore drill yet".into(),
            );
        }
        if let Some(limit) = exp.and_then(|e| e.drill_max_age)
            && !list.is_empty()
        {
            match st.verified.clone() {
                None => problem(
                    &mut st,
                    "unverified",
                    "no snapshot has passed a restore drill yet".into(),
                ),
                Some(v) if v.age_seconds > limit.as_secs() => problem(
                    &mut st,
                    "unverified",
                    format!(
                        "the newest passed restore drill is {} old (limit {})",
                        backstop_policy::format_interval(SignedDuration::from_secs(v.age_seconds)),
                        backstop_policy::format_interval(limit)
                    ),
                ),
                Some(_) => {}
            }
        }
        out.push(st);
    }
    Ok(StatusReport {
        now: opts.now,
        sources: out,
        unreadable_snapshots: bad.len(),
    })
}

/// The quick check results of the databases in a snapshot (`None` when it holds none), and
/// the validation rules' results recorded with them.
fn capture_checks(
    loader: &Loader<'_>,
    snap: &Snapshot,
) -> (Option<String>, Option<ValidationStatus>) {
    let items = match loader.read_items(&snap.items) {
        Ok(items) => items,
        Err(e) => {
            return (
                Some(format!("the snapshot's item list cannot be read: {e}")),
                None,
            );
        }
    };
    let databases: Vec<&DatabaseMeta> = items
        .iter()
        .filter(|i| i.kind == ItemKind::Sqlite)
        .filter_map(|i| i.database.as_ref())
        .collect();
    let results: Vec<&RuleOutcome> = databases
        .iter()
        .filter_map(|d| d.validation.as_ref())
        .chain(
            items
                .iter()
                .filter_map(|i| i.server.as_ref()?.validation.as_ref()),
        )
        .flat_map(|v| &v.results)
        .collect();
    let validation = (!results.is_empty()).then(|| ValidationStatus {
        rules: results.len(),
        failing: results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| (*r).clone())
            .collect(),
    });
    let checks: Vec<String> = databases.iter().map(|d| d.quick_check.clone()).collect();
    (health(&checks), validation)
}

/// One line for the quick checks of a snapshot's databases.
fn health(checks: &[String]) -> Option<String> {
    match checks {
        [] => None,
        all if all.iter().all(|c| c == "ok") => Some("ok".into()),
        all => Some(
            all.iter()
                .filter(|c| *c != "ok")
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}
