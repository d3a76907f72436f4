//! Waking a poller that sleeps in `epoll_wait`, with concurrent wake-ups merged into one.
//!
//! Mirrors: `runtime/netpoll_epoll.go` (Go 1.19) `netpollBreak` and `netpollWakeSig`, and the
//! wake-up branch of `netpoll` that drains `netpollBreakRd`.
//!
//! Invariants:
//! - `pending` is true from the moment a waker wins the CAS until a *blocking* poller has
//!   drained the pipe. While it is true no other waker writes: a burst of 1 000 breaks costs
//!   one `write(2)` (PR #36294 measured ~90% less time for such bursts).
//! - Only a poller that blocked (delay ≠ 0) drains. A non-blocking `netpoll(0)` that sees the
//!   wake-up leaves it: the read end is level-triggered, so the next blocking poll returns at
//!   once and drains it then. A peek therefore never swallows a wake-up meant for a sleeper.
//! - A waker whose CAS fails has nothing to do: the poller it wants awake has not yet cleared
//!   `pending`, so it has not yet gone back to its run queues, and will see the waker's work.
//!
//! | `pending` | event                                  | next `pending` | pipe            |
//! |-----------|----------------------------------------|----------------|-----------------|
//! | false     | `wake` (CAS false→true wins)           | true           | one byte written |
//! | true      | `wake` (CAS fails)                     | true           | untouched        |
//! | true      | wake fd seen by a non-blocking poll    | true           | untouched        |
//! | true      | wake fd seen by a blocking poll        | false          | drained         |

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use crate::sys::{Pipe, Written};

/// The self-pipe plus Go's `netpollWakeSig`.
#[derive(Debug)]
pub(crate) struct Wakeup {
    /// The pipe whose read end is registered with epoll.
    pipe: Pipe,
    /// Go's `netpollWakeSig`: a wake-up is in flight.
    pending: AtomicBool,
    /// Bytes actually written to the pipe (for tests, benchmarks and the trace).
    writes: AtomicU64,
}

impl Wakeup {
    pub(crate) fn new() -> io::Result<Wakeup> {
        Ok(Wakeup {
            pipe: Pipe::new()?,
            pending: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        })
    }

    /// The fd to register with epoll, level-triggered.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.pipe.read_fd()
    }

    /// Both pipe fds, for `Poller::is_poll_descriptor`.
    pub(crate) fn fds(&self) -> (RawFd, RawFd) {
        self.pipe.fds()
    }

    /// `netpollBreak`: make a blocked (or about to block) poller return.
    pub(crate) fn wake(&self) -> io::Result<()> {
        // SeqCst: the waker published its work before this call, and a poller clears
        // `pending` before it looks for work again; the two must meet in one order.
        if self.pending.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
            return Ok(()); // "there is an in-flight wakeup, so we're done here"
        }
        match self.pipe.write_byte() {
            Ok(Written::Byte) => {
                self.writes.fetch_add(1, SeqCst);
                Ok(())
            }
            Ok(Written::AlreadyFull) => Ok(()),
            Err(e) => {
                // Leave no flag set that would silence every later wake-up.
                self.pending.store(false, SeqCst);
                Err(e)
            }
        }
    }

    /// The poller saw the wake fd readable. Drains it only if that poll was a blocking one.
    pub(crate) fn on_ready(&self, blocking: bool) -> io::Result<()> {
        if !blocking {
            return Ok(());
        }
        self.pipe.drain()?;
        self.pending.store(false, SeqCst);
        Ok(())
    }

    /// How many bytes were written to the pipe so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(SeqCst)
    }
}
