//! The admin page: users, roles, API tokens, and the settings in effect.
//!
//! What cannot be undone asks first, without scripts: removing a user or revoking a token
//! posts a form; without `confirm=yes` the answer is a page naming what would go, whose
//! Confirm button posts the same form again with `confirm=yes` (and the CSRF token), and
//! whose Cancel link goes back to the admin page.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{PageError, PageResult, User, render, ser};
use crate::api::{ApiError, audit};
use crate::auth::Permission;
use crate::shared::AppState;
use crate::state::StateError;

/// What the admin page shows after an action.
#[derive(Default)]
struct Notice {
    text: Option<String>,
    bad: bool,
    token: Option<(String, String)>,
}

pub(super) async fn page(State(app): State<AppState>, user: User) -> PageResult {
    user.require(&app, Permission::Admin, "admin-page", "")?;
    render_admin(&app, &user, Notice::default())
}

fn render_admin(app: &AppState, user: &User, notice: Notice) -> PageResult {
    let users = app.state.users().map_err(ApiError::internal)?;
    let tokens = app.state.tokens().map_err(ApiError::internal)?;
    let setup = &app.setup;
    let t = &setup.tasks;
    let tasks: Vec<Value> = [
        ("Structure check", &t.verify),
        ("Full data check", &t.verify_data),
        ("Restore drills", &t.drill),
        ("Retention (forget)", &t.forget),
        ("Prune", &t.prune),
    ]
    .into_iter()
    .map(|(name, sch)| context! { name => name, schedule => sch.as_ref().map(ToString::to_string) })
    .collect();
    let sources: Vec<Value> = setup
        .sources
        .iter()
        .map(|s| {
            context! {
                name => s.name.clone(),
                kind => s.kind.clone(),
                schedule => s.schedule.as_ref().map(ToString::to_string),
                retention => setup.retention.per_source.get(&s.name).map(|p| p.describe()),
            }
        })
        .collect();
    let settings = context! {
        repository => setup.repo_location.clone(),
        time_zone => setup.time_zone.iana_name().unwrap_or("system").to_string(),
        startup_backup => t.startup_backup,
        tasks => tasks,
        sources => sources,
        retention => setup.retention.policy.describe(),
        webhook => setup.webhook.is_some(),
    };
    let (new_token_name, new_token) = notice.token.unzip();
    render(
        app,
        "admin.html",
        context! { ..user.ctx(), ..context! {
            users => ser(&users), tokens => ser(&tokens), settings => settings,
            notice => notice.text, notice_bad => notice.bad,
            new_token => new_token, new_token_name => new_token_name, nav => "admin",
        } },
    )
}

