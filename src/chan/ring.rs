//! The buffer of a bounded channel: a lock-free ring that senders and receivers share without
//! the channel lock (Dmitry Vyukov's bounded MPMC queue, as crossbeam-channel's `array` flavor
//! uses it).
//!
//! Mirrors: Go keeps a buffered channel's values in `hchan.buf` under `hchan.lock`
//! (`runtime/chan.go`, Go 1.19); every send and receive takes that lock. Under contention from
//! several workers the lock's cache line and the queue's head and tail all move between cores
//! on each operation. Here a send or receive that does not have to wait touches only the ring:
//! one compare-and-swap on `tail` (or `head`) and the slot it claimed. The channel lock stays
//! for what needs it: the wait queues (`hchan.rs`).
//!
//! # How a slot changes hands
//!
//! `head` and `tail` count positions: the low bits are an index into `slots`, the high bits a
//! *lap* (how many times the ring went round). `tail` also carries `mark`: the ring is closed.
//! Each slot has a `stamp` saying whose turn it is:
//!
//! | `stamp` of the slot at position `p`  | meaning                                   | next                 |
//! |--------------------------------------|-------------------------------------------|----------------------|
//! | `p` (same lap as `tail`)             | free: the sender whose `tail` is `p` may write | sender CASes `tail`, writes, sets `p + 1` |
//! | `p + 1`                              | full: the receiver whose `head` is `p` may read | receiver CASes `head`, reads, sets `p + one_lap` |
//! | `p` one lap behind `tail`            | still full from the last lap: the ring is full (if `head` agrees) | `push` gives `Full` |
//! | anything else                        | another thread is between its CAS and its stamp | spin, then look again |
//!
//! Invariants:
//! - Between its successful CAS and its stamp store, one sender (or receiver) owns the slot: no
//!   one else reads or writes its value. That is why `value`'s lock is never contended (one CAS
//!   and one store per use); it is here so that the slot is shared through a safe type (a bare
//!   cell would need a raw one).
//! - `mark` is set once (`close`). A push whose CAS came before it completes, and its value is
//!   received before any receiver is told the ring is closed: `pop` reports `Closed` only when
//!   `head` has caught up with a marked `tail`.
//! - Emptiness and fullness are decided after a `SeqCst` fence, and the CASes are `SeqCst`:
//!   the channel relies on it for its wake-up check (`hchan.rs`, "Dekker").

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicUsize, fence};

use super::sudog::{Lock, lock};

/// Why a push failed; the value comes back.
#[derive(Debug)]
pub(super) enum PushError<T> {
    Full(T),
    Closed(T),
}

/// Why a pop failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PopError {
    Empty,
    /// Closed and drained.
    Closed,
}

/// A counter on a cache line of its own, so that senders (on `tail`) and receivers (on `head`)
/// do not slow each other down.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(AtomicUsize);

#[derive(Debug)]
struct Slot<T> {
    stamp: AtomicUsize,
    value: Lock<Option<T>>,
}

/// A bounded lock-free MPMC queue with a close mark.
#[derive(Debug)]
pub(super) struct Ring<T> {
    head: Padded,
    tail: Padded,
    slots: Box<[Slot<T>]>,
    /// The bit of `tail` that says closed; also the first lap bit's half (`one_lap / 2`).
    mark: usize,
    /// Added to a position to go one lap round.
    one_lap: usize,
}

