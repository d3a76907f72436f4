//! The per-fd wait state: one binary semaphore per direction, plus closing and error bits.
//!
//! Mirrors: `runtime/netpoll.go` (Go 1.19/1.21) — `pollDesc` (`rg`, `wg`, `atomicInfo`),
//! `netpollblock`, `netpollblockcommit`, `netpollunblock`, `netpollready`, `netpollcheckerr`,
//! `poll_runtime_pollReset`, `poll_runtime_pollWait`, `poll_runtime_pollUnblock` and the
//! expiry half of `netpolldeadlineimpl`.
//!
//! # The two semaphores
//!
//! `rg` (readers) and `wg` (writers) each hold one word:
//!
//! | word        | Go name   | meaning                                                          |
//! |-------------|-----------|------------------------------------------------------------------|
//! | 0           | `pdNil`   | nothing pending, nobody waiting                                  |
//! | 1           | `pdReady` | readiness arrived and nobody has consumed it yet                 |
//! | 2           | `pdWait`  | a waiter announced it will park, but has not committed yet       |
//! | any other   | `*g`      | a [`Waiter`] is parked; whoever swaps it out must wake it        |
//!
//! Who moves the word, and how (every move out of `wait` or a waiter is a CAS, so exactly one
//! actor ever gets a parked waiter back: no double wake-up):
//!
//! | actor                                  | from → to        | result                                             |
//! |----------------------------------------|------------------|----------------------------------------------------|
//! | [`prepare`](PollDesc::prepare)         | ready → nil      | readiness consumed: retry the syscall, no park     |
//! | [`prepare`](PollDesc::prepare)         | nil → wait       | announced; then the error bits are re-checked      |
//! | [`prepare`](PollDesc::prepare)         | wait, waiter     | a bug: two waiters in one direction (panics)       |
//! | [`commit`](PollDesc::commit), after the switch | wait → waiter | parked. Fails if the word moved meanwhile: then the waiter must not sleep |
//! | [`complete`](PollDesc::complete), after waking | any → nil | `true` if it took `ready`                          |
//! | [`unblock`](PollDesc::unblock) with I/O  | nil, wait → ready | readiness remembered (a `wait` makes the commit fail) |
//! | [`unblock`](PollDesc::unblock) with I/O  | waiter → ready  | the waiter is handed back, to be woken             |
//! | [`unblock`](PollDesc::unblock) without I/O (close, deadline) | wait → nil | the commit fails; the waiter re-checks errors |
//! | [`unblock`](PollDesc::unblock) without I/O (close, deadline) | waiter → nil | the waiter is handed back; it re-checks errors |
//! | [`unblock`](PollDesc::unblock), other cases | unchanged    | nothing to do                                      |
//!
//! # Why no wake-up is lost
//!
//! The waiter stores `wait` and *then* loads the error bits; the closer (or deadline) stores the
//! error bits and *then* loads the semaphore word. A `SeqCst` fence sits between the store and
//! the load on both sides, so at least one side sees the other (Dekker): either the waiter sees
//! the error and does not park, or the closer sees `wait`/a waiter and moves it. Readiness needs no bits: its CAS on the word itself either
//! consumes the announcement (`wait → ready`, the commit then fails) or finds the committed waiter.
//! The commit runs after the waiter has switched away (Go's `gopark(netpollblockcommit)`), so any
//! actor that sees a waiter in the word may wake it at once. The loom models in
//! `reactor/tests/loom_poll_desc.rs` check all of this.
//!
//! # Info bits (Go's `atomicInfo`)
//!
//! | bit                  | set by                        | cleared by                       |
//! |----------------------|-------------------------------|----------------------------------|
//! | `CLOSING`            | [`evict`](PollDesc::evict)    | never (a record is not reused)   |
//! | `EVENT_ERR`          | an event that is only `EPOLLERR` | any other event               |
//! | `READ_EXPIRED`       | [`expire`](PollDesc::expire)`(Read)`  | [`clear_expired`](PollDesc::clear_expired) |
//! | `WRITE_EXPIRED`      | [`expire`](PollDesc::expire)`(Write)` | [`clear_expired`](PollDesc::clear_expired) |
//! | `DEREGISTERED`       | the first [`Poller::close`](crate::Poller::close) | never: a second close must not `EPOLL_CTL_DEL` an fd number someone else reuses |

#![forbid(unsafe_code)]

use std::fmt;
use std::num::NonZeroUsize;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::SeqCst;

use crate::error::PollError;
use crate::loom::{AtomicU32, AtomicUsize, fence};
use crate::sys::Readiness;
use crate::token::Token;

/// `pdNil`.
const PD_NIL: usize = 0;
/// `pdReady`.
const PD_READY: usize = 1;
/// `pdWait`.
const PD_WAIT: usize = 2;

