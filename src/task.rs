//! The task record and the glue that switches into and out of it.
//!
//! Mirrors: `runtime/runtime2.go` (Go 1.19) — `g` and its status (`_Grunnable`, `_Grunning`,
//! `_Gwaiting`, `_Gdead`); `runtime/proc.go` — `newproc1`, `execute`, `gopark`'s `mcall(park_m)`,
//! `goexit0`; `runtime/asm_amd64.s` — `mcall`, `gogo`.
//!
//! This is one of the fenced files where `unsafe` may appear: it owns the only code that switches
//! stacks. Everything above it (`sched/`, `time.rs`, `net/`) is safe Rust and talks to a task
//! through `Task::resume` (scheduler side), `suspend` (task side) and `yield_to` (a task
//! handing its thread straight to another task of the same worker, without the scheduler).
//!
//! # States
//!
//! | state      | Go          | who moves it there                               | next                          |
//! |------------|-------------|--------------------------------------------------|-------------------------------|
//! | `RUNNABLE` | `_Grunnable`| spawn; `make_runnable` (a wake); a failed commit; `yield_to` (the yielder) | `RUNNING` (its worker runs it) |
//! | `RUNNING`  | `_Grunning` | `Task::resume`; `yield_to` (the task switched to) | `RUNNABLE` (yield), `WAITING` (park), `DEAD` (exit) |
//! | `WAITING`  | `_Gwaiting` | `park_to`, before it runs the park's commit | `RUNNABLE` via one successful `make_runnable` |
//! | `DEAD`     | `_Gdead`    | `Task::resume` when the task exits             | —                             |
//!
//! # The direct yield (`yield_to`)
//!
//! Go's `Gosched` always goes through `g0`: `mcall(gosched_m)` switches to the scheduler stack,
//! which requeues the goroutine and runs `schedule()`. Two switches per yield, and the whole of
//! `findRunnable` in between. Go needs `g0` there because the next goroutine may be on any P's
//! queue and `schedule` must run timers, GC work and the netpoller. When the worker itself
//! decides the next task is the front of its owner-only `local` queue (see "The direct yield" in
//! `sched/worker.rs`), the scheduler has nothing to do but requeue and pick, so the yielding
//! task does both and switches straight into the next task's context: one switch per yield.
//!
//! The scheduler loop that resumed the first task of such a chain is still blocked in its
//! `Task::resume`; when *some* task finally switches back to it, the request belongs to
//! whichever task is running then. That is why `CURRENT` owns the running task's `Arc` and
//! `Task::resume` hands back the task that came back, not the one it was given.
//!
//! Invariants:
//! - `CURRENT` owns one strong reference to the task running on this thread (moved in by
//!   `resume`, moved between tasks by `yield_to`, moved out when a task switches back to the
//!   scheduler): the running task is alive while it runs, with no refcount traffic per switch.
//! - `WORKER` points to the worker whose `resume` is running on this thread, and is null
//!   outside one (`resume` is never nested). Every task runs inside such a call, which borrows
//!   that worker, so a running task may use the pointer; `yield_to` does, before its switch
//!   only.
//! - A task runs on one OS thread only: the worker that ran it first (its *home*, fixed at the
//!   first `resume`). Its context, stack and entry are touched only by that thread
//!   (the task itself while `RUNNING`, its worker's scheduler loop or another of its tasks in
//!   `yield_to` otherwise), which is what makes
//!   the `UnsafeCell` below sound, and what makes thread-locals safe inside tasks (architecture
//!   decision 1: LLVM may cache a thread-local's address across a switch).
//! - `WAITING → RUNNABLE` is a CAS: of all the parties that may wake a parked task (a poller, a
//!   timer, a channel, shutdown), exactly one puts it back in a run queue.
//! - The state becomes `WAITING` *before* the park's commit publishes the task anywhere, so a
//!   waker that finds it can always make it runnable (Go: `park_m` sets `_Gwaiting`, then calls
//!   `unlockf`).
//! - After its commit, a parked task touches neither its state nor anything the commit
//!   published: a waker on another thread may already have made it `RUNNABLE` and queued it
//!   on its home worker, which is this thread, busy until the task has switched away.
//!
//! # The direct park (`park_to`)
//!
//! Go's `gopark` runs the commit (`unlockf`) on `g0`, after the switch, because once the
//! goroutine is published another M may run it at once, while its stack is still in use. A
//! gort task runs only on its home thread, and that thread is busy running the task until it
//! switches away: nobody can resume it early. So the commit runs on the task's own stack,
//! *before* the switch, and if the worker has a task ready to run next (the `runnext` a channel
//! hand-off just filled, say), the parking task switches straight into it: one switch per park
//! instead of two, and no `find_runnable` in between (`sched/worker.rs`, "The direct park").
//! - Nothing unwinds through a switch: the entry catches every panic (decision 6).

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, OnceLock};

