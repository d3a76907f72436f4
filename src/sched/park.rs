//! Parking and waking: the one protocol every blocking operation is built on.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) `gopark(unlockf)`, `park_m`, `goready`, `Gosched`.
//!
//! ```text
//!  task: park(commit): state = WAITING (next park count); commit(task)?
//!          false → the event already happened: the task runs on, never parked
//!          true  → parked: whoever got the task will ready() it; then
//!                  runnext holds a started task → switch straight into it (the direct park)
//!                  else                         → switch to the scheduler (find_runnable)
//!  waker: ready(task): CAS WAITING → RUNNABLE, queue on the home worker (wake it if asleep)
//! ```
//!
//! Go runs the commit on `g0`, after the switch, because a published goroutine may be run at
//! once by another M while its stack is still in use. A gort task runs only on its home thread,
//! which is busy running it until it switches away, so the commit may run on the task's own
//! stack (`task::park_to`): a waker that finds the task through the commit queues it on this
//! thread's worker, which can resume it only after the switch. It can never be resumed twice,
//! nor missed.
//!
//! [`wait`] is the same protocol for code that may also run on plain OS threads (join, channels,
//! the blocking pool): a task parks; a thread sleeps on a [`Waker::Thread`].
//!
//! | caller  | `wait(commit)` does                              | the waker's `wake()` does              |
//! |---------|--------------------------------------------------|----------------------------------------|
//! | a task  | `park`, committing a `Waker::Task`               | `ready` on the task's runtime          |
//! | a thread| `commit(Waker::Thread)`; if true, sleep until woken | sets the flag, unparks the thread   |

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::thread::{self, Thread};
use std::time::Instant;

use super::{Shared, ready, ready_if, worker};
use crate::spawn::Cancelled;
use crate::task::{self, DirectPark, Request, TaskRef};

/// Go's `gopark`: suspends the running task until someone readies it. `commit` runs with the
/// task already `WAITING` (still on its stack, see the module doc); it publishes the task and
/// returns `true`, or returns `false` if the awaited event already happened (the task then runs
/// on without parking). It must not park or switch itself.
///
/// A task of a runtime that is shutting down unwinds from here (with a private payload its
/// entry catches), so its destructors run.
///
/// # Panics
/// Outside a task.
pub(crate) fn park(commit: impl FnOnce(&TaskRef) -> bool) {
    let mut commit = Some(commit);
    park_dyn(&mut |t| commit.take().is_some_and(|c| c(t)));
}

/// [`park`] with the commit behind a reference: the commit's captures (a lock guard, a slot)
/// stay where the caller built them instead of being moved through every layer (each move of a
/// few words costs a store-to-load forwarding stall when it is read back at once).
fn park_dyn(step: &mut dyn FnMut(&TaskRef) -> bool) {
    check_cancel();
    if task::park_to(step, |w| w.pick_after_park()) == DirectPark::Committed {
        task::suspend(Request::Parked(std::marker::PhantomData));
    }
    check_cancel();
}

/// Go's `Gosched`: lets the other runnable tasks of this worker run, then continues.
/// Outside a task it yields the OS thread.
///
/// Usually a *direct* yield: the next task of this worker's `local` queue runs at once, with no
/// trip through the scheduler (`sched/worker.rs`, "The direct yield"). Whenever other queues
/// hold work, or at every 16th yield in a row if a timer has expired or the runtime is shutting
/// down, it goes through the scheduler as Go's does.
#[inline(always)]
pub fn yield_now() {
    // No check before: a cancelled task that yields is resumed, and unwinds after it.
    if worker::yield_direct() {
        check_cancel();
    } else {
        yield_through_scheduler();
    }
}

/// For a wait that is about to end (a channel's ring full or empty while a peer works on it):
/// switches straight to another task of this worker (the direct yield); if there is none and
/// the worker has nothing else to run, spins `spins` times instead (the peer must be on another
/// worker or thread). Unlike [`yield_now`] it never costs a pass through the scheduler (a
/// `netpoll`), and it never spins while other tasks wait for this worker.
pub(crate) fn yield_to_siblings(spins: u32) {
    match worker::yield_direct_or_idle() {
        Ok(()) => check_cancel(),
        Err(true) => (0..spins).for_each(|_| std::hint::spin_loop()),
        Err(false) => {}
    }
}

