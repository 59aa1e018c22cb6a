//! Who may do what: tokens and roles on the API and the pages, login limits and sessions, and
//! admins managing users and tokens.

use super::*;

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
            &[("csrf", &csrf), ("name", "vera"), ("confirm", "yes")],
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
            &[("csrf", &csrf), ("name", "till"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        f.get("/api/v1/sources", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
}
