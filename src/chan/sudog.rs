//! A parked sender or receiver, where its value waits, and the claim a `select!` puts on all of
//! its waits at once.
//!
//! Mirrors: `runtime/runtime2.go` (Go 1.19) `sudog` (`elem`, `isSelect`, `success`) and
//! `g.selectDone`; `runtime/chan.go` `waitq.dequeue` (the CAS that skips a select already won).
//!
//! Go's `sudog` is one record; here it is split in two, both owned by the channel's state and
//! so guarded by its lock, with no allocation and no lock of their own:
//!
//! | part            | lives in               | holds                                           |
//! |-----------------|------------------------|-------------------------------------------------|
//! | [`Sudog`]       | `recvq` / `sendq`      | the slot of its value; a select's group and case |
//! | [`Slot`]        | `State::slots` ([`Slots`])| the value in transit (Go's `elem`), the outcome (`success`), and a plain wait's waker |
//!
//! The parked side owns its slot: it makes it before parking and removes it after waking, under
//! the lock, reading the value and the outcome. Whoever pops the sudog writes the slot.
//!
//! A `select!` that waits enqueues one sudog per case, all sharing one [`Group`]: whoever pops
//! one of them must first *claim* the group (CAS `NONE` → the case's index); a sudog whose group
//! is already claimed is dropped from the queue and skipped, as Go's `dequeue` does.
//!
//! | `Group::claim`  | meaning                                                   | set by                  |
//! |-----------------|-----------------------------------------------------------|-------------------------|
//! | `NONE`          | still waiting; every case's sudog may be taken            | `Group::new`            |
//! | case index `i`  | case `i` won: its slot was completed (value or closed)    | the peer that popped it |
//! | `CANCELLED`     | nobody won: the select timed out or is unwinding          | the select itself       |
//!
//! Invariants:
//! - A slot is completed at most once, under the channel lock, by whoever popped its sudog
//!   *and* claimed it; `status` goes `WAITING` → `DONE` or `CLOSED` once.
//! - A slot is removed only by its owner, after its sudog has left the queue.
//! - The waker is stored before the channel locks are released (the park's commit), so a
//!   claimer always finds it; it is taken by the one claimer and called with no lock held.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};

use crate::sched::Waker;

/// The wait is still on.
pub(super) const WAITING: u8 = 0;
/// The value was handed over (a send's taken, a receive's delivered).
pub(super) const DONE: u8 = 1;
/// The channel closed (or lost its last receiver) first.
pub(super) const CLOSED: u8 = 2;

/// A parked operation in a channel's queue (Go's `sudog`, without its value and waker).
///
/// Two words, so that it moves in registers: with its waker inside (six words) every enqueue
/// and dequeue copied it through the stack, and the copies were read back with wider loads
/// than they were written with, stalling store forwarding (a third of the park's commit in an
/// unbuffered ping-pong).
#[derive(Debug)]
pub(super) struct Sudog {
    /// Index of its [`Slot`] in the channel's `slots`.
    slot: u32,
    /// For a select's case: the case's index in its group.
    case: u32,
    /// For a select's case: the group whose claim it must win (and which holds the waker).
    group: Option<Arc<Group>>,
}

impl Sudog {
    /// A plain send or receive, parked in `slot` (whose [`Slot::waker`] is set by the park's
    /// commit, before the lock is released).
    #[inline(always)]
    pub(super) fn new(slot: usize) -> Sudog {
        Sudog { slot: index(slot), case: 0, group: None }
    }

    /// Case `case` of a select waiting on `group`.
    pub(super) fn new_case(slot: usize, group: &Arc<Group>, case: usize) -> Sudog {
        Sudog { slot: index(slot), case: index(case), group: Some(group.clone()) }
    }

    /// Index of its [`Slot`] in the channel's `slots`.
    #[inline(always)]
    pub(super) fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Go's `dequeue` check: may the popper complete this sudog? Always for a plain wait; for a
    /// select's case only if this pop is the one that claims its group.
    #[inline(always)]
    pub(super) fn claim(&self) -> bool {
        self.group.as_ref().is_none_or(|g| g.claim(self.case as usize))
    }

