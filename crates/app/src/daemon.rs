//! What the daemon is given: the repository, the sources and how to build them, schedules,
//! retention. [`crate::config::Config`] builds a [`Setup`] from `backstop.toml`; tests build one
//! by hand. The server (`backstop serve`) runs on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use backstop_engine::Repository;
use backstop_policy::{Lifecycle, Schedule};
use jiff::SignedDuration;
use jiff::tz::TimeZone;

use crate::config::Config;
use crate::sources::{SourceReader, configured_kind, source_from_config};

/// One configured source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    /// `sqlite`, `files` or `command`, as shown on the page.
    pub kind: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub skip_unchanged: bool,
    /// When scheduled backups run; `None`: only on demand.
    pub schedule: Option<Schedule>,
    /// The newest passed restore drill may be at most this old.
    pub drill_max_age: Option<SignedDuration>,
    /// The live database an in-place restore writes to (SQLite sources).
    pub live_path: Option<PathBuf>,
    /// A Healthchecks-style URL: pinged at `/start`, on success, and at `/fail`.
    pub ping_url: Option<String>,
    /// Repositories its snapshots are copied to after each of its backups (`copy_to`).
    pub copy_to: Vec<crate::copy::Destination>,
    /// Its 3-2-1 rules (`copies`, `offsite`).
    pub rules: crate::copies::Rules,
    /// Where its snapshots are drilled when they are server dumps (a PostgreSQL source's
    /// server).
    pub server_drill: Option<std::sync::Arc<dyn backstop_engine::drill::ServerDrill>>,
    /// The live database of a PostgreSQL or MariaDB source, which an in-place restore replaces.
    pub server: Option<backstop_sources::server::Server>,
    /// Its tables written as files after each backup (`export = { ... }`).
    pub export: Option<crate::export::AutoExport>,
    /// Its data validation rules (`[[sources.S.rules]]`), which its drills run.
    pub validation: Vec<backstop_sources::rules::Rule>,
}

impl SourceSpec {
    /// Whether an in-place restore is built for it: a SQLite database, or a PostgreSQL one.
    pub fn restorable_in_place(&self) -> bool {
        self.live_path.is_some()
            || self
                .server
                .as_ref()
                .is_some_and(|d| d.can_replace().is_ok())
    }
}

/// Builds a source's reader afresh for each backup (by name).
pub type SourceFactory = Arc<dyn Fn(&str) -> anyhow::Result<SourceReader> + Send + Sync + 'static>;

pub use crate::config::{DEFAULT_AUDIT_RETENTION, Tasks};

/// Everything the daemon runs on.
#[derive(Clone)]
pub struct Setup {
    pub repo: Arc<Repository>,
    /// The repository's location, as shown on the page.
    pub repo_location: String,
    pub sources: Vec<SourceSpec>,
    pub build_source: SourceFactory,
    pub time_zone: TimeZone,
    /// The retention policies: each source's own, and one for those without.
    pub retention: crate::retention::Retention,
    pub lifecycle: Lifecycle,
    pub tasks: Tasks,
    /// Webhook URL: a JSON POST when a job fails or a source becomes overdue.
    pub webhook: Option<String>,
    /// Where restore drills and downloads put their scratch files.
    pub scratch: PathBuf,
    pub host: String,
    /// Program name and version recorded in snapshots.
    pub program: String,
    /// The repository's passphrase, if it is encrypted: a first copy creates its destination
    /// with the repository's keys.
    pub passphrase: Option<String>,
}

impl Setup {
    /// The host and program the daemon's snapshots and records name.
    pub fn runtime(&self) -> crate::backup::Runtime {
        crate::backup::Runtime {
            host: self.host.clone(),
            program: self.program.clone(),
        }
    }

    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Each repository some source copies to (once, however many copy there), with the
    /// sources that do.
    pub fn destinations(&self) -> Vec<(&crate::copy::Destination, Vec<&str>)> {
        let mut out: Vec<(&crate::copy::Destination, Vec<&str>)> = Vec::new();
        for s in &self.sources {
            for d in &s.copy_to {
                let place = d.location.to_string();
                match out
                    .iter_mut()
                    .find(|(o, _)| o.location.to_string() == place)
                {
                    Some((_, names)) => names.push(&s.name),
                    None => out.push((d, vec![&s.name])),
                }
            }
        }
        out
    }

    /// What `status` expects of each source.
    pub fn expectations(&self) -> Vec<backstop_engine::status::Expectation> {
        self.sources
            .iter()
            .map(|s| backstop_engine::status::Expectation {
                name: s.name.clone(),
                schedule: s.schedule.clone(),
                drill_max_age: s.drill_max_age,
            })
            .collect()
    }
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("repo_location", &self.repo_location)
            .field("sources", &self.sources)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

/// The daemon's setup from the config file: `repo` opened at `location`; `host` and `program`
/// are recorded in the daemon's snapshots.
#[allow(clippy::too_many_arguments)]
pub fn setup_from_config(
    config: &Config,
    repo: Repository,
    location: &crate::repository::Location,
    passphrase: Option<String>,
    no_startup_backup: bool,
    host: String,
    program: String,
) -> anyhow::Result<Setup> {
    let expectations = config.expectations()?;
    let mut sources = Vec::new();
    for (name, s) in &config.sources {
        let kind = configured_kind(config, s);
        let exp = expectations
            .iter()
            .find(|e| &e.name == name)
            .expect("one expectation per source");
        sources.push(SourceSpec {
            name: name.clone(),
            kind: kind.name().to_string(),
            description: s.description.clone(),
            tags: s.tags.clone(),
            skip_unchanged: s.skip_unchanged,
            schedule: exp.schedule.clone(),
            drill_max_age: exp.drill_max_age,
            live_path: kind.live_path().map(Path::to_path_buf),
            ping_url: s.ping_url.clone(),
            copy_to: s
                .copy_to
                .iter()
                .map(|to| crate::copy::Destination::resolve(to, config, passphrase.as_deref()))
                .collect::<anyhow::Result<_>>()?,
            rules: crate::copies::Rules {
                copies: s.copies,
                offsite: s.offsite,
            },
            server_drill: crate::verify::server_drill(config, name)?,
            server: crate::sources::server_of(config, s)?,
            export: crate::export::AutoExport::of(config, s)?,
            validation: s.rules.clone(),
        });
    }
    let mut tasks = config.tasks()?;
    if no_startup_backup {
        tasks.startup_backup = false;
    }
    let repo_location = location.to_string();
    let repo_path = PathBuf::from(&repo_location);
    let factory_config = Arc::new(config.clone());
    let build_source: SourceFactory = Arc::new(move |name: &str| {
        let s = factory_config
            .sources
            .get(name)
            .with_context(|| format!("no source {name:?} in the config"))?;
        source_from_config(
            &factory_config,
            name,
            s,
            std::slice::from_ref(&repo_path),
            false,
        )
    });
    let retention = crate::retention::Retention::of_repository(config, Some(location));
    Ok(Setup {
        repo: Arc::new(repo),
        repo_location,
        sources,
        build_source,
        time_zone: config.time_zone()?,
        retention,
        lifecycle: config.lifecycle()?,
        tasks,
        webhook: config.daemon.webhook.clone(),
        scratch: std::env::temp_dir(),
        host,
        program,
        passphrase,
    })
}
