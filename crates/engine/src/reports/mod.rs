//! Read-only reports: the snapshot listing with retention and drill state (`listing`), the
//! repository's figures (`stats`) and each source's health (`status`). They read through the
//! repository's mechanics and never write.

pub mod listing;
pub mod stats;
pub mod status;
