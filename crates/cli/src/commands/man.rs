//! `backstop man`: the manual pages, generated from the same clap definition that parses the
//! command line. `backstop man` prints backstop(1); `backstop man --to DIR` writes it and one
//! page per command (backstop-backup.1, backstop-key-add.1, ...), the layout `man` looks for in
//! a `man1` folder, as `clap_mangen::generate_to` lays them out.
//!
//! The sections are clap_mangen's, except the end of each page: backstop(1) gets ENVIRONMENT
//! (the variables `backstop --help` lists) instead of clap_mangen's EXTRA, and each command's
//! page points back to it in SEE ALSO.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::context::GlobalArgs;
use crate::output::print_json;

/// `backstop man [--to DIR]`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write backstop.1 and one page per command into this directory (created if missing),
    /// e.g. ~/.local/share/man/man1, instead of printing backstop(1)
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// What `backstop man --to DIR --json` prints.
#[derive(serde::Serialize, Debug)]
struct Written<'a> {
    directory: &'a Path,
    pages: Vec<String>,
}

/// Prints backstop(1), or writes every page into `a.to`; `cmd` is the whole command line.
pub fn run(g: &GlobalArgs, a: Args, cmd: clap::Command) -> anyhow::Result<u8> {
    // `help` is a command of the parser, not one a page should list or describe.
    let mut root = cmd.disable_help_subcommand(true);
    root.build();
    let Some(dir) = a.to else {
        let page = page(&root, None).context("rendering the man page")?;
        let mut out = std::io::stdout().lock();
        out.write_all(&page)
            .and_then(|()| out.flush())
            .context("writing the man page to standard output")?;
        return Ok(crate::exit::OK);
    };
    let mut pages = Vec::new();
    collect(&root, None, &mut pages).context("rendering the man pages")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if g.json {
        print_json(&Written {
            directory: &dir,
            pages: pages.into_iter().map(|(name, _)| name).collect(),
        })?;
    } else if !g.quiet {
        outln!("{} man pages written to {}", pages.len(), dir.display())?;
    }
    Ok(crate::exit::OK)
}

/// The page of `cmd` and of each of its visible commands, depth first, as (file name, roff).
fn collect(
    cmd: &clap::Command,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let name = page_name(cmd);
    pages.push((format!("{name}.1"), page(cmd, parent)?));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, Some(&name), pages)?;
    }
    Ok(())
}

/// `backstop`, `backstop-backup`, `backstop-key-add`: the page's title and file name.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// What the `roff` crate writes before each rendering (it defines `\*(Aq`, the apostrophe);
/// once at the top of a page is enough.
const APOSTROPHES: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One page in roff; `parent` is the page of the command it belongs to (none for backstop(1)).
fn page(cmd: &clap::Command, parent: Option<&str>) -> std::io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    // clap_mangen's title leaves out an empty date instead of writing "", which moves the
    // source into the date's place: the title is written here.
    writeln!(
        out,
        ".TH {} 1 \"\" \"backstop {}\" \"backstop manual\"",
        page_name(cmd),
        env!("CARGO_PKG_VERSION")
    )?;
    section(&mut out, |w| man.render_name_section(w))?;
    section(&mut out, |w| man.render_synopsis_section(w))?;
    section(&mut out, |w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        section(&mut out, |w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&mut out, |w| man.render_subcommands_section(w))?;
    }
    let mut roff = Roff::new();
    match parent {
        None => environment(&mut roff),
        Some(parent) => see_also(&mut roff, parent),
    }
    section(&mut out, |w| roff.to_writer(w))?;
    if parent.is_none() {
        section(&mut out, |w| man.render_version_section(w))?;
    }
    Ok(out)
}

/// Appends what `render` writes to `out`, without a second [`APOSTROPHES`].
fn section(
    out: &mut Vec<u8>,
    render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut text = Vec::new();
    render(&mut text)?;
    let seen = out
        .windows(APOSTROPHES.len())
        .any(|w| w == APOSTROPHES.as_bytes());
    match text.strip_prefix(APOSTROPHES.as_bytes()) {
        Some(rest) if seen => out.extend_from_slice(rest),
        _ => out.extend_from_slice(&text),
    }
    Ok(())
}

/// ENVIRONMENT of backstop(1): the variables and the note of [`crate::ENVIRONMENT`].
fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    // Its first line is the heading `backstop --help` shows; a blank line ends the variables.
    let mut lines = crate::ENVIRONMENT.lines().skip(1);
    for line in lines.by_ref().take_while(|l| !l.trim().is_empty()) {
        let (names, meaning) = line.trim().split_once("  ").unwrap_or((line.trim(), ""));
        roff.control("TP", []);
        roff.text([bold(names)]);
        roff.text([roman(meaning.trim())]);
    }
    let note: Vec<&str> = lines.map(str::trim).collect();
    if !note.is_empty() {
        roff.control("PP", []);
        roff.text([roman(note.join(" "))]);
    }
}

/// SEE ALSO of a command's page: backstop(1), where the environment is, and the parent page.
fn see_also(roff: &mut Roff, parent: &str) {
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = vec![bold("backstop"), roman("(1)")];
    if parent != "backstop" {
        refs.extend([roman(", "), bold(parent), roman("(1)")]);
    }
    roff.text(refs);
    roff.control("PP", []);
    roff.text([roman(
        "The repository and its passphrase can also come from the environment: see ENVIRONMENT in backstop(1).",
    )]);
}
