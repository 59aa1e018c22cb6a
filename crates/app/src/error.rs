//! The two error markers every front end maps: a usage or configuration problem, and
//! something asked for that does not exist. Wrap them in `anyhow::Error`; front ends downcast.

/// Marks an error as a usage or configuration problem (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Marks an error as something asked for that does not exist (exit code 13).
#[derive(Debug)]
pub struct NotFoundError(pub String);

impl std::fmt::Display for NotFoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFoundError {}
