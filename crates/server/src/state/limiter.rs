//! Login rate limiting.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::{SignedDuration, Timestamp};

/// Login rate limiting, in memory: per key (a user name, or separately a client address), at
/// most `max_failures` failures in a sliding `window`.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: SignedDuration,
    failures: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

/// Past this many keys, a failure also sweeps out keys whose failures have all expired.
const LIMITER_SWEEP_AT: usize = 10_000;

impl LoginLimiter {
    /// A limiter allowing `max_failures` (at least 1) failures per key within `window`.
    pub fn new(max_failures: usize, window: SignedDuration) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Timestamp>>> {
        // The map holds only timestamps; a half-finished update is harmless.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops failures that have left the window.
    fn expire(&self, times: &mut VecDeque<Timestamp>, now: Timestamp) {
        while times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            times.pop_front();
        }
    }

    /// `Ok` if `key` may try to log in now, else how long until it may.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<(), SignedDuration> {
        let mut map = self.map();
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        self.expire(times, now);
        match times.front() {
            Some(&oldest) if times.len() >= self.max_failures => {
                Err(self.window - now.duration_since(oldest))
            }
            None => {
                map.remove(key);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Notes a failed login for `key` at `now`.
    pub fn failure(&self, key: &str, now: Timestamp) {
        let mut map = self.map();
        if map.len() >= LIMITER_SWEEP_AT {
            map.retain(|_, times| {
                self.expire(times, now);
                !times.is_empty()
            });
        }
        let times = map.entry(key.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
        // Only the newest `max_failures` decide when the key is free again.
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    /// Forgets the failures of `key` after a successful login.
    pub fn success(&self, key: &str) {
        self.map().remove(key);
    }
}

impl Default for LoginLimiter {
    /// Five failures per fifteen minutes.
    fn default() -> Self {
        LoginLimiter::new(5, SignedDuration::from_mins(15))
    }
}
