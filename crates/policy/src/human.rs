//! Human-readable sizes and ages, shared by the CLI and the daemon's pages.

use jiff::SignedDuration;

use crate::schedule::format_interval;

/// Bytes in binary units with one decimal: "52.3 MiB" ("512 B" below a KiB).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An age in words: "just now", "3h20m ago", "2d4h ago" (minutes dropped past a day).
pub fn format_age(secs: i64) -> String {
    if secs < 60 {
        return "just now".into();
    }
    let rounded = if secs >= 86_400 {
        secs / 3_600 * 3_600
    } else {
        secs / 60 * 60
    };
    format!(
        "{} ago",
        format_interval(SignedDuration::from_secs(rounded))
    )
}

/// A span of time in words, as [`format_age`] without "ago": "3h20m", "2d4h", "under a
/// minute".
pub fn format_span(secs: i64) -> String {
    format_age(secs)
        .strip_suffix(" ago")
        .map_or_else(|| "under a minute".to_string(), str::to_string)
}

/// A duration in seconds as people read it: "0.04 s", "0.4 s", "12 s", "3m20s".
pub fn format_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else {
        format_interval(SignedDuration::from_secs(s.round() as i64))
    }
}

/// A time to the minute in `tz`, as the page, its pictures and a restore plan's words show it:
/// "2026-11-22 14:05".
pub fn format_minute(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(52 * 1024 * 1024 + 300 * 1024), "52.3 MiB");
        assert_eq!(format_age(59), "just now");
        assert_eq!(format_age(3 * 3600 + 20 * 60 + 59), "3h20m ago");
        assert_eq!(format_age(2 * 86_400 + 4 * 3600 + 59 * 60), "2d4h ago");
        assert_eq!(format_span(59), "under a minute");
        assert_eq!(format_span(3 * 3600 + 20 * 60), "3h20m");
        assert_eq!(format_seconds(0.041), "0.04 s");
        assert_eq!(format_seconds(4.25), "4.2 s");
        assert_eq!(format_seconds(12.4), "12 s");
        assert_eq!(format_seconds(200.0), "3m20s");
    }
}