    /// Whether it is a select's case (whose claim cannot be undone).
    pub(super) fn is_select(&self) -> bool {
        self.group.is_some()
    }

    /// The waker to call (once the lock is released) after completing `slot`, its own slot: a
    /// plain wait's is in the slot, a select's in its group.
    #[inline(always)]
    pub(super) fn into_waker<T>(self, slot: &mut Slot<T>) -> Option<Waker> {
        match self.group {
            None => slot.waker.take(),
            Some(g) => g.take_waker(),
        }
    }
}

/// A slot or case index as a sudog stores it. A channel has fewer than 2^32 parked operations
/// at once (each is a parked task or thread), and a select fewer cases.
#[inline(always)]
fn index(i: usize) -> u32 {
    u32::try_from(i).expect("gort: more than 2^32 operations parked on one channel")
}

/// Where a parked operation's value waits (Go's `sudog.elem` and `success`), and who to wake.
#[derive(Debug)]
pub(super) struct Slot<T> {
    /// A send's value until taken; a receive's value once delivered.
    pub(super) value: Option<T>,
    /// `WAITING`, `DONE` or `CLOSED` (`FREE` while on the free list).
    pub(super) status: u8,
    /// A plain wait's waker, stored by its park's commit and taken by whoever completes the
    /// slot (a select's waker is in its [`Group`]).
    pub(super) waker: Option<Waker>,
}

/// The slot is on the free list of its [`Slots`].
const FREE: u8 = 3;

/// The slots of a channel's parked operations, by index: a vector and a free list (a slab).
///
/// Written field by field in place: a slab's `insert` takes the whole record by value, which
/// the caller builds on its stack and the callee copies with wider loads than it was written
/// with (a store-forwarding stall on every park). A slot's index is stable while it is taken.
#[derive(Debug)]
pub(super) struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots { slots: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slots<T> {
    /// A `WAITING` slot holding `value`; returns its index.
    #[inline(always)]
    pub(super) fn insert(&mut self, value: Option<T>) -> usize {
        match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                // A free slot holds nothing (`remove` took it): replaced without a drop, the
                // new value needs no stack copy to survive a call.
                let old = std::mem::replace(&mut s.value, value);
                debug_assert!(old.is_none(), "a free slot holds no value");
                std::mem::forget(old);
                s.status = WAITING;
                i as usize
            }
            None => self.grow(value),
        }
    }

    /// [`insert`](Slots::insert) with no free slot, out of line.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, value: Option<T>) -> usize {
        self.slots.push(Slot { value, status: WAITING, waker: None });
        self.slots.len() - 1
    }

    /// Stores the waker of the plain wait parked in slot `i` (its park's commit).
    #[inline(always)]
    pub(super) fn set_waker(&mut self, i: usize, waker: Waker) {
        let old = self[i].waker.replace(waker);
        debug_assert!(old.is_none(), "a slot's waker is stored once");
        std::mem::forget(old);
    }

    /// Frees slot `i`; returns its outcome. A waker still in it (a wait that timed out) is
    /// dropped here, under the channel lock: that only lowers a count, as its task or thread
    /// still holds its own reference.
    #[inline(always)]
    pub(super) fn remove(&mut self, i: usize) -> Outcome<T> {
        let s = &mut self[i];
        let out = Outcome { value: s.value.take(), status: s.status };
        s.waker = None;
        s.status = FREE;
        self.free.push(index(i));
        out
    }
}

/// What a freed [`Slot`] held: the value (a receive's, or a send's that was not taken) and the
/// status.
#[derive(Debug)]
pub(super) struct Outcome<T> {
    pub(super) value: Option<T>,
    pub(super) status: u8,
}

