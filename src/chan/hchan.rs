//! The channel itself: Go's `hchan` with its two wait queues, and the operations on it.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) `hchan`, `chansend`, `chanrecv`, `closechan`, `send` and
//! `recv` (the direct hand-off to a parked peer), `chanparkcommit`. The tables of what a send
//! or a receive does are in `chan/mod.rs`; the sudog and its slot in `chan/sudog.rs`; the
//! lock-free buffer of a bounded channel in `chan/ring.rs`, and how a bounded channel's sends and
//! receives skip the lock in `chan/fast.rs`.
//!
//! | field            | Go's hchan         | guarded by                          |
//! |------------------|--------------------|-------------------------------------|
//! | `ring`           | `buf` (cap > 0)    | none: lock-free                     |
//! | `State::buf`     | `buf` (unbounded; always empty for cap 0) | the state lock |
//! | `recvq`, `sendq` | `recvq`, `sendq`   | the state lock                      |
//! | `slots`          | the sudogs' `elem` | the state lock                      |
//! | `closed`         | `closed`           | the state lock                      |
//! | `waiting`        | —                  | written under the lock, read without |
//!
//! Invariant: no waker is called with the lock held (every operation collects [`Wakes`]).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use super::fast::Mirrors;
use super::ring::Ring;
use super::sudog::{CLOSED, DONE, Guard, Lock, Outcome, Slots, Sudog, WAITING, lock};
use crate::sched::{Waker, wait_until};

pub(super) type Queue = VecDeque<Sudog>;
/// Picks `recvq` or `sendq` of a state.
pub(super) type QueueOf<T> = fn(&mut State<T>) -> &mut Queue;

pub(super) struct State<T> {
    /// The buffer of an unbounded channel (a bounded one uses the ring; cap 0 has none).
    pub(super) buf: VecDeque<T>,
    pub(super) cap: Option<usize>,
    pub(super) recvq: Queue,
    pub(super) sendq: Queue,
    /// The values of parked operations (Go's `sudog.elem`), by the sudogs' `slot`.
    pub(super) slots: Slots<T>,
    pub(super) closed: bool,
    pub(super) senders: usize,
    pub(super) receivers: usize,
}

/// Wakers collected under the lock, called after it (one without allocating).
#[derive(Default)]
pub(super) struct Wakes {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakes {
    #[inline]
    pub(super) fn push(&mut self, w: Option<Waker>) {
        let Some(w) = w else { return };
        match self.first {
            None => self.first = Some(w),
            Some(_) => self.rest.push(w),
        }
    }

    pub(super) fn any(&self) -> bool {
        self.first.is_some()
    }

