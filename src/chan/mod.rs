//! Go's channels: buffered, unbuffered (rendezvous) and unbounded, for tasks and threads alike.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) — `hchan` (here `State`), `sudog` (here `Sudog`),
//! `waitq`, `chansend`, `chanrecv`, `closechan`, `send`/`recv` (the direct hand-off to a parked
//! peer), `chanparkcommit` (unlock after the switch).
//!
//! # One channel
//!
//! | field    | Go's hchan          | meaning                                                    |
//! |----------|---------------------|------------------------------------------------------------|
//! | `buf`    | `buf`, `qcount`     | values sent, not yet received (at most `cap`)              |
//! | `cap`    | `dataqsiz`          | `Some(0)`: rendezvous; `None`: unbounded                   |
//! | `recvq`  | `recvq`             | parked receivers, FIFO                                     |
//! | `sendq`  | `sendq`             | parked senders, each with its value, FIFO                  |
//! | `closed` | `closed`            | set by `close` or when the last sender goes                |
//!
//! # A send, step by step (a receive mirrors it)
//!
//! | found under the lock                 | what happens                                             |
//! |--------------------------------------|----------------------------------------------------------|
//! | closed, or no receiver left          | `Err`, the value comes back                              |
//! | a parked receiver                    | the value goes straight into its sudog; it is woken into the sender's `runnext` (Go's `send`) |
//! | room in `buf`                        | the value is queued                                      |
//! | else                                 | park with a sudog holding the value; the lock is released by the park's commit, after the switch (Go's `chanparkcommit`) |
//!
//! Invariants (all under `state`'s lock):
//! - If `recvq` is not empty, `buf` is empty; if `sendq` is not empty, `buf` is full. A sudog is
//!   in one queue at most, and is completed (value or closed) exactly once, by whoever pops it.
//! - Wake-ups happen after the lock is released (Go: no `goready` under `hchan.lock`).
//! - A waiter that times out takes its sudog out of the queue itself; if someone completed it
//!   first, the completion wins (the value was delivered, so the operation succeeded).

#![forbid(unsafe_code)]

mod error;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

use crate::sched::{Waker, wait_until};

const WAITING: u8 = 0;
const DONE: u8 = 1;
const CLOSED: u8 = 2;

/// A parked sender or receiver (Go's `sudog`): its waker, and the value in transit.
struct Sudog<T> {
    waker: Mutex<Option<Waker>>,
    value: Mutex<Option<T>>,
    /// `WAITING`, `DONE` (the value was handed over) or `CLOSED`.
    status: AtomicU8,
}

impl<T> Sudog<T> {
    fn new(value: Option<T>) -> Arc<Sudog<T>> {
        Arc::new(Sudog {
            waker: Mutex::new(None),
            value: Mutex::new(value),
            status: AtomicU8::new(WAITING),
        })
    }

    /// Completes the wait (under the channel lock); returns the waker to call after unlocking.
    fn complete(&self, status: u8) -> Option<Waker> {
        self.status.store(status, SeqCst);
        lock(&self.waker).take()
    }

    fn take(&self) -> Option<T> {
        lock(&self.value).take()
    }

    fn put(&self, v: T) {
        *lock(&self.value) = Some(v);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct State<T> {
    buf: VecDeque<T>,
    cap: Option<usize>,
    recvq: VecDeque<Arc<Sudog<T>>>,
    sendq: VecDeque<Arc<Sudog<T>>>,
    closed: bool,
    senders: usize,
    receivers: usize,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|c| self.buf.len() < c)
    }

    /// Removes `s` from a queue after a timed-out wait. `false` if it was already popped.
    fn unlink(q: &mut VecDeque<Arc<Sudog<T>>>, s: &Arc<Sudog<T>>) -> bool {
        match q.iter().position(|x| Arc::ptr_eq(x, s)) {
            Some(i) => {
                q.remove(i);
                true
            }
            None => false,
        }
    }
}

