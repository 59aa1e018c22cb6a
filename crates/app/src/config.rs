//! `backstop.toml`: repositories, named sources and defaults. Relative paths are relative to
//! the file's directory. Unknown keys are errors, so a typo is reported, not ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use backstop_policy::{Lifecycle, Policy, Schedule};
use jiff::SignedDuration;

use crate::error::UsageError;

/// The file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The main repository: a `[repositories.NAME]` name, or a location (a path relative to
    /// this file, or `s3://BUCKET/PREFIX`).
    pub repository: Option<String>,
    /// `[repositories.NAME]`: named repositories, each with its location and credentials.
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    /// Passphrase file for the repository (the passphrase itself never goes in this file).
    pub password_file: Option<String>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// IANA time zone for retention's calendar buckets (the system's by default).
    pub time_zone: Option<String>,
    /// The retention policy of sources without their own; the built-in default when absent.
    pub retention: Option<Policy>,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Default for every source's `drill_max_age` (7 days when absent).
    pub drill_max_age: Option<String>,
    /// `[daemon]`: how `backstop serve` runs.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Directory of the file, for relative paths.
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

/// One named repository (`[repositories.NAME]`): where it is and how to open it. Secrets are
/// never in this file: they come from files it names (or the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A local directory (relative to this file) or `s3://BUCKET/PREFIX`.
    pub location: String,
    /// File holding this repository's passphrase (else the top-level `password_file`).
    pub password_file: Option<String>,
    /// S3: the endpoint URL (else `AWS_ENDPOINT_URL`; none means AWS itself).
    pub endpoint: Option<String>,
    /// S3: the region (else `AWS_REGION`, else us-east-1).
    pub region: Option<String>,
    /// S3: the access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// S3: a file holding the secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key_file: Option<String>,
    /// S3: `path`, `virtual-host` or `auto` (the default: path style when an endpoint is
    /// given).
    pub addressing: Option<String>,
    /// `[repositories.NAME.retention]`: the snapshots kept here, of every source (`forget` on
    /// this repository, and the daemon's forget of its copies). Without it the repository
    /// keeps what the main one does: each source's policy, else the top-level one.
    pub retention: Option<Policy>,
}

/// One named source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A file or directory.
    pub path: Option<String>,
    /// Several files or directories.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A command whose standard output is backed up (argv form).
    #[serde(default)]
    pub command: Vec<String>,
    /// The item name for a command's output.
    pub filename: Option<String>,
    /// `files`, `command`, `sqlite`, `postgres` or `mariadb` (alias `mysql`); inferred when
    /// absent (a database server's kind is never inferred).
    pub kind: Option<String>,
    /// A database server's source: the database, `postgres://USER@HOST:PORT/DBNAME` or
    /// `mysql://USER@HOST:PORT/DBNAME` (no password in it).
    pub url: Option<String>,
    /// A database server's source: a file holding the database user's password (else
    /// `PGPASSWORD` or a `.pgpass` file, `MYSQL_PWD` or `~/.my.cnf`, as the client tools read
    /// them).
    pub password_file: Option<String>,
    /// A database server's source: how the database is captured; `auto` and `dump` run the
    /// server's dump tool (`pg_dump`, `mariadb-dump`).
    pub method: Option<String>,
    /// A database server's source: where restore drills load its dumps, as a URL of the same
    /// kind (its database is the one connected to for creating the scratch database); else the
    /// source's own server.
    pub drill_url: Option<String>,
    /// The password of `drill_url`'s user, as `password_file` is the source's.
    pub drill_password_file: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// Record no new snapshot when nothing changed since the last one.
    #[serde(default)]
    pub skip_unchanged: bool,
    /// This source's retention policy (replaces the top-level one).
    pub retention: Option<Policy>,
    /// Back up at this interval, e.g. "6h" (the daemon runs it; `status` reports overdue).
    pub every: Option<String>,
    /// Or on this cron pattern in `time_zone`, e.g. "0 */6 * * *".
    pub cron: Option<String>,
    /// How old the newest passed restore drill may be before `status` calls the source
    /// unverified, e.g. "8d", or "off" (replaces the top-level `drill_max_age`).
    pub drill_max_age: Option<String>,
    /// A Healthchecks-style URL the daemon pings: `URL/start` when a backup starts, `URL` when
    /// it succeeds, `URL/fail` when it fails or the source is overdue.
    pub ping_url: Option<String>,
    /// Repositories (`[repositories.NAME]` names or locations) the daemon copies this source's
    /// snapshots to after each of its backups (as `backstop copy --to`).
    #[serde(default)]
    pub copy_to: Vec<String>,
    /// 3-2-1 rule: how many repositories (the main one and its `copy_to` ones) must hold the
    /// source's newest snapshot; `backstop status` says so (exit 5) when fewer do.
    pub copies: Option<usize>,
    /// 3-2-1 rule: one of them must be offsite (a remote repository: `s3://`).
    #[serde(default)]
    pub offsite: bool,
    /// Gitignore-style patterns a files source leaves out (as `backup --exclude`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Data validation rules (`[[sources.S.rules]]`), run by `backstop validate`, at each
    /// capture (SQLite, and the dumps whose snapshot backstop can share) and in drills.
    #[serde(default)]
    pub rules: Vec<backstop_sources::rules::Rule>,
    /// A plain copy of the tables written after every backup (`export = { to = "DIR" }`).
    pub export: Option<ExportConfig>,
    /// A file of such patterns, one a line (as `backup --exclude-file`).
    pub exclude_file: Option<String>,
    /// Leave out directories holding an entry of one of these names (as
    /// `backup --exclude-if-present`).
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    /// Leave out directories holding a valid CACHEDIR.TAG (as `backup --exclude-caches`).
    #[serde(default)]
    pub exclude_caches: bool,
}

