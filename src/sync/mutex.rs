//! A mutual-exclusion lock that parks tasks, not threads, with the data inside as in Rust.
//!
//! Mirrors: `sync/mutex.go` (Go 1.19) — `Mutex`, `Lock`, `TryLock`, `Unlock`, `lockSlow`,
//! `unlockSlow` (`mutexLocked`, `mutexWoken`/`mutexStarving`), on `runtime/sema.go` (here
//! `waitq.rs`).
//!
//! # The state word (an atomic; the queue under a short internal lock)
//!
//! | `state`            | meaning                                   | left by                                      |
//! |--------------------|-------------------------------------------|----------------------------------------------|
//! | `0`                | free, nobody waiting                      | a lock: CAS → `LOCKED` (the fast path)       |
//! | `LOCKED`           | held, nobody waiting                      | an unlock: CAS → `0` (the fast path); a contended lock: → `LOCKED\|WAITERS` |
//! | `LOCKED\|WAITERS`  | held, waiters queued                      | an unlock: hands the lock to the first waiter, stays `LOCKED` (`\|WAITERS` if more wait) |
//!
//! Invariants:
//! - `WAITERS` changes only under the queue's lock, and is set exactly when the queue is not
//!   empty; `WAITERS` implies `LOCKED`.
//! - An unlock with waiters never frees the lock: it *hands it off* to the first waiter, which
//!   owns it before it even runs. So waiters get the lock in FIFO order and a stream of new
//!   lockers cannot overtake them: Go's starvation mode, always. (Go's normal mode lets a new
//!   locker barge in, which is faster under contention but unfair; gort picks the simple,
//!   fair rule.)
//! - Uncontended, `lock` and `unlock` are one CAS each on `state`, plus the inner data mutex
//!   (below): no queue, no scheduler.
//!
//! # Where the data lives, without `unsafe`
//!
//! The value is kept in a `std::sync::Mutex<T>`. Only the holder of the task-level lock ever
//! locks it, and a guard lets go of it *before* it releases the task-level lock, so it is always
//! free when taken: it never blocks a thread, and costs one uncontended atomic pair. It is
//! what lets the guard hand out `&mut T` in safe Rust. A guard may be held across a park
//! (`yield_now`, `time::sleep`, a channel receive): only other lockers wait, and they park.
//!
//! # Poisoning
//!
//! None, as in Go: a task that panics while holding the lock releases it as the guard drops,
//! and the next locker sees the data as it was left.

#![forbid(unsafe_code)]

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard, TryLockError};

use super::waitq::{self, WaitQueue, lock};
use crate::sched::Waker;

const LOCKED: u8 = 1;
const WAITERS: u8 = 2;

/// Go's `sync.Mutex`, holding the data it protects: [`lock`](Mutex::lock) parks the calling
/// task (or, on a plain OS thread, sleeps the thread) until the lock is free, and the guard
/// unlocks when dropped.
///
/// Unlike `std::sync::Mutex`, a guard may be held across anything that parks the task
/// ([`yield_now`](crate::yield_now), [`time::sleep`](crate::time::sleep), a channel
/// operation): a contending task parks instead of blocking its worker thread. Waiters get the
/// lock in the order they came (FIFO hand-off). There is no poisoning, as in Go.
///
/// ```
/// use std::sync::Arc;
///
/// let n = gort::run(|| {
///     let m = Arc::new(gort::sync::Mutex::new(0));
///     let hs: Vec<_> = (0..10)
///         .map(|_| {
///             let m = m.clone();
///             gort::go(move || {
///                 let mut g = m.lock();
///                 gort::yield_now(); // held across a park: others park too
///                 *g += 1;
///             })
///         })
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
///     *m.lock()
/// });
/// assert_eq!(n, 10);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    waiters: StdMutex<WaitQueue<()>>,
    data: StdMutex<T>,
}

/// Unlocks the task-level lock when dropped: the last field of [`MutexGuard`], so that it
/// drops after the data guard.
struct Held<'a, T: ?Sized>(&'a Mutex<T>);

impl<T: ?Sized> Drop for Held<'_, T> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// Access to the data of a locked [`Mutex`]; unlocks when dropped.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    // Field order matters: the data guard drops first, then the task-level lock is released.
    data: StdMutexGuard<'a, T>,
    _held: Held<'a, T>,
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU8::new(0),
            waiters: StdMutex::new(WaitQueue::new()),
            data: StdMutex::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Go's `Lock`: waits until the lock is free and takes it. A task parks meanwhile (its
    /// worker runs other tasks); a plain OS thread sleeps.
    ///
    /// Locking a mutex the caller already holds deadlocks, as in Go.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(0, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_slow();
        }
        self.guard()
    }

    /// Go's `TryLock`: takes the lock if it is free (and nobody is queued for it), without
    /// waiting.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state.compare_exchange(0, LOCKED, Acquire, Relaxed).ok()?;
        Some(self.guard())
    }

    /// The data, through a `&mut` (which proves nobody holds the lock).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    /// Go's `lockSlow`: queue behind the other waiters and park until the lock is handed over.
    #[cold]
    fn lock_slow(&self) {
        waitq::acquire(
            &self.waiters,
            |q| q,
            |_| loop {
                // Under the queue's lock, so `WAITERS` cannot change under us; `LOCKED` can.
                let s = self.state.load(Relaxed);
                if s & LOCKED == 0 {
                    if self.state.compare_exchange(s, s | LOCKED, Acquire, Relaxed).is_ok() {
                        return None;
                    }
                } else if self.state.compare_exchange(s, s | WAITERS, Relaxed, Relaxed).is_ok() {
                    return Some(());
                }
            },
            |q, owner| {
                if owner {
                    self.unlock_locked(q).into_iter().collect()
                } else {
                    if q.is_empty() {
                        self.state.fetch_and(!WAITERS, Relaxed);
                    }
                    Vec::new()
                }
            },
        );
    }

    /// Takes the data guard; the caller holds the task-level lock.
    fn guard(&self) -> MutexGuard<'_, T> {
        let data = match self.data.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                unreachable!("gort::sync::Mutex: data locked by someone without the lock")
            }
        };
        MutexGuard { data, _held: Held(self) }
    }

    /// Go's `Unlock`.
    fn unlock(&self) {
        if self.state.compare_exchange(LOCKED, 0, Release, Relaxed).is_err() {
            self.unlock_slow();
        }
    }

    /// Go's `unlockSlow` in starvation mode: hand the lock to the first waiter.
    #[cold]
    fn unlock_slow(&self) {
        let next = self.unlock_locked(&mut lock(&self.waiters));
        waitq::wake_all(next);
    }

    /// Releases the lock with the queue locked: hands it off, or frees it if nobody waits.
    fn unlock_locked(&self, q: &mut WaitQueue<()>) -> Option<Waker> {
        match q.grant_front() {
            Some(w) => {
                if q.is_empty() {
                    self.state.fetch_and(!WAITERS, Release);
                }
                Some(w)
            }
            None => {
                self.state.store(0, Release);
                None
            }
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
