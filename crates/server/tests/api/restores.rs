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

/// The plan after the live database changed: each table's difference signed (what the restore
/// does to its count), the rows entered, deleted and changed since the snapshot (matched by
/// key in a copy of the snapshot, removed afterwards), in the JSON and on the page, with a
/// sentence per table and a summary; a table whose columns changed is not compared.
#[tokio::test]
async fn the_plan_counts_rows_entered_deleted_and_changed_since_and_says_so_in_words() {
    let f = fixture();
    rusqlite::Connection::open(&f.db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); \
             INSERT INTO notes VALUES (1, 'open at 9');",
        )
        .unwrap();
    let admin = f.token("ops", Scope::Admin);
    let r = f
        .post_json(
            "/api/v1/backups",
            &admin,
            json!({"source": "shop", "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let job = r.json();
    let id = job["result"]["id"].as_str().unwrap().to_string();
    let when = job["result"]["time"]
        .as_str()
        .unwrap()
        .parse::<backstop_format::Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    // Since the snapshot: 37 orders entered, 12 customers deleted, 5 renamed, and a column
    // added to notes.
    rusqlite::Connection::open(&f.db)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 37)
             INSERT INTO orders(customer, total) SELECT i, 9.99 FROM n;
             DELETE FROM customers WHERE id >= 188;
             UPDATE customers SET name = 'renamed' WHERE id < 5;
             ALTER TABLE notes ADD COLUMN author TEXT;",
        )
        .unwrap();
    let live_before = std::fs::read(&f.db).unwrap();

    let r = f
        .post_json(
            "/api/v1/restores",
            &admin,
            json!({"snapshot": id, "source": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let plan = r.json();
    let table = |name: &str| {
        plan["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {plan:#}"))
    };
    let (orders, customers, notes) = (table("orders"), table("customers"), table("notes"));
    // The fields there were keep their names and meaning.
    assert_eq!(
        (
            orders["rows_now"].as_u64(),
            orders["rows_snapshot"].as_u64()
        ),
        (Some(237), Some(200))
    );
    assert_eq!(orders["difference"], -37, "{orders}");
    assert_eq!(customers["difference"], 12, "{customers}");
    assert_eq!(
        orders["since"],
        json!({"added": 37, "deleted": 0, "changed": 0})
    );
    assert_eq!(
        customers["since"],
        json!({"added": 0, "deleted": 12, "changed": 5})
    );
    assert_eq!(notes["since"], serde_json::Value::Null, "{notes}");
    assert_eq!(notes["not_compared"], "schema differs, rows not compared");
    assert_eq!(plan["comparison"]["rows"], true, "{plan:#}");
    assert_eq!(plan["comparison"]["limit_bytes"], 2u64 << 30);
    assert_eq!(
        orders["words"],
        "37 rows of orders entered since the snapshot will be lost."
    );
    assert_eq!(
        customers["words"],
        "12 rows of customers deleted since the snapshot will come back and 5 changed since \
         then will go back to their old values."
    );
    let summary = format!(
        "Restoring loses 37 rows of orders entered since {when}, brings back 12 deleted rows of \
         customers, and reverts 5 changed rows of customers. The rows of notes were not \
         compared (see below)."
    );
    assert_eq!(plan["summary"], summary.as_str());
    // The live database was only read, and the copy of the snapshot is gone.
    assert_eq!(std::fs::read(&f.db).unwrap(), live_before);
    let left: Vec<_> = std::fs::read_dir(f.dir.path().join("scratch"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left in the scratch folder: {left:?}");

    // The page: signs, the three counts, the words and the summary.
    let (cookie, _) = f.session("anna", Role::Admin);
    let page = f
        .page(&format!("/restore?source=shop&snapshot={id}"), &cookie)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    for want in [
        "<p id=\"plan-summary\"><strong>",
        summary.as_str(),
        "<td class=\"num\" data-label=\"On restore\">\u{2212}37</td>",
        "<td class=\"num\" data-label=\"On restore\">+12</td>",
        "<th class=\"num\">Entered since</th>",
        "<td class=\"num\" data-label=\"Entered\">37</td>",
        "<td class=\"num\" data-label=\"Deleted\">12</td>",
        "<td class=\"num\" data-label=\"Changed\">5</td>",
        "<td colspan=\"3\" data-label=\"Rows\">schema differs, rows not compared</td>",
        "<li>37 rows of orders entered since the snapshot will be lost.</li>",
        "id=\"compare-note\"",
        "are compared row by row",
        "id=\"schema-differs\"",
    ] {
        assert!(html.contains(want), "missing {want:?} in\n{html}");
    }
    assert_eq!(count(&f.db, "orders"), 237, "planning changed nothing");
}

/// Pre-change snapshots wait for someone to confirm their change went well: the restore page
/// lists them with a "Mark verified" button; an operator marks one (a viewer may not), an
/// admin another from the page and a script one through the API; each is then verified by
/// its marker, no longer waiting, and audited. Other snapshots are refused plainly.
#[tokio::test]
async fn pre_change_snapshots_wait_for_confirmation_until_marked_verified() {
    let f = fixture();
    let app = f.token("sam", Scope::Backup);
    let admin = f.token("ops", Scope::Admin);
    let mut pre = Vec::new();
    for (description, ticket) in [
        ("before the price update", "PO-1042"),
        ("before the import", "PO-1043"),
        ("before the migration", "PO-1044"),
    ] {
        let r = f
            .post_json(
                "/api/v1/backups",
                &app,
                json!({"source": "shop", "kind": "pre-change", "description": description,
                       "ticket": ticket, "wait": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        pre.push(r.json()["result"]["id"].as_str().unwrap().to_string());
    }
    let manual = f
        .post_json(
            "/api/v1/backups",
            &app,
            json!({"source": "shop", "wait": true}),
        )
        .await
        .json()["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (admin_cookie, admin_csrf) = f.session("anna", Role::Admin);
    let (op_cookie, op_csrf) = f.session("olga", Role::Operator);
    let (viewer_cookie, viewer_csrf) = f.session("vera", Role::Viewer);

    let page = f.page("/restore?source=shop", &admin_cookie).await.text();
    assert!(page.contains("id=\"waiting\""), "{page}");
    for (id, text) in [(&pre[0], "before the price update"), (&pre[1], "PO-1043")] {
        assert!(page.contains(text), "{page}");
        assert!(
            page.contains(&format!("action=\"/snapshots/{id}/mark-verified\"")),
            "{page}"
        );
    }
    assert!(!page.contains(&format!("id=\"waiting-{}\"", &manual[..10])));

    let mark = |id: &str| format!("/snapshots/{id}/mark-verified");
    // A viewer may not; a form without the session's token is refused.
    let r = f
        .form(&mark(&pre[0]), &viewer_cookie, &[("csrf", &viewer_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = f
        .form(&mark(&pre[0]), &op_cookie, &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(
        pre_change_of(&f, &admin, &pre[0]).await["state"],
        "pending-verification"
    );

    // The operator marks the first; she may not restore, so back to the snapshot's page.
    let r = f
        .form(&mark(&pre[0]), &op_cookie, &[("csrf", &op_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        r.headers["location"],
        format!("/snapshots/{}", pre[0]).as_str()
    );
    let s = pre_change_of(&f, &admin, &pre[0]).await;
    assert_eq!(
        (s["state"].as_str(), s["verified_by"].as_str()),
        (Some("verified"), Some("olga")),
        "{s}"
    );
    // The admin marks the second from the page and is sent back to it, which says so.
    let r = f
        .form(&mark(&pre[1]), &admin_cookie, &[("csrf", &admin_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let back = r.headers["location"].to_str().unwrap().to_string();
    assert_eq!(back, format!("/restore?source=shop&marked={}", pre[1]));
    let page = f.page(&back, &admin_cookie).await.text();
    assert!(page.contains("id=\"marked\""), "{page}");
    assert!(page.contains("is marked verified by anna"), "{page}");
    assert!(
        !page.contains(&format!("action=\"{}\"", mark(&pre[0]))),
        "{page}"
    );
    assert!(
        !page.contains(&format!("action=\"{}\"", mark(&pre[1]))),
        "{page}"
    );
    assert!(
        page.contains(&format!("action=\"{}\"", mark(&pre[2]))),
        "{page}"
    );
    assert_eq!(
        pre_change_of(&f, &admin, &pre[1]).await["verified_by"],
        "anna"
    );

    // Through the API: a backup token may not; an admin token may, named after itself, with
    // no body at all; a second time changes nothing.
    let r = f
        .post_json(&format!("/api/v1{}", mark(&pre[2])), &app, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = f
        .send(
            Request::post(format!("/api/v1{}", mark(&pre[2])))
                .header("Authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let done = r.json();
    assert_eq!(done["changed"], true, "{done}");
    assert_eq!(done["record"]["by"], "ops", "{done}");
    assert_eq!(done["source"], "shop");
    let s = pre_change_of(&f, &admin, &pre[2]).await;
    assert_eq!(
        (s["state"].as_str(), s["verified_by"].as_str()),
        (Some("verified"), Some("ops")),
        "{s}"
    );
    let r = f
        .post_json(
            &format!("/api/v1{}", mark(&pre[2])),
            &admin,
            json!({"by": "dana", "note": "prices checked"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["changed"], false, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("already marked verified")
    );
    let r = f
        .post_json(
            &format!("/api/v1{}", mark(&pre[2])),
            &admin,
            json!({"who": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // A snapshot that is not pre-change is refused, as the CLI refuses it.
    let r = f
        .post_json(
            &format!("/api/v1{}", mark(&manual)),
            &admin,
            json!({"by": "dana"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("is a manual snapshot; only pre-change snapshots are marked verified"),
        "{error}"
    );
    assert!(!error.contains("backstop pin"), "{error}");
    let page = f.page("/restore?source=shop", &admin_cookie).await.text();
    assert!(
        !page.contains("id=\"waiting\""),
        "nothing waits any more: {page}"
    );

    // Each is audited: who marked which snapshot, and who was refused.
    let audit = f.app.state.audit_page(100, 0).unwrap();
    let entries: Vec<(String, String, String)> = audit
        .iter()
        .filter(|r| r.entry.action == "mark-verified")
        .map(|r| {
            (
                r.entry.actor.clone(),
                r.entry.target.clone(),
                r.entry.outcome.clone(),
            )
        })
        .collect();
    for (actor, snapshot, outcome) in [
        ("user:olga", &pre[0], "ok"),
        ("user:anna", &pre[1], "ok"),
        ("token:ops", &pre[2], "ok"),
        ("user:vera", &pre[0], "denied"),
        ("token:sam", &pre[2], "denied"),
        ("token:ops", &manual, "failed"),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, t, o)| a == actor && t.contains(&snapshot[..8]) && o == outcome),
            "no {actor} {outcome} of {snapshot} in {entries:#?}"
        );
    }
}

/// A snapshot's `pre_change` as `GET /api/v1/snapshots` lists it.
async fn pre_change_of(f: &Fixture, token: &str, id: &str) -> serde_json::Value {
    let rows = f
        .get("/api/v1/snapshots?kind=pre-change", token)
        .await
        .json();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {rows:#}"))["pre_change"]
        .clone()
}
