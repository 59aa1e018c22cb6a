//! `backstop validate`: a source's data validation rules (`[[sources.S.rules]]`) run on its
//! live data ([`backstop_sources::rules`]).

use crate::config::Config;
use crate::error::UsageError;
use crate::sources::{ConfiguredKind, configured_kind};

pub use backstop_sources::rules::RuleResult;

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
        other => {
            return Err(UsageError(format!(
                "source {source:?} is a {} source: rules run on SQLite databases for now",
                other.name()
            ))
            .into());
        }
    };
    let db = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    let results = backstop_sources::rules::run(&db, &s.rules)?;
    Ok((path.display().to_string(), results))
}
