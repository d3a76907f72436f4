//! Go's channels: buffered, unbuffered (rendezvous) and unbounded, for tasks and threads alike.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) — `hchan` (here `State`), `sudog` (here `Sudog`),
//! `waitq`, `chansend`, `chanrecv`, `closechan`, `send`/`recv` (the direct hand-off to a parked
//! peer), `chanparkcommit` (unlock after the switch). `select!` is in `select.rs`, the sudog
//! and a select's claim in `sudog.rs`.
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
//! | a parked receiver (that can be claimed) | the value goes straight into its sudog; it is woken into the sender's `runnext` (Go's `send`) |
//! | room in `buf`                        | the value is queued                                      |
//! | else                                 | park with a sudog holding the value; the lock is released by the park's commit, after the switch (Go's `chanparkcommit`) |
//!
//! Invariants (all under `state`'s lock):
//! - If `recvq` is not empty, `buf` is empty; if `sendq` is not empty, `buf` is full. A sudog is
//!   in one queue at most, and is completed (value or closed) exactly once, by whoever pops it
//!   (a select's sudog only if the pop also claims its select: `State::dequeue`).
//! - Wake-ups happen after the lock is released (Go: no `goready` under `hchan.lock`).
//! - A waiter that times out takes its sudog out of the queue itself; if someone completed it
//!   first, the completion wins (the value was delivered, so the operation succeeded).

#![forbid(unsafe_code)]

mod error;
mod select;
mod sudog;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use select::{Case, Mode, RecvCase, SendCase, select};

use slab::Slab;

use crate::sched::{Waker, wait_until};
use sudog::{CLOSED, DONE, Slot, Sudog, WAITING, lock};

type Queue = VecDeque<Sudog>;
/// Picks `recvq` or `sendq` of a state.
type QueueOf<T> = fn(&mut State<T>) -> &mut Queue;

struct State<T> {
    buf: VecDeque<T>,
    cap: Option<usize>,
    recvq: Queue,
    sendq: Queue,
    /// The values of parked operations (Go's `sudog.elem`), by the sudogs' `slot`.
    slots: Slab<Slot<T>>,
    closed: bool,
    senders: usize,
    receivers: usize,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|c| self.buf.len() < c)
    }

    /// Go's `waitq.dequeue`: the first sudog that may be completed; sudogs of a select that
    /// another case already won are dropped on the way.
    fn dequeue(q: &mut Queue) -> Option<Sudog> {
        while let Some(s) = q.pop_front() {
            if s.claim() {
                return Some(s);
            }
        }
        None
    }

    /// Hands `v` to a popped receiver; returns its waker.
    fn deliver(&mut self, r: Sudog, v: T) -> Option<Waker> {
        let slot = &mut self.slots[r.slot];
        slot.value = Some(v);
        slot.status = DONE;
        r.into_waker()
    }

    /// Takes a popped sender's value; returns it and the sender's waker.
    fn take_sent(&mut self, s: Sudog) -> (T, Option<Waker>) {
        let slot = &mut self.slots[s.slot];
        slot.status = DONE;
        (slot.value.take().expect("a parked sender's slot holds its value"), s.into_waker())
    }

    /// The part of Go's `chansend` that never waits. `Ok` with the receiver to wake (after
    /// unlocking); `Err((v, true))`: no room; `Err((v, false))`: closed or no receiver left.
    fn try_send(&mut self, v: T) -> Result<Option<Waker>, (T, bool)> {
        if self.closed || self.receivers == 0 {
            return Err((v, false));
        }
        if let Some(r) = State::<T>::dequeue(&mut self.recvq) {
            // A parked receiver: the value goes straight to it (Go's `send`).
            return Ok(self.deliver(r, v));
        }
        if self.has_room() {
            self.buf.push_back(v);
            return Ok(None);
        }
        Err((v, true))
    }

    /// The part of Go's `chanrecv` that never waits. `Ok` with the value and the sender to wake
    /// (after unlocking); `Err(true)`: nothing yet; `Err(false)`: closed and drained.
    fn try_recv(&mut self) -> Result<(T, Option<Waker>), bool> {
        if let Some(v) = self.buf.pop_front() {
            // Room now: the first parked sender's value moves into the buffer.
            let w = State::<T>::dequeue(&mut self.sendq).and_then(|s| {
                let (sent, w) = self.take_sent(s);
                self.buf.push_back(sent);
                w
            });
            return Ok((v, w));
        }
        if let Some(s) = State::<T>::dequeue(&mut self.sendq) {
            // Rendezvous: the value comes straight from the parked sender (Go's `recv`).
            return Ok(self.take_sent(s));
        }
        if self.closed || self.senders == 0 {
            return Err(false);
        }
        Err(true)
    }

    /// Completes every waiter of one queue that may still be completed with `CLOSED`.
    fn fail_all(&mut self, queue: QueueOf<T>, wakers: &mut Vec<Waker>) {
        while let Some(s) = State::<T>::dequeue(queue(self)) {
            self.slots[s.slot].status = CLOSED;
            wakers.extend(s.into_waker());
        }
    }

    /// The parked side, once its wait is over (woken, timed out or unwinding): takes its slot
    /// back, and its sudog out of `queue` if nobody popped it.
    fn settle(&mut self, queue: QueueOf<T>, slot: usize) -> Slot<T> {
        if self.slots[slot].status == WAITING {
            let q = queue(self);
            if let Some(i) = q.iter().position(|s| s.slot == slot) {
                q.remove(i);
            }
        }
        self.slots.remove(slot)
    }
}

