//! The HTTP API and the pages, in process: authentication, scopes and roles, backups,
//! restores, downloads, CSRF, login rate limiting, metrics.

mod access;
#[path = "../common/mod.rs"]
mod common;
mod restores;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backstop_server::state::{Role, Scope};
use common::*;
use serde_json::json;

/// The source `name` in a status answer.
fn source_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name}: {status:#}"))
}

#[tokio::test]
async fn health_is_open_and_the_api_needs_credentials() {
    let f = fixture();
    let r = f
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = f
        .send(Request::get("/api/v1/sources").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key("www-authenticate"));
    assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    let r = f.get("/api/v1/sources", "bst_not-a-token").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Pages send the browser to the login page.
    let r = f.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/login");
}

#[tokio::test]
async fn metrics_and_status_describe_every_source() {
    let f = fixture();
    let t = f.token("app", Scope::Backup);
    f.post_json(
        "/api/v1/backups",
        &t,
        json!({"source": "shop", "wait": true}),
    )
    .await;
    let r = f
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    for line in [
        "backstop_source_snapshots{source=\"shop\"} 1",
        "backstop_source_snapshots{source=\"docs\"} 0",
        "# TYPE backstop_source_last_success_timestamp_seconds gauge",
        "backstop_job_last_duration_seconds{kind=\"backup\",source=\"shop\"}",
        "backstop_repository_size_bytes ",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let status = f.get("/api/v1/status", &t).await.json();
    assert!(status["repository"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["attention"], true, "docs was never backed up");
    let health = f.get("/api/v1/health", &t).await.json();
    assert_eq!(health["status"], "attention");
}

#[tokio::test]
async fn a_finished_job_is_shown_from_the_history_after_a_restart() {
    let f = fixture();
    let t = f.token("app", Scope::Backup);
    let r = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "description": "nightly", "wait": true}),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (cookie, _) = f.session("vera", Role::Viewer);
    // A new daemon on the same state file: the job is no longer in memory.
    let restarted = Fixture {
        app: backstop_server::AppState::new(backstop_server::App::new(
            f.app.setup.clone(),
            f.app.state.clone(),
            std::sync::Arc::new(backstop_server::notify::Notifier::new()),
        )),
        db: f.db.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    assert!(restarted.app.runner.job(&id).is_none());
    let page = restarted.page(&format!("/jobs/{id}"), &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("data-state=\"ok\""));
    assert!(page.text().contains("token:app"));
    // Its description and figures are kept with it.
    assert!(
        page.text().contains("id=\"job-description\""),
        "{}",
        page.text()
    );
    assert!(page.text().contains("nightly"), "{}", page.text());
    let api = restarted
        .get(&format!("/api/v1/jobs/{id}"), &t)
        .await
        .json();
    assert_eq!(api["outcome"], "ok");
    assert_eq!(api["description"], "nightly", "{api}");
    assert_eq!(api["phase"], "backup", "{api}");
    let size = std::fs::metadata(&f.db).unwrap().len();
    assert_eq!(api["bytes_done"].as_u64(), Some(size), "{api}");
    assert!(
        page.text()
            .contains(&format!("Backup: {}", backstop_policy::format_bytes(size))),
        "{}",
        page.text()
    );
    assert_eq!(
        restarted.page("/jobs/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A running backup shows how far it got against its total (the database's size, an estimate
/// until it is read), its rate and the time left, moving as it goes; a backup queued behind it
/// says what it waits for; the finished job keeps its figures and description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_backup_shows_moving_progress_and_a_queued_one_what_it_waits_for() {
    let f = fixture();
    // About 48 MiB of rows that do not compress: long enough to be seen running.
    {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        c.execute_batch(
            "CREATE TABLE photos(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1536)
             INSERT INTO photos(data) SELECT randomblob(32768) FROM n;",
        )
        .unwrap();
    }
    let size = {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (pages * page) as u64
    };
    let t = f.token("app", Scope::Backup);
    let first = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "description": "before the stock import"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_string();
    // Once it runs, a second backup of the same source waits for it.
    while f.get(&format!("/api/v1/jobs/{id}"), &t).await.json()["state"] == "queued" {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "description": "right after"}),
        )
        .await;
    let second_id = second.json()["id"].as_str().unwrap().to_string();
    let queued = f.get(&format!("/api/v1/jobs/{second_id}"), &t).await.json();
    assert_eq!(queued["state"], "queued", "{queued}");
    assert_eq!(
        queued["waiting_for"], "the backup of shop to finish",
        "{queued}"
    );
    assert_eq!(
        queued["progress"], "Waiting for the backup of shop to finish",
        "{queued}"
    );

    let (cookie, _) = f.session("vera", Role::Viewer);
    let mut seen = Vec::new();
    let mut page_seen = false;
    let finished = loop {
        let j = f.get(&format!("/api/v1/jobs/{id}"), &t).await.json();
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        if j["state"] == "running" && j["bytes_done"].as_u64().unwrap() > 0 {
            assert_eq!(j["bytes_total"].as_u64(), Some(size), "{j}");
            assert_eq!(j["estimated"], true, "{j}");
            assert_eq!(j["description"], "before the stock import", "{j}");
            let progress = j["progress"].as_str().unwrap();
            assert!(progress.starts_with("Backup: "), "{progress}");
            assert!(progress.contains(" of about "), "{progress}");
            assert!(progress.contains('%'), "{progress}");
            seen.push(j["bytes_done"].as_u64().unwrap());
            if !page_seen {
                let page = f.page(&format!("/jobs/{id}"), &cookie).await.text();
                assert!(page.contains("<progress id=\"job-bar\""), "{page}");
                assert!(page.contains(" of about "), "{page}");
                page_seen = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(finished["state"], "ok", "{finished}");
    seen.dedup();
    assert!(
        seen.iter().filter(|&&d| d < size).count() >= 2,
        "the progress did not move while the backup ran: {seen:?} of {size}"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(finished["bytes_done"].as_u64(), Some(size), "{finished}");
    assert_eq!(finished["seconds_left"], serde_json::Value::Null);
    assert!(
        finished["progress"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Backup: {}", backstop_policy::format_bytes(size))),
        "{finished}"
    );
    // The second backup has the first one's size as its estimate.
    let second = loop {
        let j = f.get(&format!("/api/v1/jobs/{second_id}"), &t).await.json();
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(second["state"], "ok", "{second}");
    assert_eq!(second["waiting_for"], serde_json::Value::Null);
    assert_eq!(second["description"], "right after");
}

/// The status page draws each source's last days (its backups, its drills, how far the newest
/// proven restore reaches), how long backups and drills took, and the repository's size, each
/// picture with the same in words; the status API has the figures behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_each_sources_history_with_words() {
    let f = fixture();
    let t = f.token("app", Scope::Admin);
    for _ in 0..2 {
        let r = f
            .post_json(
                "/api/v1/backups",
                &t,
                json!({"source": "shop", "wait": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let r = f
        .post_json(
            "/api/v1/verifications",
            &t,
            json!({"kind": "drill", "source": "shop", "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // A failed backup (the database is gone) is drawn in red.
    std::fs::rename(&f.db, f.dir.path().join("moved.db")).unwrap();
    f.post_json(
        "/api/v1/backups",
        &t,
        json!({"source": "shop", "wait": true}),
    )
    .await;
    std::fs::rename(f.dir.path().join("moved.db"), &f.db).unwrap();

    let status = f.get("/api/v1/status", &t).await.json();
    let shop = source_of(&status, "shop");
    let backups = shop["history"]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 3, "{shop}");
    assert_eq!(
        backups
            .iter()
            .map(|b| b["ok"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(shop["history"]["drills"].as_array().unwrap().len(), 1);
    assert!(shop["verified"]["snapshot_age_seconds"].as_i64().unwrap() >= 0);
    let sizes = status["repository"]["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 1, "one sample today: {sizes:?}");
    assert_eq!(sizes[0]["bytes"], status["repository"]["size_bytes"]);

    // A backup from the command line (here: the app's own call, outside any daemon job), as
    // cron or a systemd timer makes them: a tick of its own, without a duration.
    let setup = f.app.setup.clone();
    // (Apart in time from the daemon's last job, as it is outside the tests.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(move || {
        let mut reader = (setup.build_source)("shop").unwrap();
        let req = backstop_app::backup::BackupRequest {
            kind: backstop_format::manifest::BackupKind::Manual,
            description: None,
            tags: Vec::new(),
            ticket: None,
            time: None,
            force: false,
            skip_unchanged: backstop_app::backup::SkipUnchanged::AsConfigured,
        };
        let settings = backstop_app::backup::SourceSettings {
            tags: Vec::new(),
            description: None,
            skip_unchanged: false,
        };
        backstop_app::backup::backup(
            &setup.repo,
            &mut reader,
            "shop",
            &settings,
            &req,
            &setup.runtime(),
            &backstop_engine::SpillOptions::default(),
            &|_| {},
            &backstop_engine::NoProgress,
        )
        .unwrap();
    })
    .await
    .unwrap();
    let status = f.get("/api/v1/status", &t).await.json();
    let shop = source_of(&status, "shop");
    let by: Vec<&str> = shop["history"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["daemon", "daemon", "daemon", "command-line"], "{shop}");

    let (cookie, _) = f.session("vera", Role::Viewer);
    let page = f.page("/", &cookie).await.text();
    let timeline = page
        .split("id=\"timeline-shop\"")
        .nth(1)
        .expect("a timeline for shop")
        .split("</figure>")
        .next()
        .unwrap();
    assert!(
        timeline.contains("<svg class=\"chart timeline\" role=\"img\""),
        "{timeline}"
    );
    assert_eq!(timeline.matches("class=\"tick\"").count(), 3, "{timeline}");
    assert!(timeline.contains("(from the command line)"), "{timeline}");
    assert_eq!(
        timeline.matches("class=\"tick failed\"").count(),
        1,
        "{timeline}"
    );
    assert_eq!(timeline.matches("class=\"drill\"").count(), 1, "{timeline}");
    assert!(timeline.contains("class=\"proven\""), "{timeline}");
    assert!(
        timeline.contains(
            "Last 7 days: 4 backups, 3 by the daemon and 1 from the command line (1 failed). \
             Proven restorable up to the data of "
        ),
        "{timeline}"
    );
    assert!(page.contains("Backups: the last 3 took "), "{page}");
    assert!(
        page.contains("Restore drills: the only one took "),
        "{page}"
    );
    assert!(page.contains("passed on the data of"), "{page}");
    // One day measured: no size picture yet; docs has no history and nothing proven.
    assert!(!page.contains("id=\"repo-size-chart\""));
    let docs = page.split("id=\"timeline-docs\"").nth(1).unwrap();
    assert!(docs.contains("Last 7 days: 0 backups by the daemon. No restore drill has passed yet"));
    // A second day measured draws the size and its growth.
    f.app
        .state
        .record_size("2000-01-01", backstop_format::Timestamp::UNIX_EPOCH, 1)
        .unwrap();
    let page = f.page("/", &cookie).await.text();
    assert!(page.contains("id=\"repo-size-chart\""), "{page}");
    assert!(
        page.contains("Repository size from 2000-01-01 to "),
        "{page}"
    );
    assert!(page.contains("Growth per day over 1 day: +"), "{page}");
}

/// An operator sees the pre-change snapshots that wait for confirmation (counted on the status
/// page, marked in the snapshot list) and marks one verified from the list, which takes them
/// back to it; a viewer sees them without the button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_mark_pre_change_snapshots_verified_from_the_snapshot_list() {
    let f = fixture();
    let t = f.token("app", Scope::Backup);
    let mut ids = Vec::new();
    for d in ["before the import", "before the price change"] {
        let r = f
            .post_json(
                "/api/v1/backups",
                &t,
                json!({"source": "shop", "kind": "pre-change", "description": d, "wait": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        ids.push(r.json()["result"]["id"].as_str().unwrap().to_string());
    }
    let (op, csrf) = f.session("olga", Role::Operator);
    let (viewer, _) = f.session("vera", Role::Viewer);
    let status = f.page("/", &op).await.text();
    assert!(
        status.contains("2 pre-change snapshots waiting for confirmation"),
        "{status}"
    );
    let api = f.get("/api/v1/status", &t).await.json();
    assert_eq!(api["sources"][0]["waiting_for_confirmation"], 2, "{api}");
    let list = f.page("/snapshots?source=shop", &op).await.text();
    assert_eq!(
        list.matches("waiting for confirmation").count(),
        2,
        "{list}"
    );
    assert!(list.contains(&format!("/snapshots/{}/mark-verified", ids[0])));
    let seen = f.page("/snapshots?source=shop", &viewer).await.text();
    assert!(seen.contains("waiting for confirmation"));
    assert!(!seen.contains("mark-verified"), "a viewer gets no button");

    let r = f
        .form(
            &format!("/snapshots/{}/mark-verified", ids[0]),
            &op,
            &[("csrf", &csrf), ("back", "snapshots")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.headers["location"], "/snapshots?source=shop");
    let list = f.page("/snapshots?source=shop", &op).await.text();
    assert_eq!(
        list.matches("waiting for confirmation").count(),
        1,
        "{list}"
    );
    assert!(list.contains("verified by olga"), "{list}");
    let status = f.page("/", &op).await.text();
    assert!(
        status.contains("1 pre-change snapshot waiting for confirmation"),
        "{status}"
    );
}

/// 3-2-1 on the page and in the status: after a backup of a source with `copy_to`, its copies
/// are checked; a destination that cannot be written or read adds its reason to the source's
/// problems (the state is `copies` when nothing else is wrong: red on the page), and the copy
/// that worked is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copies_of_a_source_show_on_the_page_and_in_the_status() {
    let f = fixture_with(|dir, setup| {
        std::fs::write(dir.join("blocked"), "a file where a repository should go").unwrap();
        let dest = |name: &str| {
            let place = dir.join(name).display().to_string();
            backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap()
        };
        let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
        shop.copy_to = vec![dest("offsite"), dest("blocked")];
        shop.rules.copies = Some(2);
    });
    let t = f.token("app", Scope::Backup);
    f.post_json(
        "/api/v1/backups",
        &t,
        json!({"source": "shop", "wait": true}),
    )
    .await;
    // The copy jobs run after the backup; the check after each of them.
    let t0 = std::time::Instant::now();
    let shop = loop {
        let status = f.get("/api/v1/status", &t).await.json();
        let shop = source_status(&status, "shop");
        let checked = shop["copies"]["repositories"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r["holds_newest"] == true
                    && r["name"].is_null()
                    && r["location"].as_str().unwrap().ends_with("offsite")
            })
        });
        if checked {
            break shop;
        }
        assert!(t0.elapsed().as_secs() < 60, "no copies checked: {shop:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Never drilled, so `unverified` comes first; the copy's problem is among the others.
    assert_eq!(shop["state"], "unverified", "{shop:#}");
    assert_eq!(shop["copies"]["copies"], 2, "{shop:#}");
    let problems = shop["problems"].to_string();
    assert!(problems.contains("blocked failing"), "{shop:#}");
    let (cookie, _) = f.session("anna", Role::Viewer);
    let page = f.page("/", &cookie).await.text();
    assert!(
        page.contains("2 hold the newest snapshot, none offsite"),
        "{page}"
    );
    assert!(page.contains("cannot be read"), "{page}");
}

/// Validation rules at capture: the backup job stores their results with the snapshot; the
/// status (API and page) says "validation: 1 rule failing" and links the snapshot's page,
/// which lists each rule with its count and first rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rules_at_capture_show_on_the_page() {
    let f = fixture_with(|dir, setup| {
        let db = dir.join("shop.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT); INSERT INTO stock VALUES ('A-1', 3), ('B-2', -2);")
            .unwrap();
        use backstop_app::validate::Rule;
        let rules = vec![
            Rule {
                kind: Some("integrity".into()),
                ..Rule::default()
            },
            Rule {
                kind: Some("not_negative".into()),
                table: Some("stock".into()),
                column: Some("qty".into()),
                ..Rule::default()
            },
        ];
        setup.build_source = std::sync::Arc::new(move |_: &str| {
            Ok(backstop_app::sources::sqlite(db.clone(), "shop.db".into())?.with_rules(&rules))
        });
    });
    let t = f.token("app", Scope::Backup);
    f.post_json(
        "/api/v1/backups",
        &t,
        json!({"source": "shop", "wait": true}),
    )
    .await;
    let status = f.get("/api/v1/status", &t).await.json();
    let shop = source_status(&status, "shop");
    assert_eq!(shop["validation"]["rules"], 2, "{shop:#}");
    assert_eq!(
        shop["validation"]["failing"][0]["first"],
        json!(["sku='B-2'"]),
        "{shop:#}"
    );
    assert!(
        shop["problems"]
            .to_string()
            .contains("validation: 1 of 2 rules failing"),
        "{shop:#}"
    );
    let (cookie, _) = f.session("anna", Role::Viewer);
    let page = f.page("/", &cookie).await.text();
    let id = shop["last_snapshot"].as_str().unwrap();
    assert!(
        page.contains(&format!(
            "href=\"/snapshots/{id}#validation\">validation: 1 rule failing</a>"
        )),
        "{page}"
    );
    let snap = f.page(&format!("/snapshots/{id}"), &cookie).await.text();
    assert!(snap.contains("Validation rules at capture"), "{snap}");
    assert!(
        snap.contains("sku=&#x27;B-2&#x27;") || snap.contains("sku='B-2'"),
        "{snap}"
    );
    assert!(snap.contains("rows with a negative qty"), "{snap}");
}

/// A workbook backed up in a folder shows its sheets and Excel tables on the snapshot's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbooks_sheets_and_tables_show_on_the_snapshot_page() {
    let f = fixture_with(|dir, _| {
        let book = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/testdata/xlsx/calamine/table-multiple.xlsx");
        std::fs::copy(book, dir.join("docs/table-multiple.xlsx")).unwrap();
    });
    let t = f.token("app", Scope::Backup);
    f.post_json(
        "/api/v1/backups",
        &t,
        json!({"source": "docs", "wait": true}),
    )
    .await;
    let status = f.get("/api/v1/status", &t).await.json();
    let docs = source_status(&status, "docs");
    let id = docs["last_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("{docs:#}"))
        .to_owned();
    let (cookie, _) = f.session("anna", Role::Viewer);
    let page = f.page(&format!("/snapshots/{id}"), &cookie).await.text();
    assert!(
        page.contains("Workbook docs&#x2f;table-multiple.xlsx"),
        "{page}"
    );
    assert!(
        page.contains("table Sales_Bob <small>on Sheet3</small>"),
        "{page}"
    );
    assert!(page.contains("Quantity <small>(number)</small>"), "{page}");
}

/// One source's entry in `GET /api/v1/status`.
#[track_caller]
fn source_status(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no source {name} in {status:#}"))
}
