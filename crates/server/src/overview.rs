//! What the status page, the API and the metrics show: the overview, the snapshot list and one
//! snapshot's detail, read from the repository and the daemon's state.

use backstop_engine::Indexed;
use backstop_engine::listing::{ListFilter, SnapshotRow, list_snapshots};
use backstop_engine::status::{SourceStatus, StatusOptions, StatusReport};
use backstop_format::Timestamp;
use backstop_format::manifest::DatabaseMeta;
use backstop_format::record::Record;
use serde::Serialize;

use crate::api::{ApiResult, blocking};
use crate::jobs::JobView;
use crate::shared::App;
use crate::state::SizeSample;

/// The status page: everything at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub now: Timestamp,
    pub host: String,
    pub version: &'static str,
    pub repository: RepositoryInfo,
    pub scheduler: SchedulerInfo,
    pub sources: Vec<SourceOverview>,
    /// Some source needs attention (overdue, failing, unhealthy, unverified).
    pub attention: bool,
    pub unreadable_snapshots: usize,
    /// Jobs queued or running.
    pub active_jobs: Vec<JobView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryInfo {
    pub location: String,
    pub encrypted: bool,
    /// Bytes of packs.
    pub size_bytes: u64,
    pub free_bytes: Option<u64>,
    /// Its size, one sample a day (the newest of the day), oldest first, the last
    /// [`HISTORY_DAYS`] days the daemon measured it on.
    pub sizes: Vec<SizeSample>,
}

/// Days of history the status page shows.
pub const HISTORY_DAYS: usize = 90;
/// Days of backup jobs and drills a source's history holds (the timeline's), and at most how
/// many of each: a backup every 15 minutes is 672 a week.
pub const JOB_HISTORY_DAYS: i64 = 7;
pub const JOB_HISTORY_MAX: usize = 1000;

/// A source's recent backups and restore drills (oldest first): the daemon's jobs, and the
/// backups made from the command line (`backstop backup`, from cron or a timer), read from the
/// repository.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceHistory {
    pub backups: Vec<JobPoint>,
    pub drills: Vec<JobPoint>,
}

/// One finished job in a history: when it started, how long it took, whether it worked, and
/// who ran it.
#[derive(Debug, Clone, Serialize)]
pub struct JobPoint {
    pub started: Timestamp,
    /// How long it took (`0` for a backup from the command line: a snapshot does not say).
    pub seconds: f64,
    pub ok: bool,
    /// [`BY_DAEMON`] or [`BY_COMMAND_LINE`].
    pub by: &'static str,
}

/// A job the daemon ran.
pub const BY_DAEMON: &str = "daemon";
/// A backup made with `backstop backup`: its snapshot (or the failure it recorded) in the
/// repository, with no daemon job around it.
pub const BY_COMMAND_LINE: &str = "command-line";

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerInfo {
    /// `running`, or `stopping` during shutdown.
    pub state: &'static str,
    pub started: Timestamp,
    pub time_zone: String,
}

/// One source on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct SourceOverview {
    #[serde(flatten)]
    pub status: SourceStatus,
    pub kind: String,
    pub description: Option<String>,
    /// A backup job of this source is queued or running.
    pub backup_running: bool,
    /// The last backup attempt, if it failed after the newest snapshot: this daemon's newest
    /// backup job, else the failure recorded in the repository (by `backstop backup`).
    pub last_failure: Option<LastFailure>,
    /// Restores go into this live database (SQLite and database server sources).
    pub restorable: bool,
    /// Its 3-2-1 status as last checked (after its copies), for a source with `copy_to` or
    /// rules; its problems are among the status's, with the state `copies` if nothing else.
    pub copies: Option<backstop_app::copies::SourceCopies>,
    /// Its backups and restore drills of the last [`JOB_HISTORY_DAYS`] days.
    pub history: SourceHistory,
    /// Its pre-change snapshots nobody has marked verified yet (kept whatever the policy
    /// until someone confirms the change went well).
    pub waiting_for_confirmation: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastFailure {
    pub time: Timestamp,
    pub message: String,
}

/// A source's last failed backup attempt, if no snapshot was taken since: the newer of the
/// daemon's own failed job (which also covers a backup that saved only a partial snapshot) and
/// the `backup-failed` record the engine's status read (written by `backstop backup` or by a
/// job). A backup from the command line since the job failed clears it, as it clears `status`.
fn last_failure(status: &SourceStatus, job: Option<LastFailure>) -> Option<LastFailure> {
    let job = job.filter(|j| status.last_backup.is_none_or(|last| last <= j.time));
    let recorded = status.last_failure.as_ref().map(|f| LastFailure {
        time: f.time,
        message: f.reason.clone(),
    });
    match (job, recorded) {
        (Some(j), Some(r)) if r.time > j.time => Some(r),
        (j, r) => j.or(r),
    }
}