fn recvq<T>(st: &mut State<T>) -> &mut Queue {
    &mut st.recvq
}

fn sendq<T>(st: &mut State<T>) -> &mut Queue {
    &mut st.sendq
}

/// Calls the waker, if any, once no lock is held.
fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// The channel itself (Go's `hchan`), shared by its senders and receivers.
struct Chan<T> {
    state: Mutex<State<T>>,
}

/// A plain send or receive's parked slot: settled after the wait, or on unwinding (runtime
/// shutdown) so that no slot or sudog stays behind.
struct Parked<'a, T> {
    chan: &'a Chan<T>,
    queue: QueueOf<T>,
    slot: Option<usize>,
}

impl<T> Parked<'_, T> {
    fn settle(mut self) -> Slot<T> {
        let slot = self.slot.take().expect("settled once");
        self.chan.lock().settle(self.queue, slot)
    }
}

impl<T> Drop for Parked<'_, T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let s = self.chan.lock().settle(self.queue, slot);
            drop(s); // the value, if any, after the lock
        }
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Go's `closechan`: completes every parked sender and receiver with `CLOSED`.
    fn close(&self) {
        let mut wakers = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.fail_all(recvq, &mut wakers);
            st.fail_all(sendq, &mut wakers);
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Go's `chansend`. `deadline`: `Some(now)` or earlier means do not wait.
    fn send(&self, v: T, deadline: Option<Instant>, block: bool) -> Result<(), (T, bool)> {
        let mut st = self.lock();
        let v = match st.try_send(v) {
            Ok(w) => {
                drop(st);
                wake(w);
                return Ok(());
            }
            Err((v, true)) if block && deadline.is_none_or(|d| d > Instant::now()) => v,
            Err(e) => return Err(e),
        };
        let slot = st.slots.insert(Slot::new(Some(v)));
        let parked = Parked { chan: self, queue: sendq, slot: Some(slot) };
        wait_until(deadline, move |waker| {
            st.sendq.push_back(Sudog::new(slot, waker));
            drop(st); // Go's chanparkcommit: the lock is released once we are parked
            true
        });
        let s = parked.settle();
        match s.status {
            DONE => Ok(()),
            status => Err((s.value.expect("an unsent value comes back"), status == WAITING)),
        }
    }

    /// Go's `chanrecv`. `Err(true)`: would block / timed out; `Err(false)`: closed and drained.
    fn recv(&self, deadline: Option<Instant>, block: bool) -> Result<T, bool> {
        let mut st = self.lock();
        match st.try_recv() {
            Ok((v, w)) => {
                drop(st);
                wake(w);
                return Ok(v);
            }
            Err(true) if block && deadline.is_none_or(|d| d > Instant::now()) => {}
            Err(e) => return Err(e),
        }
        let slot = st.slots.insert(Slot::new(None));
        let parked = Parked { chan: self, queue: recvq, slot: Some(slot) };
        wait_until(deadline, move |waker| {
            st.recvq.push_back(Sudog::new(slot, waker));
            drop(st);
            true
        });
        let s = parked.settle();
        match s.status {
            DONE => Ok(s.value.expect("a completed receive has a value")),
            status => Err(status == WAITING),
        }
    }
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = new_chan(cap);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// A channel counted as having one sender and one receiver.
fn new_chan<T>(cap: Option<usize>) -> Arc<Chan<T>> {
    Arc::new(Chan {
        state: Mutex::new(State {
            buf: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
            cap,
            recvq: VecDeque::new(),
            sendq: VecDeque::new(),
            slots: Slab::new(),
            closed: false,
            senders: 1,
            receivers: 1,
        }),
    })
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
        let mut wakers = Vec::new();
        {
            let mut st = self.chan.lock();
            st.receivers -= 1;
            if st.receivers > 0 {
                return;
            }
            // Nobody will ever receive: parked senders fail, with their values back.
            st.fail_all(sendq, &mut wakers);
        }
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
