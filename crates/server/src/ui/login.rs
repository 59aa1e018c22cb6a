//! Logging in and out. A login is refused when a browser sent it from another site, and
//! rate-limited per user name and client address (five failures in 15 minutes; a success
//! clears its own count) and per client address (twenty failures, whatever the names).

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use backstop_format::Timestamp;
use backstop_format::limits::MAX_NAME_BYTES;
use minijinja::context;
use serde::Deserialize;

use super::{PageError, PageResult, User, render};
use crate::api::{ApiError, audit, shorten};
use crate::auth::SESSION_COOKIE;
use crate::client::{ClientAddr, cross_site};
use crate::shared::AppState;

/// Longer passwords are refused without hashing them.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn page(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> PageResult {
    let users = app.state.users().map_err(ApiError::internal)?;
    render(
        &app,
        "login.html",
        context! { next => q.next, no_users => users.is_empty() },
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
}

/// The login page again with a message and a status.
fn again(app: &AppState, status: StatusCode, error: String, username: &str) -> PageResult {
    let ctx = context! { error => error, username => username };
    render(app, "login.html", ctx).map(|mut r| {
        *r.status_mut() = status;
        r
    })
}

pub(super) async fn login(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let now = Timestamp::now();
    let ip = client.label();
    let name = shorten(form.username.trim(), MAX_NAME_BYTES).into_owned();
    let actor = format!("user:{name}");
    let own_key = format!("user:{name}@{ip}");
    let address_key = format!("addr:{ip}");
    let limited = app
        .limiter
        .check(&own_key, now)
        .and_then(|()| app.address_limiter.check(&address_key, now));
    if let Err(wait) = limited {
        // One collapsing row per address, whatever names it tries.
        audit(
            &app,
            &format!("client:{ip}"),
            "login",
            "",
            "denied",
            "rate limited",
        );
        let minutes = (wait.as_secs() + 59) / 60;
        return again(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed attempts: try again in {minutes} minutes."),
            &name,
        );
    }
    if let Some(why) = cross_site(&headers, client.via_proxy) {
        // Counted against the address: a flood of them ends in one "rate limited" row.
        app.address_limiter.failure(&address_key, now);
        audit(
            &app,
            &actor,
            "login",
            "",
            "denied",
            &format!("{}, from {ip}", shorten(&why, 200)),
        );
        return Err(PageError::Page(
            StatusCode::FORBIDDEN,
            "This login was sent from another web site and was refused. Open the backstop page itself and log in there.".into(),
        ));
    }
    let plausible =
        form.username.trim().len() <= MAX_NAME_BYTES && form.password.len() <= MAX_PASSWORD_BYTES;
    let role = if plausible {
        let state = app.state.clone();
        let (n, p) = (name.clone(), form.password.clone());
        tokio::task::spawn_blocking(move || state.check_password(&n, &p))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?
    } else {
        None
    };
    if role.is_none() {
        app.limiter.failure(&own_key, now);
        app.address_limiter.failure(&address_key, now);
        audit(
            &app,
            &actor,
            "login",
            "",
            "failed",
            &format!("wrong user name or password, from {ip}"),
        );
        return again(
            &app,
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".into(),
            &name,
        );
    }
    app.limiter.success(&own_key);
    let session = app
        .state
        .create_session(&name, super::SESSION_TTL, now)
        .map_err(ApiError::internal)?;
    audit(&app, &actor, "login", "", "ok", &format!("from {ip}"));
    let mut r = Redirect::to("/").into_response();
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.id,
        super::SESSION_TTL.as_secs(),
        if app.secure_cookies { "; Secure" } else { "" }
    );
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(r)
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(
    State(app): State<AppState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&app, "logout", &form.csrf)?;
    if let Some(id) = crate::auth::cookie(&headers, SESSION_COOKIE) {
        let _ = app.state.delete_session(id);
    }
    audit(&app, &user.0.actor, "logout", "", "ok", "");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .expect("static cookie"),
    );
    Ok(r)
}