/// `[daemon]`: `backstop serve`. Intervals like "1d", or "off".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Address to listen on (default 127.0.0.1:8080: this machine only).
    pub listen: Option<String>,
    /// Users, API tokens, sessions, the activity and audit logs (default
    /// `backstop-state.db` beside this file).
    pub state_file: Option<String>,
    /// The daemon's log (default `backstop.log` beside this file, rotated daily); "off" logs
    /// to standard error only.
    pub log_file: Option<String>,
    /// How many daily log files to keep (default 14).
    pub log_keep: Option<usize>,
    /// Back every source up when the daemon starts (default true).
    pub startup_backup: Option<bool>,
    /// Structure check of the repository (default "1d").
    pub verify: Option<String>,
    /// Read and check all data (default "1w").
    pub verify_data: Option<String>,
    /// Restore drill of each source's newest snapshot (default "1d").
    pub drill: Option<String>,
    /// Apply retention (default "1d").
    pub forget: Option<String>,
    /// Reclaim space (default "1w").
    pub prune: Option<String>,
    /// POSTed a JSON body when a job fails or a source becomes overdue.
    pub webhook: Option<String>,
    /// Mark the session cookie Secure (set when the daemon is reached through HTTPS).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Addresses of reverse proxies whose `X-Forwarded-For` header names the client (none by
    /// default: the socket peer is the client).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long the audit log keeps entries, e.g. "1y", "90d" (default "1y").
    pub audit_retention: Option<String>,
}

/// `[lifecycle]`: rules that apply whatever the retention policy says.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// How long a pre-change snapshot stays after it was marked verified, e.g. "7d".
    pub pre_change_grace: Option<String>,
    /// How long a pre-restore safety snapshot stays at least, e.g. "7d".
    pub pre_restore_min_age: Option<String>,
}

