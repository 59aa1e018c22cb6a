//! `backstop token` (API tokens for apps) and `backstop user` (web users), kept in the
//! daemon's state file.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context as _;
use backstop_format::Timestamp;
use backstop_server::state::{AuditEntry, Role, Scope, State};

use crate::context::{Ctx, GlobalArgs};
use crate::output::{UsageError, print_json, time};

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    /// The daemon's state file [default: backstop-state.db beside the config]
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed once, only its hash is kept.
    Add {
        name: String,
        /// read: status and snapshot lists; backup: also start backups; admin: everything
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
    },
    /// List tokens (names, scopes, last use; never the secrets).
    List,
    /// Revoke a token.
    Remove { name: String },
}

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// The daemon's state file [default: backstop-state.db beside the config]
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Add a web user; the password is asked for (or read from standard input).
    Add {
        name: String,
        /// viewer: status; operator: also back up and verify; admin: also restore and manage users
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// List users.
    List,
    /// Remove a user (and end their sessions).
    Remove { name: String },
    /// Set a new password (ends the user's sessions).
    Passwd { name: String },
    /// Change a user's role.
    SetRole {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
        .map_err(|e: backstop_server::state::ParseChoiceError| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: backstop_server::state::ParseChoiceError| e.to_string())
}

fn open_state(ctx: &Ctx<'_>, flag: Option<PathBuf>) -> anyhow::Result<State> {
    let path = flag.unwrap_or_else(|| ctx.config.state_file());
    State::open(&path)
        .with_context(|| format!("opening the daemon's state file {}", path.display()))
}

fn audit(state: &State, action: &str, target: &str, detail: &str) {
    let _ = state.audit(&AuditEntry {
        time: Timestamp::now(),
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        outcome: "ok".into(),
        detail: detail.into(),
    });
}

pub fn token(g: &GlobalArgs, a: TokenArgs) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let state = open_state(&ctx, a.state)?;
    match a.command {
        TokenCommand::Add { name, scope } => {
            let secret = state.add_token(&name, scope)?;
            audit(&state, "token-add", &name, scope.as_str());
            if g.json {
                print_json(&serde_json::json!({"name": name, "scope": scope, "token": secret}))?;
            } else {
                outln!("{secret}")?;
                if !g.quiet {
                    eprintln!(
                        "token {name:?} ({scope}) created: store it now, it is not shown again. Send it as `Authorization: Bearer TOKEN`."
                    );
                }
            }
        }
        TokenCommand::List => {
            let tokens = state.tokens()?;
            if g.json {
                print_json(&tokens)?;
            } else if tokens.is_empty() {
                outln!("no tokens: create one with `backstop token add NAME --scope backup`")?;
            } else {
                let tz = ctx.config.time_zone()?;
                outln!("{:<24} {:<8} {:<20} LAST USED", "NAME", "SCOPE", "CREATED")?;
                for t in tokens {
                    outln!(
                        "{:<24} {:<8} {:<20} {}",
                        t.name,
                        t.scope.as_str(),
                        time(t.created, &tz),
                        t.last_used
                            .map(|t| time(t, &tz))
                            .unwrap_or_else(|| "never".into())
                    )?;
                }
            }
        }
        TokenCommand::Remove { name } => {
            state.remove_token(&name)?;
            audit(&state, "token-remove", &name, "");
            if !g.quiet {
                outln!("token {name:?} revoked")?;
            }
        }
    }
    Ok(crate::exit::OK)
}

/// A password from the terminal (asked twice), or the first line of standard input.
fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("Password for {name}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        if p != again {
            return Err(UsageError("the passwords differ: nothing was changed".into()).into());
        }
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        return Err(UsageError(
            "no password: type it at the prompt, or pipe it on standard input".into(),
        )
        .into());
    }
    Ok(p)
}

pub fn user(g: &GlobalArgs, a: UserArgs) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let state = open_state(&ctx, a.state)?;
    match a.command {
        UserCommand::Add { name, role } => {
            let password = read_password(&name)?;
            state.add_user(&name, role, &password)?;
            audit(&state, "user-add", &name, role.as_str());
            if !g.quiet {
                outln!("user {name:?} added as {role}")?;
            }
        }
        UserCommand::List => {
            let users = state.users()?;
            if g.json {
                print_json(&users)?;
            } else if users.is_empty() {
                outln!("no users: add one with `backstop user add NAME --role admin`")?;
            } else {
                let tz = ctx.config.time_zone()?;
                outln!("{:<24} {:<9} CREATED", "NAME", "ROLE")?;
                for u in users {
                    outln!(
                        "{:<24} {:<9} {}",
                        u.name,
                        u.role.as_str(),
                        time(u.created, &tz)
                    )?;
                }
            }
        }
        UserCommand::Remove { name } => {
            state.remove_user(&name)?;
            audit(&state, "user-remove", &name, "");
            if !g.quiet {
                outln!("user {name:?} removed")?;
            }
        }
        UserCommand::Passwd { name } => {
            let password = read_password(&name)?;
            state.set_password(&name, &password)?;
            audit(&state, "user-passwd", &name, "");
            if !g.quiet {
                outln!("password of {name:?} changed; their sessions ended")?;
            }
        }
        UserCommand::SetRole { name, role } => {
            state.set_role(&name, role)?;
            audit(&state, "user-role", &name, role.as_str());
            if !g.quiet {
                outln!("{name:?} is now {role}")?;
            }
        }
    }
    Ok(crate::exit::OK)
}
