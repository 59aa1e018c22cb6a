//! One S3 request at a time: signing (rusty-s3 presigned URLs), sending (one shared
//! `ureq::Agent`, so connections are pooled across threads) and turning transport failures
//! and error answers into [`Error`]s that name the endpoint and bucket but never a secret.
//!
//! Nothing here retries: [`crate::Retrying`] does, from [`Error::is_transient`].

use std::io::{self, Read};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::http::{self, HeaderMap, Method, Response};
use ureq::{Agent, Body};
use url::Url;

use super::options::S3Options;
use crate::{Error, Result};

/// How long a signed URL stays valid. S3 checks it when a request starts, so a long
/// upload that started in time completes.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Most bytes of an error answer read for its code and message.
const ERROR_BODY_LIMIT: u64 = 64 << 10;

/// A signed request, ready to send.
pub(super) struct Signed {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
}

/// An S3 endpoint and bucket with the credentials to use them.
pub(super) struct Client {
    agent: Agent,
    bucket: Bucket,
    credentials: Credentials,
    /// The endpoint as shown in messages: scheme, host and port.
    endpoint: String,
    /// Text that must never appear in a message: the secret and the session token.
    secrets: Vec<String>,
}

impl Client {
    pub fn new(options: &S3Options) -> Result<Self> {
        let endpoint = endpoint_url(options)?;
        let style = if options.path_style() {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint.clone(),
            style,
            options.location.bucket.clone(),
            options.region.clone(),
        )
        .map_err(|e| {
            Error::Config(format!(
                "cannot address bucket {} at {}: {e}",
                options.location.bucket,
                shown_endpoint(&endpoint)
            ))
        })?;
        let credentials = match &options.session_token {
            Some(token) => Credentials::new_with_token(
                &options.access_key_id,
                &options.secret_access_key,
                token,
            ),
            None => Credentials::new(&options.access_key_id, &options.secret_access_key),
        };
        let secrets = [
            Some(&options.secret_access_key),
            options.session_token.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
        Ok(Client {
            agent: agent(options),
            bucket,
            credentials,
            endpoint: shown_endpoint(&endpoint),
            secrets,
        })
    }

    /// The endpoint as messages show it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    #[cfg(feature = "test-server")]
    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    /// Signs `action` with `method` and the (unsigned) `headers`.
    fn sign<'a>(
        &self,
        method: Method,
        action: impl S3Action<'a>,
        headers: &[(&'static str, String)],
    ) -> Signed {
        Signed {
            method,
            url: action.sign(SIGNATURE_LIFETIME),
            headers: headers.to_vec(),
        }
    }

    pub fn head_object(&self, key: &str) -> Signed {
        let action = self.bucket.head_object(Some(&self.credentials), key);
        self.sign(Method::HEAD, action, &[])
    }

    pub fn get_object(&self, key: &str, headers: &[(&'static str, String)]) -> Signed {
        let action = self.bucket.get_object(Some(&self.credentials), key);
        self.sign(Method::GET, action, headers)
    }

    pub fn put_object(&self, key: &str, headers: &[(&'static str, String)]) -> Signed {
        let action = self.bucket.put_object(Some(&self.credentials), key);
        self.sign(Method::PUT, action, headers)
    }

    /// A PUT whose object carries `retention` from now on (S3 Object Lock): the mode and the
    /// retain-until date are signed headers; `headers` (unsigned) must hold `content-md5`,
    /// which S3 requires with a retention.
    pub fn put_object_retained(
        &self,
        key: &str,
        retention: crate::Retention,
        headers: &[(&'static str, String)],
    ) -> Signed {
        let until = jiff::Timestamp::now()
            .saturating_add(jiff::SignedDuration::from_hours(
                24 * i64::from(retention.days),
            ))
            .expect("a date within jiff's range");
        let until = until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mode = retention.mode.header();
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action.headers_mut().insert("x-amz-object-lock-mode", mode);
        action
            .headers_mut()
            .insert("x-amz-object-lock-retain-until-date", until.clone());
        let mut all = headers.to_vec();
        all.push(("x-amz-object-lock-mode", mode.to_owned()));
        all.push(("x-amz-object-lock-retain-until-date", until));
        self.sign(Method::PUT, action, &all)
    }

    /// A PutObjectRetention of the object's current version (`PUT KEY?retention`); its body
    /// is [`retention_body`] and `headers` (unsigned) must hold its `content-md5`.
    pub fn put_object_retention(&self, key: &str, headers: &[(&'static str, String)]) -> Signed {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action.query_mut().insert("retention", "");
        self.sign(Method::PUT, action, headers)
    }

    pub fn delete_object(&self, key: &str) -> Signed {
        let action = self.bucket.delete_object(Some(&self.credentials), key);
        self.sign(Method::DELETE, action, &[])
    }

    /// One ListObjectsV2 page of the keys under `prefix`.
    pub fn list_objects(
        &self,
        prefix: &str,
        delimiter: bool,
        page_size: u16,
        token: Option<&str>,
    ) -> Signed {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        if !prefix.is_empty() {
            action.with_prefix(prefix);
        }
        if delimiter {
            action.with_delimiter("/");
        }
        action.with_max_keys(usize::from(page_size));
        if let Some(token) = token {
            action.with_continuation_token(token);
        }
        self.sign(Method::GET, action, &[])
    }

    /// Signs a CreateBucket request (for the test server; backends never create buckets).
    #[cfg(feature = "test-server")]
    pub fn create_bucket(&self, object_lock: bool) -> (Signed, String) {
        let mut action = self.bucket.create_bucket(&self.credentials);
        let mut headers = Vec::new();
        if object_lock {
            action
                .headers_mut()
                .insert("x-amz-bucket-object-lock-enabled", "true");
            headers.push(("x-amz-bucket-object-lock-enabled", "true".to_owned()));
        }
        let body = action.body();
        (self.sign(Method::PUT, action, &headers), body)
    }

    /// Sends `request` with `body` (if any) and returns the answer, whatever its status.
    /// A transport failure becomes an error saying `context`.
    pub fn send(
        &self,
        request: Signed,
        body: Option<&[u8]>,
        context: &dyn Fn() -> String,
    ) -> Result<Response<Body>> {
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        // The URL carries a signature; an error about it must not be shown.
        let bad_request = |_| Error::Other(format!("{}: cannot build the request", context()));
        let sent = match body {
            Some(body) => self.agent.run(builder.body(body).map_err(bad_request)?),
            None => self.agent.run(builder.body(()).map_err(bad_request)?),
        };
        sent.map_err(|e| self.transport_error(e, context))
    }

    /// Reads an answer's body, failing if it is longer than `limit` bytes.
    pub fn read_body(
        &self,
        response: &mut Response<Body>,
        limit: u64,
        context: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
        let body = read_up_to(response, limit.saturating_add(1))
            .map_err(|e| self.transport_error(e.into(), context))?;
        if body.len() as u64 > limit {
            return Err(Error::Other(format!(
                "{}: the answer is longer than the {limit} bytes expected",
                context()
            )));
        }
        Ok(body)
    }

    /// The error for an answer with an unexpected status, its body read for S3's error code
    /// and message.
    pub fn status_error(
        &self,
        mut response: Response<Body>,
        location: &str,
        context: &dyn Fn() -> String,
    ) -> Error {
        let status = response.status().as_u16();
        // Only the start matters; a lost connection leaves the code unknown.
        let body = read_up_to(&mut response, ERROR_BODY_LIMIT).unwrap_or_default();
        let (code, message) = error_code(&String::from_utf8_lossy(&body));
        let (code, message) = (self.redact(&code), self.redact(&message));
        if let Some(e) = self.wrong_region(response.headers()) {
            return e;
        }
        match (status, code.as_str()) {
            (404, "NoSuchBucket") => Error::BucketNotFound {
                bucket: self.bucket.name().to_owned(),
                endpoint: self.endpoint.clone(),
            },
            (401 | 403, _) => Error::AccessDenied {
                location: location.to_owned(),
                detail: match (code.is_empty(), message.is_empty()) {
                    // A HEAD answer has no body to say why.
                    (true, _) => format!("the server answered {status} without details"),
                    (false, true) => code,
                    (false, false) => format!("{code}: {message}"),
                },
            },
            _ => Error::Remote {
                context: context(),
                status,
                code,
                message,
            },
        }
    }

    /// The error for an answer that says the bucket lives in another region.
    fn wrong_region(&self, headers: &HeaderMap) -> Option<Error> {
        let region = headers.get("x-amz-bucket-region")?.to_str().ok()?;
        (region != self.bucket.region()).then(|| {
            Error::Config(format!(
                "bucket {} is in region {region}, not {}: configure that region",
                self.bucket.name(),
                self.bucket.region()
            ))
        })
    }

    /// Words a transport failure. Connection failures say the endpoint is unreachable;
    /// failures after connecting become I/O errors whose kind says whether retrying may
    /// help. No URL is ever included: a signed URL is a credential while it is valid.
    fn transport_error(&self, e: ureq::Error, context: &dyn Fn() -> String) -> Error {
        let unreachable = |cause: String| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            cause,
        };
        let lost =
            |kind: io::ErrorKind, what: String| Error::io(context(), io::Error::new(kind, what));
        match e {
            ureq::Error::Io(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => unreachable("connection refused".to_owned()),
                io::ErrorKind::TimedOut => lost(io::ErrorKind::TimedOut, e.to_string()),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected => lost(
                    io::ErrorKind::ConnectionReset,
                    format!("connection lost: {e}"),
                ),
                _ => Error::io(context(), e),
            },
            ureq::Error::HostNotFound => unreachable("host not found".to_owned()),
            ureq::Error::ConnectionFailed => unreachable("connection failed".to_owned()),
            ureq::Error::Timeout(t @ (ureq::Timeout::Connect | ureq::Timeout::Resolve)) => {
                unreachable(format!("timed out ({t})"))
            }
            ureq::Error::Timeout(t) => lost(
                io::ErrorKind::TimedOut,
                format!("the server did not answer in time ({t})"),
            ),
            ureq::Error::Protocol(p) => lost(
                io::ErrorKind::ConnectionReset,
                format!("broken HTTP exchange: {p}"),
            ),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
                Error::Other(format!(
                    "{}: TLS with {} failed: {}",
                    context(),
                    self.endpoint,
                    self.redact(&e.to_string())
                ))
            }
            // These may quote the URL, which carries a signature.
            ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => {
                Error::Other(format!("{}: invalid request URL", context()))
            }
            e => Error::Other(format!("{}: {}", context(), self.redact(&e.to_string()))),
        }
    }

    /// `text` with any secret replaced.
    fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "<redacted>")
        })
    }
}

/// The first `limit` bytes of an answer's body (all of it if shorter).
fn read_up_to(response: &mut Response<Body>, limit: u64) -> io::Result<Vec<u8>> {
    // Allocated up front, but not on a bogus length's word past what packs come to.
    let expected = response
        .body()
        .content_length()
        .unwrap_or(0)
        .min(limit)
        .min(256 << 20);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    // ureq's own limit (10 MiB by default) is lifted: `take` sets ours, and stops reading at
    // it instead of failing.
    let reader = response.body_mut().with_config().limit(u64::MAX).reader();
    reader.take(limit).read_to_end(&mut body)?;
    Ok(body)
}

/// The one agent of a storage, shared by its threads: it pools connections (up to 16 kept
/// open, enough for the engine's parallel reads and writes).
fn agent(options: &S3Options) -> Agent {
    let config = Agent::config_builder()
        // Error answers are read for their code; redirects mean a wrong region.
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        // Progress, not duration: a slow transfer that keeps moving is never cut off.
        .timeout_per_read(Some(options.io_timeout))
        .timeout_per_write(Some(options.io_timeout))
        .max_idle_connections(16)
        .max_idle_connections_per_host(16)
        .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
        .build();
    Agent::new_with_config(config)
}

/// The endpoint to send requests to: the configured one, checked, or AWS's for the region.
fn endpoint_url(options: &S3Options) -> Result<Url> {
    let text = match &options.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => format!("https://s3.{}.amazonaws.com", options.region),
    };
    let refuse = |why: &str| {
        Err(Error::Config(format!(
            "invalid S3 endpoint {text:?}: {why}"
        )))
    };
    let Ok(url) = Url::parse(&text) else {
        return refuse("not a URL (expected http://HOST[:PORT] or https://HOST[:PORT])");
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Not quoted: the text holds a password.
        return Err(Error::Config(
            "invalid S3 endpoint: credentials do not belong in it; use the access key settings"
                .to_owned(),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return refuse("expected http://HOST[:PORT] or https://HOST[:PORT]");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("a query or fragment is not allowed");
    }
    Ok(url)
}

/// Scheme, host and port (and a path, if the endpoint has one) for messages.
fn shown_endpoint(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// The `Code` and `Message` of an S3 error document (empty where missing).
fn error_code(xml: &str) -> (String, String) {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find('<')?;
        Some(unescape(&xml[start..end]))
    };
    let mut message = element("Message").unwrap_or_default();
    if let Some((cut, _)) = message.char_indices().nth(300) {
        message.truncate(cut);
        message.push_str("...");
    }
    (element("Code").unwrap_or_default(), message)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature &amp; more.</Message><Resource>/b/x</Resource></Error>"#;
        assert_eq!(
            error_code(xml),
            (
                "SignatureDoesNotMatch".to_owned(),
                "The request signature & more.".to_owned()
            )
        );
        assert_eq!(
            error_code("<html>proxy error</html>"),
            (String::new(), String::new())
        );
    }

    #[test]
    fn addressing_styles() {
        let location = super::super::S3Location::parse("s3://bucket/p").unwrap();
        let url = |endpoint: Option<&str>, addressing| {
            let mut o = S3Options::new(location.clone(), "k", "s");
            o.endpoint = endpoint.map(str::to_owned);
            o.addressing = addressing;
            let url = Client::new(&o).unwrap().get_object("p/index/ab", &[]).url;
            format!("{}{}", url.host_str().unwrap(), url.path())
        };
        use super::super::Addressing::*;
        assert_eq!(
            url(None, Auto),
            "bucket.s3.us-east-1.amazonaws.com/p/index/ab"
        );
        assert_eq!(
            url(None, Path),
            "s3.us-east-1.amazonaws.com/bucket/p/index/ab"
        );
        assert_eq!(
            url(Some("http://127.0.0.1:9000"), Auto),
            "127.0.0.1/bucket/p/index/ab"
        );
        assert_eq!(
            url(Some("https://s3.example.com"), VirtualHost),
            "bucket.s3.example.com/p/index/ab"
        );
    }

    #[test]
    fn endpoints() {
        let location = super::super::S3Location::parse("s3://bucket").unwrap();
        let mut o = S3Options::new(location, "k", "s");
        assert_eq!(
            endpoint_url(&o).unwrap().as_str(),
            "https://s3.us-east-1.amazonaws.com/"
        );
        for (bad, says) in [
            ("127.0.0.1:9000", "expected http"),
            ("ftp://host", "expected http"),
            ("http://user:pw@host", "credentials"),
            ("http://host/?x=1", "query"),
        ] {
            o.endpoint = Some(bad.to_owned());
            let err = endpoint_url(&o).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("pw"), "{err}");
        }
    }
}