const CLOSING: u32 = 1 << 0;
const EVENT_ERR: u32 = 1 << 1;
const READ_EXPIRED: u32 = 1 << 2;
const WRITE_EXPIRED: u32 = 1 << 3;
const DEREGISTERED: u32 = 1 << 4;

/// A direction of I/O: Go's `mode` argument, `'r'` or `'w'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `'r'`: reading, accepting, waiting for EOF.
    Read,
    /// `'w'`: writing, connecting.
    Write,
}

/// Something parked on a [`PollDesc`], chosen by the reactor's user: a task reference in the
/// runtime, a thread slot in the tests. The reactor stores it and hands it back; it never
/// looks inside.
///
/// It is a non-zero word other than 1 and 2, the values Go reserves for `pdReady` and `pdWait`.
/// A pointer always qualifies; an index qualifies as `index + 3`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias = "g")]
pub struct Waiter(NonZeroUsize);

impl Waiter {
    /// The smallest word a waiter may be.
    pub const MIN: usize = 3;

    /// A waiter from a word; `None` for 0, 1 and 2.
    pub fn new(word: usize) -> Option<Waiter> {
        if word < Self::MIN { None } else { NonZeroUsize::new(word).map(Waiter) }
    }

    /// The word given to [`Waiter::new`].
    pub fn get(self) -> usize {
        self.0.get()
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Waiter({:#x})", self.0)
    }
}

/// What [`PollDesc::prepare`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "Park means the caller announced a wait and must park, then call complete()"]
pub enum Prepared {
    /// Readiness was pending and is now consumed: retry the syscall at once.
    Ready,
    /// The wait is announced: park, let the scheduler call [`PollDesc::commit`], and after
    /// waking (or a failed commit) call [`PollDesc::complete`].
    Park,
}

/// The wait state of one registered fd (Go's `pollDesc`).
///
/// A `PollDesc` is created by [`Poller::open`](crate::Poller::open) and shared (as an `Arc`)
/// between the poller, which delivers readiness into it, and the fd's owner, which waits on it.
/// It is never reused for another fd: a closed record stays closed.
#[doc(alias = "pollDesc")]
pub struct PollDesc {
    /// The OS fd; constant for the record's life.
    fd: RawFd,
    /// What epoll says when this fd is ready: the slot and its generation.
    token: Token,
    /// Readers' semaphore: nil / ready / wait / a waiter.
    rg: AtomicUsize,
    /// Writers' semaphore: nil / ready / wait / a waiter.
    wg: AtomicUsize,
    /// Go's `atomicInfo`: CLOSING, EVENT_ERR, READ_EXPIRED, WRITE_EXPIRED, readable lock-free.
    info: AtomicU32,
}

impl PollDesc {
    /// A fresh record for `fd`, named by `token` in epoll.
    pub fn new(fd: RawFd, token: Token) -> PollDesc {
        PollDesc {
            fd,
            token,
            rg: AtomicUsize::new(PD_NIL),
            wg: AtomicUsize::new(PD_NIL),
            info: AtomicU32::new(0),
        }
    }

    /// The fd this record watches.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The token epoll carries for this record.
    pub fn token(&self) -> Token {
        self.token
    }

    fn sem(&self, mode: Mode) -> &AtomicUsize {
        match mode {
            Mode::Read => &self.rg,
            Mode::Write => &self.wg,
        }
    }

    /// Whether [`evict`](PollDesc::evict) has run.
    pub fn is_closing(&self) -> bool {
        self.info.load(SeqCst) & CLOSING != 0
    }

    /// `netpollcheckerr`: the error a wait in `mode` would end with right now, if any.
    #[doc(alias = "netpollcheckerr")]
    pub fn check_err(&self, mode: Mode) -> Result<(), PollError> {
        let info = self.info.load(SeqCst);
        if info & CLOSING != 0 {
            return Err(PollError::Closing);
        }
        let expired = match mode {
            Mode::Read => READ_EXPIRED,
            Mode::Write => WRITE_EXPIRED,
        };
        if info & expired != 0 {
            return Err(PollError::Timeout);
        }
        // "Report an event scanning error only on a read event. An error on a write event
        // will be captured in a subsequent write call that is able to report a more
        // specific error."
        if mode == Mode::Read && info & EVENT_ERR != 0 {
            return Err(PollError::NotPollable);
        }
        Ok(())
    }

    /// `poll_runtime_pollReset`: fail fast on an error, else forget stale readiness in `mode`.
    ///
    /// Go calls it before each read or write syscall. A runtime that keeps readiness across
    /// syscalls (to skip the read that would return EAGAIN) does not call it.
    #[doc(alias = "poll_runtime_pollReset")]
    pub fn reset(&self, mode: Mode) -> Result<(), PollError> {
        self.check_err(mode)?;
        // Only `ready` is forgotten: a `wait` or a waiter belongs to a caller in the middle of
        // a wait, and the one-waiter-per-direction rule says that caller is us.
        let _ = self.sem(mode).compare_exchange(PD_READY, PD_NIL, SeqCst, SeqCst);
        Ok(())
    }

    /// The first half of `netpollblock`: consume pending readiness, or announce a wait.
    ///
    /// - `Ok(Ready)`: readiness was pending; retry the syscall, do not park.
    /// - `Ok(Park)`: announced; the caller parks and has the scheduler call
    ///   [`commit`](PollDesc::commit) once it is off its stack, then calls
    ///   [`complete`](PollDesc::complete).
    /// - `Err(e)`: closing, timed out or not pollable; nothing is left announced.
    ///
    /// # Panics
    /// If another waiter is already announced or parked in `mode` (Go: "double wait"): the
    /// fd layer above must serialise waiters per direction.
    #[doc(alias = "netpollblock")]
    pub fn prepare(&self, mode: Mode) -> Result<Prepared, PollError> {
        self.check_err(mode)?;
        let sem = self.sem(mode);
        loop {
            if sem.compare_exchange(PD_READY, PD_NIL, SeqCst, SeqCst).is_ok() {
                return Ok(Prepared::Ready);
            }
            match sem.compare_exchange(PD_NIL, PD_WAIT, SeqCst, SeqCst) {
                Ok(_) => break,
                // Readiness slipped in between the two CASes: take it on the next turn.
                Err(PD_READY) => continue,
                Err(other) => panic!(
                    "reactor: double wait on fd {} ({mode:?}): found {other:#x}; \
                     one waiter per direction",
                    self.fd
                ),
            }
        }
        // "need to recheck error states after setting gpp to pdWait". Store `wait`, fence,
        // load the bits; the closer stores a bit, fences, loads the word (`mark`):
        // one of the two loads sees the other's store.
        fence(SeqCst);
        if let Err(e) = self.check_err(mode) {
            // Withdraw the announcement. Readiness that raced in is still readiness (Go's
            // netpollblock returns `old == pdReady` here too).
            return match sem.swap(PD_NIL, SeqCst) {
                PD_READY => Ok(Prepared::Ready),
                _ => Err(e),
            };
        }
        Ok(Prepared::Park)
    }

    /// `netpollblockcommit`: publish the parked waiter, `wait → waiter`.
    ///
    /// Runs on the scheduler side, after the waiter is off its stack (or, for a thread, before
    /// it sleeps). Returns `false` when readiness, a close or a deadline moved the word first:
    /// the caller must then not sleep, but resume the waiter at once.
    #[doc(alias = "netpollblockcommit")]
    pub fn commit(&self, mode: Mode, waiter: Waiter) -> bool {
        self.sem(mode).compare_exchange(PD_WAIT, waiter.get(), SeqCst, SeqCst).is_ok()
    }

    /// The end of `netpollblock`: after waking or a failed commit, reset the word to nil and
    /// say whether readiness was what ended the wait.
    ///
    /// `false` means a close or deadline ended it: check [`check_err`](PollDesc::check_err);
    /// if that is `Ok`, the deadline was moved meanwhile and the wait should start over.
    ///
    /// # Panics
    /// If the word still holds `wait` or a waiter: the caller was not woken by anyone, which
    /// is a bug in the caller's park (Go: "corrupted polldesc").
    pub fn complete(&self, mode: Mode) -> bool {
        match self.sem(mode).swap(PD_NIL, SeqCst) {
            PD_READY => true,
            PD_NIL => false,
            other => panic!("reactor: corrupted poll descriptor for fd {}: {other:#x}", self.fd),
        }
    }

    /// `poll_runtime_pollWait`: wait until `mode` is ready, or fail with the error that ended
    /// the wait. Built from [`prepare`](PollDesc::prepare), `park` and
    /// [`complete`](PollDesc::complete).
    ///
    /// `park(self, mode)` must arrange for [`commit`](PollDesc::commit) to be called with the
    /// caller's [`Waiter`], and return once that commit failed or the waiter was woken.
    #[doc(alias = "poll_runtime_pollWait")]
    pub fn wait(&self, mode: Mode, mut park: impl FnMut(&PollDesc, Mode)) -> Result<(), PollError> {
        loop {
            match self.prepare(mode)? {
                Prepared::Ready => return Ok(()),
                Prepared::Park => {
                    park(self, mode);
                    if self.complete(mode) {
                        return Ok(());
                    }
                    // Woken without readiness: `prepare` re-checks the errors. If none is set,
                    // a deadline fired and was reset before we ran: "pretend it has not
                    // happened and retry".
                }
            }
        }
    }

    /// `netpollunblock`: end the wait in `mode`. With `ioready` the readiness is remembered for
    /// the next waiter; without it (close, deadline) nothing is remembered. Returns the parked
    /// waiter, if there was one; the caller wakes it.
    #[doc(alias = "netpollunblock")]
    pub fn unblock(&self, mode: Mode, ioready: bool) -> Option<Waiter> {
        let sem = self.sem(mode);
        let mut old = sem.load(SeqCst);
        loop {
            if old == PD_READY {
                return None;
            }
            if old == PD_NIL && !ioready {
                // "Only set pdReady for ioready. runtime_pollWait will check for timeout/
                // cancel before waiting."
                return None;
            }
            let new = if ioready { PD_READY } else { PD_NIL };
            match sem.compare_exchange(old, new, SeqCst, SeqCst) {
                Ok(_) => return Waiter::new(old), // None for nil and wait
                Err(now) => old = now,
            }
        }
    }

    /// `netpollready` (with `setEventErr`): deliver one epoll event. Pushes the waiters to wake
    /// onto `out` and returns how many it pushed.
    #[doc(alias = "netpollready")]
    pub fn ready(&self, readiness: Readiness, out: &mut Vec<Waiter>) -> usize {
        let (r, w) = (readiness.is_readable(), readiness.is_writable());
        if !r && !w {
            return 0;
        }
        self.set_event_err(readiness.is_error_only());
        let before = out.len();
        if r {
            out.extend(self.unblock(Mode::Read, true));
        }
        if w {
            out.extend(self.unblock(Mode::Write, true));
        }
        out.len() - before
    }

    /// Go's `setEventErr`: the bit follows the latest event. Written only when it changes, so
    /// the common event costs a load, not a read-modify-write.
    fn set_event_err(&self, on: bool) {
        let info = self.info.load(SeqCst);
        if (info & EVENT_ERR != 0) != on {
            if on {
                self.info.fetch_or(EVENT_ERR, SeqCst);
            } else {
                self.info.fetch_and(!EVENT_ERR, SeqCst);
            }
        }
    }

    /// `poll_runtime_pollUnblock`, the first step of closing: mark the record closing, then
    /// hand back the parked waiters of both directions (read, write), which fail with
    /// [`PollError::Closing`]. Every later [`prepare`](PollDesc::prepare) fails the same way.
    /// Idempotent: a second call finds nobody to wake.
    #[doc(alias = "poll_runtime_pollUnblock")]
    pub fn evict(&self) -> (Option<Waiter>, Option<Waiter>) {
        self.mark(CLOSING);
        (self.unblock(Mode::Read, false), self.unblock(Mode::Write, false))
    }

    /// The expiry half of `netpolldeadlineimpl`: the deadline of `mode` has passed. Marks it
    /// expired and hands back the parked waiter, which fails with [`PollError::Timeout`], as
    /// does every later wait in `mode` until [`clear_expired`](PollDesc::clear_expired).
    #[doc(alias = "netpolldeadlineimpl")]
    pub fn expire(&self, mode: Mode) -> Option<Waiter> {
        let bit = match mode {
            Mode::Read => READ_EXPIRED,
            Mode::Write => WRITE_EXPIRED,
        };
        self.mark(bit);
        self.unblock(mode, false)
    }

    /// Sets an error bit and fences, before the caller looks at the semaphore words: the other
    /// half of the re-check in [`prepare`](PollDesc::prepare). (`SeqCst` on the two accesses
    /// alone would do in the C++ model; the fences say it explicitly, and loom models fences
    /// exactly, while it treats a `SeqCst` access as `AcqRel` — loom #180.)
    fn mark(&self, bit: u32) {
        self.info.fetch_or(bit, SeqCst);
        fence(SeqCst);
    }

    /// Claims the one deregistration of this record: `true` for the first caller only.
    pub(crate) fn claim_deregister(&self) -> bool {
        self.info.fetch_or(DEREGISTERED, SeqCst) & DEREGISTERED == 0
    }

    /// The deadline of `mode` was moved or removed: waits in `mode` work again.
    pub fn clear_expired(&self, mode: Mode) {
        let bit = match mode {
            Mode::Read => READ_EXPIRED,
            Mode::Write => WRITE_EXPIRED,
        };
        self.info.fetch_and(!bit, SeqCst);
    }
}

impl fmt::Debug for PollDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollDesc")
            .field("fd", &self.fd)
            .field("token", &self.token)
            .field("rg", &self.rg.load(SeqCst))
            .field("wg", &self.wg.load(SeqCst))
            .field("info", &self.info.load(SeqCst))
            .finish()
    }
}
