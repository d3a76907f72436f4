//! The direct yield and the direct park: a task hands its worker's thread straight to the next
//! task when the scheduler loop (`find_runnable` in `worker.rs`) would pick that task anyway.
//!
//! Mirrors: nothing in Go. Go's `Gosched` and `gopark` always switch to `g0` and run
//! `schedule()`; these are shortcuts past it that keep its choices (`runtime/proc.go`,
//! `gosched_m`, `park_m`, `runqget`'s `runnext` rule), made possible by tasks that never leave
//! their worker.
//!
//! # The direct yield
//!
//! `yield_now` in a task first tries [`yield_direct`]: if `runnext`, `runq`, the inbox and the
//! global queue are all empty, steps 1–6 of `find_runnable` (`worker.rs`) would pick the front
//! of `local` anyway (steps 7–9 are not reached while `local` has work). So the yielding task
//! pops that front, puts itself at the back and switches straight into it (`task::yield_to`):
//! one switch instead of two, and no `find_runnable`. Go's `Gosched` always goes through `g0`
//! (`mcall(gosched_m)` → `schedule`), because the next goroutine may come from any P and
//! `schedule` also runs GC work and timers; here `local` is owner-only and holds only tasks
//! that started on this thread.
//!
//! | condition (checked in this order)                    | what the yield does                  |
//! |------------------------------------------------------|--------------------------------------|
//! | not in a task                                         | `std::thread::yield_now`             |
//! | `runnext`, `inbox`, `runq` or the global queue non-empty | through the scheduler: their fairness rules apply |
//! | `DIRECT_STREAK` (15) direct yields in a row, and an expired timer or shutdown | through the scheduler: timers (step 1), or stop |
//! | `DIRECT_STREAK` direct yields in a row, nothing due   | the streak starts over; on to the next rows |
//! | `local` empty                                         | through the scheduler (nothing to switch to) |
//! | otherwise                                             | front of `local` runs next; the yielder goes to the back |
//!
//! The bound: expired timers, and shutdown, wait at most 15 direct yields of this worker (the
//! yield after them looks: an atomic load each with no timer armed, a clock read with one, and
//! the yield that finds nothing due counts as the first of the next 15). New and woken
//! work never waits behind a direct yield: the hint loads are `Relaxed` (plain loads on x86-64
//! and aarch64), so a push racing with the check is seen by a later yield's check, in practice
//! the next one; the memory model promises only "eventually", as it does for the scheduler's
//! own `SeqCst` loads of the same counters. Steps 7–9 are not reached while `local` has work,
//! with direct yields or without. Order among the tasks of `local` is FIFO either way, so
//! yielding tasks share the worker round robin. The scheduler loop that resumed the first task
//! of a chain of direct yields gets back whichever task switches to it last:
//! [`crate::task::Task::resume`] returns that task, and `execute` applies the outcome
//! (requeue, park, exit: remove from `live` by *its* slot) to it.
//!
//! # The direct park
//!
//! A task that parks (`task::park_to`) runs its commit on its own stack, then asks
//! [`Worker::pick_after_park`] for a task to switch straight into: `runnext`, when it holds a
//! started task (a channel hand-off or a local wake just put it there, as Go's `ready` does)
//! and the scheduler would pick it anyway. A ping-pong of two tasks then costs one switch per
//! hand-off instead of two plus a `find_runnable`.
//!
//! | condition (checked in this order)                         | the parked task switches to  |
//! |-----------------------------------------------------------|------------------------------|
//! | `runnext` empty, or holding a task that has not started    | the scheduler                |
//! | other work queued (`local`, inbox, `runq`, global) and `RUNNEXT_STREAK` runnext picks in a row | the scheduler (`find_local`'s fairness) |
//! | `DIRECT_STREAK` direct switches in a row, and a timer or shutdown due | the scheduler     |
//! | otherwise                                                  | `runnext`, directly          |
//!

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::{RUNNEXT_STREAK, Worker};
use crate::task::{self, TaskRef};

/// After this many direct yields in a row, the next yield looks at the timers and the shutdown
/// flag (see [`yield_direct`]): expired timers wait at most this many yields of this worker's
/// tasks, as they would if every 16th yield went through `find_runnable`.
const DIRECT_STREAK: u32 = 15;

/// `yield_now` from a task: yields straight to the next task of this worker if the scheduler
/// would pick it anyway (the direct yield, at the top of this file). Returns `false` if the
/// yield must go through the scheduler instead (`Request::Yield`), or if this thread runs no
/// task; `true` once the caller has been resumed.
///
/// The worker comes from `task::yield_to` (a plain pointer `Task::resume` leaves for the running
/// task), not from `CURRENT`: no `Rc` count and no lazy-init check per yield, and no borrow of a
/// thread-local that lives across the switch (rust-lessons §8.3).
#[inline(always)]
pub(crate) fn yield_direct() -> bool {
    task::yield_to(
        #[inline(always)]
        |w, me| w.pick_direct(me),
    )
}