impl<T> std::ops::Index<usize> for Slots<T> {
    type Output = Slot<T>;
    #[inline(always)]
    fn index(&self, i: usize) -> &Slot<T> {
        let s = &self.slots[i];
        debug_assert_ne!(s.status, FREE, "a freed channel slot was used");
        s
    }
}

impl<T> std::ops::IndexMut<usize> for Slots<T> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut Slot<T> {
        let s = &mut self.slots[i];
        debug_assert_ne!(s.status, FREE, "a freed channel slot was used");
        s
    }
}

/// The lock of a channel's state, of a select's waker and of a ring slot: a spinlock (the
/// `spin` crate), as crossbeam-channel guards its rendezvous channel. Taking it is one CAS;
/// releasing it is one plain store, where `std::sync::Mutex` releases with a swap (it must see
/// whether a sleeper waits for a futex wake). A channel hand-off takes three locks (the
/// sender's, the parking side's, and its settle after the wake-up), so the swaps were about a
/// tenth of an unbuffered ping-pong.
///
/// What makes spinning safe here: the lock is held for a few dozen instructions, never across
/// a park or a switch (a park's commit releases it before the task switches away), and never
/// while user code runs (values are dropped after unlocking). A holder is therefore always
/// running on some thread, and a waiter on the same thread is impossible.
pub(super) type Lock<T> = spin::Mutex<T>;
/// What [`lock`] returns.
pub(super) type Guard<'a, T> = spin::MutexGuard<'a, T>;

/// Takes `m`: tries, spinning on a plain load while it is held (no cache-line stealing while
/// the holder works), and after `LOCK_SPINS` tries gives the OS thread up between rounds, in
/// case the holder is a plain thread that the OS preempted (crossbeam's `Backoff::snooze`
/// does the same). Not poisoned by a panic: a holder's panic releases the lock, and the state
/// under it is kept consistent at every point where code that may panic runs.
#[inline]
pub(super) fn lock<T>(m: &Lock<T>) -> Guard<'_, T> {
    if let Some(g) = m.try_lock() {
        return g;
    }
    lock_contended(m)
}

#[cold]
fn lock_contended<T>(m: &Lock<T>) -> Guard<'_, T> {
    loop {
        for _ in 0..LOCK_SPINS {
            if !m.is_locked()
                && let Some(g) = m.try_lock()
            {
                return g;
            }
            std::hint::spin_loop();
        }
        std::thread::yield_now();
    }
}

/// Tries of [`lock`] between two yields of the OS thread.
const LOCK_SPINS: u32 = 200;

/// No case has won yet.
const NONE: usize = usize::MAX;
/// The select gave up (timed out, or unwinds): no case may win any more.
const CANCELLED: usize = usize::MAX - 1;

/// One waiting select: the claim all of its sudogs share, and its waker (Go's `g.selectDone`
/// plus the `g` itself).
#[derive(Debug)]
pub(super) struct Group {
    claim: AtomicUsize,
    waker: Lock<Option<Waker>>,
}

impl Group {
    pub(super) fn new() -> Arc<Group> {
        Arc::new(Group { claim: AtomicUsize::new(NONE), waker: Lock::new(None) })
    }

    fn claim(&self, index: usize) -> bool {
        self.claim.compare_exchange(NONE, index, AcqRel, Acquire).is_ok()
    }

    /// Stores the select's waker (in the park's commit, under every case's channel lock).
    pub(super) fn set_waker(&self, w: Waker) {
        *lock(&self.waker) = Some(w);
    }

    fn take_waker(&self) -> Option<Waker> {
        lock(&self.waker).take()
    }

    /// Ends the group's wait: the winning case, or `None` after cancelling the claim (so no
    /// case can be taken any more). Call it after waking, before settling the cases.
    pub(super) fn finish(&self) -> Option<usize> {
        match self.claim.compare_exchange(NONE, CANCELLED, AcqRel, Acquire) {
            Ok(_) | Err(CANCELLED) => None,
            Err(i) => Some(i),
        }
    }
}
