//! Daemon state that is not backup data: web users, API tokens, browser sessions, the audit
//! log and job activity, in one small SQLite file beside the config.
//!
//! Secrets never reach the file: passwords are Argon2id PHC strings, and API tokens and
//! session ids are stored as their BLAKE3 hash, so a lookup by hash is the comparison.
//! Argon2 runs outside the connection lock so one slow login does not stall the server.
//! Times are stored as INTEGER unix milliseconds.
//!
//! ```no_run
//! use backstop_server::state::{Role, State};
//!
//! let state = State::open("state.db".as_ref())?;
//! state.add_user("alice", Role::Admin, "correct horse battery")?;
//! assert_eq!(state.check_password("alice", "correct horse battery")?, Some(Role::Admin));
//! # Ok::<(), backstop_server::state::StateError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// The schema version this build writes; `MIGRATIONS[v]` takes a file from version `v` to `v + 1`.
const SCHEMA_VERSION: i64 = 3;

const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    last_used INTEGER
) STRICT;
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE ON UPDATE CASCADE,
    csrf TEXT NOT NULL,
    expires INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user ON sessions(user);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_time ON audit(time);
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    triggered_by TEXT NOT NULL,
    started INTEGER NOT NULL,
    finished INTEGER,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX jobs_started ON jobs(started);
CREATE INDEX jobs_source_kind_started ON jobs(source, kind, started);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;
"#,
    // Repeated failures collapse into one audit row; revoked tokens are remembered by hash so
    // a client still using one is named in the audit log.
    r#"
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN first_time INTEGER;
CREATE INDEX audit_same ON audit(actor, action, outcome, time);
CREATE TABLE revoked_tokens (
    secret_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    revoked INTEGER NOT NULL
) STRICT;
"#,
    // A job's description and how far it got (`JobFigures`, as JSON); the repository's size,
    // one sample a day (the newest of the day), for the status page's picture of its growth.
    r#"
ALTER TABLE jobs ADD COLUMN figures TEXT NOT NULL DEFAULT '{}';
CREATE TABLE repository_sizes (
    day TEXT PRIMARY KEY,
    time INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) STRICT;
"#,
];

/// Verified when a login names no user, so the reply takes as long as for a real user.
/// Default Argon2id parameters; the password is random and was thrown away.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Ltp54eUFDu7AKWC7M5PSyQ$nfzpjarA5kNA1y93xiVjfUeRTByvtltw1JRxAGxt6Gg";

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_NAME_CHARS: usize = 64;
const TOKEN_PREFIX: &str = "bst_";
/// `last_used` is a hint for the token list, not an access log; this bounds the writes.
const LAST_USED_GRANULARITY: SignedDuration = SignedDuration::from_secs(60);

/// Everything that can go wrong with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite reported an error.
    /// (The message holds SQLite's, so it is not also the `source()`: "X: X".)
    #[error("state database error: {0}; check that the state file is writable and not damaged")]
    Sqlite(rusqlite::Error),
    /// The state file could not be opened or set up.
    #[error("cannot open state file {}: {cause}; check its permissions and that it is a backstop state file", path.display())]
    Open {
        /// The file that was opened.
        path: PathBuf,
        /// What SQLite said (in the message, so not also the `source()`).
        cause: rusqlite::Error,
    },
    /// The directory that should hold the state file does not exist.
    #[error("directory {} for the state file does not exist; create it or choose another path", .0.display())]
    NoDirectory(PathBuf),
    /// The file was written by a newer backstop.
    #[error("state file {} has schema version {found}, but this backstop knows only up to {known}; upgrade backstop or use another state file", path.display())]
    TooNew {
        /// The file that was opened.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A user or token with this name already exists (the string names it).
    #[error("{0} already exists; choose another name or remove the existing one first")]
    Exists(String),
    /// No user or token with this name (the string names it).
    #[error("{0} does not exist; check the name")]
    NotFound(String),
    /// A bad name, password or other argument; the string says what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Hashing a password or reading a stored hash failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    /// A stored value cannot be read back.
    #[error("state file holds an unreadable value: {0}; was it written by a newer backstop?")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        StateError::Sqlite(e)
    }
}

