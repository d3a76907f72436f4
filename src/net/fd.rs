//! A socket the runtime polls: the only place where EAGAIN becomes parking.
//!
//! Mirrors: `internal/poll/fd_unix.go` (Go 1.19) — `FD`, `FD.Read`, `FD.Write`, `FD.Accept`,
//! `FD.Close`, `destroy`; `internal/poll/fd_mutex.go` — `fdMutex` (`rwlock`, `rwunlock`,
//! `incref`, `increfAndClose`); `internal/poll/fd_poll_runtime.go` — `setDeadlineImpl`,
//! `convertErr`; `runtime/netpoll.go` — `netpolldeadlineimpl` (the deadline timers).
//!
//! # One operation
//!
//! ```text
//! lock the direction (one reader, one writer at a time; others wait on its semaphore)
//!   check closing / expired deadline                 (Go: prepareRead → pollReset)
//!   loop: syscall → data: done
//!                 → EAGAIN: park on the PollDesc (sched::wait_io), then retry
//! unlock; if the fd was closed meanwhile and this was the last operation, wake the closer
//! ```
//!
//! A read that returned less than asked (or EAGAIN) leaves the direction *drained*: the next
//! operation parks first instead of issuing a syscall that would only say EAGAIN (edge-triggered
//! epoll sends a new event when more data comes, so nothing is missed). That keeps an echo at two
//! syscalls per round trip, where Go pays three (performance.md).
//!
//! # The lock (Go's `fdMutex`)
//!
//! One reader and one writer at a time, a count of operations in flight, and closing, in one
//! atomic word: `fd_mutex.rs`. An uncontended operation takes and releases it with one
//! compare-and-swap each.
//!
//! # Close (Go's `FD.Close` + `destroy`)
//!
//! 1. mark closed and wake every waiting locker (they fail with the closed error);
//! 2. `PollDesc::evict`: wake the tasks parked on readiness (they fail the same way);
//! 3. wait until the operations in flight have let go (no reference left);
//! 4. `Poller::close` (`EPOLL_CTL_DEL`), then `close(2)`: exactly once.
//!
//! Invariants: the OS fd is used only by an operation holding a reference, so when step 4 runs
//! nobody can be inside a syscall on it, and no syscall can reach a reused fd number afterwards.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use reactor::socket::Socket;
use reactor::{Mode, PollDesc, PollError};

use super::fd_mutex::{FdMutex, Locked};
use crate::sched::{self, Shared, worker};
use crate::time;

/// The error of an operation on a closed socket: Go's `net.ErrClosed`, "use of closed network
/// connection". Recognise it with [`is_closed`].
pub(crate) fn closed_error() -> io::Error {
    PollError::Closing.into()
}

/// Whether `e` says the socket was closed (Go's `errors.Is(err, net.ErrClosed)`).
pub fn is_closed(e: &io::Error) -> bool {
    e.get_ref().and_then(|i| i.downcast_ref::<PollError>()) == Some(&PollError::Closing)
}

/// Deadlines per direction (Go's `pd.rd`/`pd.wd` with `rseq`/`wseq`).
#[derive(Default)]
struct Deadlines {
    read: Option<Instant>,
    write: Option<Instant>,
    /// Bumped by every change, so a timer armed for an older deadline does nothing.
    rseq: u64,
    wseq: u64,
}

/// Go's `poll.FD` over a non-blocking socket registered with the runtime's poller.
pub(crate) struct Fd {
    /// `None` once closed. Held read-locked only across one non-blocking syscall.
    sock: RwLock<Option<Socket>>,
    raw: RawFd,
    pd: Arc<PollDesc>,
    shared: Arc<Shared>,
    mutex: FdMutex,
    deadlines: Mutex<Deadlines>,
    /// The last read / write found the socket drained (see the module docs).
    read_drained: AtomicBool,
    write_drained: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Holds a direction's lock, or a plain reference, for one operation.
pub(crate) struct OpGuard<'a> {
    fd: &'a Fd,
    mode: Option<Mode>,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        // The last reference of a closed socket wakes its closer (`FdMutex::close_wait`).
        match self.mode {
            Some(mode) => self.fd.mutex.rwunlock(mode),
            None => self.fd.mutex.decref(),
        };
    }
}

impl Fd {
    /// Registers `sock` with the runtime's poller. Must be called inside a runtime.
    pub(crate) fn new(sock: Socket) -> io::Result<Arc<Fd>> {
        let w = worker::current().ok_or_else(|| {
            io::Error::other("gort: sockets need a runtime: use them inside gort::run or a task")
        })?;
        let shared = w.shared.clone();
        let raw = sock.as_raw_fd();
        let pd = shared.poller.open(raw)?;
        Ok(Arc::new(Fd {
            sock: RwLock::new(Some(sock)),
            raw,
            pd,
            shared,
            mutex: FdMutex::default(),
            deadlines: Mutex::default(),
            read_drained: AtomicBool::new(false),
            write_drained: AtomicBool::new(false),
        }))
    }

    /// The OS fd number (for `AsRawFd`; meaningless after close).
    pub(crate) fn raw(&self) -> RawFd {
        self.raw
    }

