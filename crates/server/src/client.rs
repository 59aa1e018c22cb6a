//! Who is on the other end of a request: the client's address (for login rate limits and the
//! audit log) and whether a browser sent the request from this daemon's own page.
//!
//! The address is the socket peer's. `X-Forwarded-For` counts only when the peer is one of the
//! configured `trusted_proxies`: then the client is the rightmost address in the header that is
//! not itself a trusted proxy, so a client cannot choose its own address by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;

use crate::shared::AppState;

/// The client's address as the daemon sees it; `unknown` when served without peer addresses
/// (the router called in process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The request came through a trusted proxy.
    pub via_proxy: bool,
}

impl ClientAddr {
    /// The address as text, `unknown` without one.
    pub fn label(&self) -> String {
        self.ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// The client's address from the peer and, behind a trusted proxy, `X-Forwarded-For`.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> ClientAddr {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return ClientAddr {
            ip: None,
            via_proxy: false,
        };
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&peer) {
        return ClientAddr {
            ip: Some(peer),
            via_proxy: false,
        };
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // A hop the proxy did not write: stop at the last address it vouches for.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    ClientAddr {
        ip: Some(client),
        via_proxy: true,
    }
}

/// An address from `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(client_addr(peer, &parts.headers, &app.trusted_proxies))
    }
}

/// Why a browser's request looks sent from another site, or `None` if it does not.
///
/// `Sec-Fetch-Site` (sent by current browsers) decides when present: only `same-origin` (and
/// `none`, a request the user typed) pass. Otherwise an `Origin` header must name the host the
/// request was sent to (`X-Forwarded-Host` behind a trusted proxy). A request with neither
/// header does not come from a browser form of another site.
pub fn cross_site(headers: &HeaderMap, via_proxy: bool) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        return (!matches!(site, "same-origin" | "none"))
            .then(|| format!("sent from another site (Sec-Fetch-Site: {site})"));
    }
    let origin = headers.get(ORIGIN)?.to_str().unwrap_or("?");
    let host = via_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match authority {
        Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host) => None,
        _ => Some(format!("sent from another site (Origin: {origin})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let direct = client_addr(Some(ip("198.51.100.1")), &h, &[]);
        assert_eq!(direct.ip, Some(ip("198.51.100.1")));
        let proxied = client_addr(Some(ip("127.0.0.1")), &h, &[ip("127.0.0.1")]);
        assert_eq!(proxied.ip, Some(ip("203.0.113.9")));
        assert!(proxied.via_proxy);
        // A client that writes its own header in front of the proxy's does not choose.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 203.0.113.9")]);
        let r = client_addr(Some(ip("127.0.0.1")), &h, &[ip("127.0.0.1")]);
        assert_eq!(r.ip, Some(ip("203.0.113.9")));
        // Chained proxies are skipped; garbage stops the walk at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2")]);
        let r = client_addr(
            Some(ip("127.0.0.1")),
            &h,
            &[ip("127.0.0.1"), ip("10.0.0.2")],
        );
        assert_eq!(r.ip, Some(ip("203.0.113.9")));
        let h = headers(&[("x-forwarded-for", "nonsense")]);
        let r = client_addr(Some(ip("::ffff:127.0.0.1")), &h, &[ip("127.0.0.1")]);
        assert_eq!(r.ip, Some(ip("127.0.0.1")));
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:443")]);
        let r = client_addr(Some(ip("127.0.0.1")), &h, &[ip("127.0.0.1")]);
        assert_eq!(r.ip, Some(ip("2001:db8::7")));
        assert_eq!(client_addr(None, &h, &[]).label(), "unknown");
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-origin")]), false).is_none());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")]), false).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")]), false).is_some());
        let same = headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(cross_site(&same, false).is_none());
        let other = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(cross_site(&other, false).unwrap().contains("evil.example"));
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "a")]), false).is_some());
        let proxied = headers(&[
            ("origin", "https://backup.shop.example"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "backup.shop.example"),
        ]);
        assert!(cross_site(&proxied, true).is_none());
        assert!(cross_site(&proxied, false).is_some());
        assert!(cross_site(&headers(&[("host", "a")]), false).is_none());
    }
}
