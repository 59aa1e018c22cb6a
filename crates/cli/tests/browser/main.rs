//! The small-shop scenario end to end, as people would use it: the real `backstop` binary as a
//! daemon over a real SQLite database and a local repository, driven through its web pages by
//! Debian's headless Chromium (over chromedriver's W3C WebDriver API).
//!
//! An operator backs the shop up before a stock import and runs a restore drill, and is refused
//! a restore; a viewer can only look; an admin restores the snapshot after the live database
//! lost rows (a safety snapshot is taken first), then uses the emergency restore of the latest
//! verified snapshot, then restores "as of a time" picked in the restore picker (after typing
//! times the page refuses in plain words). Every page fits a phone's screen (390 px wide) and
//! a desktop's without scrolling sideways; removing a user and revoking a token ask first; error
//! pages keep the menu; the favicon is served. The daemon stops cleanly on SIGTERM. A second
//! daemon, over a PostgreSQL database, shows its restore plan row by row too.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium chromium-driver`)
//! and the `sqlite3` shell. `BACKSTOP_SKIP_BROWSER=1` skips it where no browser can be
//! installed; `BACKSTOP_SCREENSHOT=PATH` writes a PNG of the admin's status page there, and
//! `BACKSTOP_SCREENSHOTS_DIR=DIR` one PNG of each page at each window size into DIR.

#[path = "../common/mod.rs"]
mod common;
mod plan;
mod server;
mod steps;

use steps::*;

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Out, run, testdata};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "correct horse battery";
const DESCRIPTION: &str = "before stock import";
/// The table the scenario deletes rows from.
const TABLE: &str = "InvoiceLine";

#[test]
fn small_shop_scenario_in_a_real_browser() {
    if !browser_installed() {
        return;
    }
    let started = Instant::now();
    let shop = Shop::set_up();
    let daemon = shop.serve();
    let manual_id;
    let driver = Driver::start(&shop.dir.path().join("chromedriver.log"));
    {
        let b = Browser::open(
            &driver,
            &shop.dir.path().join("chrome-profile"),
            &daemon.base,
        );

        // The viewer sees the status but may start nothing.
        b.log_in_fails("vera", "not her password");
        b.log_in("vera");
        assert!(
            b.try_find("#source-shop").is_some(),
            "no shop card for vera"
        );
        assert!(
            b.try_find("#source-shop form.backup-now").is_none(),
            "a viewer is offered a backup"
        );
        b.log_out();

        manual_id = operator_backs_up_and_drills(&b, &daemon);
        admin_restores(&b, &daemon, &shop, &manual_id);
        admin_emergency_restore(&b, &daemon, &shop, &manual_id);
        admin_restores_as_of_a_time(&b, &daemon, &shop, &manual_id);
        plan::admin_sees_what_a_restore_would_change(&b, &shop, &manual_id);
        status_screenshot(&b);
        pages_fit_a_phone_and_a_desktop(&b, &manual_id);
        admin_removes_only_after_confirming(&b, &daemon);
        error_pages_keep_the_menu(&b, &daemon);
        a_running_backup_shows_moving_progress(&b, &shop);
    }
    server::admin_sees_what_a_postgres_restore_would_change(&driver);
    drop(driver);

    let status = daemon.stop();
    assert!(
        status.success(),
        "the daemon exited with {status} on SIGTERM"
    );
    eprintln!("browser scenario passed in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The shop: a directory with the database, the config, the repository and the daemon's state.

/// False (skip) only when the browser is missing and BACKSTOP_SKIP_BROWSER=1.
fn browser_installed() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var("BACKSTOP_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "browser test skipped: BACKSTOP_SKIP_BROWSER=1 and no {CHROMIUM} or {CHROMEDRIVER}"
        );
        return false;
    }
    panic!(
        "{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's `chromium chromium-driver` \
         (CI installs them), or set BACKSTOP_SKIP_BROWSER=1 to skip this test"
    );
}

struct Shop {
    dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
    token: String,
}

impl Shop {
    /// Step 1: database, config, repository, three users and a read token.
    fn set_up() -> Self {
        Self::set_up_with("[sources.shop]\npath = \"shop.db\"\nevery = \"6h\"\n")
    }

