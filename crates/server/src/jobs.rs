//! Jobs: backups, verification, drills, retention and restores, run one at a time per source
//! and ordered against each other repository-wide.
//!
//! Every job takes its source's lock (one job per source at a time) and the repository lock:
//! shared for jobs that only add (backup, verify, drill, restore), exclusive for those that
//! remove (forget, prune). Conflicting jobs wait for each other (the locks are fair: a waiting
//! prune is not starved by a stream of backups) instead of failing on the engine's repository
//! lock. The engine call itself runs on a blocking thread.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use backstop_app::backup::{BackupRequest, SkipUnchanged, SourceSettings};
use backstop_app::copies::SourceCopies;
use backstop_app::outcome::{self, Verdict};
use backstop_app::repository::CacheUse;
use backstop_app::restore::{DatabaseRequest, InPlacePlan};
use backstop_app::retention::prune_options;
use backstop_app::snapshots::drill_targets;
use backstop_app::verify::{drill_options, verify_options};
use backstop_engine::database::{TableChange, restore_database};
use backstop_engine::drill::restore_drill;
use backstop_engine::{Indexed, Progress, Repository};
use backstop_format::manifest::BackupKind;
use backstop_format::{SnapshotId, Timestamp};
use backstop_policy::{format_bytes, format_interval};
use serde::Serialize;
use tokio::sync::{Mutex as AsyncMutex, RwLock};

use crate::notify::Notifier;
use crate::setup::Setup;
use crate::state::{JobFigures, JobRecord, PhaseFigures, State};

/// How many finished jobs are kept in memory for the page and `GET /api/v1/jobs`.
const RECENT_JOBS: usize = 200;

/// How many jobs may wait per source (or repository-wide); more are refused.
const MAX_QUEUED: usize = 10;

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    Backup {
        source: String,
        kind: BackupKind,
        description: Option<String>,
        ticket: Option<String>,
        tags: Vec<String>,
    },
    /// Check the repository (all data with `read_data`).
    Verify {
        read_data: bool,
    },
    /// Restore drill of the source's newest snapshot.
    Drill {
        source: String,
    },
    /// Apply retention to every source.
    Forget,
    Prune,
    /// Lengthen the Object Lock retention of every object (a repository made with
    /// `--object-lock-days`; scheduled every half of its days).
    ExtendRetention,
    /// Restore a database snapshot into the live database, a safety snapshot first.
    Restore {
        snapshot: SnapshotId,
        source: String,
        allow_schema_change: bool,
    },
    /// Copy the source's snapshots that the destination lacks to one of its `copy_to`
    /// repositories (by its position there); submitted after each of its backups.
    Copy {
        source: String,
        to: usize,
    },
}

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Backup { .. } => "backup",
            JobSpec::Verify { read_data: false } => "verify",
            JobSpec::Verify { read_data: true } => "verify-data",
            JobSpec::Drill { .. } => "drill",
            JobSpec::Forget => "forget",
            JobSpec::Prune => "prune",
            JobSpec::ExtendRetention => "object-lock",
            JobSpec::Restore { .. } => "restore",
            JobSpec::Copy { .. } => "copy",
        }
    }

    /// The source a job belongs to; empty for repository-wide jobs.
    pub fn source(&self) -> &str {
        match self {
            JobSpec::Backup { source, .. }
            | JobSpec::Drill { source }
            | JobSpec::Restore { source, .. }
            | JobSpec::Copy { source, .. } => source,
            _ => "",
        }
    }

    /// Jobs that remove data need the repository to themselves.
    fn exclusive(&self) -> bool {
        matches!(self, JobSpec::Forget | JobSpec::Prune)
    }
}

/// A job as the page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub kind: &'static str,
    pub source: String,
    /// Who asked: `schedule`, `startup`, `user:NAME`, `token:NAME`.
    pub trigger: String,
    /// `queued`, `running`, `ok`, `failed` or `abandoned`.
    pub state: &'static str,
    /// The phase running (`backup`, `restore`, `read data`...), empty before the first; a
    /// finished job keeps its last one with its figures.
    pub phase: String,
    /// When the phase began.
    pub phase_started: Option<Timestamp>,
    pub bytes_done: u64,
    /// The bytes the phase is expected to process, when known.
    pub bytes_total: Option<u64>,
    /// Whether `bytes_total` and `items_total` are estimates (a backup's: the previous
    /// snapshot's size, or a database's as its capture began) rather than exact.
    pub estimated: bool,
    /// Items (files, tables...) the phase went through, and how many are expected when known.
    pub items_done: u64,
    pub items_total: Option<u64>,
    /// The phase's rate so far, from its first second on (the average, once finished).
    pub bytes_per_second: Option<u64>,
    /// Seconds left at that rate, while the total is known and not reached.
    pub seconds_left: Option<u64>,
    /// What a queued job waits for, in words (`the backup of shop to finish`).
    pub waiting_for: Option<String>,
    /// The description given with a backup.
    pub description: Option<String>,
    /// The phases before the current one that processed anything, with their figures.
    pub phases: Vec<PhaseFigures>,
    /// The figures above in words: `backup: 412.5 MiB of about 1.2 GiB (34%), 85.2 MiB/s,
    /// about 9s left`, `waiting for the prune to finish`.
    pub progress: String,
    pub queued: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// One line: what happened.
    pub message: String,
    /// The engine's summary (a backup's, a restore's...), when finished.
    pub result: Option<serde_json::Value>,
}

