//! `backstop backup`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use backstop_engine::{BackupOptions, BackupSummary, InitOptions, Repository};
use backstop_format::Timestamp;
use backstop_format::manifest::{BackupKind, Excludes};
use backstop_sources::Source;
use backstop_sources::command::{CommandSource, StreamSource};
use backstop_sources::files::FilesSource;
use backstop_sources::sqlite::{SqliteSource, is_sqlite_file};

use crate::context::{Ctx, DEFAULT_REPO, GlobalArgs, host, load_backup_index, storage_at};
use crate::exclude::ExcludeArgs;
use crate::output::{Bar, NotFoundError, UsageError, bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories to back up [default: every source in backstop.toml]
    pub paths: Vec<PathBuf>,
    /// Back up this source from backstop.toml
    #[arg(long, conflicts_with = "paths")]
    pub source: Option<String>,
    /// Source name the snapshot is filed under [default: the first path's name]
    #[arg(long)]
    pub name: Option<String>,
    /// Description of this backup
    #[arg(short = 'm', long = "message", alias = "description")]
    pub message: Option<String>,
    /// Tag (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Why this backup is taken
    #[arg(long, default_value = "manual", value_parser = parse_kind)]
    pub kind: BackupKind,
    /// Change ticket this backup belongs to
    #[arg(long)]
    pub ticket: Option<String>,
    /// Record this time (RFC 3339) instead of now, for imports and tests
    #[arg(long, value_parser = parse_time)]
    pub time: Option<Timestamp>,
    /// Read every file, even those unchanged (same size and modification time) since the last snapshot
    #[arg(long)]
    pub force: bool,
    /// Record no new snapshot when nothing changed since the source's last one
    #[arg(long)]
    pub skip_unchanged: bool,
    /// Back up SQLite databases (the one given, or those inside folders) as plain files, byte for byte (only safe when nothing writes to them)
    #[arg(long)]
    pub as_file: bool,
    #[command(flatten)]
    pub excludes: ExcludeArgs,
    /// Back up standard input as one item
    #[arg(long, conflicts_with_all = ["paths", "source"])]
    pub stdin: bool,
    /// Item name for --stdin or a command's output [default: the source name]
    #[arg(long)]
    pub filename: Option<String>,
    /// Save a snapshot even when --stdin or the command gives no data (by default an empty
    /// stream fails the backup: `pg_dump wrongdb | backstop backup --stdin` is not a backup)
    #[arg(long)]
    pub allow_empty: bool,
    /// Back up the standard output of this command (after --); a non-zero exit makes no snapshot
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn parse_kind(s: &str) -> Result<BackupKind, String> {
    let k: BackupKind = s.parse()?;
    if k == BackupKind::PreRestore {
        return Err("pre-restore snapshots are made by restore itself".into());
    }
    Ok(k)
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-21T18:00:00Z: {e}"))
}

struct Job {
    name: String,
    source: Box<dyn Source>,
    tags: Vec<String>,
    description: Option<String>,
    skip_unchanged: bool,
}

impl Job {
    /// A job from the command line: no tags or settings from the config file.
    fn plain(name: String, source: Box<dyn Source>) -> Self {
        Self {
            name,
            source,
            tags: vec![],
            description: None,
            skip_unchanged: false,
        }
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let (repo, repo_path) = open_or_create(&ctx)?;
    let exclude = vec![repo_path];
    let jobs = jobs(&ctx, &a, &exclude)?;
    let several = jobs.len() > 1;
    let mut code = crate::exit::OK;
    let mut summaries = Vec::new();
    let mut failed = Vec::new();
    // Every source is attempted: one that fails (a missing path, a failing dump) must not keep
    // the others from being backed up.
    for (name, job) in jobs {
        let result = job.and_then(|job| backup_one(g, &a, &repo, job));
        match result {
            Ok(s) => {
                if !s.warnings.is_empty() && code == crate::exit::OK {
                    code = crate::exit::PARTIAL;
                }
                summaries.push(s);
            }
            Err(e) => {
                let e = e.context(format!("backing up {name}"));
                let reason = format!("{e:#}");
                // Best effort: `status` shows the failure; a repository that cannot take the
                // record (a full disk) has the failure reported here all the same.
                let _ = backstop_engine::attempts::record_backup_failure(
                    &repo,
                    &name,
                    Timestamp::now(),
                    &host(),
                    &reason,
                );
                if !several {
                    return Err(e);
                }
                crate::output::print_error(&e, g.json);
                failed.push((name, crate::output::exit_code(&e)));
            }
        }
    }
    if g.json {
        if summaries.len() == 1 && !several {
            print_json(&summaries[0])?;
        } else {
            print_json(&summaries)?;
        }
    }
    if let Some((_, first)) = failed.first() {
        if !g.json {
            eprintln!(
                "{} of {} source(s) failed: {}",
                failed.len(),
                failed.len() + summaries.len(),
                failed
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(*first);
    }
    Ok(code)
}

/// Backs up one source and prints its summary.
fn backup_one(
    g: &GlobalArgs,
    a: &Args,
    repo: &Repository,
    mut job: Job,
) -> anyhow::Result<BackupSummary> {
    let mut tags = job.tags.clone();
    tags.extend(a.tags.iter().cloned());
    let opts = BackupOptions {
        source_name: job.name.clone(),
        kind: a.kind,
        description: a.message.clone().or(job.description.take()),
        tags,
        ticket: a.ticket.clone(),
        time: a.time.unwrap_or_else(Timestamp::now),
        host: host(),
        program: format!("backstop {}", env!("CARGO_PKG_VERSION")),
        force: a.force,
        skip_unchanged: a.skip_unchanged || job.skip_unchanged,
    };
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    // Loaded for each job: the previous job's packs must count for deduplication.
    let index = load_backup_index(repo, g.quiet)?;
    let result = backstop_engine::backup(repo, &index, job.source.as_mut(), &opts, &bar);
    bar.done();
    let s = result?;
    if !g.json && !g.quiet {
        print_summary(&s, started.elapsed().as_secs_f64())?;
    }
    Ok(s)
}

fn print_summary(s: &BackupSummary, secs: f64) -> anyhow::Result<()> {
    if s.skipped {
        outln!(
            "{} unchanged since snapshot {}: no new snapshot recorded ({:.1} s)",
            s.source,
            s.id.short(),
            secs
        )?;
        return Ok(());
    }
    outln!(
        "snapshot {} of {} saved: {} read, {} added to the repository ({} of {} chunks new) in {:.1} s",
        s.id.short(),
        s.source,
        bytes(s.bytes_in),
        bytes(s.bytes_added),
        s.chunks_new,
        s.chunks,
        secs
    )?;
    if !s.warnings.is_empty() {
        outln!(
            "{} warning(s): some items were skipped; see above",
            s.warnings.len()
        )?;
    }
    Ok(())
}

/// Opens the configured repository, or creates `./backstop-repo` when none is configured.
fn open_or_create(ctx: &Ctx<'_>) -> anyhow::Result<(Repository, PathBuf)> {
    if let Some(loc) = ctx.repo_location() {
        return Ok((ctx.open_at(&loc)?, loc));
    }
    let loc = PathBuf::from(DEFAULT_REPO);
    let storage = storage_at(&loc)?;
    let pass = ctx.passphrase()?;
    match Repository::open(storage.clone(), pass.as_deref()) {
        Ok(r) => Ok((r, loc)),
        Err(backstop_engine::Error::NoRepository(_)) => {
            let encrypted = pass.is_some();
            let repo =
                Repository::init(storage, &InitOptions::new(pass, Timestamp::now(), host()))?;
            if !ctx.args.quiet && !ctx.args.json {
                eprintln!(
                    "no repository configured: created {} in {} ({})",
                    DEFAULT_REPO,
                    std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    if encrypted {
                        "encrypted"
                    } else {
                        "NOT encrypted; set BACKSTOP_PASSWORD before the first backup to encrypt"
                    }
                );
            }
            Ok((repo, loc))
        }
        Err(e) => Err(e.into()),
    }
}

/// The backups to make, each with its source name; a source that cannot even be opened is an
/// error of its own, so that the others still run.
fn jobs(
    ctx: &Ctx<'_>,
    a: &Args,
    exclude: &[PathBuf],
) -> anyhow::Result<Vec<(String, anyhow::Result<Job>)>> {
    if !a.command.is_empty() || a.stdin {
        if a.excludes.any() {
            return Err(UsageError(
                "--exclude, --exclude-file, --exclude-if-present and --exclude-caches apply to files and folders, not to --stdin or a command's output".into(),
            )
            .into());
        }
        let name = a
            .name
            .clone()
            .ok_or_else(|| UsageError("--name is required with --stdin or a command".into()))?;
        let filename = a.filename.clone().unwrap_or_else(|| name.clone());
        let source: Box<dyn Source> = if a.stdin {
            Box::new(
                StreamSource::new(Box::new(std::io::stdin()), filename)?.allow_empty(a.allow_empty),
            )
        } else {
            Box::new(CommandSource::new(a.command.clone(), filename)?.allow_empty(a.allow_empty))
        };
        return Ok(vec![(name.clone(), Ok(Job::plain(name, source)))]);
    }
    if !a.paths.is_empty() {
        // The paths of a configured source are that source: one history per database, whether
        // it is backed up by path or by name.
        if let Some((name, s)) = configured_with_paths(&ctx.config, &a.paths)
            && a.name.as_ref().is_none_or(|n| n == name)
        {
            if !ctx.args.quiet && !ctx.args.json {
                eprintln!(
                    "backing up configured source {name} (its path is {})",
                    a.paths[0].display()
                );
            }
            let job = config_job(ctx, a, name, s, exclude);
            return Ok(vec![(name.clone(), job)]);
        }
        let name = match &a.name {
            Some(n) => n.clone(),
            None => default_name(&a.paths[0])?,
        };
        let rules = a.excludes.rules()?;
        let source = path_source(&a.paths, a.as_file.then_some("files"), exclude, rules)?;
        return Ok(vec![(name.clone(), Ok(Job::plain(name, source)))]);
    }
    let wanted: Vec<(&String, &crate::config::SourceConfig)> = match &a.source {
        Some(n) => {
            let s = ctx.config.sources.get(n).ok_or_else(|| {
                let known: Vec<&str> = ctx.config.sources.keys().map(String::as_str).collect();
                NotFoundError(format!(
                    "no source {n:?} in {} (configured: {})",
                    if ctx.config.file.as_os_str().is_empty() {
                        "backstop.toml".into()
                    } else {
                        ctx.config.file.display().to_string()
                    },
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
            vec![(n, s)]
        }
        None => ctx.config.sources.iter().collect(),
    };
    if wanted.is_empty() {
        return Err(UsageError(
            "nothing to back up: give paths (backstop backup shop.db), a command after --, or configure sources in backstop.toml".into(),
        )
        .into());
    }
    Ok(wanted
        .into_iter()
        .map(|(name, s)| {
            let job = config_job(ctx, a, name, s, exclude);
            (a.name.clone().unwrap_or_else(|| name.clone()), job)
        })
        .collect())
}

/// The job of a configured source.
fn config_job(
    ctx: &Ctx<'_>,
    a: &Args,
    name: &str,
    s: &crate::config::SourceConfig,
    exclude: &[PathBuf],
) -> anyhow::Result<Job> {
    let source = source_with_flags(
        &ctx.config,
        name,
        s,
        exclude,
        a.allow_empty,
        a.excludes.rules()?,
    )?;
    Ok(Job {
        name: a.name.clone().unwrap_or_else(|| name.to_string()),
        source,
        tags: s.tags.clone(),
        description: s.description.clone(),
        skip_unchanged: s.skip_unchanged,
    })
}

/// The configured source whose paths are exactly `given` (compared as resolved paths).
fn configured_with_paths<'c>(
    config: &'c crate::config::Config,
    given: &[PathBuf],
) -> Option<(&'c String, &'c crate::config::SourceConfig)> {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let mut wanted: Vec<PathBuf> = given.iter().map(|p| canon(p)).collect::<Option<_>>()?;
    wanted.sort();
    config.sources.iter().find(|(_, s)| {
        if !s.command.is_empty() {
            return false;
        }
        let mut paths: Option<Vec<PathBuf>> = s
            .all_paths()
            .into_iter()
            .map(|p| canon(&config.resolve(p)))
            .collect();
        if let Some(p) = paths.as_mut() {
            p.sort();
        }
        paths.is_some_and(|p| p == wanted)
    })
}

/// The reader of a source configured in backstop.toml.
pub fn source_from_config(
    config: &crate::config::Config,
    name: &str,
    s: &crate::config::SourceConfig,
    exclude: &[PathBuf],
    allow_empty: bool,
) -> anyhow::Result<Box<dyn Source>> {
    source_with_flags(config, name, s, exclude, allow_empty, Excludes::default())
}

/// The reader of a configured source, with exclusion rules from the command line after its own.
fn source_with_flags(
    config: &crate::config::Config,
    name: &str,
    s: &crate::config::SourceConfig,
    exclude: &[PathBuf],
    allow_empty: bool,
    flags: Excludes,
) -> anyhow::Result<Box<dyn Source>> {
    if !s.command.is_empty() {
        if !flags.is_empty() {
            return Err(UsageError(format!(
                "source {name:?} backs up a command's output: --exclude and the other exclusion flags apply to files and folders only"
            ))
            .into());
        }
        return Ok(Box::new(
            CommandSource::new(
                s.command.clone(),
                s.filename.clone().unwrap_or_else(|| name.to_string()),
            )?
            .allow_empty(allow_empty),
        ));
    }
    let paths: Vec<PathBuf> = s
        .all_paths()
        .into_iter()
        .map(|p| config.resolve(p))
        .collect();
    let rules = crate::exclude::merge(config.excludes(s)?, flags);
    path_source(&paths, s.kind.as_deref(), exclude, rules)
}

/// What a configured source is: `command`, `sqlite` (one SQLite file, or `kind = "sqlite"`)
/// or `files`; with the database's path for `sqlite`.
pub fn configured_kind(
    config: &crate::config::Config,
    s: &crate::config::SourceConfig,
) -> (&'static str, Option<PathBuf>) {
    if !s.command.is_empty() {
        return ("command", None);
    }
    let paths: Vec<PathBuf> = s
        .all_paths()
        .into_iter()
        .map(|p| config.resolve(p))
        .collect();
    let single_db = paths.len() == 1 && paths[0].is_file() && is_sqlite_file(&paths[0]);
    match s.kind.as_deref() {
        Some("files") => ("files", None),
        Some("sqlite") => ("sqlite", paths.into_iter().next()),
        _ if single_db => ("sqlite", paths.into_iter().next()),
        _ => ("files", None),
    }
}

/// A SQLite source for a single SQLite file (recognised by its header, or `kind = "sqlite"`),
/// otherwise files, whose databases are captured as databases unless the kind is `files`
/// (`--as-file`). `rules` (exclusions) apply to files only.
fn path_source(
    paths: &[PathBuf],
    kind: Option<&str>,
    exclude: &[PathBuf],
    rules: Excludes,
) -> anyhow::Result<Box<dyn Source>> {
    let single_db = paths.len() == 1 && paths[0].is_file() && is_sqlite_file(&paths[0]);
    let as_database = single_db && kind != Some("files");
    if as_database && !rules.is_empty() {
        return Err(UsageError(format!(
            "{} is one SQLite database, backed up whole: exclusions apply to files and folders only; drop the --exclude flags (or exclude keys), or back up the folder that holds it",
            paths[0].display()
        ))
        .into());
    }
    let files = |databases: bool| -> anyhow::Result<Box<dyn Source>> {
        let mut f = FilesSource::new(paths.to_vec(), exclude.to_vec())?.with_databases(databases);
        if !rules.is_empty() {
            f = f.with_exclusions(crate::exclude::compile(rules.clone())?);
        }
        Ok(Box::new(f))
    };
    match kind {
        Some("sqlite") if !single_db => Err(UsageError(format!(
            "source kind is sqlite but {} is not one SQLite database file",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
        Some("files") => files(false),
        _ if single_db => {
            let name = default_name(&paths[0])?;
            Ok(Box::new(SqliteSource::new(paths[0].clone(), name)?))
        }
        _ => files(true),
    }
}

fn default_name(p: &std::path::Path) -> anyhow::Result<String> {
    let abs =
        std::fs::canonicalize(p).with_context(|| format!("cannot back up {}", p.display()))?;
    Ok(abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into()))
}