impl<T> Ring<T> {
    /// A ring of `cap` slots; `cap` > 0.
    pub(super) fn new(cap: usize) -> Ring<T> {
        assert!(cap > 0, "a ring holds at least one value");
        let mark = (cap + 1).next_power_of_two();
        let slots = (0..cap).map(|i| Slot { stamp: AtomicUsize::new(i), value: Lock::new(None) });
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots: slots.collect(),
            mark,
            one_lap: mark * 2,
        }
    }

    /// The position after `p`: the next index, or index 0 of the next lap.
    fn next(&self, p: usize) -> usize {
        let index = p & (self.mark - 1);
        if index + 1 < self.slots.len() {
            p + 1
        } else {
            (p & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Appends `v` unless the ring is full or closed.
    pub(super) fn push(&self, v: T) -> Result<(), PushError<T>> {
        let mut spin = Spin::default();
        let mut tail = self.tail.0.load(Relaxed);
        loop {
            if tail & self.mark != 0 {
                return Err(PushError::Closed(v));
            }
            let slot = &self.slots[tail & (self.mark - 1)];
            let stamp = slot.stamp.load(Acquire);
            if stamp == tail {
                match self.tail.0.compare_exchange_weak(tail, self.next(tail), SeqCst, Relaxed) {
                    Ok(_) => {
                        *lock(&slot.value) = Some(v);
                        slot.stamp.store(tail + 1, Release);
                        return Ok(());
                    }
                    Err(t) => tail = t,
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's value: full, unless a receiver is taking it.
                fence(SeqCst);
                if self.head.0.load(Relaxed).wrapping_add(self.one_lap) == tail {
                    return Err(PushError::Full(v));
                }
                tail = self.tail.0.load(Relaxed);
            } else {
                // Someone is between its CAS and its stamp store.
                spin.snooze();
                tail = self.tail.0.load(Relaxed);
            }
        }
    }

    /// Takes the oldest value, unless the ring is empty (or closed and drained).
    pub(super) fn pop(&self) -> Result<T, PopError> {
        let mut spin = Spin::default();
        let mut head = self.head.0.load(Relaxed);
        loop {
            let slot = &self.slots[head & (self.mark - 1)];
            let stamp = slot.stamp.load(Acquire);
            if stamp == head + 1 {
                match self.head.0.compare_exchange_weak(head, self.next(head), SeqCst, Relaxed) {
                    Ok(_) => {
                        let v = lock(&slot.value).take();
                        slot.stamp.store(head.wrapping_add(self.one_lap), Release);
                        return Ok(v.expect("a full slot holds a value"));
                    }
                    Err(h) => head = h,
                }
            } else if stamp == head {
                // The slot was not written this lap: empty, unless a sender is writing it.
                fence(SeqCst);
                let tail = self.tail.0.load(Relaxed);
                if tail & !self.mark == head {
                    return Err(if tail & self.mark != 0 {
                        PopError::Closed
                    } else {
                        PopError::Empty
                    });
                }
                spin.snooze();
                head = self.head.0.load(Relaxed);
            } else {
                spin.snooze();
                head = self.head.0.load(Relaxed);
            }
        }
    }

    /// Marks the ring closed: later pushes fail; values already in it can still be popped.
    pub(super) fn close(&self) {
        self.tail.0.fetch_or(self.mark, SeqCst);
    }

    /// Values in the ring (a snapshot).
    pub(super) fn len(&self) -> usize {
        loop {
            let tail = self.tail.0.load(SeqCst) & !self.mark;
            let head = self.head.0.load(SeqCst);
            if self.tail.0.load(SeqCst) & !self.mark != tail {
                continue;
            }
            let (hi, ti) = (head & (self.mark - 1), tail & (self.mark - 1));
            return if hi < ti {
                ti - hi
            } else if hi > ti {
                self.slots.len() - hi + ti
            } else if tail == head {
                0
            } else {
                self.slots.len()
            };
        }
    }

    /// Whether a pop would find a value (or the closed mark) right now.
    pub(super) fn can_pop(&self) -> bool {
        let tail = self.tail.0.load(SeqCst);
        tail & self.mark != 0 || tail != self.head.0.load(SeqCst)
    }

    /// Whether a push would find room (or the closed mark) right now.
    pub(super) fn can_push(&self) -> bool {
        let tail = self.tail.0.load(SeqCst);
        tail & self.mark != 0 || self.head.0.load(SeqCst).wrapping_add(self.one_lap) != tail
    }
}

/// Waiting for a peer that is between its CAS and its stamp store: a few spins, then give the
/// CPU away (the peer's thread may have been preempted by the OS).
#[derive(Default)]
struct Spin(u32);

impl Spin {
    fn snooze(&mut self) {
        if self.0 < 6 {
            (0..1 << self.0).for_each(|_| std::hint::spin_loop());
        } else {
            std::thread::yield_now();
        }
        self.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_full_empty_and_wrap() {
        let r = Ring::new(3);
        for lap in 0..5 {
            assert_eq!(r.pop().unwrap_err(), PopError::Empty);
            for i in 0..3 {
                r.push(lap * 10 + i).unwrap();
            }
            assert!(matches!(r.push(99), Err(PushError::Full(99))));
            assert_eq!(r.len(), 3);
            assert!(!r.can_push() && r.can_pop());
            assert_eq!(
                (0..3).map(|_| r.pop().unwrap()).collect::<Vec<_>>(),
                [lap * 10, lap * 10 + 1, lap * 10 + 2]
            );
            assert_eq!(r.len(), 0);
        }
    }

    #[test]
    fn close_keeps_what_was_pushed() {
        let r = Ring::new(4);
        r.push(1).unwrap();
        r.close();
        assert!(matches!(r.push(2), Err(PushError::Closed(2))));
        assert_eq!(r.pop(), Ok(1));
        assert_eq!(r.pop(), Err(PopError::Closed));
        assert!(r.can_pop() && r.can_push());
    }

    #[test]
    fn threads_lose_and_repeat_nothing() {
        const N: usize = 20_000;
        let r = Arc::new(Ring::new(8));
        let pushers: Vec<_> = (0..3)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        let mut v = t * N + i;
                        while let Err(PushError::Full(back)) = r.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let poppers: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match r.pop() {
                            Ok(v) => got.push(v),
                            Err(PopError::Closed) => return got,
                            Err(PopError::Empty) => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        pushers.into_iter().for_each(|h| h.join().unwrap());
        r.close();
        let mut all: Vec<usize> = poppers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..3 * N).collect::<Vec<_>>());
    }

    #[test]
    fn values_left_behind_are_dropped_once() {
        let v = Arc::new(());
        let r = Ring::new(4);
        r.push(v.clone()).unwrap();
        r.push(v.clone()).unwrap();
        drop(r.pop());
        drop(r);
        assert_eq!(Arc::strong_count(&v), 1);
    }
}
