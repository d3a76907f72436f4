//! A parked sender or receiver, and the claim a `select!` puts on all of its sudogs at once.
//!
//! Mirrors: `runtime/runtime2.go` (Go 1.19) `sudog` (`elem`, `isSelect`, `success`) and
//! `g.selectDone`; `runtime/chan.go` `waitq.dequeue` (the CAS that skips a select already won).
//!
//! A plain `send`/`recv` parks with one sudog. A `select!` that has to wait parks with one sudog
//! per case, all sharing one [`Group`]: whoever pops one of them must first *claim* the group
//! (CAS `NONE` → the case's index); a sudog whose group is already claimed is dropped from the
//! queue and skipped, as Go's `dequeue` does.
//!
//! | `Group::claim`  | meaning                                                   | set by                  |
//! |-----------------|-----------------------------------------------------------|-------------------------|
//! | `NONE`          | still waiting; every case's sudog may be taken            | `Group::new`            |
//! | case index `i`  | case `i` won: its sudog was completed (value or closed)   | the peer that popped it |
//! | `CANCELLED`     | nobody won: the select timed out or is unwinding          | the select itself       |
//!
//! Invariants:
//! - A sudog is completed at most once, under the lock of the channel whose queue held it, by
//!   whoever popped it *and* claimed it; `status` goes `WAITING` → `DONE` or `CLOSED` once.
//! - The waker is stored before the channel locks are released (the park's commit), so a
//!   claimer always finds it; it is taken by the one claimer and called with no lock held.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sched::Waker;

/// The sudog's wait is still on.
pub(super) const WAITING: u8 = 0;
/// The value was handed over (a send's taken, a receive's delivered).
pub(super) const DONE: u8 = 1;
/// The channel closed (or lost its last receiver) first.
pub(super) const CLOSED: u8 = 2;

/// A parked operation (Go's `sudog`).
pub(super) struct Sudog<T> {
    inner: Mutex<Inner<T>>,
    /// For a select's case: its group and the case's index.
    sel: Option<(Arc<Group>, usize)>,
}

struct Inner<T> {
    /// Who to wake (a plain wait; a select's waker is in its group).
    waker: Option<Waker>,
    /// A send's value until taken; a receive's value once delivered.
    value: Option<T>,
    status: u8,
}

impl<T> Sudog<T> {
    /// A sudog for a plain send (`value`) or receive (`None`); its waker comes at commit.
    pub(super) fn new(value: Option<T>) -> Arc<Sudog<T>> {
        Arc::new(Sudog { inner: lock_new(value), sel: None })
    }

    /// A sudog for case `index` of a select waiting on `group`.
    pub(super) fn new_case(value: Option<T>, group: &Arc<Group>, index: usize) -> Arc<Sudog<T>> {
        Arc::new(Sudog { inner: lock_new(value), sel: Some((group.clone(), index)) })
    }

    fn inner(&self) -> MutexGuard<'_, Inner<T>> {
        lock(&self.inner)
    }

    /// Stores the waker of a plain wait (in the park's commit, under the channel lock).
    pub(super) fn set_waker(&self, w: Waker) {
        self.inner().waker = Some(w);
    }

    /// Go's `dequeue` check: may the popper complete this sudog? Always for a plain wait; for a
    /// select's case only if this pop is the one that claims its group.
    pub(super) fn claim(&self) -> bool {
        self.sel.as_ref().is_none_or(|(g, i)| g.claim(*i))
    }

    /// Completes the wait (under the channel lock, after [`claim`](Sudog::claim)); returns the
    /// waker to call once the lock is released.
    pub(super) fn complete(&self, status: u8) -> Option<Waker> {
        let mut inner = self.inner();
        inner.status = status;
        match &self.sel {
            None => inner.waker.take(),
            Some((g, _)) => g.take_waker(),
        }
    }

    /// Hands `v` to a parked receiver and completes it.
    pub(super) fn deliver(&self, v: T) -> Option<Waker> {
        self.inner().value = Some(v);
        self.complete(DONE)
    }

    /// Takes a parked sender's value and completes it.
    pub(super) fn take_sent(&self) -> (T, Option<Waker>) {
        let v = self.inner().value.take().expect("a parked sender holds its value");
        (v, self.complete(DONE))
    }

    /// A select's sudog left behind by an unwinding select: no case of its group may win now.
    pub(super) fn cancel(&self) {
        if let Some((g, _)) = &self.sel {
            g.finish();
        }
    }

    /// `WAITING`, `DONE` or `CLOSED`.
    pub(super) fn status(&self) -> u8 {
        self.inner().status
    }

    /// The value held: a receive's delivered value, or a failed send's own value back.
    pub(super) fn take(&self) -> Option<T> {
        self.inner().value.take()
    }
}

fn lock_new<T>(value: Option<T>) -> Mutex<Inner<T>> {
    Mutex::new(Inner { waker: None, value, status: WAITING })
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
    /// case can be taken any more). Call it after waking, before unlinking the sudogs.
    pub(super) fn finish(&self) -> Option<usize> {
        match self.claim.compare_exchange(NONE, CANCELLED, AcqRel, Acquire) {
            Ok(_) => None,
            Err(CANCELLED) => None,
            Err(i) => Some(i),
        }
    }
}