/// `t`'s day in `tz`: `2026-12-07`.
pub fn day_of(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string()
}

/// `source`'s finished backups and drills of the last [`JOB_HISTORY_DAYS`] days, at most
/// [`JOB_HISTORY_MAX`] of each (the newest), oldest first.
fn source_history(
    state: &crate::state::State,
    source: &str,
    now: Timestamp,
) -> Result<SourceHistory, crate::state::StateError> {
    let since = now - jiff::SignedDuration::from_hours(24 * JOB_HISTORY_DAYS);
    let points = |kind: &str| -> Result<Vec<JobPoint>, crate::state::StateError> {
        Ok(state
            .runs_since(source, kind, since, JOB_HISTORY_MAX)?
            .into_iter()
            // A job the daemon abandoned (it stopped first) never ran: no point.
            .filter(|(_, _, outcome)| outcome != "abandoned")
            .map(|(started, finished, outcome)| JobPoint {
                started,
                seconds: finished.duration_since(started).as_secs_f64().max(0.0),
                ok: outcome == "ok",
                by: BY_DAEMON,
            })
            .collect())
    };
    Ok(SourceHistory {
        backups: points("backup")?,
        drills: points("drill")?,
    })
}

/// Adds to `history` the backups from the command line since `since`: `made` (times of the
/// source's snapshots) and `failed` (its recorded failure, if any) that no daemon backup job
/// was running at (a job's times are kept to the millisecond; its snapshot is taken, and its
/// failure recorded, while it runs).
fn add_command_line_backups(
    history: &mut SourceHistory,
    made: &[Timestamp],
    failed: Option<Timestamp>,
    since: Timestamp,
) {
    let margin = jiff::SignedDuration::from_millis(50);
    let by_daemon = |t: Timestamp| {
        history.backups.iter().any(|j| {
            let end = j.started + jiff::SignedDuration::from_secs_f64(j.seconds);
            t >= j.started - margin && t <= end + margin
        })
    };
    let found: Vec<JobPoint> = made
        .iter()
        .map(|t| (*t, true))
        .chain(failed.map(|t| (t, false)))
        .filter(|(t, _)| *t >= since && !by_daemon(*t))
        .map(|(started, ok)| JobPoint {
            started,
            seconds: 0.0,
            ok,
            by: BY_COMMAND_LINE,
        })
        .collect();
    history.backups.extend(found);
    history.backups.sort_by_key(|j| j.started);
}

/// One snapshot in full.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotDetail {
    #[serde(flatten)]
    pub row: SnapshotRow,
    pub parent: Option<String>,
    pub program: String,
    pub items_total: usize,
    /// The first 1000 items.
    pub items: Vec<ItemRow>,
    pub databases: Vec<DatabaseDetail>,
    /// Workbooks read as tables: their sheets and Excel tables.
    pub workbooks: Vec<WorkbookDetail>,
    /// What a database server's dump was taken from (PostgreSQL, MariaDB).
    pub servers: Vec<ServerDetail>,
    /// Restore drills, pins and marks, oldest first.
    pub records: Vec<Record>,
    pub snapshot_warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemRow {
    pub path: String,
    pub kind: String,
    pub size: u64,
}

/// A database server's dump in a snapshot, with its record.
#[derive(Debug, Clone, Serialize)]
pub struct ServerDetail {
    pub path: String,
    #[serde(flatten)]
    pub record: backstop_format::manifest::ServerDatabase,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseDetail {
    pub path: String,
    #[serde(flatten)]
    pub meta: DatabaseMeta,
}

/// A workbook of a snapshot, read as tables when it was backed up.
#[derive(Debug, Clone, Serialize)]
pub struct WorkbookDetail {
    pub path: String,
    #[serde(flatten)]
    pub meta: backstop_format::manifest::WorkbookMeta,
}

impl App {
    /// The engine's status report.
    pub async fn status_report(&self) -> ApiResult<StatusReport> {
        let setup = self.setup.clone();
        blocking(move || {
            Ok(backstop_engine::status::status(
                &setup.repo,
                &StatusOptions {
                    now: Timestamp::now(),
                    time_zone: setup.time_zone.clone(),
                    sources: setup.expectations(),
                },
            )?)
        })
        .await
    }

