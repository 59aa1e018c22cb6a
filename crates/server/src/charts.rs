//! The status page's pictures: small SVG charts drawn on the server from the overview (no
//! script and no framework, so they work offline and on any phone). Each comes with a text
//! alternative, its `text`, which is both the SVG's accessible name and the caption under it:
//! the picture is there to be seen at a glance, the words say the same for a screen reader.
//!
//! The charts stretch to the width of their card (`preserveAspectRatio="none"` on a fixed
//! height), so they hold no text of their own: labels are in the HTML around them, and each
//! mark has a `<title>` (a tooltip) with its figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use backstop_format::Timestamp;
use backstop_policy::{
    format_age, format_bytes, format_minute as local, format_seconds as seconds, format_span,
};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::overview::{JobPoint, Overview, SourceOverview};
use crate::state::SizeSample;

/// Days the protection timeline covers.
pub const TIMELINE_DAYS: i64 = 7;
/// Width of every chart's coordinate space (it is stretched to the card).
const W: f64 = 600.0;

/// A picture and the same in words.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// The `<svg>` element, escaped where it holds text (for minijinja's `safe`).
    pub svg: String,
    pub text: String,
}

/// A source's pictures.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCharts {
    /// Its last [`TIMELINE_DAYS`] days: backups, drills, and how much of that time the newest
    /// proven restore covers.
    pub timeline: Chart,
    /// How long its backups and drills took, when it has any.
    pub backups: Option<Chart>,
    pub drills: Option<Chart>,
    /// Which repository holds what, for a source with copies.
    pub copies: Option<Chart>,
}

/// Every picture of the status page.
#[derive(Debug, Clone, Serialize)]
pub struct StatusCharts {
    pub sources: BTreeMap<String, SourceCharts>,
    /// The repository's size over time and its growth per day, once two days were measured.
    pub size: Option<Chart>,
    pub growth: Option<Chart>,
}

/// The pictures of `page`, with times in `tz`.
pub fn status_charts(page: &Overview, tz: &TimeZone) -> StatusCharts {
    StatusCharts {
        sources: page
            .sources
            .iter()
            .map(|s| {
                let charts = SourceCharts {
                    timeline: timeline(s, page.now, tz),
                    // A backup from the command line has no duration on record.
                    backups: durations(newest(&daemons(&s.history.backups)), "Backups", tz),
                    drills: durations(newest(&s.history.drills), "Restore drills", tz),
                    copies: s.copies.as_ref().map(copies),
                };
                (s.status.name.clone(), charts)
            })
            .collect(),
        size: size(&page.repository.sizes),
        growth: growth(&page.repository.sizes),
    }
}

/// Jobs a durations chart shows at most: the newest.
const DURATIONS_MAX: usize = 60;

/// The jobs of `points` the daemon ran.
fn daemons(points: &[JobPoint]) -> Vec<JobPoint> {
    points
        .iter()
        .filter(|p| p.by == crate::overview::BY_DAEMON)
        .cloned()
        .collect()
}

/// The newest [`DURATIONS_MAX`] of `points` (oldest first).
fn newest(points: &[JobPoint]) -> &[JobPoint] {
    &points[points.len().saturating_sub(DURATIONS_MAX)..]
}

/// Escapes text for an SVG element or attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `<svg>` of height `h` (stretched to the width) around `body`, named by `text`.
fn svg(class: &str, h: f64, text: &str, body: &str) -> String {
    format!(
        r#"<svg class="chart {class}" role="img" aria-label="{label}" viewBox="0 0 {W} {h}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{body}</svg>"#,
        label = esc(text)
    )
}

/// A mark with a tooltip.
fn rect(x: f64, y: f64, w: f64, h: f64, class: &str, tip: &str) -> String {
    format!(
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" class="{class}"><title>{}</title></rect>"#,
        esc(tip)
    )
}

