//! A repository in a bucket of Amazon S3 or an S3-compatible server.
//!
//! Objects sit under the configured prefix in the local backend's layout: `PREFIX/config`,
//! `PREFIX/keys/NAME`, `PREFIX/data/AB/NAME` (packs fanned out by their first two
//! characters), `PREFIX/index/NAME`, and so on, so a local repository copied into a bucket
//! (or back) is the same repository.
//!
//! Crash safety comes from S3 itself: a PUT stores the whole object or nothing, and a reader
//! sees either the old or the new object, never a mix; `If-None-Match: *` makes creating an
//! object that must not be replaced one atomic step. There are no temporary objects, so a
//! killed upload leaves nothing behind.
//!
//! Every method sends one request (two for `delete`, which must report a missing object,
//! and for `create`), and nothing here retries: wrap the storage in [`crate::Retrying`].

mod client;
mod options;

use std::fmt;

use ureq::Body;
use ureq::http::{Response, StatusCode};

use crate::local::{fan_out, is_reserved_root_name};
use crate::{Error, Kind, ObjectInfo, Result, Storage, is_valid_name, validate_name};
use client::{Client, Signed};
pub use options::{Addressing, S3Location, S3Options};

/// A repository in an S3 bucket, under a key prefix; `docs/s3.md` describes its
/// configuration, timeouts and errors.
///
/// One HTTP agent serves every thread, pooling connections; `Debug` and
/// [`Storage::location`] never show the secret access key or the session token.
pub struct S3Storage {
    client: Client,
    /// The key prefix with a trailing `/`, or empty for the bucket's root.
    prefix: String,
    location: String,
    list_page_size: u16,
    /// Object Lock retention for every object written from now on but locks
    /// ([`Storage::retain_writes`]).
    retention: std::sync::Mutex<Option<crate::Retention>>,
}

impl S3Storage {
    /// A storage for `options`, checked (bucket name, prefix, endpoint, keys) but not yet
    /// contacted: the first request is the first network traffic.
    pub fn new(options: S3Options) -> Result<Self> {
        options.validate()?;
        let client = Client::new(&options)?;
        let location = match options.endpoint {
            Some(_) => format!("{} at {}", options.location, client.endpoint()),
            None => options.location.to_string(),
        };
        let prefix = match options.location.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(S3Storage {
            client,
            prefix,
            location,
            list_page_size: options.list_page_size,
            retention: std::sync::Mutex::new(None),
        })
    }

    /// The key prefix under which objects of `kind` are listed.
    fn kind_prefix(&self, kind: Kind) -> String {
        match kind {
            Kind::Config => self.prefix.clone(),
            _ => format!("{}{}/", self.prefix, kind.dir()),
        }
    }

    /// The object's key, after validating its name.
    fn key(&self, kind: Kind, name: &str) -> Result<String> {
        validate_name(name)?;
        // As in the local layout, a config object named like a kind's directory would
        // collide with it.
        if kind == Kind::Config && is_reserved_root_name(name) {
            return Err(Error::InvalidName(name.to_owned()));
        }
        Ok(match kind {
            Kind::Pack => format!("{}{}/{name}", self.kind_prefix(kind), fan_out(name)),
            _ => format!("{}{name}", self.kind_prefix(kind)),
        })
    }

    fn not_found(&self, kind: Kind, name: &str) -> Error {
        Error::NotFound {
            kind,
            name: name.to_owned(),
            location: self.location.clone(),
        }
    }

    /// Sends a request; `context` words it for errors ("reading pack X from LOCATION").
    fn send(
        &self,
        request: Signed,
        body: Option<&[u8]>,
        context: &dyn Fn() -> String,
    ) -> Result<Response<Body>> {
        self.client.send(request, body, context)
    }

    /// The error for an unexpected answer about one object, a plain 404 being NotFound.
    fn object_error(
        &self,
        response: Response<Body>,
        kind: Kind,
        name: &str,
        context: &dyn Fn() -> String,
    ) -> Error {
        match self.client.status_error(response, &self.location, context) {
            Error::Remote { status: 404, .. } => self.not_found(kind, name),
            e => e,
        }
    }

