//! `backstop serve`: the daemon (scheduler, HTTP API, web UI) for the sources in backstop.toml.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use backstop_server::ServeOptions;
use tracing::Subscriber;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{self, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::Config;
use crate::context::{Ctx, GlobalArgs, host};
use crate::output::UsageError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on [default: `listen` in [daemon], else 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// Do not back every source up when the daemon starts
    #[arg(long)]
    pub no_startup_backup: bool,
    /// The daemon's state file: users, tokens, sessions, activity [default: backstop-state.db beside the config]
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Log file, rotated daily, or "off" for standard error only [default: backstop.log beside the config]
    #[arg(long)]
    pub log_file: Option<String>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let config = ctx.config.clone();
    let listen = a
        .listen
        .clone()
        .or_else(|| config.daemon.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen.parse().map_err(|_| {
        UsageError(format!(
            "cannot listen on {listen:?}: give an address and port such as 127.0.0.1:8080 (or 0.0.0.0:8080 for every interface)"
        ))
    })?;
    // Settings are checked before anything is opened or created.
    let trusted_proxies = config.trusted_proxies()?;
    let audit_retention = config.audit_retention()?;
    let _log_guard = init_logging(&config, a.log_file.as_deref(), g.quiet)?;
    let repo = ctx.open()?;
    let repo_location = ctx.repo_location().expect("the repository was opened");
    let state_path = a.state.clone().unwrap_or_else(|| config.state_file());
    let state = backstop_server::state::State::open(&state_path)
        .with_context(|| format!("opening the daemon's state file {}", state_path.display()))?;
    if state.users()?.is_empty() {
        tracing::warn!(
            "no users yet: create one with `backstop user add NAME --role admin` to log in to the web page"
        );
    }
    let setup = backstop_app::daemon::setup_from_config(
        &config,
        repo,
        &repo_location,
        ctx.passphrase()?,
        a.no_startup_backup,
        host(),
        format!("backstop {}", env!("CARGO_PKG_VERSION")),
    )?;
    let mut opts = ServeOptions::new(listen);
    opts.secure_cookies = config.daemon.secure_cookies;
    opts.trusted_proxies = trusted_proxies;
    opts.audit_retention = audit_retention;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if !g.quiet && !g.json {
        eprintln!(
            "backstop serving {} source(s) on http://{listen} (state {}); stop with Ctrl-C or SIGTERM",
            setup.sources.len(),
            state_path.display()
        );
    }
    rt.block_on(backstop_server::serve(
        setup,
        state,
        opts,
        shutdown_signal(),
    ))?;
    Ok(crate::exit::OK)
}

/// Records a restore made with the CLI in the daemon's audit log, when the daemon's state file
/// exists (beside the config, or `state_file` in `[daemon]`): admins see every restore on the
/// activity page, not only the daemon's. The restore has happened either way, so a failure to
/// record it is only a warning.
pub fn record_cli_restore(config: &Config, target: &str, detail: &str) {
    let path = config.state_file();
    if !path.is_file() {
        return;
    }
    let entry = backstop_server::state::AuditEntry {
        time: backstop_format::Timestamp::now(),
        actor: "cli".into(),
        action: "restore".into(),
        target: target.into(),
        outcome: "ok".into(),
        detail: detail.into(),
    };
    let recorded = backstop_server::state::State::open(&path).and_then(|s| s.audit(&entry));
    if let Err(e) = recorded {
        eprintln!(
            "warning: the restore is done, but it could not be recorded in the daemon's audit log {}: {e}",
            path.display()
        );
    }
}

/// Logs to a daily rotated file (and standard error unless quiet).
///
/// Standard error is coloured only when it is a terminal ([`stderr_colours`]): under a service
/// manager it is the journal, or a file (NSSM, WinSW, `>> serve.out 2>&1`), where colour codes
/// are noise. The log file never is, and its layer formats fields with a type of its own
/// ([`FileFields`]), so it never prints fields the standard error layer coloured.
fn init_logging(
    config: &Config,
    flag: Option<&str>,
    quiet: bool,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::filter::LevelFilter::INFO;
    let stderr =
        (!quiet).then(|| stderr_layer(std::io::stderr, stderr_colours()).with_filter(filter));
    let (file, guard) = match log_file(config, flag)? {
        Some((writer, guard)) => (Some(file_layer(writer).with_filter(filter)), Some(guard)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .ok();
    Ok(guard)
}

/// The daily rotated log file's writer, from `--log-file` or `log_file` in `[daemon]`
/// (backstop.log beside the config by default); `None` for "off".
fn log_file(
    config: &Config,
    flag: Option<&str>,
) -> anyhow::Result<
    Option<(
        tracing_appender::non_blocking::NonBlocking,
        tracing_appender::non_blocking::WorkerGuard,
    )>,
> {
    let setting = flag
        .map(str::to_string)
        .or_else(|| config.daemon.log_file.clone());
    let path = match setting {
        Some(p) if p == "off" => return Ok(None),
        Some(p) if flag.is_some() => PathBuf::from(p),
        Some(p) => config.beside(Some(&p), "backstop.log"),
        None => config.beside(None, "backstop.log"),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let prefix = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backstop.log".into());
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(prefix)
        .max_log_files(config.daemon.log_keep.unwrap_or(14).max(1))
        .build(&dir)
        .with_context(|| format!("opening the log file in {}", dir.display()))?;
    Ok(Some(tracing_appender::non_blocking(appender)))
}

/// Whether standard error gets colours: only on a terminal, and never when `NO_COLOR` is set
/// to something (<https://no-color.org>).
fn stderr_colours() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The standard error layer: tracing-subscriber's format, coloured when `ansi`.
fn stderr_layer<S, W>(writer: W, ansi: bool) -> fmt::Layer<S, DefaultFields, Format, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
}

/// The log file's layer: the same format, never coloured.
fn file_layer<S, W>(writer: W) -> fmt::Layer<S, FileFields, Format, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .fmt_fields(FileFields::default())
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
}

/// The log file's field formatter: tracing-subscriber's default one, under a type of its own.
///
/// A span's fields are formatted once per `FormatFields` type, by the first layer that sees the
/// span, and kept in the span for every layer of that type: a file layer sharing the standard
/// error layer's type would print that layer's colour codes (tracing issue #1817). With a type
/// of its own, the file layer formats its own copy, without colours.
#[derive(Default)]
struct FileFields(DefaultFields);

impl<'w> FormatFields<'w> for FileFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::{file_layer, stderr_layer};

    /// A writer into memory, shared by its clones.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn the_log_file_has_no_colours_when_standard_error_has_them() {
        let (err, file) = (Buffer::default(), Buffer::default());
        let (to_err, to_file) = (err.clone(), file.clone());
        // Standard error first: it formats each span's fields before the file layer sees them.
        let subscriber = tracing_subscriber::registry()
            .with(stderr_layer(move || to_err.clone(), true))
            .with(file_layer(move || to_file.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let job = tracing::info_span!("job", source = "shop");
            let _in_job = job.enter();
            tracing::info!(kind = "backup", "job finished");
        });
        let (err, file) = (err.text(), file.text());
        assert!(
            err.contains("\x1b["),
            "standard error keeps its colours: {err:?}"
        );
        assert!(
            !file.contains('\x1b'),
            "colour codes in the log file: {file:?}"
        );
        assert!(
            file.contains("job{source=\"shop\"}: job finished kind=\"backup\""),
            "{file:?}"
        );
    }
}
