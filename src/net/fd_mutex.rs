//! The lock of a socket: one reader, one writer, a count of operations in flight, and closing,
//! all in one atomic word, with semaphores for those who must wait.
//!
//! Mirrors: `internal/poll/fd_mutex.go` (Go 1.19) — `fdMutex` with `incref`, `increfAndClose`,
//! `decref`, `rwlock`, `rwunlock`; the semaphores are `runtime/sema.go`'s
//! `semacquire`/`semrelease` for tasks (and plain threads).
//!
//! # The word
//!
//! | bits   | name            | meaning                                                  |
//! |--------|-----------------|----------------------------------------------------------|
//! | 0      | `CLOSED`        | `close` has begun: every new lock or reference fails     |
//! | 1      | `RLOCK`         | a reader holds the read lock                             |
//! | 2      | `WLOCK`         | a writer holds the write lock                            |
//! | 3–22   | refs (`REF`)    | operations in flight, lock holders included              |
//! | 23–42  | read waiters (`RWAIT`)  | lockers parked (or about to park) on `rsema`     |
//! | 43–62  | write waiters (`WWAIT`) | lockers parked (or about to park) on `wsema`     |
//!
//! An uncontended lock and unlock are one compare-and-swap each. A locker that finds the lock
//! held counts itself as a waiter in the same CAS, then sleeps on the direction's semaphore;
//! an unlock that sees waiters takes one off the count and releases the semaphore once, and
//! the woken locker tries again from the start (as in Go, a new locker may get there first:
//! the lock is fair enough, not FIFO). The semaphore keeps a release that comes before the
//! sleeper has parked, so no wake-up is lost between the CAS and the park.
//!
//! Close: `incref_and_close` sets `CLOSED`, takes a reference, and releases every waiter
//! counted so far (they wake, see `CLOSED`, and fail). Whoever then drops the last reference
//! (`rwunlock` or `decref` returning `true`) knows the socket is closed and idle: the closer,
//! if that is not itself, waits on `csema` for that moment.
//!
//! Invariants:
//! - `CLOSED` is set once and never cleared; after it, no reference is taken.
//! - A lock bit is set only with a reference taken in the same CAS.
//! - A direction's waiter count is the number of lockers that counted themselves and have not
//!   been released yet; every decrement of it comes with exactly one release of its semaphore,
//!   so each counted locker takes exactly one permit (asleep or not yet).
//! - Exactly one `csema` release per close: the reference that leaves a closed word at zero.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Mutex, MutexGuard};

use reactor::Mode;

use crate::sched::{self, Waker};

const CLOSED: u64 = 1 << 0;
const RLOCK: u64 = 1 << 1;
const WLOCK: u64 = 1 << 2;
const REF: u64 = 1 << 3;
const REF_MASK: u64 = ((1 << 20) - 1) * REF;
const RWAIT: u64 = 1 << 23;
const RWAIT_MASK: u64 = ((1 << 20) - 1) * RWAIT;
const WWAIT: u64 = 1 << 43;
const WWAIT_MASK: u64 = ((1 << 20) - 1) * WWAIT;

/// The error for more operations in flight (or waiting) on one socket than the word counts:
/// Go panics with "too many concurrent operations on a single file or socket".
fn too_many() -> io::Error {
    io::Error::other("gort: too many concurrent operations on one socket (max 1048575)")
}

/// A counting semaphore whose waiters are tasks (or plain threads): Go's `semacquire` and
/// `semrelease` on one address.
#[derive(Default)]
struct Sema(Mutex<SemaState>);

#[derive(Default)]
struct SemaState {
    /// Releases that found nobody asleep, for the next acquirers.
    permits: usize,
    sleepers: VecDeque<Waker>,
}

impl Sema {
    fn state(&self) -> MutexGuard<'_, SemaState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a permit, sleeping until there is one. A sleeper is woken only by the release
    /// that popped it, whose permit it then has.
    fn acquire(&self) {
        sched::wait(|waker| {
            let mut s = self.state();
            if s.permits > 0 {
                s.permits -= 1;
                return false;
            }
            s.sleepers.push_back(waker);
            true
        });
    }