    /// Calls them all; with no lock held.
    #[inline]
    pub(super) fn wake(self) {
        if let Some(w) = self.first {
            w.wake();
            self.rest.into_iter().for_each(Waker::wake);
        }
    }
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|c| self.buf.len() < c)
    }

    /// Go's `waitq.dequeue`: the first sudog that may be completed; sudogs of a select that
    /// another case already won are dropped on the way.
    #[inline(always)]
    pub(super) fn dequeue(q: &mut Queue) -> Option<Sudog> {
        while let Some(s) = q.pop_front() {
            if s.claim() {
                return Some(s);
            }
        }
        None
    }

    /// Hands `v` to a popped receiver; returns its waker.
    #[inline(always)]
    pub(super) fn deliver(&mut self, r: Sudog, v: T) -> Option<Waker> {
        let slot = &mut self.slots[r.slot()];
        slot.value = Some(v);
        slot.status = DONE;
        r.into_waker(slot)
    }

    /// Takes a popped sender's value; returns it and the sender's waker.
    #[inline(always)]
    fn take_sent(&mut self, s: Sudog) -> (T, Option<Waker>) {
        let slot = &mut self.slots[s.slot()];
        slot.status = DONE;
        let v = slot.value.take().expect("a parked sender's slot holds its value");
        (v, s.into_waker(slot))
    }

    /// The part of Go's `chansend` that never waits: `Ok` once the value is handed over or
    /// queued (peers to wake in `wakes`); `Err((v, true))`: no room; `Err((v, false))`: closed
    /// or no receiver left.
    pub(super) fn try_send(
        &mut self,
        ring: Option<&Ring<T>>,
        v: T,
        wakes: &mut Wakes,
    ) -> Result<(), (T, bool)> {
        match ring {
            Some(ring) => self.try_send_ring(ring, v, wakes),
            None => self.try_send_locked(v).map(|w| wakes.push(w)),
        }
    }

    /// The part of Go's `chanrecv` that never waits: `Ok` with the value (peers to wake in
    /// `wakes`); `Err(true)`: nothing yet; `Err(false)`: closed and drained.
    pub(super) fn try_recv(
        &mut self,
        ring: Option<&Ring<T>>,
        wakes: &mut Wakes,
    ) -> Result<T, bool> {
        match ring {
            Some(ring) => self.try_recv_ring(ring, wakes),
            None => self.try_recv_locked().map(|(v, w)| {
                wakes.push(w);
                v
            }),
        }
    }

    /// [`try_send`](State::try_send) of a channel without a ring (unbuffered or unbounded):
    /// all of it under the lock, as in Go; `Ok` with the receiver to wake.
    #[inline(always)]
    fn try_send_locked(&mut self, v: T) -> Result<Option<Waker>, (T, bool)> {
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

    /// [`try_recv`](State::try_recv) of a channel without a ring; `Ok` with the value and the
    /// sender to wake.
    #[inline(always)]
    fn try_recv_locked(&mut self) -> Result<(T, Option<Waker>), bool> {
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
    pub(super) fn fail_all(&mut self, queue: QueueOf<T>, wakes: &mut Wakes) {
        while let Some(s) = State::<T>::dequeue(queue(self)) {
            let slot = &mut self.slots[s.slot()];
            slot.status = CLOSED;
            wakes.push(s.into_waker(slot));
        }
    }

    /// The parked side, once its wait is over (woken, timed out or unwinding): takes its slot
    /// back, and its sudog out of `queue` if nobody popped it.
    #[inline(always)]
    pub(super) fn settle(&mut self, queue: QueueOf<T>, slot: usize) -> Outcome<T> {
        if self.slots[slot].status == WAITING {
            let q = queue(self);
            if let Some(i) = q.iter().position(|s| s.slot() == slot) {
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

/// The channel itself (Go's `hchan`), shared by its senders and receivers.
pub(super) struct Chan<T> {
    /// The buffer of a bounded channel with cap > 0.
    ring: Option<Ring<T>>,
    /// `recvq.len()` and `sendq.len()` as of the last unlock or announce (ring channels only).
    pub(super) waiting: Mirrors,
    state: Lock<State<T>>,
}

/// The locked state. Unlocking refreshes the queue mirrors of a ring channel.
pub(super) struct Locked<'a, T> {
    chan: &'a Chan<T>,
    st: Guard<'a, State<T>>,
}

impl<T> Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.st
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.st
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        if self.chan.ring.is_some() {
            self.chan.mirror(&self.st);
        }
    }
}

/// A plain send or receive's parked slot: settled after the wait, or on unwinding (runtime
/// shutdown) so that no slot or sudog stays behind.
struct Parked<'a, T> {
    chan: &'a Chan<T>,
    queue: QueueOf<T>,
    slot: Option<usize>,
}

impl<T> Parked<'_, T> {
    #[inline(always)]
    fn settle(mut self) -> Outcome<T> {
        let slot = self.slot.take().expect("settled once");
        let out = self.chan.settle_slot(self.queue, slot);
        // Nothing left for `drop` to do; skipping its call keeps `out` out of memory.
        std::mem::forget(self);
        out
    }
}

impl<T> Drop for Parked<'_, T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let s = self.chan.settle_slot(self.queue, slot);
            drop(s); // the value, if any, after the lock
        }
    }
}

/// Whether a wait until `deadline` may still begin.
#[inline]
pub(super) fn may_wait(block: bool, deadline: Option<Instant>) -> bool {
    block && deadline.is_none_or(|d| d > Instant::now())
}

