//! `backstop serve`: the scheduler, the HTTP API and the web UI.
//!
//! The daemon calls the same engine functions as the CLI. It does not read `backstop.toml`
//! itself: the CLI turns the config into a [`Setup`] (the repository, the sources and how to
//! build each one's reader, schedules and retention) and hands it over.

pub mod api;
pub mod auth;
pub mod charts;
pub mod client;
pub mod copying;
pub mod download;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod overview;
pub mod resolve;
pub mod scheduler;
pub mod setup;
pub mod shared;
pub mod state;
pub mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use backstop_format::Timestamp;
use jiff::SignedDuration;

pub use overview::*;
pub use setup::DEFAULT_AUDIT_RETENTION;
pub use setup::{Setup, SourceFactory, SourceSpec, Tasks};
pub use shared::{App, AppState};

use crate::notify::Notifier;
use crate::scheduler::{Clock, Scheduler, SystemClock};
use crate::state::State;

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
        .route(
            "/api/v1/snapshots/{id}/mark-verified",
            post(api::mark_verified),
        )
        .route(
            "/api/v1/snapshots/{id}/tables/{table}/csv",
            get(api::download_table),
        )
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
    let app = AppState::new(app);
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
