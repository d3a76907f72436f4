//! The netpoller: register fds, wait for readiness, hand back the waiters to wake.
//!
//! Mirrors: `runtime/netpoll.go` (Go 1.21) `netpollGenericInit`, `poll_runtime_pollOpen`,
//! `poll_runtime_pollClose`, and `runtime/netpoll_epoll.go` `netpoll(delay)` and `netpollBreak`.
//!
//! ```text
//!  runtime (gort::sched, gort::net)            reactor
//!  ─────────────────────────────────           ───────────────────────────────────────────
//!  fd opened ───────────────────────► open(fd) ── cache.alloc ── epoll_ctl(ADD, ET)
//!  read → EAGAIN ──► pd.prepare / park ─► pd.commit (on the scheduler side)
//!  find_runnable ──────────────────► netpoll(delay) ── epoll_wait ── cache lookup (token)
//!        ◄──────────── Vec<Waiter> ──────────────────── pd.ready ── unblock (CAS)
//!  new work for a sleeper ─────────► netpoll_break ── CAS pending ── write(pipe)
//!  close ──► pd.evict, wake ───────► close(pd) ── epoll_ctl(DEL) ── cache.free (generation+1)
//! ```
//!
//! Invariants:
//! - The reactor never calls into its user: `netpoll` returns waiters, it does not wake them
//!   (Go's `gList`). The arrow points one way, so the reactor can be tested with OS threads.
//! - A record is in the cache before its fd is added to epoll, and its slot's generation moves
//!   on before the slot can be reused: every event names a record that is live, or is stale
//!   and dropped (and counted).
//! - `EPOLL_CTL_DEL` happens at most once per record ([`PollDesc`]'s `DEREGISTERED` claim), so a
//!   second close cannot remove the registration of another fd that reused the number.
//! - Any number of threads may call `netpoll` at once; the runtime arranges that at most one
//!   of them blocks. `netpoll` allocates nothing: the event array lives on the caller's stack
//!   and the waiters go into the caller's `Vec`.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::poll_cache::PollCache;
use crate::poll_desc::{PollDesc, Waiter};
use crate::sys::{Epoll, Events};
use crate::token::Token;
use crate::wakeup::Wakeup;

/// One epoll instance, its wake-up pipe and its records. Go has one per process; a runtime
/// has one (architecture decision 2). `Send + Sync`: share it by reference or `Arc`.
#[derive(Debug)]
pub struct Poller {
    epoll: Epoll,
    wakeup: Wakeup,
    cache: PollCache,
    /// Events dropped because their token's generation was stale.
    stale_events: AtomicU64,
}

/// Counters a runtime's trace or a test can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollerStats {
    /// Records currently registered.
    pub registered: usize,
    /// Slots kept out of reuse because `EPOLL_CTL_DEL` failed.
    pub leaked: usize,
    /// Events dropped because they named a closed record.
    pub stale_events: u64,
    /// Bytes written to the wake-up pipe (merged `netpoll_break` calls write none).
    pub wakeup_writes: u64,
}

impl Poller {
    /// `netpollinit`: an epoll instance and a self-pipe whose read end is registered
    /// level-triggered under [`Token::WAKEUP`].
    #[doc(alias = "netpollinit")]
    pub fn new() -> io::Result<Poller> {
        let epoll = Epoll::new()?;
        let wakeup = Wakeup::new()?;
        epoll.add_level_readable(wakeup.read_fd(), Token::WAKEUP.as_u64())?;
        Ok(Poller { epoll, wakeup, cache: PollCache::default(), stale_events: AtomicU64::new(0) })
    }

    /// `poll_runtime_pollOpen`: registers `fd` (which must be non-blocking) once, for both
    /// directions, edge-triggered, and returns its record.
    ///
    /// Errors are epoll's: `EEXIST` if `fd` is registered already, `EPERM` for a regular file,
    /// `EBADF` for a closed fd, `ENOMEM`/`ENOSPC` at the kernel's limits.
    #[doc(alias = "poll_runtime_pollOpen")]
    pub fn open(&self, fd: RawFd) -> io::Result<Arc<PollDesc>> {
        let pd = self.cache.alloc(fd)?;
        if let Err(e) = self.epoll.add(fd, pd.token().as_u64()) {
            // Nothing was registered, so no event can name the slot: give it straight back.
            pd.claim_deregister();
            self.cache.free(&pd, false);
            return Err(e);
        }
        Ok(pd)
    }