impl JobView {
    /// The job's progress in words (see [`JobView::progress`]).
    fn progress_words(&self) -> String {
        if self.state == "queued" {
            return match &self.waiting_for {
                Some(w) => format!("Waiting for {w}"),
                None => "Starting".into(),
            };
        }
        if self.phase.is_empty() {
            return if self.state == "running" {
                "Starting".into()
            } else {
                String::new()
            };
        }
        let about = if self.estimated { "about " } else { "" };
        let mut parts = Vec::new();
        match self.bytes_total {
            Some(total) if self.finished.is_none() && total > 0 => {
                let pct = (u128::from(self.bytes_done.min(total)) * 100 / u128::from(total)) as u64;
                parts.push(format!(
                    "{} of {about}{} ({pct}%)",
                    format_bytes(self.bytes_done),
                    format_bytes(total)
                ));
            }
            _ if self.bytes_done > 0 || self.finished.is_some() => {
                parts.push(format_bytes(self.bytes_done));
            }
            _ => {}
        }
        match self.items_total {
            Some(total) if self.finished.is_none() && total > 1 => {
                parts.push(format!("{} of {about}{total} items", self.items_done));
            }
            _ if self.items_done > 1 => parts.push(format!("{} items", self.items_done)),
            _ => {}
        }
        if let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) {
            let average = if self.finished.is_some() {
                " on average"
            } else {
                ""
            };
            parts.push(format!("{}/s{average}", format_bytes(rate)));
        }
        if let Some(left) = self.seconds_left {
            parts.push(format!(
                "about {} left",
                format_interval(jiff::SignedDuration::from_secs(left as i64))
            ));
        }
        let current = if parts.is_empty() {
            self.phase.clone()
        } else {
            format!("{}: {}", self.phase, parts.join(", "))
        };
        // A finished job says what each of its phases did, in order.
        let mut all: Vec<String> = match self.finished {
            Some(_) => self.phases.iter().map(PhaseFigures::words).collect(),
            None => Vec::new(),
        };
        all.push(current);
        upper_first(&all.join("; "))
    }
}

/// `s` with its first letter in upper case.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The figures a job from the history finished with, in words (as [`JobView::progress`]).
pub fn record_progress(rec: &JobRecord) -> String {
    let f = &rec.figures;
    let v = JobView {
        id: String::new(),
        kind: "",
        source: String::new(),
        trigger: String::new(),
        state: "ok",
        phase: f.phase.clone(),
        phase_started: None,
        bytes_done: f.bytes_done,
        bytes_total: None,
        estimated: false,
        items_done: f.items_done,
        items_total: None,
        bytes_per_second: None,
        seconds_left: None,
        waiting_for: None,
        description: None,
        phases: f.phases.clone(),
        progress: String::new(),
        queued: rec.started,
        started: Some(rec.started),
        finished: rec.finished.or(Some(rec.started)),
        message: String::new(),
        result: None,
    };
    v.progress_words()
}

/// A job in flight; also its progress sink.
#[derive(Debug)]
pub struct Job {
    pub spec: JobSpec,
    view: Mutex<JobView>,
    bytes_done: AtomicU64,
    items_done: AtomicU64,
    done: tokio::sync::watch::Sender<bool>,
}

impl Job {
    pub fn view(&self) -> JobView {
        let mut v = self.view.lock().expect("job view lock").clone();
        v.bytes_done = self.bytes_done.load(Ordering::Relaxed);
        v.items_done = self.items_done.load(Ordering::Relaxed);
        // The rate from the phase's first second on, and the time left at that rate.
        if let Some(from) = v.phase_started {
            let to = v.finished.unwrap_or_else(Timestamp::now);
            let ms = to.duration_since(from).as_millis();
            // A running phase's rate from its first second on; a finished one's, always.
            if ms >= 1000 || (v.finished.is_some() && ms > 0) {
                let rate = (u128::from(v.bytes_done) * 1000 / ms as u128) as u64;
                v.bytes_per_second = Some(rate);
                v.seconds_left = match (v.finished, v.bytes_total) {
                    (None, Some(total)) if rate > 0 && total > v.bytes_done => {
                        Some((total - v.bytes_done).div_ceil(rate))
                    }
                    _ => None,
                };
            }
        }
        v.progress = v.progress_words();
        v
    }

    pub fn id(&self) -> String {
        self.view.lock().expect("job view lock").id.clone()
    }

    /// Waits until the job has finished (or was abandoned).
    pub async fn finished(&self) -> JobView {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
        self.view()
    }

    fn update(&self, f: impl FnOnce(&mut JobView)) {
        f(&mut self.view.lock().expect("job view lock"));
    }
}

impl Progress for Job {
    fn phase(&self, name: &str, total: Option<u64>) {
        let bytes = self.bytes_done.swap(0, Ordering::Relaxed);
        let items = self.items_done.swap(0, Ordering::Relaxed);
        self.update(|v| {
            if !v.phase.is_empty() && (bytes > 0 || items > 0) {
                let seconds = v.phase_started.map_or(0.0, |t| {
                    Timestamp::now().duration_since(t).as_secs_f64().max(0.0)
                });
                v.phases.push(PhaseFigures {
                    name: std::mem::take(&mut v.phase),
                    bytes,
                    items,
                    seconds,
                });
            }
            v.phase = name.to_string();
            v.phase_started = Some(Timestamp::now());
            v.bytes_total = total;
            v.items_total = None;
            v.estimated = false;
        });
    }

    fn estimate(&self, bytes: u64, items: Option<u64>) {
        self.update(|v| {
            v.bytes_total = Some(bytes);
            v.items_total = items;
            v.estimated = true;
        });
    }