/// The last [`TIMELINE_DAYS`] days of a source, now at the right: a track, green where the
/// data is proven restorable (up to the newest snapshot a restore drill passed on), amber from
/// there to now (backed up, not yet proven); a tick per backup (red when it failed) and a mark
/// per restore drill above it.
fn timeline(s: &SourceOverview, now: Timestamp, tz: &TimeZone) -> Chart {
    let span = (TIMELINE_DAYS * 86_400) as f64;
    let from = now - jiff::SignedDuration::from_hours(24 * TIMELINE_DAYS);
    let x = |t: Timestamp| {
        let secs = t.duration_since(from).as_secs_f64().clamp(0.0, span);
        secs / span * W
    };
    let mut body = String::new();
    let (track_y, track_h) = (14.0, 22.0);
    let proven = s.status.verified.as_ref();
    match proven {
        Some(v) => {
            let at = x(v.snapshot_time);
            let tip = format!(
                "proven restorable: the data of {} (a drill passed on it {})",
                local(v.snapshot_time, tz),
                format_age(now.duration_since(v.drilled).as_secs())
            );
            body.push_str(&rect(0.0, track_y, at, track_h, "proven", &tip));
            let tip = format!(
                "not proven yet: backed up since {}, no drill on it",
                local(v.snapshot_time, tz)
            );
            body.push_str(&rect(at, track_y, W - at, track_h, "unproven", &tip));
            body.push_str(&rect(
                (at - 2.0).max(0.0),
                track_y - 6.0,
                4.0,
                track_h + 12.0,
                "proven-mark",
                &format!("newest proven snapshot: {}", local(v.snapshot_time, tz)),
            ));
        }
        None => body.push_str(&rect(
            0.0,
            track_y,
            W,
            track_h,
            "unproven",
            "no restore drill has passed yet",
        )),
    }
    let backups: Vec<&JobPoint> = s
        .history
        .backups
        .iter()
        .filter(|b| b.started >= from)
        .collect();
    for b in &backups {
        let tip = match b.by == crate::overview::BY_DAEMON {
            true => format!(
                "backup {} {} ({})",
                local(b.started, tz),
                if b.ok { "saved" } else { "FAILED" },
                seconds(b.seconds)
            ),
            false => format!(
                "backup {} {} (from the command line)",
                local(b.started, tz),
                if b.ok { "saved" } else { "FAILED" }
            ),
        };
        let class = if b.ok { "tick" } else { "tick failed" };
        body.push_str(&rect(
            x(b.started) - 1.0,
            track_y + 3.0,
            2.0,
            track_h - 6.0,
            class,
            &tip,
        ));
    }
    let drills: Vec<&JobPoint> = s
        .history
        .drills
        .iter()
        .filter(|d| d.started >= from)
        .collect();
    for d in &drills {
        let tip = format!(
            "restore drill {} {}",
            local(d.started, tz),
            if d.ok { "passed" } else { "FAILED" }
        );
        let class = if d.ok { "drill" } else { "drill failed" };
        body.push_str(&rect(x(d.started) - 3.0, 2.0, 6.0, 8.0, class, &tip));
    }
    let failed = backups.iter().filter(|b| !b.ok).count();
    let cli = backups
        .iter()
        .filter(|b| b.by != crate::overview::BY_DAEMON)
        .count();
    let mut text = format!(
        "Last {TIMELINE_DAYS} days: {} backup{}{}",
        backups.len(),
        if backups.len() == 1 { "" } else { "s" },
        match (backups.len() - cli, cli) {
            (_, 0) => " by the daemon".to_string(),
            (0, _) => " from the command line".to_string(),
            (d, c) => format!(", {d} by the daemon and {c} from the command line"),
        }
    );
    if failed > 0 {
        let _ = write!(text, " ({failed} failed)");
    }
    match proven {
        Some(v) => {
            let _ = write!(
                text,
                ". Proven restorable up to the data of {} ({} old), by a drill {}",
                local(v.snapshot_time, tz),
                format_span(now.duration_since(v.snapshot_time).as_secs()),
                format_age(now.duration_since(v.drilled).as_secs())
            );
        }
        None => text.push_str(". No restore drill has passed yet: nothing is proven restorable"),
    }
    text.push('.');
    Chart {
        svg: svg("timeline", 40.0, &text, &body),
        text,
    }
}

