//! The wait queue under every primitive of `sync/`: a FIFO of parked tasks and sleeping threads,
//! each with a ticket, kept under its owner's lock.
//!
//! Mirrors: `runtime/sema.go` (Go 1.19) — `semaRoot` (the queue), `sudog` (an entry: here a
//! ticket and a [`Waker`]), `semacquire1` (queue, park, re-check), `semrelease1` with `handoff`
//! (the releaser gives what it held straight to the first waiter); `sync/runtime.go` —
//! `runtime_SemacquireMutex`, `runtime_Semrelease`.
//!
//! # An entry's life
//!
//! | state    | entered by                                        | left by                          |
//! |----------|---------------------------------------------------|----------------------------------|
//! | queued   | [`acquire`]'s first commit ([`WaitQueue::push`])  | a grant, or the waiter abandoning |
//! | granted  | the releaser ([`WaitQueue::grant_front`], [`WaitQueue::grant_all`]), which then wakes it | the waiter taking its grant |
//! | gone     | the waiter took its grant, or abandoned           | —                                |
//!
//! Invariants:
//! - A grant is a hand-off: what the releaser gave up now belongs to the granted waiter, before
//!   it even runs, so nobody can overtake it (no barging, FIFO order, no starvation).
//! - Every [`Waker`] in the queue belongs to a caller that is parked (or about to be) in
//!   [`acquire`] for exactly that ticket. A task that unwinds out of its park (cancelled at
//!   shutdown) removes its entry, or passes on its grant, before it goes: no stale waker is
//!   ever woken, no grant is lost.
//! - Wakers are woken by the callers after they release the owner's lock (the `Waker::wake`
//!   rule of `sched/park.rs`).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard};

use crate::sched::{self, Waker};

/// Locks one of the short internal mutexes of `sync/`. They never stay locked across a park
/// nor across user code, so poisoning cannot mean broken state: it is ignored.
pub(super) fn lock<S>(m: &StdMutex<S>) -> StdMutexGuard<'_, S> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes what a release collected, once the lock is released.
pub(super) fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

struct Entry<K> {
    ticket: u64,
    kind: K,
    waker: Waker,
}

/// A FIFO of waiters; `K` says what each waits for (e.g. read or write).
pub(super) struct WaitQueue<K> {
    next: u64,
    waiting: VecDeque<Entry<K>>,
    /// Tickets granted but not yet taken by their waiter.
    granted: Vec<u64>,
}

impl<K> std::fmt::Debug for WaitQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiting", &self.waiting.len())
            .field("granted", &self.granted.len())
            .finish()
    }
}

impl<K> WaitQueue<K> {
    pub(super) const fn new() -> Self {
        WaitQueue { next: 0, waiting: VecDeque::new(), granted: Vec::new() }
    }

    /// Whether nobody is waiting (granted waiters that have not run yet do not count).
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// What the first waiter waits for.
    pub(super) fn front(&self) -> Option<&K> {
        self.waiting.front().map(|e| &e.kind)
    }

    /// Queues a waiter at the back; its ticket.
    fn push(&mut self, kind: K, waker: Waker) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.waiting.push_back(Entry { ticket, kind, waker });
        ticket
    }

    /// Go's `semrelease1` with `handoff`: the first waiter now owns what the caller gave up.
    /// Returns its waker, to wake once the lock is released.
    pub(super) fn grant_front(&mut self) -> Option<Waker> {
        let e = self.waiting.pop_front()?;
        self.granted.push(e.ticket);
        Some(e.waker)
    }

    /// Grants every waiter (an event: a `WaitGroup` reaching 0, a `Once` done).
    pub(super) fn grant_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.waiting.len());
        while let Some(w) = self.grant_front() {
            wakers.push(w);
        }
        wakers
    }

    /// Takes the grant of `ticket`, if it was granted.
    fn take_grant(&mut self, ticket: u64) -> bool {
        match self.granted.iter().position(|&t| t == ticket) {
            Some(i) => {
                self.granted.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// A waiter woken without a grant waits again: its entry gets the new waker.
    fn rewait(&mut self, ticket: u64, waker: Waker) {
        if let Some(e) = self.waiting.iter_mut().find(|e| e.ticket == ticket) {
            e.waker = waker;
        }
    }

    /// A waiter leaves without waiting to the end: whether it had been granted.
    fn abandon(&mut self, ticket: u64) -> bool {
        if self.take_grant(ticket) {
            return true;
        }
        self.waiting.retain(|e| e.ticket != ticket);
        false
    }
}

/// Where a caller of [`acquire`] stands, for [`Abandon`].
#[derive(Clone, Copy)]
enum Stage {
    /// Not queued, owns nothing.
    Outside,
    /// Queued with this ticket (perhaps granted already).
    Queued(u64),
    /// Owns what it waited for.
    Owner,
}

/// Undoes a wait when its task unwinds out of the park (cancelled by a shutting-down runtime):
/// `park` may unwind even after a commit that took what was wanted.
struct Abandon<'a, S, K, F: FnOnce(&mut S, bool) -> Vec<Waker>> {
    m: &'a StdMutex<S>,
    queue: fn(&mut S) -> &mut WaitQueue<K>,
    stage: Stage,
    undo: Option<F>,
}

impl<S, K, F: FnOnce(&mut S, bool) -> Vec<Waker>> Drop for Abandon<'_, S, K, F> {
    fn drop(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        let wakers = {
            let mut s = lock(self.m);
            let owner = match self.stage {
                Stage::Outside => return,
                Stage::Owner => true,
                Stage::Queued(ticket) => (self.queue)(&mut s).abandon(ticket),
            };
            undo(&mut s, owner)
        };
        wake_all(wakers);
    }
}

/// Go's `semacquire1` after its fast path: waits in FIFO order until granted.
///
/// `enter` runs once, under the lock, when the caller is already off its stack: it takes what
/// is wanted at once and returns `None`, or returns the kind of wait to queue. The caller then
/// parks (a task) or sleeps (a thread) until a releaser grants its ticket, and owns what was
/// granted when this returns.
///
/// `undo` runs only if the task unwinds out of its park (cancelled at shutdown), under the lock,
/// with whether the caller owned what it waited for (taken at once or granted): it must then
/// release it, or else let the queue move on without this waiter. It returns the wakers to
/// wake.
pub(super) fn acquire<S, K>(
    m: &StdMutex<S>,
    queue: fn(&mut S) -> &mut WaitQueue<K>,
    enter: impl FnOnce(&mut S) -> Option<K>,
    undo: impl FnOnce(&mut S, bool) -> Vec<Waker>,
) {
    let mut guard = Abandon { m, queue, stage: Stage::Outside, undo: Some(undo) };
    sched::wait(|waker| {
        let mut s = lock(m);
        guard.stage = match enter(&mut s) {
            None => Stage::Owner,
            Some(kind) => Stage::Queued(queue(&mut s).push(kind, waker)),
        };
        matches!(guard.stage, Stage::Queued(_))
    });
    while let Stage::Queued(ticket) = guard.stage {
        if queue(&mut lock(m)).take_grant(ticket) {
            break;
        }
        // Woken without a grant (not expected from `sched::wait`, but cheap to survive).
        sched::wait(|waker| {
            let mut s = lock(m);
            let q = queue(&mut s);
            if q.take_grant(ticket) {
                guard.stage = Stage::Owner;
                return false;
            }
            q.rewait(ticket, waker);
            true
        });
    }
    guard.undo = None;
}
