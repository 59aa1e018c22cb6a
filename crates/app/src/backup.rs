//! One backup of one source, as both front ends ask for it: the request merged with the
//! source's configured settings, the index loaded for it, the engine's backup, and a failed
//! backup recorded in the repository so that `status` and the page see it.

use backstop_engine::{BackupOptions, BackupSummary, Progress, Repository, SpillOptions};
use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;

use crate::sources::SourceReader;

/// Who is running: recorded in snapshots and records. Passed in, never read here.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub host: String,
    /// Program name and version.
    pub program: String,
}

/// What backstop.toml says of a source that a backup uses.
#[derive(Debug, Clone, Default)]
pub struct SourceSettings {
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub skip_unchanged: bool,
}

/// When a backup whose data did not change since the source's last snapshot records none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipUnchanged {
    /// Always skip (the CLI's `--skip-unchanged`).
    Yes,
    /// As the source's `skip_unchanged` says (the CLI without the flag).
    AsConfigured,
    /// As the source's `skip_unchanged` says for scheduled and startup backups; a backup
    /// someone asked for is always recorded (the daemon).
    AsConfiguredWhenScheduled,
}

/// A backup as a front end asks for it.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub kind: BackupKind,
    /// Wins over the source's configured description.
    pub description: Option<String>,
    /// Added after the source's configured tags.
    pub tags: Vec<String>,
    pub ticket: Option<String>,
    /// The snapshot's time; now when `None`.
    pub time: Option<Timestamp>,
    /// Back up even when another backup of the source seems to be running.
    pub force: bool,
    pub skip_unchanged: SkipUnchanged,
}

impl BackupRequest {
    /// The engine's options for a backup of `source` with `settings`, at `now` unless the
    /// request names a time. The merging rules, written once: configured tags then the
    /// request's; the request's description, else the source's.
    pub fn options(
        &self,
        source: &str,
        settings: &SourceSettings,
        rt: &Runtime,
        now: Timestamp,
    ) -> BackupOptions {
        let mut tags = settings.tags.clone();
        tags.extend(self.tags.iter().cloned());
        BackupOptions {
            source_name: source.to_string(),
            kind: self.kind,
            description: self
                .description
                .clone()
                .or_else(|| settings.description.clone()),
            tags,
            ticket: self.ticket.clone(),
            time: self.time.unwrap_or(now),
            host: rt.host.clone(),
            program: rt.program.clone(),
            force: self.force,
            skip_unchanged: match self.skip_unchanged {
                SkipUnchanged::Yes => true,
                SkipUnchanged::AsConfigured => settings.skip_unchanged,
                SkipUnchanged::AsConfiguredWhenScheduled => {
                    settings.skip_unchanged
                        && matches!(self.kind, BackupKind::Scheduled | BackupKind::Startup)
                }
            },
        }
    }
}

/// Backs up `reader` as the source `name`. The index is loaded here, for this backup alone
/// (on disk past `spill`'s size): the previous backup's packs must count for deduplication.
/// Index files that cannot be read go to `warn`.
#[allow(clippy::too_many_arguments)]
pub fn backup(
    repo: &Repository,
    reader: &mut SourceReader,
    name: &str,
    settings: &SourceSettings,
    req: &BackupRequest,
    rt: &Runtime,
    spill: &SpillOptions,
    warn: &dyn Fn(&str),
    progress: &dyn Progress,
) -> anyhow::Result<BackupSummary> {
    let opts = req.options(name, settings, rt, Timestamp::now());
    let ix = crate::repository::load_backup_index(repo, spill, warn)?;
    Ok(backstop_engine::backup(
        &ix,
        reader.as_source(),
        &opts,
        progress,
    )?)
}

/// Records a failed backup of `source` in the repository (`reason`: the error as the front
/// end words it), so that `backstop status` and the page say the same. Best effort: an error
/// here (a full disk) is returned for the front end to report beside the backup's own.
pub fn record_failure(
    repo: &Repository,
    source: &str,
    reason: &str,
    rt: &Runtime,
    now: Timestamp,
) -> backstop_engine::Result<()> {
    backstop_engine::attempts::record_backup_failure(repo, source, now, &rt.host, reason)
}
