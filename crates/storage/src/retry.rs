//! A wrapper that retries a storage's transient failures, so no backend carries its own
//! retry loop (restic's `backend/retry` and rustic's layers do the same).
//!
//! What is retried is what [`Error::is_transient`] says: timeouts, lost connections, an
//! unreachable server, server errors (5xx, 429). A refusal (a wrong secret, a missing
//! bucket, a missing object) is returned at once. Pauses grow exponentially with random
//! jitter, and both the number of attempts and the time since the first one are bounded. An
//! unreachable server gets fewer attempts, so an endpoint that is down fails in seconds.
//!
//! A failed attempt may still have taken effect (the answer was lost, not the request), which
//! matters for the two operations that report what they found: `write_new` that then finds
//! "its" object compares the bytes and succeeds if they are its own, and `delete` that then
//! finds nothing succeeds.

use std::fmt;
use std::time::{Duration, Instant};

use crate::{Error, Kind, ObjectInfo, Removed, Result, Storage};

/// How [`Retrying`] retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// Attempts when the server cannot be reached at all ([`Error::Unreachable`]).
    pub unreachable_attempts: u32,
    /// No retry starts once this long has passed since the first attempt began.
    pub max_elapsed: Duration,
    /// The pause before the first retry; it doubles for each further one.
    pub initial_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    /// 5 attempts (2 when the server is unreachable), pauses from 0.5 s doubling to at most
    /// 8 s, each cut by up to half at random, no retry after 60 s: a service restart or a
    /// throttling burst is ridden out, an outage is reported within a minute, and a server
    /// that is down within a few seconds.
    fn default() -> Self {
        RetryOptions {
            max_attempts: 5,
            unreachable_attempts: 2,
            max_elapsed: Duration::from_secs(60),
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryOptions {
    /// The pause before retry number `retry` (1 for the first): the exponential delay, cut
    /// by a random amount up to half, so that many clients do not retry in step.
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << (retry - 1).min(20))
            .min(self.max_delay);
        let jitter = getrandom::u32().unwrap_or(0) % 1024;
        exp - exp / 2 * jitter / 1024
    }
}

/// A storage whose transient failures are retried per [`RetryOptions`].
pub struct Retrying<S> {
    inner: S,
    options: RetryOptions,
}

impl<S: Storage> Retrying<S> {
    pub fn new(inner: S, options: RetryOptions) -> Self {
        Retrying { inner, options }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts or time run out.
    /// `settle` sees a later attempt's failure after an earlier transient one, and may turn
    /// it into the outcome the earlier attempt had in fact reached.
    fn run<T>(
        &self,
        mut op: impl FnMut() -> Result<T>,
        settle: impl Fn(Error) -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            let e = match op() {
                Ok(v) => return Ok(v),
                Err(e) if attempt > 1 && !e.is_transient() => return settle(e),
                Err(e) => e,
            };
            let limit = match e {
                Error::Unreachable { .. } => self.options.unreachable_attempts,
                _ => self.options.max_attempts,
            };
            let delay = self.options.delay(attempt);
            if !e.is_transient()
                || attempt >= limit
                || start.elapsed() + delay > self.options.max_elapsed
            {
                return Err(e);
            }
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn retry<T>(&self, op: impl FnMut() -> Result<T>) -> Result<T> {
        self.run(op, Err)
    }
}

impl<S: Storage> fmt::Debug for Retrying<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrying")
            .field("inner", &self.inner)
            .field("options", &self.options)
            .finish()
    }
}

