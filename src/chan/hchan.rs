//! The channel itself: Go's `hchan` with its two wait queues, and the operations on it.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) `hchan`, `chansend`, `chanrecv`, `closechan`, `send` and
//! `recv` (the direct hand-off to a parked peer), `chanparkcommit`. The tables of what a send
//! or a receive does are in `chan/mod.rs`; the sudog and its slot in `chan/sudog.rs`.
//!
//! | `State` field | Go's hchan         | guarded by     |
//! |---------------|--------------------|----------------|
//! | `buf`, `cap`  | `buf`, `dataqsiz`  | the state lock |
//! | `recvq`, `sendq` | `recvq`, `sendq` | the state lock |
//! | `slots`       | the sudogs' `elem` | the state lock |
//! | `closed`      | `closed`           | the state lock |
//!
//! Invariant: no waker is called with the lock held; every `try_*` returns the waker to call.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use slab::Slab;

use super::sudog::{CLOSED, DONE, Slot, Sudog, WAITING, lock};
use crate::sched::{Waker, wait_until};

pub(super) type Queue = VecDeque<Sudog>;
/// Picks `recvq` or `sendq` of a state.
pub(super) type QueueOf<T> = fn(&mut State<T>) -> &mut Queue;

pub(super) struct State<T> {
    pub(super) buf: VecDeque<T>,
    pub(super) cap: Option<usize>,
    pub(super) recvq: Queue,
    pub(super) sendq: Queue,
    /// The values of parked operations (Go's `sudog.elem`), by the sudogs' `slot`.
    pub(super) slots: Slab<Slot<T>>,
    pub(super) closed: bool,
    pub(super) senders: usize,
    pub(super) receivers: usize,
}

impl<T> State<T> {
    pub(super) fn has_room(&self) -> bool {
        self.cap.is_none_or(|c| self.buf.len() < c)
    }

    /// Go's `waitq.dequeue`: the first sudog that may be completed; sudogs of a select that
    /// another case already won are dropped on the way.
    pub(super) fn dequeue(q: &mut Queue) -> Option<Sudog> {
        while let Some(s) = q.pop_front() {
            if s.claim() {
                return Some(s);
            }
        }
        None
    }

    /// Hands `v` to a popped receiver; returns its waker.
    pub(super) fn deliver(&mut self, r: Sudog, v: T) -> Option<Waker> {
        let slot = &mut self.slots[r.slot];
        slot.value = Some(v);
        slot.status = DONE;
        r.into_waker()
    }

    /// Takes a popped sender's value; returns it and the sender's waker.
    pub(super) fn take_sent(&mut self, s: Sudog) -> (T, Option<Waker>) {
        let slot = &mut self.slots[s.slot];
        slot.status = DONE;
        (slot.value.take().expect("a parked sender's slot holds its value"), s.into_waker())
    }

    /// The part of Go's `chansend` that never waits. `Ok` with the receiver to wake (after
    /// unlocking); `Err((v, true))`: no room; `Err((v, false))`: closed or no receiver left.
    pub(super) fn try_send(&mut self, v: T) -> Result<Option<Waker>, (T, bool)> {
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
    pub(super) fn try_recv(&mut self) -> Result<(T, Option<Waker>), bool> {
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
    pub(super) fn fail_all(&mut self, queue: QueueOf<T>, wakers: &mut Vec<Waker>) {
        while let Some(s) = State::<T>::dequeue(queue(self)) {
            self.slots[s.slot].status = CLOSED;
            wakers.extend(s.into_waker());
        }
    }

    /// The parked side, once its wait is over (woken, timed out or unwinding): takes its slot
    /// back, and its sudog out of `queue` if nobody popped it.
    pub(super) fn settle(&mut self, queue: QueueOf<T>, slot: usize) -> Slot<T> {
        if self.slots[slot].status == WAITING {
            let q = queue(self);
            if let Some(i) = q.iter().position(|s| s.slot == slot) {
                q.remove(i);
            }
        }
        self.slots.remove(slot)
    }
}

pub(super) fn recvq<T>(st: &mut State<T>) -> &mut Queue {
    &mut st.recvq
}

pub(super) fn sendq<T>(st: &mut State<T>) -> &mut Queue {
    &mut st.sendq
}

/// Calls the waker, if any, once no lock is held.
pub(super) fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// The channel itself (Go's `hchan`), shared by its senders and receivers.
pub(super) struct Chan<T> {
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
    pub(super) fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Go's `closechan`: completes every parked sender and receiver with `CLOSED`.
    pub(super) fn close(&self) {
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
    pub(super) fn send(
        &self,
        v: T,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), (T, bool)> {
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
    pub(super) fn recv(&self, deadline: Option<Instant>, block: bool) -> Result<T, bool> {
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

/// A channel counted as having one sender and one receiver.
pub(super) fn new_chan<T>(cap: Option<usize>) -> Arc<Chan<T>> {
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