/// Bars of how long each job took, oldest first, red where it failed; `None` without jobs.
fn durations(points: &[JobPoint], what: &str, tz: &TimeZone) -> Option<Chart> {
    if points.is_empty() {
        return None;
    }
    let h = 40.0;
    let max = points.iter().map(|p| p.seconds).fold(0.0_f64, f64::max);
    let slot = W / points.len().max(30) as f64;
    let mut body = String::new();
    for (i, p) in points.iter().enumerate() {
        let bar = if max > 0.0 {
            (p.seconds / max * (h - 2.0)).max(1.5)
        } else {
            1.5
        };
        let tip = format!(
            "{} {}: {}",
            local(p.started, tz),
            if p.ok { "ok" } else { "FAILED" },
            seconds(p.seconds)
        );
        let class = if p.ok { "bar" } else { "bar failed" };
        body.push_str(&rect(
            i as f64 * slot + slot * 0.15,
            h - bar,
            slot * 0.7,
            bar,
            class,
            &tip,
        ));
    }
    let mut sorted: Vec<f64> = points.iter().map(|p| p.seconds).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let newest = &points[points.len() - 1];
    let newest_words = match newest.ok {
        true => format!("took {}", seconds(newest.seconds)),
        false => "failed".to_string(),
    };
    let text = match points.len() {
        1 => format!("{what}: the only one {newest_words}"),
        n => format!(
            "{what}: the last {n} took {} to {} (median {}); the newest {newest_words}",
            seconds(sorted[0]),
            seconds(max),
            seconds(median),
        ),
    };
    Some(Chart {
        svg: svg("durations", h, &text, &body),
        text: format!("{text}."),
    })
}

/// The repository's size, one bar a day measured; `None` before a second day.
fn size(sizes: &[SizeSample]) -> Option<Chart> {
    if sizes.len() < 2 {
        return None;
    }
    let h = 60.0;
    let max = sizes.iter().map(|s| s.bytes).max().unwrap_or(0).max(1) as f64;
    let slot = W / sizes.len().max(30) as f64;
    let mut body = String::new();
    for (i, s) in sizes.iter().enumerate() {
        let bar = (s.bytes as f64 / max * (h - 2.0)).max(1.0);
        let tip = format!("{}: {}", s.day, format_bytes(s.bytes));
        body.push_str(&rect(
            i as f64 * slot + slot * 0.1,
            h - bar,
            slot * 0.8,
            bar,
            "bar",
            &tip,
        ));
    }
    let (first, last) = (&sizes[0], &sizes[sizes.len() - 1]);
    let text = format!(
        "Repository size from {} to {}: {} to {}",
        first.day,
        last.day,
        format_bytes(first.bytes),
        format_bytes(last.bytes)
    );
    Some(Chart {
        svg: svg("size", h, &text, &body),
        text: format!("{text}."),
    })
}

