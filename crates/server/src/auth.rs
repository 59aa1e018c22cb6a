//! Who is calling and what they may do: API tokens (`Authorization: Bearer`) and browser
//! sessions (an HttpOnly, SameSite=Strict cookie), checked on the server for every request.
//!
//! | permission | viewer | operator | admin | read token | backup token | admin token |
//! |---|---|---|---|---|---|---|
//! | read status, snapshots, jobs | yes | yes | yes | yes | yes | yes |
//! | start a backup | | yes | yes | | yes | yes |
//! | start a verification or drill | | yes | yes | | | yes |
//! | restore (and its plan), download data | | | yes | | | yes |
//! | users, tokens, audit log | | | yes | | | yes |

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use backstop_format::Timestamp;

use crate::api::audit;
use crate::shared::AppState;
use crate::state::{Role, Scope};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "backstop_session";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Backup,
    Verify,
    Restore,
    Download,
    Admin,
}

impl Permission {
    fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read status",
            Permission::Backup => "start backups",
            Permission::Verify => "start verifications",
            Permission::Restore => "restore",
            Permission::Download => "download data",
            Permission::Admin => "administer",
        }
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    User { role: Role, csrf: String },
    Token { scope: Scope },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `user:NAME` or `token:NAME`, as the audit log shows it.
    pub actor: String,
    pub name: String,
    pub credential: Credential,
}

impl Caller {
    pub fn allows(&self, p: Permission) -> bool {
        use Permission::*;
        match &self.credential {
            Credential::User { role, .. } => match role {
                Role::Viewer => p == Read,
                Role::Operator => matches!(p, Read | Backup | Verify),
                Role::Admin => true,
            },
            Credential::Token { scope } => match scope {
                Scope::Read => p == Read,
                Scope::Backup => matches!(p, Read | Backup),
                Scope::Admin => true,
            },
        }
    }

    /// `Ok` when allowed; a 403 that says what is missing otherwise.
    pub fn require(&self, p: Permission) -> Result<(), Denied> {
        if self.allows(p) {
            Ok(())
        } else {
            Err(Denied::Forbidden(format!(
                "{} may not {}: {}",
                self.actor,
                p.as_str(),
                match &self.credential {
                    Credential::User { role, .. } =>
                        format!("the {role} role does not allow it (ask an administrator)"),
                    Credential::Token { scope } => format!(
                        "the token's scope is {scope} (create one with `backstop token add NAME --scope admin` if this app needs it)"
                    ),
                }
            )))
        }
    }

    pub fn role(&self) -> Option<Role> {
        match &self.credential {
            Credential::User { role, .. } => Some(*role),
            Credential::Token { .. } => None,
        }
    }

    /// The session's CSRF token (browser sessions only).
    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::User { csrf, .. } => Some(csrf),
            Credential::Token { .. } => None,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub enum Denied {
    /// No or unknown credentials.
    Unauthorized(String),
    /// Known caller, not allowed.
    Forbidden(String),
    /// The credentials could not be checked (the state file failed): the daemon's fault.
    Internal(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, msg) = match self {
            Denied::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            Denied::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            Denied::Internal(m) => return crate::api::ApiError::internal(m).into_response(),
        };
        let mut r = (
            status,
            axum::Json(serde_json::json!({ "error": msg, "code": code })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"backstop\""),
            );
        }
        r
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds the caller: a Bearer token first, else the session cookie.
pub fn authenticate(parts: &Parts, app: &AppState) -> Result<Caller, Denied> {
    if let Some(h) = parts.headers.get(AUTHORIZATION) {
        let token = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Denied::Unauthorized(
                    "the Authorization header must be `Bearer TOKEN` (create a token with `backstop token add NAME --scope read|backup|admin`)".into(),
                )
            })?;
        return match app.state.check_token(token) {
            Ok(Some(t)) => Ok(Caller {
                actor: format!("token:{}", t.name),
                name: t.name,
                credential: Credential::Token { scope: t.scope },
            }),
            Ok(None) => {
                // Named when it was revoked, so an admin sees which app still uses it.
                let (actor, detail) = match app.state.revoked_token(token) {
                    Ok(Some(name)) => (format!("token:{name}"), "revoked token"),
                    _ => ("token:?".to_string(), "unknown token"),
                };
                audit(app, &actor, "authenticate", &route(parts), "denied", detail);
                Err(Denied::Unauthorized(
                    "unknown or revoked API token (list tokens with `backstop token list`)".into(),
                ))
            }
            Err(e) => Err(Denied::Internal(format!("cannot check an API token: {e}"))),
        };
    }
    if let Some(id) = cookie(&parts.headers, SESSION_COOKIE) {
        return match app.state.session(id, Timestamp::now()) {
            Ok(Some(s)) => Ok(Caller {
                actor: format!("user:{}", s.user),
                name: s.user,
                credential: Credential::User {
                    role: s.role,
                    csrf: s.csrf,
                },
            }),
            Ok(None) => Err(Denied::Unauthorized(
                "your session has expired: log in again".into(),
            )),
            Err(e) => Err(Denied::Internal(format!("cannot check a session: {e}"))),
        };
    }
    Err(Denied::Unauthorized(
        "log in, or send an API token as `Authorization: Bearer TOKEN`".into(),
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Denied> {
        let caller = authenticate(parts, app)?;
        // A browser session's mutating API calls must carry its CSRF token in a header
        // (forms carry it in a field, checked by the page handlers).
        if !parts.method.is_safe()
            && parts.uri.path().starts_with("/api/")
            && let Some(csrf) = caller.csrf()
        {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|s| constant_time_eq(s, csrf)) {
                audit(
                    app,
                    &caller.actor,
                    "csrf",
                    &route(parts),
                    "denied",
                    if sent.is_some() {
                        "wrong X-CSRF-Token header"
                    } else {
                        "no X-CSRF-Token header"
                    },
                );
                return Err(Denied::Forbidden(
                    "a browser session must send its X-CSRF-Token header with this request".into(),
                ));
            }
        }
        Ok(caller)
    }
}

/// The route a request matched (`/api/v1/jobs/{id}`), for the audit log: one of a few, so
/// repeated failures collapse whatever ids a client makes up.
fn route(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default()
}

/// Compares two secrets without stopping at the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