    /// The status page's data.
    pub async fn overview(&self) -> ApiResult<Overview> {
        let report = self.status_report().await?;
        let setup = self.setup.clone();
        let state = self.state.clone();
        let names: Vec<String> = report.sources.iter().map(|s| s.name.clone()).collect();
        let recorded_failures: Vec<Option<Timestamp>> = report
            .sources
            .iter()
            .map(|s| s.last_failure.as_ref().map(|f| f.time))
            .collect();
        let (size, free, failures, sizes, histories, waiting) = blocking(move || {
            let size: u64 = setup.repo.pack_sizes()?.values().sum();
            let pre_change = ListFilter {
                kind: Some(backstop_format::manifest::BackupKind::PreChange),
                ..ListFilter::default()
            };
            let waiting: Vec<String> =
                list_snapshots(&setup.repo, &pre_change, &setup.lifecycle, Timestamp::now())?
                    .0
                    .into_iter()
                    .filter(|r| {
                        r.pre_change
                            .as_ref()
                            .is_some_and(|p| p.state == "pending-verification")
                    })
                    .map(|r| r.source)
                    .collect();
            let free = setup.repo.free_space();
            let now = Timestamp::now();
            state.record_size(&day_of(now, &setup.time_zone), now, size)?;
            let sizes = state.sizes(HISTORY_DAYS)?;
            let mut failures = Vec::new();
            let mut histories = Vec::new();
            let since = now - jiff::SignedDuration::from_hours(24 * JOB_HISTORY_DAYS);
            // Snapshots of the last days, by source: those from the command line join the
            // daemon's backups (safety snapshots of restores are not backups).
            let mut made: std::collections::HashMap<String, Vec<Timestamp>> =
                std::collections::HashMap::new();
            for (_, snap) in setup.repo.snapshots()?.readable {
                if snap.time >= since
                    && snap.kind != backstop_format::manifest::BackupKind::PreRestore
                {
                    made.entry(snap.source.name).or_default().push(snap.time);
                }
            }
            for (n, failed) in names.iter().zip(recorded_failures) {
                let mut history = source_history(&state, n, now)?;
                let made = made.get(n).map(Vec::as_slice).unwrap_or_default();
                add_command_line_backups(&mut history, made, failed, since);
                histories.push(history);
                failures.push(
                    state
                        .last_job(n, "backup", None)?
                        .filter(|j| j.outcome == "failed")
                        .map(|j| LastFailure {
                            time: j.finished.unwrap_or(j.started),
                            message: j.message,
                        }),
                );
            }
            Ok((size, free, failures, sizes, histories, waiting))
        })
        .await?;
        let recent = self.runner.recent();
        let active: Vec<JobView> = recent
            .iter()
            .filter(|j| matches!(j.state, "queued" | "running"))
            .cloned()
            .collect();
        let mut attention = report.needs_attention();
        let sources = report
            .sources
            .into_iter()
            .zip(failures)
            .zip(histories)
            .map(|((mut status, job_failure), history)| {
                let spec = self.setup.source(&status.name);
                let last_failure = last_failure(&status, job_failure);
                if last_failure.is_some() {
                    attention = true;
                }
                let copies = self.runner.copies(&status.name);
                if let Some(c) = copies.as_ref().filter(|c| !c.problems.is_empty()) {
                    attention = true;
                    if status.state == "ok" {
                        status.state = "copies";
                    }
                    status.problems.extend(c.problems.iter().cloned());
                }
                SourceOverview {
                    kind: spec.map(|s| s.kind.clone()).unwrap_or_default(),
                    description: spec.and_then(|s| s.description.clone()),
                    backup_running: active
                        .iter()
                        .any(|j| j.kind == "backup" && j.source == status.name),
                    restorable: spec.is_some_and(|s| s.restorable_in_place()),
                    last_failure,
                    copies,
                    history,
                    waiting_for_confirmation: waiting.iter().filter(|s| **s == status.name).count(),
                    status,
                }
            })
            .collect();
        Ok(Overview {
            now: report.now,
            host: self.setup.host.clone(),
            version: env!("CARGO_PKG_VERSION"),
            repository: RepositoryInfo {
                location: self.setup.repo_location.clone(),
                encrypted: self.setup.repo.is_encrypted(),
                size_bytes: size,
                free_bytes: free,
                sizes,
            },
            scheduler: SchedulerInfo {
                state: if self.runner.accepting() {
                    "running"
                } else {
                    "stopping"
                },
                started: self.started,
                time_zone: self
                    .setup
                    .time_zone
                    .iana_name()
                    .unwrap_or("system")
                    .to_string(),
            },
            sources,
            attention,
            unreadable_snapshots: report.unreadable_snapshots,
            active_jobs: active,
        })
    }

