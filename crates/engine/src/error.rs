//! The engine's one error type, with a kind for exit codes and retry decisions.

use backstop_format::FormatError;

/// What went wrong, broadly: the CLI maps kinds to exit codes, the daemon to retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    Storage,
    Source,
    Format,
    Integrity,
    Auth,
    Config,
    Locked,
    NotFound,
    NoRepository,
    Cancelled,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] backstop_storage::Error),
    #[error(transparent)]
    Source(#[from] backstop_sources::Error),
    #[error("{what}: {source}")]
    Format {
        what: String,
        #[source]
        source: FormatError,
    },
    #[error("no backstop repository at {0}: run `backstop init` first")]
    NoRepository(String),
    #[error(
        "the repository at {0} is encrypted: set BACKSTOP_PASSWORD or BACKSTOP_PASSWORD_FILE, or pass --password-file"
    )]
    PassphraseRequired(String),
    #[error("wrong passphrase for the repository at {0}")]
    WrongPassphrase(String),
    /// Key files that cannot be used whatever the passphrase, when no other key file opened.
    #[error(
        "the repository at {location} cannot be opened: key file {} is damaged, and no other key file accepts this passphrase",
        damaged.join(", key file ")
    )]
    DamagedKey {
        location: String,
        damaged: Vec<String>,
    },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("the repository is locked: {0}")]
    Locked(String),
    #[error(
        "the repository's index changed after it was loaded (a prune ran meanwhile); run the command again"
    )]
    IndexChanged,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(_) => ErrorKind::Storage,
            Error::Source(_) => ErrorKind::Source,
            Error::Format { .. } => ErrorKind::Format,
            Error::NoRepository(_) => ErrorKind::NoRepository,
            Error::PassphraseRequired(_) | Error::WrongPassphrase(_) => ErrorKind::Auth,
            Error::Integrity(_) | Error::DamagedKey { .. } => ErrorKind::Integrity,
            Error::Locked(_) | Error::IndexChanged => ErrorKind::Locked,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Invalid(_) => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_transient(),
            Error::Locked(_) | Error::IndexChanged => true,
            _ => false,
        }
    }

    pub(crate) fn format(what: impl Into<String>, source: FormatError) -> Self {
        match source {
            FormatError::Authentication => Error::Integrity(format!("{}: {source}", what.into())),
            _ => Error::Format {
                what: what.into(),
                source,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