/// A channel operation's wait before it tries again (the ring was full or empty), as Go's
/// `sync.Mutex` decides with `runtime_canSpin` (`runtime/proc.go`, Go 1.19) whether to spin:
///
/// | who else runs                                   | what this does                                   |
/// |-------------------------------------------------|--------------------------------------------------|
/// | another worker is running tasks, or we are a plain thread | spin `spins` times, then [`yield_to_siblings`] |
/// | no other worker runs (the peer, if any, is one of ours) | [`yield_to_siblings`]`(spins)`: spin only if idle |
///
/// Spinning while siblings wait looks wasteful, but with the peers on another core it is what
/// lets them work on the ring undisturbed: retrying at once, or switching to a sibling that
/// retries, pulls the ring's cache lines back to this core after every single message. Measured
/// on 4 × 4 tasks through `bounded(64)` spread over two workers: 2–4 × the messages per second.
/// Go's own condition also requires an empty local run queue; here the spin is bounded (the
/// caller's few retries), and the siblings run right after it.
pub(crate) fn backoff(spins: u32) {
    if worker::current().is_none_or(|w| w.shared.others_running()) {
        (0..spins).for_each(|_| std::hint::spin_loop());
        yield_to_siblings(0);
    } else {
        yield_to_siblings(spins);
    }
}

/// The slow half of [`yield_now`], out of line: the fast half is inlined into the caller, so
/// that a direct yield switches from the caller's own frame (no return across the switch to
/// mispredict).
#[cold]
#[inline(never)]
fn yield_through_scheduler() {
    if task::in_task() {
        task::suspend(Request::Yield);
        check_cancel();
    } else {
        thread::yield_now();
    }
}

#[inline(always)]
fn check_cancel() {
    if task::current_cancelled() {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
}

/// Something parked that can be woken: a task (with its runtime) or an OS thread.
pub(crate) enum Waker {
    /// A parked task, in park number `u64` (it wakes that park only). The runtime to queue it
    /// on is the task's own.
    Task(TaskRef, u64),
    /// A sleeping OS thread.
    Thread(Arc<ThreadWaiter>),
}

impl Waker {
    /// Wakes what is parked. Call it with no lock held.
    pub(crate) fn wake(self) {
        match self {
            Waker::Task(t, seq) => ready_if(t, seq, true),
            Waker::Thread(w) => w.wake(),
        }
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waker::Task(t, seq) => write!(f, "Waker::Task({}, park {seq})", t.id()),
            Waker::Thread(w) => write!(f, "Waker::Thread({:?})", w.thread.id()),
        }
    }
}

/// A thread's side of [`Waker::Thread`].
#[derive(Debug)]
pub(crate) struct ThreadWaiter {
    thread: Thread,
    woken: AtomicBool,
}

impl ThreadWaiter {
    fn wake(&self) {
        self.woken.store(true, Release);
        self.thread.unpark();
    }
}

/// Blocks the caller until woken: a task parks, a thread sleeps. `commit` gets the caller's
/// [`Waker`] and returns `true` if it stored it (then someone will wake it), `false` if there is
/// no need to wait. Callers re-check their condition afterwards.
pub(crate) fn wait(commit: impl FnOnce(Waker) -> bool) {
    wait_until(None, commit);
}

/// [`wait`] that also ends at `deadline` (a task parks with a timer beside its waker; a thread
/// sleeps with a timeout). Whichever comes first wakes the caller, once: the waker left behind
/// is tied to this park and does nothing later. The caller re-checks its condition and the
/// clock, and removes its waker from wherever `commit` put it.
#[inline(always)]
pub(crate) fn wait_until(deadline: Option<Instant>, commit: impl FnOnce(Waker) -> bool) {
    let mut commit = Some(commit);
    // The task path calls `commit` from inside the park's step (one `dyn` call, whose only
    // argument is a pointer), so the waker is built where the commit stores it: passed by
    // value through a `dyn FnMut(Waker)`, its three words were written to the stack and read
    // back at once as wider loads, a store-forwarding stall in every park.
    if let Some(w) = worker::current().filter(|_| task::in_task()) {
        let shared = &w.shared;
        let index = w.index;
        park_dyn(&mut |t| {
            let seq = t.park_seq();
            if !commit.take().is_some_and(|c| c(Waker::Task(t.clone(), seq))) {
                return false;
            }
            if let Some(d) = deadline {
                shared.workers[index].timers.add_ready(d, t.clone(), seq);
            }
            true
        });
        return;
    }
    wait_thread(deadline, &mut |w| commit.take().is_some_and(|c| c(w)));
}

