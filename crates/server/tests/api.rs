//! The HTTP API and the pages, in process: authentication, scopes and roles, backups,
//! restores, downloads, CSRF, login rate limiting, metrics.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backstop_server::state::{Role, Scope};
use common::*;
use serde_json::json;

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
async fn a_backup_token_backs_up_and_reads_but_cannot_restore_or_download() {
    let f = fixture();
    let t = f.token("till-app", Scope::Backup);
    let r = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "description": "before Confirm Made", "kind": "pre-change", "ticket": "PO-1042", "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let job = r.json();
    assert_eq!(job["state"], "ok");
    assert_eq!(job["trigger"], "token:till-app");
    let id = job["result"]["id"].as_str().unwrap().to_string();
    assert!(
        r.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/api/v1/jobs/")
    );

    // A time names the newest snapshot at or before it, in the configured zone.
    let now = backstop_format::Timestamp::now().to_string();
    let clock_admin = f.token("clock-admin", Scope::Admin);
    let at = f
        .get(
            &format!("/api/v1/snapshots/{}", urlencode(&format!("shop@{now}"))),
            &t,
        )
        .await;
    assert_eq!(at.status, StatusCode::OK, "{}", at.text());
    assert_eq!(at.json()["id"], id.as_str(), "{}", at.text());
    let r = f
        .post_json(
            "/api/v1/restores",
            &clock_admin,
            json!({"snapshot": format!("@{now}"), "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["snapshot"], id.as_str(), "{}", r.text());
    let r = f
        .post_json(
            "/api/v1/restores",
            &clock_admin,
            json!({"snapshot": "@2000-01-01 00:00", "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    let list = f.get("/api/v1/snapshots?source=shop", &t).await.json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["kind"], "pre-change");
    assert_eq!(rows[0]["ticket"], "PO-1042");
    assert_eq!(rows[0]["description"], "before Confirm Made");
    let none = f.get("/api/v1/snapshots?kind=manual", &t).await.json();
    assert_eq!(none.as_array().unwrap().len(), 0);

    let sources = f.get("/api/v1/sources", &t).await.json();
    let shop = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "shop")
        .unwrap();
    assert_eq!(shop["snapshots"], 1);
    assert_eq!(shop["database_health"], "ok");

    let r = f
        .post_json(
            "/api/v1/restores",
            &t,
            json!({"snapshot": id, "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = f.get(&format!("/api/v1/snapshots/{id}/download"), &t).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .post_json("/api/v1/verifications", &t, json!({"kind": "structure"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The denials are in the audit log, by name.
    let admin = f.token("ops", Scope::Admin);
    let log = f.get("/api/v1/audit", &admin).await.json();
    let denied: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "token:till-app" && e["outcome"] == "denied")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        denied.contains(&"restore") && denied.contains(&"download"),
        "{log:#}"
    );
    // The audit log itself is for admins only.
    assert_eq!(
        f.get("/api/v1/audit", &t).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_read_token_cannot_back_up_and_bad_requests_say_why() {
    let f = fixture();
    let read = f.token("dashboard", Scope::Read);
    let r = f
        .post_json("/api/v1/backups", &read, json!({"source": "shop"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("scope is read")
    );

    let t = f.token("app", Scope::Backup);
    let r = f
        .post_json("/api/v1/backups", &t, json!({"source": "warehouse"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["error"].as_str().unwrap().contains("shop"),
        "{}",
        r.text()
    );
    let r = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "kind": "pre-restore"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = f
        .post_json(
            "/api/v1/backups",
            &t,
            json!({"source": "shop", "kind": "weekly"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = f
        .post_json("/api/v1/backups", &t, json!({"sauce": "shop"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("sauce"), "{}", r.text());
}

#[tokio::test]
async fn an_admin_plans_restores_and_downloads_with_a_safety_snapshot_first() {
    let f = fixture();
    let admin = f.token("ops", Scope::Admin);
    let r = f
        .post_json(
            "/api/v1/backups",
            &admin,
            json!({"source": "shop", "description": "good state", "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let good = r.json()["result"]["id"].as_str().unwrap().to_string();
    // A bad import deletes customers.
    {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        c.execute("DELETE FROM orders WHERE id > 50", []).unwrap();
    }
    assert_eq!(count(&f.db, "orders"), 50);

    let plan = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": good, "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text());
    let plan = plan.json();
    assert_eq!(plan["schema_matches"], true);
    let orders = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(orders["rows_now"], 50);
    assert_eq!(orders["rows_snapshot"], 200);
    assert_eq!(count(&f.db, "orders"), 50, "a dry run changes nothing");

    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": good[..12], "source": "shop", "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let job = r.json();
    let safety = job["result"]["safety_snapshot"].as_str().unwrap();
    assert_eq!(count(&f.db, "orders"), 200);
    let pre = f
        .get("/api/v1/snapshots?kind=pre-restore", &admin)
        .await
        .json();
    assert_eq!(pre.as_array().unwrap().len(), 1);
    assert_eq!(pre[0]["id"], safety);

    // The safety snapshot holds the state before the restore: download it.
    let r = f
        .get(&format!("/api/v1/snapshots/{safety}/download"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/vnd.sqlite3");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("shop-")
    );
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let back = f.dir.path().join("downloaded.db");
    std::fs::write(&back, &r.body).unwrap();
    assert_eq!(count(&back, "orders"), 50);

    // A files snapshot downloads as a tar archive.
    let r = f
        .post_json(
            "/api/v1/backups",
            &admin,
            json!({"source": "docs", "wait": true}),
        )
        .await;
    let docs = r.json()["result"]["id"].as_str().unwrap().to_string();
    let r = f
        .get(&format!("/api/v1/snapshots/{docs}/download"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/x-tar");
    let tar = String::from_utf8_lossy(&r.body);
    assert!(tar.contains("price-list.txt") && tar.contains("apples 2.10"));

    // A files source is not restored in place.
    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": docs, "source": "docs"}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text());
    // Nor a snapshot of another source into this one.
    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": docs, "source": "shop", "dry_run": true}),
        )
        .await;
    assert!(r.status.is_client_error() || r.status.is_server_error());
    assert!(r.text().contains("belongs to source"), "{}", r.text());
}

#[tokio::test]
async fn a_schema_change_needs_explicit_consent() {
    let f = fixture();
    let admin = f.token("ops", Scope::Admin);
    let r = f
        .post_json(
            "/api/v1/backups",
            &admin,
            json!({"source": "shop", "wait": true}),
        )
        .await;
    let id = r.json()["result"]["id"].as_str().unwrap().to_string();
    {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        c.execute_batch("ALTER TABLE customers ADD COLUMN email TEXT; PRAGMA user_version = 2;")
            .unwrap();
    }
    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": id, "source": "shop"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("allow_schema_change"));
    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": id, "source": "shop", "allow_schema_change": true, "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn roles_are_enforced_on_pages_and_forms() {
    let f = fixture();
    let (viewer, viewer_csrf) = f.session("vera", Role::Viewer);
    let (operator, op_csrf) = f.session("olga", Role::Operator);
    let (admin, admin_csrf) = f.session("ada", Role::Admin);

    // Everyone sees the status page; only those allowed see the buttons.
    let page = f.page("/", &viewer).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("id=\"source-shop\""));
    assert!(!page.text().contains("Back up now"));
    let page = f.page("/", &operator).await.text();
    assert!(page.contains("Back up now") && !page.contains("Restore…"));

    // A viewer cannot back up, even with a valid form.
    let r = f
        .form(
            "/backup",
            &viewer,
            &[("csrf", &viewer_csrf), ("source", "shop")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A form without the session's CSRF token is refused.
    let r = f
        .form(
            "/backup",
            &operator,
            &[("csrf", "forged"), ("source", "shop")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The operator backs up with a description.
    let r = f
        .form(
            "/backup",
            &operator,
            &[
                ("csrf", &op_csrf),
                ("source", "shop"),
                ("description", "before stock count"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job_page = r.headers["location"].to_str().unwrap().to_string();
    let job_id = job_page.trim_start_matches("/jobs/").to_string();
    f.app.runner.job(&job_id).unwrap().finished().await;
    let page = f.page(&job_page, &operator).await.text();
    assert!(page.contains("data-state=\"ok\""), "{page}");

    // An operator is refused a restore: the page, the form and the API.
    let r = f.page("/restore?source=shop", &operator).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("may not restore"));
    // Error pages carry the same protections as the others.
    assert!(r.headers.contains_key("content-security-policy"));
    assert_eq!(r.headers["x-frame-options"], "DENY");
    let r = f
        .form(
            "/restore",
            &operator,
            &[
                ("csrf", &op_csrf),
                ("source", "shop"),
                ("snapshot", "latest"),
                ("confirm", "shop"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .send(
            Request::post("/api/v1/restores")
                .header("Cookie", &operator)
                .header("X-CSRF-Token", &op_csrf)
                .header("Content-Type", "application/json")
                .body(Body::from(r#"{"snapshot":"latest","source":"shop"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A session's API call without its CSRF header is refused, even for an admin.
    let r = f
        .send(
            Request::post("/api/v1/backups")
                .header("Cookie", &admin)
                .header("Content-Type", "application/json")
                .body(Body::from(r#"{"source":"shop"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The admin restores through the form; the confirmation must name the source.
    let r = f
        .form(
            "/restore",
            &admin,
            &[
                ("csrf", &admin_csrf),
                ("source", "shop"),
                ("snapshot", "latest"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let plan = f.page("/restore?source=shop&snapshot=latest", &admin).await;
    assert_eq!(plan.status, StatusCode::OK);
    assert!(plan.text().contains("id=\"plan\""), "{}", plan.text());
    let r = f
        .form(
            "/restore",
            &admin,
            &[
                ("csrf", &admin_csrf),
                ("source", "shop"),
                ("snapshot", "latest"),
                ("confirm", "shop"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job_id = r.headers["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/jobs/")
        .to_string();
    let done = f.app.runner.job(&job_id).unwrap().finished().await;
    assert_eq!(done.state, "ok", "{}", done.message);
    assert!(done.result.unwrap()["safety_snapshot"].is_string());

    // The activity page shows the jobs; the audit log only to the admin.
    let page = f.page("/activity", &admin).await.text();
    assert!(page.contains("id=\"audit\"") && page.contains("user:olga"));
    let page = f.page("/activity", &viewer).await.text();
    assert!(!page.contains("id=\"audit\""));
}

#[tokio::test]
async fn logins_are_rate_limited_and_sessions_end_at_logout() {
    let f = fixture();
    f.app
        .state
        .add_user("ada", Role::Admin, "correct horse battery")
        .unwrap();
    let login = |pw: &'static str| {
        Request::post("/login")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("username=ada&password={pw}")))
            .unwrap()
    };
    let ok = f.send(login("correct+horse+battery")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().unwrap().to_string();
    assert_eq!(f.page("/", &session).await.status, StatusCode::OK);

    for _ in 0..5 {
        assert_eq!(
            f.send(login("wrong")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth attempt is refused even with the right password.
    let r = f.send(login("correct+horse+battery")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("Too many failed attempts"));

    // Log out: the session is gone.
    let page = f.page("/", &session).await.text();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = f.form("/logout", &session, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(f.page("/", &session).await.status, StatusCode::SEE_OTHER);
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
async fn admins_manage_users_and_tokens_from_the_page() {
    let f = fixture();
    let (viewer, viewer_csrf) = f.session("vera", Role::Viewer);
    let (admin, csrf) = f.session("ada", Role::Admin);
    assert_eq!(
        f.page("/admin", &viewer).await.status,
        StatusCode::FORBIDDEN
    );
    let r = f
        .form(
            "/admin/users",
            &viewer,
            &[
                ("csrf", &viewer_csrf),
                ("name", "mallory"),
                ("role", "admin"),
                ("password", "12345678"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        f.app
            .state
            .check_password("mallory", "12345678")
            .unwrap()
            .is_none()
    );

    let r = f
        .form(
            "/admin/users",
            &admin,
            &[
                ("csrf", &csrf),
                ("name", "olga"),
                ("role", "operator"),
                ("password", "till-roll-42"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        f.app.state.check_password("olga", "till-roll-42").unwrap(),
        Some(Role::Operator)
    );
    let r = f
        .form(
            "/admin/users",
            &admin,
            &[
                ("csrf", &csrf),
                ("name", "olga"),
                ("role", "viewer"),
                ("password", "another-one"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("olga"));
    let r = f
        .form(
            "/admin/users/role",
            &admin,
            &[("csrf", &csrf), ("name", "vera"), ("role", "operator")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Vera's open session has the new role at once.
    let page = f.page("/", &viewer).await.text();
    assert!(page.contains("Back up now"));
    // An admin cannot demote or remove themselves.
    let r = f
        .form(
            "/admin/users/role",
            &admin,
            &[("csrf", &csrf), ("name", "ada"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = f
        .form(
            "/admin/users/remove",
            &admin,
            &[("csrf", &csrf), ("name", "ada")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = f
        .form(
            "/admin/users/remove",
            &admin,
            &[("csrf", &csrf), ("name", "vera")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(f.page("/", &viewer).await.status, StatusCode::SEE_OTHER);

    let r = f
        .form(
            "/admin/tokens",
            &admin,
            &[("csrf", &csrf), ("name", "till"), ("scope", "backup")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.text();
    let secret = page
        .split("bst_")
        .nth(1)
        .map(|s| format!("bst_{}", &s[..64]))
        .expect("the new token is shown once");
    assert_eq!(
        f.get("/api/v1/sources", &secret).await.status,
        StatusCode::OK
    );
    assert!(!f.page("/admin", &admin).await.text().contains(&secret));
    let r = f
        .form(
            "/admin/tokens/remove",
            &admin,
            &[("csrf", &csrf), ("name", "till")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        f.get("/api/v1/sources", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
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
    let api = restarted
        .get(&format!("/api/v1/jobs/{id}"), &t)
        .await
        .json();
    assert_eq!(api["outcome"], "ok");
    assert_eq!(
        restarted.page("/jobs/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A fixture whose times are read in Berlin, as `time_zone = "Europe/Berlin"` configures.
fn berlin_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    setup.time_zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let state = backstop_server::state::State::open(&dir.path().join("state.db")).unwrap();
    let app = backstop_server::AppState::new(backstop_server::App::new(
        std::sync::Arc::new(setup),
        std::sync::Arc::new(state),
        std::sync::Arc::new(backstop_server::notify::Notifier::new()),
    ));
    Fixture {
        db: dir.path().join("shop.db"),
        dir,
        app,
    }
}

#[tokio::test]
async fn a_time_names_a_snapshot_before_the_restore_and_errors_say_why_plainly() {
    let f = berlin_fixture();
    let admin = f.token("ops", Scope::Admin);
    let read = f.token("mon", Scope::Read);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = f
            .post_json(
                "/api/v1/backups",
                &admin,
                json!({"source": "shop", "wait": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let job = r.json();
        ids.push((
            job["result"]["id"].as_str().unwrap().to_string(),
            job["result"]["time"]
                .as_str()
                .unwrap()
                .parse::<backstop_format::Timestamp>()
                .unwrap(),
        ));
        std::thread::sleep(std::time::Duration::from_millis(1200));
    }
    let ((first, first_time), (second, _)) = (ids[0].clone(), ids[1].clone());
    // The whole second after the first snapshot, as a clock in Berlin shows it: before the
    // second snapshot (1.2 s later). Read as UTC, it would be an hour or two off.
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let mid = first_time
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Ceil),
        )
        .unwrap();
    let local = mid
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let resolve = |spec: &str| {
        format!(
            "/api/v1/snapshots/resolve?snapshot={}&source=shop",
            urlencode(spec)
        )
    };

    let r = f.get(&resolve(&format!("@{local}")), &read).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["snapshot"]["id"], first.as_str(), "{v:#}");
    assert_eq!(v["snapshot"]["source"], "shop", "{v:#}");
    assert_eq!(v["as_of"], mid.to_string().as_str(), "{v:#}");
    assert_eq!(v["time_zone"], "Europe/Berlin", "{v:#}");
    assert_eq!(v["spec"], format!("shop@{local}").as_str(), "{v:#}");
    let r = f.get(&resolve("latest"), &read).await.json();
    assert_eq!(r["snapshot"]["id"], second.as_str(), "{r:#}");
    assert!(r["as_of"].is_null(), "{r:#}");
    // The dry run and the restore name the same snapshot.
    let plan = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": format!("@{local}"), "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(plan.json()["snapshot"], first.as_str(), "{}", plan.text());

    // Before the first snapshot: not found, said in the configured zone, with the oldest.
    let r = f.get(&resolve("@2000-01-01 00:00"), &read).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let oldest = first_time
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert_eq!(
        r.json()["error"],
        format!(
            "no snapshot of shop was taken at or before 2000-01-01 00:00 (Europe/Berlin): the oldest is from {oldest}; pick a later time"
        )
        .as_str()
    );
    // A time in the future, a garbled one, none at all, another source's snapshot.
    let r = f.get(&resolve("@2099-01-01 00:00"), &read).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("is in the future")
    );
    let r = f.get(&resolve("@soon"), &read).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("yesterday 18:00")
    );
    let r = f.get("/api/v1/snapshots/resolve?source=shop", &read).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["code"], "bad-request");
    let docs = f
        .post_json(
            "/api/v1/backups",
            &admin,
            json!({"source": "docs", "wait": true}),
        )
        .await
        .json()["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = f.get(&resolve(&docs), &read).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("belongs to source"), "{}", r.text());
    assert_eq!(
        f.get(&resolve("latest"), "bst_wrong").await.status,
        StatusCode::UNAUTHORIZED
    );

    // The restore picker: a typed time (it wins over the picker) or a picked one shows which
    // snapshot it names, and the confirm form sends that snapshot's id.
    let (cookie, _) = f.session("anna", Role::Admin);
    let picked = mid
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    for query in [
        format!("at_text={}&at=2000-01-01T00%3A00", urlencode(&local)),
        format!("at={}", urlencode(&picked)),
    ] {
        let page = f
            .page(&format!("/restore?source=shop&{query}"), &cookie)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let html = page.text();
        assert!(html.contains("id=\"as-of\""), "{query}: {html}");
        assert!(html.contains(&first[..10]), "{query}: {html}");
        assert!(
            html.contains(&format!("name=\"snapshot\" value=\"{first}\"")),
            "{query}: {html}"
        );
        assert!(html.contains(&local[..16]), "{query}: {html}");
    }
    for (query, says) in [
        (
            "at_text=2000-01-01",
            "no snapshot of shop was taken at or before 2000-01-01 23:59:59 (Europe/Berlin)",
        ),
        ("at=2099-01-01T00%3A00", "is in the future"),
        ("at_text=shop%402026-12-01", "type only the time"),
    ] {
        let page = f
            .page(&format!("/restore?source=shop&{query}"), &cookie)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        // The page escapes `/` and quotes.
        let html = page.text().replace("&#x2f;", "/");
        assert!(html.contains("id=\"plan-error\""), "{query}: {html}");
        assert!(html.contains(says), "{query}: {html}");
        assert!(!html.contains("id=\"restore-form\""), "{query}: {html}");
    }
}
