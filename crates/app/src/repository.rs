//! Opening a repository: where it is ([`Location`]), the passphrase that opens it
//! ([`Credentials`]), and its index, loaded once per operation with damaged index files
//! reported through the front end's own channel (stderr, the daemon's log).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use backstop_engine::{IndexProblem, Indexed, InitOptions, Repository, SpillOptions};
use backstop_format::Timestamp;
use backstop_storage::{
    CachedStorage, LocalStorage, RetryOptions, Retrying, S3Location, S3Options, S3Storage, Storage,
};

use crate::config::Config;
use crate::error::UsageError;

/// The repository a first `backup` creates in the working directory when none is configured.
pub const DEFAULT_REPO: &str = "backstop-repo";

/// Where a repository is: a local directory, or `s3://BUCKET/PREFIX` in an S3-compatible
/// bucket (the endpoint and keys from the usual AWS variables, see docs/s3.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location(PathBuf);

impl Location {
    /// The location a front end was given (`flag`: its `--repo` or `BACKSTOP_REPO`), else the
    /// config's `repository` (a path relative to the config file's directory). `None` when
    /// neither names one.
    pub fn resolve(flag: Option<&str>, config: &Config) -> Option<Location> {
        if let Some(r) = flag {
            return Some(Location(PathBuf::from(r)));
        }
        // A location with a scheme is not a path relative to the config file: kept as given
        // so that opening it can name it.
        config
            .repository
            .as_deref()
            .map(|r| match r.contains("://") {
                true => Location(PathBuf::from(r)),
                false => Location(config.resolve(r)),
            })
    }

    /// [`DEFAULT_REPO`] in the working directory.
    pub fn default_local() -> Location {
        Location(PathBuf::from(DEFAULT_REPO))
    }

    /// Whether the location is remote (an `s3://` bucket): reads are requests over a network.
    pub fn is_remote(&self) -> bool {
        self.scheme().is_some()
    }

    /// The local directory, or `None` for a remote location.
    pub fn local_path(&self) -> Option<&Path> {
        self.scheme().is_none().then_some(self.0.as_path())
    }

    /// The scheme of a location written `SCHEME://...`, if it is one.
    fn scheme(&self) -> Option<String> {
        let text = self.0.to_str()?;
        let (scheme, _) = text.split_once("://")?;
        (!scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then(|| scheme.to_ascii_lowercase())
    }

    /// The storage at this location: a local directory, or an S3 bucket configured from the
    /// process's AWS variables and wrapped in retries. Any other scheme (`sftp://...`) is
    /// refused before anything is created, rather than made into a local folder named `sftp:`.
    fn storage(&self) -> anyhow::Result<Arc<dyn Storage>> {
        let text = self.0.to_string_lossy();
        match self.scheme().as_deref() {
            None => Ok(Arc::new(LocalStorage::new(&self.0))),
            Some("s3") => {
                let usage = |e: backstop_storage::Error| UsageError(format!("{e}"));
                let location = S3Location::parse(&text).map_err(usage)?;
                let options = S3Options::from_env(location, |name| std::env::var(name).ok())
                    .map_err(usage)?;
                let s3 = S3Storage::new(options).map_err(usage)?;
                Ok(Arc::new(Retrying::new(s3, RetryOptions::default())))
            }
            Some(scheme) => Err(UsageError(format!(
                "repository location {text}: {scheme}:// repositories are not supported; give \
                 a local directory (or a mounted disk) or an s3://BUCKET/PREFIX location \
                 instead. Nothing was created"
            ))
            .into()),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.display().fmt(f)
    }
}

/// Where the passphrase comes from, as a front end was given it.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A file holding the passphrase (`--password-file`, `BACKSTOP_PASSWORD_FILE`).
    pub password_file: Option<PathBuf>,
    /// The passphrase itself (`BACKSTOP_PASSWORD`).
    pub password: Option<String>,
}

impl Credentials {
    /// `flag_file` (a front end's `--password-file`), else `BACKSTOP_PASSWORD_FILE`; and
    /// `BACKSTOP_PASSWORD`.
    pub fn from_env(flag_file: Option<PathBuf>) -> Self {
        Self {
            password_file: flag_file
                .or_else(|| std::env::var_os("BACKSTOP_PASSWORD_FILE").map(PathBuf::from)),
            password: std::env::var("BACKSTOP_PASSWORD").ok(),
        }
    }

