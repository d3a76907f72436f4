//! The channel itself: Go's `hchan` with its two wait queues, and the operations on it.
//!
//! Mirrors: `runtime/chan.go` (Go 1.19) `hchan`, `chansend`, `chanrecv`, `closechan`, `send` and
//! `recv` (the direct hand-off to a parked peer), `chanparkcommit`. The tables of what a send
//! or a receive does are in `chan/mod.rs`; the sudog and its slot in `chan/sudog.rs`; the
//! lock-free buffer of a bounded channel in `chan/ring.rs`.
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
//! # Bounded channels: the fast path and the wake-up check
//!
//! Go takes the lock for every operation. Here a bounded channel (cap > 0) keeps its values in a
//! lock-free [`Ring`], and a send or receive that finds no one waiting works on the ring alone.
//! The lock is taken only to wait, or to serve waiters: `waiting` mirrors the lengths of
//! `recvq` and `sendq`, so that a fast operation can tell that someone is parked.
//!
//! | operation            | `waiting` of both queues | what happens                                      |
//! |----------------------|--------------------------|---------------------------------------------------|
//! | send / receive       | both 0                   | on the ring alone; then, if the other side's mirror is no longer 0, `rebalance` |
//! | send / receive, ring full / empty | both 0      | a few more tries, yielding to the worker's other tasks (or spinning if it has none) in between ([`FAST_RETRIES`]), then the slow path |
//! | send / receive       | not 0                    | under the lock (the slow path, as in Go)           |
//! | slow path, must wait | —                        | *announce* (mirror + 1, `SeqCst`), try the ring once more, then park |
//! | `rebalance` / slow path | —                     | `balance`: ring values to parked receivers, parked senders' values into ring room |
//!
//! Why no wake-up is lost (Dekker's pattern): a waiter announces, then looks at the ring; a fast
//! operation changes the ring, then looks at the mirror. Both sides are `SeqCst` (the ring's
//! CAS and fence, the mirror's store and load), so at least one sees the other: either the
//! waiter finds the value (or the room) itself, or the fast side sees the mirror and takes the
//! lock, which it gets only once the waiter's sudog is enqueued, and `balance` serves it.
//!
//! `balance` claims a waiter before it touches the ring, because a claim cannot be undone. If
//! the ring has nothing for it after all (a fast operation got there first), a plain waiter goes
//! back to the front of its queue and a select's is woken to try again (its case reads as
//! not completed, and `select` starts over).
//!
//! Invariants: no waker is called with the lock held (every operation collects [`Wakes`]); the
//! mirrors are only ever too high between an announce and the next unlock, never too low.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicUsize, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use slab::Slab;

