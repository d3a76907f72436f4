//! Go's channels: buffered, unbuffered (rendezvous) and unbounded, for tasks and threads alike.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) — `hchan` (here `State`), `sudog` (here `Sudog`),
//! `waitq`, `chansend`, `chanrecv`, `closechan`, `send`/`recv` (the direct hand-off to a parked
//! peer), `chanparkcommit` (unlock after the switch). This file is the public API; the channel
//! itself is in `hchan.rs`, the lock-free buffer of a bounded channel in `ring.rs`, the sudog,
//! its value slot and a select's claim in `sudog.rs`, `select!` in `select.rs` (the driver) and
//! `select_macro.rs` (the syntax).
//!
//! # One channel
//!
//! | field    | Go's hchan          | meaning                                                    |
//! |----------|---------------------|------------------------------------------------------------|
//! | `buf`    | `buf`, `qcount`     | values sent, not yet received (at most `cap`): a lock-free ring when `cap` > 0, so that sends and receives that need not wait skip the lock (`hchan.rs` explains how waiters are still never missed) |
//! | `cap`    | `dataqsiz`          | `Some(0)`: rendezvous; `None`: unbounded                   |
//! | `recvq`  | `recvq`             | parked receivers, FIFO                                     |
//! | `sendq`  | `sendq`             | parked senders, each with its value, FIFO                  |
//! | `closed` | `closed`            | set by `close` or when the last sender goes                |
//! | `state`'s lock | `lock`        | a spinlock, as Go's `hchan.lock` is a runtime spinning mutex: held for a few dozen instructions, never across a park (`sudog.rs`, `lock`) |
//!
//! # A send, step by step (a receive mirrors it)
//!
//! | found under the lock                 | what happens                                             |
//! |--------------------------------------|----------------------------------------------------------|
//! | (cap > 0, nobody parked: no lock)    | the value goes into the ring; if a receiver parked meanwhile, lock and hand it over |
//! | closed, or no receiver left          | `Err`, the value comes back                              |
//! | a parked receiver (that can be claimed) | the value goes straight into its sudog's slot; it is woken into the sender's `runnext` (Go's `send`) |
//! | room in `buf`                        | the value is queued                                      |
//! | else                                 | park with a sudog whose slot holds the value; the lock is released by the park's commit, after the switch (Go's `chanparkcommit`) |
//!
//! Invariants (all under `state`'s lock):
//! - If `recvq` is not empty, `buf` is empty; if `sendq` is not empty, `buf` is full (for a
//!   ring: a lock-free operation that breaks it for a moment rebalances under the lock next). A sudog is
//!   in one queue at most, and is completed (value or closed) exactly once, by whoever pops it
//!   (a select's sudog only if the pop also claims its select: `State::dequeue`).
//! - Wake-ups happen after the lock is released (Go: no `goready` under `hchan.lock`).
//! - A waiter that times out takes its sudog out of the queue itself; if someone completed it
//!   first, the completion wins (the value was delivered, so the operation succeeded).
//! - A parked operation's slot is removed by its owner after the wait, even when the wait
//!   unwinds (runtime shutdown): nothing is left behind in the channel.

#![forbid(unsafe_code)]

mod error;
mod fast;
mod hchan;
mod ring;
mod select;
mod select_macro;
mod sudog;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use select::{Case, Mode, RecvCase, SendCase, select};

use hchan::{Chan, new_chan};

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = new_chan(cap);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// Go's `make(chan T, cap)`. `bounded(0)` is Go's unbuffered channel: a send completes only
/// when a receiver takes the value.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel whose sends never wait (Go has none; its buffer grows as needed).
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

/// A receiver that never receives (Go's nil channel): a receive waits forever (or until its
/// timeout).
pub fn never<T>() -> Receiver<T> {
    // Counted as having a sender that never sends, so it never closes; no `Sender` exists.
    Receiver { chan: new_chan(Some(0)) }
}

/// What both halves can ask of the channel's state (Go's `len`, `cap`, and a closed check).
macro_rules! chan_state {
    () => {
        /// Values waiting in the buffer (Go's `len(ch)`).
        pub fn len(&self) -> usize {
            self.chan.len()
        }

        /// Whether the buffer is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The buffer's size (Go's `cap(ch)`; `None`: unbounded).
        pub fn capacity(&self) -> Option<usize> {
            self.chan.lock().cap
        }

        /// Whether the channel is closed.
        pub fn is_closed(&self) -> bool {
            self.chan.lock().closed
        }
    };
}

/// The sending half; clone it for more senders. When the last one goes, the channel closes.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half; clone it for more receivers. When the last one goes, sends fail.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Go's `ch <- v`: waits for room or a receiver. Fails, giving `v` back, if the channel is
    /// closed or every receiver is gone (Go panics on a closed channel; we return the value).
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.chan.send(v, None, true).map_err(|(v, _)| SendError(v))
    }

    /// A send that never waits (Go's `select` with `default`).
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.chan.send(v, None, false).map_err(|(v, full)| {
            if full { TrySendError::Full(v) } else { TrySendError::Disconnected(v) }
        })
    }

    /// [`send`](Sender::send), giving up after `d`.
    pub fn send_timeout(&self, v: T, d: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(v, Instant::now() + d)
    }

    /// [`send`](Sender::send), giving up at `deadline`.
    pub fn send_deadline(&self, v: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(v, Some(deadline), true).map_err(|(v, timeout)| {
            if timeout { SendTimeoutError::Timeout(v) } else { SendTimeoutError::Disconnected(v) }
        })
    }

    /// Go's `close(ch)`: receivers drain what is buffered, then get an error; parked senders
    /// get their values back in an error; later sends fail.
    pub fn close(&self) {
        self.chan.close();
    }

    chan_state!();
}

impl<T> Sender<T> {
    /// Whether `rx` receives what this sends (same channel).
    pub(crate) fn feeds(&self, rx: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &rx.chan)
    }
}

impl<T> Receiver<T> {
    /// Go's `v, ok := <-ch`: waits for a value; `Err` once the channel is closed and drained.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None, true).map_err(|_| RecvError)
    }

    /// A receive that never waits.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan
            .recv(None, false)
            .map_err(|wait| if wait { TryRecvError::Empty } else { TryRecvError::Disconnected })
    }

    /// [`recv`](Receiver::recv), giving up after `d`.
    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline(Instant::now() + d)
    }

    /// [`recv`](Receiver::recv), giving up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline), true).map_err(|timeout| {
            if timeout { RecvTimeoutError::Timeout } else { RecvTimeoutError::Disconnected }
        })
    }

    chan_state!();

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// A blocking iterator: values until the channel is closed and drained (Go's `range ch`).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.chan.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.chan.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.chan.lock();
            st.receivers -= 1;
            st.receivers == 0
        };
        if last {
            // Nobody will ever receive: parked senders fail, with their values back.
            self.chan.lose_receivers();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// The iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// The owning iterator of a [`Receiver`] (`for v in rx`).
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