    /// Stores `data`, replacing any object unless `create_only`.
    fn put(&self, kind: Kind, name: &str, data: &[u8], create_only: bool) -> Result<()> {
        let key = self.key(kind, name)?;
        let context = || format!("writing {kind} {name} to {}", self.location);
        let mut headers = match create_only {
            true => vec![("if-none-match", "*".to_owned())],
            false => Vec::new(),
        };
        // Locks are rewritten and removed as they are held: never retained.
        let retention = match kind {
            Kind::Lock => None,
            _ => *self.retention.lock().expect("retention lock"),
        };
        let request = match retention {
            Some(r) => {
                headers.push(("content-md5", content_md5(data)));
                self.client.put_object_retained(&key, r, &headers)
            }
            None => self.client.put_object(&key, &headers),
        };
        let response = self.send(request, Some(data), &context)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED if create_only => Err(Error::Exists {
                kind,
                name: name.to_owned(),
                location: self.location.clone(),
            }),
            _ => Err(self.client.status_error(response, &self.location, &context)),
        }
    }

    /// A ranged GET of `len > 0` bytes at `offset`, where `offset + len` does not overflow.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let key = self.key(kind, name)?;
        let context = || format!("reading {kind} {name} from {}", self.location);
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let request = self.client.get_object(&key, &[("range", range)]);
        let mut response = self.send(request, None, &context)?;
        let short = |got: u64| Error::short_read(kind, name, offset, len, got);
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let data = self.client.read_body(&mut response, len, &context)?;
                match data.len() as u64 {
                    got if got < len => Err(short(got)),
                    _ => Ok(data),
                }
            }
            // A server that ignores ranges sends the whole object.
            StatusCode::OK => {
                let data = self.client.read_body(&mut response, u64::MAX, &context)?;
                let size = data.len() as u64;
                if offset + len > size {
                    return Err(short(size.saturating_sub(offset)));
                }
                let start = usize::try_from(offset).expect("offset within a Vec");
                let end = usize::try_from(offset + len).expect("end within a Vec");
                Ok(data[start..end].to_vec())
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = self.stat(kind, name)?.size;
                Err(short(size.saturating_sub(offset).min(len)))
            }
            _ => Err(self.object_error(response, kind, name, &context)),
        }
    }

    /// Every key under `prefix` (relative to it) with its size, page by page; with
    /// `delimiter`, only the keys directly under it.
    fn list_keys(&self, prefix: &str, delimiter: bool) -> Result<Vec<(String, u64)>> {
        let context = || format!("listing {prefix:?} in {}", self.location);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request =
                self.client
                    .list_objects(prefix, delimiter, self.list_page_size, token.as_deref());
            let mut response = self.send(request, None, &context)?;
            if !response.status().is_success() {
                return Err(self.client.status_error(response, &self.location, &context));
            }
            let body = self.client.read_body(&mut response, 64 << 20, &context)?;
            let text = std::str::from_utf8(&body)
                .map_err(|_| Error::Other(format!("{}: the listing is not UTF-8", context())))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(text).map_err(|e| {
                Error::Other(format!("{}: cannot read the listing: {e}", context()))
            })?;
            for object in page.contents {
                if let Some(rel) = object.key.strip_prefix(prefix) {
                    keys.push((rel.to_owned(), object.size.unwrap_or(0)));
                }
            }
            match page.next_continuation_token {
                // A server handing out the same token again would keep us here forever.
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(Error::Other(format!(
                        "{}: the server repeated a continuation token",
                        context()
                    )));
                }
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Creates the bucket (for the test server: backends never create buckets).
    /// Creates the bucket, with Object Lock enabled (and so versioning) when `object_lock`.
    #[cfg(feature = "test-server")]
    pub(crate) fn create_bucket(&self, object_lock: bool) -> Result<()> {
        let context = || format!("creating bucket {}", self.client.bucket_name());
        let (request, body) = self.client.create_bucket(object_lock);
        let response = self.send(request, Some(body.as_bytes()), &context)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            _ => Err(self.client.status_error(response, &self.location, &context)),
        }
    }

    /// The Object Lock headers an object answers a HEAD with (mode, retain-until date), if it
    /// has a retention.
    #[cfg(feature = "test-server")]
    pub fn retention_of(&self, kind: Kind, name: &str) -> Result<Option<(String, String)>> {
        self.head_retention(kind, name)
    }

    fn head_retention(&self, kind: Kind, name: &str) -> Result<Option<(String, String)>> {
        let key = self.key(kind, name)?;
        let context = || format!("looking up {kind} {name}");
        let response = self.send(self.client.head_object(&key), None, &context)?;
        if !response.status().is_success() {
            return Err(self.object_error(response, kind, name, &context));
        }
        let header = |h: &str| {
            let value = response.headers().get(h)?;
            value.to_str().ok().map(str::to_owned)
        };
        Ok(header("x-amz-object-lock-mode").zip(header("x-amz-object-lock-retain-until-date")))
    }
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// Four: a pack upload or a ranged read waits on the network (and on the server) far more
    /// than on this machine, and four in flight keep a link busy without holding more than a
    /// few pack buffers.
    fn parallelism(&self) -> usize {
        4
    }

    /// Checks that the bucket exists (and that the keys may list it) and holds no
    /// repository config under the prefix. Nothing is written: S3 has no directories.
    fn create(&self) -> Result<()> {
        // A listing rather than HeadBucket: its error answers have a body saying why
        // (NoSuchBucket, SignatureDoesNotMatch...), a HEAD answer has none.
        let context = || format!("checking bucket {}", self.location);
        let request = self.client.list_objects(&self.prefix, true, 1, None);
        let response = self.send(request, None, &context)?;
        if !response.status().is_success() {
            return Err(self.client.status_error(response, &self.location, &context));
        }
        match self.stat(Kind::Config, "config") {
            Ok(_) => Err(Error::AlreadyExists {
                location: self.location.clone(),
            }),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let prefix = self.kind_prefix(kind);
        // Packs are one level further down, in their fan-out "directories".
        let keys = self.list_keys(&prefix, kind != Kind::Pack)?;
        Ok(keys
            .iter()
            .filter_map(|(rel, size)| {
                object_name(kind, rel).map(|name| ObjectInfo {
                    name: name.to_owned(),
                    size: *size,
                })
            })
            .collect())
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        let key = self.key(kind, name)?;
        let context = || format!("reading metadata of {kind} {name} in {}", self.location);
        let response = self.send(self.client.head_object(&key), None, &context)?;
        if !response.status().is_success() {
            return Err(self.object_error(response, kind, name, &context));
        }
        let size = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Other(format!("{}: no object size in the answer", context())))?;
        Ok(ObjectInfo {
            name: name.to_owned(),
            size,
        })
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let key = self.key(kind, name)?;
        let context = || format!("reading {kind} {name} from {}", self.location);
        let mut response = self.send(self.client.get_object(&key, &[]), None, &context)?;
        if !response.status().is_success() {
            return Err(self.object_error(response, kind, name, &context));
        }
        self.client.read_body(&mut response, u64::MAX, &context)
    }

    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        match offset.checked_add(len) {
            Some(_) if len > 0 => self.get_range(kind, name, offset, len),
            // Nothing to fetch (or no range to ask for): the size alone decides.
            end => {
                let size = self.stat(kind, name)?.size;
                match end {
                    Some(end) if end <= size => Ok(Vec::new()),
                    _ => {
                        let got = size.saturating_sub(offset).min(len);
                        Err(Error::short_read(kind, name, offset, len, got))
                    }
                }
            }
        }
    }

    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put(kind, name, data, false)
    }

    /// A PUT with `If-None-Match: *`: the server refuses it (412) if the key exists.
    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put(kind, name, data, true)
    }

    fn retain_writes(&self, retention: crate::Retention) -> Result<()> {
        *self.retention.lock().expect("retention lock") = Some(retention);
        Ok(())
    }

    fn extend_retention(
        &self,
        kind: Kind,
        name: &str,
        mode: crate::RetentionMode,
        until: jiff::Timestamp,
    ) -> Result<()> {
        let key = self.key(kind, name)?;
        let context = || {
            format!(
                "extending the retention of {kind} {name} in {}",
                self.location
            )
        };
        let body = retention_body(mode, until);
        let headers = [("content-md5", content_md5(body.as_bytes()))];
        let request = self.client.put_object_retention(&key, &headers);
        let response = self.send(request, Some(body.as_bytes()), &context)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            _ => Err(self.object_error(response, kind, name, &context)),
        }
    }

    fn retained_until(&self, kind: Kind, name: &str) -> Result<Option<jiff::Timestamp>> {
        let until = self.head_retention(kind, name)?.map(|(_, until)| until);
        Ok(until.and_then(|u| u.parse().ok()))
    }

    /// S3 deletes a missing key without complaint, so the object is looked up first.
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.stat(kind, name)?;
        let key = self.key(kind, name)?;
        let context = || format!("deleting {kind} {name} from {}", self.location);
        let response = self.send(self.client.delete_object(&key), None, &context)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            _ => Err(self.object_error(response, kind, name, &context)),
        }
    }
}

