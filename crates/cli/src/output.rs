//! Human and JSON output, progress bars, and the mapping from errors to exit codes.

use std::io::IsTerminal;
use std::time::Duration;

use backstop_engine::{Error as EngineError, ErrorKind, Progress};
use backstop_format::Timestamp;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::tz::TimeZone;

/// Exit codes, documented in README.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The backup finished but some items could not be read.
    pub const PARTIAL: u8 = 3;
    /// verify found problems, or data failed an integrity check.
    pub const INTEGRITY: u8 = 4;
    /// `status`: a source is overdue, never backed up, unhealthy or unverified past its limit.
    pub const ATTENTION: u8 = 5;
    pub const NO_REPOSITORY: u8 = 10;
    pub const LOCKED: u8 = 11;
    /// Missing or wrong passphrase.
    pub const AUTH: u8 = 12;
    /// The snapshot or source asked for does not exist.
    pub const NOT_FOUND: u8 = 13;
    /// The repository's storage cannot be reached (a remote server down or unknown).
    pub const UNREACHABLE: u8 = 14;
    /// The repository's storage refused access, or its bucket does not exist.
    pub const DENIED: u8 = 15;
    pub const CANCELLED: u8 = 130;
}

pub use backstop_app::error::{NotFoundError, UsageError};
use backstop_app::outcome::{Remedy, remedy};

/// `e` as a usage error (exit 2) where it is the engine's refusal of what was asked
/// ([`EngineError::Invalid`]): a command whose arguments the engine judges, not clap.
pub fn invalid_is_usage(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<EngineError>() {
        Ok(EngineError::Invalid(why)) => UsageError(why).into(),
        Ok(other) => other.into(),
        Err(e) => e,
    }
}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        return exit::USAGE;
    }
    if e.downcast_ref::<NotFoundError>().is_some() {
        return exit::NOT_FOUND;
    }
    for cause in e.chain() {
        if let Some(ee) = cause.downcast_ref::<EngineError>() {
            return match ee.kind() {
                ErrorKind::NoRepository => exit::NO_REPOSITORY,
                ErrorKind::Locked => exit::LOCKED,
                ErrorKind::Auth => exit::AUTH,
                ErrorKind::Integrity => exit::INTEGRITY,
                ErrorKind::NotFound => exit::NOT_FOUND,
                ErrorKind::Config => exit::USAGE,
                ErrorKind::Cancelled => exit::CANCELLED,
                ErrorKind::Internal => exit::ERROR,
                ErrorKind::Unreachable => exit::UNREACHABLE,
                ErrorKind::Denied => exit::DENIED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

pub fn print_error(e: &anyhow::Error, json: bool) {
    let hint = hint(e);
    if json {
        let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        let mut v = serde_json::json!({ "error": format!("{e:#}"), "causes": causes, "exit_code": exit_code(e) });
        if let Some(h) = &hint {
            v["hint"] = h.clone().into();
        }
        eprintln!("{v}");
    } else {
        eprintln!("error: {e:#}");
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
}

/// What to do about an error, in the CLI's terms: the libraries say what went wrong, the
/// application layer which remedy applies ([`remedy`]), and the front end words it (the
/// daemon's page words its own).
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let words = match remedy(e)? {
        Remedy::Overwrite => "pass --overwrite to replace them, or restore --to another place",
        Remedy::AllowEmpty => {
            "check the command or the pipe; pass --allow-empty if an empty backup is intended"
        }
        Remedy::CreateRepository => {
            "create one with `backstop init`, or check --repo, BACKSTOP_REPO and `repository` in backstop.toml"
        }
        Remedy::Passphrase => {
            "set BACKSTOP_PASSWORD or BACKSTOP_PASSWORD_FILE, or pass --password-file"
        }
        Remedy::RunAgain => "run the command again",
        Remedy::Unlock => {
            "if that operation is no longer running (its machine crashed or it was killed), \
             `backstop unlock` removes stale locks and `backstop unlock --remove-all` this one"
        }
        Remedy::PruneLeftovers => {
            "once the cause is fixed, `backstop prune` deletes what the failed backup left \
             (on a full disk, free a little space first: prune writes a lock and index files)"
        }
        Remedy::NameReadableSnapshot => {
            "name a readable snapshot by its id (`backstop snapshots` lists them); `backstop verify` says what is damaged"
        }
        Remedy::RestoreKeyFile => {
            "if you have a copy of that key file (or of the whole repository), put it back in \
             keys/; a second key (another passphrase, `backstop key add`) keeps the repository \
             open when one key file is damaged"
        }
        Remedy::RestoreToNewFile => {
            "restore to a new file with --to instead, or check the source's `path` in backstop.toml"
        }
        Remedy::AllowSchemaChange => {
            "`--dry-run` shows the tables now and in the snapshot; pass --allow-schema-change to restore anyway"
        }
        // Damaged data met while reading: verify names every damaged pack.
        Remedy::VerifyData => "`backstop verify --read-data` says what is damaged",
        Remedy::CheckEndpoint => {
            "check that the storage server is up and that AWS_ENDPOINT_URL (or the location) \
             names it, then run the command again; nothing was changed"
        }
        Remedy::CheckStorageAccess => {
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, that their policy allows \
             reading, writing and listing the bucket, and that the bucket exists (backstop \
             never creates buckets)"
        }
        Remedy::ReportBug => {
            "this is a bug in backstop; nothing was committed. Please report it with the command that failed"
        }
    };
    Some(words.to_string())
}

/// Prints a serde value as one line of JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string(v)?)?;
    Ok(())
}

/// Whether an error is a closed standard output (`backstop snapshots | head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints the checks of a restore or a drill, one a line.
pub fn print_checks(checks: &[backstop_format::record::Check]) -> anyhow::Result<()> {
    for c in checks {
        let mark = match (c.passed, c.name == NOT_CHECKABLE) {
            (true, true) => "--  ",
            (true, false) => "ok  ",
            (false, _) => "FAIL",
        };
        outln!("  {mark} {}: {}", c.name, c.detail)?;
    }
    Ok(())
}

/// A drill's verdict in words: `PASSED with limits` when some tables could not be checked.
pub fn drill_verdict(passed: bool, checks: &[backstop_format::record::Check]) -> &'static str {
    match (passed, checks.iter().any(|c| c.name == NOT_CHECKABLE)) {
        (false, _) => "FAILED",
        (true, true) => "PASSED with limits",
        (true, false) => "PASSED",
    }
}

use backstop_format::record::NOT_CHECKABLE;

pub use backstop_policy::format_bytes as bytes;

/// A time as people read it, the one form of human output: local time in the configured
/// `time_zone`, to the second (`2026-12-05 21:40:51`). `--json` keeps RFC 3339.
pub fn time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A restore drill in words, saying which figure is an age and which a duration:
/// `drill passed 3h20m ago (took 0.4 s)`.
pub fn drill(passed: bool, at: Timestamp, duration_ms: u64, now: Timestamp) -> String {
    format!(
        "drill {} {} (took {:.1} s)",
        if passed { "passed" } else { "FAILED" },
        backstop_policy::format_age(now.duration_since(at).as_secs()),
        duration_ms as f64 / 1000.0
    )
}

/// A progress bar on a terminal's stderr; silent otherwise.
pub struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self { bar, quiet }
    }

    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Turns `b` into a bar of `total` bytes (a spinner before), keeping its position.
