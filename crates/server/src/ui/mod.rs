//! The web UI: server-rendered pages (minijinja templates embedded in the binary, no scripts
//! from elsewhere), usable on a phone. Every form carries the session's CSRF token; every
//! action is authorised here, whatever the page showed.
//!
//! An error page shows the same menu as the other pages when the visitor is logged in: the
//! [`User`] extractor notes who it let in ([`Menu`]), and [`menu_on_errors`] draws an error
//! answer again with that menu.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use backstop_engine::listing::{ListFilter, SnapshotRow};
use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;
use jiff::SignedDuration;
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use crate::api::{ApiError, audit, blocking};
use crate::auth::{Caller, Denied, Permission, authenticate, constant_time_eq};
use crate::jobs::{JobSpec, restore_plan};
use crate::shared::AppState;

mod admin;
mod login;

/// How long a login lasts.
const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);

const STYLE: &str = include_str!("../../templates/style.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// The templates and their filters.
pub fn templates(tz: jiff::tz::TimeZone) -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login.html", include_str!("../../templates/login.html")),
        ("status.html", include_str!("../../templates/status.html")),
        (
            "snapshots.html",
            include_str!("../../templates/snapshots.html"),
        ),
        (
            "snapshot.html",
            include_str!("../../templates/snapshot.html"),
        ),
        ("restore.html", include_str!("../../templates/restore.html")),
        ("job.html", include_str!("../../templates/job.html")),
        (
            "activity.html",
            include_str!("../../templates/activity.html"),
        ),
        ("message.html", include_str!("../../templates/message.html")),
        ("rules.html", include_str!("../../templates/rules.html")),
        ("admin.html", include_str!("../../templates/admin.html")),
        ("confirm.html", include_str!("../../templates/confirm.html")),
    ] {
        env.add_template(name, src)
            .expect("embedded templates parse");
    }
    let zone = tz.clone();
    // An RFC 3339 time in the configured zone: "2026-11-22 14:05".
    env.add_filter("localtime", move |v: Value| -> String {
        let s = v.to_string();
        match s.parse::<Timestamp>() {
            Ok(t) => backstop_policy::format_minute(t, &zone),
            Err(_) => s,
        }
    });
    // Seconds as an age: "3h20m ago".
    env.add_filter("age", backstop_policy::format_age);
    // Seconds as a span of time: "3h20m", "under a minute".
    env.add_filter("span", backstop_policy::format_span);
    env.add_filter("bytes", backstop_policy::format_bytes);
    env.add_filter("short", |v: Value| -> String {
        v.to_string().chars().take(10).collect()
    });
    env
}

/// A serde value as a template value.
fn ser<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(status_page))
        .route("/login", get(login::page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/snapshots", get(snapshots_page))
        .route("/snapshots/{id}", get(snapshot_page))
        .route("/snapshots/{id}/mark-verified", post(mark_verified))
        .route("/backup", post(backup))
        .route("/verify", post(verify))
        .route("/restore", get(restore_page).post(restore))
        .route("/jobs/{id}", get(job_page))
        .route("/activity", get(activity_page))
        .route("/admin", get(admin::page))
        .route("/admin/users", post(admin::add_user))
        .route("/admin/users/remove", post(admin::remove_user))
        .route("/admin/users/role", post(admin::set_role))
        .route("/admin/tokens", post(admin::add_token))
        .route("/admin/tokens/remove", post(admin::remove_token))
        .route("/static/style.css", get(style))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .layer(axum::middleware::from_fn(menu_on_errors))
}

/// A page error: rendered as a page, or a redirect to the login page.
pub enum PageError {
    Login,
    Page(StatusCode, String),
}

impl From<ApiError> for PageError {
    /// The page shows what the API would send: an internal cause is logged, not shown.
    fn from(e: ApiError) -> Self {
        let (status, _, message) = e.public();
        PageError::Page(status, message)
    }
}

impl From<Denied> for PageError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthorized(_) => PageError::Login,
            Denied::Forbidden(m) => PageError::Page(StatusCode::FORBIDDEN, m),
            Denied::Internal(m) => ApiError::internal(m).into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login => Redirect::to("/login").into_response(),
            PageError::Page(status, message) => {
                // Drawn for a visitor not logged in; `menu_on_errors` draws it again with the
                // menu when the page's handler had let a user in.
                let mut r = error_page(status, &message, Value::UNDEFINED);
                r.extensions_mut().insert(ErrorPage(message));
                r
            }
        }
    }
}

