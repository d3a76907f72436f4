//! A bounded channel's fast path: sends and receives on its lock-free ring that skip the
//! channel lock while nobody waits, and the check that keeps them from missing a waiter.
//!
//! Mirrors: nothing in Go, which takes `hchan.lock` for every operation (`runtime/chan.go`,
//! Go 1.19); the retries before parking follow crossbeam-channel's `Backoff`. The channel and its
//! locked protocol are in `hchan.rs`, the ring in `ring.rs`.
//!
//! A bounded channel (cap > 0) keeps its values in a lock-free [`Ring`], and a send or receive that finds no one waiting works on the ring alone.
//! The lock is taken only to wait, or to serve waiters: `waiting` mirrors the lengths of
//! `recvq` and `sendq`, so that a fast operation can tell that someone is parked.
//!
//! | operation            | `waiting` of both queues | what happens                                      |
//! |----------------------|--------------------------|---------------------------------------------------|
//! | send / receive       | both 0                   | on the ring alone; then, if the other side's mirror is no longer 0, `rebalance` |
//! | send / receive, ring full / empty | both 0      | a few more tries with a [`backoff`] in between ([`FAST_RETRIES`]), then the slow path |
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
//! Invariant: the mirrors are only ever too high (between an announce and the next unlock),
//! never too low: every enqueue is announced first, and every unlock stores the true lengths.

#![forbid(unsafe_code)]

use std::ops::Deref;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicUsize, fence};
use std::time::Instant;

use super::hchan::{Chan, QueueOf, State, Wakes, may_wait, recvq, sendq};
use super::ring::{PopError, PushError, Ring};
use super::sudog::{DONE, Sudog};
use crate::sched::backoff;

/// A wait queue, as an index into [`Chan::waiting`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Side {
    Recv = 0,
    Send = 1,
}

pub(super) const RECV: usize = Side::Recv as usize;
pub(super) const SEND: usize = Side::Send as usize;

/// The two queue mirrors, on a cache line of their own: every lock-free operation reads them,
/// so they must not share a line with the lock word or the `Arc` counts, which slow paths and
/// clones write.
#[repr(align(128))]
pub(super) struct Mirrors(pub(super) [AtomicUsize; 2]);

impl Deref for Mirrors {
    type Target = [AtomicUsize; 2];
    fn deref(&self) -> &[AtomicUsize; 2] {
        &self.0
    }
}

/// How many times a send (receive) that finds the ring full (empty) tries again before it
/// parks: a peer is usually about to make room (bring a value), and a park costs a lock, a
/// sudog, a wake-up, and sends every other operation through the lock while it lasts. Between
/// tries the task backs off ([`backoff`]): it spins 8, 16, 32, 64 times if another worker is
/// running (its peers may be there; crossbeam's `Backoff::snooze` spins likewise), and yields to
/// its worker's other tasks.
const FAST_RETRIES: u32 = 4;

/// The retries of a fast operation that found the ring full (empty).
struct Retries(u32);

impl Retries {
    /// Waits a little before the next try ([`FAST_RETRIES`]); `false` once they are used up.
    fn snooze(&mut self) -> bool {
        if self.0 == FAST_RETRIES {
            return false;
        }
        self.0 += 1;
        backoff(4 << self.0);
        true
    }
}

impl<T> State<T> {
    /// A claimed sudog that `balance` could not serve after all: a plain one goes back to the
    /// front of its queue; a select's is woken with its slot still `WAITING` (it tries again).
    fn unclaim(&mut self, queue: QueueOf<T>, s: Sudog, wakes: &mut Wakes) {
        if s.is_select() {
            let slot = s.slot();
            wakes.push(s.into_waker(&mut self.slots[slot]));
        } else {
            queue(self).push_front(s);
        }
    }

    /// Serves the waiters of a ring channel: values in the ring go to parked receivers, parked
    /// senders' values go into free room, until neither can move.
    pub(super) fn balance(&mut self, ring: &Ring<T>, wakes: &mut Wakes) {
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
                let slot = s.slot();
                let v =
                    self.slots[slot].value.take().expect("a parked sender's slot holds its value");
                match ring.push(v) {
                    Ok(()) => {
                        self.slots[slot].status = DONE;
                        wakes.push(s.into_waker(&mut self.slots[slot]));
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

    /// [`try_send`](State::try_send) on a ring channel.
    pub(super) fn try_send_ring(
        &mut self,
        ring: &Ring<T>,
        v: T,
        wakes: &mut Wakes,
    ) -> Result<(), (T, bool)> {
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
    pub(super) fn try_recv_ring(&mut self, ring: &Ring<T>, wakes: &mut Wakes) -> Result<T, bool> {
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
}

impl<T> Chan<T> {
    /// Stores the queue lengths of `st` in the mirrors, writing only what changed.
    pub(super) fn mirror(&self, st: &State<T>) {
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

    /// [`send`](Chan::send) on a ring: the fast path and its retries, then under the lock,
    /// announced before the last try (the module docs).
    #[inline(never)]
    pub(super) fn send_ring(
        &self,
        ring: &Ring<T>,
        mut v: T,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<(), (T, bool)> {
        let mut retries = Retries(0);
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
            if !retries.snooze() {
                break;
            }
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
    pub(super) fn recv_ring(
        &self,
        ring: &Ring<T>,
        deadline: Option<Instant>,
        block: bool,
    ) -> Result<T, bool> {
        let mut retries = Retries(0);
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
            if !retries.snooze() {
                break;
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chan::hchan::new_chan;
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
