//! Opening a repository: where it is ([`Location`]), the passphrase that opens it
//! ([`Credentials`]), and its index, loaded once per operation with damaged index files
//! reported through the front end's own channel (stderr, the daemon's log).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use backstop_engine::{IndexProblem, Indexed, InitOptions, Repository, SpillOptions};
use backstop_format::Timestamp;
use backstop_storage::{
    Addressing, CachedStorage, LocalStorage, RetryOptions, Retrying, S3Location, S3Options,
    S3Storage, Storage,
};

use crate::config::{Config, RepositoryConfig};
use crate::error::UsageError;

/// The repository a first `backup` creates in the working directory when none is configured.
pub const DEFAULT_REPO: &str = "backstop-repo";

/// Where a repository is: a local directory, or `s3://BUCKET/PREFIX` in an S3-compatible
/// bucket (the endpoint and keys from its `[repositories.NAME]` section or the usual AWS
/// variables, see docs/s3.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    place: PathBuf,
    /// The `[repositories.NAME]` section that named it, if one did.
    named: Option<Named>,
}

/// A repository named in the config: its name, its section, and the config file's folder
/// (for the section's relative paths).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    name: String,
    settings: RepositoryConfig,
    dir: PathBuf,
}

impl Location {
    /// The location a front end was given (`flag`: its `--repo` or `BACKSTOP_REPO`), else the
    /// config's `repository` (a path relative to the config file's directory). Either may be
    /// the name of a `[repositories.NAME]` section, which then wins over a folder of that name
    /// (write `./NAME` for the folder). `None` when neither names one.
    pub fn resolve(flag: Option<&str>, config: &Config) -> Option<Location> {
        if let Some(r) = flag {
            return Some(
                Location::named(r, config).unwrap_or_else(|| Location::plain(PathBuf::from(r))),
            );
        }
        let r = config.repository.as_deref()?;
        Some(Location::named(r, config).unwrap_or_else(|| Location::in_config(r, config)))
    }

    /// The repository of the config's `[repositories.NAME]` section, if there is one.
    pub fn named(name: &str, config: &Config) -> Option<Location> {
        let settings = config.repositories.get(name)?;
        let mut loc = Location::in_config(&settings.location, config);
        loc.named = Some(Named {
            name: name.to_owned(),
            settings: settings.clone(),
            dir: config.dir.clone(),
        });
        Some(loc)
    }

    fn plain(place: PathBuf) -> Location {
        Location { place, named: None }
    }

    /// A location written in the config: a path relative to the config file's directory, or,
    /// with a scheme, kept as given so that opening it can name it.
    fn in_config(text: &str, config: &Config) -> Location {
        match text.contains("://") {
            true => Location::plain(PathBuf::from(text)),
            false => Location::plain(config.resolve(text)),
        }
    }

    /// The name of the `[repositories.NAME]` section it came from, if any.
    pub fn name(&self) -> Option<&str> {
        self.named.as_ref().map(|n| n.name.as_str())
    }

    /// The passphrase file its section names, if any (resolved against the config's folder).
    pub fn password_file(&self) -> Option<PathBuf> {
        let n = self.named.as_ref()?;
        Some(n.dir.join(n.settings.password_file.as_ref()?))
    }

    /// The retention policy its section sets for every source in it, if any.
    pub fn retention(&self) -> Option<&backstop_policy::Policy> {
        self.named.as_ref()?.settings.retention.as_ref()
    }

    /// [`DEFAULT_REPO`] in the working directory.
    pub fn default_local() -> Location {
        Location::plain(PathBuf::from(DEFAULT_REPO))
    }

    /// Whether the location is remote (an `s3://` bucket): reads are requests over a network.
    pub fn is_remote(&self) -> bool {
        self.scheme().is_some()
    }

    /// The local directory, or `None` for a remote location.
    pub fn local_path(&self) -> Option<&Path> {
        self.scheme().is_none().then_some(self.place.as_path())
    }