/// An error page's message, kept on its response so that it can be drawn again with the menu.
#[derive(Clone)]
struct ErrorPage(String);

/// The menu of the user a page's handler let in (the template context of [`User::ctx`]), set
/// by the [`User`] extractor for [`menu_on_errors`].
#[derive(Clone, Default)]
struct Menu(Arc<Mutex<Option<Value>>>);

impl Menu {
    fn set(&self, ctx: Value) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(ctx);
        }
    }

    fn get(&self) -> Option<Value> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// Gives an error page of a logged-in user's request the menu the other pages have.
async fn menu_on_errors(mut request: Request, next: Next) -> Response {
    let menu = Menu::default();
    request.extensions_mut().insert(menu.clone());
    let mut r = next.run(request).await;
    match (r.extensions_mut().remove::<ErrorPage>(), menu.get()) {
        (Some(ErrorPage(message)), Some(user)) => error_page(r.status(), &message, user),
        _ => r,
    }
}

/// The message page for an error, with the menu of `user` (a [`User::ctx`], or undefined).
fn error_page(status: StatusCode, message: &str, user: Value) -> Response {
    // Rendered without the app: the message page needs only these, and the zone of times
    // does not matter on it.
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    let env = ENV.get_or_init(|| templates(jiff::tz::TimeZone::UTC));
    let title = status.canonical_reason().unwrap_or("Error");
    let html = env
        .get_template("message.html")
        .and_then(|t| {
            t.render(context! { ..user, ..context! { title => title, message => message, error => true } })
        })
        .unwrap_or_else(|e| format!("template error: {e}"));
    let mut r = (status, Html(html)).into_response();
    secure_headers(&mut r);
    r
}

type PageResult = Result<Response, PageError>;

/// A logged-in browser user (API tokens do not open pages).
pub struct User(pub Caller);

impl FromRequestParts<AppState> for User {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PageError> {
        let caller = authenticate(parts, app).map_err(|d| match d {
            Denied::Internal(m) => ApiError::internal(m).into(),
            _ => PageError::Login,
        })?;
        if caller.csrf().is_none() {
            return Err(PageError::Login);
        }
        let user = User(caller);
        if let Some(menu) = parts.extensions.get::<Menu>() {
            menu.set(user.ctx());
        }
        Ok(user)
    }
}

impl User {
    /// The template context every page gets: who is logged in and what they may do.
    fn ctx(&self) -> Value {
        let c = &self.0;
        context! {
            user => c.name.clone(),
            role => c.role().map(|r| r.to_string()),
            csrf => c.csrf(),
            can_backup => c.allows(Permission::Backup),
            can_verify => c.allows(Permission::Verify),
            can_restore => c.allows(Permission::Restore),
            is_admin => c.allows(Permission::Admin),
        }
    }

    /// Checks the form's CSRF token against the session's; a mismatch is audited.
    fn check_csrf(&self, app: &AppState, action: &str, sent: &str) -> Result<(), PageError> {
        match self.0.csrf() {
            Some(c) if constant_time_eq(c, sent) => Ok(()),
            _ => {
                audit(
                    app,
                    &self.0.actor,
                    action,
                    "",
                    "denied",
                    "the form's CSRF token does not match the session",
                );
                Err(PageError::Page(
                    StatusCode::FORBIDDEN,
                    "the form's security token does not match your session: reload the page and try again".into(),
                ))
            }
        }
    }

    fn require(
        &self,
        app: &AppState,
        p: Permission,
        action: &str,
        target: &str,
    ) -> Result<(), PageError> {
        crate::api::require(app, &self.0, p, action, target).map_err(PageError::from)
    }
}

fn render(app: &AppState, name: &str, ctx: Value) -> PageResult {
    let html = app
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| PageError::from(ApiError::internal(format!("page {name}: {e:#}"))))?;
    let mut r = Html(html).into_response();
    secure_headers(&mut r);
    Ok(r)
}

