//! The daemon over real sockets on 127.0.0.1: login limits keyed by the client's address,
//! trusted proxies, cross-site logins, body and text limits, the audit log's retention and
//! collapsing, the job queue's bound, JSON 404s and internal errors that stay in the log.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use backstop_format::Timestamp;
use backstop_server::state::{AuditEntry, Role, Scope, State};
use common::net::{Daemon, Req, login_body};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn add_ada(state: &State, _: &std::path::Path) {
    state.add_user("ada", Role::Admin, PASSWORD).unwrap();
}

/// A login from the client behind `X-Forwarded-For` (or none).
fn login<'a>(user: &str, password: &str, forwarded: Option<&str>) -> Req<'a> {
    let r = Req::post("/login", login_body(user, password)).form();
    match forwarded {
        Some(ip) => r.header("X-Forwarded-For", ip),
        None => r,
    }
}

async fn audit(d: &Daemon) -> Vec<Value> {
    let admin = d
        .state
        .add_token("auditor", Scope::Admin)
        .unwrap_or_default();
    let token = if admin.is_empty() {
        panic!("call audit() once per daemon")
    } else {
        admin
    };
    let r = d
        .send(Req::get("/api/v1/audit?limit=1000").token(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn failed_logins_lock_out_one_client_address_not_everyone() {
    let d = Daemon::start(add_ada, |o| {
        o.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // Someone at 203.0.113.5 guesses a name that does not exist.
    for _ in 0..5 {
        let r = d.send(login("nobody", "guess", Some("203.0.113.5"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    let r = d.send(login("nobody", "guess", Some("203.0.113.5"))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Ada, at another address behind the same proxy, still gets in, and a wrong attempt
    // there is only wrong, not refused.
    let r = d.send(login("ada", PASSWORD, Some("198.51.100.7"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(r.headers.contains_key("set-cookie"));
    let r = d.send(login("nobody", "guess", Some("198.51.100.7"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The audit log names the addresses.
    let log = audit(&d).await;
    assert!(
        log.iter()
            .any(|e| e["outcome"] == "failed"
                && e["detail"].as_str().unwrap().contains("203.0.113.5")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|e| e["actor"] == "client:203.0.113.5" && e["detail"] == "rate limited")
    );
    d.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let d = Daemon::start(add_ada, |_| {}).await;
    for _ in 0..5 {
        d.send(login("nobody", "guess", Some("203.0.113.5"))).await;
    }
    // The header is the client's own claim: the client is still 127.0.0.1.
    let r = d.send(login("nobody", "guess", Some("198.51.100.7"))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    d.stop().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_peer_address_keys_the_limit() {
    // Linux routes all of 127.0.0.0/8 to the loopback interface: two clients, two addresses.
    let d = Daemon::start(add_ada, |_| {}).await;
    for _ in 0..5 {
        let r = d.send(login("ada", "wrong", None).from("127.0.0.2")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = d.send(login("ada", PASSWORD, None).from("127.0.0.2")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = d.send(login("ada", PASSWORD, None).from("127.0.0.3")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    d.stop().await;
}

#[tokio::test]
async fn a_successful_login_clears_its_own_counter() {
    let d = Daemon::start(add_ada, |_| {}).await;
    for round in 0..3 {
        for _ in 0..4 {
            let r = d.send(login("ada", "typo", None)).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "round {round}");
        }
        let r = d.send(login("ada", PASSWORD, None)).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "round {round}: {}",
            r.text()
        );
    }
    d.stop().await;
}

#[tokio::test]
async fn a_cross_site_login_is_refused_and_audited() {
    let d = Daemon::start(add_ada, |_| {}).await;
    let host = d.addr.to_string();
    // Another site's form posts the right password: refused, no session.
    let r = d
        .send(login("ada", PASSWORD, None).header("Origin", "https://evil.example"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!r.headers.contains_key("set-cookie"));
    assert!(r.text().contains("another web site"));
    let r = d
        .send(login("ada", PASSWORD, None).header("Sec-Fetch-Site", "cross-site"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The daemon's own page logs in.
    let r = d
        .send(
            login("ada", PASSWORD, None)
                .header("Origin", format!("http://{host}"))
                .header("Sec-Fetch-Site", "same-origin"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let log = audit(&d).await;
    let refused: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "login" && e["outcome"] == "denied")
        .collect();
    assert_eq!(refused.len(), 2, "{log:#?}");
    assert!(
        refused
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("evil.example"))
    );
    d.stop().await;

    // A flood of cross-site posts, each naming another user, ends in one collapsing row.
    let d = Daemon::start(add_ada, |_| {}).await;
    for i in 0..40 {
        let r = d
            .send(login(&format!("user{i}"), "x", None).header("Origin", "https://evil.example"))
            .await;
        assert!(matches!(r.status.as_u16(), 403 | 429), "{}", r.status);
    }
    let log = audit(&d).await;
    let rows = log.iter().filter(|e| e["action"] == "login").count();
    assert!(rows <= 21, "{rows} rows for 40 refused posts: {log:#?}");
    d.stop().await;
}

#[tokio::test]
async fn csrf_rejections_are_audited() {
    let d = Daemon::start(add_ada, |_| {}).await;
    let cookie = cookie(&d, "ada").await;
    let r = d
        .send(
            Req::post("/api/v1/backups", r#"{"source":"shop"}"#)
                .json()
                .header("Cookie", cookie.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d
        .send(
            Req::post("/backup", "csrf=forged&source=shop")
                .form()
                .header("Cookie", cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let log = audit(&d).await;
    assert!(
        log.iter().any(|e| e["actor"] == "user:ada"
            && e["action"] == "csrf"
            && e["target"] == "/api/v1/backups"
            && e["outcome"] == "denied"),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|e| e["actor"] == "user:ada"
            && e["action"] == "backup"
            && e["outcome"] == "denied"
            && e["detail"].as_str().unwrap().contains("CSRF")),
        "{log:#?}"
    );
    d.stop().await;
}

/// The session cookie of `user`, logged in.
async fn cookie(d: &Daemon, user: &str) -> String {
    let r = d.send(login(user, PASSWORD, None)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A logged-in browser session of `user`: its cookie and the CSRF token its pages carry.
async fn session(d: &Daemon, user: &str) -> (String, String) {
    let cookie = cookie(d, user).await;
    let page = d
        .send(Req::get("/").header("Cookie", cookie.clone()))
        .await
        .text();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF field on the status page")
        .to_string();
    (cookie, csrf)
}

#[tokio::test]
async fn removing_a_user_or_revoking_a_token_asks_first() {
    let d = Daemon::start(
        |state, dir| {
            add_ada(state, dir);
            state.add_user("vera", Role::Viewer, PASSWORD).unwrap();
        },
        |_| {},
    )
    .await;
    let secret = d.state.add_token("till-app", Scope::Read).unwrap();
    let (cookie, csrf) = session(&d, "ada").await;
    let (vera, _) = session(&d, "vera").await;
    let post = |path: &'static str, body: String| {
        Req::post(path, body)
            .form()
            .header("Cookie", cookie.clone())
    };
    let has_vera = || d.state.users().unwrap().iter().any(|u| u.name == "vera");

    // Not confirmed: a page naming the user, with a Confirm button and a way back; nothing
    // removed, and vera's session still open.
    let r = d
        .send(post(
            "/admin/users/remove",
            format!("csrf={csrf}&name=vera"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(page.contains("Remove user vera?"), "{page}");
    assert!(
        page.contains(r#"<input type="hidden" name="confirm" value="yes">"#)
            && page.contains(&format!(r#"name="csrf" value="{csrf}""#))
            && page.contains(r#"action="/admin/users/remove""#)
            && page.contains(r#"href="/admin" id="cancel""#),
        "{page}"
    );
    assert!(has_vera(), "vera removed without confirmation");
    let r = d.send(Req::get("/").header("Cookie", vera.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "vera's session ended unconfirmed");
    // Any other answer than "yes" is no confirmation either.
    let r = d
        .send(post(
            "/admin/users/remove",
            format!("csrf={csrf}&name=vera&confirm=no"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(has_vera());
    // The CSRF check stays, on the question and on the answer.
    for body in [
        "csrf=forged&name=vera".to_string(),
        "csrf=forged&name=vera&confirm=yes".to_string(),
    ] {
        let r = d.send(post("/admin/users/remove", body)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert!(has_vera());
    }
    // Confirmed: gone, and logged out.
    let r = d
        .send(post(
            "/admin/users/remove",
            format!("csrf={csrf}&name=vera&confirm=yes"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("User vera removed"), "{}", r.text());
    assert!(!has_vera());
    let r = d.send(Req::get("/").header("Cookie", vera)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // A user who is not there is not asked about.
    let r = d
        .send(post(
            "/admin/users/remove",
            format!("csrf={csrf}&name=vera"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text().contains("Remove user vera?"));

    // The same for a token: asked, still accepted, then revoked.
    let r = d
        .send(post(
            "/admin/tokens/remove",
            format!("csrf={csrf}&name=till-app"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.text();
    assert!(
        page.contains("Revoke token till-app?") && page.contains(r#"name="confirm" value="yes""#),
        "{page}"
    );
    let api = || Req::get("/api/v1/sources").token(&secret);
    assert_eq!(d.send(api()).await.status, StatusCode::OK);
    let r = d
        .send(post(
            "/admin/tokens/remove",
            format!("csrf={csrf}&name=till-app&confirm=yes"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Token till-app revoked"));
    assert_eq!(d.send(api()).await.status, StatusCode::UNAUTHORIZED);

    // Only the confirmed removals are in the audit log as done.
    let log = audit(&d).await;
    let done: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e["outcome"] == "ok" && e["action"].as_str().unwrap().ends_with("-remove"))
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        done,
        [("token-remove", "till-app"), ("user-remove", "vera")],
        "{log:#?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn error_pages_have_the_menu_when_logged_in() {
    let d = Daemon::start(add_ada, |_| {}).await;
    let (cookie, _) = session(&d, "ada").await;
    for path in [
        "/no-such-page",
        "/jobs/no-such-job",
        "/snapshots?kind=weekly",
    ] {
        let r = d
            .send(Req::get(path).header("Cookie", cookie.clone()))
            .await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        let page = r.text();
        assert!(
            page.contains(r#"id="message""#)
                && page.contains(r#"<a href="/snapshots""#)
                && page.contains(r#"id="whoami""#),
            "{path} has no menu: {page}"
        );
    }
    // A visitor who is not logged in gets the page without the menu.
    let r = d.send(Req::get("/no-such-page")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.text().contains("<nav") && r.text().contains("There is no such page"));
    let r = d.send(Req::get("/static/favicon.svg")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "image/svg+xml");
    assert!(r.text().starts_with("<svg"));
    d.stop().await;
}

#[tokio::test]
async fn revoked_and_unknown_tokens_are_audited() {
    let d = Daemon::start(|_, _| {}, |_| {}).await;
    let old = d.state.add_token("till-app", Scope::Backup).unwrap();
    assert_eq!(
        d.send(Req::get("/api/v1/sources").token(&old)).await.status,
        StatusCode::OK
    );
    d.state.remove_token("till-app").unwrap();
    for _ in 0..3 {
        let r = d.send(Req::get("/api/v1/sources").token(&old)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = d.send(Req::get("/api/v1/jobs").token("bst_made-up")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Made-up ids in the path do not make rows of their own.
    for i in 0..3 {
        let path = format!("/api/v1/jobs/made-up-{i}");
        let r = d.send(Req::get(&path).token("bst_made-up")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let log = audit(&d).await;
    let revoked: Vec<&Value> = log
        .iter()
        .filter(|e| e["actor"] == "token:till-app" && e["detail"] == "revoked token")
        .collect();
    assert_eq!(revoked.len(), 1, "three uses, one row: {log:#?}");
    assert_eq!(revoked[0]["count"], 3);
    assert_eq!(revoked[0]["target"], "/api/v1/sources");
    assert!(log.iter().any(|e| e["actor"] == "token:?"
        && e["detail"] == "unknown token"
        && e["target"] == "/api/v1/jobs"));
    let by_id: Vec<&Value> = log
        .iter()
        .filter(|e| e["target"] == "/api/v1/jobs/{id}")
        .collect();
    assert_eq!(by_id.len(), 1, "{log:#?}");
    assert_eq!(by_id[0]["count"], 3);
    d.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413_in_json_and_long_texts_are_refused() {
    let d = Daemon::start(|_, _| {}, |_| {}).await;
    let t = d.state.add_token("till-app", Scope::Backup).unwrap();
    let huge = json!({"source": "shop", "description": "x".repeat(1_500_000), "wait": true});
    let r = d
        .send(
            Req::post("/api/v1/backups", huge.to_string())
                .json()
                .token(&t),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["code"], "too-large");
    // Under the body limit but over a text's limit: refused, and says which.
    for (body, what) in [
        (
            json!({"source": "shop", "description": "x".repeat(5000)}),
            "description is 5000 bytes",
        ),
        (
            json!({"source": "shop", "ticket": "t".repeat(300)}),
            "ticket is 300 bytes",
        ),
        (json!({"source": "shop", "tags": vec!["a"; 40]}), "40 tags"),
        (json!({"source": "s".repeat(1000)}), "source is 1000 bytes"),
    ] {
        let r = d
            .send(
                Req::post("/api/v1/backups", body.to_string())
                    .json()
                    .token(&t),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains(what),
            "{}",
            r.text()
        );
    }
    // A login form of 100 KiB is refused before it is read.
    let r = d
        .send(Req::post("/login", login_body(&"n".repeat(100_000), "pw")).form())
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was stored.
    let rows = d.send(Req::get("/api/v1/snapshots").token(&t)).await.json();
    assert_eq!(rows.as_array().unwrap().len(), 0);
    d.stop().await;
}

#[tokio::test]
async fn repeated_failures_collapse_and_long_names_stay_short() {
    let d = Daemon::start(add_ada, |_| {}).await;
    let long_name = "m".repeat(60_000);
    for _ in 0..10 {
        d.send(login(&long_name, "guess", None)).await;
    }
    let log = audit(&d).await;
    let logins: Vec<&Value> = log.iter().filter(|e| e["action"] == "login").collect();
    // Five failures, then five refusals: one row each, counted.
    assert_eq!(logins.len(), 2, "{logins:#?}");
    let failed = logins.iter().find(|e| e["outcome"] == "failed").unwrap();
    assert_eq!(failed["count"], 5);
    let limited = logins.iter().find(|e| e["outcome"] == "denied").unwrap();
    assert_eq!(limited["count"], 5);
    let bytes: usize = log.iter().map(|e| e.to_string().len()).sum();
    assert!(
        bytes < 4096,
        "the audit log holds {bytes} bytes for 10 logins"
    );
    d.stop().await;
}

#[tokio::test]
async fn audit_entries_older_than_the_retention_are_pruned() {
    let entry = |days: i64, action: &str| AuditEntry {
        time: Timestamp::now() - jiff::SignedDuration::from_hours(24 * days),
        actor: "user:ada".into(),
        action: action.into(),
        target: String::new(),
        outcome: "ok".into(),
        detail: String::new(),
    };
    let d = Daemon::start(
        |state, _| {
            state.audit(&entry(400, "ancient")).unwrap();
            state.audit(&entry(40, "last-month")).unwrap();
            state.audit(&entry(10, "recent")).unwrap();
        },
        |o| o.audit_retention = jiff::SignedDuration::from_hours(24 * 30),
    )
    .await;
    // Pruned when the daemon starts; its first answer comes after.
    let log = audit(&d).await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"recent"), "{actions:?}");
    assert!(
        !actions.contains(&"last-month") && !actions.contains(&"ancient"),
        "{actions:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_paged() {
    let d = Daemon::start(
        |state, dir| {
            add_ada(state, dir);
            let day_ago = Timestamp::now() - jiff::SignedDuration::from_hours(24);
            for i in 0..250 {
                state
                    .audit(&AuditEntry {
                        time: day_ago + jiff::SignedDuration::from_secs(i),
                        actor: "cli".into(),
                        action: format!("a{i}"),
                        target: String::new(),
                        outcome: "ok".into(),
                        detail: String::new(),
                    })
                    .unwrap();
            }
        },
        |_| {},
    )
    .await;
    let t = d.state.add_token("ops", Scope::Admin).unwrap();
    let page = d
        .send(Req::get("/api/v1/audit?limit=10&offset=10").token(&t))
        .await
        .json();
    let actions: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"a239"));
    assert_eq!(actions.last(), Some(&"a230"));
    let r = d.send(Req::get("/api/v1/audit?offset=ten").token(&t)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The page shows 100 rows at a time, newest first, with links between the pages.
    let cookie = cookie(&d, "ada").await;
    let first = d
        .send(Req::get("/activity").header("Cookie", cookie.clone()))
        .await
        .text();
    assert!(
        first.contains("Page 1 of 3") && first.contains(r#"<td data-label="Action">a200</td>"#),
        "{first}"
    );
    assert!(first.contains("?page=2\">Older") && !first.contains("Newer"));
    let last = d
        .send(Req::get("/activity?page=3").header("Cookie", cookie))
        .await
        .text();
    assert!(
        last.contains(r#"<td data-label="Action">a0</td>"#)
            && !last.contains(r#"<td data-label="Action">a200</td>"#)
    );
    assert!(last.contains("?page=2\">Newer") && !last.contains("Older"));
    d.stop().await;
}

#[tokio::test]
async fn twenty_backup_requests_for_one_source_give_one_pending_job() {
    let d = Daemon::start(|_, _| {}, |_| {}).await;
    let t = d.state.add_token("till-app", Scope::Backup).unwrap();
    let request = |description: &str| {
        Req::post(
            "/api/v1/backups",
            json!({"source": "shop", "description": description}).to_string(),
        )
        .json()
        .token(&t)
    };
    // The first backup runs and is held; what follows must wait.
    std::fs::write(d.path("hold"), "").unwrap();
    let first = d.send(request("first")).await.json();
    let first_id = first["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/jobs/{first_id}");
    let started = std::time::Instant::now();
    while d.send(Req::get(&path).token(&t)).await.json()["state"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = d.send(request("till closed")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        ids.insert(r.json()["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(!ids.contains(&first_id));
    // Different backups queue, up to a bound.
    let mut refused = None;
    for i in 0..12 {
        let r = d.send(request(&format!("note {i}"))).await;
        if r.status != StatusCode::ACCEPTED {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the queue is bounded");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["code"], "queue-full");
    let jobs = d.send(Req::get("/api/v1/jobs").token(&t)).await.json();
    let queued = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "queued" && j["source"] == "shop")
        .count();
    assert_eq!(queued, 10);
    std::fs::remove_file(d.path("hold")).unwrap();
    d.stop().await;
}

#[tokio::test]
async fn unknown_api_paths_answer_404_in_json() {
    let d = Daemon::start(|_, _| {}, |_| {}).await;
    let t = d.state.add_token("app", Scope::Read).unwrap();
    for r in [
        d.send(Req::get("/api/v1/nothing-here").token(&t)).await,
        d.send(Req::get("/api/v2/sources")).await,
        d.send(Req::post("/api/v1/backups/extra", "{}").json().token(&t))
            .await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.json()["code"], "not-found");
    }
    // Pages stay pages.
    let r = d.send(Req::get("/no-such-page")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.text().contains("<html") || r.text().contains("<!doctype"),
        "{}",
        r.text()
    );
    d.stop().await;
}

#[tokio::test]
async fn internal_failures_are_logged_with_an_id_not_sent() {
    let d = Daemon::start(add_ada, |_| {}).await;
    let t = d.state.add_token("app", Scope::Read).unwrap();
    // The repository's snapshot folder becomes unreadable: the daemon's failure, not the
    // client's.
    let snapshots = d.path("repo").join("snapshots");
    std::fs::remove_dir_all(&snapshots).unwrap();
    std::fs::write(&snapshots, "not a folder").unwrap();
    let r = d.send(Req::get("/api/v1/snapshots").token(&t)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "internal");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("request "), "{message}");
    assert!(
        !message.contains(d.dir.path().to_str().unwrap()),
        "{message}"
    );
    let cookie = cookie(&d, "ada").await;
    let page = d
        .send(Req::get("/snapshots").header("Cookie", cookie))
        .await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!page.text().contains(d.dir.path().to_str().unwrap()));
    d.stop().await;
}