impl<S: Storage> Storage for Retrying<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.retry(|| self.inner.create())
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.retry(|| self.inner.list(kind))
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        self.retry(|| self.inner.stat(kind, name))
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.retry(|| self.inner.read(kind, name))
    }

    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.retry(|| self.inner.read_range(kind, name, offset, len))
    }

    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.retry(|| self.inner.write(kind, name, data))
    }

    fn read_range_cached(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.retry(|| self.inner.read_range_cached(kind, name, offset, len))
    }

    fn write_cached(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.retry(|| self.inner.write_cached(kind, name, data))
    }

    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.run(
            || self.inner.write_new(kind, name, data),
            |e| match e {
                // Maybe an earlier attempt stored it and only its answer was lost.
                Error::Exists { .. } => match self.retry(|| self.inner.read(kind, name)) {
                    Ok(stored) if stored == data => Ok(()),
                    _ => Err(e),
                },
                e => Err(e),
            },
        )
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.run(
            || self.inner.delete(kind, name),
            |e| match e {
                // Maybe an earlier attempt deleted it and only its answer was lost.
                Error::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        )
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        self.retry(|| self.inner.exists(kind, name))
    }

    fn parallelism(&self) -> usize {
        self.inner.parallelism()
    }

    fn retain_writes(&self, retention: crate::Retention) -> Result<()> {
        self.inner.retain_writes(retention)
    }

    fn extend_retention(
        &self,
        kind: Kind,
        name: &str,
        mode: crate::RetentionMode,
        until: jiff::Timestamp,
    ) -> Result<()> {
        self.retry(|| self.inner.extend_retention(kind, name, mode, until))
    }

    fn retained_until(&self, kind: Kind, name: &str) -> Result<Option<jiff::Timestamp>> {
        self.retry(|| self.inner.retained_until(kind, name))
    }

    fn free_space(&self) -> Option<u64> {
        self.inner.free_space()
    }

    fn remove_stale_temporary(&self, older_than: Duration) -> Result<Removed> {
        self.retry(|| self.inner.remove_stale_temporary(older_than))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;
    use std::io;
    use std::sync::Mutex;

    /// A memory storage whose next operations fail with queued errors, counting calls.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryStorage,
        failures: Mutex<Vec<Error>>,
        /// Whether a failing write still stores (the answer is lost, not the request).
        store_anyway: bool,
        calls: Mutex<u32>,
    }

    impl Flaky {
        fn fail(&self) -> Result<()> {
            *self.calls.lock().unwrap() += 1;
            match self.failures.lock().unwrap().pop() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn calls(&self) -> u32 {
            *self.calls.lock().unwrap()
        }
    }

    impl Storage for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn create(&self) -> Result<()> {
            self.fail()
        }
        fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
            self.fail()?;
            self.inner.list(kind)
        }
        fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
            self.inner.stat(kind, name)
        }
        fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
            self.inner.read(kind, name)
        }
        fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.read_range(kind, name, offset, len)
        }
        fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
            self.fail()?;
            self.inner.write(kind, name, data)
        }
        fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
            let failed = self.fail();
            if failed.is_ok() || self.store_anyway {
                self.inner.write_new(kind, name, data)?;
            }
            failed
        }
        fn delete(&self, kind: Kind, name: &str) -> Result<()> {
            let failed = self.fail();
            if failed.is_ok() || self.store_anyway {
                self.inner.delete(kind, name)?;
            }
            failed
        }
    }

    fn fast() -> RetryOptions {
        RetryOptions {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            ..RetryOptions::default()
        }
    }

    fn reset() -> Error {
        Error::io("x", io::Error::from(io::ErrorKind::ConnectionReset))
    }

    fn flaky(failures: Vec<Error>, store_anyway: bool) -> Retrying<Flaky> {
        let inner = Flaky {
            failures: Mutex::new(failures),
            store_anyway,
            ..Flaky::default()
        };
        Retrying::new(inner, fast())
    }

    #[test]
    fn transient_failures_are_retried_up_to_the_limit() {
        let s = flaky(vec![reset(), reset()], false);
        s.write(Kind::Pack, "a", b"x").unwrap();
        assert_eq!(s.inner().calls(), 3);
        let s = flaky((0..9).map(|_| reset()).collect(), false);
        assert!(s.write(Kind::Pack, "a", b"x").unwrap_err().is_transient());
        assert_eq!(s.inner().calls(), 5);
    }

    #[test]
    fn refusals_are_not_retried() {
        let denied = Error::AccessDenied {
            location: "l".into(),
            detail: "SignatureDoesNotMatch".into(),
        };
        let s = flaky(vec![denied], false);
        assert!(matches!(
            s.list(Kind::Pack),
            Err(Error::AccessDenied { .. })
        ));
        assert_eq!(s.inner().calls(), 1);
    }

    #[test]
    fn unreachable_gets_fewer_attempts() {
        let down = || Error::Unreachable {
            endpoint: "http://127.0.0.1:1".into(),
            cause: "connection refused".into(),
        };
        let s = flaky((0..9).map(|_| down()).collect(), false);
        assert!(matches!(s.create(), Err(Error::Unreachable { .. })));
        assert_eq!(s.inner().calls(), 2);
    }

    #[test]
    fn elapsed_time_bounds_the_retries() {
        let mut s = flaky((0..9).map(|_| reset()).collect(), false);
        s.options = RetryOptions {
            max_elapsed: Duration::from_millis(5),
            initial_delay: Duration::from_millis(4),
            ..fast()
        };
        assert!(s.create().is_err());
        assert!(s.inner().calls() < 5, "{} calls", s.inner().calls());
    }

    #[test]
    fn lost_answers_of_write_new_and_delete() {
        // The first write_new stored the object but its answer was lost.
        let s = flaky(vec![reset()], true);
        s.write_new(Kind::Lock, "l", b"mine").unwrap();
        assert_eq!(s.read(Kind::Lock, "l").unwrap(), b"mine");
        // Someone else's object is still theirs.
        let s = flaky(vec![reset()], false);
        s.inner().inner.write(Kind::Lock, "l", b"theirs").unwrap();
        assert!(matches!(
            s.write_new(Kind::Lock, "l", b"mine"),
            Err(Error::Exists { .. })
        ));
        // The first delete removed it but its answer was lost.
        let s = flaky(vec![reset()], true);
        s.inner().inner.write(Kind::Lock, "l", b"x").unwrap();
        s.delete(Kind::Lock, "l").unwrap();
        assert!(!s.exists(Kind::Lock, "l").unwrap());
        // Without a failed attempt, a missing object is reported.
        assert!(s.delete(Kind::Lock, "l").unwrap_err().is_not_found());
    }

    #[test]
    fn delays_grow_with_jitter() {
        let o = RetryOptions::default();
        for retry in 1..10 {
            let full = (o.initial_delay * (1 << (retry - 1))).min(o.max_delay);
            let d = o.delay(retry);
            assert!(
                d <= full && d >= full / 2,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn conforms() {
        crate::conformance::run_all(&|| Box::new(Retrying::new(MemoryStorage::new(), fast())));
    }
}
