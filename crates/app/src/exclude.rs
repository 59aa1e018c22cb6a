//! Exclusion rules: exclude files, merging the rules of a configured source with a front
//! end's, and compiling them (an invalid pattern is a usage error).

use std::path::Path;

use backstop_format::manifest::Excludes;
use backstop_sources::exclude::Exclusions;

use crate::error::UsageError;

/// The patterns of an exclude file: one a line, `#` comments and blank lines skipped.
pub fn read_exclude_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError(format!(
            "cannot read exclude file {}: {e}; give a text file with one pattern a line",
            path.display()
        ))
    })?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `second` appended to `first`.
pub fn merge(mut first: Excludes, second: Excludes) -> Excludes {
    first.patterns.extend(second.patterns);
    for name in second.if_present {
        if !first.if_present.contains(&name) {
            first.if_present.push(name);
        }
    }
    first.caches |= second.caches;
    first
}

/// Compiles `rules`; an invalid pattern is a usage error naming it.
pub fn compile(rules: Excludes) -> anyhow::Result<Exclusions> {
    Exclusions::new(rules).map_err(|e| UsageError(e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_file_skips_comments_and_blank_lines() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("excludes");
        std::fs::write(&f, "# caches\n*.tmp\r\n\n   \nlogs/\n!keep.tmp\n").unwrap();
        assert_eq!(
            read_exclude_file(&f).unwrap(),
            ["*.tmp", "logs/", "!keep.tmp"]
        );
        let err = read_exclude_file(&d.path().join("missing")).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
    }
}
