//! A daemon in process: a real SQLite database, a real local repository, the state file, and
//! the router called without a socket.

#![allow(dead_code)]

pub mod net;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use backstop_app::repository::Location;
use backstop_engine::InitOptions;
use backstop_format::Timestamp;
use backstop_policy::{Lifecycle, Policy, Schedule};
use backstop_server::notify::Notifier;
use backstop_server::state::{Role, Scope, State};
use backstop_server::{App, AppState, Setup, SourceSpec, Tasks, router};
use tower::ServiceExt as _;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub app: AppState,
}

/// A shop database: customers and orders.
pub fn make_db(path: &std::path::Path, customers: i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id), total REAL);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..customers {
        tx.execute(
            "INSERT INTO customers(id, name) VALUES (?1, ?2)",
            rusqlite::params![i, format!("customer {i}")],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO orders(customer, total) VALUES (?1, ?2)",
            rusqlite::params![i, i as f64 * 1.5],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

pub fn count(path: &std::path::Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The setup of a daemon with one SQLite source `shop` (every 6h) and one files source
/// `docs`; no repository-wide tasks unless `tasks` says so.
pub fn setup_in(dir: &std::path::Path, tasks: Tasks) -> Setup {
    let db = dir.join("shop.db");
    if !db.exists() {
        make_db(&db, 200);
    }
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("price-list.txt"), "apples 2.10\npears 2.40\n").unwrap();
    std::fs::write(docs.join("notes.txt"), "open 9-17\n").unwrap();
    let location = Location::resolve(
        Some(&dir.join("repo").display().to_string()),
        &Default::default(),
    )
    .unwrap();
    let repo = match backstop_app::repository::open(&location, None) {
        Ok(r) => r,
        Err(_) => backstop_app::repository::init(
            &location,
            &InitOptions::new(None, Timestamp::now(), "test".into()),
        )
        .unwrap(),
    };
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let (db2, docs2) = (db.clone(), docs.clone());
    let hold = dir.join("hold");
    Setup {
        repo: Arc::new(repo),
        repo_location: dir.join("repo").display().to_string(),
        sources: vec![
            SourceSpec {
                name: "shop".into(),
                kind: "sqlite".into(),
                description: Some("the shop database".into()),
                tags: vec![],
                skip_unchanged: false,
                schedule: Some(Schedule::every("6h").unwrap()),
                drill_max_age: Some(jiff::SignedDuration::from_hours(24 * 7)),
                live_path: Some(db.clone()),
                ping_url: None,
                copy_to: vec![],
                rules: Default::default(),
                server_drill: None,
                server: None,
                export: None,
                validation: Vec::new(),
            },
            SourceSpec {
                name: "docs".into(),
                kind: "files".into(),
                description: None,
                tags: vec![],
                skip_unchanged: false,
                schedule: None,
                drill_max_age: None,
                live_path: None,
                ping_url: None,
                copy_to: vec![],
                rules: Default::default(),
                server_drill: None,
                server: None,
                export: None,
                validation: Vec::new(),
            },
        ],
        build_source: Arc::new(move |name: &str| {
            // A test holds backups back while the file `hold` exists.
            let started = std::time::Instant::now();
            while hold.exists() && started.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            match name {
                "shop" => backstop_app::sources::sqlite(db2.clone(), "shop.db".into()),
                _ => backstop_app::sources::files(vec![docs2.clone()], vec![]),
            }
        }),
        time_zone: jiff::tz::TimeZone::UTC,
        retention: backstop_app::retention::Retention::only(Policy::small_business_default()),
        lifecycle: Lifecycle::default(),
        tasks,
        webhook: None,
        scratch,
        host: "till-1".into(),
        program: "backstop test".into(),
        passphrase: None,
    }
}

/// No repository-wide tasks, no startup backup.
pub fn no_tasks() -> Tasks {
    Tasks {
        startup_backup: false,
        verify: None,
        verify_data: None,
        drill: None,
        forget: None,
        prune: None,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(|_, _| {})
}

/// [`fixture`] with its setup changed by `change` (given the fixture's folder) first.
pub fn fixture_with(change: impl FnOnce(&std::path::Path, &mut Setup)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    change(dir.path(), &mut setup);
    let state = State::open(&dir.path().join("state.db")).unwrap();
    let app = AppState::new(App::new(
        Arc::new(setup),
        Arc::new(state),
        Arc::new(Notifier::new()),
    ));
    Fixture {
        db: dir.path().join("shop.db"),
        dir,
        app,
    }
}

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Fixture {
    pub fn token(&self, name: &str, scope: Scope) -> String {
        self.app.state.add_token(name, scope).unwrap()
    }

    /// A logged-in browser session: (cookie header, csrf token).
    pub fn session(&self, name: &str, role: Role) -> (String, String) {
        self.app
            .state
            .add_user(name, role, "correct horse battery")
            .unwrap();
        let s = self
            .app
            .state
            .create_session(name, jiff::SignedDuration::from_hours(1), Timestamp::now())
            .unwrap();
        (format!("backstop_session={}", s.id), s.csrf)
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let r = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(
            Request::get(path)
                .header("Authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: serde_json::Value) -> Resp {
        self.send(
            Request::post(path)
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn page(&self, path: &str, cookie: &str) -> Resp {
        self.send(
            Request::get(path)
                .header("Cookie", cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn form(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Resp {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        self.send(
            Request::post(path)
                .header("Cookie", cookie)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(Body::from(body.join("&")))
                .unwrap(),
        )
        .await
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
