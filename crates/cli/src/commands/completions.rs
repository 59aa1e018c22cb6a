//! `backstop completions SHELL`: a shell completion script on standard output, generated from
//! the same clap definition that parses the command line, so it never lists a flag that is gone.
//! README.md ("Install completions and the man page") says where each shell wants it.

use std::io::Write as _;

use anyhow::Context as _;

/// `backstop completions SHELL`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells a script can be written for (the names are the command line's).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    /// Source the script, or put it in bash-completion's completions folder
    Bash,
    /// Put the script as `_backstop` in a folder of `fpath`
    Zsh,
    /// Put the script as `backstop.fish` in ~/.config/fish/completions
    Fish,
    /// Dot-source the script from your profile
    Powershell,
}

impl From<Shell> for clap_complete::Shell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => Self::Bash,
            Shell::Zsh => Self::Zsh,
            Shell::Fish => Self::Fish,
            Shell::Powershell => Self::PowerShell,
        }
    }
}

/// Writes the script for `a.shell` of `cmd` (the whole `backstop` command line) to stdout.
pub fn run(a: Args, mut cmd: clap::Command) -> anyhow::Result<u8> {
    // The generators panic when their writer fails, so the script is made in memory first and a
    // closed stdout (`backstop completions bash | head`) stays an ordinary error.
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(a.shell),
        &mut cmd,
        "backstop",
        &mut script,
    );
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script to standard output")?;
    Ok(crate::exit::OK)
}