fn with_total(b: &ProgressBar, total: u64) {
    b.set_length(total);
    b.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Some(b) = &self.bar {
            b.set_position(0);
            match total {
                Some(t) => with_total(b, t),
                None => b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix} {bytes} {bytes_per_sec} {wide_msg}",
                    )
                    .expect("valid template"),
                ),
            }
            b.set_prefix(name.to_string());
        }
    }
    fn estimate(&self, bytes: u64, _items: Option<u64>) {
        if let Some(b) = &self.bar {
            with_total(b, bytes);
        }
    }
    fn bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn item(&self, path: &str) {
        if let Some(b) = &self.bar {
            b.set_message(path.to_string());
        }
    }
    fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}

/// Prints `HEADING: all 5 rules hold` (or `2 of 5 rules failing`), then a line per rule (only
/// the failing ones with `failing_only`): its verdict, what it found and the first offending
/// rows.
pub fn print_rules(
    heading: &str,
    results: &[backstop_format::manifest::RuleOutcome],
    failing_only: bool,
) -> anyhow::Result<()> {
    let verdict = match results.iter().filter(|r| !r.passed).count() {
        0 => format!("all {} rules hold", results.len()),
        n => format!("{n} of {} rules failing", results.len()),
    };
    outln!("{heading}: {verdict}")?;
    for r in results.iter().filter(|r| !(failing_only && r.passed)) {
        let mark = if r.passed { "ok  " } else { "FAIL" };
        let mut line = format!("  {mark} {}: ", r.name);
        match (r.passed, r.kind.as_str()) {
            (true, _) | (false, "sql" | "integrity") => line.push_str(&r.detail),
            (false, _) => line.push_str(&format!("{} {}", r.count, r.detail)),
        }
        if !r.first.is_empty() {
            line.push_str(&format!(": {}", r.first.join("; ")));
            if (r.first.len() as u64) < r.count {
                line.push_str(" ...");
            }
        }
        outln!("{line}")?;
    }
    Ok(())
}
