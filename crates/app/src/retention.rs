//! Which snapshots are kept (forget) and how packs are reclaimed (prune), with the defaults
//! both front ends apply.

use std::collections::BTreeMap;

use backstop_engine::{ForgetOptions, PruneOptions};
use backstop_format::Timestamp;
use backstop_policy::{Lifecycle, Policy};
use jiff::tz::TimeZone;

use crate::backup::Runtime;
use crate::config::Config;
use crate::repository::Location;

/// The retention policies in force: one for sources without their own, and each source's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub policy: Policy,
    pub per_source: BTreeMap<String, Policy>,
}

impl Retention {
    /// What backstop.toml says: each source's own policy, else the top-level one, else the
    /// built-in small-business default.
    pub fn configured(config: &Config) -> Self {
        Self {
            policy: config
                .retention
                .clone()
                .unwrap_or_else(Policy::small_business_default),
            per_source: config.source_policies(),
        }
    }

    /// The policies of the repository at `location`: its section's `retention` for every
    /// source in it, else [`Retention::configured`].
    pub fn of_repository(config: &Config, location: Option<&Location>) -> Self {
        match location.and_then(Location::retention) {
            Some(p) => Self::only(p.clone()),
            None => Self::configured(config),
        }
    }

    /// One policy given for this run (the CLI's flags): it replaces every configured one.
    pub fn only(policy: Policy) -> Self {
        Self {
            policy,
            per_source: BTreeMap::new(),
        }
    }

    /// The engine's options for a forget of `sources` (all when empty) at `now`, with calendar
    /// buckets in `time_zone`.
    pub fn forget_options(
        self,
        sources: Vec<String>,
        lifecycle: Lifecycle,
        time_zone: TimeZone,
        rt: &Runtime,
        now: Timestamp,
    ) -> ForgetOptions {
        ForgetOptions {
            policy: self.policy,
            per_source: self.per_source,
            sources,
            lifecycle,
            now,
            time_zone,
            host: rt.host.clone(),
        }
    }
}

/// The engine's options for a prune that repacks partly used packs until at most
/// `max_unused_percent` of the used space is left unused (the default, 5, when `None`).
pub fn prune_options(max_unused_percent: Option<f64>, rt: &Runtime) -> PruneOptions {
    let mut o = PruneOptions::new(rt.host.clone());
    if let Some(p) = max_unused_percent {
        o.max_unused_percent = p;
    }
    o
}