/// What every page sends: no caching, no framing, no scripts or styles from elsewhere.
fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// The icon browsers show in the tab; also at `/favicon.ico`, where browsers look by themselves.
async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}

/// A file embedded in the binary: cached for an hour, its type not to be guessed.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// No such page; under `/api/` the answer is JSON, as the API promises. A logged-in user's
/// page has the menu.
pub async fn not_found(State(app): State<AppState>, request: Request) -> Response {
    let uri = request.uri().clone();
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return crate::api::not_found(uri).await.into_response();
    }
    let (mut parts, _) = request.into_parts();
    let menu = match User::from_request_parts(&mut parts, &app).await {
        Ok(user) => user.ctx(),
        Err(_) => Value::UNDEFINED,
    };
    render(
        &app,
        "message.html",
        context! { ..menu, ..context! { title => "Not found", message => "There is no such page.", error => true } },
    )
    .map(|mut r| {
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    })
    .into_response()
}

async fn status_page(State(app): State<AppState>, user: User) -> PageResult {
    user.0.require(Permission::Read)?;
    let page = app.overview().await?;
    let charts = crate::charts::status_charts(&page, &app.setup.time_zone);
    render(
        &app,
        "status.html",
        context! { ..user.ctx(), ..context! {
            page => ser(&page), charts => ser(&charts),
            timeline_days => crate::charts::TIMELINE_DAYS, nav => "status",
        } },
    )
}

#[derive(Deserialize)]
struct SnapshotsQuery {
    source: Option<String>,
    kind: Option<String>,
}

async fn snapshots_page(
    State(app): State<AppState>,
    user: User,
    Query(q): Query<SnapshotsQuery>,
) -> PageResult {
    user.0.require(Permission::Read)?;
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => Some(
            k.parse::<BackupKind>()
                .map_err(|e| PageError::Page(StatusCode::BAD_REQUEST, e))?,
        ),
        None => None,
    };
    let source = q.source.clone().filter(|s| !s.is_empty());
    let mut rows = app
        .snapshots(ListFilter {
            source: source.clone(),
            kind,
            ..ListFilter::default()
        })
        .await?;
    rows.reverse();
    let sources: Vec<String> = app.setup.sources.iter().map(|s| s.name.clone()).collect();
    render(
        &app,
        "snapshots.html",
        context! { ..user.ctx(), ..context! { rows => ser(&rows), sources => sources, source => source, kind => q.kind, nav => "snapshots" } },
    )
}

