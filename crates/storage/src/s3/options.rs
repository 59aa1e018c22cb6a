//! What an [`S3Storage`](super::S3Storage) needs to know: where (endpoint, region, bucket,
//! prefix), as whom (keys), and how patient to be (timeouts). Secrets never reach `Debug`.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result};

/// How requests name the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// Path style with an explicit endpoint (what S3-compatible servers expect, and the
    /// only style that works with an IP address); virtual-host style with AWS, except for
    /// bucket names with dots, whose host names AWS's certificates do not cover.
    #[default]
    Auto,
    /// `ENDPOINT/BUCKET/KEY`.
    Path,
    /// `BUCKET.ENDPOINT-HOST/KEY`.
    VirtualHost,
}

/// A bucket and a key prefix, as written in an `s3://BUCKET/PREFIX` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name, valid per AWS's naming rules.
    pub bucket: String,
    /// The key prefix the repository's objects live under, without leading or trailing
    /// `/`; empty for the bucket's root.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (the scheme in any case; slashes around
    /// the prefix are dropped), checking the bucket name and the prefix.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
            .map(|_| &text[5..])
            .ok_or_else(|| {
                Error::Config(format!("S3 location {text:?} does not start with s3://"))
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let location = S3Location {
            bucket: bucket.to_owned(),
            prefix: normalize_prefix(prefix)?,
        };
        check_bucket_name(&location.bucket)?;
        Ok(location)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

/// Everything an [`S3Storage`](super::S3Storage) is configured with.
///
/// `Debug` shows the last four characters of the access key id and hides the secret
/// access key and the session token.
#[derive(Clone)]
pub struct S3Options {
    /// The service's URL (`http://` or `https://`, host, optional port and path), for an
    /// S3-compatible server; `None` means AWS (`https://s3.REGION.amazonaws.com`).
    pub endpoint: Option<String>,
    /// The region requests are signed for; [`S3Options::DEFAULT_REGION`] unless set.
    pub region: String,
    /// The bucket and key prefix of the repository.
    pub location: S3Location,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Set with temporary credentials (AWS STS).
    pub session_token: Option<String>,
    pub addressing: Addressing,
    /// How long connecting may take (name resolution, TCP, TLS), per attempt.
    pub connect_timeout: Duration,
    /// How long a request may wait for the server without a byte moving in either
    /// direction before it fails; a transfer that keeps moving is never cut off.
    pub io_timeout: Duration,
    /// Keys asked for per ListObjectsV2 page (S3 answers at most 1000).
    pub list_page_size: u16,
}

impl S3Options {
    /// The region used when none is configured, as in AWS's own tools.
    pub const DEFAULT_REGION: &'static str = "us-east-1";
    /// Default of [`S3Options::connect_timeout`]: an endpoint that is down fails quickly.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default of [`S3Options::io_timeout`].
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);

    /// Options for `location` on AWS with the given keys, everything else at its default.
    pub fn new(
        location: S3Location,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        S3Options {
            endpoint: None,
            region: Self::DEFAULT_REGION.to_owned(),
            location,
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            addressing: Addressing::Auto,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            io_timeout: Self::DEFAULT_IO_TIMEOUT,
            list_page_size: 1000,
        }
    }

    /// Options for `location` from the usual AWS variables, looked up with `var` (pass
    /// `|name| std::env::var(name).ok()` for the process environment; tests pass a map):
    ///
    /// - `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: the endpoint (unset: AWS);
    /// - `AWS_REGION`, else `AWS_DEFAULT_REGION`: the region (unset: `us-east-1`);
    /// - `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`: required;
    /// - `AWS_SESSION_TOKEN`: optional.
    ///
    /// Empty values count as unset.
    pub fn from_env(location: S3Location, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let required = |name: &str| {
            get(name).ok_or_else(|| {
                Error::Config(format!(
                    "{name} is not set: S3 storage needs an access key id and a secret access key"
                ))
            })
        };
        let mut options = S3Options::new(
            location,
            required("AWS_ACCESS_KEY_ID")?,
            required("AWS_SECRET_ACCESS_KEY")?,
        );
        options.endpoint = get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL"));
        if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
            options.region = region;
        }
        options.session_token = get("AWS_SESSION_TOKEN");
        Ok(options)
    }

    /// Whether requests name the bucket in the path (rather than in the host name).
    pub(super) fn path_style(&self) -> bool {
        match self.addressing {
            Addressing::Path => true,
            Addressing::VirtualHost => false,
            Addressing::Auto => self.endpoint.is_some() || self.location.bucket.contains('.'),
        }
    }

    /// Checks everything that can be checked without asking the server.
    pub(super) fn validate(&self) -> Result<()> {
        check_bucket_name(&self.location.bucket)?;
        if normalize_prefix(&self.location.prefix)? != self.location.prefix {
            return Err(Error::Config(format!(
                "S3 prefix {:?} must not start or end with '/'",
                self.location.prefix
            )));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(Error::Config(format!(
                "invalid S3 region {:?}: expected a name like us-east-1",
                self.region
            )));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(Error::Config(
                "S3 storage needs an access key id and a secret access key".to_owned(),
            ));
        }
        if self.list_page_size == 0 {
            return Err(Error::Config(
                "S3 list page size must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("location", &self.location.to_string())
            .field("access_key_id", &masked_key_id(&self.access_key_id))
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("addressing", &self.addressing)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

/// The key id as `aws configure list` shows it: only its last four characters.
pub(super) fn masked_key_id(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("****{tail}")
}

/// A prefix without the slashes around it, refused if a segment is empty, `.` or `..`
/// (URLs resolve those like paths, so the key would not be the one meant) or if it holds
/// control characters.
fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    let refuse = |why: &str| {
        Err(Error::Config(format!(
            "invalid S3 prefix {prefix:?}: {why}"
        )))
    };
    if trimmed.chars().any(char::is_control) {
        return refuse("control characters are not allowed");
    }
    if trimmed.len() > 512 {
        return refuse("longer than 512 bytes");
    }
    if !trimmed.is_empty() && trimmed.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return refuse("a path segment is empty, '.' or '..'");
    }
    Ok(trimmed.to_owned())
}

/// AWS's rules for (general purpose) bucket names.
fn check_bucket_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-');
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let why = if !(3..=63).contains(&bytes.len()) {
        Some("it must be 3 to 63 characters long")
    } else if !bytes.iter().all(allowed) {
        Some("only a-z, 0-9, '.' and '-' are allowed")
    } else if !alnum(bytes.first()) || !alnum(bytes.last()) {
        Some("it must begin and end with a letter or digit")
    } else if name.contains("..") {
        Some("it must not contain two dots in a row")
    } else if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        Some("it must not look like an IP address")
    } else if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        Some("it uses a prefix or suffix that S3 reserves")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::Config(format!(
            "invalid S3 bucket name {name:?}: {why}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn location(text: &str) -> Result<S3Location> {
        S3Location::parse(text)
    }

    #[test]
    fn locations() {
        let l = location("s3://my-bucket/backups/host1/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("my-bucket", "backups/host1")
        );
        assert_eq!(l.to_string(), "s3://my-bucket/backups/host1");
        let l = location("S3://b.example.com").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("b.example.com", "")
        );
        assert_eq!(l.to_string(), "s3://b.example.com");
        assert_eq!(location("s3://abc//x/").unwrap().prefix, "x");
    }

    #[test]
    fn bad_locations() {
        for (text, says) in [
            ("/srv/backup", "does not start with s3://"),
            ("s3://", "3 to 63"),
            ("s3://ab/x", "3 to 63"),
            ("s3://My-Bucket", "only a-z"),
            ("s3://my_bucket", "only a-z"),
            ("s3://-bucket", "begin and end"),
            ("s3://a..b", "two dots"),
            ("s3://192.168.0.1", "IP address"),
            ("s3://xn--abc", "reserves"),
            ("s3://abc/a//b", "segment"),
            ("s3://abc/a/../b", "segment"),
            ("s3://abc/a\nb", "control"),
        ] {
            let err = location(text).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{text}: {err:?}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn from_env() {
        let loc = location("s3://bucket/p").unwrap();
        let o = S3Options::from_env(
            loc.clone(),
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKID1234"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ]),
        )
        .unwrap();
        assert_eq!((o.endpoint, o.region.as_str()), (None, "us-east-1"));
        assert_eq!(
            (o.access_key_id.as_str(), o.session_token),
            ("AKID1234", None)
        );
        let o = S3Options::from_env(
            loc.clone(),
            env(&[
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "tok"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_REGION", ""),
            ]),
        )
        .unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (o.region.as_str(), o.session_token.as_deref()),
            ("eu-west-1", Some("tok"))
        );
        assert!(o.path_style());
        let o = S3Options::from_env(
            loc.clone(),
            env(&[
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_ENDPOINT_URL", "http://a"),
                ("AWS_ENDPOINT_URL_S3", "http://b"),
                ("AWS_REGION", "eu-central-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (o.endpoint.as_deref(), o.region.as_str()),
            (Some("http://b"), "eu-central-1")
        );
        let err = S3Options::from_env(loc, env(&[("AWS_ACCESS_KEY_ID", "k")])).unwrap_err();
        assert!(
            err.to_string().contains("AWS_SECRET_ACCESS_KEY is not set"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let mut o = S3Options::new(
            location("s3://bucket").unwrap(),
            "AKIAEXAMPLEKEY",
            "TOPSECRET",
        );
        o.session_token = Some("SESSIONTOKEN".to_owned());
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("TOPSECRET") && !shown.contains("SESSIONTOKEN"),
            "{shown}"
        );
        assert!(
            !shown.contains("AKIAEXAMPLEKEY") && shown.contains("****EKEY"),
            "{shown}"
        );
    }

    #[test]
    fn addressing() {
        let mut o = S3Options::new(location("s3://bucket").unwrap(), "k", "s");
        assert!(!o.path_style(), "AWS: virtual-host style");
        o.location.bucket = "with.dots".to_owned();
        assert!(o.path_style(), "dots: path style");
        o.addressing = Addressing::VirtualHost;
        assert!(!o.path_style());
        o.endpoint = Some("http://127.0.0.1:1".to_owned());
        o.addressing = Addressing::Auto;
        assert!(o.path_style(), "an endpoint: path style");
    }
}