    /// The passphrase: from the password file, the password, or the config's
    /// `password_file`, in that order. Never from a command line itself.
    pub fn passphrase(&self, config: &Config) -> anyhow::Result<Option<String>> {
        if let Some(f) = &self.password_file {
            return read_password_file(f).map(Some);
        }
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(f) = &config.password_file {
            return read_password_file(&config.resolve(f)).map(Some);
        }
        Ok(None)
    }
}

/// The passphrase in a file: its text without the line ending.
pub fn read_password_file(p: &Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(p)
        .with_context(|| format!("reading passphrase file {}", p.display()))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// Whether a remote repository is read through a local cache (`backstop_storage::CachedStorage`:
/// index files, snapshot manifests and packs of tree nodes, in a folder per repository).
/// A local repository never is: it is as near as its cache would be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheUse {
    /// In [`default_cache_dir`], if there is one.
    #[default]
    Default,
    /// In this folder.
    At(PathBuf),
    /// A new, empty cache in the system's temporary folder, removed afterwards: what `verify`
    /// and `repair` use, since they judge the remote copy itself (everything they read comes
    /// from it, once) yet should not fetch each tree node with a request of its own.
    Temporary,
    /// Not at all (`--no-cache`).
    Off,
}

/// Where remote repositories' caches go: `BACKSTOP_CACHE_DIR`, else the user's cache folder
/// (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
/// Windows) with `backstop` below it; `None` when none of them is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("BACKSTOP_CACHE_DIR") {
        return Some(dir);
    }
    let base = if cfg!(windows) {
        set("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        set("HOME").map(|h| h.join("Library").join("Caches"))
    } else {
        set("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| set("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("backstop"))
}

/// Opens the repository at `loc`, a remote one through the default cache.
pub fn open(loc: &Location, passphrase: Option<&str>) -> anyhow::Result<Repository> {
    open_with(loc, passphrase, &CacheUse::Default)
}

/// Opens the repository at `loc`; a remote one through the cache `cache` says. The cache's
/// folder for this repository is named by the repository's id. A cache folder that cannot be
/// made is no error: the repository is read without it.
pub fn open_with(
    loc: &Location,
    passphrase: Option<&str>,
    cache: &CacheUse,
) -> anyhow::Result<Repository> {
    let storage = loc.storage()?;
    let repo = Repository::open(storage.clone(), passphrase)?;
    let cached = match cache {
        _ if !loc.is_remote() => return Ok(repo),
        CacheUse::Default => match default_cache_dir() {
            Some(root) => CachedStorage::new(storage, root.join(&repo.config().id)),
            None => return Ok(repo),
        },
        CacheUse::At(root) => CachedStorage::new(storage, root.join(&repo.config().id)),
        CacheUse::Temporary => CachedStorage::temporary(storage, &std::env::temp_dir()),
        CacheUse::Off => return Ok(repo),
    };
    Ok(match cached {
        Ok(cached) => repo.with_storage(Arc::new(cached)),
        Err(_) => repo,
    })
}

/// Creates a repository at `loc`.
pub fn init(loc: &Location, opts: &InitOptions) -> anyhow::Result<Repository> {
    Ok(Repository::init(loc.storage()?, opts)?)
}

/// Whether [`open_or_create`] found a repository or made one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Existing,
    Created { encrypted: bool },
}

/// What [`open_or_create`] opened, where, and whether it made it.
pub struct OpenedRepository {
    pub repo: Repository,
    pub location: Location,
    pub opened: Opened,
}

/// Opens the repository at `loc`; with no location, the one at [`Location::default_local`],
/// created (encrypted when there is a passphrase) if it does not exist yet.
pub fn open_or_create(
    loc: Option<Location>,
    passphrase: Option<String>,
    cache: &CacheUse,
    now: Timestamp,
    host: &str,
) -> anyhow::Result<OpenedRepository> {
    let found = |repo, location| OpenedRepository {
        repo,
        location,
        opened: Opened::Existing,
    };
    if let Some(loc) = loc {
        return Ok(found(open_with(&loc, passphrase.as_deref(), cache)?, loc));
    }
    let location = Location::default_local();
    let storage = location.storage()?;
    match Repository::open(storage.clone(), passphrase.as_deref()) {
        Ok(repo) => Ok(found(repo, location)),
        Err(backstop_engine::Error::NoRepository(_)) => {
            let encrypted = passphrase.is_some();
            let repo = Repository::init(storage, &InitOptions::new(passphrase, now, host.into()))?;
            Ok(OpenedRepository {
                repo,
                location,
                opened: Opened::Created { encrypted },
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads the index; each index file that cannot be read is passed to `warn` as one sentence.
pub fn load_index<'r>(repo: &'r Repository, warn: &dyn Fn(&str)) -> anyhow::Result<Indexed<'r>> {
    let ix = Indexed::load(repo)?;
    report(ix.unreadable(), warn);
    Ok(ix)
}

/// Loads the index for a backup: on disk past a size (see [`SpillOptions`]).
pub fn load_backup_index<'r>(
    repo: &'r Repository,
    spill: &SpillOptions,
    warn: &dyn Fn(&str),
) -> anyhow::Result<Indexed<'r>> {
    let ix = Indexed::load_for_backup(repo, spill)?;
    report(ix.unreadable(), warn);
    Ok(ix)
}

fn report(problems: &[IndexProblem], warn: &dyn Fn(&str)) {
    for problem in problems {
        warn(&format!("{problem}; run `backstop verify`"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn dir_with(vars: &[(&str, &str)]) -> Option<PathBuf> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        cache_dir_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_cache_folder_follows_the_platform_s_convention() {
        assert_eq!(
            dir_with(&[("BACKSTOP_CACHE_DIR", "/c"), ("HOME", "/h")]),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(dir_with(&[("BACKSTOP_CACHE_DIR", "")]), None);
        if cfg!(target_os = "linux") {
            assert_eq!(
                dir_with(&[("HOME", "/h")]),
                Some(PathBuf::from("/h/.cache/backstop"))
            );
            assert_eq!(
                dir_with(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]),
                Some(PathBuf::from("/x/backstop"))
            );
            // A relative XDG_CACHE_HOME is invalid by the specification: ignored.
            assert_eq!(
                dir_with(&[("HOME", "/h"), ("XDG_CACHE_HOME", "x")]),
                Some(PathBuf::from("/h/.cache/backstop"))
            );
        }
    }

    #[test]
    fn a_local_repository_is_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location(dir.path().join("repo"));
        init(
            &loc,
            &InitOptions::new(None, Timestamp::UNIX_EPOCH, "h".into()),
        )
        .unwrap();
        let cache = dir.path().join("cache");
        open_with(&loc, None, &CacheUse::At(cache.clone())).unwrap();
        assert!(!cache.exists());
    }
}
