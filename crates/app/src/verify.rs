//! Verification and restore drills as both front ends ask for them.

use std::path::PathBuf;

use backstop_engine::VerifyOptions;
use backstop_engine::drill::DrillOptions;
use backstop_format::Timestamp;

use crate::backup::Runtime;

/// The engine's options for a verify, reading every pack with `read_data`.
pub fn verify_options(read_data: bool, rt: &Runtime) -> VerifyOptions {
    VerifyOptions {
        read_data,
        host: rt.host.clone(),
    }
}

/// The engine's options for a restore drill that restores into a scratch folder under
/// `scratch` (the CLI: the system's temporary folder; the daemon: its configured one).
pub fn drill_options(scratch: PathBuf, rt: &Runtime, now: Timestamp) -> DrillOptions {
    DrillOptions {
        scratch,
        time: now,
        host: rt.host.clone(),
        server: None,
        rules: Vec::new(),
    }
}

/// The data validation rules of `source` (configured in `config`), which its drills run.
pub fn source_rules(
    config: &crate::config::Config,
    source: &str,
) -> Vec<backstop_sources::rules::Rule> {
    config
        .sources
        .get(source)
        .map(|s| s.rules.clone())
        .unwrap_or_default()
}

/// Drills server databases' dumps on a source's server (scratch databases, see
/// `backstop_sources::server::Server::drill`).
#[derive(Debug)]
pub struct ServerDrillOn(pub backstop_sources::server::Server);

impl backstop_engine::drill::ServerDrill for ServerDrillOn {
    fn drill(
        &self,
        expected: &backstop_format::manifest::ServerDatabase,
        rules: &[backstop_sources::rules::Rule],
        feed: &mut dyn FnMut(&mut dyn std::io::Write) -> backstop_engine::Result<()>,
    ) -> Vec<backstop_format::record::Check> {
        self.0.drill(expected, rules, &mut |w| {
            feed(w).map_err(|e| backstop_sources::Error::Invalid(e.to_string()))
        })
    }
}

/// Where the snapshots of `source` (configured in `config`) are drilled when they are server
/// dumps: the server of its `drill_url`, else of its `url`; `None` for other sources.
pub fn server_drill(
    config: &crate::config::Config,
    source: &str,
) -> anyhow::Result<Option<std::sync::Arc<dyn backstop_engine::drill::ServerDrill>>> {
    let Some(s) = config.sources.get(source) else {
        return Ok(None);
    };
    let server = match (&s.drill_url, s.server_kind()) {
        (Some(url), Some(kind)) => Some(crate::sources::server_at(
            config,
            kind,
            url,
            s.drill_password_file.as_deref(),
        )?),
        _ => crate::sources::server_of(config, s)?,
    };
    Ok(server.map(|server| {
        std::sync::Arc::new(ServerDrillOn(server))
            as std::sync::Arc<dyn backstop_engine::drill::ServerDrill>
    }))
}
