//! The scenario's steps, one per person at the page: the operator, the admin's three restores,
//! the status page's screenshot, every page on a phone and a desktop, the admin's removals, and
//! the error pages' menu.

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
    assert_menu(b, "olga");
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
        b.table_row("#plan table.tables tbody tr", TABLE)[..4],
        [
            TABLE.to_string(),
            now.to_string(),
            before.to_string(),
            format!("+{}", before - now)
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

/// The window sizes every page must fit: a phone's and a desktop's.
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// What on the page sticks out sideways: the page wider than the window, an element reaching
/// past the page's visible width (the window less a desktop browser's scrollbar, which a
/// phone's does not take), or a box that scrolls sideways (which `scrollWidth` of the page
/// would not show). Empty when the page fits.
const SIDEWAYS: &str = r##"
const out = [], root = document.documentElement, w = root.clientWidth;
if (root.scrollWidth > window.innerWidth) out.push(`the page is ${root.scrollWidth}px wide`);
if (root.scrollWidth > w) out.push(`the page is ${root.scrollWidth}px wide, ${w}px visible`);
const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
  + (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
for (const el of document.body.querySelectorAll("*")) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.left < -0.5 || r.right > w + 0.5)
    out.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)}px: ${el.textContent.trim().slice(0, 50)}`);
  const s = getComputedStyle(el);
  if (/auto|scroll/.test(s.overflowX) && el.scrollWidth > el.clientWidth + 1)
    out.push(`${name(el)} scrolls sideways (${el.scrollWidth}px in ${el.clientWidth}px)`);
}
return out.slice(0, 12);
"##;

/// The cells of `arguments[0]`'s rows captioned `arguments[1]` that are not on the screen: no
/// such cell, an empty box, or a box past the window's edges; on a phone (`arguments[2]`)
/// also a cell without its caption.
const HIDDEN_CELLS: &str = r#"
const [table, labels, phone] = arguments, w = document.documentElement.clientWidth, out = [];
const rows = document.querySelectorAll(table + " tbody tr");
if (rows.length === 0) out.push(`no rows in ${table}`);
rows.forEach((tr, i) => {
  for (const label of labels) {
    const td = tr.querySelector(`td[data-label="${label}"]`);
    if (!td) { out.push(`row ${i}: no ${label} cell`); continue; }
    const r = td.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0 || r.left < 0 || r.right > w)
      out.push(`row ${i}: ${label} at ${Math.round(r.left)}..${Math.round(r.right)}px, ${Math.round(r.width)}x${Math.round(r.height)}`);
    const caption = getComputedStyle(td, "::before").content;
    if (phone && caption !== JSON.stringify(label)) out.push(`row ${i}: ${label} captioned ${caption}`);
  }
});
return out;
"#;

/// The folder for the pages' screenshots, when BACKSTOP_SCREENSHOTS_DIR names one.
fn screenshots_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("BACKSTOP_SCREENSHOTS_DIR")?);
    fs::create_dir_all(&dir).expect("creating BACKSTOP_SCREENSHOTS_DIR");
    Some(dir)
}

/// The open page fits the window sideways; its screenshot is kept as `WIDTH-NAME.png`.
#[track_caller]
fn assert_fits(b: &Browser, name: &str, width: u32) {
    if let Some(dir) = screenshots_dir() {
        let png = b.page_screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        fs::write(dir.join(format!("{width}-{name}.png")), png).expect("writing a screenshot");
    }
    let problems = b.js(SIDEWAYS, json!([]));
    assert_eq!(
        problems,
        json!([]),
        "{name} ({}) scrolls sideways in a {width} px window",
        b.path()
    );
}

/// The page's menu is there, for `user`.
#[track_caller]
fn assert_menu(b: &Browser, user: &str) {
    for (href, label) in [("/", "Status"), ("/snapshots", "Snapshots")] {
        let link = b
            .try_find(&format!("header.top nav a[href='{href}']"))
            .unwrap_or_else(|| panic!("no menu on {}:\n{}", b.path(), b.page_text()));
        assert_eq!(b.text(&link), label);
    }
    let who = b.text(&b.find("#whoami"));
    assert!(who.starts_with(user), "{} shows {who:?}", b.path());
}

/// Step 9: as the admin, every page at a phone's and a desktop's window size: nothing scrolls
/// sideways, and the snapshot list's and activity page's cells are all on the screen.
pub(super) fn pages_fit_a_phone_and_a_desktop(b: &Browser, manual_id: &str) {
    b.goto("/activity");
    let job = b
        .js(
            "return document.querySelector('#jobs tbody a').getAttribute('href');",
            json!([]),
        )
        .as_str()
        .expect("a job on the activity page")
        .to_string();
    let pages = [
        ("status", "/".to_string()),
        ("snapshots", "/snapshots".to_string()),
        ("snapshot", format!("/snapshots/{manual_id}")),
        ("restore", "/restore?source=shop".to_string()),
        (
            "restore-plan",
            "/restore?source=shop&snapshot=latest-verified".to_string(),
        ),
        ("activity", "/activity".to_string()),
        ("job", job),
        ("admin", "/admin".to_string()),
        ("login", "/login".to_string()),
        ("not-found", "/no-such-page".to_string()),
        ("error", "/snapshots?kind=weekly".to_string()),
    ];
    let cells = [
        (
            "snapshots",
            "#snapshots",
            &["Size", "Verified", "Description"][..],
        ),
        ("activity", "#jobs", &["Result", "Message"][..]),
        ("activity", "#audit", &["Outcome", "Detail"][..]),
    ];
    for (width, height) in [PHONE, DESKTOP] {
        b.resize(width, height);
        for (name, path) in &pages {
            b.goto(path);
            b.find("main");
            assert_fits(b, name, width);
            for (_, table, labels) in cells.iter().filter(|c| c.0 == *name) {
                let hidden = b.js(HIDDEN_CELLS, json!([table, labels, width == PHONE.0]));
                assert_eq!(
                    hidden,
                    json!([]),
                    "{table} on {path} in a {width} px window"
                );
            }
        }
        // The description typed in step 3 is on the screen in full.
        b.goto("/snapshots");
        let description = b.find_all("#snapshots td[data-label=Description]");
        assert!(
            description.iter().any(|d| b.text(d).contains(DESCRIPTION)),
            "no description {DESCRIPTION:?} in a {width} px window"
        );
    }
    b.resize(DESKTOP.0, DESKTOP.1);
}

/// The admin page's row of `name` in `table` (the first cell), if listed.
fn admin_row(b: &Browser, table: &str, name: &str) -> Option<String> {
    b.goto("/admin");
    b.find(table);
    b.find_all(&format!("{table} tbody tr"))
        .into_iter()
        .find(|r| b.text(&b.find_in(r, "td")).trim() == name)
}

/// Clicks the Remove or Revoke button of `name`'s row; returns the confirmation page's text.
#[track_caller]
fn ask_to_remove(b: &Browser, table: &str, name: &str) -> String {
    let row = admin_row(b, table, name).unwrap_or_else(|| panic!("{name} not in {table}"));
    b.click(&b.find_in(&row, "button.danger"));
    b.text(&b.find("#confirm-page"))
}

/// Step 10: revoking a token and removing a user ask first. Cancel keeps them (the token
/// still works); Confirm removes them (the token is refused, the user cannot log in). The
/// user is removed on a phone.
pub(super) fn admin_removes_only_after_confirming(b: &Browser, daemon: &Daemon) {
    // A token made for this: the scenario's own read token stays.
    b.goto("/admin");
    let form = b.find("form[action='/admin/tokens']");
    b.type_text(&b.find_in(&form, "input[name=name]"), "till-app");
    b.click(&b.find_in(&form, "button[type=submit]"));
    let secret = b.text(&b.find("#new-token .mono"));
    let api = || {
        let url = format!("{}/api/v1/sources", daemon.base);
        let (status, body) =
            http(&daemon.agent, "GET", &url, None, Some(&secret)).expect("GET /api/v1/sources");
        assert!(status == 200 || status == 401, "{status}: {body}");
        status
    };
    assert_eq!(api(), 200, "the new token is refused");

    let asked = ask_to_remove(b, "#tokens", "till-app");
    assert!(
        asked.contains("Revoke token till-app?") && asked.contains("backup"),
        "{asked:?}"
    );
    assert_fits(b, "confirm-token", DESKTOP.0);
    b.click(&b.find("#cancel"));
    b.wait_path(|p| p == "/admin");
    assert!(
        admin_row(b, "#tokens", "till-app").is_some(),
        "revoked on Cancel"
    );
    assert_eq!(api(), 200, "the token is refused after Cancel");
    ask_to_remove(b, "#tokens", "till-app");
    b.click(&b.find("#confirm-button"));
    let notice = b.text(&b.find("#notice"));
    assert_eq!(notice, "Token till-app revoked.");
    assert!(
        admin_row(b, "#tokens", "till-app").is_none(),
        "still listed"
    );
    assert_eq!(api(), 401, "the revoked token still works");

    b.resize(PHONE.0, PHONE.1);
    let asked = ask_to_remove(b, "#users", "vera");
    assert!(
        asked.contains("Remove user vera?") && asked.contains("viewer"),
        "{asked:?}"
    );
    assert_fits(b, "confirm-user", PHONE.0);
    b.click(&b.find("#cancel"));
    b.wait_path(|p| p == "/admin");
    assert!(
        admin_row(b, "#users", "vera").is_some(),
        "removed on Cancel"
    );
    ask_to_remove(b, "#users", "vera");
    b.click(&b.find("#confirm-button"));
    let notice = b.text(&b.find("#notice"));
    assert!(notice.starts_with("User vera removed"), "{notice:?}");
    assert!(admin_row(b, "#users", "vera").is_none(), "still listed");
    assert_fits(b, "admin-after-removal", PHONE.0);
    b.resize(DESKTOP.0, DESKTOP.1);
    b.log_in_fails("vera", PASSWORD);
}

/// Step 11: a logged-in user's error pages (no such page, no such job) have the menu; a
/// visitor's have the header without it. The favicon is linked and served like the
/// stylesheet.
pub(super) fn error_pages_keep_the_menu(b: &Browser, daemon: &Daemon) {
    for path in [
        "/no-such-page",
        "/jobs/no-such-job",
        "/snapshots?kind=weekly",
    ] {
        b.goto(path);
        b.find("#message");
        assert_menu(b, "admin");
    }
    let icon = b.js(
        "return document.querySelector('link[rel=icon]').getAttribute('href');",
        json!([]),
    );
    assert_eq!(icon, "/static/favicon.svg");
    let get = |path: &str| {
        let url = format!("{}{path}", daemon.base);
        let mut r = daemon.agent.get(&url).call().expect("GET");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (content_type, cache) = (header("content-type"), header("cache-control"));
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().expect("a text body");
        (status, content_type, cache, body)
    };
    let (_, _, style_cache, _) = get("/static/style.css");
    for path in ["/static/favicon.svg", "/favicon.ico"] {
        let (status, content_type, cache, body) = get(path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type, "image/svg+xml", "{path}");
        assert_eq!(cache, style_cache, "{path}");
        assert!(
            body.starts_with("<svg") && body.contains("</svg>"),
            "{path}"
        );
    }

    b.log_out();
    b.goto("/no-such-page");
    assert!(
        b.text(&b.find("#message"))
            .contains("There is no such page")
    );
    assert!(b.try_find("header.top .brand").is_some());
    assert!(
        b.try_find("header.top nav").is_none(),
        "a visitor's error page has the menu"
    );
}

/// Step 12: a backup big enough to be watched (about 200 MiB that does not compress): its page
/// shows how far it got of its total, moving while it runs, and its description; the status
/// page lists it running with its progress; once done, the page keeps its figures.
pub(super) fn a_running_backup_shows_moving_progress(b: &Browser, shop: &Shop) {
    shop.sql(
        "CREATE TABLE scans(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3200)
         INSERT INTO scans(data) SELECT randomblob(65536) FROM n;",
    );
    b.resize(DESKTOP.0, DESKTOP.1);
    b.log_in("olga");
    let form = b.find("#source-shop form.backup-now");
    b.type_text(
        &b.find_in(&form, "input[name=description]"),
        "after the scans",
    );
    b.click(&b.find_in(&form, "button[type=submit]"));
    b.wait_path(|p| p.starts_with("/jobs/"));
    let job = b.path();
    let mut seen: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        b.goto(&job);
        let Some(el) = b.try_find("#job") else {
            continue;
        };
        let state = b
            .call("GET", &format!("/element/{el}/attribute/data-state"), None)
            .ok();
        if state.as_ref().and_then(Value::as_str) != Some("running") {
            if !seen.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the backup never ran");
            continue;
        }
        let words = b.try_find("#job-progress").map(|p| b.text(&p));
        let bar = b.try_find("#job-bar").and_then(|bar| {
            b.call("GET", &format!("/element/{bar}/property/value"), None)
                .ok()
                .map(|v| v.to_string())
        });
        if let (Some(words), Some(bar)) = (words, bar) {
            assert!(
                words.starts_with("Backup: ")
                    && words.contains(" of about ")
                    && words.contains('%'),
                "{words:?}"
            );
            if seen.last().is_none_or(|(_, last)| *last != bar) {
                seen.push((words, bar));
            }
        }
        assert!(
            Instant::now() < deadline,
            "the backup ran for 2 minutes: {seen:?}"
        );
    }
    assert!(
        seen.len() >= 2,
        "the job page showed no moving progress while the backup ran: {seen:?}"
    );
    b.wait_job("backup");
    assert!(
        b.text(&b.find("#job-description"))
            .contains("after the scans"),
        "no description on the finished job's page"
    );
    let words = b.text(&b.find("#job-progress"));
    assert!(
        words.starts_with("Backup: ") && words.contains("/s on average") && !words.contains('%'),
        "the finished job's figures: {words:?}"
    );
    assert!(
        b.try_find("#job-bar").is_none(),
        "a finished job has no bar"
    );
}
