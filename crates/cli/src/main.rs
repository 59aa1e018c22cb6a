//! `backstop`: back up, verify and restore the data a small business runs on.

/// `println!` that returns an error instead of panicking when stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod commands;
use backstop_app::config;
mod context;
mod exclude;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::context::GlobalArgs;
pub use crate::output::exit;

/// The environment variables the CLI reads, listed once: at the end of `backstop --help`.
pub const ENVIRONMENT: &str = "\
Environment:
  BACKSTOP_REPO           Repository location (as --repo, which wins)
  BACKSTOP_PASSWORD       Repository passphrase
  BACKSTOP_PASSWORD_FILE  File holding the passphrase (as --password-file, which wins)
  BACKSTOP_CACHE_DIR      Where remote repositories' local caches go [default: ~/.cache/backstop]
  TZ                      Time zone for times shown and given, if backstop.toml sets no time_zone
  USER, USERNAME          Who marks a snapshot verified (mark-verified --by)

The passphrase comes from --password-file, BACKSTOP_PASSWORD_FILE, BACKSTOP_PASSWORD or
`password_file` in backstop.toml, the first one set; never from the command line itself.";

/// The end of each command's help: where the environment variables are.
const SEE_ENVIRONMENT: &str =
    "The repository and its passphrase can also come from the environment: see `backstop --help`.";

#[derive(Parser, Debug)]
#[command(
    name = "backstop",
    version,
    about = "Consistent, deduplicated, verified backups of databases and files",
    long_about = None,
    after_help = ENVIRONMENT
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(commands::init::Args),
    /// Back up files, directories, a command's output, or the sources in backstop.toml.
    Backup(commands::backup::Args),
    /// Copy snapshots to another repository (an offsite copy), sending only what it lacks.
    Copy(commands::copy::Args),
    /// List snapshots.
    Snapshots(commands::snapshots::Args),
    /// Show one snapshot: metadata and items.
    Show(commands::show::Args),
    /// Show the repository: format, encryption, sizes, counts.
    Info(commands::info::Args),
    /// Restore a snapshot into a directory.
    Restore(commands::restore::Args),
    /// Write tables of a snapshot's database as files: CSV, JSON, JSON lines, SQL or xlsx.
    Export(commands::export::Args),
    /// What changed in a database between two snapshots: tables, schema, rows by key.
    Diff(commands::diff::Args),
    /// Run a source's data validation rules on its live data (exit 4 when one fails).
    Validate(commands::validate::Args),
    /// Import a CSV file into a table of a source's database: every row checked, a pre-change snapshot, all rows or none.
    Import(commands::import::Args),
    /// Check the repository's integrity.
    Verify(commands::verify::Args),
    /// Apply retention: forget the snapshots the policy does not keep (see --dry-run).
    Forget(commands::forget::Args),
    /// Reclaim the space of forgotten snapshots.
    Prune(commands::prune::Args),
    /// Remove the locks of operations that died (show who holds the others and since when).
    Unlock(commands::unlock::Args),
    /// Get back what a damaged repository still holds (see `backstop verify`).
    Repair(commands::repair::Args),
    /// The passphrases (key files) of an encrypted repository: list, add a second, remove.
    Key(commands::key::Args),
    /// Object Lock (S3): lengthen the retention of every object, so that the packs today's
    /// snapshots use stay locked (`extend`).
    ObjectLock(commands::object_lock::Args),
    /// Pin a snapshot: forget never removes it.
    Pin(commands::pin::PinArgs),
    /// Unpin a snapshot.
    Unpin(commands::pin::PinArgs),
    /// Confirm that the change a pre-change snapshot guarded went well.
    MarkVerified(commands::pin::MarkArgs),
    /// Space used, per source, deduplication, growth and free space.
    Stats(commands::stats::Args),
    /// Is every source safe? Last backup, schedule, health, restore drills (exit 5 if not).
    Status(commands::status::Args),
    /// Run the daemon: schedules, HTTP API and web page for the sources in backstop.toml.
    Serve(commands::serve::Args),
    /// API tokens for apps that call the daemon.
    Token(commands::access::TokenArgs),
    /// Users of the web page and their roles.
    User(commands::access::UserArgs),
    /// Print a shell completion script (bash, zsh, fish or powershell) on standard output.
    Completions(commands::completions::Args),
    /// Print the man page backstop(1), or write it and one page per command into a directory.
    Man(commands::man::Args),
}

/// The command line as `backstop` parses it: each command's help ends with where the
/// environment variables are. Completion scripts and man pages are generated from it too.
fn cli_command() -> clap::Command {
    Cli::command().mut_subcommands(|c| c.after_help(SEE_ENVIRONMENT))
}

fn main() -> ExitCode {
    let cli = match cli_command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let json = cli.global.json;
    let result = match cli.command {
        Command::Init(a) => commands::init::run(&cli.global, a),
        Command::Backup(a) => commands::backup::run(&cli.global, a),
        Command::Copy(a) => commands::copy::run(&cli.global, a),
        Command::Snapshots(a) => commands::snapshots::run(&cli.global, a),
        Command::Show(a) => commands::show::run(&cli.global, a),
        Command::Info(a) => commands::info::run(&cli.global, a),
        Command::Restore(a) => commands::restore::run(&cli.global, a),
        Command::Export(a) => commands::export::run(&cli.global, a),
        Command::Diff(a) => commands::diff::run(&cli.global, a),
        Command::Validate(a) => commands::validate::run(&cli.global, a),
        Command::Import(a) => commands::import::run(&cli.global, a),
        Command::Verify(a) => commands::verify::run(&cli.global, a),
        Command::Forget(a) => commands::forget::run(&cli.global, a),
        Command::Prune(a) => commands::prune::run(&cli.global, a),
        Command::Unlock(a) => commands::unlock::run(&cli.global, a),
        Command::Repair(a) => commands::repair::run(&cli.global, a),
        Command::Key(a) => commands::key::run(&cli.global, a),
        Command::ObjectLock(a) => commands::object_lock::run(&cli.global, a),
        Command::Pin(a) => commands::pin::pin(&cli.global, a),
        Command::Unpin(a) => commands::pin::unpin(&cli.global, a),
        Command::MarkVerified(a) => commands::pin::mark_verified(&cli.global, a),
        Command::Stats(a) => commands::stats::run(&cli.global, a),
        Command::Status(a) => commands::status::run(&cli.global, a),
        Command::Serve(a) => commands::serve::run(&cli.global, a),
        Command::Token(a) => commands::access::token(&cli.global, a),
        Command::User(a) => commands::access::user(&cli.global, a),
        Command::Completions(a) => commands::completions::run(a, cli_command()),
        Command::Man(a) => commands::man::run(&cli.global, a, cli_command()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            let code = output::exit_code(&e);
            output::print_error(&e, json);
            ExitCode::from(code)
        }
    }
}
