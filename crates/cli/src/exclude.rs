//! Exclusion flags and config keys, resolved to the [`Excludes`] a files source applies and its
//! snapshot records. The rules of a configured source come first, then the flags', so a flag's
//! `!pattern` can re-include what the config leaves out; within each, the `exclude` patterns
//! come before those read from the exclude file.

use std::path::{Path, PathBuf};

use backstop_format::manifest::Excludes;
use backstop_sources::exclude::Exclusions;

use crate::output::UsageError;

/// `backup`'s exclusion flags.
#[derive(clap::Args, Debug, Default)]
pub struct ExcludeArgs {
    /// Leave out what matches this gitignore-style pattern (repeatable): `*.log` at any depth,
    /// `/tmp` or `a/b` from the top of each given path, `cache/` directories only, `!keep.log`
    /// to re-include
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Read exclude patterns from FILE, one a line (`#` comments and blank lines skipped)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Leave out directories that hold an entry named NAME, e.g. .nobackup (repeatable)
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub if_present: Vec<String>,
    /// Leave out cache directories: those holding a valid CACHEDIR.TAG
    #[arg(long = "exclude-caches")]
    pub caches: bool,
}

impl ExcludeArgs {
    /// Whether any exclusion flag was given.
    pub fn any(&self) -> bool {
        !self.patterns.is_empty()
            || !self.files.is_empty()
            || !self.if_present.is_empty()
            || self.caches
    }

    /// The rules the flags give (exclude files read now).
    pub fn rules(&self) -> anyhow::Result<Excludes> {
        let mut patterns = self.patterns.clone();
        for f in &self.files {
            patterns.extend(read_exclude_file(f)?);
        }
        Ok(Excludes {
            patterns,
            if_present: self.if_present.clone(),
            caches: self.caches,
        })
    }
}

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
