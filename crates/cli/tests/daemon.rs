//! `backstop user`, `backstop token` and `backstop serve` from the command line: the state
//! file beside the config, passwords from standard input, secrets shown once, a daemon that
//! backs up at start, answers its API and stops cleanly on SIGTERM, and whose failed backups
//! `backstop status` sees as it sees its own.

mod common;

use std::fs;
use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn config(sb: &Sandbox, body: &str) -> String {
    let p = sb.p("backstop.toml");
    fs::write(
        &p,
        format!("repository = \"repo\"\ntime_zone = \"UTC\"\n{body}"),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs with `input` on standard input.
fn with_stdin(sb: &Sandbox, args: &[&str], input: &str) -> Out {
    let mut c = sb.bare();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // A command refused before it reads (a usage error) closes its end: not the test's failure.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    Out::from_output(child.wait_with_output().unwrap())
}

#[test]
fn users_and_tokens_live_in_the_state_file_beside_the_config() {
    let sb = Sandbox::plain();
    let cfg = config(&sb, "");
    let c = cfg.as_str();
    with_stdin(
        &sb,
        &["--config", c, "user", "add", "anna", "--role", "admin"],
        "s3cret-pass\n",
    )
    .ok();
    assert!(sb.p("backstop-state.db").exists());
    // The same name again, a short password, an unknown role: refused with a reason.
    let dup = with_stdin(
        &sb,
        &["--config", c, "user", "add", "anna", "--role", "viewer"],
        "another-pass\n",
    );
    assert_ne!(dup.code, 0);
    assert!(dup.stderr.contains("anna"), "{dup:#?}");
    let short = with_stdin(
        &sb,
        &["--config", c, "user", "add", "bob", "--role", "viewer"],
        "short\n",
    );
    assert_ne!(short.code, 0);
    assert!(short.stderr.contains("8"), "{short:#?}");
    let role = with_stdin(
        &sb,
        &["--config", c, "user", "add", "bob", "--role", "root"],
        "long-enough\n",
    );
    assert_eq!(role.code, 2, "{role:#?}");
    assert!(role.stderr.contains("viewer"), "{role:#?}");

    let mut cmd = sb.bare();
    cmd.args(["--config", c, "--json", "user", "list"]);
    let users = run(cmd).ok().json();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["name"], "anna");
    assert_eq!(users[0]["role"], "admin");

    let mut cmd = sb.bare();
    cmd.args(["--config", c, "token", "add", "till", "--scope", "backup"]);
    let out = run(cmd).ok();
    let secret = out.stdout.trim().to_string();
    assert!(secret.starts_with("bst_") && secret.len() == 68, "{out:#?}");
    assert!(out.stderr.contains("not shown again"));
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "token", "list"]);
    let list = run(cmd).ok();
    assert!(list.stdout.contains("till") && list.stdout.contains("backup"));
    assert!(!list.stdout.contains(&secret));
    let db = fs::read(sb.p("backstop-state.db")).unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret itself is never stored"
    );
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "token", "remove", "till"]);
    run(cmd).ok();
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "token", "remove", "till"]);
    assert_ne!(run(cmd).code, 0);
}

#[test]
fn a_cli_restore_is_recorded_in_the_daemons_audit_log() {
    let sb = Sandbox::plain();
    let cfg = config(&sb, "");
    let c = cfg.as_str();
    fs::write(sb.p("prices.txt"), "apples 2.10\n").unwrap();
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "backup", "prices.txt"]);
    run(cmd).ok();
    // Without a daemon's state file, a restore creates none.
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "restore", "latest", "--to", "first"]);
    run(cmd).ok();
    assert!(!sb.p("backstop-state.db").exists());
    // With one, the restore is in its audit log beside the daemon's own entries.
    with_stdin(
        &sb,
        &["--config", c, "user", "add", "anna", "--role", "admin"],
        "s3cret-pass\n",
    )
    .ok();
    let mut cmd = sb.bare();
    cmd.args(["--config", c, "restore", "latest", "--to", "second"]);
    run(cmd).ok();
    let state = backstop_server::state::State::open(&sb.p("backstop-state.db")).unwrap();
    let log = state.audit_log(10).unwrap();
    let restore = log
        .iter()
        .find(|e| e.action == "restore")
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(
        (restore.actor.as_str(), restore.outcome.as_str()),
        ("cli", "ok")
    );
    assert!(restore.target.starts_with("prices.txt@"), "{restore:?}");
    assert!(restore.detail.contains("second"), "{restore:?}");
}

#[test]
fn daemon_settings_in_the_config_are_checked() {
    let sb = Sandbox::plain();
    for (body, says) in [
        (
            "[daemon]\ntrusted_proxies = [\"proxy.lan\"]\n",
            "trusted_proxies",
        ),
        (
            "[daemon]\naudit_retention = \"forever\"\n",
            "audit_retention",
        ),
    ] {
        let cfg = config(&sb, body);
        let mut cmd = sb.bare();
        cmd.args([
            "--config",
            &cfg,
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--log-file",
            "off",
        ]);
        let o = run(cmd).code(2);
        assert!(o.stderr.contains(says), "{o:#?}");
        assert!(
            !sb.p("backstop-state.db").exists(),
            "refused before starting"
        );
    }
}