use reactor::Waiter;

use crate::arch::{self, Context};
use crate::sched::Shared;
use crate::sched::worker::Worker;
use crate::stack::{RunningTask, Stack, StackPool};

pub use crate::sched::{Unparker, park_current as park, unparker};
use crate::spawn::JoinSlot;
pub use crate::spawn::{Builder, JoinError, JoinHandle};

const RUNNABLE: u8 = 0;
const RUNNING: u8 = 1;
const WAITING: u8 = 2;
const DEAD: u8 = 3;

const TOKEN_EMPTY: u8 = 0;
const TOKEN_NOTIFIED: u8 = 1;
const TOKEN_PARKED: u8 = 2;

/// A shared reference to a task: what run queues, wait queues and poll descriptors hold.
pub(crate) type TaskRef = Arc<Task>;

/// The closure a task runs: the user's function, wrapped so it stores its result in the
/// task's join slot. A closure that captures nothing sized costs no allocation.
pub(crate) type Entry = Box<dyn FnOnce(&Task) + Send>;

/// What a task asked of its scheduler when it switched away (Go: the function given to `mcall`).
pub(crate) enum Request<'a> {
    /// `Gosched`: put me at the back of the queue.
    Yield,
    /// `gopark(unlockf)`, second half: I am `WAITING` and my commit has published me (see
    /// [`park_to`]); there was no task to switch to directly, so run the scheduler. I may be
    /// `RUNNABLE` and queued already: leave my state alone.
    Parked(std::marker::PhantomData<&'a ()>),
    /// `goexit`: I am done; my stack may be reused.
    Exit,
}

/// What [`Task::resume`] reports about the task that switched back to the scheduler.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The task yielded: it is `RUNNABLE` and belongs in its worker's queue.
    Yielded,
    /// The task parked and its commit published it: someone else will wake it.
    Parked,
    /// The task finished; its stack went back to the pool.
    Exited,
}

/// Go's `g`: one green task.
#[doc(alias = "g")]
pub(crate) struct Task {
    /// Unique, from 1 (Go's `goid`).
    id: u64,
    /// For traces and the stack-overflow message.
    name: Option<Box<str>>,
    /// Stack size asked for at spawn.
    stack_size: usize,
    /// The state (`RUNNABLE` / `RUNNING` / `WAITING` / `DEAD`) in the low 2 bits, and above
    /// them the park count: which park a `WAITING` task is in. A waker that remembers the count
    /// wakes only that park, never a later one (a timed-out channel wait leaves its waker
    /// behind; when it fires, the task may be parked on something else entirely).
    state: AtomicU64,
    /// Worker index + 1; 0 until the first run.
    home: AtomicUsize,
    /// The runtime of the home worker, from the first run on: what a waker queues the task on
    /// (so a waker holds no reference of its own to the runtime; a task kept alive after its
    /// runtime ended, by a `JoinHandle` say, keeps the runtime's shared state alive, as a
    /// `Handle` does).
    rt: OnceLock<Arc<Shared>>,
    /// Set at shutdown: the next return from a park unwinds the task.
    cancel: AtomicBool,
    /// The key of this task in its home worker's list of live tasks.
    slot: AtomicUsize,
    /// `task::park`'s token (as `std::thread::park`'s): `TOKEN_EMPTY`, `TOKEN_NOTIFIED` (an
    /// unpark is waiting to be consumed) or `TOKEN_PARKED` (parked in `task::park`: only then
    /// does an unpark wake the task, so it never disturbs a task parked for something else).
    token: AtomicU8,
    /// The result, for `JoinHandle::join` (no separate allocation per spawn).
    join: JoinSlot,
    /// What the overflow handler reports while this task runs (set at the first run, then
    /// never written: the handler reads it through the pointer `set_running` stores).
    overflow: OnceLock<RunningTask>,
    /// Touched only by the home thread (see the invariants).
    cell: UnsafeCell<Cell_>,
}

