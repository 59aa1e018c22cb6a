//! The JSON API under `/api/v1` (documented in docs/api.md), `/healthz` and `/metrics`.

use std::io::Read as _;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backstop_engine::listing::{ListFilter, list_snapshots};
use backstop_format::Timestamp;
use backstop_format::limits::MAX_NAME_BYTES;
use backstop_format::manifest::BackupKind;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Denied, Permission};
use crate::jobs::{JobSpec, SubmitError, compared_plan, restore_plan};
use crate::shared::AppState;
use crate::state::AuditEntry;

/// An API error: a status and a JSON body `{"error": "...", "code": "..."}`.
///
/// The message of an `internal` error is its cause: it is logged with a request id and never
/// sent; the client gets the id to quote.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    /// A failure of the daemon, not of the request: its cause is logged, not sent.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }

    /// A request body over [`MAX_BODY_BYTES`].
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes: send less (docs/api.md lists the limits)"
            ),
        )
    }

    /// A JSON body that could not be read: too large (413) or malformed (400).
    pub fn from_json(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::too_large()
        } else {
            Self::bad_request(e.body_text())
        }
    }

    /// Maps an engine error to a status: unknown snapshots are 404, locks 409, invalid
    /// requests 422; anything else is the daemon's failure (500).
    pub fn from_anyhow(e: anyhow::Error) -> Self {
        use backstop_engine::Error as E;
        let message = without_cli_remedies(&format!("{e:#}"));
        match e.downcast_ref::<E>() {
            Some(E::NotFound(_)) => Self::new(StatusCode::NOT_FOUND, "not-found", message),
            Some(E::Locked(_)) | Some(E::IndexChanged) => {
                Self::new(StatusCode::CONFLICT, "locked", message)
            }
            Some(E::Invalid(_)) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            _ => Self::internal(format!("{e:#}")),
        }
    }

    /// What the client is told: the status, the code and the message, except that an
    /// internal failure's cause is logged under a new request id and only the id is told.
    pub fn public(self) -> (StatusCode, &'static str, String) {
        if self.code != "internal" {
            return (self.status, self.code, self.message);
        }
        let id = request_id();
        tracing::error!(request_id = %id, "internal error: {}", self.message);
        (
            self.status,
            self.code,
            format!("the daemon failed to answer (request {id}; its log has the details)"),
        )
    }
}

/// A short random id that ties a client's error to the daemon's log line.
fn request_id() -> String {
    backstop_format::id::to_hex(&backstop_format::id::random_bytes::<6>())
}

/// An engine message without the remedies it words for the command line ("pass --overwrite",
/// "`backstop verify --read-data` names the pack"): clauses and parentheses naming a flag or a
/// command are left out, since the page and the API have their own ways.
pub fn without_cli_remedies(message: &str) -> String {
    let names_cli = |s: &str| s.contains("--") || s.contains("`backstop");
    if !names_cli(message) {
        return message.to_string();
    }
    let mut out = String::new();
    let mut rest = message;
    // Parenthesised remarks naming the CLI go first.
    while let Some(open) = rest.find(" (") {
        let Some(close) = rest[open..].find(')').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open..=close];
        out.push_str(&rest[..open]);
        if !names_cli(inner) {
            out.push_str(inner);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let kept: Vec<&str> = out.split("; ").filter(|c| !names_cli(c)).collect();
    if kept.is_empty() {
        message.to_string()
    } else {
        kept.join("; ")
    }
}

/// At most `max` bytes of `s` (cut at a character boundary, marked with `…`).
pub fn shorten(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

/// Request bodies larger than this are refused with 413 (backups, restores and forms are a
/// few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Refuses a body announced larger than [`MAX_BODY_BYTES`] before it is read (413, JSON).
/// Bodies without a length are cut off at the limit by the extractors.
pub async fn limit_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::too_large().into_response();
    }
    next.run(req).await
}

