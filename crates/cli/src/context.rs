//! What every command needs: global flags, the config file, the repository and its passphrase.

use std::path::PathBuf;

use anyhow::Context as _;
use backstop_app::repository::{self, CacheUse, Credentials, Location};
use backstop_engine::repo::SnapshotList;
use backstop_engine::spec::{Spec, SpecClock};
use backstop_engine::{Indexed, Repository, SpillOptions};

use crate::config::Config;

pub use backstop_app::repository::read_password_file;

/// The options every command takes, shown apart from each command's own (`Global options`).
/// The environment variables are listed once, in `backstop --help` ([`crate::ENVIRONMENT`]).
#[derive(clap::Args, Debug)]
pub struct GlobalArgs {
    /// Repository location [default: `repository` in backstop.toml]
    #[arg(
        long,
        global = true,
        env = "BACKSTOP_REPO",
        hide_env = true,
        help_heading = GLOBAL
    )]
    pub repo: Option<String>,
    /// Config file [default: ./backstop.toml if present]
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// File holding the repository passphrase
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub password_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print only errors and warnings
    #[arg(long, short, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Read a remote repository without the local cache of its index, snapshots and tree
    /// packs (kept in BACKSTOP_CACHE_DIR or the user's cache folder)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_cache: bool,
}

/// The help heading of [`GlobalArgs`].
const GLOBAL: &str = "Global options";

/// Loaded config plus global flags.
pub struct Ctx<'a> {
    pub args: &'a GlobalArgs,
    pub config: Config,
}

impl<'a> Ctx<'a> {
    pub fn new(args: &'a GlobalArgs) -> anyhow::Result<Self> {
        Ok(Self {
            args,
            config: Config::load(args.config.as_deref())?,
        })
    }

    /// The repository location, if one is configured anywhere.
    pub fn repo_location(&self) -> Option<Location> {
        Location::resolve(self.args.repo.as_deref(), &self.config)
    }

    /// The passphrase, from --password-file, BACKSTOP_PASSWORD_FILE, BACKSTOP_PASSWORD or the
    /// config's password_file, in that order. Never from the command line itself.
    pub fn passphrase(&self) -> anyhow::Result<Option<String>> {
        Credentials::from_env(self.args.password_file.clone())
            .passphrase(&self.config, self.repo_location().as_ref())
    }

    /// Opens the configured repository.
    pub fn open(&self) -> anyhow::Result<Repository> {
        let loc = self.repo_location().ok_or_else(|| {
            crate::output::UsageError(
                "no repository given: pass --repo, set BACKSTOP_REPO, or set `repository` in backstop.toml".into(),
            )
        })?;
        self.open_at(&loc)
    }

    /// Finds a snapshot by any spec (`SOURCE@TIME` read in the configured `time_zone`).
    ///
    /// A spec naming a source `X` that another source's snapshots also hold as an item (see
    /// [`backstop_engine::spec::item_readings`]) is ambiguous. When `X` is a source configured
    /// in backstop.toml, it is that source, with a note on stderr naming the other candidate;
    /// otherwise the spec is refused (exit 2), naming both candidates and how to ask for each,
    /// so that a restore never quietly takes another day's data.
    pub fn find_snapshot(&self, repo: &Repository, spec: &str) -> anyhow::Result<Found> {
        self.find(repo, spec, false)
    }

    /// As [`Self::find_snapshot`], with a command's `--source`: `latest`, `latest-verified` and
    /// `@TIME` then pick among that source's snapshots, and the name is a source's, never an
    /// item's. Any other spec is taken as written.
    pub fn find_snapshot_of(
        &self,
        repo: &Repository,
        spec: &str,
        source: Option<&str>,
    ) -> anyhow::Result<Found> {
        let qualified = backstop_app::snapshots::qualify(spec, source);
        let explicit = qualified != spec;
        self.find(repo, &qualified, explicit)
    }