    /// `poll_runtime_pollClose`: removes the record's fd from epoll (`EPOLL_CTL_DEL`) and frees
    /// its slot for reuse under a new generation. Call it *before* closing the fd.
    ///
    /// If a waiter may be parked on the record, call [`PollDesc::evict`] first and wake the
    /// waiters it returns: that step is the caller's, since only the caller can wake them.
    /// When nobody is parked, `close` marks the record closing itself. A second `close` of the same record returns an
    /// error and touches nothing. If `EPOLL_CTL_DEL` fails, the error is returned and the slot
    /// is kept out of reuse (epoll may still report the fd under the old token).
    ///
    /// # Panics
    /// If a waiter is still parked on the record (Go: "close polldesc w/o unblock").
    #[doc(alias = "poll_runtime_pollClose")]
    pub fn close(&self, pd: &PollDesc) -> io::Result<()> {
        let (r, w) = pd.evict();
        if r.is_some() || w.is_some() {
            panic!(
                "reactor: close of fd {} with a waiter still parked; call PollDesc::evict first \
                 and wake what it returns",
                pd.fd()
            );
        }
        if !pd.claim_deregister() {
            return Err(io::Error::other(format!(
                "reactor: fd {} was closed in the poller already",
                pd.fd()
            )));
        }
        match self.epoll.delete(pd.fd()) {
            Ok(()) => {
                self.cache.free(pd, false);
                Ok(())
            }
            Err(e) => {
                log::warn!("reactor: EPOLL_CTL_DEL of fd {} failed ({e}); slot kept", pd.fd());
                self.cache.free(pd, true);
                Err(e)
            }
        }
    }

    /// `netpoll(delay)`: waits for readiness and returns the waiters to wake.
    ///
    /// `None` blocks until an event or a [`netpoll_break`](Poller::netpoll_break);
    /// `Some(ZERO)` never blocks; a positive delay is rounded up to whole milliseconds. The
    /// result may be empty: a break, a timeout, EINTR during a timed wait, or readiness nobody
    /// waited for. Allocates a new `Vec`; a runtime passes its own to
    /// [`netpoll_into`](Poller::netpoll_into).
    pub fn netpoll(&self, delay: Option<Duration>) -> io::Result<Vec<Waiter>> {
        let mut out = Vec::new();
        self.netpoll_into(delay, &mut out)?;
        Ok(out)
    }

    /// [`netpoll`](Poller::netpoll) into the caller's `Vec`: appends the waiters to wake and
    /// returns how many it appended. Allocates nothing once `out` has room.
    pub fn netpoll_into(
        &self,
        delay: Option<Duration>,
        out: &mut Vec<Waiter>,
    ) -> io::Result<usize> {
        let mut events = Events::new();
        self.wait_events(delay, &mut events)?;
        self.dispatch(&events, out)
    }

    /// The first half of `netpoll`: `epoll_wait` into `events` (at most
    /// [`EVENTS_CAPACITY`](crate::EVENTS_CAPACITY)). Returns how many arrived.
    pub fn wait_events(&self, delay: Option<Duration>, events: &mut Events) -> io::Result<usize> {
        self.epoll.wait(events, delay)
    }

    /// The second half of `netpoll`: maps each event to its record (dropping stale ones),
    /// delivers the readiness, and appends the waiters to wake. Drains the wake-up pipe if the
    /// batch came from a blocking wait.
    pub fn dispatch(&self, events: &Events, out: &mut Vec<Waiter>) -> io::Result<usize> {
        let before = out.len();
        let mut records = 0;
        for ev in events.iter() {
            if ev.token == Token::WAKEUP.as_u64() {
                if !ev.readiness.is_readable() || ev.readiness.is_error_only() {
                    log::error!("reactor: wake-up pipe ready for something unexpected: {ev:?}");
                }
                self.wakeup.on_ready(events.blocking())?;
            } else {
                records += 1;
            }
        }
        if records == 0 {
            return Ok(0);
        }
        let stale = self.cache.with(|cache| {
            let mut stale = 0;
            for ev in events.iter().filter(|ev| ev.token != Token::WAKEUP.as_u64()) {
                match cache.lookup(Token::from_u64(ev.token)) {
                    Some(pd) => {
                        pd.ready(ev.readiness, out);
                    }
                    None => stale += 1,
                }
            }
            stale
        });
        if stale > 0 {
            self.stale_events.fetch_add(stale, Relaxed);
        }
        Ok(out.len() - before)
    }

    /// `netpollBreak`: makes a thread blocked in [`netpoll`](Poller::netpoll) return, or the
    /// next blocking call return at once. Concurrent calls merge into one pipe write.
    #[doc(alias = "netpollBreak")]
    pub fn netpoll_break(&self) -> io::Result<()> {
        self.wakeup.wake()
    }

    /// `netpollIsPollDescriptor`: whether `fd` is one of the poller's own (epoll, pipe ends).
    #[doc(alias = "netpollIsPollDescriptor")]
    pub fn is_poll_descriptor(&self, fd: RawFd) -> bool {
        let (rd, wr) = self.wakeup.fds();
        fd == self.epoll.fd() || fd == rd || fd == wr
    }

    /// The counters.
    pub fn stats(&self) -> PollerStats {
        let (registered, leaked) = self.cache.counts();
        PollerStats {
            registered,
            leaked,
            stale_events: self.stale_events.load(Relaxed),
            wakeup_writes: self.wakeup.writes(),
        }
    }
}