/// The body of a PutObjectRetention: `mode` until `until` (to the second, UTC).
fn retention_body(mode: crate::RetentionMode, until: jiff::Timestamp) -> String {
    format!(
        "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
         <RetainUntilDate>{}</RetainUntilDate></Retention>",
        mode.header(),
        until.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// The `Content-MD5` header of `data`: its MD5 digest in base64.
fn content_md5(data: &[u8]) -> String {
    use md5::Digest as _;
    base64(&md5::Md5::digest(data))
}

/// Standard base64 with padding (RFC 4648), for a header's short binary value.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The name of the object of `kind` at `rel` (a key relative to the kind's prefix), if it
/// is one: anything else there (nested keys, invalid names) is not an object.
fn object_name(kind: Kind, rel: &str) -> Option<&str> {
    match kind {
        Kind::Pack => {
            let (fan, name) = rel.split_once('/')?;
            // A pack under the wrong fan-out prefix could be listed but never read.
            (is_valid_name(name) && fan_out(name) == fan).then_some(name)
        }
        Kind::Config => (is_valid_name(rel) && !is_reserved_root_name(rel)).then_some(rel),
        _ => is_valid_name(rel).then_some(rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1864's form; the digest of "hello" as any S3 client sends it.
        assert_eq!(content_md5(b"hello"), "XUFAKrxLKna5cZ2REBfFkg==");
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
