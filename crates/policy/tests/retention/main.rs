//! `plan_group` against hand-derived expectations: restic's rules over a year of hourly
//! snapshots, irregular snapshots, restic's own test data, time zones, the lifecycle rules,
//! the JSON of a plan, and properties.

mod irregular;
mod json;
mod lifecycle;
mod props;
mod restic_data;
mod support;
mod year;
mod zones;
