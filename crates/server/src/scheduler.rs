//! The scheduler: which jobs are due, from the repository (last backups, drills) and the
//! daemon's job history, at a time given by a [`Clock`].
//!
//! Rules:
//! - a source with `every` or `cron` is backed up when its next run after its last snapshot
//!   has come; a run missed while the daemon was down is made up once, not once per miss;
//! - after a failure, the same job is retried after a quarter of its period (at least one
//!   minute, at most an hour), not at every tick;
//! - restore drills: each source's newest snapshot, when the newest drill is older than the
//!   drill schedule allows (a source never drilled is drilled after its first backup);
//! - structure check, full data check, forget and prune: repository-wide, by the time of
//!   their last run in the job history; on a daemon's first start they count from then, so a
//!   new daemon does not start with a full read of the repository;
//! - a copy whose newest job failed is tried again after the same delay as a failed backup;
//! - each source's 3-2-1 status is checked again when it is an hour old (besides after each
//!   of its copies);
//! - nothing is submitted twice: a job already queued or running is not due.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;
use backstop_policy::Schedule;
use jiff::SignedDuration;

use crate::jobs::{JobSpec, Runner};
use crate::notify::Notifier;
use crate::state::State;

/// Where the scheduler gets the time; tests pass their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// What the scheduler knows when it decides.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Newest snapshot time per source.
    pub last_backup: HashMap<String, Timestamp>,
    /// Newest restore drill (passed or not) per source, from the repository's records.
    pub last_drill: HashMap<String, Timestamp>,
    /// Newest finished run per (kind, source) in the job history, and whether it failed.
    pub last_run: HashMap<(String, String), (Timestamp, bool)>,
    /// Jobs queued or running: (kind, source).
    pub pending: HashSet<(String, String)>,
    /// Copies whose newest job failed, by (source, position in its `copy_to`): when it
    /// finished.
    pub copy_failed: HashMap<(String, usize), Timestamp>,
    /// When this daemon first started (from the state file): the origin of repository-wide
    /// tasks that never ran.
    pub first_start: Option<Timestamp>,
    /// The shortest Object Lock of the copies' destinations, as their newest copy jobs found
    /// them: their retentions are lengthened with the main repository's.
    pub copy_object_lock: Option<backstop_format::config::ObjectLock>,
}

impl Facts {
    /// When the source was last backed up: its newest snapshot, or a later successful backup
    /// job that recorded none (nothing had changed and the source skips unchanged backups).
    pub fn last_success(&self, source: &str) -> Option<Timestamp> {
        let snapshot = self.last_backup.get(source).copied();
        let job = self
            .last_run
            .get(&("backup".to_string(), source.to_string()))
            .filter(|(_, failed)| !failed)
            .map(|(t, _)| *t);
        snapshot.max(job)
    }
}

/// The retry delay of a failed copy of a source that is only backed up on demand.
const COPY_RETRY: SignedDuration = SignedDuration::from_mins(15);

/// How long a source's 3-2-1 status is trusted before the scheduler checks it again: a
/// destination that broke between backups shows within this time.
pub const COPIES_CHECK: SignedDuration = SignedDuration::from_hours(1);

/// The retry delay after a failure: a quarter period, between one minute and one hour.
fn retry_after(schedule: &Schedule, now: Timestamp, tz: &jiff::tz::TimeZone) -> SignedDuration {
    (schedule.period(now, tz) / 4)
        .max(SignedDuration::from_mins(1))
        .min(SignedDuration::from_hours(1))
}

