//! The scenario's steps, one per person at the page: the operator, the admin's three restores, and
//! the status page's screenshot.

use super::*;

/// Steps 3 and 4: olga (operator) backs up with a description, runs a drill, sees her snapshot
/// listed, and is refused the restore page. Returns the manual snapshot's id.
pub(super) fn operator_backs_up_and_drills(b: &Browser, daemon: &Daemon) -> String {
    b.log_in("olga");
    let form = b.find("#source-shop form.backup-now");
    b.type_text(&b.find_in(&form, "input[name=description]"), DESCRIPTION);
    b.click(&b.find_in(&form, "button[type=submit]"));
    let job = b.wait_job("backup");
    let manual = daemon.snapshots("kind=manual");
    assert_eq!(
        manual.len(),
        1,
        "one manual snapshot after job {job}: {manual:#?}"
    );
    assert_eq!(manual[0]["description"], DESCRIPTION, "{manual:#?}");
    assert_eq!(manual[0]["source"], "shop");
    let manual_id = manual[0]["id"].as_str().expect("snapshot id").to_string();

    b.goto("/");
    assert!(
        b.try_find("#emergency-shop").is_none(),
        "an operator is offered a restore"
    );
    let drill = b.find("#source-shop form[action='/verify']");
    b.click(&b.find_in(&drill, "button[type=submit]"));
    b.wait_job("drill");
    b.goto("/");
    let verified = b.text(&b.find("#source-shop .verified"));
    assert!(
        verified.starts_with("passed") && verified.contains(&manual_id[..10]),
        "the status page shows no passed drill of {manual_id}: {verified:?}"
    );

    b.goto("/snapshots?source=shop");
    let rows: Vec<String> = b
        .find_all("#snapshots tbody tr")
        .iter()
        .map(|r| b.text(r))
        .collect();
    assert_eq!(rows.len(), 2, "startup and manual snapshots: {rows:#?}");
    assert!(
        rows.iter()
            .any(|r| r.contains(DESCRIPTION) && r.contains("manual") && r.contains("drill passed")),
        "no verified manual row described {DESCRIPTION:?}: {rows:#?}"
    );

    b.goto("/restore?source=shop");
    let refusal = b.text(&b.find("#message"));
    assert!(
        refusal.contains("Forbidden") && refusal.contains("user:olga may not restore"),
        "the restore page does not refuse an operator: {refusal:?}"
    );
    b.log_out();
    manual_id
}

/// Step 5: the live database loses rows; admin plans the restore of the manual snapshot,
/// sees the difference, is stopped by a wrong confirmation, then restores.
pub(super) fn admin_restores(b: &Browser, daemon: &Daemon, shop: &Shop, manual_id: &str) {
    let before = shop.rows();
    shop.sql(&format!("DELETE FROM {TABLE} WHERE InvoiceId > 300"));
    let now = shop.rows();
    assert!(now < before, "the delete removed nothing ({now} rows)");

    b.log_in("admin");
    b.goto("/restore?source=shop");
    let row = b
        .find_all("#restore-snapshots tbody tr")
        .into_iter()
        .find(|r| b.text(r).contains(DESCRIPTION))
        .expect("the manual snapshot is offered for restore");
    b.click(&b.find_in(&row, "a"));
    let plan = b.find("#plan");
    let plan_url = b.path();
    assert!(
        plan_url.contains(manual_id),
        "planned {plan_url}, not {manual_id}"
    );
    assert!(
        b.text(&plan).contains("Same schema as now"),
        "{}",
        b.text(&plan)
    );
    assert_eq!(
        b.table_row("#plan table.tables tbody tr", TABLE),
        [
            TABLE.to_string(),
            now.to_string(),
            before.to_string(),
            (before - now).to_string()
        ],
        "the plan's rows now / in the snapshot / change"
    );

    // A wrong confirmation changes nothing.
    b.type_text(&b.find("#confirm"), "shpo");
    b.click(&b.find("#restore-button"));
    let refusal = b.text(&b.find("#message"));
    assert!(refusal.contains("Not confirmed"), "{refusal:?}");
    assert_eq!(
        shop.rows(),
        now,
        "an unconfirmed restore changed the database"
    );
    assert!(daemon.snapshots("kind=pre-restore").is_empty());

    b.goto(&plan_url);
    b.type_text(&b.find("#confirm"), "shop");
    b.click(&b.find("#restore-button"));
    b.wait_job("restore");
    let safety = b.text(&b.find("#safety-snapshot"));
    assert_eq!(shop.rows(), before, "the deleted rows are not back");
    let pre = daemon.snapshots("kind=pre-restore");
    assert_eq!(pre.len(), 1, "one safety snapshot: {pre:#?}");
    let pre_id = pre[0]["id"].as_str().expect("snapshot id");
    assert!(
        safety.contains(&pre_id[..10]),
        "the job page names {safety:?}, the safety snapshot is {pre_id}"
    );
}

