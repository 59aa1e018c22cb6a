//! `backstop.toml`: repositories, named sources and defaults. Relative paths are relative to
//! the file's directory. Unknown keys are errors, so a typo is reported, not ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::output::UsageError;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repository path (later also URLs).
    pub repository: Option<String>,
    /// Passphrase file for the repository (the passphrase itself never goes in this file).
    pub password_file: Option<String>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Directory of the file, for relative paths.
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

/// One named source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A file or directory.
    pub path: Option<String>,
    /// Several files or directories.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A command whose standard output is backed up (argv form).
    #[serde(default)]
    pub command: Vec<String>,
    /// The item name for a command's output.
    pub filename: Option<String>,
    /// `files`, `command` or `sqlite`; inferred when absent.
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// Record no new snapshot when nothing changed since the last one.
    #[serde(default)]
    pub skip_unchanged: bool,
}

impl Config {
    /// Loads `explicit` (which must exist), or `backstop.toml` in the working directory if it
    /// exists, or an empty config.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("backstop.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading config file {}", path.display()));
            }
        };
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| UsageError(format!("invalid config file {}: {e}", path.display())))?;
        let abs = std::path::absolute(&path).unwrap_or(path);
        cfg.dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.file = abs;
        for (name, s) in &cfg.sources {
            let n = usize::from(s.path.is_some())
                + usize::from(!s.paths.is_empty())
                + usize::from(!s.command.is_empty());
            if n != 1 {
                return Err(UsageError(format!(
                    "invalid config file {}: source {name:?} needs exactly one of path, paths or command",
                    cfg.file.display()
                ))
                .into());
            }
            if let Some(k) = &s.kind
                && !matches!(k.as_str(), "files" | "command" | "sqlite")
            {
                return Err(UsageError(format!(
                    "invalid config file {}: source {name:?} has kind {k:?}; expected files, command or sqlite",
                    cfg.file.display()
                ))
                .into());
            }
        }
        Ok(cfg)
    }

    /// A path from the config, made absolute against the file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

impl SourceConfig {
    pub fn all_paths(&self) -> Vec<&str> {
        self.path
            .iter()
            .map(String::as_str)
            .chain(self.paths.iter().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("backstop.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p))
    }

    #[test]
    fn minimal_form() {
        let c = load("repository = \"backups/repo\"\n[sources.shop]\npath = \"data/shop.db\"\n")
            .unwrap();
        assert_eq!(c.repository.as_deref(), Some("backups/repo"));
        assert!(c.resolve("data/shop.db").ends_with("data/shop.db"));
        assert!(c.resolve("data/shop.db").is_absolute());
    }

    #[test]
    fn errors_name_the_line() {
        let e = load("repository = \"r\"\n[sources.shop]\npaht = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") || e.contains("3:"), "{e}");
        assert!(e.contains("paht"), "{e}");
    }

    #[test]
    fn source_needs_one_location() {
        assert!(load("[sources.a]\nkind = \"files\"\n").is_err());
        assert!(load("[sources.a]\npath = \"x\"\ncommand = [\"y\"]\n").is_err());
        assert!(load("[sources.a]\npath = \"x\"\nkind = \"oracle\"\n").is_err());
    }
}