    fn bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    fn item(&self, _path: &str) {
        self.items_done.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the queued job `i` of `jobs` (oldest first; `views` are their views) waits for, in
/// words: the jobs before it that it may not run beside (the same source, or either needs the
/// repository to itself; the locks are fair, so it runs after all of them), the running one
/// named first. `None` when it is not queued or nothing is in its way (it is starting).
fn waiting_for(jobs: &VecDeque<Arc<Job>>, views: &[JobView], i: usize) -> Option<String> {
    if views[i].state != "queued" {
        return None;
    }
    let me = &jobs[i].spec;
    let ahead: Vec<usize> = (0..i)
        .filter(|&k| {
            let other = &jobs[k].spec;
            matches!(views[k].state, "queued" | "running")
                && (other.source() == me.source() || other.exclusive() || me.exclusive())
        })
        .collect();
    let first = ahead
        .iter()
        .copied()
        .find(|&k| views[k].state == "running")
        .or(ahead.first().copied())?;
    let v = &views[first];
    let what = match v.kind {
        "verify" => "verification",
        "verify-data" => "verification of all data",
        "drill" => "restore drill",
        "forget" => "retention run (forget)",
        "object-lock" => "lengthening of the object-lock retentions",
        other => other,
    };
    let mut words = match (v.source.is_empty(), v.state) {
        (true, "running") => format!("the {what} to finish"),
        (true, _) => format!("the {what} queued before it"),
        (false, "running") => format!("the {what} of {} to finish", v.source),
        (false, _) => format!("the {what} of {} queued before it", v.source),
    };
    if ahead.len() > 1 {
        words.push_str(&format!(
            " (and {} more job{} before it)",
            ahead.len() - 1,
            if ahead.len() == 2 { "" } else { "s" }
        ));
    }
    Some(words)
}

/// The views of `jobs` (oldest first), each queued one saying what it waits for.
fn views(jobs: &VecDeque<Arc<Job>>) -> Vec<JobView> {
    let mut views: Vec<JobView> = jobs.iter().map(|j| j.view()).collect();
    for i in 0..views.len() {
        views[i].waiting_for = waiting_for(jobs, &views, i);
        views[i].progress = views[i].progress_words();
    }
    views
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the daemon is shutting down: try again once it has restarted")]
    ShuttingDown,
    #[error(
        "{0} jobs are already waiting for this source or the repository: wait until some have run"
    )]
    QueueFull(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// Runs jobs.
pub struct Runner {
    setup: Arc<Setup>,
    state: Arc<State>,
    notifier: Arc<Notifier>,
    jobs: Mutex<VecDeque<Arc<Job>>>,
    source_locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    repo_lock: Arc<RwLock<()>>,
    accepting: AtomicBool,
    handles: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each source's 3-2-1 status, as last checked, with the time of the check: after each of
    /// its copy jobs, after each backup of a source with rules but no `copy_to`, and by the
    /// scheduler when the last check is older than `scheduler::COPIES_CHECK` (the page reads
    /// it; it never opens the destinations itself, which could take seconds for a bucket that
    /// is down).
    copies: Mutex<HashMap<String, (Timestamp, SourceCopies)>>,
}

impl Runner {
    /// `source`'s 3-2-1 status as last checked, if it was.
    pub fn copies(&self, source: &str) -> Option<SourceCopies> {
        let copies = self.copies.lock().expect("copies lock");
        copies.get(source).map(|(_, c)| c.clone())
    }

    /// When `source`'s 3-2-1 status was last checked, if it was.
    pub fn copies_checked(&self, source: &str) -> Option<Timestamp> {
        let copies = self.copies.lock().expect("copies lock");
        copies.get(source).map(|(t, _)| *t)
    }

    /// Checks `source`'s copies again at `now` (blocking: it opens each destination), with
    /// what the job history says of its copy jobs: a destination whose copies fail is a
    /// problem ("copy to offsite failing since ...") even while it still holds the newest
    /// snapshot.
    pub fn check_copies(&self, source: &str, now: Timestamp) {
        let Some(spec) = self.setup.source(source) else {
            return;
        };
        if !spec.rules.apply(spec.copy_to.len()) {
            return;
        }
        let main = backstop_app::repository::Location::resolve(
            Some(&self.setup.repo_location),
            &Default::default(),
        )
        .expect("a location given");
        let mut c = backstop_app::copies::source_copies(
            source,
            (&self.setup.repo, &main),
            &spec.copy_to,
            spec.rules,
            &backstop_app::repository::CacheUse::Default,
            now,
        );
        match crate::copying::copy_runs(&self.state, source) {
            Ok(runs) => {
                // The main repository is the first; the destinations follow in order.
                for st in c.repositories.iter_mut().skip(1) {
                    let Some(r) = runs.get(&st.location) else {
                        continue;
                    };
                    st.copy_failing_since = r.failing_since;
                    st.copy_error = r.error.clone();
                    if let Some(since) = r.failing_since {
                        let name = st.name.as_deref().unwrap_or(&st.location);
                        let when =
                            backstop_app::snapshots::local_time(since, &self.setup.time_zone);
                        let error = r.error.as_deref().unwrap_or("failed");
                        c.problems
                            .push(format!("copy to {name} failing since {when}: {error}"));
                    }
                }
            }
            Err(e) => tracing::warn!(source, "cannot read the copy jobs of the history: {e}"),
        }
        self.copies
            .lock()
            .expect("copies lock")
            .insert(source.to_owned(), (now, c));
    }

    pub fn new(setup: Arc<Setup>, state: Arc<State>, notifier: Arc<Notifier>) -> Self {
        Self {
            setup,
            state,
            notifier,
            jobs: Mutex::new(VecDeque::new()),
            source_locks: Mutex::new(HashMap::new()),
            repo_lock: Arc::new(RwLock::new(())),
            accepting: AtomicBool::new(true),
            handles: Mutex::new(Vec::new()),
            copies: Mutex::new(HashMap::new()),
        }
    }

    pub fn setup(&self) -> &Arc<Setup> {
        &self.setup
    }

    /// Checks a job and queues it. It starts once its locks are free.
    pub fn submit(self: &Arc<Self>, spec: JobSpec, trigger: &str) -> Result<Arc<Job>, SubmitError> {
        self.submit_merging(spec, trigger).map(|(job, _)| job)
    }

    /// [`Runner::submit`], except that a job equal to one still waiting to start is not queued
    /// again: the waiting one is returned, with `true`. At most [`MAX_QUEUED`] jobs wait per
    /// source.
    pub fn submit_merging(
        self: &Arc<Self>,
        spec: JobSpec,
        trigger: &str,
    ) -> Result<(Arc<Job>, bool), SubmitError> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        self.check(&spec)?;
        // Held until the new job is in the list, so two equal requests cannot both queue.
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let waiting: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| j.spec.source() == spec.source() && j.view().state == "queued")
            .collect();
        if let Some(same) = waiting.iter().find(|j| j.spec == spec) {
            return Ok(((*same).clone(), true));
        }
        if waiting.len() >= MAX_QUEUED {
            return Err(SubmitError::QueueFull(waiting.len()));
        }
        let id = format!(
            "{}-{}",
            Timestamp::now().as_second(),
            backstop_format::id::to_hex(&backstop_format::id::random_bytes::<4>())
        );
        let job = Arc::new(Job {
            view: Mutex::new(JobView {
                id,
                kind: spec.kind(),
                source: spec.source().to_string(),
                trigger: trigger.to_string(),
                state: "queued",
                phase: String::new(),
                phase_started: None,
                bytes_done: 0,
                bytes_total: None,
                estimated: false,
                items_done: 0,
                items_total: None,
                bytes_per_second: None,
                seconds_left: None,
                waiting_for: None,
                phases: Vec::new(),
                progress: String::new(),
                description: match &spec {
                    JobSpec::Backup { description, .. } => description.clone(),
                    _ => None,
                },
                queued: Timestamp::now(),
                started: None,
                finished: None,
                message: String::new(),
                result: None,
            }),
            spec,
            bytes_done: AtomicU64::new(0),
            items_done: AtomicU64::new(0),
            done: tokio::sync::watch::channel(false).0,
        });
        jobs.push_back(job.clone());
        while jobs.len() > RECENT_JOBS {
            let Some(pos) = jobs
                .iter()
                .position(|j| matches!(j.view().state, "ok" | "failed" | "abandoned"))
            else {
                break;
            };
            jobs.remove(pos);
        }
        drop(jobs);
        let me = self.clone();
        let j = job.clone();
        let handle = tokio::spawn(async move { me.run(j).await });
        let mut handles = self.handles.lock().expect("handles lock");
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
        Ok((job, false))
    }

