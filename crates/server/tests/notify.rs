//! Notifications reach a real HTTP endpoint: Healthchecks-style pings around backups and the
//! webhook when a job fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop_format::manifest::BackupKind;
use backstop_server::jobs::{JobSpec, Runner};
use backstop_server::notify::Notifier;
use backstop_server::state::State;
use common::*;

/// Requests seen: (method, path, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A tiny HTTP server that records requests and answers 200.
fn receiver() -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.lock()
                .unwrap()
                .push((method, path, String::from_utf8_lossy(&body).into_owned()));
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (base, seen)
}

fn wait_for(
    seen: &Mutex<Vec<(String, String, String)>>,
    n: usize,
) -> Vec<(String, String, String)> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let v = seen.lock().unwrap().clone();
        if v.len() >= n {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("expected {n} requests, got {:?}", seen.lock().unwrap());
}

fn backup(source: &str) -> JobSpec {
    JobSpec::Backup {
        source: source.into(),
        kind: BackupKind::Manual,
        description: None,
        ticket: None,
        tags: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_webhook_reach_their_urls() {
    let (base, seen) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    setup.sources[0].ping_url = Some(format!("{base}/ping/shop-uuid"));
    setup.webhook = Some(format!("{base}/hook"));
    let db = setup.sources[0].live_path.clone().unwrap();
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup, state, Arc::new(Notifier::new())));

    let ok = runner
        .submit(backup("shop"), "test")
        .unwrap()
        .finished()
        .await;
    assert_eq!(ok.state, "ok", "{}", ok.message);
    let got = wait_for(&seen, 2);
    let paths: Vec<&str> = got.iter().map(|(_, p, _)| p.as_str()).collect();
    assert!(paths.contains(&"/ping/shop-uuid/start"), "{got:?}");
    assert!(paths.contains(&"/ping/shop-uuid"), "{got:?}");
    assert!(got.iter().all(|(m, _, _)| m == "POST"));

    // The database disappears: the backup fails, the fail ping and the webhook go out.
    std::fs::remove_file(&db).unwrap();
    let failed = runner
        .submit(backup("shop"), "test")
        .unwrap()
        .finished()
        .await;
    assert_eq!(failed.state, "failed");
    let got = wait_for(&seen, 5);
    assert!(
        got.iter().any(|(_, p, _)| p == "/ping/shop-uuid/fail"),
        "{got:?}"
    );
    let hook = got
        .iter()
        .find(|(_, p, _)| p == "/hook")
        .expect("webhook called");
    let e: serde_json::Value = serde_json::from_str(&hook.2).unwrap();
    assert_eq!(e["event"], "job-failed");
    assert_eq!(e["source"], "shop");
    assert_eq!(e["job"]["state"], "failed");
    assert!(
        e["message"].as_str().unwrap().contains("backup failed"),
        "{e}"
    );
}