/// The parts of a task that only its home thread touches.
struct Cell_ {
    /// Where the task is suspended (valid while not `RUNNING`, once started).
    ctx: Context,
    /// The scheduler context to switch back to (set by each `resume`).
    sched: *mut Context,
    /// The stack, from the first run until exit.
    stack: Option<Stack>,
    /// The closure, until the first run takes it.
    entry: Option<Entry>,
}

// SAFETY: the fields in `cell` are touched by one thread at a time: the spawner until the task
// is queued, then only its home worker's thread (invariants above). Everything else is atomic
// or immutable. `Entry` is `Send`, so moving it to the worker is fine.
unsafe impl Sync for Task {}
// SAFETY: as above; the raw `sched` pointer is only dereferenced on the home thread.
unsafe impl Send for Task {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The task running on this thread, if any (Go's `getg()` when `g != g0`): a pointer from
    /// `Arc::into_raw`, owning one strong reference (see the invariants).
    static CURRENT: Cell<*const Task> = const { Cell::new(std::ptr::null()) };
    /// This thread's scheduler context: where a task switches back to (Go's `g0`).
    static SCHED: UnsafeCell<Context> = const { UnsafeCell::new(Context::empty()) };
    /// The worker whose `Task::resume` is running on this thread, null outside one: what
    /// `yield_to` hands to its `pick`. Read only before a switch, never cached across one.
    static WORKER: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

impl Task {
    /// Go's `newproc1`: a runnable task that has not started yet.
    pub(crate) fn new(entry: Entry, name: Option<Box<str>>, stack_size: usize) -> TaskRef {
        Arc::new(Task {
            id: NEXT_ID.fetch_add(1, Relaxed),
            name,
            stack_size,
            state: AtomicU64::new(RUNNABLE as u64),
            home: AtomicUsize::new(0),
            rt: OnceLock::new(),
            cancel: AtomicBool::new(false),
            slot: AtomicUsize::new(usize::MAX),
            token: AtomicU8::new(TOKEN_EMPTY),
            join: JoinSlot::default(),
            overflow: OnceLock::new(),
            cell: UnsafeCell::new(Cell_ {
                ctx: Context::default(),
                sched: std::ptr::null_mut(),
                stack: None,
                entry: Some(entry),
            }),
        })
    }

    /// The task's join slot.
    pub(crate) fn join_slot(&self) -> &JoinSlot {
        &self.join
    }

    /// The task's id (Go's `goid`).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The task's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The worker that owns the task once started.
    pub(crate) fn home(&self) -> Option<usize> {
        self.home.load(Acquire).checked_sub(1)
    }

    /// The runtime the task belongs to, once started.
    pub(crate) fn runtime(&self) -> Option<&Arc<Shared>> {
        self.rt.get()
    }

    /// Whether the task has run at least once (it may then not be stolen).
    pub(crate) fn started(&self) -> bool {
        self.home.load(Acquire) != 0
    }

    /// Starts loading the top of the task's suspended stack into the cache
    /// ([`arch::Context::prefetch`]), for worker `on` of the task's own runtime: the caller,
    /// which found the task in its own queue or poller and is about to run it. Does nothing
    /// unless `on` is the task's home: only the home thread may read the task's cell.
    #[inline]
    pub(crate) fn prefetch_stack(&self, on: usize) {
        if self.home.load(Relaxed) != on + 1 {
            return;
        }
        // SAFETY: the caller is worker `on` of the task's runtime (the contract above), which
        // is the task's home, the only thread that touches `cell` (invariants); the task is
        // not running (it is queued, and this thread runs the scheduler), and the shared
        // borrow ends at once.
        let ctx = unsafe { &(*self.cell.get()).ctx };
        ctx.prefetch();
    }

    /// `WAITING → RUNNABLE`, exactly once per park. `false` if the task was not parked
    /// (already woken by someone else, cancelled, or dead): the caller must not queue it.
    pub(crate) fn make_runnable(&self) -> bool {
        let mut cur = self.state.load(SeqCst);
        loop {
            if cur & 3 != WAITING as u64 {
                return false;
            }
            match self.state.compare_exchange(cur, (cur & !3) | RUNNABLE as u64, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// `WAITING → RUNNABLE` only if the task is still in park number `seq` (see `state`).
    #[inline]
    pub(crate) fn make_runnable_if(&self, seq: u64) -> bool {
        let parked = (seq << 2) | WAITING as u64;
        self.state.compare_exchange(parked, (seq << 2) | RUNNABLE as u64, SeqCst, SeqCst).is_ok()
    }

    /// Which park the task is in (meaningful in a park's commit, which runs with it `WAITING`).
    #[inline]
    pub(crate) fn park_seq(&self) -> u64 {
        self.state.load(SeqCst) >> 2
    }

    /// The state alone.
    #[inline]
    fn st(&self) -> u8 {
        (self.state.load(Acquire) & 3) as u8
    }

    /// Sets the state, keeping the park count. Only the task's owner calls it (the thread that
    /// runs it, or took it from a queue), never while it is `WAITING`.
    #[inline]
    fn set_st(&self, st: u8) {
        let cur = self.state.load(Relaxed);
        self.state.store((cur & !3) | st as u64, Release);
    }

    /// Marks the task for unwinding at its next return from a park (shutdown).
    pub(crate) fn set_cancel(&self) {
        self.cancel.store(true, Release);
    }

    /// Whether the task is marked for unwinding.
    #[inline]
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Acquire)
    }

    /// Records the task's key in its home worker's list of live tasks.
    pub(crate) fn set_slot(&self, key: usize) {
        self.slot.store(key, Relaxed);
    }

    /// The key given to [`set_slot`](Task::set_slot).
    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Relaxed)
    }

    /// Drops the closure of a task that will never start (shutdown, or no stack for it): its
    /// join sees `Cancelled`.
    pub(crate) fn discard(&self) {
        assert!(!self.started(), "gort: discard of a started task");
        // SAFETY: an unstarted task's cell is touched only by the thread that holds it, which
        // took it from a queue: that is us.
        let entry = unsafe { (*self.cell.get()).entry.take() };
        self.set_st(DEAD);
        drop(entry);
        self.join.complete(Err(JoinError::Cancelled));
    }

    /// `task::park`, before parking: consumes a pending unpark. `true` if there was one.
    pub(crate) fn take_token(&self) -> bool {
        self.token.compare_exchange(TOKEN_NOTIFIED, TOKEN_EMPTY, SeqCst, SeqCst).is_ok()
    }

    /// `task::park`'s commit: `EMPTY → PARKED`. `false` (and the token consumed) if an unpark
    /// came first.
    pub(crate) fn park_token(&self) -> bool {
        match self.token.compare_exchange(TOKEN_EMPTY, TOKEN_PARKED, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(_) => {
                self.token.store(TOKEN_EMPTY, SeqCst);
                false
            }
        }
    }

    /// An unpark: leaves the token `NOTIFIED`; `true` if the task was parked in `task::park`
    /// (the caller must then make it runnable).
    pub(crate) fn notify_token(&self) -> bool {
        self.token.swap(TOKEN_NOTIFIED, SeqCst) == TOKEN_PARKED
    }

    /// The overflow record [`set_running`](crate::stack::set_running) points to while this
    /// task runs (null before its first run, which never happens while it runs).
    #[inline(always)]
    fn overflow_record(&self) -> *const RunningTask {
        self.overflow.get().map_or(std::ptr::null(), std::ptr::from_ref)
    }

    /// Go's `execute` + the return half of `mcall`: run `task` on this thread until a task
    /// switches back to the scheduler, then carry out what that task asked.
    ///
    /// Returns the task that switched back, with what became of it. That is `task` unless
    /// tasks yielded directly to each other in between ([`yield_to`]): then it is whichever
    /// task of this worker was running when the chain came back.
    ///
    /// `worker` is this thread's worker, borrowed for the whole run (direct yields reach it
    /// through `WORKER`); the first resume makes it the task's home.
    /// Must be called only on the home thread, only for a `RUNNABLE` task taken from a queue,
    /// and not from inside a task. An error (no stack for a first run) comes with `task`, which
    /// did not run.
    pub(crate) fn resume(
        task: TaskRef,
        worker: &Worker,
        stacks: &mut StackPool,
    ) -> (TaskRef, io::Result<Outcome>) {
        let prev = task.st();
        assert_eq!(prev, RUNNABLE, "gort: resumed task {} in state {prev}", task.id);
        debug_assert!(!in_task(), "gort: resume called from inside a task");
        // A plain store: a RUNNABLE task is owned by whoever took it from a queue (us).
        task.set_st(RUNNING);
        let ptr = task.cell.get();
        let sched = SCHED.with(|s| s.get());
        // SAFETY: this thread is the only one touching `cell` (invariants): either the task
        // has not started (it came from a queue, nobody else holds its cell), or its home is
        // this thread. The borrow ends before the switch.
        let cell = unsafe { &mut *ptr };
        cell.sched = sched;
        if cell.stack.is_none() {
            // First run: this worker becomes home; give the task a stack and a fresh frame.
            let _ = task.rt.set(worker.shared.clone());
            task.home.store(worker.index + 1, Release);
            let stack = match stacks.get(task.stack_size) {
                Ok(s) => s,
                Err(e) => {
                    task.set_st(RUNNABLE);
                    return (task, Err(e));
                }
            };
            // SAFETY: `top()` is the 16-byte aligned top of a writable stack that stays
            // mapped while `cell.stack` holds it, i.e. until the task exits.
            cell.ctx = unsafe { arch::init(stack.top(), task_entry) };
            let _ = task.overflow.set(RunningTask::new(&stack, task.id, task.name()));
            cell.stack = Some(stack);
        } else {
            debug_assert_eq!(task.home(), Some(worker.index), "gort: a task migrated");
        }
        let to = &raw const cell.ctx;
        // SAFETY: the record lives inside the task, which `CURRENT` keeps alive until the
        // task switches back (below, where the pointer is reset first); it is never written
        // after the first run.
        unsafe { crate::stack::set_running(task.overflow_record()) };
        let raw = Arc::into_raw(task);
        CURRENT.with(|c| c.set(raw));
        WORKER.set(worker);
        // SAFETY: `sched` is this thread's scheduler context (saved by this switch) and `to`
        // is fresh (from `init`) or suspended (by `suspend` or `yield_to`); it is resumed
        // once. The argument is the task's address, which `task_entry` reads on the first run
        // (a suspended task ignores it); `CURRENT` keeps the task alive while it runs.
        let arg = unsafe { arch::switch(sched, to, raw as usize) };
        // Whoever switched back is the running task now: take it (and its reference) out.
        let back = CURRENT.with(|c| c.replace(std::ptr::null()));
        WORKER.set(std::ptr::null());
        // SAFETY: null is always allowed.
        unsafe { crate::stack::set_running(std::ptr::null()) };
        debug_assert!(!back.is_null(), "gort: a task switched back with no current task");
        // SAFETY: `back` came from `Arc::into_raw` (here or in `yield_to`), and the reference
        // it owned moves to this Arc: `CURRENT` is null now.
        let back = unsafe { Arc::from_raw(back) };
        // SAFETY: the task switched back with the address of a `Request` on its own stack,
        // which stays valid until the task is resumed again, after we are done with it.
        let request = unsafe { &mut *(arg as *mut Request<'_>) };
        let outcome = back.finish(request, stacks);
        (back, Ok(outcome))
    }

    /// The scheduler half of a request, for the task that just switched back.
    fn finish(self: &TaskRef, request: &mut Request<'_>, stacks: &mut StackPool) -> Outcome {
        match request {
            Request::Yield => {
                self.set_st(RUNNABLE);
                Outcome::Yielded
            }
            Request::Parked(_) => Outcome::Parked,
            Request::Exit => {
                self.set_st(DEAD);
                // SAFETY: the task is off its stack for good and this is its home thread, the
                // only one touching its cell.
                let stack = unsafe { (*self.cell.get()).stack.take() };
                stacks.put(stack.expect("an exiting task has a stack"));
                Outcome::Exited
            }
        }
    }
}

/// The task running on this thread, if any.
pub(crate) fn current() -> Option<TaskRef> {
    CURRENT.with(|c| {
        let p = c.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is the running task, whose reference `CURRENT` owns until the task
        // switches away; we are on that task's stack, so it is live.
        unsafe { Arc::increment_strong_count(p) };
        // SAFETY: `p` came from `Arc::as_ptr` of a live Arc, and we just added the reference
        // this new Arc owns.
        Some(unsafe { Arc::from_raw(p) })
    })
}

/// Whether the task running on this thread is marked for unwinding (shutdown).
#[inline(always)]
pub(crate) fn current_cancelled() -> bool {
    CURRENT.with(|c| {
        let p = c.get();
        // SAFETY: as in `current`: a non-null `p` is the live task running on this stack.
        !p.is_null() && unsafe { (*p).cancelled() }
    })
}

/// Whether this thread is running a task.
#[inline(always)]
pub(crate) fn in_task() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// The task side of a switch (Go's `mcall`): hand `request` to this thread's scheduler and
/// return when the task is resumed. Must be called from inside a task.
pub(crate) fn suspend(mut request: Request<'_>) {
    let p = CURRENT.with(|c| c.get());
    assert!(!p.is_null(), "gort: suspend called outside a task");
    // SAFETY: `p` is the running task (see `current`).
    let cell = unsafe { &*p }.cell.get();
    // SAFETY: only this thread touches the running task's cell, and nothing else touches it
    // while the task runs. No reference into the cell is held across the switch: the
    // scheduler side uses it while the task is suspended.
    let ctx = unsafe { &raw mut (*cell).ctx };
    // SAFETY: as above.
    let sched = unsafe { (*cell).sched };
    let arg = &mut request as *mut Request<'_> as usize;
    // SAFETY: `sched` is the scheduler context `resume` saved on this thread; the task's own
    // context is saved into `ctx` and resumed only once, by a later `resume` or `yield_to` on
    // this thread.
    unsafe { arch::switch(ctx, sched, arg) };
}

/// A direct yield (the module doc). `pick` gets this thread's worker and the running task (an
/// owned reference), and either queues it and returns the next task, `Ok(next)`, or gives it
/// back, `Err(me)`, when the yield must go through the scheduler. On `Ok` the running task
/// becomes `RUNNABLE`, `next` becomes `RUNNING` and this thread switches straight into it;
/// `yield_to` returns `true` when some switch (a later `yield_to`, or a `resume` of the
/// scheduler) resumes the caller. It returns `false` at once on `Err`, or when called outside a
/// task.
///
/// `next` must be a started `RUNNABLE` task whose home is this thread, taken from this worker's
/// queue; the queue `pick` puts the running task in must be this worker's. `pick` must not
/// switch, and must not panic (a panic there aborts: the running task would not be owned by
/// anyone).
///
/// Inlined into the caller (and `yield_now` into its caller): the switch then happens in the
/// user's own frame, so no `ret` crosses it to miss the return stack buffer (see
/// `arch/x86_64.rs`). The worker comes from `WORKER`, a plain pointer whose load depends on
/// nothing the previous yield wrote (reading it through the task record, or cloning an `Rc`
/// out of the worker's own thread-local, puts two more loads or a state check on the chain of
/// loads that leads from one switch to the next). After `pick`, both tasks are handled as raw
/// pointers: nothing between `pick` and the switch may unwind, so nothing is spilled to the
/// stack for a landing pad.
#[inline(always)]
pub(crate) fn yield_to(pick: impl FnOnce(&Worker, TaskRef) -> Result<TaskRef, TaskRef>) -> bool {
    let me = CURRENT.with(|c| c.replace(std::ptr::null()));
    if me.is_null() {
        return false;
    }
    // SAFETY: `me` came from `Arc::into_raw` and `CURRENT` no longer holds it: its reference
    // moves to this Arc, which `pick` either queues (the queue keeps the task alive while it is
    // suspended) or gives back.
    let owned = unsafe { Arc::from_raw(me) };
    // SAFETY: a task runs only inside a `Task::resume` on its home thread, which set `WORKER`
    // to the worker it borrows for its whole run, and a chain of direct yields stays inside
    // that call: the worker is alive. The reference is not used after the switch below.
    let worker = unsafe { &*WORKER.get() };
    let abort = AbortOnUnwind;
    let picked = pick(worker, owned);
    std::mem::forget(abort);
    let next = match picked {
        Ok(next) => Arc::into_raw(next),
        Err(back) => {
            CURRENT.with(|c| c.set(Arc::into_raw(back)));
            return false;
        }
    };
    // SAFETY: `pick` queued `me`, and the queue is touched only by this thread, which runs
    // nothing else before the switch: it is alive.
    unsafe { (*me).set_st(RUNNABLE) };
    // SAFETY: `me` is the running task, now RUNNABLE, its reference moved to the queue; `next`
    // is what `pick` returned: a started RUNNABLE task of this worker, from `Arc::into_raw`.
    unsafe { switch_into(me, next) };
    true
}

/// What [`park_to`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirectPark {
    /// The task parked, switched straight into another task, and has been resumed since.
    Resumed,
    /// The commit failed (the awaited event came first): the task never parked, and runs on.
    NotParked,
    /// The task is parked (`WAITING` and published) but there was no task to switch to
    /// directly: the caller must switch to the scheduler with [`Request::Parked`].
    Committed,
}

/// Go's `gopark`, on the task's own stack (the direct park, module doc): the running task
/// becomes `WAITING` in a new park, runs `commit` (which publishes it, or returns `false` if
/// the event already came), then asks `pick` for a task to switch straight into.
///
/// `pick` gets this thread's worker and returns a started `RUNNABLE` task of this worker taken
/// from its queues, or `None` (then the result is [`DirectPark::Committed`]). It must not
/// switch nor panic. Called only from inside a task.
#[inline(always)]
pub(crate) fn park_to(
    commit: &mut dyn FnMut(&TaskRef) -> bool,
    pick: impl FnOnce(&Worker) -> Option<TaskRef>,
) -> DirectPark {
    let me = CURRENT.with(|c| c.get());
    assert!(!me.is_null(), "gort: park called outside a task");
    // SAFETY: `me` is the running task, whose reference `CURRENT` owns while it runs; this
    // Arc borrows that reference without taking it (`ManuallyDrop`: no count change).
    let me_ref = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(me) });
    // A plain `Release` store (a `mov` on x86-64), not a read-modify-write: a waker can reach
    // this task only through what the commit publishes next (a queue under a lock, a `PollDesc`
    // word, an unpark token, a timer heap), always with a release that this store precedes, and
    // it takes the task with an acquire before its CAS on this word. So every waker sees
    // `WAITING` in this park; no waker sets a flag that the commit reads *without* such a
    // hand-over (the unpark token is one word that both sides CAS), so no store-load fence is
    // needed here. Two fewer RMWs per channel round trip than the `SeqCst` swap this was.
    let cur = me_ref.state.load(Relaxed);
    me_ref.state.store((((cur >> 2) + 1) << 2) | WAITING as u64, Release);
    if !commit(&me_ref) {
        // The event came first: nothing was published, so nobody else can have woken us.
        assert!(me_ref.make_runnable(), "gort: task {} woken by a commit that failed", me_ref.id);
        me_ref.set_st(RUNNING);
        return DirectPark::NotParked;
    }
    // From here on, `me`'s state belongs to its wakers (module invariants).
    // SAFETY: as in `yield_to`: we run inside the `Task::resume` that set `WORKER`.
    let worker = unsafe { &*WORKER.get() };
    let abort = AbortOnUnwind;
    let picked = pick(worker);
    std::mem::forget(abort);
    let Some(next) = picked else { return DirectPark::Committed };
    let next = Arc::into_raw(next);
    // `CURRENT`'s reference to `me` is dropped here, on `me`'s own stack: never the last one,
    // as the home worker's list of live tasks holds one until the task exits.
    // SAFETY: `me` came from `Arc::into_raw` and `CURRENT` owns this reference, which it stops
    // owning in `switch_into` (it then holds `next`).
    unsafe { Arc::decrement_strong_count(me) };
    // SAFETY: `me` is alive (the live list, above); `next` is a started RUNNABLE task of this
    // thread whose reference moves to `CURRENT`.
    unsafe { switch_into(me, next) };
    DirectPark::Resumed
}