/// Checks a name a client sent (a source, a snapshot) against [`MAX_NAME_BYTES`].
pub fn check_name(what: &'static str, value: &str) -> ApiResult<()> {
    backstop_format::limits::check_text(what, value, MAX_NAME_BYTES)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `404` in JSON for a path under `/api/` that does not exist.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!(
            "no API endpoint {}: docs/api.md lists them",
            shorten(uri.path(), 200)
        ),
    )
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            Denied::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            Denied::Internal(m) => Self::internal(m),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                e.to_string(),
            ),
            SubmitError::QueueFull(_) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "queue-full", e.to_string())
            }
            SubmitError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not-found", m),
            SubmitError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.public();
        if status == StatusCode::UNAUTHORIZED {
            return Denied::Unauthorized(message).into_response();
        }
        (status, Json(json!({ "error": message, "code": code }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking engine work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from_anyhow)
}

/// Writes an audit entry; a failure to write is logged.
pub fn audit(app: &AppState, actor: &str, action: &str, target: &str, outcome: &str, detail: &str) {
    // Whatever a client sent, a row stays small.
    let e = AuditEntry {
        time: Timestamp::now(),
        actor: shorten(actor, MAX_NAME_BYTES + 16).into_owned(),
        action: action.to_string(),
        target: shorten(target, 2 * MAX_NAME_BYTES).into_owned(),
        outcome: outcome.to_string(),
        detail: shorten(detail, 1024).into_owned(),
    };
    tracing::info!(actor = %e.actor, action, target = %e.target, outcome, detail = %e.detail, "audit");
    if let Err(err) = app.state.audit(&e) {
        tracing::warn!("cannot write the audit log: {err}");
    }
}

/// Checks a permission, writing a `denied` audit entry when it is missing.
pub fn require(
    app: &AppState,
    caller: &Caller,
    p: Permission,
    action: &str,
    target: &str,
) -> Result<(), ApiError> {
    caller.require(p).map_err(|d| {
        audit(app, &caller.actor, action, target, "denied", "");
        ApiError::from(d)
    })
}

/// `GET /healthz`: the daemon answers and can read its repository.
pub async fn healthz(State(app): State<AppState>) -> Response {
    let repo = app.setup.repo.clone();
    let ok = tokio::task::spawn_blocking(move || repo.check_readable())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    if ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the repository cannot be read\n",
        )
            .into_response()
    }
}

