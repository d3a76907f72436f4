//! epoll: create, register once, wait.
//!
//! Mirrors: `runtime/netpoll_epoll.go` (Go 1.19; 1.21 for the tagged `data`) —
//! `netpollinit`, `netpollopen`, `netpollclose` and the `epoll_wait` half of `netpoll`.
//!
//! Invariants:
//! - The epoll fd is created close-on-exec and lives as long as the [`Epoll`] value.
//! - A socket is registered exactly once, for both directions, edge-triggered
//!   (`EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET`), and never modified: readiness is a hint that
//!   the next syscall confirms, so there is nothing to re-arm.
//! - The wake-up fd is registered level-triggered (`EPOLLIN` only): it stays readable until
//!   a blocking poller drains it, so a non-blocking poll that sees it does not lose it.
//! - `epoll_event.data` holds an opaque 64-bit token chosen above this layer.
//!
//! Timeout conversion (Go's table in `netpoll`, identical in 1.14, 1.19, 1.23):
//!
//! | delay                  | `epoll_wait` timeout | why                                          |
//! |------------------------|----------------------|----------------------------------------------|
//! | `None`                 | `-1`                 | block until an event or a wake-up            |
//! | `Some(0)`              | `0`                  | never block                                  |
//! | `0 < d`                | `ceil(d / 1 ms)`     | round up: a 0 ms wait would spin (never 0)   |
//! | `d ≥ 1e9 ms` (~11.5 d) | `1e9`                | Go's cap; also keeps the value in an `i32`   |
//!
//! EINTR: a timed wait returns an empty batch so the caller recomputes how long to sleep (Go:
//! "return ... to recalculate how long we should sleep now"); an infinite or zero wait retries.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How many events one `epoll_wait` may return: Go's `var events [128]epollevent`.
pub const EVENTS_CAPACITY: usize = 128;

/// Go caps the timeout at 1e9 ms.
const MAX_WAIT_MS: u128 = 1_000_000_000;

/// What one readiness event says about its fd, in portable terms.
///
/// Mirrors the mode computation in Go's `netpoll`: `'r'` for `IN|RDHUP|HUP|ERR`, `'w'` for
/// `OUT|HUP|ERR`, and the event-error bit only when the event is *exactly* `EPOLLERR`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness(u32);

impl Readiness {
    /// The read side may make progress (data, EOF, hang-up or an error to collect).
    pub fn is_readable(self) -> bool {
        self.0 & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// The write side may make progress (buffer space, hang-up or an error to collect).
    pub fn is_writable(self) -> bool {
        self.0 & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// The event is an error and nothing else (Go's `ev.events == _EPOLLERR`).
    pub fn is_error_only(self) -> bool {
        self.0 == libc::EPOLLERR as u32
    }

    /// Readiness for reading only (`EPOLLIN`), for tests and examples.
    pub const READABLE: Readiness = Readiness(libc::EPOLLIN as u32);
    /// Readiness for writing only (`EPOLLOUT`), for tests and examples.
    pub const WRITABLE: Readiness = Readiness(libc::EPOLLOUT as u32);
    /// An error alone (`EPOLLERR`), for tests and examples.
    pub const ERROR: Readiness = Readiness(libc::EPOLLERR as u32);
}

/// One event as the portable layers see it: the token given at registration, and the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `data` word the fd was registered with ([`Poller::open`](crate::Poller::open)).
    pub token: u64,
    /// What became ready.
    pub readiness: Readiness,
}

/// The buffer `epoll_wait` fills: a fixed array, reused, never allocated per call.
///
/// Go keeps it on the goroutine's stack (`var events [128]epollevent`); we do the same: a
/// caller keeps one `Events` on its stack (2 KiB at most) or in its own state.
pub struct Events {
    /// Filled by the kernel; only `buf[..len]` is initialised. Left uninitialised otherwise, so
    /// a `netpoll(0)` does not pay for zeroing 128 entries it will not read.
    buf: [MaybeUninit<libc::epoll_event>; EVENTS_CAPACITY],
    /// How many entries the last wait (or [`Events::push`]) initialised.
    len: usize,
    /// Whether the last wait was allowed to block (delay ≠ 0): only such a poller drains the
    /// wake-up pipe.
    blocking: bool,
}

impl Events {
    /// An empty buffer.
    pub fn new() -> Events {
        Events { buf: [MaybeUninit::uninit(); EVENTS_CAPACITY], len: 0, blocking: false }
    }

    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last wait returned nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events of the last wait, in kernel order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        // `epoll_event` is packed on x86_64: copy the fields out, never take references to them.
        self.buf[..self.len].iter().map(|ev| {
            // SAFETY: the first `len` entries were written by epoll_wait or `push`.
            let ev = unsafe { ev.assume_init() };
            let (token, events) = (ev.u64, ev.events);
            Event { token, readiness: Readiness(events) }
        })
    }

