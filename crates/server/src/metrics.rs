//! `GET /metrics` in the Prometheus text format (version 0.0.4).

use std::fmt::Write as _;

use crate::jobs::JobView;
use crate::overview::Overview;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the metrics of the status page and the recent jobs.
pub fn render(page: &Overview, jobs: &[JobView]) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    };
    let src = |n: &str| format!("source=\"{}\"", label(n));
    metric(
        "backstop_up",
        "gauge",
        "The daemon is running.",
        vec![(String::new(), 1.0)],
    );
    metric(
        "backstop_source_last_success_timestamp_seconds",
        "gauge",
        "Time of the source's newest snapshot.",
        page.sources
            .iter()
            .filter_map(|s| {
                Some((
                    src(&s.status.name),
                    s.status.last_backup?.as_second() as f64,
                ))
            })
            .collect(),
    );
    metric(
        "backstop_source_snapshots",
        "gauge",
        "Snapshots of the source in the repository.",
        page.sources
            .iter()
            .map(|s| (src(&s.status.name), s.status.snapshots as f64))
            .collect(),
    );
    metric(
        "backstop_source_last_bytes",
        "gauge",
        "Content bytes of the source's newest snapshot.",
        page.sources
            .iter()
            .filter_map(|s| Some((src(&s.status.name), s.status.last_bytes? as f64)))
            .collect(),
    );
    metric(
        "backstop_source_overdue",
        "gauge",
        "1 when the source's last backup is older than its schedule allows.",
        page.sources
            .iter()
            .map(|s| (src(&s.status.name), f64::from(u8::from(s.status.overdue))))
            .collect(),
    );
    metric(
        "backstop_source_ok",
        "gauge",
        "1 when the source needs no attention (backed up on time, healthy, drilled).",
        page.sources
            .iter()
            .map(|s| {
                let ok = s.status.state == "ok" && s.last_failure.is_none();
                (src(&s.status.name), f64::from(u8::from(ok)))
            })
            .collect(),
    );
    metric(
        "backstop_source_verified_timestamp_seconds",
        "gauge",
        "Time of the newest passed restore drill of the source.",
        page.sources
            .iter()
            .filter_map(|s| {
                Some((
                    src(&s.status.name),
                    s.status.verified.as_ref()?.drilled.as_second() as f64,
                ))
            })
            .collect(),
    );
    metric(
        "backstop_source_backup_failing",
        "gauge",
        "1 when the daemon's latest backup of the source failed.",
        page.sources
            .iter()
            .map(|s| {
                (
                    src(&s.status.name),
                    f64::from(u8::from(s.last_failure.is_some())),
                )
            })
            .collect(),
    );
    // Durations and failures of the jobs this daemon ran (since it started).
    let mut last_duration: Vec<(String, f64)> = Vec::new();
    let mut failures: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for j in jobs.iter().rev() {
        if let (Some(s), Some(f)) = (j.started, j.finished) {
            let labels = format!("kind=\"{}\",{}", j.kind, src(&j.source));
            let secs = f.duration_since(s).as_secs_f64();
            last_duration.retain(|(l, _)| *l != labels);
            last_duration.push((labels, secs));
        }
        if j.state == "failed" {
            *failures
                .entry((j.kind.to_string(), j.source.clone()))
                .or_default() += 1;
        }
    }
    metric(
        "backstop_job_last_duration_seconds",
        "gauge",
        "Duration of the latest finished job of each kind and source.",
        last_duration,
    );
    metric(
        "backstop_job_failures",
        "gauge",
        "Failed jobs among the daemon's recent jobs.",
        failures
            .into_iter()
            .map(|((k, s), n)| (format!("kind=\"{k}\",{}", src(&s)), n as f64))
            .collect(),
    );
    metric(
        "backstop_repository_size_bytes",
        "gauge",
        "Bytes of packs in the repository.",
        vec![(String::new(), page.repository.size_bytes as f64)],
    );
    if let Some(free) = page.repository.free_bytes {
        metric(
            "backstop_repository_free_bytes",
            "gauge",
            "Free space where the repository is stored.",
            vec![(String::new(), free as f64)],
        );
    }
    metric(
        "backstop_unreadable_snapshots",
        "gauge",
        "Snapshots that cannot be read (run backstop verify).",
        vec![(String::new(), page.unreadable_snapshots as f64)],
    );
    metric(
        "backstop_jobs_active",
        "gauge",
        "Jobs queued or running.",
        vec![(String::new(), page.active_jobs.len() as f64)],
    );
    out
}