    /// `n` permits: each wakes the longest sleeper, or is kept if none sleeps yet.
    fn release(&self, n: u64) {
        let wakers: Vec<Waker> = {
            let mut s = self.state();
            let mut wakers = Vec::new();
            for _ in 0..n {
                match s.sleepers.pop_front() {
                    Some(w) => wakers.push(w),
                    None => s.permits += 1,
                }
            }
            wakers
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Go's `fdMutex`: see the module docs.
#[derive(Default)]
pub(crate) struct FdMutex {
    state: AtomicU64,
    rsema: Sema,
    wsema: Sema,
    /// The closer waits here for the last reference to go.
    csema: Sema,
}

/// The lock bit, waiter unit and waiter mask of a direction, and its semaphore.
fn bits(mode: Mode) -> (u64, u64, u64) {
    match mode {
        Mode::Read => (RLOCK, RWAIT, RWAIT_MASK),
        Mode::Write => (WLOCK, WWAIT, WWAIT_MASK),
    }
}

/// Outcome of a lock attempt.
pub(crate) enum Locked {
    Yes,
    Closed,
}

impl FdMutex {
    fn sema(&self, mode: Mode) -> &Sema {
        match mode {
            Mode::Read => &self.rsema,
            Mode::Write => &self.wsema,
        }
    }

    /// Whether `close` has begun.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    /// Go's `incref`: one more operation in flight, unless closed.
    pub(crate) fn incref(&self) -> io::Result<Locked> {
        let mut old = self.state.load(Relaxed);
        loop {
            if old & CLOSED != 0 {
                return Ok(Locked::Closed);
            }
            let new = old + REF;
            if new & REF_MASK == 0 {
                return Err(too_many());
            }
            match self.state.compare_exchange_weak(old, new, AcqRel, Relaxed) {
                Ok(_) => return Ok(Locked::Yes),
                Err(o) => old = o,
            }
        }
    }

    /// Go's `rwlock`: the lock of direction `mode` (and a reference), waiting for it if held.
    pub(crate) fn rwlock(&self, mode: Mode) -> io::Result<Locked> {
        let (lock, wait, wait_mask) = bits(mode);
        let mut old = self.state.load(Relaxed);
        loop {
            if old & CLOSED != 0 {
                return Ok(Locked::Closed);
            }
            let free = old & lock == 0;
            let new = if free {
                let new = (old | lock) + REF;
                if new & REF_MASK == 0 {
                    return Err(too_many());
                }
                new
            } else {
                let new = old + wait;
                if new & wait_mask == 0 {
                    return Err(too_many());
                }
                new
            };
            match self.state.compare_exchange_weak(old, new, AcqRel, Relaxed) {
                Ok(_) if free => return Ok(Locked::Yes),
                Ok(_) => {
                    // Counted as a waiter: an unlock (or close) releases the semaphore once
                    // for this count; then try again from the start.
                    self.sema(mode).acquire();
                    old = self.state.load(Relaxed);
                }
                Err(o) => old = o,
            }
        }
    }

    /// Go's `rwunlock`: releases the lock of `mode` and its reference, waking one waiter if
    /// any. `true` if that was the last reference of a closed socket.
    pub(crate) fn rwunlock(&self, mode: Mode) -> bool {
        let (lock, wait, wait_mask) = bits(mode);
        let mut old = self.state.load(Relaxed);
        loop {
            assert!(old & lock != 0 && old & REF_MASK != 0, "gort: inconsistent socket lock");
            let waiters = old & wait_mask != 0;
            let mut new = (old & !lock) - REF;
            if waiters {
                new -= wait;
            }
            match self.state.compare_exchange_weak(old, new, AcqRel, Relaxed) {
                Ok(_) => {
                    if waiters {
                        self.sema(mode).release(1);
                    }
                    return self.last(new);
                }
                Err(o) => old = o,
            }
        }
    }

    /// Go's `decref`: drops a reference; `true` if it was the last of a closed socket.
    pub(crate) fn decref(&self) -> bool {
        let new = self.state.fetch_sub(REF, AcqRel) - REF;
        self.last(new)
    }

    /// After dropping a reference that left the word at `new`: if the socket is closed and
    /// idle, tell the closer (unless that is the caller: see `close`).
    fn last(&self, new: u64) -> bool {
        let last = new & (CLOSED | REF_MASK) == CLOSED;
        if last {
            self.csema.release(1);
        }
        last
    }

    /// Go's `increfAndClose`: marks the socket closed, takes a reference for the closer, and
    /// wakes every waiting locker (they fail). `false` if it was already closed.
    pub(crate) fn incref_and_close(&self) -> io::Result<bool> {
        let mut old = self.state.load(Relaxed);
        loop {
            if old & CLOSED != 0 {
                return Ok(false);
            }
            let new = ((old | CLOSED) + REF) & !(RWAIT_MASK | WWAIT_MASK);
            if new & REF_MASK == 0 {
                return Err(too_many());
            }
            match self.state.compare_exchange_weak(old, new, AcqRel, Relaxed) {
                Ok(_) => {
                    self.rsema.release((old & RWAIT_MASK) / RWAIT);
                    self.wsema.release((old & WWAIT_MASK) / WWAIT);
                    return Ok(true);
                }
                Err(o) => old = o,
            }
        }
    }

    /// The closer's end of the protocol: drops its reference and waits until every operation
    /// in flight has let go.
    pub(crate) fn close_wait(&self) {
        self.decref();
        // Exactly one `last` release happens (the reference that reaches zero); take it, ours
        // or another's.
        self.csema.acquire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// A lost wake-up shows as a failure after 30 s, not a hung test run.
    fn within(what: &str, f: impl FnOnce() + Send + 'static) {
        crate::within::within(Duration::from_secs(30), what, f)
    }

    /// Mutual exclusion per direction and no lost wake-up, from tasks on two workers and from
    /// plain threads at once: each holder checks that nobody else holds its direction.
    #[test]
    fn one_holder_per_direction_and_every_waiter_gets_its_turn() {
        within("lockers on two workers and two threads", hammer_all);
    }

    fn hammer_all() {
        const ROUNDS: usize = 20_000;
        let m = Arc::new(FdMutex::default());
        let inside = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        fn hammer(m: Arc<FdMutex>, inside: Arc<[AtomicBool; 2]>, mode: Mode) {
            let i = usize::from(mode == Mode::Write);
            for _ in 0..ROUNDS {
                assert!(matches!(m.rwlock(mode), Ok(Locked::Yes)));
                assert!(!inside[i].swap(true, SeqCst), "two holders of one direction");
                (0..20).for_each(|_| std::hint::spin_loop());
                inside[i].store(false, SeqCst);
                assert!(!m.rwunlock(mode), "not closed");
            }
        }
        let threads: Vec<_> = [Mode::Read, Mode::Write]
            .into_iter()
            .map(|mode| {
                let (m, inside) = (m.clone(), inside.clone());
                std::thread::spawn(move || hammer(m, inside, mode))
            })
            .collect();
        let (m2, inside2) = (m.clone(), inside.clone());
        crate::Runtime::builder().workers(2).build().unwrap().block_on(move || {
            let (m, inside) = (m2, inside2);
            let tasks: Vec<_> = (0..6)
                .map(|k| {
                    let (m, inside) = (m.clone(), inside.clone());
                    let mode = if k % 2 == 0 { Mode::Read } else { Mode::Write };
                    crate::go(move || hammer(m, inside, mode))
                })
                .collect();
            tasks.into_iter().for_each(|t| t.join().unwrap());
        });
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(m.state.load(SeqCst), 0, "no lock, reference or waiter left");
    }

    /// Close fails the waiting lockers, and the closer waits for the holder's unlock, which
    /// reports it was the last reference.
    #[test]
    fn close_fails_waiters_and_waits_for_the_holder() {
        within("close with waiters", close_with_waiters);
    }

    fn close_with_waiters() {
        crate::Runtime::builder().workers(2).build().unwrap().block_on(|| {
            let m = Arc::new(FdMutex::default());
            assert!(matches!(m.rwlock(Mode::Read), Ok(Locked::Yes)));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let m = m.clone();
                    crate::go(move || matches!(m.rwlock(Mode::Read), Ok(Locked::Closed)))
                })
                .collect();
            let t = Instant::now();
            while (m.state.load(SeqCst) & RWAIT_MASK) / RWAIT < 3 {
                assert!(t.elapsed() < Duration::from_secs(10), "the lockers never waited");
                crate::time::sleep(Duration::from_millis(1));
            }
            let closer = {
                let m = m.clone();
                crate::go(move || {
                    assert!(m.incref_and_close().unwrap());
                    m.close_wait();
                })
            };
            for w in waiters {
                assert!(w.join().unwrap(), "a waiter got the lock of a closed socket");
            }
            crate::time::sleep(Duration::from_millis(20));
            assert!(!closer.is_finished(), "close must wait for the holder");
            assert!(m.rwunlock(Mode::Read), "the holder's unlock is the last reference");
            closer.join().unwrap();
            assert!(matches!(m.incref(), Ok(Locked::Closed)));
            assert!(!m.incref_and_close().unwrap(), "closing twice");
        });
    }
}
