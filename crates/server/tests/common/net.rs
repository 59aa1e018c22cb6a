//! A daemon served on 127.0.0.1 (real sockets, real peer addresses) and a small HTTP/1.1
//! client that can choose its own source address and send any header.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use backstop_server::state::State;
use backstop_server::{ServeOptions, serve_on};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Resp, no_tasks, setup_in};

/// A daemon serving on a port of 127.0.0.1 until dropped.
pub struct Daemon {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The daemon's state file, opened a second time (as `backstop user add` would).
    pub state: State,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    /// Starts a daemon; `prepare` sees the state file before it starts and `opts` may change
    /// the options.
    pub async fn start(
        prepare: impl FnOnce(&State, &std::path::Path),
        opts: impl FnOnce(&mut ServeOptions),
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state.db");
        let state = State::open(&state_path).unwrap();
        prepare(&state, dir.path());
        let mut setup = setup_in(dir.path(), no_tasks());
        // No scheduled backups: the tests decide what runs.
        for s in &mut setup.sources {
            s.schedule = None;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut o = ServeOptions::new(addr);
        opts(&mut o);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = State::open(&state_path).unwrap();
        let task = tokio::spawn(serve_on(listener, setup, served, o, async move {
            let _ = rx.await;
        }));
        Daemon {
            addr,
            dir,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A request from 127.0.0.1 (or from `from`, another loopback address).
    pub async fn send(&self, req: Req<'_>) -> Resp {
        http(self.addr, req).await
    }

    /// Stops the daemon and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One request.
#[derive(Clone, Default)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: String,
    /// Connect from this local address (a loopback address other than 127.0.0.1).
    pub from: Option<IpAddr>,
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str) -> Self {
        Req {
            method: "GET",
            path,
            ..Req::default()
        }
    }

    pub fn post(path: &'a str, body: impl Into<String>) -> Self {
        Req {
            method: "POST",
            path,
            body: body.into(),
            ..Req::default()
        }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    pub fn json(self) -> Self {
        self.header("Content-Type", "application/json")
    }

    pub fn form(self) -> Self {
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    pub fn from(mut self, ip: &str) -> Self {
        self.from = Some(ip.parse().unwrap());
        self
    }
}

/// A login form body.
pub fn login_body(user: &str, password: &str) -> String {
    format!(
        "username={}&password={}",
        super::urlencode(user),
        super::urlencode(password)
    )
}

/// Sends one HTTP/1.1 request on a new connection and reads the whole answer.
pub async fn http(addr: SocketAddr, req: Req<'_>) -> Resp {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = req.from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading a large body and close.
    let _ = stream.write_all(req.body.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let code: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status: StatusCode::from_u16(code).unwrap(),
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}
