//! `backstop serve`: the scheduler, the HTTP API and the web UI.
//!
//! The daemon calls the same engine functions as the CLI. It does not read `backstop.toml`
//! itself: the CLI turns the config into a [`Setup`] (the repository, the sources and how to
//! build each one's [`backstop_sources::Source`], schedules and retention) and hands it over.

pub mod api;
pub mod auth;
pub mod client;
pub mod download;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod resolve;
pub mod scheduler;
pub mod setup;
pub mod state;
pub mod ui;

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use backstop_engine::Index;
use backstop_engine::content::Loader;
use backstop_engine::listing::{ListFilter, SnapshotRow, list_snapshots};
use backstop_engine::status::{SourceStatus, StatusOptions, StatusReport};
use backstop_format::Timestamp;
use backstop_format::manifest::DatabaseMeta;
use backstop_format::record::Record;
use jiff::SignedDuration;
use serde::Serialize;

pub use setup::{Setup, SourceFactory, SourceSpec, Tasks};

use crate::api::{ApiResult, blocking};
use crate::jobs::{JobView, Runner};
use crate::notify::Notifier;
use crate::scheduler::{Clock, Scheduler, SystemClock};
use crate::state::{LoginLimiter, State};

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Audit entries are kept this long unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: SignedDuration = SignedDuration::from_hours(365 * 24);

/// The daemon's parts.
pub struct App {
    pub setup: Arc<Setup>,
    pub state: Arc<State>,
    pub runner: Arc<Runner>,
    pub notifier: Arc<Notifier>,
    /// Failed logins per user name and client address.
    pub limiter: LoginLimiter,
    /// Failed logins per client address, whatever the names.
    pub address_limiter: LoginLimiter,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpAddr>,
    /// How long audit entries are kept.
    pub audit_retention: SignedDuration,
    pub templates: minijinja::Environment<'static>,
    /// Mark cookies `Secure` (when served behind HTTPS).
    pub secure_cookies: bool,
    pub started: Timestamp,
}

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
}

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
    /// Restores go into this live database (SQLite sources).
    pub restorable: bool,
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

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseDetail {
    pub path: String,
    #[serde(flatten)]
    pub meta: DatabaseMeta,
}

impl App {
    pub fn new(setup: Arc<Setup>, state: Arc<State>, notifier: Arc<Notifier>) -> Self {
        let runner = Arc::new(Runner::new(setup.clone(), state.clone(), notifier.clone()));
        let templates = ui::templates(setup.time_zone.clone());
        Self {
            setup,
            state,
            runner,
            notifier,
            limiter: LoginLimiter::default(),
            address_limiter: LoginLimiter::new(20, SignedDuration::from_mins(15)),
            trusted_proxies: Vec::new(),
            audit_retention: DEFAULT_AUDIT_RETENTION,
            templates,
            secure_cookies: false,
            started: Timestamp::now(),
        }
    }

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
        let (size, free, failures) = blocking(move || {
            let size: u64 = setup.repo.pack_sizes()?.values().sum();
            let free = setup.repo.storage().free_space();
            let mut failures = Vec::new();
            for n in &names {
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
            Ok((size, free, failures))
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
            .map(|(status, job_failure)| {
                let spec = self.setup.source(&status.name);
                let last_failure = last_failure(&status, job_failure);
                if last_failure.is_some() {
                    attention = true;
                }
                SourceOverview {
                    kind: spec.map(|s| s.kind.clone()).unwrap_or_default(),
                    description: spec.and_then(|s| s.description.clone()),
                    backup_running: active
                        .iter()
                        .any(|j| j.kind == "backup" && j.source == status.name),
                    restorable: spec.is_some_and(|s| s.live_path.is_some()),
                    last_failure,
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
            let (index, _) = Index::load(repo)?;
            let items = Loader::new(repo, &index).read_items(&snap.items)?;
            let databases = items
                .iter()
                .filter_map(|i| {
                    Some(DatabaseDetail {
                        path: i.path.clone(),
                        meta: i.database.clone()?,
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
                records,
                snapshot_warnings: snap.warnings.clone(),
            })
        })
        .await
    }
}

/// The HTTP routes: the API, the pages, health and metrics.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/health", get(api::health))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/snapshots", get(api::snapshots))
        .route("/api/v1/snapshots/resolve", get(api::resolve_snapshot))
        .route("/api/v1/snapshots/{id}", get(api::snapshot))
        .route("/api/v1/snapshots/{id}/download", get(api::download))
        .route("/api/v1/backups", post(api::create_backup))
        .route("/api/v1/verifications", post(api::create_verification))
        .route("/api/v1/restores", post(api::create_restore))
        .route("/api/v1/jobs", get(api::jobs))
        .route("/api/v1/jobs/{id}", get(api::job))
        .route("/api/v1/audit", get(api::audit_log))
        .merge(ui::routes())
        .fallback(ui::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(api::limit_body))
        .with_state(app)
}

/// How to run the daemon.
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Seconds between scheduler rounds.
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` header names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// How long audit entries are kept (pruned at start and every hour).
    pub audit_retention: SignedDuration,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tick: Duration::from_secs(15),
            clock: Arc::new(SystemClock),
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            audit_retention: DEFAULT_AUDIT_RETENTION,
        }
    }
}

/// Deletes audit entries older than the retention; failures are logged.
fn prune_audit(state: &State, retention: SignedDuration) {
    let Ok(before) = Timestamp::now().checked_sub(retention) else {
        return;
    };
    match state.prune_audit(before) {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} audit entries older than {retention:#} deleted"),
        Err(e) => tracing::warn!("cannot prune the audit log: {e}"),
    }
}

/// Serves until `shutdown` resolves (SIGTERM or Ctrl-C in the CLI): then stops taking jobs,
/// lets the running ones finish, and returns.
pub async fn serve(
    setup: Setup,
    state: State,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    serve_on(listener, setup, state, opts, shutdown).await
}

/// [`serve`] on a listener the caller bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    setup: Setup,
    state: State,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match state.abandon_unfinished(Timestamp::now()) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} job(s) were cut off when the daemon last stopped"),
        Err(e) => tracing::warn!("cannot update the job history: {e}"),
    }
    prune_audit(&state, opts.audit_retention);
    let mut app = App::new(Arc::new(setup), Arc::new(state), Arc::new(Notifier::new()));
    app.secure_cookies = opts.secure_cookies;
    app.trusted_proxies = opts.trusted_proxies.clone();
    app.audit_retention = opts.audit_retention;
    let app = AppState(Arc::new(app));
    let scheduler = Arc::new(Scheduler::new(
        app.runner.clone(),
        app.state.clone(),
        app.notifier.clone(),
        opts.clock.clone(),
    ));
    scheduler.startup();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sched = tokio::spawn(scheduler.clone().run(opts.tick, stop_rx));
    tracing::info!(
        "backstop {} serving on http://{}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?
    );
    let runner = app.runner.clone();
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pruner = {
        let (state, retention) = (app.state.clone(), opts.audit_retention);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            every.tick().await;
            loop {
                every.tick().await;
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || prune_audit(&state, retention)).await;
            }
        })
    };
    // Peer addresses reach the handlers: login limits and the audit log key on them.
    let server = axum::serve(
        listener,
        router(app.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = http_stop_rx.await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    tracing::info!("shutting down: no new jobs; waiting for running jobs to finish");
    let _ = stop_tx.send(true);
    let _ = sched.await;
    runner.shutdown().await;
    pruner.abort();
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("stopped");
    Ok(())
}