/// The jobs due at `now`, in the order to submit them: backups, then drills, then checks and
/// retention.
pub fn due(setup: &crate::setup::Setup, facts: &Facts, now: Timestamp) -> Vec<JobSpec> {
    let tz = &setup.time_zone;
    let mut out = Vec::new();
    let pending = |kind: &str, source: &str| {
        facts
            .pending
            .contains(&(kind.to_string(), source.to_string()))
    };
    let failed_recently = |kind: &str, source: &str, schedule: &Schedule| {
        matches!(
            facts.last_run.get(&(kind.to_string(), source.to_string())),
            Some((at, true)) if at.saturating_add(retry_after(schedule, now, tz)).unwrap_or(Timestamp::MAX) > now
        )
    };
    for s in &setup.sources {
        let Some(schedule) = &s.schedule else {
            continue;
        };
        let last = facts.last_success(&s.name);
        if schedule.is_due(last, now, tz)
            && !pending("backup", &s.name)
            && !failed_recently("backup", &s.name, schedule)
        {
            out.push(JobSpec::Backup {
                source: s.name.clone(),
                kind: BackupKind::Scheduled,
                description: None,
                ticket: None,
                tags: vec![],
            });
        }
    }
    // A failed copy is tried again after the same delay as a failed backup (a quarter of the
    // source's period; a quarter of an hour for a source backed up on demand), not only after
    // the next backup.
    for s in &setup.sources {
        for to in 0..s.copy_to.len() {
            let Some(at) = facts.copy_failed.get(&(s.name.clone(), to)) else {
                continue;
            };
            let delay = s
                .schedule
                .as_ref()
                .map_or(COPY_RETRY, |sch| retry_after(sch, now, tz));
            let again = at.saturating_add(delay).unwrap_or(Timestamp::MAX);
            if again <= now && !pending("copy", &s.name) && !pending("backup", &s.name) {
                out.push(JobSpec::Copy {
                    source: s.name.clone(),
                    to,
                });
            }
        }
    }
    if let Some(schedule) = &setup.tasks.drill {
        for s in &setup.sources {
            // Nothing to drill before the first backup.
            if !facts.last_backup.contains_key(&s.name) {
                continue;
            }
            let last = facts.last_drill.get(&s.name).copied();
            if schedule.is_due(last, now, tz)
                && !pending("drill", &s.name)
                && !pending("backup", &s.name)
                && !failed_recently("drill", &s.name, schedule)
            {
                out.push(JobSpec::Drill {
                    source: s.name.clone(),
                });
            }
        }
    }
    // The shortest lock of the main repository and the copies sets the pace.
    let lengthen = lengthening(
        [setup.repo.config().object_lock, facts.copy_object_lock]
            .into_iter()
            .flatten()
            .min_by_key(|l| l.days),
    );
    let tasks = [
        (&lengthen, JobSpec::ExtendRetention),
        (&setup.tasks.verify, JobSpec::Verify { read_data: false }),
        (
            &setup.tasks.verify_data,
            JobSpec::Verify { read_data: true },
        ),
        (&setup.tasks.forget, JobSpec::Forget),
        (&setup.tasks.prune, JobSpec::Prune),
    ];
    for (schedule, spec) in tasks {
        let Some(schedule) = schedule else {
            continue;
        };
        let kind = spec.kind();
        let last = facts
            .last_run
            .get(&(kind.to_string(), String::new()))
            .map(|(t, _)| *t)
            .or(facts.first_start);
        if schedule.is_due(last, now, tz) && !pending(kind, "") {
            out.push(spec);
        }
    }
    out
}

/// How often a repository with an object lock has its retentions lengthened: every half of
/// its days, so that nothing it holds is ever left unlocked (engine `ops::object_lock`), even
/// after one failed run. `None` without an object lock.
pub fn lengthening(lock: Option<backstop_format::config::ObjectLock>) -> Option<Schedule> {
    lock.map(|lock| Schedule::Every(SignedDuration::from_hours(12 * i64::from(lock.days.max(1)))))
}

/// Runs the schedule: gathers the facts, submits what is due, sends overdue notices.
pub struct Scheduler {
    runner: Arc<Runner>,
    state: Arc<State>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    /// Sources already reported overdue, with the last backup they were overdue after.
    overdue_sent: Mutex<HashMap<String, Option<Timestamp>>>,
}