#[cfg(unix)]
#[test]
fn serve_backs_up_at_start_answers_and_stops_on_sigterm() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/prices.txt"), "apples 2.10\n").unwrap();
    let cfg = config(
        &sb,
        "[sources.docs]\npath = \"docs\"\nevery = \"6h\"\n[daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\n",
    );
    let mut cmd = sb.bare();
    cmd.args(["--config", &cfg, "token", "add", "mon", "--scope", "read"]);
    let token = run(cmd).ok().stdout.trim().to_string();

    // A bad address is a usage error.
    let mut cmd = sb.bare();
    cmd.args(["--config", &cfg, "serve", "--listen", "localhost-ish"]);
    let bad = run(cmd);
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.stderr.contains("127.0.0.1:8080"));

    let port = free_port();
    let mut cmd = sb.bare();
    cmd.args([
        "--config",
        &cfg,
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut daemon = Daemon(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let snapshots = loop {
        if let Some((200, body)) = get(&format!("{base}/api/v1/snapshots?kind=startup"), &token) {
            let v: Value = serde_json::from_str(&body).unwrap();
            if !v.as_array().unwrap().is_empty() {
                break v;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no startup backup within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(snapshots[0]["source"], "docs");
    let (code, _) = get(&format!("{base}/healthz"), "").unwrap();
    assert_eq!(code, 200);
    let (code, metrics) = get(&format!("{base}/metrics"), "").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("backstop_source_snapshots{source=\"docs\"} 1"),
        "{metrics}"
    );
    let (code, _) = get(&format!("{base}/api/v1/sources"), "bst_wrong").unwrap();
    assert_eq!(code, 401);

    let pid = daemon.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The log file is beside the config, named by day.
    let logs: Vec<String> = fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("backstop.log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = fs::read_to_string(sb.p(&logs[0])).unwrap();
    assert!(
        log.contains("job finished") && log.contains("stopped"),
        "{log}"
    );
}

/// A request with a token: GET, or POST of `body`; the status and the body.
fn call(url: &str, token: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let mut r = match body {
        None => agent.get(url).header("Authorization", &auth).call(),
        Some(b) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
    }
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap())
}

/// `backstop status --json`'s view of a source, and the daemon's `GET /api/v1/sources` view.
fn both_views(sb: &Sandbox, cfg: &str, base: &str, token: &str, name: &str) -> (Value, Value) {
    let mut cmd = sb.bare();
    cmd.args(["--config", cfg, "--json", "status"]);
    let report = run(cmd).json();
    let cli = status_source(&report, name).clone();
    let (code, body) = call(&format!("{base}/api/v1/sources"), token, None);
    assert_eq!(code, 200, "{body}");
    let sources: Value = serde_json::from_str(&body).unwrap();
    let api = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {sources:#}"))
        .clone();
    (cli, api)
}

#[test]
fn a_failed_daemon_backup_shows_in_backstop_status_until_a_backup_succeeds() {
    let sb = Sandbox::plain();
    // `docs` does not exist yet: the daemon's startup backup of it fails.
    let cfg = config(
        &sb,
        "drill_max_age = \"off\"\n[sources.docs]\npath = \"docs\"\nevery = \"6h\"\n\
         [daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\nlog_file = \"off\"\n",
    );
    let mut cmd = sb.bare();
    cmd.args([
        "--config", &cfg, "token", "add", "till", "--scope", "backup",
    ]);
    let token = run(cmd).ok().stdout.trim().to_string();
    let port = free_port();
    let mut cmd = sb.bare();
    cmd.args([
        "--config",
        &cfg,
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _daemon = Daemon(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let failed = get(&format!("{base}/api/v1/jobs"), &token).is_some_and(|(code, body)| {
            code == 200
                && serde_json::from_str::<Value>(&body).is_ok_and(|jobs| {
                    jobs.as_array()
                        .unwrap()
                        .iter()
                        .any(|j| j["kind"] == "backup" && j["state"] == "failed")
                })
        });
        if failed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the startup backup did not fail within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (cli, api) = both_views(&sb, &cfg, &base, &token, "docs");
    assert_eq!(cli["state"], "backup-failed", "{cli:#}");
    assert_eq!(api["state"], "backup-failed", "{api:#}");
    let reason = cli["last_failure"]["reason"].as_str().unwrap();
    assert!(reason.contains("docs"), "{cli:#}");
    assert_eq!(api["last_failure"]["message"], reason, "{api:#}");

    fs::create_dir(sb.p("docs")).unwrap();
    fs::write(sb.p("docs/prices.txt"), "apples 2.10\n").unwrap();
    let (code, body) = call(
        &format!("{base}/api/v1/backups"),
        &token,
        Some(serde_json::json!({"source": "docs", "wait": true})),
    );
    assert_eq!(code, 201, "{body}");
    let (cli, api) = both_views(&sb, &cfg, &base, &token, "docs");
    assert_ne!(cli["state"], "backup-failed", "{cli:#}");
    assert!(cli["last_failure"].is_null(), "{cli:#}");
    assert_ne!(api["state"], "backup-failed", "{api:#}");
    assert!(api["last_failure"].is_null(), "{api:#}");
}