    /// [`Shop::set_up`] with `source` (the config's `[sources.shop]` section) instead.
    fn set_up_with(source: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("backstop-browser-")
            .tempdir()
            .expect("tempdir");
        let db = dir.path().join("shop.db");
        // Read and written, not copied: the copy would keep the test data's read-only mode.
        let chinook = fs::read(testdata("sqlite/chinook.sqlite")).expect("reading chinook");
        fs::write(&db, chinook).expect("writing shop.db");
        let config = dir.path().join("backstop.toml");
        fs::write(
            &config,
            format!(
                "repository = \"repo\"\ntime_zone = \"UTC\"\n\n[retention]\nkeep_last = 10\n\n\
                 {source}\n[daemon]\nlog_file = \"off\"\n"
            ),
        )
        .expect("writing backstop.toml");
        let mut shop = Self {
            dir,
            config,
            db,
            token: String::new(),
        };
        shop.backstop(&["init", "--encryption", "none"], None).ok();
        for (name, role) in [("admin", "admin"), ("olga", "operator"), ("vera", "viewer")] {
            shop.backstop(&["user", "add", name, "--role", role], Some(PASSWORD))
                .ok();
        }
        let out = shop
            .backstop(&["token", "add", "t", "--scope", "read"], None)
            .ok();
        shop.token = out.stdout.trim().to_string();
        assert!(!shop.token.is_empty(), "no token printed: {out:#?}");
        shop
    }