    /// Appends an event by hand, as a test of a stale or unexpected event would.
    /// Returns `false` when the buffer is full.
    pub fn push(&mut self, event: Event) -> bool {
        if self.len == EVENTS_CAPACITY {
            return false;
        }
        self.buf[self.len] =
            MaybeUninit::new(libc::epoll_event { events: event.readiness.0, u64: event.token });
        self.len += 1;
        true
    }

    /// Forgets the events of the last wait.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Whether the last wait was allowed to block (its delay was not zero).
    pub fn blocking(&self) -> bool {
        self.blocking
    }

    /// Marks the batch as coming from a blocking wait, as a test that pushes events by hand
    /// may need.
    pub fn set_blocking(&mut self, blocking: bool) {
        self.blocking = blocking;
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// An epoll instance (Go's global `epfd`).
#[derive(Debug)]
pub struct Epoll {
    /// The epoll fd, closed on drop.
    fd: OwnedFd,
}

impl Epoll {
    /// `netpollinit`: `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flags word and returns a new fd or -1.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// The epoll fd itself (Go's `netpollIsPollDescriptor`).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `netpollopen`: registers `fd` once for both directions, edge-triggered.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let flags = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(libc::EPOLL_CTL_ADD, fd, flags as u32, token)
    }

    /// Registers the wake-up fd: readable, level-triggered (no `EPOLLET`).
    pub fn add_level_readable(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    /// `netpollclose`: `EPOLL_CTL_DEL`. Must run before the fd is closed.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `self.fd` is a live epoll fd; `ev` is a valid epoll_event that outlives the
        // call (the kernel ignores it for EPOLL_CTL_DEL but it must be non-null before 2.6.9).
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev))?;
        Ok(())
    }

    /// The wait half of `netpoll(delay)`: fills `events` and returns how many there are.
    ///
    /// `None` blocks until an event; `Some(ZERO)` never blocks; a positive delay is rounded up
    /// to whole milliseconds. An EINTR during a timed wait returns `Ok(0)`.
    pub fn wait(&self, events: &mut Events, delay: Option<Duration>) -> io::Result<usize> {
        let timeout = timeout_ms(delay);
        events.blocking = timeout != 0;
        loop {
            // SAFETY: `self.fd` is a live epoll fd; `events.buf` is writable memory for exactly
            // EVENTS_CAPACITY epoll_event values (MaybeUninit has the same layout), which is the
            // count we pass; the kernel initialises the first `n` it returns.
            let res = syscall!(epoll_wait(
                self.fd.as_raw_fd(),
                events.buf.as_mut_ptr().cast::<libc::epoll_event>(),
                EVENTS_CAPACITY as libc::c_int,
                timeout,
            ));
            match res {
                Ok(n) => {
                    events.len = n as usize;
                    return Ok(events.len);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    events.len = 0;
                    if timeout > 0 {
                        // A timed sleep: let the caller recompute the delay.
                        return Ok(0);
                    }
                    // -1 (forever) or 0 (a peek): just try again.
                }
                Err(e) => {
                    events.len = 0;
                    return Err(e);
                }
            }
        }
    }
}

/// Go's `delay` → `waitms` conversion (see the table at the top of this file).
pub fn timeout_ms(delay: Option<Duration>) -> libc::c_int {
    match delay {
        None => -1,
        Some(d) if d.is_zero() => 0,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(MAX_WAIT_MS) as libc::c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounding_matches_go() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(999))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1001))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_secs(3))), 3000);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), 1_000_000_000);
    }

    #[test]
    fn readiness_modes_match_go() {
        let r = |flags: i32| Readiness(flags as u32);
        assert!(r(libc::EPOLLIN).is_readable() && !r(libc::EPOLLIN).is_writable());
        assert!(r(libc::EPOLLOUT).is_writable() && !r(libc::EPOLLOUT).is_readable());
        assert!(r(libc::EPOLLRDHUP).is_readable() && !r(libc::EPOLLRDHUP).is_writable());
        assert!(r(libc::EPOLLHUP).is_readable() && r(libc::EPOLLHUP).is_writable());
        assert!(r(libc::EPOLLERR).is_error_only());
        assert!(!r(libc::EPOLLERR | libc::EPOLLIN).is_error_only());
    }
}