    /// Snapshots, optionally of one source.
    pub async fn snapshots(&self, filter: ListFilter) -> ApiResult<Vec<SnapshotRow>> {
        let setup = self.setup.clone();
        blocking(move || {
            Ok(list_snapshots(&setup.repo, &filter, &setup.lifecycle, Timestamp::now())?.0)
        })
        .await
    }

    /// One snapshot with its items, databases and records.
    pub async fn snapshot_detail(&self, spec: String) -> ApiResult<SnapshotDetail> {
        let setup = self.setup.clone();
        blocking(move || {
            let repo = &setup.repo;
            let (id, snap) = repo.find_snapshot_at(
                &spec,
                &backstop_engine::SpecClock {
                    now: backstop_format::Timestamp::now(),
                    time_zone: setup.time_zone.clone(),
                },
            )?;
            let (rows, _) = list_snapshots(
                repo,
                &ListFilter {
                    source: Some(snap.source.name.clone()),
                    ..ListFilter::default()
                },
                &setup.lifecycle,
                Timestamp::now(),
            )?;
            let row = rows
                .into_iter()
                .find(|r| r.id == id)
                .ok_or_else(|| anyhow::anyhow!("snapshot {} vanished", id.short()))?;
            let items = Indexed::load(repo)?.loader().read_items(&snap.items)?;
            let databases = items
                .iter()
                .filter_map(|i| {
                    Some(DatabaseDetail {
                        path: i.path.clone(),
                        meta: i.database.clone()?,
                    })
                })
                .collect();
            let workbooks = items
                .iter()
                .filter_map(|i| {
                    Some(WorkbookDetail {
                        path: i.path.clone(),
                        meta: i.workbook.clone()?,
                    })
                })
                .collect();
            let servers = items
                .iter()
                .filter_map(|i| {
                    Some(ServerDetail {
                        path: i.path.clone(),
                        record: i.server.clone()?,
                    })
                })
                .collect();
            let records = repo
                .records()?
                .into_iter()
                .filter(|r| r.snapshot == id)
                .collect();
            Ok(SnapshotDetail {
                row,
                parent: snap.parent.map(|p| p.to_string()),
                program: snap.program.clone(),
                items_total: items.len(),
                items: items
                    .iter()
                    .take(1000)
                    .map(|i| ItemRow {
                        path: i.path.clone(),
                        kind: format!("{:?}", i.kind).to_lowercase(),
                        size: i.size,
                    })
                    .collect(),
                databases,
                workbooks,
                servers,
                records,
                snapshot_warnings: snap.warnings.clone(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// Snapshots made while a daemon backup job ran are its own; the others, and a recorded
    /// failure outside a job, are backups from the command line, in time order.
    #[test]
    fn backups_outside_the_daemons_jobs_are_the_command_lines() {
        let job = |s: i64, seconds: f64, ok: bool| JobPoint {
            started: at(s),
            seconds,
            ok,
            by: BY_DAEMON,
        };
        let mut history = SourceHistory {
            backups: vec![job(100, 10.0, true), job(500, 3.0, false)],
            drills: Vec::new(),
        };
        // The daemon's snapshot at 105 and its failure recorded at 503 (as its job ends); the
        // command line's at 300 and 900, and one too old to show.
        add_command_line_backups(
            &mut history,
            &[at(-5000), at(105), at(300), at(900)],
            Some(at(503)),
            at(0),
        );
        let seen: Vec<(i64, bool, &str)> = history
            .backups
            .iter()
            .map(|b| (b.started.as_second() - 1_800_000_000, b.ok, b.by))
            .collect();
        assert_eq!(
            seen,
            [
                (100, true, BY_DAEMON),
                (300, true, BY_COMMAND_LINE),
                (500, false, BY_DAEMON),
                (900, true, BY_COMMAND_LINE),
            ]
        );
        // A failure recorded by the command line, with no job around it, is drawn too.
        add_command_line_backups(&mut history, &[], Some(at(2000)), at(0));
        assert_eq!(
            history.backups.last().map(|b| (b.ok, b.by)),
            Some((false, BY_COMMAND_LINE))
        );
    }
}