/// For a wait that is about to end (a channel's ring full or empty while a peer works on it):
/// the direct yield if it may; else `Err(idle)`, where `idle` says this worker has nothing else
/// to run (so a short spin delays no one; on a plain thread, `false`).
#[inline]
pub(crate) fn yield_direct_or_idle() -> Result<(), bool> {
    let mut idle = false;
    let yielded =
        task::yield_to(|w, me| w.pick_direct(me).inspect_err(|_| idle = w.nothing_queued()));
    if yielded { Ok(()) } else { Err(idle) }
}

impl Worker {
    /// Whether this worker has no other task to run: nothing in `runnext`, its queues, its
    /// inbox (hints, as in `pick_direct`). Must not panic (it runs inside `task::yield_to`).
    fn nothing_queued(&self) -> bool {
        let remote = &self.shared.workers[self.index];
        let q = self.q.borrow();
        q.runnext.is_none()
            && q.local.is_empty()
            && remote.inbox_len.load(Relaxed) == 0
            && remote.runq_len.load(Relaxed) == 0
    }

    /// The direct yield's choice (the table at the top of this file), with the running task
    /// `me` in hand: `Ok(next)` with `me` queued at the back of `local` if the scheduler would
    /// pick the front of `local` anyway, else `Err(me)`: go through the scheduler. Must not
    /// panic (see `task::yield_to`).
    #[inline(always)]
    fn pick_direct(&self, me: TaskRef) -> Result<TaskRef, TaskRef> {
        let remote = &self.shared.workers[self.index];
        let mut q = self.q.borrow_mut();
        // Relaxed loads: these are hints (see "The direct yield" above).
        if q.runnext.is_some()
            || remote.inbox_len.load(Relaxed) != 0
            || remote.runq_len.load(Relaxed) != 0
            || self.shared.global_len.load(Relaxed) != 0
        {
            return Err(me);
        }
        if q.direct >= DIRECT_STREAK {
            // What a pass through `find_runnable` would do besides picking the front of `local`
            // (the checks above cover steps 2–5): shut down, or run timers (step 1). Neither
            // due: the streak starts over here, without the two switches of that pass.
            if self.scheduler_due() {
                return Err(me);
            }
            q.direct = 0;
        }
        q.direct += 1;
        q.streak = 0;
        // `local` holds started tasks of this worker only (`push_runq`), as `yield_to` needs.
        // Front out, `me` in at the back: with one task queued, that is a swap in place.
        match q.local.len() {
            0 => Err(me),
            1 => Ok(std::mem::replace(&mut q.local[0], me)),
            _ => {
                let next = q.local.pop_front();
                q.local.push_back(me);
                next.ok_or_else(|| unreachable!())
            }
        }
    }

    /// The direct park's choice (see "The direct park" above), for a task that has just
    /// parked: `runnext` if it holds a started task and the scheduler would pick it anyway;
    /// else `None` (the parked task switches to the scheduler). Must not panic (see
    /// `task::park_to`).
    #[inline(always)]
    pub(crate) fn pick_after_park(&self) -> Option<TaskRef> {
        let remote = &self.shared.workers[self.index];
        let mut q = self.q.borrow_mut();
        if !q.runnext.as_ref().is_some_and(|t| t.started()) {
            return None;
        }
        // Relaxed loads: hints, as for the direct yield.
        let others = !q.local.is_empty()
            || remote.inbox_len.load(Relaxed) != 0
            || remote.runq_len.load(Relaxed) != 0
            || self.shared.global_len.load(Relaxed) != 0;
        if others && q.streak >= RUNNEXT_STREAK {
            return None; // `find_local`'s fairness: the queues get their turn
        }
        if q.direct >= DIRECT_STREAK {
            if self.scheduler_due() {
                return None;
            }
            q.direct = 0;
        }
        q.direct += 1;
        q.streak = if others { q.streak + 1 } else { 0 };
        crate::sched::reset_budget();
        q.runnext.take()
    }

    /// Whether the runtime is shutting down or one of this worker's timers has expired (Go's
    /// `checkTimers` test): then the scheduler has work besides picking the next task. Two
    /// atomic loads, and a clock read if a timer is armed. Called inside a direct yield's `pick`,
    /// so it must not panic: `Instant::now` fails only if `CLOCK_MONOTONIC` does (then the
    /// process aborts, see `task::yield_to`).
    #[cold]
    #[inline(never)]
    fn scheduler_due(&self) -> bool {
        let remote = &self.shared.workers[self.index];
        self.shared.shutdown.load(Relaxed)
            || remote.timers.next_deadline().is_some_and(|d| d <= Instant::now())
    }
}
