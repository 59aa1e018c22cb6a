//! What an install needs beside the binary: shell completion scripts (`backstop completions`),
//! the man pages (`backstop man`), and a daemon whose log file and redirected standard error
//! hold no terminal colour codes (a service manager sends standard error to the journal or to
//! a file).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `backstop ARGS` in a scratch directory, with no BACKSTOP_* variables.
fn backstop(args: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command_in(dir.path());
    c.args(args);
    run(c)
}

/// Whether `tool` can be started here (`tool ARG` exits 0).
fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const SHELLS: [&str; 4] = ["bash", "zsh", "fish", "powershell"];

#[test]
fn each_shell_gets_a_script_naming_the_real_commands_and_flags() {
    for shell in SHELLS {
        let out = backstop(&["completions", shell]).ok();
        assert!(out.stdout.len() > 1000, "{shell}: {out:#?}");
        for word in [
            "backup",
            "restore",
            "mark-verified",
            "password-file",
            "read-data",
        ] {
            assert!(
                out.stdout.contains(word),
                "{shell}: the script does not mention {word}"
            );
        }
        assert!(out.stderr.is_empty(), "{shell}: {}", out.stderr);
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_the_four() {
    let out = backstop(&["completions", "elvish"]).code(2);
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(
        out.stderr
            .contains("[possible values: bash, zsh, fish, powershell]"),
        "{out:#?}"
    );
    let out = backstop(&["completions"]).code(2);
    assert!(out.stderr.contains("<SHELL>"), "{out:#?}");
}

/// The words bash offers for the command line `line` (ending where the cursor is), from the
/// completion script `script`.
fn bash_completes(script: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source {script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT={point}\n\
         _backstop backstop '{current}' '{previous}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script = script.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
        point = line.len(),
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .stdin(Stdio::null())
        .output()
        .expect("running bash");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|w| w.trim().to_string())
        .collect()
}

#[test]
fn bash_accepts_the_script_and_completes_with_it() {
    if !have("bash", "--version") {
        eprintln!("bash is not installed here: its script is not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("backstop.bash");
    fs::write(&script, backstop(&["completions", "bash"]).ok().stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");

    assert_eq!(bash_completes(&script, "backstop res"), ["restore"]);
    let shells = bash_completes(&script, "backstop completions ");
    for shell in SHELLS {
        assert!(shells.iter().any(|s| s == shell), "{shell}: {shells:?}");
    }
    let flags = bash_completes(&script, "backstop verify --read");
    assert!(flags.iter().any(|f| f == "--read-data"), "{flags:?}");
}

#[test]
fn zsh_and_fish_accept_their_scripts_where_installed() {
    for (shell, check) in [("zsh", ["-n"].as_slice()), ("fish", &["--no-execute"])] {
        if !have(shell, "--version") {
            eprintln!("{shell} is not installed here: its script's syntax is not checked");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join(format!("backstop.{shell}"));
        fs::write(&script, backstop(&["completions", shell]).ok().stdout).unwrap();
        let out = Command::new(shell)
            .args(check)
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell} {check:?}: {out:?}");
    }
    if have("fish", "--version") {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("backstop.fish");
        fs::write(&script, backstop(&["completions", "fish"]).ok().stdout).unwrap();
        let out = Command::new("fish")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C 'backstop res'",
                script.display()
            ))
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&out.stdout);
        assert!(offered.starts_with("restore\t"), "{out:?}");
    }
}

/// `page` (roff) as `groff -man -Tutf8` renders it, failing on any groff warning; `None`
/// where groff is missing.
fn render(page: &Path) -> Option<String> {
    if !have("groff", "--version") {
        eprintln!("groff is not installed here: the page is checked as roff only");
        return None;
    }
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-rLL=100n"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "groff warns: {warnings}");
    // Bold and underlined letters are drawn with backspaces: keep the letters.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    Some(plain)
}

#[test]
fn backstop_man_prints_backstop_1() {
    let out = backstop(&["man"]).ok();
    let roff = &out.stdout;
    // The date is empty (""), so that the version stays in the source's place.
    assert!(
        roff.starts_with(".TH backstop 1 \"\" \"backstop "),
        "{roff}"
    );
    assert_eq!(roff.matches(".ds Aq").count(), 2, "{roff}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH ENVIRONMENT",
    ] {
        assert!(roff.contains(section), "no {section}: {roff}");
    }
    assert!(
        !roff.contains("backstop-help"),
        "help is no command of the page"
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("backstop.1");
    fs::write(&page, roff).unwrap();
    let Some(text) = render(&page) else { return };
    for words in [
        "NAME",
        "backstop - Consistent, deduplicated, verified backups",
        "SYNOPSIS",
        "GLOBAL OPTIONS",
        "backstop-restore(1)",
        "backstop-completions(1)",
        "BACKSTOP_PASSWORD_FILE",
        "never from the command line itself",
    ] {
        assert!(text.contains(words), "no {words:?} in:\n{text}");
    }
    assert!(!text.contains("EXTRA"), "{text}");
}

#[test]
fn backstop_man_to_writes_a_page_per_command_that_man_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share/man/man1");
    let mut c = command_in(tmp.path());
    c.args(["--json", "man", "--to"]).arg(&dir);
    let listed = run(c).ok().json();
    assert_eq!(listed["directory"], dir.to_str().unwrap());
    let pages = listed["pages"].as_array().unwrap();
    for name in [
        "backstop.1",
        "backstop-backup.1",
        "backstop-restore.1",
        "backstop-key-add.1",
        "backstop-man.1",
    ] {
        assert!(pages.iter().any(|p| p == name), "{name} not listed");
        let roff = fs::read_to_string(dir.join(name)).unwrap();
        let title = name.trim_end_matches(".1");
        assert!(roff.starts_with(&format!(".TH {title} 1 ")), "{name}");
        assert!(roff.contains(".SH SYNOPSIS"), "{name}");
    }
    assert_eq!(count_files(&dir), pages.len());
    assert!(!dir.join("backstop-help.1").exists());

    let backup = render(&dir.join("backstop-backup.1"));
    if let Some(text) = backup {
        assert!(text.contains("backstop backup"), "{text}");
        assert!(text.contains("--source"), "{text}");
        assert!(text.contains("SEE ALSO"), "{text}");
    }
    // What the README tells people to run: `man backstop` with that folder on the man path.
    if have("man", "--version") {
        for page in ["backstop", "backstop-key-add"] {
            let out = Command::new("man")
                .args(["-P", "cat", page])
                .env("MANPATH", tmp.path().join("share/man"))
                .env("MANWIDTH", "100")
                .output()
                .unwrap();
            assert!(out.status.success(), "man {page}: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("SYNOPSIS"), "man {page}: {text}");
        }
    } else {
        eprintln!("man is not installed here: the pages are not looked up with it");
    }
}

/// Waits until `path` holds `n` lines with `needle`; fails the test after 60 s.
fn wait_for_lines(path: &dyn Fn() -> Option<std::path::PathBuf>, needle: &str, n: usize) {
    let start = Instant::now();
    loop {
        let seen = path()
            .and_then(|p| fs::read_to_string(p).ok())
            .map_or(0, |t| t.matches(needle).count());
        if seen >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "fewer than {n} lines with {needle:?} after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the daemon with SIGTERM and waits for it.
#[cfg(unix)]
fn stop(mut daemon: Daemon) {
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config with a source that backs up and one that fails (its folder is missing), and no
/// other daemon task.
fn two_sources(sb: &Sandbox) -> String {
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/prices.txt"), "apples 2.10\n").unwrap();
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\ntime_zone = \"UTC\"\n\
         [sources.docs]\npath = \"docs\"\nevery = \"6h\"\n\
         [sources.gone]\npath = \"missing\"\nevery = \"6h\"\n\
         [daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\n",
    )
    .unwrap();
    cfg.to_str().unwrap().to_string()
}

/// The daemon's log file and its standard error redirected to a file, as a service manager
/// does (NSSM and WinSW write it to a file, systemd to the journal): after a backup that works
/// and one that fails, neither holds a colour code.
#[cfg(unix)]
#[test]
fn the_daemon_writes_no_colour_codes_to_its_log_or_a_redirected_stderr() {
    let sb = Sandbox::plain();
    let cfg = two_sources(&sb);
    let stderr_file = sb.p("serve.err");
    let mut cmd = sb.bare();
    cmd.args([
        "--config",
        &cfg,
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .env_remove("NO_COLOR")
    .stdout(Stdio::null())
    .stderr(fs::File::create(&stderr_file).unwrap());
    let daemon = Daemon(cmd.spawn().unwrap());
    let log = || {
        fs::read_dir(sb.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("backstop.log")
            })
    };
    wait_for_lines(&log, "job finished", 2);
    wait_for_lines(&|| Some(stderr_file.clone()), "job finished", 2);
    stop(daemon);

    let log = fs::read_to_string(log().unwrap()).unwrap();
    let stderr = fs::read_to_string(&stderr_file).unwrap();
    for (what, text) in [("log file", &log), ("redirected standard error", &stderr)] {
        assert!(
            !text.contains("\u{1b}["),
            "colour codes in the {what}: {text:?}"
        );
        assert!(
            text.contains("state=\"ok\"") && text.contains("state=\"failed\""),
            "{what}: {text}"
        );
        assert!(text.contains("No such file"), "{what}: {text}");
        assert!(text.contains("stopped"), "{what}: {text}");
    }
}

/// On a terminal, standard error keeps its colours, unless NO_COLOR is set. `script` runs the
/// daemon on a pseudo-terminal; the daemon warns that it has no users, then stops because its
/// port is taken.
#[cfg(unix)]
#[test]
fn standard_error_on_a_terminal_keeps_its_colours_unless_no_color() {
    if !have("script", "--version") {
        eprintln!("script (util-linux) is not installed here: the terminal case is not checked");
        return;
    }
    let sb = Sandbox::plain();
    let cfg = sb.p("backstop.toml");
    fs::write(&cfg, "repository = \"repo\"\n").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let serve = format!(
        "'{}' --config '{}' serve --no-startup-backup --log-file off --listen {}",
        bin().display(),
        cfg.display(),
        taken.local_addr().unwrap()
    );
    for no_color in [None, Some("1")] {
        let mut c = Command::new("script");
        c.args(["-qec", &serve, "/dev/null"])
            .current_dir(sb.path())
            .stdin(Stdio::null())
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = Out::from_output(c.output().unwrap());
        // The terminal's output: the warning, then the error about the port.
        assert!(out.stdout.contains("no users yet"), "{out:#?}");
        assert!(out.stdout.contains("cannot listen"), "{out:#?}");
        let coloured = out.stdout.contains("\u{1b}[33m WARN\u{1b}[0m");
        assert_eq!(
            coloured,
            no_color.is_none(),
            "NO_COLOR={no_color:?}: {out:#?}"
        );
    }
}