/// The channel itself (Go's `hchan`), shared by its senders and receivers.
struct Chan<T> {
    state: Mutex<State<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Go's `closechan`: completes every parked sender and receiver with `CLOSED`.
    fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            let st = &mut *st;
            let q: Vec<_> = st.recvq.drain(..).chain(st.sendq.drain(..)).collect();
            q.iter().filter_map(|s| s.complete(CLOSED)).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Go's `chansend`. `deadline`: `Some(now)` or earlier means do not wait.
    fn send(&self, v: T, deadline: Option<Instant>, block: bool) -> Result<(), (T, bool)> {
        let mut st = self.lock();
        if st.closed || st.receivers == 0 {
            return Err((v, false));
        }
        if let Some(r) = st.recvq.pop_front() {
            r.put(v);
            let w = r.complete(DONE);
            drop(st);
            if let Some(w) = w {
                w.wake();
            }
            return Ok(());
        }
        if st.has_room() {
            st.buf.push_back(v);
            return Ok(());
        }
        if !block || deadline.is_some_and(|d| d <= Instant::now()) {
            return Err((v, true));
        }
        let me = Sudog::new(Some(v));
        let mine = me.clone();
        wait_until(deadline, move |waker| {
            *lock(&mine.waker) = Some(waker);
            st.sendq.push_back(mine);
            drop(st); // Go's chanparkcommit: the lock is released once we are parked
            true
        });
        match me.status.load(SeqCst) {
            DONE => Ok(()),
            CLOSED => Err((me.take().expect("a closed send keeps its value"), false)),
            _ => {
                // Timed out (or woken early): take the sudog back, unless someone got to it.
                let mut st = self.lock();
                if State::unlink(&mut st.sendq, &me) {
                    drop(st);
                    return Err((me.take().expect("an unsent value"), true));
                }
                drop(st);
                match me.status.load(SeqCst) {
                    DONE => Ok(()),
                    _ => Err((me.take().expect("a closed send keeps its value"), false)),
                }
            }
        }
    }

    /// Go's `chanrecv`. `Err(true)`: would block / timed out; `Err(false)`: closed and drained.
    fn recv(&self, deadline: Option<Instant>, block: bool) -> Result<T, bool> {
        let mut st = self.lock();
        if let Some(v) = st.buf.pop_front() {
            // Room now: the first parked sender's value moves into the buffer.
            let w = st.sendq.pop_front().and_then(|s| {
                st.buf.push_back(s.take().expect("a parked sender has a value"));
                s.complete(DONE)
            });
            drop(st);
            if let Some(w) = w {
                w.wake();
            }
            return Ok(v);
        }
        if let Some(s) = st.sendq.pop_front() {
            // Rendezvous: take the value straight from the parked sender (Go's `recv`).
            let v = s.take().expect("a parked sender has a value");
            let w = s.complete(DONE);
            drop(st);
            if let Some(w) = w {
                w.wake();
            }
            return Ok(v);
        }
        if st.closed || st.senders == 0 {
            return Err(false);
        }
        if !block || deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(true);
        }
        let me = Sudog::new(None);
        let mine = me.clone();
        wait_until(deadline, move |waker| {
            *lock(&mine.waker) = Some(waker);
            st.recvq.push_back(mine);
            drop(st);
            true
        });
        match me.status.load(SeqCst) {
            DONE => Ok(me.take().expect("a completed receive has a value")),
            CLOSED => Err(false),
            _ => {
                let mut st = self.lock();
                if State::unlink(&mut st.recvq, &me) {
                    return Err(true);
                }
                drop(st);
                match me.status.load(SeqCst) {
                    DONE => Ok(me.take().expect("a completed receive has a value")),
                    _ => Err(false),
                }
            }
        }
    }
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            buf: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
            cap,
            recvq: VecDeque::new(),
            sendq: VecDeque::new(),
            closed: false,
            senders: 1,
            receivers: 1,
        }),
    });
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
    let (s, r) = new(Some(0));
    // A sender that exists but never sends: keep the count, drop the handle.
    std::mem::forget(s);
    r
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

    /// Values waiting in the buffer.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's size (`None`: unbounded).
    pub fn capacity(&self) -> Option<usize> {
        self.chan.lock().cap
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
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

    /// Values waiting in the buffer.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's size (`None`: unbounded).
    pub fn capacity(&self) -> Option<usize> {
        self.chan.lock().cap
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
    }

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
        let wakers: Vec<Waker> = {
            let mut st = self.chan.lock();
            st.receivers -= 1;
            if st.receivers > 0 {
                return;
            }
            // Nobody will ever receive: parked senders fail, with their values back.
            let q: Vec<_> = st.sendq.drain(..).collect();
            q.iter().filter_map(|s| s.complete(CLOSED)).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
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