/// `GET /api/v1/health`: overall state, for monitors that speak JSON.
pub async fn health(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let report = app.status_report().await?;
    Ok(Json(json!({
        "status": if report.needs_attention() { "attention" } else { "ok" },
        "sources": report.sources.iter().map(|s| json!({"name": s.name, "state": s.state, "problems": s.problems})).collect::<Vec<_>>(),
        "unreadable_snapshots": report.unreadable_snapshots,
        "jobs_running": app.runner.recent().iter().filter(|j| j.state == "running").count(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /api/v1/status`: the status page's data.
pub async fn status(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let page = app.overview().await?;
    Ok(Json(
        serde_json::to_value(page).map_err(ApiError::internal)?,
    ))
}

/// `GET /api/v1/sources`
pub async fn sources(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let page = app.overview().await?;
    Ok(Json(
        serde_json::to_value(page.sources).map_err(ApiError::internal)?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct SnapshotQuery {
    pub source: Option<String>,
    pub kind: Option<String>,
    pub tag: Option<String>,
}

/// `GET /api/v1/snapshots?source=&kind=&tag=`: oldest first, like `backstop snapshots --json`.
pub async fn snapshots(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(k.parse::<BackupKind>().map_err(ApiError::bad_request)?),
    };
    let filter = ListFilter {
        source: q.source.filter(|s| !s.is_empty()),
        tag: q.tag.filter(|s| !s.is_empty()),
        kind,
    };
    let setup = app.setup.clone();
    let rows = blocking(move || {
        Ok(list_snapshots(&setup.repo, &filter, &setup.lifecycle, Timestamp::now())?.0)
    })
    .await?;
    Ok(Json(
        serde_json::to_value(rows).map_err(ApiError::internal)?,
    ))
}

/// `GET /api/v1/snapshots/{id}`: metadata, items (the first 1000), database tables and
/// verification records.
pub async fn snapshot(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let detail = app.snapshot_detail(id).await?;
    Ok(Json(
        serde_json::to_value(detail).map_err(ApiError::internal)?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ResolveQuery {
    pub snapshot: Option<String>,
    pub source: Option<String>,
}

/// `GET /api/v1/snapshots/resolve?snapshot=SPEC&source=SOURCE`: which snapshot a spec names
/// (`@TIME` read in the configured zone), before a restore uses it.
pub async fn resolve_snapshot(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ResolveQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    let spec = q.snapshot.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "give ?snapshot=: an id, latest, latest-verified or @TIME such as @2026-12-04T18:00 (with &source=NAME)",
        )
    })?;
    check_name("snapshot", &spec)?;
    let source = q.source.filter(|s| !s.is_empty());
    if let Some(s) = &source {
        check_name("source", s)?;
    }
    let setup = app.setup.clone();
    let found =
        blocking(move || crate::resolve::resolution(&setup, spec.trim(), source.as_deref()))
            .await?;
    Ok(Json(
        serde_json::to_value(found).map_err(ApiError::internal)?,
    ))
}

/// `GET /api/v1/jobs`: recent jobs, newest first.
pub async fn jobs(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    Ok(Json(
        serde_json::to_value(app.runner.recent()).map_err(ApiError::internal)?,
    ))
}

/// `GET /api/v1/jobs/{id}`
pub async fn job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Permission::Read)?;
    if let Some(v) = app.runner.job_view(&id) {
        return Ok(Json(serde_json::to_value(v).map_err(ApiError::internal)?));
    }
    let state = app.state.clone();
    let rec = blocking(move || Ok(state.job(&id)?)).await?;
    match rec {
        Some(r) => Ok(Json(serde_json::to_value(r).map_err(ApiError::internal)?)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such job (the daemon keeps the most recent ones)",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    pub source: String,
    pub description: Option<String>,
    /// `manual` (default), `pre-change`, `scheduled` or `startup`.
    pub kind: Option<String>,
    pub ticket: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Answer when the backup has finished (with its snapshot id) instead of at once.
    #[serde(default)]
    pub wait: bool,
}

/// `POST /api/v1/backups`: 202 with the job (`Location: /api/v1/jobs/ID`), or with
/// `"wait": true` 201 and the finished job (its `result.id` is the snapshot).
pub async fn create_backup(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<BackupRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(ApiError::from_json)?;
    require(&app, &caller, Permission::Backup, "backup", &req.source)?;
    check_name("source", &req.source)?;
    backstop_format::limits::check_snapshot_texts(
        req.description.as_deref(),
        req.ticket.as_deref(),
        &req.tags,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let kind = match req.kind.as_deref() {
        None | Some("") => BackupKind::Manual,
        Some(k) => k.parse::<BackupKind>().map_err(ApiError::bad_request)?,
    };
    let spec = JobSpec::Backup {
        source: req.source.clone(),
        kind,
        description: req.description.clone().filter(|d| !d.trim().is_empty()),
        ticket: req.ticket.clone().filter(|t| !t.trim().is_empty()),
        tags: req.tags.clone(),
    };
    submit(&app, &caller, spec, "backup", &req.source, req.wait).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// `structure` (default), `data` (read every pack) or `drill` (restore drill of `source`).
    pub kind: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub wait: bool,
}

/// `POST /api/v1/verifications`
pub async fn create_verification(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<VerifyRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(ApiError::from_json)?;
    let target = req.source.clone().unwrap_or_default();
    require(&app, &caller, Permission::Verify, "verify", &target)?;
    check_name("source", &target)?;
    let spec = match req.kind.as_deref().unwrap_or("structure") {
        "structure" => JobSpec::Verify { read_data: false },
        "data" => JobSpec::Verify { read_data: true },
        "drill" => JobSpec::Drill {
            source: req.source.clone().ok_or_else(|| {
                ApiError::bad_request(
                    "a drill needs \"source\": the source whose newest snapshot is drilled",
                )
            })?,
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown verification kind {other:?}: use structure, data or drill"
            )));
        }
    };
    submit(&app, &caller, spec, "verify", &target, req.wait).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A snapshot id (or unique prefix), `latest`, `latest-verified` or `@TIME`.
    pub snapshot: String,
    pub source: String,
    /// Only return the plan: row counts now and in the snapshot (and for SQLite the rows
    /// entered, deleted and changed since, compared one by one), schema match, in words.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub allow_schema_change: bool,
    #[serde(default)]
    pub wait: bool,
}

/// `POST /api/v1/restores`: the plan with `"dry_run": true` (200), else an in-place restore
/// of a database snapshot, a `pre-restore` safety snapshot first (202, or 201 with `wait`).
pub async fn create_restore(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<RestoreRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(ApiError::from_json)?;
    let target = format!("{}@{}", req.source, req.snapshot);
    require(&app, &caller, Permission::Restore, "restore", &target)?;
    check_name("source", &req.source)?;
    check_name("snapshot", &req.snapshot)?;
    if app
        .setup
        .source(&req.source)
        .is_some_and(|s| s.server.is_some())
    {
        return restore_server(&app, &caller, &req, &target).await;
    }
    let setup = app.setup.clone();
    let (snapshot, source) = (req.snapshot.clone(), req.source.clone());
    if req.dry_run {
        // Shown, so compared row by row and worded; the restore itself needs only the plan.
        let plan = blocking(move || compared_plan(&setup, &snapshot, &source)).await?;
        return Ok(Json(serde_json::to_value(plan).map_err(ApiError::internal)?).into_response());
    }
    let plan = blocking(move || Ok(restore_plan(&setup, &snapshot, &source)?.plan)).await?;
    if plan.schema_matches == Some(false) && !req.allow_schema_change {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "schema-change",
            format!(
                "the snapshot's schema differs from the live database's (user_version now {:?}, in the snapshot {}): send \"allow_schema_change\": true to restore anyway",
                plan.user_version_now, plan.user_version_snapshot
            ),
        ));
    }
    let spec = JobSpec::Restore {
        snapshot: plan.snapshot,
        source: req.source.clone(),
        allow_schema_change: req.allow_schema_change,
    };
    submit(&app, &caller, spec, "restore", &target, req.wait).await
}

/// `POST /api/v1/restores` for a database server's source (PostgreSQL, MariaDB): the plan with `"dry_run": true` (the
/// snapshot's record of the database and the live database now: rows per table, schema and
/// its version), else the in-place restore as a job (its schema check refuses a schema or
/// schema-version change unless `allow_schema_change`).
async fn restore_server(
    app: &AppState,
    caller: &Caller,
    req: &RestoreRequest,
    target: &str,
) -> ApiResult<Response> {
    let setup = app.setup.clone();
    let (snapshot, source) = (req.snapshot.clone(), req.source.clone());
    let plan = blocking(move || crate::jobs::server_plan(&setup, &snapshot, &source)).await?;
    if req.dry_run {
        return Ok(Json(serde_json::to_value(&plan).map_err(ApiError::internal)?).into_response());
    }
    let spec = JobSpec::Restore {
        snapshot: plan.found.0,
        source: req.source.clone(),
        allow_schema_change: req.allow_schema_change,
    };
    submit(app, caller, spec, "restore", target, req.wait).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkVerifiedRequest {
    /// Who confirmed the change went well; the caller's name when not given.
    pub by: Option<String>,
    /// What was checked.
    pub note: Option<String>,
}

/// `POST /api/v1/snapshots/{id}/mark-verified`: the change a pre-change snapshot was taken
/// before went well (the record `backstop mark-verified` writes). `200` with what was done
/// (`changed: false` when it already was marked); `422` for a snapshot of another kind.
pub async fn mark_verified(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    require(&app, &caller, Permission::Verify, "mark-verified", &id)?;
    check_name("snapshot", &id)?;
    let req: MarkVerifiedRequest = match body.iter().all(u8::is_ascii_whitespace) {
        true => MarkVerifiedRequest::default(),
        false => serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let by = req.by.filter(|b| !b.trim().is_empty());
    if let Some(b) = &by {
        check_name("by", b)?;
    }
    let by = by.unwrap_or_else(|| caller.name.clone());
    let done = mark_verified_as(&app, &caller.actor, &id, by, req.note).await?;
    Ok(Json(
        serde_json::to_value(done).map_err(ApiError::internal)?,
    ))
}

/// Marks the pre-change snapshot `spec` verified by `by` for the page and the API alike, and
/// audits it (as `mark-verified` of `SOURCE@SNAPSHOT`). A blank `note` is none; one over the
/// description limit is refused.
pub async fn mark_verified_as(
    app: &AppState,
    actor: &str,
    spec: &str,
    by: String,
    note: Option<String>,
) -> ApiResult<backstop_app::restore::MarkedVerified> {
    let note = note.filter(|n| !n.trim().is_empty());
    if let Some(n) = &note {
        backstop_format::limits::check_text(
            "note",
            n,
            backstop_format::limits::MAX_DESCRIPTION_BYTES,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let setup = app.setup.clone();
    let spec_owned = spec.to_owned();
    let done = blocking(move || {
        let found = crate::resolve::find(&setup, &spec_owned, None)?;
        backstop_app::restore::mark_verified(
            &setup.repo,
            &found,
            Some(by),
            note,
            &setup.host,
            &setup.time_zone,
        )
    })
    .await;
    match done {
        Ok(d) => {
            let target = format!("{}@{}", d.source, d.snapshot.short());
            audit(app, actor, "mark-verified", &target, "ok", &d.message);
            Ok(d)
        }
        Err(e) => {
            audit(app, actor, "mark-verified", spec, "failed", &e.message);
            Err(e)
        }
    }
}

/// Submits a job for a caller; answers 202 at once, or 201 when it finished with `wait`.
pub async fn submit(
    app: &AppState,
    caller: &Caller,
    spec: JobSpec,
    action: &str,
    target: &str,
    wait: bool,
) -> ApiResult<Response> {
    let (job, merged) = app
        .runner
        .submit_merging(spec, &caller.actor)
        .map_err(|e| {
            audit(app, &caller.actor, action, target, "failed", &e.to_string());
            ApiError::from(e)
        })?;
    audit(
        app,
        &caller.actor,
        action,
        target,
        "started",
        &job_detail(&job.id(), merged),
    );
    let location = format!("/api/v1/jobs/{}", job.id());
    let (status, view) = if wait {
        let v = job.finished().await;
        let status = if v.state == "ok" {
            StatusCode::CREATED
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        (status, v)
    } else {
        (StatusCode::ACCEPTED, job.view())
    };
    let mut r = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// The audit detail of a submitted job.
pub fn job_detail(id: &str, merged: bool) -> String {
    if merged {
        format!("job {id} (the same job was waiting already)")
    } else {
        format!("job {id}")
    }
}

/// `GET /api/v1/snapshots/{id}/download`: a database snapshot as a SQLite file (restored and
/// checked like `restore --to`), a single-file snapshot as that file, anything else as a tar
/// archive.
pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require(&app, &caller, Permission::Download, "download", &id)?;
    let setup = app.setup.clone();
    let file = blocking(move || crate::download::prepare(&setup, &id)).await?;
    Ok(stream_prepared(&app, &caller, file))
}

/// `GET /api/v1/snapshots/{id}/tables/{table}/csv`: one table of a PostgreSQL or MariaDB
/// snapshot as CSV (`restore --table T --to DIR`'s file).
pub async fn download_table(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, table)): Path<(String, String)>,
) -> ApiResult<Response> {
    let target = format!("{id}:{table}");
    require(&app, &caller, Permission::Download, "download", &target)?;
    check_name("table", &table)?;
    let setup = app.setup.clone();
    let file = blocking(move || crate::download::prepare_csv(&setup, &id, &table)).await?;
    Ok(stream_prepared(&app, &caller, file))
}

/// A prepared scratch file as the response body, the download audited; it is deleted (and its
/// directory) once streamed.
fn stream_prepared(app: &AppState, caller: &Caller, file: crate::download::Prepared) -> Response {
    audit(
        app,
        &caller.actor,
        "download",
        &file.snapshot,
        "ok",
        &file.name,
    );
    // Stream the scratch file; it is deleted once open (Unix) or when the stream ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let path = file.path.clone();
    tokio::task::spawn_blocking(move || {
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::open(&path)?;
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                if tx.blocking_send(Ok(buf)).is_err() {
                    return Ok(());
                }
            }
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
        let _ = std::fs::remove_file(&path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    });
    let stream = tokio_stream(rx);
    let mut r = Response::new(Body::from_stream(stream));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.len));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        file.name.replace(['"', '\\', '\r', '\n'], "_")
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A receiver as a stream, without pulling in tokio-stream.
fn tokio_stream(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// `GET /api/v1/audit?limit=N&offset=M`: the audit log, newest first (admin).
pub async fn audit_log(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    require(&app, &caller, Permission::Admin, "audit-log", "")?;
    let number = |key: &str, default: usize| -> ApiResult<usize> {
        q.get(key).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{key} must be a number, not {v:?}")))
        })
    };
    let limit = number("limit", 200)?.min(10_000);
    let offset = number("offset", 0)?;
    let state = app.state.clone();
    let log = blocking(move || Ok(state.audit_page(limit, offset)?)).await?;
    Ok(Json(serde_json::to_value(log).map_err(ApiError::internal)?))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> ApiResult<Response> {
    let page = app.overview().await?;
    let text = crate::metrics::render(&page, &app.runner.recent());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_remedies_are_left_out_of_engine_messages() {
        assert_eq!(
            without_cli_remedies(
                "the schema or user_version of shop.db differs from the snapshot's (a migration ran since?); pass --allow-schema-change to restore anyway"
            ),
            "the schema or user_version of shop.db differs from the snapshot's (a migration ran since?)"
        );
        assert_eq!(
            without_cli_remedies(
                "the restored image of shop.db hashes to ab, the snapshot says cd (damaged data in the repository: `backstop verify --read-data` names the pack)"
            ),
            "the restored image of shop.db hashes to ab, the snapshot says cd"
        );
        assert_eq!(without_cli_remedies("no snapshot abc"), "no snapshot abc");
        assert_eq!(shorten("héllo", 2), "h…");
        assert_eq!(shorten("hello", 5), "hello");
    }

    #[test]
    fn internal_causes_are_not_public() {
        let (status, code, message) =
            ApiError::internal("disk I/O error at /srv/secret/state.db").public();
        assert_eq!(
            (status, code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(!message.contains("/srv/secret") && message.contains("request "));
        let (_, _, message) = ApiError::bad_request("no source \"x\"").public();
        assert_eq!(message, "no source \"x\"");
    }
}