/// The thread side of [`wait_until`], with the commit behind a reference.
#[inline(never)]
fn wait_thread(deadline: Option<Instant>, commit: &mut dyn FnMut(Waker) -> bool) {
    let waiter =
        Arc::new(ThreadWaiter { thread: thread::current(), woken: AtomicBool::new(false) });
    if commit(Waker::Thread(waiter.clone())) {
        while !waiter.woken.load(Acquire) {
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    thread::park_timeout(left);
                }
            }
        }
    }
}

/// Wakes a task or thread parked with [`park_current`] (as `std::thread::Thread::unpark`).
#[derive(Clone)]
pub struct Unparker(UnparkerKind);

#[derive(Clone)]
enum UnparkerKind {
    Task(TaskRef, Arc<Shared>),
    Thread(Thread),
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            UnparkerKind::Task(t, _) => write!(f, "Unparker(task {})", t.id()),
            UnparkerKind::Thread(t) => write!(f, "Unparker({:?})", t.id()),
        }
    }
}

impl Unparker {
    /// Makes the token available: the parked task (or thread) wakes, or its next
    /// [`park_current`] returns at once. Tokens do not add up.
    pub fn unpark(&self) {
        match &self.0 {
            UnparkerKind::Task(t, shared) => {
                if t.notify_token() {
                    ready(shared, t.clone());
                }
            }
            UnparkerKind::Thread(t) => t.unpark(),
        }
    }
}

/// The [`Unparker`] of the calling task, or of the calling thread outside a task.
pub fn unparker() -> Unparker {
    match (task::current(), worker::current()) {
        (Some(t), Some(w)) => Unparker(UnparkerKind::Task(t, w.shared.clone())),
        _ => Unparker(UnparkerKind::Thread(thread::current())),
    }
}

/// Parks the calling task until its [`Unparker`] is used (as `std::thread::park`, with a
/// token); outside a task, parks the thread. May also return spuriously: call it in a loop that
/// checks a condition.
pub fn park_current() {
    let Some(t) = task::current() else {
        thread::park();
        return;
    };
    if t.take_token() {
        return;
    }
    // The commit runs with the task WAITING: an unpark before it leaves the token NOTIFIED and
    // the commit fails; one after it finds PARKED and readies the task.
    park(|t| t.park_token());
    t.take_token();
}

/// How many I/O operations a task may complete without parking before it must yield (tokio's
/// coop budget): one flooded connection cannot starve the other tasks of its worker.
const COOP_BUDGET: u32 = 128;

thread_local! {
    /// Operations done by the running task since it was last switched in.
    static BUDGET: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The scheduler switches a task in: its budget starts afresh.
pub(crate) fn reset_budget() {
    BUDGET.set(0);
}

/// One I/O operation completed without parking; yields once the budget is spent.
pub(crate) fn coop_tick() {
    let n = BUDGET.get() + 1;
    if n >= COOP_BUDGET && task::in_task() {
        BUDGET.set(0);
        yield_now();
    } else {
        BUDGET.set(n);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Runtime;

    type Slot = Arc<Mutex<Option<Waker>>>;

    fn store(slot: &Slot) -> impl FnOnce(Waker) -> bool + '_ {
        |w| {
            *slot.lock().unwrap() = Some(w);
            true
        }
    }

    #[test]
    fn a_timed_wait_ends_at_its_deadline_and_its_stale_waker_wakes_nothing_later() {
        for workers in [1, 2] {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            rt.block_on(|| {
                let (first, second): (Slot, Slot) = Default::default();
                let done = Arc::new(AtomicBool::new(false));
                let (f, s, d) = (first.clone(), second.clone(), done.clone());
                let waiter = crate::go(move || {
                    let t = Instant::now();
                    wait_until(Some(t + Duration::from_millis(30)), store(&f));
                    let waited = t.elapsed();
                    // Parked again, for something else: only `second` may end this park.
                    wait(store(&s));
                    d.store(true, SeqCst);
                    waited
                });
                crate::time::sleep(Duration::from_millis(80));
                // The first wait timed out; its waker is stale now.
                first.lock().unwrap().take().expect("the first waker").wake();
                crate::time::sleep(Duration::from_millis(50));
                assert!(!done.load(SeqCst), "a stale waker ended a later park");
                second.lock().unwrap().take().expect("the second waker").wake();
                let waited = waiter.join().unwrap();
                assert!(waited >= Duration::from_millis(30), "{waited:?}");
                assert!(done.load(SeqCst));
            });
        }
    }

    #[test]
    fn a_timed_wait_on_a_thread_times_out_too() {
        let slot: Slot = Default::default();
        let t = Instant::now();
        wait_until(Some(t + Duration::from_millis(20)), store(&slot));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