impl Scheduler {
    pub fn new(
        runner: Arc<Runner>,
        state: Arc<State>,
        notifier: Arc<Notifier>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            runner,
            state,
            notifier,
            clock,
            overdue_sent: Mutex::new(HashMap::new()),
        }
    }

    /// The facts now: from the repository, the job history and the runner.
    pub fn facts(&self) -> anyhow::Result<Facts> {
        let setup = self.runner.setup();
        let repo = &setup.repo;
        let snaps = repo.snapshots()?.readable;
        let marks = repo.marks()?;
        let mut facts = Facts::default();
        for (id, s) in &snaps {
            let e = facts
                .last_backup
                .entry(s.source.name.clone())
                .or_insert(s.time);
            *e = (*e).max(s.time);
            if let Some(d) = marks.get(id).and_then(|m| m.drill.as_ref()) {
                let e = facts
                    .last_drill
                    .entry(s.source.name.clone())
                    .or_insert(d.time);
                *e = (*e).max(d.time);
            }
        }
        let mut kinds: Vec<(&str, String)> = Vec::new();
        for s in &setup.sources {
            kinds.push(("backup", s.name.clone()));
            kinds.push(("drill", s.name.clone()));
        }
        for k in ["verify", "verify-data", "forget", "prune", "object-lock"] {
            kinds.push((k, String::new()));
        }
        for (kind, source) in kinds {
            if let Some(j) = self.state.last_job(&source, kind, None)?
                && j.outcome != "running"
            {
                let at = j.finished.unwrap_or(j.started);
                facts
                    .last_run
                    .insert((kind.to_string(), source), (at, j.outcome != "ok"));
            }
        }
        for s in setup.sources.iter().filter(|s| !s.copy_to.is_empty()) {
            let runs = crate::copying::copy_runs(&self.state, &s.name)?;
            for (to, dest) in s.copy_to.iter().enumerate() {
                let Some(r) = runs.get(&dest.location.to_string()) else {
                    continue;
                };
                if r.failed {
                    facts
                        .copy_failed
                        .insert((s.name.clone(), to), r.last_attempt);
                }
                if let Some(l) = r.object_lock
                    && facts.copy_object_lock.is_none_or(|f| l.days < f.days)
                {
                    facts.copy_object_lock = Some(l);
                }
            }
        }
        for v in self.runner.recent() {
            if matches!(v.state, "queued" | "running") {
                facts.pending.insert((v.kind.to_string(), v.source.clone()));
            }
        }
        facts.first_start = Some(self.state.first_start(self.clock.now())?);
        Ok(facts)
    }

    /// Submits the startup backups (kind `startup`) when the setup asks for them. They also
    /// make up a scheduled run missed while the daemon was down.
    pub fn startup(&self) {
        let setup = self.runner.setup().clone();
        if !setup.tasks.startup_backup {
            return;
        }
        for s in &setup.sources {
            let spec = JobSpec::Backup {
                source: s.name.clone(),
                kind: BackupKind::Startup,
                description: Some("backup when the daemon started".into()),
                ticket: None,
                tags: vec![],
            };
            if let Err(e) = self.runner.submit(spec, "startup") {
                tracing::warn!("startup backup of {} not started: {e}", s.name);
            }
        }
    }

    /// One round: submit what is due now. Returns the jobs submitted.
    pub fn tick(&self) -> Vec<JobSpec> {
        let now = self.clock.now();
        let facts = match self.facts() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("scheduler cannot read the repository: {e:#}");
                return vec![];
            }
        };
        self.check_overdue(&facts, now);
        let mut submitted = Vec::new();
        for spec in due(self.runner.setup(), &facts, now) {
            match self.runner.submit(spec.clone(), "schedule") {
                Ok(_) => submitted.push(spec),
                Err(e) => tracing::warn!("scheduled {} not started: {e}", spec.kind()),
            }
        }
        // The 3-2-1 status of each source that has one, when it is older than COPIES_CHECK
        // (or was never checked since the daemon started); a source whose copy is running is
        // checked after it.
        for s in &self.runner.setup().sources {
            let copying = facts.pending.contains(&("copy".into(), s.name.clone()))
                || submitted
                    .iter()
                    .any(|j| matches!(j, JobSpec::Copy { source, .. } if source == &s.name));
            if !s.rules.apply(s.copy_to.len()) || copying {
                continue;
            }
            let fresh = self
                .runner
                .copies_checked(&s.name)
                .is_some_and(|t| t.saturating_add(COPIES_CHECK).unwrap_or(Timestamp::MAX) > now);
            if !fresh {
                self.runner.check_copies(&s.name, now);
            }
        }
        submitted
    }

    /// Notifies once per source and missed backup when a source becomes overdue.
    fn check_overdue(&self, facts: &Facts, now: Timestamp) {
        let setup = self.runner.setup();
        let mut sent = self.overdue_sent.lock().expect("overdue lock");
        for s in &setup.sources {
            let Some(schedule) = &s.schedule else {
                continue;
            };
            let last = facts.last_success(&s.name);
            if last.is_none() {
                continue;
            }
            let overdue = schedule.overdue_at(last, now, &setup.time_zone) <= now;
            if overdue && sent.get(&s.name) != Some(&last) {
                sent.insert(s.name.clone(), last);
                self.notifier.overdue(setup, &s.name, last);
            } else if !overdue {
                sent.remove(&s.name);
            }
        }
    }

    /// Ticks every `interval` until `stop` resolves.
    pub async fn run(
        self: Arc<Self>,
        interval: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let me = self.clone();
            // Reading the repository blocks: keep it off the async threads.
            let _ = tokio::task::spawn_blocking(move || me.tick()).await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