    /// The scheme of a location written `SCHEME://...`, if it is one.
    fn scheme(&self) -> Option<String> {
        let text = self.place.to_str()?;
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
        let text = self.place.to_string_lossy();
        match self.scheme().as_deref() {
            None => Ok(Arc::new(LocalStorage::new(&self.place))),
            Some("s3") => {
                let location = S3Location::parse(&text).map_err(|e| UsageError(format!("{e}")))?;
                let options = self.s3_options(location, |name| std::env::var(name).ok())?;
                let s3 = S3Storage::new(options).map_err(|e| UsageError(format!("{e}")))?;
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

impl Location {
    /// The S3 settings: each key of the repository's section, else its AWS variable (`var`).
    /// A section with its own access key id takes no session token from the environment (it
    /// would belong to other keys).
    fn s3_options(
        &self,
        location: S3Location,
        var: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<S3Options> {
        let Some(n) = &self.named else {
            return S3Options::from_env(location, var)
                .map_err(|e| UsageError(format!("{e}")).into());
        };
        let c = &n.settings;
        let secret = match &c.secret_access_key_file {
            Some(f) => {
                let path = n.dir.join(f);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    UsageError(format!(
                        "[repositories.{}] secret_access_key_file {}: {e}",
                        n.name,
                        path.display()
                    ))
                })?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        let own_keys = c.access_key_id.is_some();
        let options = S3Options::from_env(location, |name| {
            let configured = match name {
                "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_S3" => c.endpoint.clone(),
                "AWS_REGION" | "AWS_DEFAULT_REGION" => c.region.clone(),
                "AWS_ACCESS_KEY_ID" => c.access_key_id.clone(),
                "AWS_SECRET_ACCESS_KEY" => secret.clone(),
                "AWS_SESSION_TOKEN" if own_keys => return None,
                _ => None,
            };
            configured.or_else(|| var(name))
        })
        .map_err(|e| {
            UsageError(format!(
                "{e} (or set access_key_id and secret_access_key_file in [repositories.{}])",
                n.name
            ))
        })?;
        Ok(S3Options {
            addressing: match c.addressing.as_deref() {
                Some("path") => Addressing::Path,
                Some("virtual-host") => Addressing::VirtualHost,
                _ => Addressing::Auto,
            },
            ..options
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.place.display().fmt(f)
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

    /// The passphrase of the repository at `loc`: from the password file, the password, the
    /// `password_file` of the repository's `[repositories.NAME]` section, or the config's
    /// `password_file`, in that order. Never from a command line itself.
    pub fn passphrase(
        &self,
        config: &Config,
        loc: Option<&Location>,
    ) -> anyhow::Result<Option<String>> {
        if let Some(f) = &self.password_file {
            return read_password_file(f).map(Some);
        }
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(f) = loc.and_then(Location::password_file) {
            return read_password_file(&f).map(Some);
        }
        if let Some(f) = &config.password_file {
            return read_password_file(&config.resolve(f)).map(Some);
        }
        Ok(None)
    }
}

/// Whether `e` says there is no repository at the location (nothing was created there yet).
pub fn is_no_repository(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref(),
        Some(backstop_engine::Error::NoRepository(_))
    )
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

/// Creates a repository at `loc` that shares `like`'s keys and chunking (see
/// `Repository::init_like`): the destination of a first copy.
pub fn init_like(
    loc: &Location,
    like: &Repository,
    like_passphrase: Option<&str>,
    opts: &InitOptions,
) -> anyhow::Result<Repository> {
    Ok(Repository::init_like(
        loc.storage()?,
        like,
        like_passphrase,
        opts,
    )?)
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

    fn config(dir: &Path, text: &str) -> Config {
        let file = dir.join("backstop.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file)).unwrap()
    }

    #[test]
    fn a_configured_name_resolves_to_its_section() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            r#"
repository = "local"
[repositories.local]
location = "repos/main"
password_file = "main.pass"
[repositories.offsite]
location = "s3://shop-backups/store-7"
"#,
        );
        let main = Location::resolve(None, &cfg).unwrap();
        assert_eq!(main.name(), Some("local"));
        assert_eq!(
            main.local_path(),
            Some(dir.path().join("repos/main").as_path())
        );
        assert_eq!(main.password_file(), Some(dir.path().join("main.pass")));
        let off = Location::resolve(Some("offsite"), &cfg).unwrap();
        assert_eq!((off.name(), off.is_remote()), (Some("offsite"), true));
        assert_eq!(off.to_string(), "s3://shop-backups/store-7");
        // Not a configured name: a path as given (relative to the working directory).
        let other = Location::resolve(Some("elsewhere"), &cfg).unwrap();
        assert_eq!(other.name(), None);
        assert_eq!(other.local_path(), Some(Path::new("elsewhere")));
    }

    #[test]
    fn a_section_s_s3_keys_win_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "from-the-file\n").unwrap();
        let cfg = config(
            dir.path(),
            r#"
[repositories.offsite]
location = "s3://bkt/p"
endpoint = "http://127.0.0.1:9"
access_key_id = "AKCONFIG"
secret_access_key_file = "secret"
addressing = "virtual-host"
"#,
        );
        let env = |name: &str| {
            Some(
                match name {
                    "AWS_ACCESS_KEY_ID" => "AKENV",
                    "AWS_SECRET_ACCESS_KEY" => "env-secret",
                    "AWS_SESSION_TOKEN" => "env-token",
                    "AWS_REGION" => "eu-west-1",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let loc = Location::named("offsite", &cfg).unwrap();
        let o = loc
            .s3_options(S3Location::parse("s3://bkt/p").unwrap(), env)
            .unwrap();
        assert_eq!(o.access_key_id, "AKCONFIG");
        assert_eq!(o.secret_access_key, "from-the-file");
        assert_eq!(
            o.session_token, None,
            "the environment's token is for other keys"
        );
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(
            o.region, "eu-west-1",
            "what the section leaves out comes from the environment"
        );
        assert_eq!(o.addressing, Addressing::VirtualHost);
        // A missing secret file is named.
        std::fs::remove_file(dir.path().join("secret")).unwrap();
        let err = loc
            .s3_options(S3Location::parse("s3://bkt/p").unwrap(), env)
            .unwrap_err();
        assert!(err.to_string().contains("secret_access_key_file"), "{err}");
    }

    #[test]
    fn a_section_that_cannot_work_is_refused_when_the_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backstop.toml");
        for (text, says) in [
            ("[repositories.a]\nlocation = \"\"", "needs a location"),
            (
                "[repositories.a]\nlocation = \"repo\"\nendpoint = \"http://x\"",
                "only an s3:// location",
            ),
            (
                "[repositories.a]\nlocation = \"s3://bkt/p\"\naddressing = \"dns\"",
                "expected path, virtual-host or auto",
            ),
            ("[repositories.Bad]\nlocation = \"repo\"", "invalid name"),
            (
                "[repositories.a]\nlocation = \"repo\"\nsecret_access_key = \"x\"",
                "unknown field",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load(Some(&file)).unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_local_repository_is_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::plain(dir.path().join("repo"));
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
