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
//! | [`Sudog`]       | `recvq` / `sendq`      | who to wake, and the slot of its value          |
//! | [`Slot`]        | `State::slots` (a slab)| the value in transit (Go's `elem`) and the outcome (`success`) |
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

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::sched::Waker;

/// The wait is still on.
pub(super) const WAITING: u8 = 0;
/// The value was handed over (a send's taken, a receive's delivered).
pub(super) const DONE: u8 = 1;
/// The channel closed (or lost its last receiver) first.
pub(super) const CLOSED: u8 = 2;

/// A parked operation in a channel's queue (Go's `sudog`, without its value).
#[derive(Debug)]
pub(super) struct Sudog {
    /// Index of its [`Slot`] in the channel's `slots`.
    pub(super) slot: usize,
    /// Who to wake (a plain wait; a select's waker is in its group).
    waker: Option<Waker>,
    /// For a select's case: its group and the case's index.
    sel: Option<(Arc<Group>, usize)>,
}

impl Sudog {
    /// A plain send or receive, parked with `waker`.
    pub(super) fn new(slot: usize, waker: Waker) -> Sudog {
        Sudog { slot, waker: Some(waker), sel: None }
    }

    /// Case `index` of a select waiting on `group`.
    pub(super) fn new_case(slot: usize, group: &Arc<Group>, index: usize) -> Sudog {
        Sudog { slot, waker: None, sel: Some((group.clone(), index)) }
    }

    /// Go's `dequeue` check: may the popper complete this sudog? Always for a plain wait; for a
    /// select's case only if this pop is the one that claims its group.
    pub(super) fn claim(&self) -> bool {
        self.sel.as_ref().is_none_or(|(g, i)| g.claim(*i))
    }

    /// Whether it is a select's case (whose claim cannot be undone).
    pub(super) fn is_select(&self) -> bool {
        self.sel.is_some()
    }

    /// The waker to call (once the lock is released) after completing the slot.
    pub(super) fn into_waker(self) -> Option<Waker> {
        match self.sel {
            None => self.waker,
            Some((g, _)) => g.take_waker(),
        }
    }
}

/// Where a parked operation's value waits (Go's `sudog.elem` and `success`).
#[derive(Debug)]
pub(super) struct Slot<T> {
    /// A send's value until taken; a receive's value once delivered.
    pub(super) value: Option<T>,
    /// `WAITING`, `DONE` or `CLOSED`.
    pub(super) status: u8,
}

impl<T> Slot<T> {
    pub(super) fn new(value: Option<T>) -> Slot<T> {
        Slot { value, status: WAITING }
    }
}

/// Locks a channel's state. Held for a few dozen instructions at a time, so a contended lock
/// is usually free again within a spin: try for a while before `lock`, whose sleeping path (a
/// futex wait, and a futex wake on every later unlock until the lock is seen free) costs two
/// syscalls where the hold time is well under one.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    for _ in 0..LOCK_SPINS {
        match m.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
        }
    }
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Attempts of [`lock`] before it may sleep.
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
    waker: Mutex<Option<Waker>>,
}

impl Group {
    pub(super) fn new() -> Arc<Group> {
        Arc::new(Group { claim: AtomicUsize::new(NONE), waker: Mutex::new(None) })
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