/// A word that is not one of the accepted choices, from [`Role`] or [`Scope`] `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; choose one of: {choices}")]
pub struct ParseChoiceError {
    what: &'static str,
    given: String,
    choices: &'static str,
}

/// Declares a lowercase word enum with `as_str`, `Display` and `FromStr`.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, $choices:literal,
     { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The lowercase word used in the file, the API and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseChoiceError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    _ => Err(ParseChoiceError { what: $what, given: s.to_owned(), choices: $choices }),
                }
            }
        }
    };
}

word_enum!(
    /// What a web user may do. Ordered by privilege: `Viewer < Operator < Admin`.
    Role, "role", "viewer, operator, admin", {
        /// Sees status, snapshots and logs.
        Viewer = "viewer",
        /// Also starts backups, verifies and restores.
        Operator = "operator",
        /// Also manages users, tokens and settings.
        Admin = "admin",
    }
);

word_enum!(
    /// What an API token may do. Ordered by privilege: `Read < Backup < Admin`.
    Scope, "scope", "read, backup, admin", {
        /// Reads status, snapshots and logs.
        Read = "read",
        /// Also starts backups.
        Backup = "backup",
        /// Everything the API offers.
        Admin = "admin",
    }
);

/// A web user as listed; the password hash is not included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Current role.
    pub role: Role,
    /// When the user was added.
    pub created: Timestamp,
}

/// An API token as listed; the secret is not included (it is shown once, by [`State::add_token`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Token name, for example the application that uses it.
    pub name: String,
    /// What the token may do.
    pub scope: Scope,
    /// When the token was added.
    pub created: Timestamp,
    /// When the token was last accepted, to within a minute.
    pub last_used: Option<Timestamp>,
}

/// A new browser session, returned once by [`State::create_session`].
#[derive(Clone)]
pub struct NewSession {
    /// The secret cookie value (64 hex characters); only its hash is stored.
    pub id: String,
    /// The token forms must echo back (64 hex characters).
    pub csrf: String,
    /// When the session stops being accepted.
    pub expires: Timestamp,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("id", &"<redacted>")
            .field("csrf", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// A live browser session, as found by [`State::session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The logged-in user.
    pub user: String,
    /// The user's role now, not when the session began.
    pub role: Role,
    /// The token forms must echo back.
    pub csrf: String,
    /// When the session stops being accepted.
    pub expires: Timestamp,
}

/// One line of the audit log: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened.
    pub time: Timestamp,
    /// Who: `user:alice`, `token:shop-app`, `scheduler`, `cli`.
    pub actor: String,
    /// What: `backup`, `restore`, `login`, `login-failed`, `user-add`, ...
    pub action: String,
    /// A source or snapshot; may be empty.
    pub target: String,
    /// `ok`, `denied`, `failed` or `started`.
    pub outcome: String,
    /// Free text.
    pub detail: String,
}

/// One run of a job, inserted when it starts and replaced when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Unique run id.
    pub id: String,
    /// `backup`, `verify`, `drill`, `forget`, `prune` or `restore`.
    pub kind: String,
    /// The source; empty for repository-wide jobs.
    pub source: String,
    /// What started it: `schedule`, `startup`, `user:alice`, `token:app`, ...
    pub trigger: String,
    /// When it started.
    pub started: Timestamp,
    /// When it ended; `None` while running.
    pub finished: Option<Timestamp>,
    /// `running`, `ok`, `failed` or `abandoned`.
    pub outcome: String,
    /// One line for lists.
    pub message: String,
    /// Anything else, such as a backup summary.
    pub detail: serde_json::Value,
    /// What it was asked and what it got through (shown beside the record's own fields).
    #[serde(flatten)]
    pub figures: JobFigures,
}