use super::ring::{PopError, PushError, Ring};
use super::sudog::{CLOSED, DONE, Slot, Sudog, WAITING, lock};
use crate::sched::{Waker, wait_until, yield_to_siblings};

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
    pub(super) slots: Slab<Slot<T>>,
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
    pub(super) fn dequeue(q: &mut Queue) -> Option<Sudog> {
        while let Some(s) = q.pop_front() {
            if s.claim() {
                return Some(s);
            }
        }
        None
    }

    /// A claimed sudog that `balance` could not serve after all: a plain one goes back to the
    /// front of its queue; a select's is woken with its slot still `WAITING` (it tries again).
    fn unclaim(&mut self, queue: QueueOf<T>, s: Sudog, wakes: &mut Wakes) {
        if s.is_select() {
            wakes.push(s.into_waker());
        } else {
            queue(self).push_front(s);
        }
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

    /// Serves the waiters of a ring channel: values in the ring go to parked receivers, parked
    /// senders' values go into free room, until neither can move.
    fn balance(&mut self, ring: &Ring<T>, wakes: &mut Wakes) {
        loop {
            let mut moved = false;
            // `can_pop` / `can_push` first: a claim that then finds nothing costs a requeue.
            while !self.recvq.is_empty() && ring.can_pop() {
                let Some(r) = State::<T>::dequeue(&mut self.recvq) else { break };
                match ring.pop() {
                    Ok(v) => wakes.push(self.deliver(r, v)),
                    Err(_) => {
                        self.unclaim(recvq, r, wakes);
                        break;
                    }
                }
                moved = true;
            }
            while !self.sendq.is_empty() && ring.can_push() {
                let Some(s) = State::<T>::dequeue(&mut self.sendq) else { break };
                let slot = s.slot;
                let v =
                    self.slots[slot].value.take().expect("a parked sender's slot holds its value");
                match ring.push(v) {
                    Ok(()) => {
                        self.slots[slot].status = DONE;
                        wakes.push(s.into_waker());
                    }
                    Err(PushError::Full(v) | PushError::Closed(v)) => {
                        self.slots[slot].value = Some(v);
                        self.unclaim(sendq, s, wakes);
                        break;
                    }
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
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

    /// [`try_send`](State::try_send) on a ring channel.
    fn try_send_ring(&mut self, ring: &Ring<T>, v: T, wakes: &mut Wakes) -> Result<(), (T, bool)> {
        if self.closed || self.receivers == 0 {
            return Err((v, false));
        }
        let mut pushed = ring.push(v);
        if let Err(PushError::Full(v)) = pushed {
            if self.recvq.is_empty() {
                return Err((v, true));
            }
            // Parked receivers whose values a fast sender's rebalance has not moved yet.
            self.balance(ring, wakes);
            pushed = ring.push(v);
        }
        match pushed {
            Ok(()) => {
                self.balance(ring, wakes);
                Ok(())
            }
            Err(PushError::Full(v)) => Err((v, true)),
            Err(PushError::Closed(v)) => Err((v, false)),
        }
    }

    /// [`try_recv`](State::try_recv) on a ring channel.
    fn try_recv_ring(&mut self, ring: &Ring<T>, wakes: &mut Wakes) -> Result<T, bool> {
        let mut got = ring.pop();
        if matches!(got, Err(PopError::Empty)) && !self.sendq.is_empty() {
            // Parked senders whose values a fast receiver's rebalance has not moved yet.
            self.balance(ring, wakes);
            got = ring.pop();
        }
        match got {
            Ok(v) => {
                self.balance(ring, wakes);
                Ok(v)
            }
            Err(PopError::Closed) => Err(false),
            Err(PopError::Empty) => Err(!(self.closed || self.senders == 0)),
        }
    }

    /// Completes every waiter of one queue that may still be completed with `CLOSED`.
    pub(super) fn fail_all(&mut self, queue: QueueOf<T>, wakes: &mut Wakes) {
        while let Some(s) = State::<T>::dequeue(queue(self)) {
            self.slots[s.slot].status = CLOSED;
            wakes.push(s.into_waker());
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

/// A wait queue, as an index into [`Chan::waiting`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    Recv = 0,
    Send = 1,
}
const RECV: usize = Side::Recv as usize;
const SEND: usize = Side::Send as usize;

/// The channel itself (Go's `hchan`), shared by its senders and receivers.
pub(super) struct Chan<T> {
    /// The buffer of a bounded channel with cap > 0.
    ring: Option<Ring<T>>,
    /// `recvq.len()` and `sendq.len()` as of the last unlock or announce (ring channels only).
    waiting: Mirrors,
    state: Mutex<State<T>>,
}

/// The two queue mirrors, on a cache line of their own: every lock-free operation reads them,
/// so they must not share a line with the lock word or the `Arc` counts, which slow paths and
/// clones write.
#[repr(align(128))]
struct Mirrors([AtomicUsize; 2]);

impl Deref for Mirrors {
    type Target = [AtomicUsize; 2];
    fn deref(&self) -> &[AtomicUsize; 2] {
        &self.0
    }
}

/// The locked state. Unlocking refreshes the queue mirrors of a ring channel.
pub(super) struct Locked<'a, T> {
    chan: &'a Chan<T>,
    st: MutexGuard<'a, State<T>>,
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
    fn settle(mut self) -> Slot<T> {
        let slot = self.slot.take().expect("settled once");
        self.chan.settle_slot(self.queue, slot)
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

/// How many times a send (receive) that finds the ring full (empty) tries again before it
/// parks: a peer is usually about to make room (bring a value), and a park costs a lock, a
/// sudog, a wake-up, and sends every other operation through the lock while it lasts. Between
/// tries the task yields to its worker's other tasks, or, if the worker has nothing else to
/// run, spins 4, 8, 16, 32 times (crossbeam's `Backoff::snooze`): never while others wait.
const FAST_RETRIES: u32 = 4;

/// Whether a wait until `deadline` may still begin.
#[inline]
fn may_wait(block: bool, deadline: Option<Instant>) -> bool {
    block && deadline.is_none_or(|d| d > Instant::now())
}

impl<T> Chan<T> {
    pub(super) fn lock(&self) -> Locked<'_, T> {
        Locked { chan: self, st: lock(&self.state) }
    }

    /// The lock of a channel without a ring, which has no mirrors to refresh: the plain guard
    /// (one word, no check at unlock), for the unbuffered ping-pong's sake.
    fn lock_plain(&self) -> MutexGuard<'_, State<T>> {
        debug_assert!(self.ring.is_none(), "a ring channel's lock must refresh its mirrors");
        lock(&self.state)
    }

    /// Takes a parked operation's slot back (see `State::settle`).
    fn settle_slot(&self, queue: QueueOf<T>, slot: usize) -> Slot<T> {
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

    /// Stores the queue lengths of `st` in the mirrors, writing only what changed.
    fn mirror(&self, st: &State<T>) {
        for (i, n) in [(RECV, st.recvq.len()), (SEND, st.sendq.len())] {
            if self.waiting[i].load(Relaxed) != n {
                self.waiting[i].store(n, SeqCst);
            }
        }
    }

    /// Announces a waiter on `queue` (before it looks at the ring once more): see the module
    /// docs. Also called by a select after it enqueued its sudogs.
    pub(super) fn announce(&self, st: &State<T>, queue: Side, extra: usize) {
        let queue = queue as usize;
        let n = [st.recvq.len(), st.sendq.len()][queue] + extra;
        self.waiting[queue].store(n, SeqCst);
        fence(SeqCst);
    }

    /// Whether either queue has (or is about to have) a waiter.
    fn anyone_waiting(&self) -> bool {
        self.waiting[RECV].load(Relaxed) != 0 || self.waiting[SEND].load(Relaxed) != 0
    }

    /// After a fast operation: serves the other side's waiters if the mirror of `queue` says
    /// there are some.
    fn after_fast(&self, ring: &Ring<T>, queue: usize) {
        if self.waiting[queue].load(SeqCst) != 0 {
            let mut wakes = Wakes::default();
            self.lock().balance(ring, &mut wakes);
            wakes.wake();
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

    /// [`send`](Chan::send) on a ring: the fast path and its retries, then under the lock,
    /// announced before the last try (the module docs).
    #[inline(never)]
    fn send_ring(
        &self,
        ring: &Ring<T>,
        mut v: T,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), (T, bool)> {
        let mut tries = 0;
        while !self.anyone_waiting() {
            match ring.push(v) {
                Ok(()) => {
                    self.after_fast(ring, RECV);
                    return Ok(());
                }
                Err(PushError::Closed(back)) => return Err((back, false)),
                Err(PushError::Full(back)) if !may_wait(block, deadline) => {
                    return Err((back, true));
                }
                Err(PushError::Full(back)) => v = back,
            }
            if tries == FAST_RETRIES {
                break;
            }
            tries += 1;
            yield_to_siblings(4 << tries);
        }
        let mut wakes = Wakes::default();
        let mut st = self.lock();
        for announced in [false, true] {
            if announced {
                self.announce(&st, Side::Send, 1);
            }
            match st.try_send_ring(ring, v, &mut wakes) {
                Ok(()) => {
                    drop(st);
                    wakes.wake();
                    return Ok(());
                }
                Err((back, true)) if may_wait(block, deadline) => v = back,
                Err(e) => return Err(e),
            }
        }
        self.park_send(st, v, deadline)
    }

    /// [`recv`](Chan::recv) on a ring (as [`send_ring`](Chan::send_ring)).
    #[inline(never)]
    fn recv_ring(&self, ring: &Ring<T>, deadline: Option<Instant>, block: bool) -> Result<T, bool> {
        let mut tries = 0;
        while !self.anyone_waiting() {
            match ring.pop() {
                Ok(v) => {
                    self.after_fast(ring, SEND);
                    return Ok(v);
                }
                Err(PopError::Closed) => return Err(false),
                Err(PopError::Empty) if !may_wait(block, deadline) => return Err(true),
                Err(PopError::Empty) => {}
            }
            if tries == FAST_RETRIES {
                break;
            }
            tries += 1;
            yield_to_siblings(4 << tries);
        }
        let mut wakes = Wakes::default();
        let mut st = self.lock();
        for announced in [false, true] {
            if announced {
                self.announce(&st, Side::Recv, 1);
            }
            match st.try_recv_ring(ring, &mut wakes) {
                Ok(v) => {
                    drop(st);
                    wakes.wake();
                    return Ok(v);
                }
                Err(true) if may_wait(block, deadline) => {}
                Err(e) => return Err(e),
            }
        }
        self.park_recv(st, deadline)
    }

    /// The parking half of a send (Go's `chansend` from `gopark` on): a sudog with the value,
    /// enqueued by the park's commit, which then unlocks.
    #[inline(always)]
    fn park_send(
        &self,
        mut st: impl DerefMut<Target = State<T>>,
        v: T,
        deadline: Option<Instant>,
    ) -> Result<(), (T, bool)> {
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

    /// The parking half of a receive.
    #[inline(always)]
    fn park_recv(
        &self,
        mut st: impl DerefMut<Target = State<T>>,
        deadline: Option<Instant>,
    ) -> Result<T, bool> {
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
        state: Mutex::new(State {
            buf: VecDeque::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits (bounded) until `f` holds, sleeping as a task.
    fn until(f: impl Fn() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(10), "condition never came");
            crate::time::sleep(Duration::from_millis(1));
        }
    }

    /// The window the module docs describe: a fast send put its value in the ring but has not
    /// rebalanced yet, and a receiver is parked. A `close` right then must hand that value to
    /// the receiver (Go: a value sent before `close` is received), not fail it.
    #[test]
    fn close_hands_ring_values_to_parked_receivers_first() {
        crate::run(|| {
            let chan = new_chan::<u32>(Some(2));
            let rx = chan.clone();
            let receiver = crate::go(move || rx.recv(None, true));
            until(|| chan.waiting[RECV].load(SeqCst) == 1);
            chan.ring().unwrap().push(7).unwrap(); // the fast send, before its rebalance
            chan.close();
            assert_eq!(receiver.join().unwrap(), Ok(7));
            assert_eq!(chan.recv(None, false), Err(false), "closed and drained");
        });
    }

    /// A sender parked on a full ring is served by the fast receive that makes room (its
    /// `after_fast` sees the mirror and rebalances).
    #[test]
    fn a_fast_receive_serves_a_parked_sender() {
        crate::run(|| {
            let chan = new_chan::<u32>(Some(1));
            chan.send(1, None, false).unwrap();
            let tx = chan.clone();
            let sender = crate::go(move || tx.send(2, None, true).map_err(|(v, _)| v));
            until(|| chan.waiting[SEND].load(SeqCst) == 1);
            assert_eq!(chan.ring().unwrap().pop().ok(), Some(1)); // a fast receive...
            chan.after_fast(chan.ring().unwrap(), SEND); // ...and its check
            assert_eq!(sender.join().unwrap(), Ok(()));
            assert_eq!(chan.recv(None, false), Ok(2));
        });
    }
}
