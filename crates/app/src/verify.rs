//! Verification and restore drills as both front ends ask for them.

use std::path::PathBuf;

use backstop_engine::VerifyOptions;
use backstop_engine::drill::DrillOptions;
use backstop_format::Timestamp;

use crate::backup::Runtime;

/// The engine's options for a verify, reading every pack with `read_data`.
pub fn verify_options(read_data: bool, rt: &Runtime) -> VerifyOptions {
    VerifyOptions {
        read_data,
        host: rt.host.clone(),
    }
}

/// The engine's options for a restore drill that restores into a scratch folder under
/// `scratch` (the CLI: the system's temporary folder; the daemon: its configured one).
pub fn drill_options(scratch: PathBuf, rt: &Runtime, now: Timestamp) -> DrillOptions {
    DrillOptions {
        scratch,
        time: now,
        host: rt.host.clone(),
    }
}