impl<T> Chan<T> {
    pub(super) fn lock(&self) -> Locked<'_, T> {
        Locked { chan: self, st: lock(&self.state) }
    }

    /// The lock of a channel without a ring, which has no mirrors to refresh: the plain guard
    /// (one word, no check at unlock), for the unbuffered ping-pong's sake.
    fn lock_plain(&self) -> Guard<'_, State<T>> {
        debug_assert!(self.ring.is_none(), "a ring channel's lock must refresh its mirrors");
        lock(&self.state)
    }

    /// Takes a parked operation's slot back (see `State::settle`).
    #[inline(always)]
    fn settle_slot(&self, queue: QueueOf<T>, slot: usize) -> Outcome<T> {
        match self.ring {
            None => self.lock_plain().settle(queue, slot),
            Some(_) => self.lock().settle(queue, slot),
        }
    }

    pub(super) fn ring(&self) -> Option<&Ring<T>> {
        self.ring.as_ref()
    }

    /// Values buffered (Go's `len(ch)`).
    pub(super) fn len(&self) -> usize {
        match &self.ring {
            Some(r) => r.len(),
            None => self.lock().buf.len(),
        }
    }

    /// Marks the ring closed once nobody may send any more (closed, or no receiver left).
    fn close_ring(&self, st: &mut State<T>, wakes: &mut Wakes) {
        if let Some(ring) = &self.ring {
            ring.close();
            // What is still in the ring goes to parked receivers before they are failed.
            st.balance(ring, wakes);
        }
    }

    /// Go's `closechan`: completes every parked sender and receiver with `CLOSED`.
    pub(super) fn close(&self) {
        let mut wakes = Wakes::default();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            self.close_ring(&mut st, &mut wakes);
            st.fail_all(recvq, &mut wakes);
            st.fail_all(sendq, &mut wakes);
        }
        wakes.wake();
    }

    /// The last receiver is gone: parked senders fail with their values, later sends fail.
    pub(super) fn lose_receivers(&self) {
        let mut wakes = Wakes::default();
        {
            let mut st = self.lock();
            self.close_ring(&mut st, &mut wakes);
            st.fail_all(sendq, &mut wakes);
        }
        wakes.wake();
    }

    /// Go's `chansend`. `deadline`: `Some(now)` or earlier means do not wait.
    pub(super) fn send(
        &self,
        v: T,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), (T, bool)> {
        match self.ring.as_ref() {
            Some(ring) => self.send_ring(ring, v, deadline, block),
            None => {
                let mut st = self.lock_plain();
                match st.try_send_locked(v) {
                    Ok(w) => {
                        drop(st);
                        wake(w);
                        Ok(())
                    }
                    Err((v, true)) if may_wait(block, deadline) => self.park_send(st, v, deadline),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Go's `chanrecv`. `Err(true)`: would block / timed out; `Err(false)`: closed and drained.
    pub(super) fn recv(&self, deadline: Option<Instant>, block: bool) -> Result<T, bool> {
        match self.ring.as_ref() {
            Some(ring) => self.recv_ring(ring, deadline, block),
            None => {
                let mut st = self.lock_plain();
                match st.try_recv_locked() {
                    Ok((v, w)) => {
                        drop(st);
                        wake(w);
                        Ok(v)
                    }
                    Err(true) if may_wait(block, deadline) => self.park_recv(st, deadline),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The parking half of a send (Go's `chansend` from `gopark` on): a sudog with the value,
    /// enqueued by the park's commit, which then unlocks.
    #[inline(always)]
    pub(super) fn park_send(
        &self,
        mut st: impl DerefMut<Target = State<T>>,
        v: T,
        deadline: Option<Instant>,
    ) -> Result<(), (T, bool)> {
        let slot = st.slots.insert(Some(v));
        // Nobody sees the sudog before the commit unlocks, by which time the waker is stored.
        st.sendq.push_back(Sudog::new(slot));
        let parked = Parked { chan: self, queue: sendq, slot: Some(slot) };
        wait_until(deadline, move |waker| {
            st.slots.set_waker(slot, waker);
            drop(st); // Go's chanparkcommit: the lock is released once we are parked
            true
        });
        let s = parked.settle();
        match s.status {
            DONE => Ok(()),
            status => Err((s.value.expect("an unsent value comes back"), status == WAITING)),
        }
    }

    /// The parking half of a receive.
    #[inline(always)]
    pub(super) fn park_recv(
        &self,
        mut st: impl DerefMut<Target = State<T>>,
        deadline: Option<Instant>,
    ) -> Result<T, bool> {
        let slot = st.slots.insert(None);
        st.recvq.push_back(Sudog::new(slot));
        let parked = Parked { chan: self, queue: recvq, slot: Some(slot) };
        wait_until(deadline, move |waker| {
            st.slots.set_waker(slot, waker);
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

/// Calls the waker, if any, once no lock is held.
#[inline]
fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// A channel counted as having one sender and one receiver.
pub(super) fn new_chan<T>(cap: Option<usize>) -> Arc<Chan<T>> {
    Arc::new(Chan {
        ring: cap.filter(|&c| c > 0).map(Ring::new),
        waiting: Mirrors([AtomicUsize::new(0), AtomicUsize::new(0)]),
        state: Lock::new(State {
            buf: VecDeque::new(),
            cap,
            recvq: VecDeque::new(),
            sendq: VecDeque::new(),
            slots: Slots::default(),
            closed: false,
            senders: 1,
            receivers: 1,
        }),
    })
}