/// What a job was asked to do and how far it got, kept with its record so that a job's page
/// shows the same after the daemon restarted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFigures {
    /// The description given with a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its last phase (`backup`, `restore`, `read data`...).
    #[serde(default)]
    pub phase: String,
    /// Bytes and items the last phase processed.
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub items_done: u64,
    /// The phases before the last that processed anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseFigures>,
}

/// What one phase of a job processed, and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseFigures {
    pub name: String,
    pub bytes: u64,
    pub items: u64,
    pub seconds: f64,
}

impl PhaseFigures {
    /// `restore: 1.2 GiB in 14 s`.
    pub fn words(&self) -> String {
        let mut parts = vec![backstop_policy::format_bytes(self.bytes)];
        if self.items > 1 {
            parts.push(format!("{} items", self.items));
        }
        parts.push(format!(
            "in {}",
            backstop_policy::format_seconds(self.seconds)
        ));
        format!("{}: {}", self.name, parts.join(", "))
    }
}

/// The state store. `Send + Sync`: share it through an `Arc`; each call holds the lock briefly.
#[derive(Debug)]
pub struct State {
    conn: Mutex<Connection>,
}

impl State {
    /// Opens the state file at `path`, creating it and its schema if missing.
    ///
    /// The parent directory must exist. A file from a newer backstop is refused.
    pub fn open(path: &Path) -> Result<State, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(StateError::NoDirectory(dir.to_owned()));
        }
        let open_err = |cause| StateError::Open {
            path: path.to_owned(),
            cause,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // WAL lets readers proceed during a write; a filesystem without shared memory keeps
        // the old mode, which is slower but still correct.
        // Switching a new file to WAL needs an exclusive lock, and SQLite answers "busy" at once
        // (without its busy handler, to avoid a deadlock) while another process opens the same
        // new file: retry for as long as the busy timeout.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < Duration::from_secs(5) =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other.map_err(open_err)?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "state file is not in WAL mode");
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        migrate(&mut conn, path)?;
        Ok(State {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-call leaves no open transaction (dropping one rolls it back), so the
        // connection is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a web user. Names are 1 to 64 of `A-Z a-z 0-9 . _ @ -`; passwords at least 8 characters.
    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<(), StateError> {
        check_name(name)?;
        let hash = hash_password(password)?;
        let added = self.conn().execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO NOTHING",
            params![name, role.as_str(), hash, millis(now_ms())],
        )?;
        if added == 0 {
            return Err(StateError::Exists(format!("user {name:?}")));
        }
        Ok(())
    }

    /// Sets a user's password and ends all their sessions.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StateError> {
        let hash = hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        if changed == 0 {
            return Err(user_not_found(name));
        }
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a user's role; their live sessions get the new role at once.
    pub fn set_role(&self, name: &str, role: Role) -> Result<(), StateError> {
        let changed = self.conn().execute(
            "UPDATE users SET role = ?2 WHERE name = ?1",
            params![name, role.as_str()],
        )?;
        if changed == 0 {
            return Err(user_not_found(name));
        }
        Ok(())
    }

    /// Removes a user and ends all their sessions.
    pub fn remove_user(&self, name: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        if tx.execute("DELETE FROM users WHERE name = ?1", [name])? == 0 {
            return Err(user_not_found(name));
        }
        tx.commit()?;
        Ok(())
    }

    /// All web users, by name.
    pub fn users(&self) -> Result<Vec<UserInfo>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, role, created FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.map(|row| {
            let (name, role, created): (String, String, i64) = row?;
            Ok(UserInfo {
                name,
                role: parse_stored(&role)?,
                created: from_millis(created)?,
            })
        })
        .collect()
    }

    /// Checks a login: the user's role if the password is right, `None` if the user is
    /// unknown or the password wrong. Both cases take about as long.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<Role>, StateError> {
        let found: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT password_hash, role FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        // The lock is released here: Argon2 takes tens of milliseconds by design.
        let Some((hash, role)) = found else {
            let _ = verify_password(password, DUMMY_HASH);
            return Ok(None);
        };
        if !verify_password(password, &hash)? {
            return Ok(None);
        }
        parse_stored(&role).map(Some)
    }

    /// Adds an API token and returns its secret, `bst_` and 64 hex characters. The secret is
    /// not stored and cannot be shown again.
    pub fn add_token(&self, name: &str, scope: Scope) -> Result<String, StateError> {
        check_name(name)?;
        let secret = format!("{TOKEN_PREFIX}{}", random_hex()?);
        let added = self.conn().execute(
            "INSERT INTO tokens (name, scope, secret_hash, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO NOTHING",
            params![name, scope.as_str(), secret_hash(&secret), millis(now_ms())],
        )?;
        if added == 0 {
            return Err(StateError::Exists(format!("token {name:?}")));
        }
        Ok(secret)
    }

    /// All API tokens, by name.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StateError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, scope, created, last_used FROM tokens ORDER BY name")?;
        let rows = stmt.query_map([], token_row)?;
        rows.map(|row| token_info(row?)).collect()
    }

    /// Removes an API token; requests with its secret are refused from now on (and their
    /// audit entries name the revoked token).
    pub fn remove_token(&self, name: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO revoked_tokens (secret_hash, name, revoked)
             SELECT secret_hash, name, ?2 FROM tokens WHERE name = ?1",
            params![name, millis(now_ms())],
        )?;
        if tx.execute("DELETE FROM tokens WHERE name = ?1", [name])? == 0 {
            return Err(StateError::NotFound(format!("token {name:?}")));
        }
        tx.commit()?;
        Ok(())
    }

    /// Looks a token up by its secret and notes the use. `None` if no token has this secret.
    pub fn check_token(&self, secret: &str) -> Result<Option<TokenInfo>, StateError> {
        let conn = self.conn();
        let hash = secret_hash(secret);
        let Some(row) = conn
            .query_row(
                "SELECT name, scope, created, last_used FROM tokens WHERE secret_hash = ?1",
                [&hash],
                token_row,
            )
            .optional()?
        else {
            return Ok(None);
        };
        let mut info = token_info(row)?;
        let now = now_ms();
        let stale = info
            .last_used
            .is_none_or(|t| now.duration_since(t) >= LAST_USED_GRANULARITY);
        if stale {
            conn.execute(
                "UPDATE tokens SET last_used = ?2 WHERE secret_hash = ?1",
                params![hash, millis(now)],
            )?;
            info.last_used = Some(now);
        }
        Ok(Some(info))
    }

    /// Starts a browser session for `user` lasting `ttl` from `now`. Also drops expired sessions.
    pub fn create_session(
        &self,
        user: &str,
        ttl: SignedDuration,
        now: Timestamp,
    ) -> Result<NewSession, StateError> {
        if ttl <= SignedDuration::ZERO {
            return Err(StateError::Invalid(format!(
                "session lifetime must be positive, not {ttl:#}"
            )));
        }
        let expires = now.checked_add(ttl).map_err(|e| {
            StateError::Invalid(format!("session lifetime {ttl:#} is too long: {e}"))
        })?;
        let session = NewSession {
            id: random_hex()?,
            csrf: random_hex()?,
            expires,
        };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM sessions WHERE expires <= ?1", [millis(now)])?;
        let user_exists = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", [user], |_| Ok(()))
            .optional()?
            .is_some();
        if !user_exists {
            return Err(user_not_found(user));
        }
        tx.execute(
            "INSERT INTO sessions (id_hash, user, csrf, expires) VALUES (?1, ?2, ?3, ?4)",
            params![
                secret_hash(&session.id),
                user,
                session.csrf,
                millis(expires)
            ],
        )?;
        tx.commit()?;
        Ok(session)
    }

    /// The live session with this cookie value, with the user's current role. `None` if the
    /// id is unknown or the session expired (an expired one is deleted).
    pub fn session(&self, id: &str, now: Timestamp) -> Result<Option<Session>, StateError> {
        let conn = self.conn();
        let hash = secret_hash(id);
        let found: Option<(String, String, String, i64)> = conn
            .query_row(
                "SELECT s.user, u.role, s.csrf, s.expires
                 FROM sessions s JOIN users u ON u.name = s.user
                 WHERE s.id_hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((user, role, csrf, expires)) = found else {
            return Ok(None);
        };
        let expires = from_millis(expires)?;
        if expires <= now {
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [&hash])?;
            return Ok(None);
        }
        Ok(Some(Session {
            user,
            role: parse_stored(&role)?,
            csrf,
            expires,
        }))
    }

    /// Ends a session (logout). An unknown id is not an error.
    pub fn delete_session(&self, id: &str) -> Result<(), StateError> {
        self.conn()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [secret_hash(id)])?;
        Ok(())
    }

    /// When the daemon first started with this state file: `now` on the first call, the
    /// stored time on every later one.
    pub fn first_start(&self, now: Timestamp) -> Result<Timestamp, StateError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('first_start', ?1) ON CONFLICT(key) DO NOTHING",
            [millis(now)],
        )?;
        let ms = conn.query_row(
            "SELECT value FROM meta WHERE key = 'first_start'",
            [],
            |r| r.get(0),
        )?;
        from_millis(ms)
    }

    /// Marks jobs that were queued or running when a daemon stopped (killed, crashed, power
    /// lost) as abandoned; called when the daemon starts. Returns how many there were.
    pub fn abandon_unfinished(&self, now: Timestamp) -> Result<usize, StateError> {
        Ok(self.conn().execute(
            "UPDATE jobs SET outcome = 'abandoned', finished = ?1, \
             message = 'the daemon stopped while this job ran: nothing of it was recorded' \
             WHERE outcome IN ('queued', 'running')",
            [millis(now)],
        )?)
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`], one migration per transaction. The version is
/// read inside an IMMEDIATE transaction so two processes opening a new file do not both migrate.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        let Some(sql) = usize::try_from(found).ok().and_then(|v| MIGRATIONS.get(v)) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

fn user_not_found(name: &str) -> StateError {
    StateError::NotFound(format!("user {name:?}"))
}

fn check_name(name: &str) -> Result<(), StateError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if name.is_empty() || name.len() > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(StateError::Invalid(format!(
            "name {name:?} is not allowed; use 1 to {MAX_NAME_CHARS} of the characters A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, StateError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StateError::Invalid(format!(
            "password is too short; use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(StateError::Random)?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| StateError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// `Ok(false)` for a wrong password; `Err` only for a stored hash that cannot be used.
fn verify_password(password: &str, phc: &str) -> Result<bool, StateError> {
    // The parameters come from the PHC string, not from this `Argon2` value.
    match Argon2::default().verify_password(password.as_bytes(), phc) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(StateError::Hash(format!(
            "stored password hash is unusable ({e}); set a new password"
        ))),
    }
}

/// 32 random bytes as 64 lowercase hex characters.
fn random_hex() -> Result<String, StateError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(StateError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn secret_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The current time at the precision stored, so a returned value equals the one read back later.
fn now_ms() -> Timestamp {
    Timestamp::from_millisecond(Timestamp::now().as_millisecond())
        .expect("a current timestamp truncated to milliseconds is in range")
}

fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_millis(ms: i64) -> Result<Timestamp, StateError> {
    Timestamp::from_millisecond(ms).map_err(|e| StateError::Corrupt(format!("time {ms}: {e}")))
}

fn parse_stored<T: FromStr<Err = ParseChoiceError>>(s: &str) -> Result<T, StateError> {
    s.parse()
        .map_err(|e: ParseChoiceError| StateError::Corrupt(e.to_string()))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

type TokenRow = (String, String, i64, Option<i64>);

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn token_info((name, scope, created, last_used): TokenRow) -> Result<TokenInfo, StateError> {
    Ok(TokenInfo {
        name,
        scope: parse_stored(&scope)?,
        created: from_millis(created)?,
        last_used: last_used.map(from_millis).transpose()?,
    })
}

mod audit;
mod jobs;
mod sizes;
pub use audit::AuditRecord;
mod limiter;
pub use limiter::LoginLimiter;
pub use sizes::SizeSample;

#[cfg(test)]
mod tests;