    /// Go's `rwlock` (with `mode`) or `incref` (without): one more operation in flight.
    pub(crate) fn lock(&self, mode: Option<Mode>) -> io::Result<OpGuard<'_>> {
        let got = match mode {
            Some(mode) => self.mutex.rwlock(mode)?,
            None => self.mutex.incref()?,
        };
        match got {
            Locked::Yes => Ok(OpGuard { fd: self, mode }),
            Locked::Closed => Err(closed_error()),
        }
    }

    /// Runs one syscall on the socket, if it is still open.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> io::Result<R> {
        let g = self.sock.read().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(s) => f(s),
            None => Err(closed_error()),
        }
    }

    fn drained(&self, mode: Mode) -> &AtomicBool {
        match mode {
            Mode::Read => &self.read_drained,
            Mode::Write => &self.write_drained,
        }
    }

    /// Parks until `mode` is (probably) ready, or fails with the closed / timeout error. On a
    /// thread outside the runtime, blocks the thread in `poll(2)` instead.
    pub(crate) fn wait(&self, mode: Mode) -> io::Result<()> {
        if crate::task::in_task() {
            sched::wait_io(&self.pd, mode).map_err(io::Error::from)
        } else {
            self.pd.check_err(mode).map_err(io::Error::from)?;
            let deadline = match mode {
                Mode::Read => lock(&self.deadlines).read,
                Mode::Write => lock(&self.deadlines).write,
            };
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match reactor::socket::wait_fd(self.raw, mode == Mode::Read, timeout)? {
                true => Ok(()),
                false => Err(PollError::Timeout.into()),
            }
        }
    }

    /// Go's I/O loop: `op` until it stops saying EAGAIN, parking in between. With `short`
    /// telling whether a successful result left the socket drained.
    pub(crate) fn io<R>(
        &self,
        mode: Mode,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
        short: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.pd.check_err(mode).map_err(io::Error::from)?;
        let drained = self.drained(mode);
        loop {
            if drained.load(Relaxed) {
                // Nothing will be there until a new edge: wait for it first (returns at once
                // if one came meanwhile).
                self.wait(mode)?;
            }
            match self.with(&mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained.store(true, Relaxed),
                Ok(r) => {
                    drained.store(short(&r), Relaxed);
                    crate::sched::coop_tick();
                    return Ok(r);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `wait_readable`/`wait_writable`: park until `mode` may make progress, the socket closes,
    /// or the deadline passes. Returns at once unless the last operation found it drained.
    pub(crate) fn wait_ready(&self, mode: Mode) -> io::Result<()> {
        let _g = self.lock(Some(mode))?;
        self.pd.check_err(mode).map_err(io::Error::from)?;
        if self.drained(mode).load(Relaxed) {
            self.wait(mode)?;
            self.drained(mode).store(false, Relaxed);
        }
        Ok(())
    }

    /// Go's `setDeadlineImpl` for one direction.
    pub(crate) fn set_deadline(self: &Arc<Self>, mode: Mode, t: Option<Instant>) -> io::Result<()> {
        let _g = self.lock(None)?;
        let mut d = lock(&self.deadlines);
        let seq = match mode {
            Mode::Read => {
                d.read = t;
                d.rseq += 1;
                d.rseq
            }
            Mode::Write => {
                d.write = t;
                d.wseq += 1;
                d.wseq
            }
        };
        drop(d);
        match t {
            None => self.pd.clear_expired(mode),
            Some(t) if t <= Instant::now() => self.expire(mode),
            Some(t) => {
                self.pd.clear_expired(mode);
                let weak: Weak<Fd> = Arc::downgrade(self);
                time::call_at(&self.shared, t, move |_| {
                    let Some(fd) = weak.upgrade() else { return };
                    let d = lock(&fd.deadlines);
                    let current = match mode {
                        Mode::Read => d.rseq,
                        Mode::Write => d.wseq,
                    };
                    drop(d);
                    if current == seq {
                        fd.expire(mode);
                    }
                });
            }
        }
        Ok(())
    }

    /// The deadline of `mode` has passed: fail the parked task and every later operation.
    fn expire(&self, mode: Mode) {
        if let Some(w) = self.pd.expire(mode) {
            sched::wake_io(&self.shared, w);
        }
    }

    /// Go's `FD.Close`: see the module docs. A second call returns the closed error.
    pub(crate) fn close(&self) -> io::Result<()> {
        if !self.mutex.incref_and_close()? {
            return Err(closed_error());
        }
        let (r, w) = self.pd.evict();
        for waiter in [r, w].into_iter().flatten() {
            sched::wake_io(&self.shared, waiter);
        }
        // Wait for the operations in flight to let go of the fd.
        self.mutex.close_wait();
        self.destroy()
    }

    /// Takes the socket back out of the runtime (for `into_std`): deregisters it and hands it
    /// over, still open. Fails if other handles share this fd, or if it was closed.
    pub(crate) fn into_socket(self: Arc<Self>) -> io::Result<Socket> {
        let fd = Arc::try_unwrap(self).map_err(|_| {
            io::Error::other("gort: into_std needs the only handle (drop the clones first)")
        })?;
        // The only handle, so nothing is in flight; closed, so that Drop does not close it.
        if !fd.mutex.incref_and_close()? {
            return Err(closed_error());
        }
        let _ = fd.pd.evict();
        fd.shared.poller.close(&fd.pd)?;
        let sock = fd.sock.write().unwrap_or_else(|p| p.into_inner()).take();
        sock.ok_or_else(closed_error)
    }

    /// Go's `destroy`: deregister, then close the OS fd.
    fn destroy(&self) -> io::Result<()> {
        let dereg = self.shared.poller.close(&self.pd);
        let sock = self.sock.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(sock); // close(2)
        dereg
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if !self.mutex.is_closed() {
            // The last handle went away without `close`: nothing can be in flight.
            let _ = self.pd.evict();
            let _ = self.destroy();
        }
    }
}
