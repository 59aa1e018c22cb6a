//! The daemon's shared parts: what every request handler and job reaches through [`AppState`].

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use backstop_format::Timestamp;
use jiff::SignedDuration;

use crate::jobs::Runner;
use crate::notify::Notifier;
use crate::setup::{DEFAULT_AUDIT_RETENTION, Setup};
use crate::state::{LoginLimiter, State};
use crate::ui;

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
}