/// How much the repository grew (or shrank, after a prune: drawn below the line) from each
/// measured day to the next; `None` before a second day.
fn growth(sizes: &[SizeSample]) -> Option<Chart> {
    if sizes.len() < 2 {
        return None;
    }
    let h = 40.0;
    let mid = h * 0.75;
    let deltas: Vec<(&str, i128)> = sizes
        .windows(2)
        .map(|w| {
            (
                w[1].day.as_str(),
                i128::from(w[1].bytes) - i128::from(w[0].bytes),
            )
        })
        .collect();
    let max = deltas
        .iter()
        .map(|(_, d)| d.unsigned_abs())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = W / deltas.len().max(30) as f64;
    let mut body = format!(r#"<rect x="0" y="{mid}" width="{W}" height="0.8" class="axis"/>"#);
    for (i, (day, d)) in deltas.iter().enumerate() {
        let amount = format_bytes(d.unsigned_abs() as u64);
        let (tip, class, y, len) = if *d >= 0 {
            let len = (*d as f64 / max * (mid - 1.0)).max(1.0);
            (format!("{day}: grew {amount}"), "bar", mid - len, len)
        } else {
            let len = (d.unsigned_abs() as f64 / max * (h - mid - 1.0)).max(1.0);
            (format!("{day}: shrank {amount}"), "bar shrank", mid, len)
        };
        body.push_str(&rect(
            i as f64 * slot + slot * 0.1,
            y,
            slot * 0.8,
            len,
            class,
            &tip,
        ));
    }
    let total: i128 = deltas.iter().map(|(_, d)| d).sum();
    let per_day = total / deltas.len() as i128;
    let text = format!(
        "Growth per day over {} day{}: {} on average{}",
        deltas.len(),
        if deltas.len() == 1 { "" } else { "s" },
        if per_day >= 0 {
            format!("+{}", format_bytes(per_day as u64))
        } else {
            format!("-{}", format_bytes(per_day.unsigned_abs() as u64))
        },
        match deltas.iter().filter(|(_, d)| *d < 0).count() {
            0 => String::new(),
            n => format!(", smaller after {n} prune{}", if n == 1 { "" } else { "s" }),
        }
    );
    Some(Chart {
        svg: svg("growth", h, &text, &body),
        text: format!("{text}."),
    })
}

/// One tile per repository holding (or meant to hold) the source: green when it holds the
/// newest snapshot, amber when behind, red when it cannot be read; offsite ones underlined.
fn copies(c: &backstop_app::copies::SourceCopies) -> Chart {
    let n = c.repositories.len().max(1) as f64;
    let slot = W / n;
    let mut body = String::new();
    let mut words = Vec::new();
    for (i, r) in c.repositories.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| r.location.clone());
        let (class, state) = if r.error.is_some() || r.copy_failing_since.is_some() {
            ("copy failing", "failing")
        } else if r.holds_newest {
            ("copy newest", "holds the newest snapshot")
        } else if r.newest.is_some() {
            ("copy behind", "behind")
        } else {
            ("copy empty", "holds no snapshot")
        };
        let place = format!("{}{}", r.storage, if r.offsite { ", offsite" } else { "" });
        let tip = format!("{name} ({place}): {state}");
        let x = i as f64 * slot;
        body.push_str(&rect(x + 4.0, 4.0, slot - 8.0, 24.0, class, &tip));
        if r.offsite {
            body.push_str(&rect(x + 4.0, 32.0, slot - 8.0, 4.0, "offsite", &tip));
        }
        words.push(format!("{name} ({place}) {state}"));
    }
    let text = format!(
        "Copies: {} of {} repositories hold the newest snapshot, on {} kind{} of storage, {}: {}",
        c.copies,
        c.repositories.len(),
        c.storage_kinds,
        if c.storage_kinds == 1 { "" } else { "s" },
        if c.offsite {
            "one offsite"
        } else {
            "none offsite"
        },
        words.join("; ")
    );
    Chart {
        svg: svg("copies", 40.0, &text, &body),
        text: format!("{text}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn point(s: i64, seconds: f64, ok: bool) -> JobPoint {
        JobPoint {
            started: at(s),
            seconds,
            ok,
            by: crate::overview::BY_DAEMON,
        }
    }

    #[test]
    fn durations_draw_a_bar_per_job_and_say_the_range() {
        let tz = TimeZone::UTC;
        assert!(durations(&[], "Backups", &tz).is_none());
        let c = durations(
            &[
                point(0, 2.0, true),
                point(60, 8.0, false),
                point(120, 4.0, true),
            ],
            "Backups",
            &tz,
        )
        .unwrap();
        assert_eq!(c.svg.matches("<rect").count(), 3);
        assert_eq!(c.svg.matches("class=\"bar failed\"").count(), 1);
        assert!(c.svg.contains("FAILED: 8.0 s"), "{}", c.svg);
        assert_eq!(
            c.text,
            "Backups: the last 3 took 2.0 s to 8.0 s (median 4.0 s); the newest took 4.0 s."
        );
        // The tallest bar is the longest job's.
        assert!(
            c.svg.contains("height=\"38.0\" class=\"bar failed\""),
            "{}",
            c.svg
        );
    }

    #[test]
    fn growth_shows_prunes_below_the_line_and_text_is_escaped() {
        let s = |day: &str, bytes: u64| SizeSample {
            day: day.into(),
            time: at(0),
            bytes,
        };
        assert!(growth(&[s("2027-01-01", 10)]).is_none());
        let c = growth(&[
            s("2027-01-01", 100 << 20),
            s("2027-01-02", 110 << 20),
            s("2027-01-03", 90 << 20),
        ])
        .unwrap();
        assert_eq!(c.svg.matches("class=\"bar shrank\"").count(), 1);
        assert!(c.text.contains("-5.0 MiB on average"), "{}", c.text);
        assert!(c.text.contains("smaller after 1 prune"), "{}", c.text);
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