async fn snapshot_page(
    State(app): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> PageResult {
    user.0.require(Permission::Read)?;
    let detail = app.snapshot_detail(id).await?;
    let restorable = app
        .setup
        .source(&detail.row.source)
        .is_some_and(|s| s.restorable_in_place());
    render(
        &app,
        "snapshot.html",
        context! { ..user.ctx(), ..context! { s => ser(&detail), restorable => restorable, nav => "snapshots" } },
    )
}

#[derive(Deserialize)]
struct BackupForm {
    csrf: String,
    source: String,
    #[serde(default)]
    description: String,
}

async fn backup(State(app): State<AppState>, user: User, Form(f): Form<BackupForm>) -> PageResult {
    user.check_csrf(&app, "backup", &f.csrf)?;
    user.require(&app, Permission::Backup, "backup", &f.source)?;
    let description = Some(f.description.trim().to_string()).filter(|d| !d.is_empty());
    backstop_format::limits::check_snapshot_texts(description.as_deref(), None, &[])
        .map_err(|e| PageError::Page(StatusCode::BAD_REQUEST, e.to_string()))?;
    let spec = JobSpec::Backup {
        source: f.source.clone(),
        kind: BackupKind::Manual,
        description,
        ticket: None,
        tags: vec![],
    };
    start(&app, &user, spec, "backup", &f.source)
}

#[derive(Deserialize)]
struct VerifyForm {
    csrf: String,
    kind: String,
    #[serde(default)]
    source: String,
}

async fn verify(State(app): State<AppState>, user: User, Form(f): Form<VerifyForm>) -> PageResult {
    user.check_csrf(&app, "verify", &f.csrf)?;
    user.require(&app, Permission::Verify, "verify", &f.source)?;
    let spec = match f.kind.as_str() {
        "drill" => JobSpec::Drill {
            source: f.source.clone(),
        },
        "data" => JobSpec::Verify { read_data: true },
        _ => JobSpec::Verify { read_data: false },
    };
    start(&app, &user, spec, "verify", &f.source)
}

/// Submits a job and shows its page.
fn start(app: &AppState, user: &User, spec: JobSpec, action: &str, target: &str) -> PageResult {
    match app.runner.submit_merging(spec, &user.0.actor) {
        Ok((job, merged)) => {
            audit(
                app,
                &user.0.actor,
                action,
                target,
                "started",
                &crate::api::job_detail(&job.id(), merged),
            );
            Ok(Redirect::to(&format!("/jobs/{}", job.id())).into_response())
        }
        Err(e) => {
            audit(app, &user.0.actor, action, target, "failed", &e.to_string());
            Err(ApiError::from(e).into())
        }
    }
}

#[derive(Deserialize)]
struct RestoreQuery {
    source: Option<String>,
    snapshot: Option<String>,
    /// "As of a time", picked (`<input type=datetime-local>`: `2026-12-04T18:00`).
    at: Option<String>,
    /// "As of a time", typed (`yesterday 18:00`, `2026-12-04 18:00`); wins over the picker.
    at_text: Option<String>,
    /// The snapshot just marked verified (after [`mark_verified`]): the page says so.
    marked: Option<String>,
}

impl RestoreQuery {
    /// The snapshot asked for: an id or `latest-verified`, else `@TIME` from the time fields.
    fn spec(&self) -> Result<Option<String>, String> {
        fn field(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        if let Some(s) = field(&self.snapshot) {
            return Ok(Some(s.to_string()));
        }
        match field(&self.at_text).or(field(&self.at)) {
            Some(t) if t.contains('@') => Err(format!(
                "{:?} is not a time: type only the time, e.g. 2026-12-04 18:00 or yesterday 18:00",
                crate::api::shorten(t, 100)
            )),
            Some(t) => Ok(Some(format!("@{t}"))),
            None => Ok(None),
        }
    }
}

async fn restore_page(
    State(app): State<AppState>,
    user: User,
    Query(q): Query<RestoreQuery>,
) -> PageResult {
    user.require(
        &app,
        Permission::Restore,
        "restore-plan",
        q.source.as_deref().unwrap_or(""),
    )?;
    let restorable: Vec<String> = app
        .setup
        .sources
        .iter()
        .filter(|s| s.restorable_in_place())
        .map(|s| s.name.clone())
        .collect();
    let source = q
        .source
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| (restorable.len() == 1).then(|| restorable[0].clone()));
    let mut rows = Vec::new();
    let mut plan = None;
    let mut as_of = None;
    let mut plan_error = None;
    if let Some(src) = &source {
        rows = app
            .snapshots(ListFilter {
                source: Some(src.clone()),
                ..ListFilter::default()
            })
            .await?;
        rows.reverse();
        match q.spec() {
            Ok(Some(spec)) => {
                check_text("snapshot", &spec)?;
                let setup = app.setup.clone();
                let src = src.clone();
                match blocking(move || plan_of(&setup, &spec, &src)).await {
                    Ok((p, time, kind)) => {
                        plan = Some(p);
                        as_of = time.map(|t| {
                            context! {
                                time => crate::resolve::local_time(t, &app.setup.time_zone),
                                kind => kind.as_str(),
                            }
                        });
                    }
                    Err(e) => plan_error = Some(e.public().2),
                }
            }
            Ok(None) => {}
            Err(e) => plan_error = Some(e),
        }
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    // Pre-change snapshots waiting for someone to confirm their change went well, newest
    // first; and the one just marked, as the repository now records it.
    let waiting: Vec<&SnapshotRow> = rows
        .iter()
        .filter(|r| {
            r.pre_change
                .as_ref()
                .is_some_and(|p| p.state == "pending-verification")
        })
        .collect();
    let marked = q
        .marked
        .as_deref()
        .and_then(|m| rows.iter().find(|r| r.id.to_hex() == m))
        .filter(|r| {
            r.pre_change
                .as_ref()
                .is_some_and(|p| p.verified_at.is_some())
        });
    render(
        &app,
        "restore.html",
        context! { ..user.ctx(), ..context! {
            restorable => restorable, source => source, rows => ser(&rows),
            waiting => ser(&waiting), marked => marked.map(ser),
            plan => plan, plan_error => plan_error, nav => "restore",
            as_of => as_of,
            time_zone => crate::resolve::zone_name(&app.setup.time_zone),
            at => text(&q.at), at_text => text(&q.at_text),
            compare_limit => backstop_app::restore::COMPARE_LIMIT_BYTES,
            server_compare_limit => backstop_app::restore::SERVER_COMPARE_LIMIT_BYTES,
        } },
    )
}

/// The plan of restoring what `spec` names, the time a time spec was read as, and the kind of
/// the snapshot found. The plan names the snapshot by id, and the confirm form sends that id:
/// what is restored is what was shown.
///
/// A database server source's plan ([`crate::jobs::server_plan`]) has `server`, by which the page
/// tells it from a SQLite database's.
fn plan_of(
    setup: &crate::setup::Setup,
    spec: &str,
    source: &str,
) -> anyhow::Result<(Value, Option<Timestamp>, BackupKind)> {
    if setup.source(source).is_some_and(|s| s.server.is_some()) {
        let plan = crate::jobs::server_plan(setup, spec, source)?;
        let (_, as_of, kind) = plan.found;
        return Ok((ser(&plan), as_of, kind));
    }
    let found = crate::resolve::find(setup, spec, Some(source))?;
    let plan = crate::jobs::compared_plan(setup, &found.id.to_string(), source)?;
    Ok((ser(&plan), found.as_of, found.snapshot.kind))
}

#[derive(Deserialize)]
struct MarkForm {
    csrf: String,
    /// What was checked.
    #[serde(default)]
    note: String,
    /// The page the button was on: `snapshots` goes back to that source's snapshot list.
    #[serde(default)]
    back: String,
}

/// The "Mark verified" button of a pre-change snapshot waiting for confirmation (operators and
/// admins): writes the record `backstop mark-verified` writes, by the logged-in user, audited;
/// then back to the restore page of its source, which says so (the snapshot's page for a user
/// who may not restore).
async fn mark_verified(
    State(app): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Form(f): Form<MarkForm>,
) -> PageResult {
    user.check_csrf(&app, "mark-verified", &f.csrf)?;
    user.require(&app, Permission::Verify, "mark-verified", &id)?;
    check_text("snapshot", &id)?;
    let note = Some(f.note.trim().to_owned());
    let by = user.0.name.clone();
    let done = crate::api::mark_verified_as(&app, &user.0.actor, &id, by, note).await?;
    let id = done.snapshot.to_hex();
    let back = match (f.back.as_str(), user.0.allows(Permission::Restore)) {
        ("snapshots", _) => format!("/snapshots?source={}", encode(&done.source)),
        (_, true) => format!("/restore?source={}&marked={id}", encode(&done.source)),
        (_, false) => format!("/snapshots/{id}"),
    };
    Ok(Redirect::to(&back).into_response())
}

/// A query parameter's value, percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page's text parameter over the name limit is refused, like the API's.
fn check_text(what: &'static str, value: &str) -> Result<(), PageError> {
    crate::api::check_name(what, value).map_err(PageError::from)
}

#[derive(Deserialize)]
struct RestoreForm {
    csrf: String,
    source: String,
    snapshot: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    allow_schema_change: Option<String>,
}

async fn restore(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<RestoreForm>,
) -> PageResult {
    user.check_csrf(&app, "restore", &f.csrf)?;
    let target = format!("{}@{}", f.source, f.snapshot);
    user.require(&app, Permission::Restore, "restore", &target)?;
    if f.confirm.trim() != f.source {
        audit(
            &app,
            &user.0.actor,
            "restore",
            &target,
            "denied",
            "not confirmed",
        );
        return Err(PageError::Page(
            StatusCode::BAD_REQUEST,
            format!(
                "Not confirmed: type the source name ({}) to replace its live data. Nothing was changed.",
                f.source
            ),
        ));
    }
    let allow = f.allow_schema_change.is_some();
    if app
        .setup
        .source(&f.source)
        .is_some_and(|s| s.server.is_some())
    {
        // The job checks the schema itself (and fails, changing nothing, unless allowed).
        let setup = app.setup.clone();
        let (snap, src) = (f.snapshot.clone(), f.source.clone());
        let found = blocking(move || crate::resolve::find(&setup, &snap, Some(&src))).await?;
        let spec = JobSpec::Restore {
            snapshot: found.id,
            source: f.source.clone(),
            allow_schema_change: allow,
        };
        return start(&app, &user, spec, "restore", &target);
    }
    let setup = app.setup.clone();
    let (snap, src) = (f.snapshot.clone(), f.source.clone());
    let plan = blocking(move || Ok(restore_plan(&setup, &snap, &src)?.plan)).await?;
    if plan.schema_matches == Some(false) && !allow {
        return Err(PageError::Page(
            StatusCode::CONFLICT,
            "The snapshot's schema differs from the live database's: tick \"restore anyway\" on the plan to go on. Nothing was changed.".into(),
        ));
    }
    let spec = JobSpec::Restore {
        snapshot: plan.snapshot,
        source: f.source.clone(),
        allow_schema_change: allow,
    };
    start(&app, &user, spec, "restore", &target)
}

async fn job_page(State(app): State<AppState>, user: User, Path(id): Path<String>) -> PageResult {
    user.0.require(Permission::Read)?;
    let job = match app.runner.job_view(&id) {
        Some(view) => ser(&view),
        None => {
            // Finished before the daemon last started: from the history.
            let state = app.state.clone();
            let found = blocking(move || Ok(state.job(&id)?)).await?;
            let Some(j) = found else {
                return Err(PageError::Page(
                    StatusCode::NOT_FOUND,
                    "No such job (see Activity for the history).".into(),
                ));
            };
            let progress = crate::jobs::record_progress(&j);
            context! {
                id => j.id, kind => j.kind, source => j.source, trigger => j.trigger,
                state => j.outcome, queued => j.started.to_string(), started => j.started.to_string(),
                finished => j.finished.map(|t| t.to_string()), message => j.message,
                result => ser(&j.detail), description => j.figures.description,
                progress => progress,
            }
        }
    };
    let active = matches!(
        job.get_attr("state")
            .ok()
            .and_then(|s| s.as_str().map(str::to_string))
            .as_deref(),
        Some("queued" | "running")
    );
    render(
        &app,
        "job.html",
        context! { ..user.ctx(), ..context! { job => job, active => active, nav => "activity" } },
    )
}

/// Audit rows per page of the activity page.
const AUDIT_PAGE: usize = 100;

#[derive(Deserialize)]
struct ActivityQuery {
    /// The audit log's page, 1 the newest.
    #[serde(default)]
    page: Option<usize>,
}

async fn activity_page(
    State(app): State<AppState>,
    user: User,
    Query(q): Query<ActivityQuery>,
) -> PageResult {
    user.0.require(Permission::Read)?;
    let state = app.state.clone();
    let admin = user.0.allows(Permission::Admin);
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let (jobs, audit_log, rows) = blocking(move || {
        let jobs = state.jobs(None, 100)?;
        let (audit_log, rows) = if admin {
            (
                state.audit_page(AUDIT_PAGE, (page - 1) * AUDIT_PAGE)?,
                state.audit_rows()?,
            )
        } else {
            (vec![], 0)
        };
        Ok((jobs, audit_log, rows))
    })
    .await?;
    let pages = usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .div_ceil(AUDIT_PAGE);
    render(
        &app,
        "activity.html",
        context! { ..user.ctx(), ..context! {
            jobs => ser(&jobs), audit => ser(&audit_log), nav => "activity",
            page => page, pages => pages.max(1),
            retention_days => app.audit_retention.as_hours() / 24,
        } },
    )
}
