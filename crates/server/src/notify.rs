//! Notifications: a webhook (a JSON POST) when a job fails or a source is overdue, and
//! Healthchecks-style pings per source (`URL/start` when a backup starts, `URL` on success,
//! `URL/fail` on failure). They are sent from a background thread, each with a 10-second
//! limit; a notification that cannot be sent is logged, never retried in a loop, and never
//! holds a job up.

use std::time::Duration;

use backstop_format::Timestamp;
use serde::Serialize;

use crate::jobs::JobView;
use crate::setup::Setup;

/// The webhook's JSON body.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `job-failed` or `overdue`.
    pub event: &'static str,
    pub source: String,
    pub time: Timestamp,
    pub host: String,
    pub message: String,
    /// The failed job, for `job-failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobView>,
    /// The source's newest snapshot time, for `overdue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Timestamp>,
}

/// Sends notifications.
#[derive(Debug, Default)]
pub struct Notifier {
    /// Set in tests: notifications are also kept here.
    pub sent: std::sync::Mutex<Vec<(String, String)>>,
    /// Keep a copy of what was sent (tests).
    pub record: bool,
}

impl Notifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A job started: the source's `/start` ping, for backups.
    pub fn start(&self, setup: &Setup, job: &JobView) {
        if job.kind != "backup" {
            return;
        }
        if let Some(url) = setup.source(&job.source).and_then(|s| s.ping_url.clone()) {
            self.send(
                format!("{}/start", url.trim_end_matches('/')),
                String::new(),
            );
        }
    }

    /// A job finished: the source's success or `/fail` ping for backups; the webhook for any
    /// failed job.
    pub fn finished(&self, setup: &Setup, job: &JobView) {
        let failed = job.state != "ok";
        if job.kind == "backup"
            && let Some(url) = setup.source(&job.source).and_then(|s| s.ping_url.clone())
        {
            let url = url.trim_end_matches('/').to_string();
            let url = if failed { format!("{url}/fail") } else { url };
            self.send(url, job.message.clone());
        }
        if failed && let Some(hook) = &setup.webhook {
            let e = Event {
                event: "job-failed",
                source: job.source.clone(),
                time: Timestamp::now(),
                host: setup.host.clone(),
                message: format!("{} {}: {}", job.kind, job.state, job.message),
                job: Some(job.clone()),
                last_backup: None,
            };
            self.send(hook.clone(), serde_json::to_string(&e).unwrap_or_default());
        }
    }

    /// A source became overdue.
    pub fn overdue(&self, setup: &Setup, source: &str, last_backup: Option<Timestamp>) {
        tracing::warn!("source {source} is overdue (last backup {last_backup:?})");
        if let Some(hook) = &setup.webhook {
            let e = Event {
                event: "overdue",
                source: source.to_string(),
                time: Timestamp::now(),
                host: setup.host.clone(),
                message: format!("{source} is overdue: no backup since its schedule's last run"),
                job: None,
                last_backup,
            };
            self.send(hook.clone(), serde_json::to_string(&e).unwrap_or_default());
        }
        if let Some(url) = setup.source(source).and_then(|s| s.ping_url.clone()) {
            self.send(
                format!("{}/fail", url.trim_end_matches('/')),
                format!("{source} is overdue"),
            );
        }
    }

    fn send(&self, url: String, body: String) {
        if self.record {
            self.sent
                .lock()
                .expect("sent lock")
                .push((url.clone(), body.clone()));
        }
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let content_type = if body.starts_with('{') {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            match agent
                .post(&url)
                .header("Content-Type", content_type)
                .header(
                    "User-Agent",
                    concat!("backstop/", env!("CARGO_PKG_VERSION")),
                )
                .send(body.as_bytes())
            {
                Ok(_) => tracing::debug!("notified {url}"),
                Err(e) => tracing::warn!("notification to {url} failed: {e}"),
            }
        });
    }
}