/// The switch of a direct yield or park: `next` becomes `RUNNING` and the running task and
/// owner of `CURRENT` (its reference moves there), and this thread switches from `me`'s context
/// into `next`'s. Returns when something resumes `me`.
///
/// # Safety
/// `me` is the running task, alive, whose state the caller has already set (`RUNNABLE` for a
/// yield; for a park, its wakers own it) and whose `CURRENT` reference the caller has already
/// moved elsewhere; `next` comes from `Arc::into_raw`, and is a started `RUNNABLE` task whose
/// home is this thread, taken from this worker's queues.
#[inline(always)]
unsafe fn switch_into(me: *const Task, next: *const Task) {
    // SAFETY: per the contract, `next` is alive (its reference moves to `CURRENT` below).
    let next_task = unsafe { &*next };
    let prev = next_task.st();
    if prev != RUNNABLE {
        bad_state(next_task.id, prev);
    }
    // SAFETY: per the contract, `me` is alive.
    let me_task = unsafe { &*me };
    debug_assert!(
        next_task.started() && next_task.home() == me_task.home(),
        "gort: a direct switch into a task that has not started here"
    );
    let from = me_task.cell.get();
    let to = next_task.cell.get();
    // SAFETY: the caller's home is this thread, the only one touching its cell.
    let from_ctx = unsafe { &raw mut (*from).ctx };
    // SAFETY: `next`'s home is this thread too, and `next` is suspended.
    let to_ctx = unsafe { &raw const (*to).ctx };
    // Both were last resumed by this thread's scheduler, so their `sched` is this thread's
    // `SCHED`: when `next` switches back, it reaches the scheduler loop waiting for the chain.
    #[cfg(debug_assertions)]
    {
        // SAFETY: as for `from_ctx`.
        let from_sched = unsafe { (*from).sched };
        // SAFETY: as for `to_ctx`.
        let to_sched = unsafe { (*to).sched };
        debug_assert_eq!(from_sched, to_sched, "gort: a direct switch across scheduler contexts");
    }
    // A plain store, as in `resume`: a RUNNABLE task is owned by whoever took it from a queue.
    next_task.set_st(RUNNING);
    // SAFETY: `next`'s record lives inside `next`, which `CURRENT` keeps alive (just below)
    // until it switches away, and a switch away resets or replaces the pointer first.
    unsafe { crate::stack::set_running(next_task.overflow_record()) };
    CURRENT.with(|c| c.set(next));
    // SAFETY: `from` is the running task's context (saved here, resumed once by a later
    // `resume` or direct switch on this thread); `to` is `next`'s suspended context on its
    // live stack (started, so not fresh, and a suspended task ignores the argument).
    unsafe { arch::switch(from_ctx, to_ctx, 0) };
}

