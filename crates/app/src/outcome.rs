//! Results and remedies: an operation's result in one line ([`Verdict`]), and what to do about
//! a failure ([`Remedy`]), as a kind each front end puts in its own words (the CLI names flags
//! and commands, the daemon's page names its buttons).

use backstop_engine::{Error as EngineError, ErrorKind};
use backstop_policy::format_bytes;
use backstop_sources::Error as SourceError;

/// A remedy for an error: what the user can do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// A restore would replace existing files: allow it, or restore elsewhere.
    Overwrite,
    /// A stream or command gave no data: check it, or allow an empty backup.
    AllowEmpty,
    /// No repository at the location: create one, or check where it points.
    CreateRepository,
    /// The repository is encrypted and no passphrase was given.
    Passphrase,
    /// The index changed while the operation ran: run it again.
    RunAgain,
    /// Another operation holds the lock: remove it if that operation is gone.
    Unlock,
    /// A failed backup left data behind: prune deletes it once the cause is fixed.
    PruneLeftovers,
    /// The snapshot asked for is damaged: name a readable one.
    NameReadableSnapshot,
    /// A key file is damaged: put a copy back, and keep a second key.
    RestoreKeyFile,
    /// An in-place restore has no live database to replace: restore to a new file.
    RestoreToNewFile,
    /// The snapshot's tables differ from the live database's: look, then allow it.
    AllowSchemaChange,
    /// Damaged data was met: a full verification says what is damaged.
    VerifyData,
    /// An internal error: a bug to report.
    ReportBug,
    /// The repository's storage cannot be reached: check the server and the endpoint.
    CheckEndpoint,
    /// The repository's storage refused access or has no such bucket: check the keys, the
    /// policy and the bucket.
    CheckStorageAccess,
}

/// The remedy for `e`, from the first library error in its chain that has one.
pub fn remedy(e: &anyhow::Error) -> Option<Remedy> {
    let source = |se: &SourceError| match se {
        SourceError::WouldOverwrite { .. } => Some(Remedy::Overwrite),
        SourceError::Empty(_) => Some(Remedy::AllowEmpty),
        _ => None,
    };
    for cause in e.chain() {
        if let Some(se) = cause.downcast_ref::<SourceError>() {
            return source(se);
        }
        if let Some(ee) = cause.downcast_ref::<EngineError>() {
            return match ee {
                EngineError::Source(se) => source(se),
                EngineError::NoRepository(_) => Some(Remedy::CreateRepository),
                EngineError::PassphraseRequired(_) => Some(Remedy::Passphrase),
                EngineError::IndexChanged => Some(Remedy::RunAgain),
                EngineError::Locked(_) => Some(Remedy::Unlock),
                EngineError::BackupLeftovers { .. } => Some(Remedy::PruneLeftovers),
                EngineError::DamagedSnapshot(_) => Some(Remedy::NameReadableSnapshot),
                EngineError::DamagedKey { .. } => Some(Remedy::RestoreKeyFile),
                EngineError::NoLiveDatabase(_) => Some(Remedy::RestoreToNewFile),
                EngineError::SchemaChanged(_) => Some(Remedy::AllowSchemaChange),
                // Messages that already name a command say what to run.
                EngineError::Integrity(m) if !m.contains("`backstop") => Some(Remedy::VerifyData),
                EngineError::Internal(_) => Some(Remedy::ReportBug),
                // Its message says which key to use instead.
                EngineError::CannotDelete { .. } => None,
                _ => match ee.kind() {
                    ErrorKind::Unreachable => Some(Remedy::CheckEndpoint),
                    ErrorKind::Denied => Some(Remedy::CheckStorageAccess),
                    _ => None,
                },
            };
        }
    }
    None
}

/// The result of an operation in one line, and whether it passed: what the daemon's job list,
/// its notifications and the API show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub message: String,
    pub passed: bool,
}

/// A backup: passed when no item was skipped.
pub fn backup(s: &backstop_engine::BackupSummary) -> Verdict {
    let message = if s.skipped {
        format!("unchanged since snapshot {}: no new snapshot", s.id.short())
    } else {
        format!(
            "snapshot {} saved: {} read, {} added",
            s.id.short(),
            format_bytes(s.bytes_in),
            format_bytes(s.bytes_added)
        )
    };
    Verdict {
        message,
        passed: s.warnings.is_empty(),
    }
}

/// A copy to another repository: passed when it completed.
pub fn copy(to: &str, s: &backstop_engine::copy::CopySummary) -> Verdict {
    let message = match s.copied.len() {
        0 => format!("{to} already held every snapshot"),
        n => format!(
            "{n} snapshot(s) copied to {to}: {} added",
            format_bytes(s.bytes_added)
        ),
    };
    Verdict {
        message,
        passed: true,
    }
}

/// A verification: passed when it found no problem.
pub fn verify(r: &backstop_engine::VerifyReport) -> Verdict {
    let message = if r.is_clean() {
        format!(
            "no problems in {} snapshot(s), {} pack(s){}",
            r.snapshots,
            r.packs,
            if r.read_data { ", all data read" } else { "" }
        )
    } else {
        format!(
            "{} problem(s) found: the job's result lists them",
            r.problems.len()
        )
    };
    Verdict {
        message,
        passed: r.is_clean(),
    }
}

/// A restore drill of snapshot `id`.
pub fn drill(id: &backstop_format::SnapshotId, rec: &backstop_format::record::Record) -> Verdict {
    Verdict {
        message: format!(
            "restore drill of snapshot {} {} in {:.1} s",
            id.short(),
            if rec.passed { "passed" } else { "FAILED" },
            rec.duration_ms as f64 / 1000.0
        ),
        passed: rec.passed,
    }
}

/// Retention applied.
pub fn forget(s: &backstop_engine::ForgetSummary) -> Verdict {
    let locked = match s.locked.len() {
        0 => String::new(),
        n => format!(" ({n} more the storage refused to delete: kept)"),
    };
    Verdict {
        message: format!(
            "{} snapshot(s) forgotten, {} kept{locked}",
            s.forgotten,
            s.plan.keep_count()
        ),
        passed: true,
    }
}

/// Space reclaimed.
pub fn prune(s: &backstop_engine::PruneSummary) -> Verdict {
    Verdict {
        message: format!("{} freed", format_bytes(s.plan.bytes_freed())),
        passed: true,
    }
}

/// An in-place restore of snapshot `id`: passed when every check of the result passed.
pub fn restore_database(
    id: &backstop_format::SnapshotId,
    s: &backstop_engine::database::DatabaseRestoreSummary,
) -> Verdict {
    Verdict {
        message: format!(
            "restored snapshot {} into {}{}",
            id.short(),
            s.plan.target,
            s.safety_snapshot
                .map(|id| format!(" (safety snapshot {} taken first)", id.short()))
                .unwrap_or_default()
        ),
        passed: s.checks.iter().all(|c| c.passed),
    }
}
