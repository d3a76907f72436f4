//! How an idle worker that is not the poller sleeps, and how it is woken.
//!
//! Mirrors: `runtime/lock_futex.go` (Go 1.19) `notesleep`/`notetsleep`/`notewakeup` on `m.park`,
//! used by `stopm`/`startm`. Go sleeps an idle M on a futex; std's `Condvar` is a futex on Linux.
//!
//! | `notified` | `park_timeout`                 | `unpark`                   |
//! |------------|--------------------------------|----------------------------|
//! | false      | sleeps until notified or timeout; leaves `false` | sets `true`, wakes the sleeper |
//! | true       | returns at once; sets `false`  | stays `true`               |
//!
//! A wake-up that comes before the sleep is kept in `notified`, so it is never lost.

#![forbid(unsafe_code)]

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One worker's sleep (Go's `m.park` note).
#[derive(Debug, Default)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    /// Sleeps until [`unpark`](Parker::unpark) or `deadline` (`None`: no deadline).
    pub(crate) fn park_until(&self, deadline: Option<Instant>) {
        let mut n = self.notified.lock().unwrap_or_else(|p| p.into_inner());
        while !*n {
            match deadline {
                None => n = self.cv.wait(n).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left == Duration::ZERO {
                        break;
                    }
                    n = self.cv.wait_timeout(n, left).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
        *n = false;
    }

    /// Wakes the sleeper, or the next sleep.
    pub(crate) fn unpark(&self) {
        *self.notified.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }
}
