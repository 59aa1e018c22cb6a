//! Exclusion flags and config keys, resolved to the [`Excludes`] a files source applies and its
//! snapshot records. The rules of a configured source come first, then the flags', so a flag's
//! `!pattern` can re-include what the config leaves out; within each, the `exclude` patterns
//! come before those read from the exclude file.

use std::path::PathBuf;

use backstop_format::manifest::Excludes;

use backstop_app::exclude::read_exclude_file;

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
