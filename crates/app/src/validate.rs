//! `backstop validate`: a source's data validation rules (`[[sources.S.rules]]`) run on its
//! live data ([`backstop_sources::rules`]).

use crate::config::Config;
use crate::error::UsageError;
use crate::sources::{ConfiguredKind, configured_kind};

pub use backstop_sources::rules::{Rule, RuleResult};

/// The rules of `source` run on its live database, in one read transaction.
pub fn validate_source(config: &Config, source: &str) -> anyhow::Result<(String, Vec<RuleResult>)> {
    let s = config
        .sources
        .get(source)
        .ok_or_else(|| UsageError(format!("source {source:?} is not in backstop.toml")))?;
    if s.rules.is_empty() {
        return Err(UsageError(format!(
            "source {source:?} has no rules: add [[sources.{source}.rules]] entries to \
             backstop.toml (README, \"Data validation rules\")"
        ))
        .into());
    }
    let path = match configured_kind(config, s) {
        ConfiguredKind::Sqlite { live_path: Some(p) } => p,
        ConfiguredKind::Postgres | ConfiguredKind::Mariadb => {
            let server = crate::sources::server_of(config, s)?
                .ok_or_else(|| anyhow::anyhow!("source {source:?} names no server"))?;
            let results = server.run_rules(&s.rules)?;
            return Ok((
                format!(
                    "{} database {} on {}",
                    server.product(),
                    server.database(),
                    server.server()
                ),
                results,
            ));
        }
        other => {
            return Err(UsageError(format!(
                "source {source:?} is a {} source: rules run on SQLite, PostgreSQL and MariaDB \
                 databases",
                other.name()
            ))
            .into());
        }
    };
    let results = backstop_sources::rules::run_on_file(&path, &s.rules)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((path.display().to_string(), results))
}