/// Step 6: rows are lost again; the status page's emergency button restores the latest
/// verified snapshot (the drilled manual one).
pub(super) fn admin_emergency_restore(b: &Browser, daemon: &Daemon, shop: &Shop, manual_id: &str) {
    let before = shop.rows();
    shop.sql(&format!("DELETE FROM {TABLE} WHERE InvoiceId > 100"));
    let now = shop.rows();
    b.goto("/");
    b.click(&b.find("#emergency-shop"));
    let plan = b.find("#plan");
    assert!(
        b.path().contains("snapshot=latest-verified"),
        "{}",
        b.path()
    );
    assert!(
        b.text(&plan).contains(&manual_id[..10]),
        "latest-verified is not the drilled snapshot {manual_id}: {}",
        b.text(&plan)
    );
    assert_eq!(
        b.table_row("#plan table.tables tbody tr", TABLE)[1..3],
        [now.to_string(), before.to_string()]
    );
    b.type_text(&b.find("#confirm"), "shop");
    b.click(&b.find("#restore-button"));
    b.wait_job("restore");
    assert!(b.try_find("#safety-snapshot").is_some());
    assert_eq!(
        shop.rows(),
        before,
        "the emergency restore did not bring the rows back"
    );
    assert_eq!(daemon.snapshots("kind=pre-restore").len(), 2);
}

/// Step 7: rows are lost once more; the admin restores the shop as it was at a time. Typed
/// times the page cannot use are refused in plain words (before the first snapshot, in the
/// future); a time picked just after the manual snapshot names it, the plan says so before
/// anything happens, and the restore brings that snapshot back.
pub(super) fn admin_restores_as_of_a_time(
    b: &Browser,
    daemon: &Daemon,
    shop: &Shop,
    manual_id: &str,
) {
    let time = |s: &Value| -> jiff::Timestamp {
        s["time"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no time in {s:#}"))
    };
    let manual = daemon.snapshots("kind=manual");
    // The next whole second: the snapshot after the manual one (the first restore's safety
    // snapshot) came many seconds later. Worked out from the list, as the daemon should.
    let at = time(&manual[0])
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Ceil),
        )
        .expect("rounding a time");
    let all = daemon.snapshots("");
    let expected = all
        .iter()
        .filter(|s| time(s) <= at)
        .max_by_key(|s| time(s))
        .expect("a snapshot before the manual one's next second");
    assert_eq!(expected["id"], manual_id, "snapshots: {all:#?}");

    for (typed, says) in [
        (
            "2000-01-01 00:00",
            "no snapshot of shop was taken at or before 2000-01-01 00:00 (UTC): the oldest is from",
        ),
        ("2099-12-31 18:00", "is in the future"),
    ] {
        b.goto("/restore?source=shop");
        b.type_text(&b.find("#as-of-text"), typed);
        b.click(&b.find("#as-of-button"));
        let error = b.text(&b.find("#plan-error"));
        assert!(error.contains(says), "typed {typed:?}: {error:?}");
        assert!(b.try_find("#plan").is_none(), "typed {typed:?}: a plan");
    }

    let before = shop.rows();
    shop.sql(&format!("DELETE FROM {TABLE} WHERE InvoiceId > 200"));
    let now = shop.rows();
    b.goto("/restore?source=shop");
    // A picker's value is what a person's clicks set; WebDriver cannot click through the
    // browser's own date widget, so the value is set as the widget would.
    let picked = at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    b.must(
        "POST",
        "/execute/sync",
        Some(json!({
            "script": "arguments[0].value = arguments[1];",
            "args": [{ ELEMENT: b.find("#as-of-picker") }, picked],
        })),
    );
    b.click(&b.find("#as-of-button"));
    let as_of = b.text(&b.find("#as-of"));
    // The page shows minutes, and seconds only when there are some (`app::snapshots::local_time`):
    // a snapshot taken at :59.x is picked at :00.
    let shown = if at.as_second() % 60 == 0 {
        at.strftime("%Y-%m-%d %H:%M").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M:%S").to_string()
    };
    assert!(
        as_of.contains(&shown) && as_of.contains(&manual_id[..10]) && as_of.contains("(manual)"),
        "picked {picked}: {as_of:?}"
    );
    assert_eq!(
        b.table_row("#plan table.tables tbody tr", TABLE)[1..3],
        [now.to_string(), before.to_string()]
    );
    b.type_text(&b.find("#confirm"), "shop");
    b.click(&b.find("#restore-button"));
    b.wait_job("restore");
    assert_eq!(
        shop.rows(),
        before,
        "the restore as of {shown} did not bring the rows back"
    );
    assert_eq!(daemon.snapshots("kind=pre-restore").len(), 3);
}

/// Step 8: the admin's status page, as a PNG (kept when BACKSTOP_SCREENSHOT names a file).
pub(super) fn status_screenshot(b: &Browser) {
    b.goto("/");
    let summary = b.text(&b.find("#summary"));
    assert!(summary.contains("All data is safe"), "{summary:?}");
    let png = b.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a PNG"
    );
    if let Some(path) = std::env::var_os("BACKSTOP_SCREENSHOT") {
        fs::write(&path, &png).expect("writing the screenshot");
        eprintln!("status page screenshot: {}", Path::new(&path).display());
    }
}