    /// Rejects what cannot run before it is queued.
    fn check(&self, spec: &JobSpec) -> Result<(), SubmitError> {
        let src = spec.source();
        if !src.is_empty() && self.setup.source(src).is_none() {
            let known: Vec<&str> = self.setup.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(SubmitError::NotFound(format!(
                "no source {src:?} is configured (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if let JobSpec::Backup { kind, .. } = spec
            && *kind == BackupKind::PreRestore
        {
            return Err(SubmitError::Invalid(
                "pre-restore snapshots are made by restores themselves".into(),
            ));
        }
        if let JobSpec::Restore { source, .. } = spec
            && let Some(s) = self.setup.source(source)
            && s.live_path.is_none()
        {
            match &s.server {
                Some(server) => server
                    .can_replace()
                    .map_err(|e| SubmitError::Invalid(e.to_string()))?,
                None => {
                    return Err(SubmitError::Invalid(format!(
                        "source {source:?} has no live database to restore into: only database sources (SQLite, PostgreSQL, MariaDB) are restored in place; download a files snapshot from its page instead"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether new jobs are taken (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// The job with this id, if it is still in memory.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .iter()
            .find(|j| j.id() == id)
            .cloned()
    }

    /// Recent jobs, newest first.
    pub fn recent(&self) -> Vec<JobView> {
        let mut views = views(&self.jobs.lock().expect("jobs lock"));
        views.reverse();
        views
    }

    /// The job with this id as the page and the API show it: for a queued job, what it waits
    /// for.
    pub fn job_view(&self, id: &str) -> Option<JobView> {
        views(&self.jobs.lock().expect("jobs lock"))
            .into_iter()
            .find(|v| v.id == id)
    }

    /// Whether a job of this kind for this source is queued or running.
    pub fn pending(&self, kind: &str, source: &str) -> bool {
        self.jobs.lock().expect("jobs lock").iter().any(|j| {
            let v = j.view();
            v.kind == kind && v.source == source && matches!(v.state, "queued" | "running")
        })
    }

    /// Whether any job is queued or running.
    pub fn busy(&self) -> bool {
        self.jobs
            .lock()
            .expect("jobs lock")
            .iter()
            .any(|j| matches!(j.view().state, "queued" | "running"))
    }

    /// Stops taking jobs; queued jobs are abandoned, running ones finish. Returns when no job
    /// runs any more.
    pub async fn shutdown(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let handles: Vec<_> = std::mem::take(&mut *self.handles.lock().expect("handles lock"));
        for h in handles {
            let _ = h.await;
        }
    }

    fn source_lock(&self, source: &str) -> Arc<AsyncMutex<()>> {
        self.source_locks
            .lock()
            .expect("source locks")
            .entry(source.to_string())
            .or_default()
            .clone()
    }

    async fn run(self: Arc<Self>, job: Arc<Job>) {
        let source = job.spec.source().to_string();
        let source_lock = self.source_lock(&source);
        let _source_guard = source_lock.lock().await;
        let repo_lock = self.repo_lock.clone();
        let (_shared, _exclusive) = if job.spec.exclusive() {
            (None, Some(repo_lock.write().await))
        } else {
            (Some(repo_lock.read().await), None)
        };
        if !self.accepting.load(Ordering::SeqCst) {
            job.update(|v| {
                v.state = "abandoned";
                v.finished = Some(Timestamp::now());
                v.message = "abandoned: the daemon shut down before the job started".into();
            });
            self.persist(&job);
            job.done.send_replace(true);
            return;
        }
        job.update(|v| {
            v.state = "running";
            v.started = Some(Timestamp::now());
        });
        self.persist(&job);
        self.notifier.start(&self.setup, &job.view());
        let setup = self.setup.clone();
        let j = job.clone();
        let outcome = tokio::task::spawn_blocking(move || execute(&setup, &j.spec, &*j)).await;
        let (state, message, result) = match outcome {
            Ok(Ok(JobOutcome { verdict, result })) => (
                if verdict.passed { "ok" } else { "failed" },
                verdict.message,
                Some(result),
            ),
            // The page and the API show this: the engine's command-line remedies are left out.
            Ok(Err(e)) => (
                "failed",
                crate::api::without_cli_remedies(&format!("{e:#}")),
                None,
            ),
            Err(e) => {
                let message = format!("the job stopped unexpectedly: {e}");
                // `execute` records a backup's own errors; a backup that panicked is recorded here.
                if let JobSpec::Backup { source, .. } = &job.spec {
                    let (setup, source) = (self.setup.clone(), source.clone());
                    let why = anyhow::anyhow!("backing up {source}: {message}");
                    let _ = tokio::task::spawn_blocking(move || {
                        record_failure(&setup, &source, &why);
                    })
                    .await;
                }
                ("failed", message, None)
            }
        };
        job.update(|v| {
            v.state = state;
            v.finished = Some(Timestamp::now());
            v.message = message;
            v.result = result;
        });
        let view = job.view();
        tracing::info!(job = %view.id, kind = view.kind, source = %view.source, state, message = %view.message, "job finished");
        self.persist(&job);
        self.notifier.finished(&self.setup, &view);
        // A backup that saved a snapshot is copied to the source's `copy_to` repositories;
        // a copy that fails is caught up by the next one (each copies all the destination
        // lacks), and one still waiting is not queued twice.
        // The 3-2-1 status is checked again after each copy, and after each backup of a
        // source that has rules but nothing to copy to (after the job is done: it opens the
        // destinations).
        let check = match &job.spec {
            JobSpec::Copy { source, .. } => Some(source.clone()),
            JobSpec::Backup { source, .. }
                if self
                    .setup
                    .source(source)
                    .is_some_and(|s| s.copy_to.is_empty()) =>
            {
                Some(source.clone())
            }
            _ => None,
        };
        // A backup that found nothing changed and saved no snapshot (`skip_unchanged`) has
        // nothing to copy: a copy that failed before is retried by the scheduler.
        let saved = view
            .result
            .as_ref()
            .is_some_and(|r| r.get("skipped") != Some(&serde_json::Value::Bool(true)));
        if let (JobSpec::Backup { source, .. }, true) = (&job.spec, saved) {
            let targets = self.setup.source(source).map_or(0, |s| s.copy_to.len());
            for to in 0..targets {
                let spec = JobSpec::Copy {
                    source: source.clone(),
                    to,
                };
                if let Err(e) = self.submit_merging(spec, "after backup") {
                    tracing::warn!(source = %source, "copy after backup not queued: {e}");
                }
            }
        }
        job.done.send_replace(true);
        if let Some(source) = check {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.check_copies(&source, Timestamp::now()))
                .await;
        }
    }

    fn persist(&self, job: &Job) {
        let v = job.view();
        let figures = JobFigures {
            description: v.description.clone(),
            phase: v.phase.clone(),
            bytes_done: v.bytes_done,
            items_done: v.items_done,
            phases: v.phases.clone(),
        };
        let rec = JobRecord {
            figures,
            id: v.id.clone(),
            kind: v.kind.to_string(),
            source: v.source.clone(),
            trigger: v.trigger.clone(),
            started: v.started.unwrap_or(v.queued),
            finished: v.finished,
            outcome: v.state.to_string(),
            message: v.message.clone(),
            detail: v.result.clone().unwrap_or(serde_json::Value::Null),
        };
        if let Err(e) = self.state.record_job(&rec) {
            tracing::warn!("cannot record job {} in the state file: {e}", v.id);
        }
    }
}

/// What a finished job shows: its verdict, and the operation's result as JSON.
struct JobOutcome {
    verdict: Verdict,
    result: serde_json::Value,
}

impl JobOutcome {
    fn new(verdict: Verdict, result: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Self {
            verdict,
            result: serde_json::to_value(result)?,
        })
    }
}

/// Runs one job on the calling (blocking) thread.
fn execute(setup: &Setup, spec: &JobSpec, progress: &dyn Progress) -> anyhow::Result<JobOutcome> {
    let repo: &Repository = &setup.repo;
    match spec {
        JobSpec::Backup { source, .. } => {
            let result = backup(setup, spec, progress);
            if let Err(e) = &result {
                record_failure(setup, source, e);
            }
            result
        }
        JobSpec::Verify { read_data } => {
            let opts = verify_options(*read_data, &setup.runtime());
            let r = backstop_engine::verify(repo, &opts, progress)?;
            // Then each copy, read from its storage itself (a temporary cache, as `verify`).
            let copies = on_copies(setup.destinations(), &CacheUse::Temporary, |_, repo, _| {
                Ok(backstop_engine::verify(repo, &opts, progress)?)
            });
            with_copies(outcome::verify(&r), &r, copies, outcome::verify)
        }
        JobSpec::Drill { source } => {
            let rec = drill(setup, repo, source, progress)?;
            // Then the source's newest snapshot in each of its copies, so each copy's newest
            // verified snapshot is known (a copy with none of the source yet is skipped).
            let dests = setup.source(source).map_or(Vec::new(), |s| {
                s.copy_to
                    .iter()
                    .map(|d| (d, vec![source.as_str()]))
                    .collect()
            });
            let copies = on_copies(dests, &CacheUse::Default, |_, repo, _| {
                match drill(setup, repo, source, progress) {
                    Err(e)
                        if matches!(
                            e.downcast_ref(),
                            Some(backstop_engine::Error::NotFound(_))
                        ) =>
                    {
                        Ok(None)
                    }
                    r => r.map(Some),
                }
            });
            with_copies(rec.verdict(), &rec, done_on(copies), Drilled::verdict)
        }
        JobSpec::Forget => {
            let opts = setup.retention.clone().forget_options(
                vec![],
                setup.lifecycle,
                setup.time_zone.clone(),
                &setup.runtime(),
                Timestamp::now(),
            );
            let s = backstop_engine::forget(repo, &opts, false)?;
            // Then each copy, by its own retention and only of the sources copied there.
            let copies = on_copies(
                setup.destinations(),
                &CacheUse::Default,
                |dest, repo, sources| {
                    let opts = dest.retention.clone().forget_options(
                        sources.iter().map(|s| s.to_string()).collect(),
                        setup.lifecycle,
                        setup.time_zone.clone(),
                        &setup.runtime(),
                        Timestamp::now(),
                    );
                    Ok(backstop_engine::forget(repo, &opts, false)?)
                },
            );
            with_copies(outcome::forget(&s), &s, copies, outcome::forget)
        }
        JobSpec::ExtendRetention => {
            let opts = backstop_engine::ops::object_lock::ExtendOptions {
                now: Timestamp::now(),
                days: None,
                dry_run: false,
            };
            let lengthened = |s: &backstop_engine::ops::object_lock::ExtendReport| Verdict {
                message: format!(
                    "retention of {} objects lengthened until {} ({} already longer)",
                    s.extended.values().sum::<u64>(),
                    s.until,
                    s.already_longer
                ),
                passed: true,
            };
            // Every copy with an Object Lock too: a copy's history must outlast a compromised
            // machine as the main repository's does.
            let copies = done_on(on_copies(
                setup.destinations(),
                &CacheUse::Default,
                |_, repo, _| match repo.config().object_lock {
                    None => Ok(None),
                    Some(_) => Ok(Some(backstop_engine::ops::object_lock::extend_retention(
                        repo, &opts, progress,
                    )?)),
                },
            ));
            match repo.config().object_lock {
                Some(_) => {
                    let s =
                        backstop_engine::ops::object_lock::extend_retention(repo, &opts, progress)?;
                    with_copies(lengthened(&s), &s, copies, lengthened)
                }
                None => {
                    #[derive(Serialize)]
                    struct Unlocked {
                        object_lock: bool,
                    }
                    let verdict = Verdict {
                        message: "the main repository has no object lock".into(),
                        passed: true,
                    };
                    with_copies(
                        verdict,
                        &Unlocked { object_lock: false },
                        copies,
                        lengthened,
                    )
                }
            }
        }
        JobSpec::Prune => {
            let opts = prune_options(None, &setup.runtime());
            let s = backstop_engine::prune(repo, &opts, false, progress)?;
            let copies = on_copies(setup.destinations(), &CacheUse::Default, |_, repo, _| {
                Ok(backstop_engine::prune(repo, &opts, false, progress)?)
            });
            with_copies(outcome::prune(&s), &s, copies, outcome::prune)
        }
        JobSpec::Restore {
            snapshot,
            source,
            allow_schema_change,
        } if setup.source(source).is_some_and(|s| s.server.is_some()) => {
            let done = restore_server(setup, snapshot, source, *allow_schema_change, progress)?;
            let verdict = Verdict {
                message: format!(
                    "restored snapshot {} into the live database {} (safety snapshot {}; the \
                     previous database is kept as {})",
                    snapshot.short(),
                    done.database,
                    done.safety_snapshot.short(),
                    done.previous_kept_as
                ),
                passed: true,
            };
            JobOutcome::new(verdict, &done)
        }
        JobSpec::Restore {
            snapshot,
            source,
            allow_schema_change,
        } => {
            let InPlacePlan { plan, item, ix } =
                restore_plan(setup, &snapshot.to_string(), source)?;
            let target = Path::new(&plan.target).to_path_buf();
            let opts = DatabaseRequest::in_place_from_daemon(*allow_schema_change).options(
                target,
                &setup.runtime(),
                Timestamp::now(),
            );
            let s = restore_database(&ix, plan, &item, &opts, progress)?;
            JobOutcome::new(outcome::restore_database(snapshot, &s), &s)
        }
        JobSpec::Copy { source, to } => {
            let dest = setup
                .source(source)
                .and_then(|s| s.copy_to.get(*to))
                .with_context(|| format!("no copy_to destination {to} for {source:?}"))?;
            // The source's own snapshots, those the destination lacks (the engine skips the
            // others): a copy that failed is caught up by the next one.
            let ids = repo
                .snapshots()?
                .readable
                .into_iter()
                .filter(|(_, s)| &s.source.name == source)
                .map(|(id, _)| id)
                .collect();
            let copied = backstop_app::copy::copy(
                repo,
                setup.passphrase.as_deref(),
                dest,
                ids,
                &backstop_app::repository::CacheUse::Default,
                &setup.host,
                &|m| tracing::warn!("{m}"),
                progress,
            )
            .with_context(|| format!("copying {source} to {}", dest.location));
            let c = match copied {
                Ok(c) => c,
                Err(e) => {
                    // Recorded with its destination: the scheduler retries it, and the page
                    // says since when copies there fail (`crate::copying`).
                    let message = crate::api::without_cli_remedies(&format!("{e:#}"));
                    let failed = crate::copying::Failed {
                        to: dest.location.to_string(),
                        error: message.clone(),
                    };
                    let verdict = Verdict {
                        message,
                        passed: false,
                    };
                    return JobOutcome::new(verdict, &failed);
                }
            };
            #[derive(Serialize)]
            struct Result<'a> {
                to: &'a str,
                created: bool,
                copied: Vec<String>,
                present: usize,
                chunks_new: u64,
                bytes_added: u64,
                /// The destination's Object Lock: the scheduler lengthens its retentions too.
                #[serde(skip_serializing_if = "Option::is_none")]
                object_lock: Option<backstop_format::config::ObjectLock>,
            }
            let result = Result {
                to: &c.to,
                created: c.created,
                copied: c.summary.copied.iter().map(|i| i.to_hex()).collect(),
                present: c.summary.present.len(),
                chunks_new: c.summary.chunks_new,
                bytes_added: c.summary.bytes_added,
                object_lock: c.object_lock,
            };
            JobOutcome::new(outcome::copy(&c.to, &c.summary), &result)
        }
    }
}

/// A backup job: the source's reader, its options, the engine's backup.
fn backup(setup: &Setup, job: &JobSpec, progress: &dyn Progress) -> anyhow::Result<JobOutcome> {
    let JobSpec::Backup {
        source,
        kind,
        description,
        ticket,
        tags,
    } = job
    else {
        anyhow::bail!("not a backup job: {}", job.kind());
    };
    let repo: &Repository = &setup.repo;
    let spec = setup
        .source(source)
        .with_context(|| format!("no source {source:?}"))?;
    let mut reader =
        (setup.build_source)(source).with_context(|| format!("backing up {source}"))?;
    let req = BackupRequest {
        kind: *kind,
        description: description.clone(),
        tags: tags.clone(),
        ticket: ticket.clone(),
        time: None,
        force: false,
        // A backup someone asked for is always recorded; scheduled and startup ones follow
        // the source's `skip_unchanged`.
        skip_unchanged: SkipUnchanged::AsConfiguredWhenScheduled,
    };
    let settings = SourceSettings {
        tags: spec.tags.clone(),
        description: spec.description.clone(),
        skip_unchanged: spec.skip_unchanged,
    };
    // A backup keeps a large index in scratch files (see `Index::load_for_backup`).
    let s = backstop_app::backup::backup(
        repo,
        &mut reader,
        source,
        &settings,
        &req,
        &setup.runtime(),
        &backstop_engine::SpillOptions::default(),
        &|m| tracing::warn!("{m}"),
        progress,
    )
    .with_context(|| format!("backing up {source}"))?;
    if let (Some(auto), false) = (&spec.export, s.skipped) {
        // The backup stands whatever happens to its plain copy.
        let written = backstop_app::export::after_backup(
            repo,
            auto,
            source,
            s.id,
            &setup.time_zone,
            &setup.runtime(),
            &|m| tracing::warn!("{m}"),
        );
        match written {
            Ok(w) => tracing::info!(source, tables = w.len(), "exported after the backup"),
            Err(e) => tracing::warn!(source, "the export after the backup failed: {e:#}"),
        }
    }
    JobOutcome::new(outcome::backup(&s), &s)
}

/// Records a failed backup in the repository the way `backstop backup` does, so that
/// `backstop status` and the page say the same. Best effort: a repository that cannot take the
/// record (a full disk) has it logged, and the job still reports the backup's own error.
fn record_failure(setup: &Setup, source: &str, e: &anyhow::Error) {
    let reason = crate::api::without_cli_remedies(&format!("{e:#}"));
    if let Err(err) = backstop_app::backup::record_failure(
        &setup.repo,
        source,
        &reason,
        &setup.runtime(),
        Timestamp::now(),
    ) {
        tracing::warn!(
            source,
            "cannot record the failed backup in the repository ({err}); the failure was: {reason}"
        );
    }
}

/// The plan of an in-place restore of `snapshot` (an id, a prefix, `latest`,
/// `latest-verified` or `@TIME`, of `source`: see [`crate::resolve`]) into the source's live
/// database; with the item and the index it used.
pub fn restore_plan<'s>(
    setup: &'s Setup,
    snapshot: &str,
    source: &str,
) -> anyhow::Result<InPlacePlan<'s>> {
    use backstop_engine::Error as E;
    let spec = setup
        .source(source)
        .ok_or_else(|| E::NotFound(format!("no source {source:?} is configured")))?;
    let live = spec.live_path.clone().ok_or_else(|| match &spec.server {
        Some(server) => E::Invalid(format!(
            "source {source:?} is a {} database: the page does not restore it in place yet; \
             use `backstop restore SNAPSHOT --source {source} --in-place` or POST \
             /api/v1/restores",
            server.product()
        )),
        None => E::Invalid(format!(
            "source {source:?} is not a SQLite database: only databases are restored in place (download a files snapshot from its page instead)"
        )),
    })?;
    let found = crate::resolve::find(setup, snapshot, Some(source))?;
    backstop_app::restore::in_place_plan(&setup.repo, &found, &live, &|m| tracing::warn!("{m}"))
}

/// [`restore_plan`] as the restore page and the API's dry run show it: its rows compared one
/// by one with the snapshot's (databases up to [`COMPARE_LIMIT_BYTES`], the image in the
/// daemon's scratch folder, removed afterwards) and what the restore does in words. A
/// comparison that cannot be made keeps the row counts and says why.
///
/// [`COMPARE_LIMIT_BYTES`]: backstop_app::restore::COMPARE_LIMIT_BYTES
pub fn compared_plan(
    setup: &Setup,
    snapshot: &str,
    source: &str,
) -> anyhow::Result<backstop_engine::database::DatabasePlan> {
    let mut p = restore_plan(setup, snapshot, source)?;
    let opts = backstop_app::restore::CompareOptions {
        scratch: setup.scratch.clone(),
        limit_bytes: backstop_app::restore::COMPARE_LIMIT_BYTES,
        host: setup.host.clone(),
    };
    p.compare_and_describe(&opts, &setup.time_zone);
    if let Some(c) = p.plan.comparison.as_ref().filter(|c| !c.rows) {
        tracing::info!(
            "restore plan of {source}: rows not compared one by one: {}",
            c.note.as_deref().unwrap_or("")
        );
    }
    Ok(p.plan)
}

/// The plan of an in-place restore of a database server's source, as the API's dry run and the
/// restore page show it.
#[derive(Debug, Serialize)]
pub struct ServerPlan {
    /// The snapshot `spec` named.
    pub snapshot: String,
    pub source: String,
    /// The live database the restore replaces.
    pub database: String,
    pub in_place: bool,
    /// When the snapshot was taken, and its dump's size.
    pub time: Timestamp,
    pub bytes: u64,
    /// What the dump was taken from (its tables and rows, schema, versions).
    pub server: backstop_format::manifest::ServerDatabase,
    /// The live database now, or why it could not be read.
    pub now: Option<backstop_app::restore::Observed>,
    pub now_error: Option<String>,
    /// Each table's rows now and in the snapshot (as a SQLite plan lists them).
    pub tables: Vec<TableChange>,
    /// Whether the schema and its version are the live database's; `None`: not read.
    pub schema_matches: Option<bool>,
    /// How the rows were compared with the snapshot's: one by one (each table's `since`, or
    /// `not_compared`), or by row counts only, and why (`None`: the live database could not be
    /// read).
    pub comparison: Option<backstop_app::restore::RowComparison>,
    /// What the restore does in one sentence (each table's in its `words`).
    pub summary: String,
    /// The snapshot, the time `@TIME` was read as, and the kind of the snapshot found.
    #[serde(skip)]
    pub found: (SnapshotId, Option<Timestamp>, BackupKind),
}

/// The plan of restoring what `spec` names of the database server's source `source` in place.
pub fn server_plan(setup: &Setup, spec: &str, source: &str) -> anyhow::Result<ServerPlan> {
    let live = setup
        .source(source)
        .and_then(|s| s.server.clone())
        .with_context(|| format!("source {source:?} is not a database server's"))?;
    live.can_replace()?;
    let found = crate::resolve::find(setup, spec, Some(source))?;
    let ix = load_index(&setup.repo)?;
    let items = ix.loader().read_items(&found.snapshot.items)?;
    let item = items
        .into_iter()
        .find(|i| i.content.is_some() && i.server.is_some())
        .with_context(|| format!("snapshot {} holds no database dump", found.id.short()))?;
    let record = item.server.expect("found with a record");
    let (now, now_error) = match live.observe() {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let content = item.content.as_ref().expect("found with content");
    // Its rows one by one, in a scratch database loaded from the dump.
    let rows = backstop_app::restore::server_plan_rows(
        &ix,
        content,
        &record,
        &live,
        now.as_ref(),
        found.snapshot.time,
        &setup.time_zone,
        &setup.host,
    );
    if let Some(c) = rows.comparison.as_ref().filter(|c| !c.rows) {
        tracing::info!(
            "restore plan of {source}: rows not compared one by one: {}",
            c.note.as_deref().unwrap_or("")
        );
    }
    let schema_matches = now.as_ref().map(|n| {
        n.schema_fingerprint == record.schema_fingerprint
            && n.schema_version == record.schema_version
    });
    Ok(ServerPlan {
        snapshot: found.id.to_hex(),
        source: source.to_owned(),
        database: live.database(),
        in_place: true,
        time: found.snapshot.time,
        bytes: content.size,
        server: record,
        now,
        now_error,
        tables: rows.tables,
        schema_matches,
        comparison: rows.comparison,
        summary: rows.summary,
        found: (found.id, found.as_of, found.snapshot.kind),
    })
}

/// An in-place restore of snapshot `id` of a database server's source into its live database
/// ([`backstop_app::restore::server_in_place`]): the safety snapshot from the source's own
/// reader, the load beside it, the checks, the switch.
fn restore_server(
    setup: &Setup,
    id: &SnapshotId,
    source: &str,
    allow_schema_change: bool,
    progress: &dyn Progress,
) -> anyhow::Result<backstop_app::restore::ServerInPlaceDone> {
    let spec = setup
        .source(source)
        .with_context(|| format!("no source {source:?} is configured"))?;
    let live = spec.server.as_ref().expect("a server source");
    let found = crate::resolve::find(setup, &id.to_hex(), Some(source))?;
    let ix = load_index(&setup.repo)?;
    let items = ix.loader().read_items(&found.snapshot.items)?;
    let item = items
        .iter()
        .find(|i| i.content.is_some() && i.server.is_some())
        .with_context(|| format!("snapshot {} holds no database dump", id.short()))?;
    backstop_app::restore::server_in_place(
        &setup.repo,
        &ix,
        &backstop_app::restore::ServerInPlace {
            source,
            reader: &|| (setup.build_source)(source),
            tags: spec.tags.clone(),
            snapshot: found.id,
            content: item.content.as_ref().expect("found with content"),
            record: item.server.as_ref().expect("found with a record"),
            live,
            allow_schema_change,
            rt: &setup.runtime(),
            spill: &backstop_engine::SpillOptions::default(),
        },
        &|m| tracing::warn!("{m}"),
        progress,
    )
}

/// Loads the index; index files that cannot be read go to the log.
/// What a repository-wide job did in one of the repositories the sources copy to.
#[derive(Serialize)]
struct OnCopy<T> {
    to: String,
    result: Option<T>,
    /// Why it could not be done there.
    error: Option<String>,
}

/// Runs `what` on each of the repositories `dests` (with the sources copied there), opened
/// with `cache`. One that has no repository yet (nothing was copied) is skipped; one that
/// cannot be opened, or where `what` fails, is an error of its own that does not stop the
/// others.
fn on_copies<T>(
    dests: Vec<(&backstop_app::copy::Destination, Vec<&str>)>,
    cache: &CacheUse,
    what: impl Fn(&backstop_app::copy::Destination, &Repository, &[&str]) -> anyhow::Result<T>,
) -> Vec<OnCopy<T>> {
    let mut out = Vec::new();
    for (dest, sources) in dests {
        let to = dest.location.to_string();
        let opened =
            backstop_app::repository::open_with(&dest.location, dest.passphrase.as_deref(), cache);
        let done = match opened {
            Err(e) if backstop_app::repository::is_no_repository(&e) => continue,
            Err(e) => Err(e),
            Ok(repo) => what(dest, &repo, &sources),
        };
        out.push(match done {
            Ok(r) => OnCopy {
                to,
                result: Some(r),
                error: None,
            },
            Err(e) => {
                tracing::warn!(to = %to, "{e:#}");
                OnCopy {
                    to,
                    result: None,
                    error: Some(format!("{e:#}")),
                }
            }
        });
    }
    out
}

/// The copies where a job had something to do: those whose result is `None` (nothing there to
/// drill, no object lock) are left out; failures stay.
fn done_on<T>(copies: Vec<OnCopy<Option<T>>>) -> Vec<OnCopy<T>> {
    copies
        .into_iter()
        .filter_map(|c| match c.result {
            Some(None) => None,
            Some(Some(r)) => Some(OnCopy {
                to: c.to,
                result: Some(r),
                error: None,
            }),
            None => Some(OnCopy {
                to: c.to,
                result: None,
                error: c.error,
            }),
        })
        .collect()
}

/// A repository-wide job's outcome with what it did in the copies: the main repository's
/// verdict and result, each copy's after it (as `copies` in the result). It passes when it
/// passed everywhere.
fn with_copies<M: Serialize, T: Serialize>(
    main: Verdict,
    result: &M,
    copies: Vec<OnCopy<T>>,
    verdict: impl Fn(&T) -> Verdict,
) -> anyhow::Result<JobOutcome> {
    let mut message = main.message;
    let mut passed = main.passed;
    for c in &copies {
        match (&c.result, &c.error) {
            (Some(r), _) => {
                let v = verdict(r);
                passed &= v.passed;
                message.push_str(&format!("; at {}: {}", c.to, v.message));
            }
            (None, e) => {
                passed = false;
                let e = e.as_deref().unwrap_or("failed");
                message.push_str(&format!("; at {} failed: {e}", c.to));
            }
        }
    }
    let mut result = serde_json::to_value(result)?;
    if !copies.is_empty()
        && let serde_json::Value::Object(o) = &mut result
    {
        o.insert("copies".into(), serde_json::to_value(&copies)?);
    }
    Ok(JobOutcome {
        verdict: Verdict { message, passed },
        result,
    })
}

/// A restore drill of one snapshot, as a job's result shows it: the record, with the snapshot.
#[derive(Serialize)]
struct Drilled {
    snapshot: SnapshotId,
    #[serde(flatten)]
    record: backstop_format::record::Record,
}

impl Drilled {
    fn verdict(&self) -> Verdict {
        outcome::drill(&self.snapshot, &self.record)
    }
}

/// A restore drill of `source`'s newest real backup in `repo` (never a safety snapshot that
/// holds rolled-back state); "not found" when `repo` has none.
fn drill(
    setup: &Setup,
    repo: &Repository,
    source: &str,
    progress: &dyn Progress,
) -> anyhow::Result<Drilled> {
    let (id, snap) = drill_targets(repo, Some(source))?
        .into_iter()
        .next()
        .expect("drill_targets returns at least one");
    let ix = load_index(repo)?;
    let opts = backstop_engine::drill::DrillOptions {
        server: setup.source(source).and_then(|s| s.server_drill.clone()),
        rules: setup
            .source(source)
            .map(|s| s.validation.clone())
            .unwrap_or_default(),
        ..drill_options(setup.scratch.clone(), &setup.runtime(), Timestamp::now())
    };
    let record = restore_drill(&ix, id, &snap, &opts, progress)?;
    Ok(Drilled {
        snapshot: id,
        record,
    })
}

fn load_index(repo: &Repository) -> anyhow::Result<Indexed<'_>> {
    backstop_app::repository::load_index(repo, &|m| tracing::warn!("{m}"))
}