    /// The binary with the shop's config, in the shop's directory, without the caller's
    /// BACKSTOP_* variables; `stdin` is written to its standard input.
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backstop"));
        c.current_dir(self.dir.path())
            .env_remove("BACKSTOP_REPO")
            .env_remove("BACKSTOP_PASSWORD")
            .env_remove("BACKSTOP_PASSWORD_FILE")
            .arg("--config")
            .arg(&self.config);
        c
    }

    fn backstop(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = self.command();
        c.args(args);
        let Some(input) = stdin else {
            c.stdin(Stdio::null());
            return run(c);
        };
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running backstop");
        writeln!(child.stdin.take().expect("piped stdin"), "{input}").expect("writing stdin");
        Out::from_output(child.wait_with_output().expect("waiting for backstop"))
    }

    /// Step 2: `backstop serve` on a free port; returns once the startup backup is listed.
    fn serve(&self) -> Daemon {
        let port = free_port();
        let log = self.dir.path().join("daemon.log");
        let log_file = fs::File::create(&log).expect("creating daemon.log");
        let child = self
            .command()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("starting backstop serve");
        let mut daemon = Daemon {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            token: self.token.clone(),
            agent: agent(),
        };
        daemon.wait_until("GET /healthz answers 200", |daemon| {
            http(
                &daemon.agent,
                "GET",
                &format!("{}/healthz", daemon.base),
                None,
                None,
            )
            .is_ok_and(|(status, _)| status == 200)
        });
        daemon.wait_until("the startup backup is listed", |daemon| {
            daemon.snapshots("kind=startup").len() == 1
        });
        daemon
    }

    fn sql(&self, sql: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(&self.db)
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("running the sqlite3 shell (install Debian's `sqlite3`)");
        assert!(out.status.success(), "sqlite3 {sql:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn rows(&self) -> i64 {
        let n = self.sql(&format!("SELECT count(*) FROM {TABLE}"));
        n.parse().unwrap_or_else(|_| panic!("count {n:?}"))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The running daemon; killed when dropped, its log printed if the test failed.
struct Daemon {
    child: Child,
    log: PathBuf,
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Daemon {
    /// Polls `ready` for up to 30 s, failing early when the daemon exits.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited with {status} before {what}");
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            sleep(Duration::from_millis(100));
        }
    }

    /// `GET /api/v1/snapshots?QUERY` with the read token.
    fn snapshots(&self, query: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/snapshots?source=shop&{query}", self.base);
        let (status, body) =
            http(&self.agent, "GET", &url, None, Some(&self.token)).expect("GET snapshots");
        assert_eq!(status, 200, "GET {url}: {body}");
        match serde_json::from_str(&body) {
            Ok(Value::Array(rows)) => rows,
            _ => panic!("GET {url} is not a JSON array: {body}"),
        }
    }

    /// Step 9: SIGTERM, and the exit status within 30 s.
    fn stop(mut self) -> ExitStatus {
        #[cfg(unix)]
        {
            let kill = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("running kill");
            assert!(kill.success(), "kill -TERM failed");
        }
        #[cfg(not(unix))]
        self.child.kill().expect("stopping the daemon");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the daemon") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop within 30 s of SIGTERM"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- daemon log ---\n{log}--- end of daemon log ---");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal W3C WebDriver client.

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .into()
}

/// One request: the status and the body, or the transport error.
fn http(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Result<(u16, String), ureq::Error> {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut response = match method {
        "GET" | "DELETE" => {
            let r = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            match &auth {
                Some(a) => r.header("Authorization", a).call()?,
                None => r.call()?,
            }
        }
        _ => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(&json!({})).to_string())?,
    };
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    Ok((status, text))
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    fn start(log: &Path) -> Self {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let mut driver = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let agent = agent();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http(
                &agent,
                "GET",
                &format!("{}/status", driver.base),
                None,
                None,
            )
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return driver;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status}: see {}", log.display());
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver error: its code ("no such element", "stale element reference") and message.
#[derive(Debug)]
struct WdError(String);

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session on the daemon's pages; ended when dropped.
struct Browser {
    agent: ureq::Agent,
    session: String,
    site: String,
}

impl Browser {
    fn open(driver: &Driver, profile: &Path, site: &str) -> Self {
        let agent = agent();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-proxy-server",
                    format!("--user-data-dir={}", profile.display()), "--window-size=1200,1400",
                ],
            },
        }}});
        let url = format!("{}/session", driver.base);
        let (status, body) = http(&agent, "POST", &url, Some(&caps), None).expect("new session");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(id) = v["value"]["sessionId"].as_str() else {
            panic!("chromedriver could not start {CHROMIUM} ({status}): {body}");
        };
        Self {
            session: format!("{}/session/{id}", driver.base),
            agent,
            site: site.to_string(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.session);
        let (status, text) = http(&self.agent, method, &url, body.as_ref(), None)
            .map_err(|e| WdError(format!("{method} {path}: {e}")))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| WdError(format!("{method} {path}: {e}: {text}")))?;
        if status != 200 {
            return Err(WdError(format!(
                "{}: {}",
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"].as_str().unwrap_or(&text)
            )));
        }
        Ok(v["value"].clone())
    }

    #[track_caller]
    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} on {}: {e:?}", self.path()))
    }

    fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.site);
        self.must("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current page's path and query.
    fn path(&self) -> String {
        let url = match self.call("GET", "/url", None) {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => e.0,
        };
        url.strip_prefix(&self.site).unwrap_or(&url).to_string()
    }

    fn try_find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The first element matching `css`, waiting up to 10 s for it to appear.
    #[track_caller]
    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            if Instant::now() > deadline {
                panic!("no {css} on {}:\n{}", self.path(), self.page_text());
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn ids(v: Value) -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        Self::ids(self.must(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        ))
    }

    #[track_caller]
    fn find_in(&self, el: &str, css: &str) -> String {
        let v = self.must(
            "POST",
            &format!("/element/{el}/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .expect("an element reference")
            .to_string()
    }

    fn click(&self, el: &str) {
        self.must("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    fn type_text(&self, el: &str, text: &str) {
        self.must(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, el: &str) -> String {
        let v = self.must("GET", &format!("/element/{el}/text"), None);
        v.as_str().unwrap_or_default().to_string()
    }

    fn page_text(&self) -> String {
        self.try_find("body")
            .and_then(|b| self.call("GET", &format!("/element/{b}/text"), None).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The cells of the first row matching `rows` whose first cell is `first`.
    #[track_caller]
    fn table_row(&self, rows: &str, first: &str) -> Vec<String> {
        self.find_all(rows)
            .iter()
            .map(|r| {
                let v = self.must(
                    "POST",
                    &format!("/element/{r}/elements"),
                    Some(json!({"using": "css selector", "value": "td"})),
                );
                Self::ids(v)
                    .iter()
                    .map(|c| self.text(c).trim().to_string())
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells.first().map(String::as_str) == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in {rows}:\n{}", self.page_text()))
    }

    fn screenshot(&self) -> Vec<u8> {
        let v = self.must("GET", "/screenshot", None);
        base64_decode(v.as_str().expect("screenshot as base64"))
    }

    /// The whole page, also below the window, as a PNG (Chromium's own capture over
    /// chromedriver's DevTools passthrough; the window alone where that is refused).
    fn page_screenshot(&self) -> Vec<u8> {
        let size = self.js(
            "const d = document.documentElement; \
             return [Math.max(d.scrollWidth, window.innerWidth), d.scrollHeight];",
            json!([]),
        );
        let (w, h) = (
            size[0].as_f64().unwrap_or(0.0),
            size[1].as_f64().unwrap_or(0.0),
        );
        let params = json!({"cmd": "Page.captureScreenshot", "params": {
            "format": "png", "captureBeyondViewport": true,
            "clip": {"x": 0, "y": 0, "width": w, "height": h.min(8000.0), "scale": 1},
        }});
        match self.call("POST", "/goog/cdp/execute", Some(params)) {
            Ok(v) if v["data"].is_string() => base64_decode(v["data"].as_str().unwrap_or("")),
            _ => self.screenshot(),
        }
    }

    /// Sets the browser window's size, then checks the page got that width.
    #[track_caller]
    fn resize(&self, width: u32, height: u32) {
        self.must(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
        let inner = self.js("return window.innerWidth;", json!([]));
        assert_eq!(
            inner.as_u64(),
            Some(u64::from(width)),
            "a {width}x{height} window"
        );
    }

    /// Runs `script` (a function body; its arguments are `arguments[0]`...) in the page.
    #[track_caller]
    fn js(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    #[track_caller]
    fn log_in(&self, user: &str) {
        self.submit_login(user, PASSWORD);
        self.wait_path(|p| p == "/");
        let who = self.text(&self.find("#whoami"));
        assert!(who.starts_with(user), "logged in as {who:?}, not {user}");
    }

    #[track_caller]
    fn log_in_fails(&self, user: &str, password: &str) {
        self.submit_login(user, password);
        let error = self.text(&self.find("#login-error"));
        assert_eq!(error, "Wrong user name or password.");
        assert!(self.try_find("#whoami").is_none());
    }

    fn submit_login(&self, user: &str, password: &str) {
        self.goto("/login");
        self.type_text(&self.find("input[name=username]"), user);
        self.type_text(&self.find("input[name=password]"), password);
        self.click(&self.find("#login"));
    }

    #[track_caller]
    fn log_out(&self) {
        // From the status page, whatever page is open (a login page has no menu).
        self.goto("/");
        self.click(&self.find("form.who button"));
        self.wait_path(|p| p == "/login");
        self.goto("/");
        self.wait_path(|p| p == "/login");
    }

    #[track_caller]
    fn wait_path(&self, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !want(&self.path()) {
            assert!(
                Instant::now() < deadline,
                "stuck on {}:\n{}",
                self.path(),
                self.page_text()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// On a job page: reloads until the job is `ok` (60 s at most); returns the job's id.
    #[track_caller]
    fn wait_job(&self, kind: &str) -> String {
        self.wait_path(|p| p.starts_with("/jobs/"));
        let path = self.path();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The page refreshes itself, so an element can go stale between two calls.
            let state = self.try_find("#job").and_then(|j| {
                self.call("GET", &format!("/element/{j}/attribute/data-state"), None)
                    .ok()
            });
            match state.as_ref().and_then(Value::as_str) {
                Some("ok") => break,
                Some(s @ ("failed" | "abandoned")) => {
                    panic!("{kind} job {path} {s}:\n{}", self.page_text())
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{kind} job {path} not done in 60 s:\n{}",
                self.page_text()
            );
            sleep(Duration::from_millis(250));
            let _ = self.call("POST", "/refresh", Some(json!({})));
        }
        let title = self.text(&self.find("#job h1"));
        assert!(
            title.to_lowercase().starts_with(kind),
            "{path} is a {title:?} job, not {kind}"
        );
        path.trim_start_matches("/jobs/").to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(&self.agent, "DELETE", &self.session, None, None);
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:#x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