    fn find(&self, repo: &Repository, text: &str, explicit: bool) -> anyhow::Result<Found> {
        let tz = self.config.time_zone()?;
        let clock = SpecClock {
            now: backstop_format::Timestamp::now(),
            time_zone: tz.clone(),
        };
        let spec = Spec::parse(text, Some(&clock))?;
        let SnapshotList {
            readable: snaps,
            unreadable: damaged,
        } = repo.snapshots()?;
        let drills = match spec {
            Spec::LatestVerified(_) => repo.verification()?,
            _ => std::collections::HashMap::new(),
        };
        let found = backstop_engine::spec::resolve(&spec, &snaps, &damaged, &drills);
        let others = match spec.source() {
            Some(_) if !explicit => backstop_engine::spec::item_readings(&spec, &snaps, &drills),
            _ => Vec::new(),
        };
        let Some(name) = spec.source().filter(|_| !others.is_empty()) else {
            return Ok(found?);
        };
        let time = |t| crate::output::time(t, &tz);
        let of = |what: String, id: &backstop_format::SnapshotId, t| {
            format!("{what} (snapshot {} from {})", id.short(), time(t))
        };
        let items: Vec<String> = others
            .iter()
            .map(|(oid, o)| {
                of(
                    format!("the item {name} of source {}", o.source.name),
                    oid,
                    o.time,
                )
            })
            .collect();
        let ask_item: Vec<String> = others
            .iter()
            .map(|(oid, o)| {
                format!(
                    "`{}` or {} for source {}",
                    respell(text, &spec, &o.source.name),
                    oid.short(),
                    o.source.name
                )
            })
            .collect();
        let (id, snap) = match found {
            Err(backstop_engine::Error::NotFound(why)) => {
                return Err(crate::output::NotFoundError(format!(
                    "{why}; {name} is {}: name it with {}",
                    items.join(" and "),
                    ask_item.join(", ")
                ))
                .into());
            }
            found => found?,
        };
        let this = of(format!("the source {name}"), &id, snap.time);
        if self.config.sources.contains_key(name) {
            if !self.args.quiet {
                eprintln!(
                    "note: {text} is {this}, configured in backstop.toml; it is also {}: name that with {}",
                    items.join(" and "),
                    ask_item.join(", ")
                );
            }
            return Ok((id, snap));
        }
        let by_source = match &spec {
            Spec::AtOrBefore(..) => format!(
                "\"@{}\" --source {name}",
                text.rsplit_once('@').map_or("", |(_, t)| t)
            ),
            _ => format!("{} --source {name}", text.split(':').next().unwrap_or(text)),
        };
        Err(crate::output::UsageError(format!(
            "{text} is ambiguous: it names {this} and {}. Say which: `{by_source}` (restore, show) \
             or {} for the source {name}; {}",
            items.join(" and "),
            id.short(),
            ask_item.join("; ")
        ))
        .into())
    }

    pub fn open_at(&self, loc: &Location) -> anyhow::Result<Repository> {
        repository::open_with(loc, self.passphrase()?.as_deref(), &self.cache_use())
    }

    /// Opens the configured repository for the commands that judge the remote copy itself
    /// (verify, repair): past the local cache, through a temporary one of their own
    /// (`CacheUse::Temporary`), or none with `--no-cache`.
    pub fn open_for_checks(&self) -> anyhow::Result<Repository> {
        let loc = self.repo_location().ok_or_else(|| {
            crate::output::UsageError(
                "no repository given: pass --repo, set BACKSTOP_REPO, or set `repository` in backstop.toml".into(),
            )
        })?;
        let cache = match self.args.no_cache {
            true => CacheUse::Off,
            false => CacheUse::Temporary,
        };
        repository::open_with(&loc, self.passphrase()?.as_deref(), &cache)
    }

    /// Whether a remote repository is read through the local cache (not with `--no-cache`).
    pub fn cache_use(&self) -> CacheUse {
        match self.args.no_cache {
            true => CacheUse::Off,
            false => CacheUse::Default,
        }
    }
}

/// A snapshot found by its spec.
pub type Found = (
    backstop_format::SnapshotId,
    backstop_format::manifest::Snapshot,
);

/// `text`, a spec naming one source, rewritten to name `source` by the same rule.
fn respell(text: &str, spec: &Spec, source: &str) -> String {
    match spec {
        Spec::Latest(_) => format!("latest:{source}"),
        Spec::LatestVerified(_) => format!("latest-verified:{source}"),
        Spec::AtOrBefore(..) => {
            let at = text.rsplit_once('@').map_or("", |(_, t)| t);
            if at.contains(' ') {
                format!("\"{source}@{at}\"")
            } else {
                format!("{source}@{at}")
            }
        }
        Spec::Id(_) => text.to_string(),
    }
}

/// What a command passes as `warn` to the application layer: a warning on stderr, unless
/// `--quiet`.
pub fn warner(quiet: bool) -> impl Fn(&str) {
    move |m: &str| {
        if !quiet {
            eprintln!("warning: {m}");
        }
    }
}

/// Loads the index, reporting damaged index files as warnings.
pub fn load_index(repo: &Repository, quiet: bool) -> anyhow::Result<Indexed<'_>> {
    repository::load_index(repo, &warner(quiet))
}

/// Where a backup's index goes past a size (see `SpillOptions`).
/// `BACKSTOP_SPILL_ENTRIES=N` moves the index, the backup's set of new chunks and a SQLite
/// check's page summaries to scratch files past N entries or pages (0: always; for tests),
/// `BACKSTOP_SCRATCH_DIR` says where they go
/// (default: the system's temporary folder).
pub fn spill_options() -> anyhow::Result<SpillOptions> {
    let mut spill =
        match std::env::var("BACKSTOP_SPILL_ENTRIES") {
            Ok(v) => SpillOptions::all_above(v.trim().parse().with_context(|| {
                format!("BACKSTOP_SPILL_ENTRIES={v:?} is not a number of entries")
            })?),
            Err(_) => SpillOptions::default(),
        };
    spill.dir = std::env::var_os("BACKSTOP_SCRATCH_DIR").map(PathBuf::from);
    Ok(spill)
}

/// This host and program, as snapshots and records name them.
pub fn runtime() -> backstop_app::backup::Runtime {
    backstop_app::backup::Runtime {
        host: host(),
        program: format!("backstop {}", env!("CARGO_PKG_VERSION")),
    }
}

pub fn host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
