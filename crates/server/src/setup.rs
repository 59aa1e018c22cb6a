//! What the daemon is given: the repository, the sources and how to build them, schedules,
//! retention. It lives in the application layer ([`backstop_app::daemon`]), where the config
//! model builds it; these are its names inside the server.

pub use backstop_app::daemon::{DEFAULT_AUDIT_RETENTION, Setup, SourceFactory, SourceSpec, Tasks};