impl Config {
    /// Loads `explicit` (which must exist), or `backstop.toml` in the working directory if it
    /// exists, or an empty config.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("backstop.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading config file {}", path.display()));
            }
        };
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| UsageError(format!("invalid config file {}: {e}", path.display())))?;
        let abs = std::path::absolute(&path).unwrap_or(path);
        cfg.dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.file = abs;
        for (name, s) in &cfg.sources {
            let bad = |why: String| -> anyhow::Error {
                UsageError(format!(
                    "invalid config file {}: source {name:?} {why}",
                    cfg.file.display()
                ))
                .into()
            };
            let n = usize::from(s.path.is_some())
                + usize::from(!s.paths.is_empty())
                + usize::from(!s.command.is_empty())
                + usize::from(s.url.is_some());
            if n != 1 {
                return Err(bad(
                    "needs exactly one of path, paths, command or url (a database server's)".into(),
                ));
            }
            if let Some(k) = &s.kind
                && !matches!(
                    k.as_str(),
                    "files" | "command" | "sqlite" | "postgres" | "mariadb" | "mysql"
                )
            {
                return Err(bad(format!(
                    "has kind {k:?}; expected files, command, sqlite, postgres, mariadb or mysql"
                )));
            }
            let server = s.server_kind().is_some();
            if server != s.url.is_some() {
                return Err(bad(
                    "gives url only with kind = \"postgres\" or \"mariadb\", which need it: \
                     url = \"postgres://USER@HOST:PORT/DBNAME\" or \
                     \"mysql://USER@HOST:PORT/DBNAME\""
                        .into(),
                ));
            }
            if !server
                && (s.password_file.is_some()
                    || s.method.is_some()
                    || s.drill_url.is_some()
                    || s.drill_password_file.is_some())
            {
                return Err(bad(
                    "gives password_file, method, drill_url or drill_password_file, which \
                     belong to a database server's source (kind = \"postgres\" or \"mariadb\")"
                        .into(),
                ));
            }
            match s.method.as_deref() {
                None | Some("auto" | "dump" | "builtin") => {}
                Some(m) => {
                    return Err(bad(format!(
                        "has method {m:?}; expected auto, dump or builtin"
                    )));
                }
            }
            if let (Some(url), Some(kind)) = (&s.url, s.server_kind()) {
                backstop_sources::server::Server::new(kind, url, None)
                    .map_err(|e| bad(format!("url: {e}")))?;
            }
            if let (Some(url), Some(kind)) = (&s.drill_url, s.server_kind()) {
                backstop_sources::server::Server::new(kind, url, None)
                    .map_err(|e| bad(format!("drill_url: {e}")))?;
            }
        }
        for (name, s) in &cfg.sources {
            cfg.check_excludes(name, s)?;
            if let Some(e) = &s.export {
                let bad = |why: String| {
                    UsageError(format!(
                        "invalid config file {}: source {name:?} export: {why}",
                        cfg.file.display()
                    ))
                };
                backstop_sources::export::Format::parse(e.format.as_deref().unwrap_or("csv"))
                    .map_err(|e| bad(e.to_string()))?;
                crate::export::Layout::parse(e.layout.as_deref().unwrap_or("dated"))
                    .map_err(|e| bad(e.to_string()))?;
            }
            for (i, r) in s.rules.iter().enumerate() {
                let on_server = || match s.server_kind() {
                    Some(_) => r.check_for_server(),
                    None => Ok(()),
                };
                r.check().and_then(|()| on_server()).map_err(|e| {
                    UsageError(format!(
                        "invalid config file {}: source {name:?}, rule {}: {e}",
                        cfg.file.display(),
                        i + 1
                    ))
                })?;
            }
            if let Some(n) = s.copies
                && (n == 0 || n > 1 + s.copy_to.len())
            {
                return Err(UsageError(format!(
                    "invalid config file {}: source {name:?} asks for copies = {n}, but it is \
                     kept in 1 + {} repositories (the main one and its copy_to)",
                    cfg.file.display(),
                    s.copy_to.len()
                ))
                .into());
            }
        }
        for (name, r) in &cfg.repositories {
            let bad = |why: String| -> anyhow::Error {
                UsageError(format!(
                    "invalid config file {}: [repositories.{name}] {why}",
                    cfg.file.display()
                ))
                .into()
            };
            if !backstop_storage::is_valid_name(name) {
                return Err(bad(
                    "has an invalid name: use lowercase letters, digits, '-' and '_'".into(),
                ));
            }
            if r.location.trim().is_empty() {
                return Err(bad(
                    "needs a location (a directory or s3://BUCKET/PREFIX)".into()
                ));
            }
            let s3_keys = [
                ("endpoint", r.endpoint.is_some()),
                ("region", r.region.is_some()),
                ("access_key_id", r.access_key_id.is_some()),
                ("secret_access_key_file", r.secret_access_key_file.is_some()),
                ("addressing", r.addressing.is_some()),
            ];
            if !r.location.starts_with("s3://")
                && let Some((key, _)) = s3_keys.iter().find(|(_, set)| *set)
            {
                return Err(bad(format!(
                    "sets {key}, which only an s3:// location takes (its location is {:?})",
                    r.location
                )));
            }
            if let Some(a) = &r.addressing
                && !matches!(a.as_str(), "path" | "virtual-host" | "auto")
            {
                return Err(bad(format!(
                    "has addressing {a:?}; expected path, virtual-host or auto"
                )));
            }
        }
        cfg.lifecycle()?;
        cfg.time_zone()?;
        cfg.expectations()?;
        cfg.tasks()?;
        Ok(cfg)
    }

    /// The lifecycle rules: the defaults with what `[lifecycle]` sets.
    pub fn lifecycle(&self) -> anyhow::Result<Lifecycle> {
        let mut l = Lifecycle::default();
        let bad = |key: &str, e: String| {
            UsageError(format!(
                "invalid config file {}: lifecycle.{key}: {e}",
                self.file.display()
            ))
        };
        if let Some(s) = &self.lifecycle.pre_change_grace {
            l.pre_change_grace = parse_duration(s).map_err(|e| bad("pre_change_grace", e))?;
        }
        if let Some(s) = &self.lifecycle.pre_restore_min_age {
            l.pre_restore_min_age = parse_duration(s).map_err(|e| bad("pre_restore_min_age", e))?;
        }
        Ok(l)
    }

    /// The time zone for retention: `time_zone` if set, else the system's.
    pub fn time_zone(&self) -> anyhow::Result<jiff::tz::TimeZone> {
        match &self.time_zone {
            None => Ok(jiff::tz::TimeZone::system()),
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| {
                UsageError(format!(
                    "invalid config file {}: time_zone {name:?} is not a known IANA time zone ({e})",
                    self.file.display()
                ))
                .into()
            }),
        }
    }

    /// What `status` expects of each configured source: its schedule and drill age limit.
    pub fn expectations(&self) -> anyhow::Result<Vec<backstop_engine::status::Expectation>> {
        let bad = |name: &str, key: &str, e: String| {
            UsageError(format!(
                "invalid config file {}: source {name:?}: {key}: {e}",
                self.file.display()
            ))
        };
        let age =
            |name: &str, key: &str, v: &str| -> anyhow::Result<Option<jiff::SignedDuration>> {
                if v.trim() == "off" {
                    return Ok(None);
                }
                Ok(Some(
                    backstop_policy::parse_interval(v)
                        .map_err(|e| bad(name, key, e.to_string()))?,
                ))
            };
        let default_age = match &self.drill_max_age {
            Some(v) => age("(all)", "drill_max_age", v)?,
            None => Some(jiff::SignedDuration::from_hours(7 * 24)),
        };
        let mut out = Vec::new();
        for (name, s) in &self.sources {
            let schedule = match (&s.every, &s.cron) {
                (Some(_), Some(_)) => {
                    return Err(
                        bad(name, "every", "give either every or cron, not both".into()).into(),
                    );
                }
                (Some(e), None) => Some(
                    backstop_policy::Schedule::every(e)
                        .map_err(|e| bad(name, "every", e.to_string()))?,
                ),
                (None, Some(c)) => Some(
                    backstop_policy::Schedule::cron(c)
                        .map_err(|e| bad(name, "cron", e.to_string()))?,
                ),
                (None, None) => None,
            };
            let drill_max_age = match &s.drill_max_age {
                Some(v) => age(name, "drill_max_age", v)?,
                None => default_age,
            };
            out.push(backstop_engine::status::Expectation {
                name: name.clone(),
                schedule,
                drill_max_age,
            });
        }
        Ok(out)
    }

    /// The daemon's repository-wide tasks and their schedules.
    pub fn tasks(&self) -> anyhow::Result<Tasks> {
        let d = &self.daemon;
        let defaults = Tasks::default();
        let pick = |key: &str,
                    v: &Option<String>,
                    default: Option<backstop_policy::Schedule>|
         -> anyhow::Result<Option<backstop_policy::Schedule>> {
            match v.as_deref().map(str::trim) {
                None => Ok(default),
                Some("off") => Ok(None),
                Some(s) if s.split_whitespace().count() >= 5 => {
                    Ok(Some(backstop_policy::Schedule::cron(s).map_err(|e| {
                        UsageError(format!(
                            "invalid config file {}: daemon.{key}: {e}",
                            self.file.display()
                        ))
                    })?))
                }
                Some(s) => Ok(Some(backstop_policy::Schedule::every(s).map_err(|e| {
                    UsageError(format!(
                        "invalid config file {}: daemon.{key}: {e} (or \"off\")",
                        self.file.display()
                    ))
                })?)),
            }
        };
        Ok(Tasks {
            startup_backup: d.startup_backup.unwrap_or(defaults.startup_backup),
            verify: pick("verify", &d.verify, defaults.verify)?,
            verify_data: pick("verify_data", &d.verify_data, defaults.verify_data)?,
            drill: pick("drill", &d.drill, defaults.drill)?,
            forget: pick("forget", &d.forget, defaults.forget)?,
            prune: pick("prune", &d.prune, defaults.prune)?,
        })
    }

    /// `[daemon] trusted_proxies` as addresses.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<std::net::IpAddr>> {
        self.daemon
            .trusted_proxies
            .iter()
            .map(|p| {
                p.trim().parse().map_err(|_| {
                    UsageError(format!(
                        "invalid config file {}: daemon.trusted_proxies: {p:?} is not an IP address; list the proxies' addresses, such as \"127.0.0.1\" or \"::1\"",
                        self.file.display()
                    ))
                    .into()
                })
            })
            .collect()
    }

    /// `[daemon] audit_retention`: years ("1y") or an interval ("90d"); one year by default.
    pub fn audit_retention(&self) -> anyhow::Result<jiff::SignedDuration> {
        let Some(v) = self.daemon.audit_retention.as_deref().map(str::trim) else {
            return Ok(DEFAULT_AUDIT_RETENTION);
        };
        let bad = |e: String| {
            UsageError(format!(
                "invalid config file {}: daemon.audit_retention: {e}",
                self.file.display()
            ))
        };
        let d = match v.strip_suffix('y').map(str::parse::<i64>) {
            Some(Ok(years)) => years
                .checked_mul(365 * 24)
                .map(jiff::SignedDuration::from_hours)
                .ok_or_else(|| bad(format!("{v:?} is too long")))?,
            _ => backstop_policy::parse_interval(v)
                .map_err(|e| bad(format!("{e} (or years: 1y)")))?,
        };
        if d <= jiff::SignedDuration::ZERO {
            return Err(bad(format!("{v:?} must be longer than nothing")).into());
        }
        Ok(d)
    }

    /// A file beside the config (or in the working directory without one).
    pub fn beside(&self, configured: Option<&str>, default: &str) -> PathBuf {
        let name = configured.unwrap_or(default);
        if self.dir.as_os_str().is_empty() {
            PathBuf::from(name)
        } else {
            self.resolve(name)
        }
    }

    /// The daemon's state file.
    pub fn state_file(&self) -> PathBuf {
        self.beside(self.daemon.state_file.as_deref(), "backstop-state.db")
    }

    /// Each source's own retention policy.
    pub fn source_policies(&self) -> BTreeMap<String, Policy> {
        self.sources
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.retention.clone()?)))
            .collect()
    }

    /// A path from the config, made absolute against the file's directory.
    /// A source's exclusion rules, its exclude file read now.
    pub fn excludes(
        &self,
        s: &SourceConfig,
    ) -> anyhow::Result<backstop_format::manifest::Excludes> {
        let mut patterns = s.exclude.clone();
        if let Some(f) = &s.exclude_file {
            patterns.extend(crate::exclude::read_exclude_file(&self.resolve(f))?);
        }
        Ok(backstop_format::manifest::Excludes {
            patterns,
            if_present: s.exclude_if_present.clone(),
            caches: s.exclude_caches,
        })
    }

    /// Exclusions belong to files sources, and their patterns must compile (the exclude file
    /// is read at backup time, where a missing one fails that backup).
    fn check_excludes(&self, name: &str, s: &SourceConfig) -> anyhow::Result<()> {
        let rules = backstop_format::manifest::Excludes {
            patterns: s.exclude.clone(),
            if_present: s.exclude_if_present.clone(),
            caches: s.exclude_caches,
        };
        let any = !rules.is_empty() || s.exclude_file.is_some();
        let bad = |e: String| {
            UsageError(format!(
                "invalid config file {}: source {name:?}: {e}",
                self.file.display()
            ))
        };
        if any && (!s.command.is_empty() || s.kind.as_deref() == Some("sqlite")) {
            return Err(bad(
                "exclude, exclude_file, exclude_if_present and exclude_caches apply to files sources only; remove them from this source".into(),
            )
            .into());
        }
        crate::exclude::compile(rules).map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// `export = { to, format, layout, keep_days, tables }` of a source: after each backup that
/// saved a snapshot, its tables as files in `to` (see `backstop export`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The folder (relative to backstop.toml's).
    pub to: String,
    /// `csv` (default), `json`, `jsonl`, `sql` or `xlsx`.
    pub format: Option<String>,
    /// `dated` (default: each day's files in a folder of their own) or `flat`.
    pub layout: Option<String>,
    /// With the dated layout: days older than this are removed (none: all are kept).
    pub keep_days: Option<u32>,
    /// Only these tables (default: every table).
    #[serde(default)]
    pub tables: Vec<String>,
}

