//! `backstop backup`

use std::path::{Path, PathBuf};
use std::time::Instant;

use backstop_app::backup::{BackupRequest, SkipUnchanged, SourceSettings};
use backstop_app::repository::{self, DEFAULT_REPO, Location, Opened};
use backstop_app::sources::{self, SourceReader, configured_with_paths, default_name, path_source};
use backstop_engine::{BackupSummary, Repository};
use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;

use crate::context::{Ctx, GlobalArgs, host, runtime, spill_options, warner};
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
    source: SourceReader,
    settings: SourceSettings,
}

impl Job {
    /// A job from the command line: no tags or settings from the config file.
    fn plain(name: String, source: SourceReader) -> Self {
        Self {
            name,
            source,
            settings: SourceSettings::default(),
        }
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let (repo, repo_path) = open_or_create(&ctx)?;
    let exclude: Vec<PathBuf> = repo_path
        .local_path()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
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
                export_after(&ctx, &repo, &name, &s);
                summaries.push(s);
            }
            Err(e) => {
                let e = e.context(format!("backing up {name}"));
                let reason = format!("{e:#}");
                // Best effort: `status` shows the failure; a repository that cannot take the
                // record (a full disk) has the failure reported here all the same.
                let _ = backstop_app::backup::record_failure(
                    &repo,
                    &name,
                    &reason,
                    &runtime(),
                    Timestamp::now(),
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

/// The source's `export` after a backup that saved a snapshot: its tables as files. A failed
/// export is said, and the backup stands.
fn export_after(ctx: &Ctx<'_>, repo: &Repository, name: &str, s: &BackupSummary) {
    let g = ctx.args;
    let Some(config) = ctx.config.sources.get(name) else {
        return;
    };
    let auto = match backstop_app::export::AutoExport::of(&ctx.config, config) {
        Ok(Some(a)) if !s.skipped => a,
        Ok(_) => return,
        Err(e) => return eprintln!("warning: {name}: export: {e:#}"),
    };
    let tz = match ctx.config.time_zone() {
        Ok(tz) => tz,
        Err(e) => return eprintln!("warning: {name}: export: {e:#}"),
    };
    let written = backstop_app::export::after_backup(
        repo,
        &auto,
        name,
        s.id,
        &tz,
        &runtime(),
        &warner(g.quiet),
    );
    match written {
        Ok(w) if !g.quiet && !g.json => {
            let dir = w
                .first()
                .and_then(|e| e.path.parent())
                .unwrap_or(&auto.to)
                .display()
                .to_string();
            eprintln!("exported {} table(s) of {name} into {dir}", w.len());
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: {name}: the export after the backup failed: {e:#}"),
    }
}

/// Backs up one source and prints its summary.
fn backup_one(
    g: &GlobalArgs,
    a: &Args,
    repo: &Repository,
    mut job: Job,
) -> anyhow::Result<BackupSummary> {
    let req = BackupRequest {
        kind: a.kind,
        description: a.message.clone(),
        tags: a.tags.clone(),
        ticket: a.ticket.clone(),
        time: a.time,
        force: a.force,
        skip_unchanged: match a.skip_unchanged {
            true => SkipUnchanged::Yes,
            false => SkipUnchanged::AsConfigured,
        },
    };
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    let result = backstop_app::backup::backup(
        repo,
        &mut job.source,
        &job.name,
        &job.settings,
        &req,
        &runtime(),
        &spill_options()?,
        &warner(g.quiet),
        &bar,
    );
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
            "{} warning(s) (items skipped, or kept only as bytes); see above",
            s.warnings.len()
        )?;
    }
    if !s.validation.is_empty() {
        crate::output::print_rules("validation at capture", &s.validation, true)?;
    }
    Ok(())
}

/// Opens the configured repository, or creates `./backstop-repo` when none is configured.
fn open_or_create(ctx: &Ctx<'_>) -> anyhow::Result<(Repository, Location)> {
    let repository::OpenedRepository {
        repo,
        location,
        opened,
    } = repository::open_or_create(
        ctx.repo_location(),
        ctx.passphrase()?,
        &ctx.cache_use(),
        Timestamp::now(),
        &host(),
    )?;
    if let Opened::Created { encrypted } = opened
        && !ctx.args.quiet
        && !ctx.args.json
    {
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
    Ok((repo, location))
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
        let source = if a.stdin {
            sources::stdin(filename, a.allow_empty)?
        } else {
            sources::command(a.command.clone(), filename, a.allow_empty)?
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
    let source = sources::source_with_flags(
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
        settings: SourceSettings {
            tags: s.tags.clone(),
            description: s.description.clone(),
            skip_unchanged: s.skip_unchanged,
        },
    })
}
