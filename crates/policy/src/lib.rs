//! Retention and schedule arithmetic: which snapshots a policy keeps, and when a schedule runs
//! next, as pure functions of the snapshot list and a clock passed in (no I/O).
//!
//! Empty for now: it arrives with the retention issue (`forget`, `prune`), and the daemon's
//! scheduler after it. The crate exists so that the workspace layout, and what may depend on
//! what, are settled from the start.