impl SourceConfig {
    /// The kind of a database server's source (`postgres`, `mariadb` or `mysql`); `None` for
    /// other sources.
    pub fn server_kind(&self) -> Option<&str> {
        self.kind
            .as_deref()
            .filter(|k| matches!(*k, "postgres" | "mariadb" | "mysql"))
    }

    pub fn all_paths(&self) -> Vec<&str> {
        self.path
            .iter()
            .map(String::as_str)
            .chain(self.paths.iter().map(String::as_str))
            .collect()
    }
}

/// A fixed duration such as `7d`, `36h`, `2w` or `30m` (minutes): one number and one unit.
pub fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("{s:?} is not a duration; write a number and a unit, like 7d, 36h, 2w or 30m")
    })?;
    let secs = match unit.trim() {
        "w" => 7 * 86_400,
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "{s:?} has no known unit; write a number and one of w, d, h, m, s, like 7d"
            ));
        }
    };
    Ok(jiff::SignedDuration::from_secs(n.saturating_mul(secs)))
}

/// Audit entries are kept this long unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: SignedDuration = SignedDuration::from_hours(365 * 24);

/// Repository-wide maintenance and its schedules; `None` turns a task off.
#[derive(Debug, Clone)]
pub struct Tasks {
    /// Back every source up when the daemon starts (kind `startup`).
    pub startup_backup: bool,
    /// Check the repository's structure (indexes, snapshots, trees).
    pub verify: Option<Schedule>,
    /// Read and check every pack.
    pub verify_data: Option<Schedule>,
    /// Restore drill of each source's newest snapshot.
    pub drill: Option<Schedule>,
    /// Apply retention (forget).
    pub forget: Option<Schedule>,
    /// Reclaim the space of forgotten snapshots.
    pub prune: Option<Schedule>,
}

