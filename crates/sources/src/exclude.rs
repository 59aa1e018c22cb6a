//! Exclusion rules of a files source, compiled for the walk.
//!
//! Patterns have gitignore semantics (the `ignore` crate's own implementation, not ours): a
//! pattern without a slash matches a name at any depth (`*.log`, `cache`); one with a slash is
//! anchored to the inside of each path given to the backup (`cache/tmp` matches
//! `<given>/cache/tmp`, not `<given>/x/cache/tmp`); a trailing `/` matches directories only;
//! `!pattern` re-includes what an earlier pattern excluded, and the last matching pattern wins.
//! A directory that is excluded is not descended into, so nothing below it can be re-included
//! (as in git). The paths given to the backup are never excluded themselves: what the user
//! names is backed up.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use backstop_format::manifest::Excludes;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::Error;

/// The name of the file that marks a cache directory (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// The bytes a valid `CACHEDIR.TAG` starts with.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// [`Excludes`] ready to match.
#[derive(Debug, Clone)]
pub struct Exclusions {
    rules: Excludes,
    globs: Gitignore,
}

impl Exclusions {
    /// Compiles `rules`; an invalid pattern is [`Error::Invalid`] naming it.
    pub fn new(rules: Excludes) -> Result<Self, Error> {
        // Matched against paths relative to a given path: nothing to strip.
        let mut b = GitignoreBuilder::new(".");
        // `a[` is a mistake to report, not a literal bracket to guess at.
        b.allow_unclosed_class(false);
        for p in &rules.patterns {
            b.add_line(None, p)
                .map_err(|e| Error::Invalid(format!("invalid exclude pattern {p:?}: {e}")))?;
        }
        for name in &rules.if_present {
            if name.is_empty() || name.contains(['/', '\\']) {
                return Err(Error::Invalid(format!(
                    "invalid exclude-if-present name {name:?}: give a file name, without a slash"
                )));
            }
        }
        let globs = b
            .build()
            .map_err(|e| Error::Invalid(format!("invalid exclude pattern: {e}")))?;
        Ok(Self { rules, globs })
    }

    /// The rules as given.
    pub fn rules(&self) -> &Excludes {
        &self.rules
    }

    /// Whether the entry at `path` on disk, at `relative` (its path below the given path, `/`
    /// separated, never empty) is excluded.
    pub fn excludes(&self, path: &Path, relative: &str, is_dir: bool) -> bool {
        if self.globs.matched(relative, is_dir).is_ignore() {
            return true;
        }
        is_dir
            && (self
                .rules
                .if_present
                .iter()
                .any(|name| path.join(name).symlink_metadata().is_ok())
                || (self.rules.caches && is_cache_dir(path)))
    }
}

/// Whether `dir` holds a `CACHEDIR.TAG` that starts with the signature (a file of that name
/// without it is not a tag: the specification asks for the signature so that a stray file of
/// that name does not hide a directory).
pub fn is_cache_dir(dir: &Path) -> bool {
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    File::open(dir.join(CACHEDIR_TAG))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(patterns: &[&str]) -> Exclusions {
        Exclusions::new(Excludes {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..Excludes::default()
        })
        .unwrap()
    }

    #[test]
    fn gitignore_semantics() {
        let r = rules(&["*.log", "cache", "/tmp", "build/out", "logs/", "!keep.log"]);
        let x = |rel: &str, dir: bool| r.excludes(Path::new("/nonexistent"), rel, dir);
        assert!(x("a.log", false));
        assert!(x("deep/er/a.log", false));
        assert!(!x("keep.log", false), "re-included");
        assert!(!x("deep/keep.log", false), "re-included at any depth");
        assert!(x("cache", true) && x("x/cache", true) && x("x/cache", false));
        assert!(x("tmp", true) && !x("x/tmp", true), "a leading / anchors");
        assert!(
            x("build/out", true) && !x("x/build/out", true),
            "a slash anchors"
        );
        assert!(
            x("logs", true) && !x("logs", false),
            "a trailing / is directories only"
        );
        assert!(!x("notes.txt", false));
    }

    #[test]
    fn invalid_pattern_is_named() {
        let err = Exclusions::new(Excludes {
            patterns: vec!["ok".into(), "a[".into()],
            ..Excludes::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"a[\""), "{err}");
    }

    #[test]
    fn if_present_and_cachedir_tag() {
        let d = tempfile::tempdir().unwrap();
        let r = Exclusions::new(Excludes {
            if_present: vec![".nobackup".into()],
            caches: true,
            ..Excludes::default()
        })
        .unwrap();
        for name in ["marked", "cache", "fake-cache", "plain"] {
            std::fs::create_dir(d.path().join(name)).unwrap();
        }
        std::fs::write(d.path().join("marked/.nobackup"), "").unwrap();
        std::fs::write(
            d.path().join("cache/CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
        )
        .unwrap();
        std::fs::write(d.path().join("fake-cache/CACHEDIR.TAG"), "Signature: no").unwrap();
        let x = |name: &str| r.excludes(&d.path().join(name), name, true);
        assert!(x("marked") && x("cache"));
        assert!(!x("fake-cache") && !x("plain"));
        // Only directories are skipped for what they hold.
        assert!(!r.excludes(
            &d.path().join("marked/.nobackup"),
            "marked/.nobackup",
            false
        ));
    }
}