/// Runs an admin action from a form: CSRF and role checked, audited, the page shown again.
fn admin_action(
    app: &AppState,
    user: &User,
    csrf: &str,
    action: &str,
    target: &str,
    f: impl FnOnce() -> Result<Notice, crate::state::StateError>,
) -> PageResult {
    user.check_csrf(app, action, csrf)?;
    user.require(app, Permission::Admin, action, target)?;
    let notice = match f() {
        Ok(n) => {
            audit(app, &user.0.actor, action, target, "ok", "");
            n
        }
        // The state file failed, not the form: not shown as the admin's mistake.
        Err(
            e @ (StateError::Sqlite(_)
            | StateError::Open { .. }
            | StateError::NoDirectory(_)
            | StateError::TooNew { .. }
            | StateError::Hash(_)
            | StateError::Random(_)
            | StateError::Corrupt(_)),
        ) => {
            audit(
                app,
                &user.0.actor,
                action,
                target,
                "failed",
                "internal error",
            );
            return Err(ApiError::internal(e).into());
        }
        Err(e) => {
            audit(app, &user.0.actor, action, target, "failed", &e.to_string());
            Notice {
                text: Some(e.to_string()),
                bad: true,
                token: None,
            }
        }
    };
    let status = if notice.bad {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_admin(app, user, notice).map(|mut r| {
        *r.status_mut() = status;
        r
    })
}

fn done(text: String) -> Result<Notice, crate::state::StateError> {
    Ok(Notice {
        text: Some(text),
        ..Notice::default()
    })
}

/// What a removal would take away, for its confirmation page.
enum Removal {
    User(crate::state::UserInfo),
    Token(crate::state::TokenInfo),
}

/// The confirmation page of a removal: the form is checked as the action itself would check
/// it, then the page names what would go. No such user or token is shown as the action
/// itself shows it, and nothing is removed.
fn ask_first(
    app: &AppState,
    user: &User,
    csrf: &str,
    action: &str,
    target: &str,
    find: impl FnOnce() -> Result<Removal, StateError>,
) -> PageResult {
    user.check_csrf(app, action, csrf)?;
    user.require(app, Permission::Admin, action, target)?;
    let (kind, item) = match find() {
        Ok(Removal::User(u)) => ("user", ser(&u)),
        Ok(Removal::Token(t)) => ("token", ser(&t)),
        Err(e) => return admin_action(app, user, csrf, action, target, || Err(e)),
    };
    render(
        app,
        "confirm.html",
        context! { ..user.ctx(), ..context! {
            kind => kind, item => item, nav => "admin",
        } },
    )
}

#[derive(Deserialize)]
pub(super) struct UserForm {
    csrf: String,
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    /// `yes` from the confirmation page of a removal.
    #[serde(default)]
    confirm: String,
}

fn parse_role(s: &str) -> Result<crate::state::Role, crate::state::StateError> {
    s.parse().map_err(|e: crate::state::ParseChoiceError| {
        crate::state::StateError::Invalid(e.to_string())
    })
}

pub(super) async fn add_user(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<UserForm>,
) -> PageResult {
    let state = app.state.clone();
    // Hashing the password takes a moment: check first, then hash off the async threads.
    user.check_csrf(&app, "user-add", &f.csrf)?;
    user.require(&app, Permission::Admin, "user-add", &f.name)?;
    let (name, role, password) = (f.name.clone(), f.role.clone(), f.password.clone());
    let result = tokio::task::spawn_blocking(move || -> Result<_, StateError> {
        let role = parse_role(&role)?;
        state.add_user(&name, role, &password)?;
        Ok(role)
    })
    .await
    .map_err(ApiError::internal)?;
    admin_action(&app, &user, &f.csrf, "user-add", &f.name, || {
        let role = result?;
        done(format!("User {} added as {role}.", f.name))
    })
}

pub(super) async fn remove_user(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<UserForm>,
) -> PageResult {
    if f.name == user.0.name {
        return Err(PageError::Page(
            StatusCode::BAD_REQUEST,
            "You cannot remove yourself: ask another administrator.".into(),
        ));
    }
    if f.confirm != "yes" {
        return ask_first(&app, &user, &f.csrf, "user-remove", &f.name, || {
            let found = app.state.users()?.into_iter().find(|u| u.name == f.name);
            found
                .map(Removal::User)
                .ok_or_else(|| StateError::NotFound(format!("user {:?}", f.name)))
        });
    }
    admin_action(&app, &user, &f.csrf, "user-remove", &f.name, || {
        app.state.remove_user(&f.name)?;
        done(format!("User {} removed; their sessions ended.", f.name))
    })
}

pub(super) async fn set_role(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<UserForm>,
) -> PageResult {
    admin_action(&app, &user, &f.csrf, "user-role", &f.name, || {
        let role = parse_role(&f.role)?;
        if f.name == user.0.name && role != crate::state::Role::Admin {
            return Err(crate::state::StateError::Invalid(
                "you cannot take your own admin role: ask another administrator".into(),
            ));
        }
        app.state.set_role(&f.name, role)?;
        done(format!("{} is now {role}.", f.name))
    })
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    scope: String,
    /// `yes` from the confirmation page of a revocation.
    #[serde(default)]
    confirm: String,
}

pub(super) async fn add_token(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<TokenForm>,
) -> PageResult {
    admin_action(&app, &user, &f.csrf, "token-add", &f.name, || {
        let scope: crate::state::Scope =
            f.scope
                .parse()
                .map_err(|e: crate::state::ParseChoiceError| {
                    crate::state::StateError::Invalid(e.to_string())
                })?;
        let secret = app.state.add_token(&f.name, scope)?;
        Ok(Notice {
            token: Some((f.name.clone(), secret)),
            ..Notice::default()
        })
    })
}

pub(super) async fn remove_token(
    State(app): State<AppState>,
    user: User,
    Form(f): Form<TokenForm>,
) -> PageResult {
    if f.confirm != "yes" {
        return ask_first(&app, &user, &f.csrf, "token-remove", &f.name, || {
            let found = app.state.tokens()?.into_iter().find(|t| t.name == f.name);
            found
                .map(Removal::Token)
                .ok_or_else(|| StateError::NotFound(format!("token {:?}", f.name)))
        });
    }
    admin_action(&app, &user, &f.csrf, "token-remove", &f.name, || {
        app.state.remove_token(&f.name)?;
        done(format!("Token {} revoked.", f.name))
    })
}