impl Default for Tasks {
    /// Startup backup on; structure check and drills daily; all data weekly; forget daily;
    /// prune weekly.
    fn default() -> Self {
        let every = |s: &str| Some(Schedule::every(s).expect("valid built-in interval"));
        Self {
            startup_backup: true,
            verify: every("1d"),
            verify_data: every("1w"),
            drill: every("1d"),
            forget: every("1d"),
            prune: every("1w"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("backstop.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p))
    }

    #[test]
    fn minimal_form() {
        let c = load("repository = \"backups/repo\"\n[sources.shop]\npath = \"data/shop.db\"\n")
            .unwrap();
        assert_eq!(c.repository.as_deref(), Some("backups/repo"));
        assert!(c.resolve("data/shop.db").ends_with("data/shop.db"));
        assert!(c.resolve("data/shop.db").is_absolute());
    }

    #[test]
    fn errors_name_the_line() {
        let e = load("repository = \"r\"\n[sources.shop]\npaht = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") || e.contains("3:"), "{e}");
        assert!(e.contains("paht"), "{e}");
    }

    #[test]
    fn retention_and_lifecycle() {
        let c = load(
            "time_zone = \"Europe/Berlin\"\n[retention]\nkeep_last = 3\n[lifecycle]\npre_change_grace = \"2d\"\n\
             [sources.shop]\npath = \"x\"\n[sources.shop.retention]\nkeep_daily = 7\nkeep_within = \"30d\"\n",
        )
        .unwrap();
        assert_eq!(c.retention.as_ref().unwrap().keep_last, Some(3));
        assert_eq!(c.source_policies()["shop"].keep_daily, Some(7));
        assert_eq!(
            c.lifecycle().unwrap().pre_change_grace.as_secs(),
            2 * 86_400
        );
        assert_eq!(
            c.lifecycle().unwrap().pre_restore_min_age.as_secs(),
            7 * 86_400
        );
        assert_eq!(c.time_zone().unwrap().iana_name(), Some("Europe/Berlin"));
        let e = load("[retention]\nkeep_lats = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("keep_lats"), "{e}");
        let e = load("[lifecycle]\npre_change_grace = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pre_change_grace") && e.contains("7d"), "{e}");
        let e = load("time_zone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        assert_eq!(parse_duration("36h").unwrap().as_secs(), 129_600);
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("7 days").is_err());
    }

    #[test]
    fn source_needs_one_location() {
        assert!(load("[sources.a]\nkind = \"files\"\n").is_err());
        assert!(load("[sources.a]\npath = \"x\"\ncommand = [\"y\"]\n").is_err());
        assert!(load("[sources.a]\npath = \"x\"\nkind = \"oracle\"\n").is_err());
    }

    #[test]
    fn a_postgres_source_is_a_url_without_a_password() {
        let ok =
            "[sources.db]\nkind = \"postgres\"\nurl = \"postgres://app@127.0.0.1:5432/shop\"\n";
        let c = load(ok).unwrap();
        assert_eq!(
            c.sources["db"].url.as_deref(),
            Some("postgres://app@127.0.0.1:5432/shop")
        );
        let err = |text: &str| format!("{:#}", load(text).unwrap_err());
        // A url needs the kind, and the kind a url.
        assert!(err("[sources.db]\nurl = \"postgres://a@h/db\"\n").contains("kind = \"postgres\""));
        assert!(err("[sources.db]\nkind = \"postgres\"\npath = \"x\"\n").contains("url"));
        let e = err("[sources.db]\nkind = \"postgres\"\nurl = \"postgres://a:secret@h/db\"\n");
        assert!(e.contains("password_file") && !e.contains("secret"), "{e}");
        load(&format!("{ok}method = \"builtin\"\n")).unwrap();
        let e = err(&format!("{ok}method = \"pg_dumpall\"\n"));
        assert!(e.contains("expected auto, dump or builtin"), "{e}");
        load("[sources.shop]\nkind = \"mariadb\"\nurl = \"mysql://a@h/shop\"\nmethod = \"builtin\"\n")
            .unwrap();
        // A drill server: a URL of the source's kind, for server sources only.
        load(&format!(
            "{ok}drill_url = \"postgres://d@standby/postgres\"\ndrill_password_file = \"p\"\n"
        ))
        .unwrap();
        let e = err(&format!("{ok}drill_url = \"mysql://d@standby/x\"\n"));
        assert!(e.contains("drill_url"), "{e}");
        assert!(
            err("[sources.f]\npath = \"x\"\ndrill_url = \"postgres://d@h/p\"\n")
                .contains("postgres")
        );
        assert!(err("[sources.f]\npath = \"x\"\npassword_file = \"p\"\n").contains("postgres"));
    }

    #[test]
    fn a_mariadb_source_is_a_url_without_a_password() {
        for kind in ["mariadb", "mysql"] {
            let c = load(&format!(
                "[sources.db]\nkind = \"{kind}\"\nurl = \"mysql://app@127.0.0.1:3306/shop\"\n"
            ))
            .unwrap();
            assert_eq!(c.sources["db"].server_kind(), Some(kind));
            assert_eq!(
                crate::sources::configured_kind(&c, &c.sources["db"]),
                crate::sources::ConfiguredKind::Mariadb
            );
        }
        let err = |text: &str| format!("{:#}", load(text).unwrap_err());
        let e = err("[sources.db]\nkind = \"mariadb\"\nurl = \"mysql://a:secret@h/db\"\n");
        assert!(e.contains("password_file") && !e.contains("secret"), "{e}");
        let e = err("[sources.db]\nkind = \"mariadb\"\nurl = \"postgres://a@h/db\"\n");
        assert!(e.contains("mysql://USER@HOST"), "{e}");
        assert!(err("[sources.db]\nkind = \"oracle\"\nurl = \"x\"\n").contains("mariadb"));
    }
}
