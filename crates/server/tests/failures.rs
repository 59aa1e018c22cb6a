//! Failed backups of the daemon's jobs: recorded in the repository the way `backstop backup`
//! records its own, so that `backstop status` (the engine's status) and the daemon's page and API
//! say the same, and cleared by the next success.

mod common;

use axum::http::StatusCode;
use backstop_engine::status::{StatusOptions, StatusReport, status};
use backstop_format::Timestamp;
use backstop_server::state::{Role, Scope};
use common::*;
use serde_json::{Value, json};

/// What `backstop status` reports: the engine's status of the daemon's repository.
fn cli_status(f: &Fixture) -> StatusReport {
    let setup = &f.app.setup;
    status(
        &setup.repo,
        &StatusOptions {
            now: Timestamp::now(),
            time_zone: setup.time_zone.clone(),
            sources: setup.expectations(),
        },
    )
    .unwrap()
}

fn source<'v>(sources: &'v Value, name: &str) -> &'v Value {
    sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name}: {sources:#}"))
}

async fn back_up(f: &Fixture, token: &str, src: &str) -> (StatusCode, Value) {
    let r = f
        .post_json(
            "/api/v1/backups",
            token,
            json!({"source": src, "wait": true}),
        )
        .await;
    (r.status, r.json())
}

#[tokio::test]
async fn a_failed_daemon_backup_is_recorded_and_the_next_success_clears_it() {
    let f = fixture();
    let t = f.token("till", Scope::Backup);
    std::fs::remove_dir_all(f.dir.path().join("docs")).unwrap();

    let (status_code, job) = back_up(&f, &t, "docs").await;
    assert_eq!(status_code, StatusCode::INTERNAL_SERVER_ERROR, "{job:#}");
    assert_eq!(job["state"], "failed", "{job:#}");
    let message = job["message"].as_str().unwrap().to_string();
    assert!(message.contains("backing up docs"), "{message}");

    // The repository holds the failure, as after a failed `backstop backup`.
    let records = f.app.setup.repo.records().unwrap();
    let failures = backstop_engine::attempts::last_failures(&records);
    let rec = failures
        .get("docs")
        .expect("a backup-failed record for docs");
    assert_eq!(rec.note.as_deref(), Some(message.as_str()));
    assert_eq!(rec.host, "till-1");

    // `backstop status` and the API say the same.
    let cli = cli_status(&f);
    let docs = cli.sources.iter().find(|s| s.name == "docs").unwrap();
    assert_eq!(docs.state, "backup-failed", "{docs:#?}");
    assert_eq!(docs.last_failure.as_ref().unwrap().reason, message);
    let api = f.get("/api/v1/sources", &t).await.json();
    let d = source(&api, "docs");
    assert_eq!(d["state"], "backup-failed", "{d:#}");
    assert_eq!(d["last_failure"]["message"], message.as_str(), "{d:#}");
    let health = f.get("/api/v1/health", &t).await.json();
    assert_eq!(health["status"], "attention", "{health:#}");
    // The page says it once: the problem line, not a second paragraph.
    let (cookie, _) = f.session("vera", Role::Viewer);
    let page = f.page("/", &cookie).await.text();
    assert!(page.contains("backup failed"), "{page}");
    assert_eq!(page.matches("the last backup attempt failed").count(), 1);
    assert!(!page.contains("Last backup attempt failed"), "{page}");

    // Fixed, backed up: the failure is history everywhere.
    std::fs::create_dir(f.dir.path().join("docs")).unwrap();
    std::fs::write(f.dir.path().join("docs/notes.txt"), "open 9-17\n").unwrap();
    let (status_code, job) = back_up(&f, &t, "docs").await;
    assert_eq!(status_code, StatusCode::CREATED, "{job:#}");
    let records = f.app.setup.repo.records().unwrap();
    assert!(backstop_engine::attempts::last_failures(&records).is_empty());
    let cli = cli_status(&f);
    let docs = cli.sources.iter().find(|s| s.name == "docs").unwrap();
    assert_ne!(docs.state, "backup-failed", "{docs:#?}");
    assert!(docs.last_failure.is_none());
    let api = f.get("/api/v1/sources", &t).await.json();
    let d = source(&api, "docs");
    assert_ne!(d["state"], "backup-failed", "{d:#}");
    assert!(d["last_failure"].is_null(), "{d:#}");
}

#[tokio::test]
async fn a_record_that_cannot_be_written_does_not_hide_the_backups_own_error() {
    let f = fixture();
    let t = f.token("till", Scope::Backup);
    std::fs::remove_dir_all(f.dir.path().join("docs")).unwrap();
    let (_, first) = back_up(&f, &t, "docs").await;
    let expected = first["message"].as_str().unwrap().to_string();
    // No record can be written any more: a file where the records' folder was.
    let records = f.dir.path().join("repo/records");
    std::fs::remove_dir_all(&records).unwrap();
    std::fs::write(&records, "not a folder").unwrap();

    let (status_code, job) = back_up(&f, &t, "docs").await;
    assert_eq!(status_code, StatusCode::INTERNAL_SERVER_ERROR, "{job:#}");
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["message"], expected.as_str(), "{job:#}");
    let jobs = f.get("/api/v1/jobs", &t).await.json();
    assert_eq!(jobs[0]["message"], expected.as_str(), "{jobs:#}");
}

#[tokio::test]
async fn the_page_shows_a_failure_of_the_cli_and_forgets_a_job_failure_a_cli_backup_fixed() {
    let f = fixture();
    let t = f.token("till", Scope::Backup);
    let repo = &f.app.setup.repo;
    // `backstop backup` failed for shop (as commands/backup.rs records it).
    backstop_engine::attempts::record_backup_failure(
        repo,
        "shop",
        Timestamp::now(),
        "office-pc",
        "backing up shop: unable to open database file",
    )
    .unwrap();
    let api = f.get("/api/v1/sources", &t).await.json();
    let s = source(&api, "shop");
    assert_eq!(s["state"], "backup-failed", "{s:#}");
    assert_eq!(
        s["last_failure"]["message"], "backing up shop: unable to open database file",
        "{s:#}"
    );
    let metrics = f
        .send(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .text();
    assert!(
        metrics.contains("backstop_source_backup_failing{source=\"shop\"} 1"),
        "{metrics}"
    );

    // The daemon's docs job fails; then docs is fixed and backed up from the command line.
    std::fs::remove_dir_all(f.dir.path().join("docs")).unwrap();
    let (_, job) = back_up(&f, &t, "docs").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    std::fs::create_dir(f.dir.path().join("docs")).unwrap();
    std::fs::write(f.dir.path().join("docs/notes.txt"), "open 9-17\n").unwrap();
    let mut files = backstop_app::sources::files(vec![f.dir.path().join("docs")], vec![]).unwrap();
    let ix = backstop_engine::Indexed::load(repo).unwrap();
    backstop_engine::backup(
        &ix,
        files.as_source(),
        &backstop_engine::BackupOptions {
            source_name: "docs".into(),
            kind: backstop_format::manifest::BackupKind::Manual,
            description: None,
            tags: vec![],
            ticket: None,
            time: Timestamp::now(),
            host: "office-pc".into(),
            program: "backstop test".into(),
            force: false,
            skip_unchanged: false,
        },
        &backstop_engine::NoProgress,
    )
    .unwrap();
    let api = f.get("/api/v1/sources", &t).await.json();
    let d = source(&api, "docs");
    assert!(d["last_failure"].is_null(), "{d:#}");
    assert_ne!(d["state"], "backup-failed", "{d:#}");
}