/// A direct switch found its next task in a state other than `RUNNABLE`: a queue is corrupt.
/// Aborts (the running task is queued or parked already: unwinding from here would leave it
/// owned twice).
#[cold]
#[inline(never)]
fn bad_state(id: u64, state: u8) -> ! {
    eprintln!("gort: a direct switch into task {id} in state {state}");
    std::process::abort()
}

/// Aborts the process if dropped: a guard around a direct yield's `pick`, which must not
/// unwind. Forgotten on the normal path, so it costs nothing there (no fields: nothing to store).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("gort: a direct yield's or park's pick panicked");
        std::process::abort();
    }
}

/// The first frame of every task (Go's `goexit` sits under it): run the entry, then exit.
///
/// # Safety
/// `arg` is the address of a live `Task` whose `cell.entry` is set (see [`Task::resume`]).
unsafe extern "C" fn task_entry(arg: usize) -> ! {
    // SAFETY: per the contract, `arg` is the address of a live task.
    let task = unsafe { &*(arg as *const Task) };
    // SAFETY: this is the task's first run, on its home thread: nobody else touches its cell.
    let entry = unsafe { (*task.cell.get()).entry.take() };
    if let Some(entry) = entry {
        // The entry stores its own result and catches the user's panic; this outer catch is
        // the last line that keeps an unwind from reaching the switch frame.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| entry(task))) {
            abort_with(&payload);
        }
    }
    suspend(Request::Exit);
    unreachable!("gort: an exited task was resumed");
}

fn abort_with(payload: &(dyn Any + Send)) -> ! {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(non-string payload)");
    eprintln!("gort: a panic escaped a task's entry: {msg}");
    std::process::abort()
}

/// A task as the reactor stores it: the word is the task's address, carrying one strong
/// reference (Go stores the `*g` in `rg`/`wg`).
pub(crate) fn into_waiter(task: TaskRef) -> Waiter {
    Waiter::new(Arc::into_raw(task) as usize).expect("a task address is never 0, 1 or 2")
}

/// Takes back a task from a [`Waiter`] made by [`into_waiter`].
///
/// Sound because this crate makes `Waiter`s for its poller only with [`into_waiter`], and the
/// reactor hands each one back exactly once (its CAS protocol), so each reference is taken
/// back once.
pub(crate) fn from_waiter(w: Waiter) -> TaskRef {
    // SAFETY: see above: `w` came from `Arc::into_raw` in `into_waiter`, exactly once.
    unsafe { Arc::from_raw(w.get() as *const Task) }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("state", &self.st())
            .field("home", &self.home())
            .finish()
    }
}
