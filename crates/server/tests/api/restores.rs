//! Restores through the API: plans, the safety snapshot, downloads, the schema guard, and a time
//! naming a snapshot before anything is restored.

use super::*;

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
    // The job's figures are the restore's, then the safety snapshot's (not a "backup").
    let words = job["progress"].as_str().unwrap();
    assert!(words.starts_with("Restore: "), "{words}");
    assert!(words.contains("; safety snapshot: "), "{words}");
    assert!(!words.to_lowercase().contains("backup"), "{words}");
    assert_eq!(job["phases"][0]["name"], "restore", "{job}");
    assert_eq!(job["phase"], "safety snapshot", "{job}");
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
