//! The task record and the glue that switches into and out of it.
//!
//! Mirrors: `runtime/runtime2.go` (Go 1.19) — `g` and its status (`_Grunnable`, `_Grunning`,
//! `_Gwaiting`, `_Gdead`); `runtime/proc.go` — `newproc1`, `execute`, `gopark`'s `mcall(park_m)`,
//! `goexit0`; `runtime/asm_amd64.s` — `mcall`, `gogo`.
//!
//! This is one of the fenced files where `unsafe` may appear: it owns the only code that switches
//! stacks. Everything above it (`sched/`, `time.rs`, `net/`) is safe Rust and talks to a task
//! through `Task::resume` (scheduler side) and `suspend` (task side).
//!
//! # States
//!
//! | state      | Go          | who moves it there                               | next                          |
//! |------------|-------------|--------------------------------------------------|-------------------------------|
//! | `RUNNABLE` | `_Grunnable`| spawn; `make_runnable` (a wake); a failed commit | `RUNNING` (its worker runs it) |
//! | `RUNNING`  | `_Grunning` | `Task::resume`                                 | `RUNNABLE` (yield), `WAITING` (park), `DEAD` (exit) |
//! | `WAITING`  | `_Gwaiting` | `Task::resume` before it runs the park's commit | `RUNNABLE` via one successful `make_runnable` |
//! | `DEAD`     | `_Gdead`    | `Task::resume` when the task exits             | —                             |
//!
//! Invariants:
//! - A task runs on one OS thread only: the worker that ran it first (its *home*, fixed at the
//!   first `resume`). Its context, stack and entry are touched only by that thread
//!   (the task itself while `RUNNING`, its worker's scheduler loop otherwise), which is what makes
//!   the `UnsafeCell` below sound, and what makes thread-locals safe inside tasks (architecture
//!   decision 1: LLVM may cache a thread-local's address across a switch).
//! - `WAITING → RUNNABLE` is a CAS: of all the parties that may wake a parked task (a poller, a
//!   timer, a channel, shutdown), exactly one puts it back in a run queue.
//! - The state becomes `WAITING` *before* the park's commit publishes the task anywhere, so a
//!   waker that finds it can always make it runnable (Go: `park_m` sets `_Gwaiting`, then calls
//!   `unlockf`).
//! - Nothing unwinds through a switch: the entry catches every panic (decision 6).

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::*};

use reactor::Waiter;

use crate::arch::{self, Context};
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
    /// `gopark(unlockf)`: I am off my stack now; run `commit` to publish me. If it returns
    /// `false`, the event I wait for already happened: run me again.
    Park(&'a mut dyn FnMut(&TaskRef) -> bool),
    /// `goexit`: I am done; my stack may be reused.
    Exit,
}

/// What [`Task::resume`] reports once the task has switched back.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The task yielded: it is `RUNNABLE` and belongs in its worker's queue.
    Yielded,
    /// The task parked and its commit published it: someone else will wake it.
    Parked,
    /// The commit failed: the task is `RUNNABLE` again and should run next.
    CommitFailed,
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
    /// `RUNNABLE` / `RUNNING` / `WAITING` / `DEAD`.
    state: AtomicU8,
    /// Worker index + 1; 0 until the first run.
    home: AtomicUsize,
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
    /// What the overflow handler reports while this task runs (set at the first run).
    running: Option<RunningTask>,
}

// SAFETY: the fields in `cell` are touched by one thread at a time: the spawner until the task
// is queued, then only its home worker's thread (invariants above). Everything else is atomic
// or immutable. `Entry` is `Send`, so moving it to the worker is fine.
unsafe impl Sync for Task {}
// SAFETY: as above; the raw `sched` pointer is only dereferenced on the home thread.
unsafe impl Send for Task {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The task running on this thread, if any (Go's `getg()` when `g != g0`).
    static CURRENT: Cell<*const Task> = const { Cell::new(std::ptr::null()) };
    /// This thread's scheduler context: where a task switches back to (Go's `g0`).
    static SCHED: UnsafeCell<Context> = const { UnsafeCell::new(Context::empty()) };
}

impl Task {
    /// Go's `newproc1`: a runnable task that has not started yet.
    pub(crate) fn new(entry: Entry, name: Option<Box<str>>, stack_size: usize) -> TaskRef {
        Arc::new(Task {
            id: NEXT_ID.fetch_add(1, Relaxed),
            name,
            stack_size,
            state: AtomicU8::new(RUNNABLE),
            home: AtomicUsize::new(0),
            cancel: AtomicBool::new(false),
            slot: AtomicUsize::new(usize::MAX),
            token: AtomicU8::new(TOKEN_EMPTY),
            join: JoinSlot::default(),
            cell: UnsafeCell::new(Cell_ {
                ctx: Context::default(),
                sched: std::ptr::null_mut(),
                stack: None,
                entry: Some(entry),
                running: None,
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

    /// Whether the task has run at least once (it may then not be stolen).
    pub(crate) fn started(&self) -> bool {
        self.home.load(Acquire) != 0
    }

    /// `WAITING → RUNNABLE`, exactly once per park. `false` if the task was not parked
    /// (already woken by someone else, cancelled, or dead): the caller must not queue it.
    pub(crate) fn make_runnable(&self) -> bool {
        self.state.compare_exchange(WAITING, RUNNABLE, SeqCst, SeqCst).is_ok()
    }

    /// Marks the task for unwinding at its next return from a park (shutdown).
    pub(crate) fn set_cancel(&self) {
        self.cancel.store(true, Release);
    }

    /// Whether the task is marked for unwinding.
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
        self.state.store(DEAD, Release);
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

    /// Go's `execute` + the return half of `mcall`: run the task on this thread until it
    /// switches back, then carry out what it asked.
    ///
    /// `worker` is this thread's worker index; the first resume makes it the task's home.
    /// Must be called only on the home thread, only for a `RUNNABLE` task taken from a queue.
    pub(crate) fn resume(
        self: &TaskRef,
        worker: usize,
        stacks: &mut StackPool,
    ) -> io::Result<Outcome> {
        let prev = self.state.load(Acquire);
        assert_eq!(prev, RUNNABLE, "gort: resumed task {} in state {prev}", self.id);
        // A plain store: a RUNNABLE task is owned by whoever took it from a queue (us).
        self.state.store(RUNNING, Release);
        let ptr = self.cell.get();
        let sched = SCHED.with(|s| s.get());
        // SAFETY: this thread is the only one touching `cell` (invariants): either the task
        // has not started (it came from a queue, nobody else holds its cell), or its home is
        // this thread.
        let cell = unsafe { &mut *ptr };
        cell.sched = sched;
        if cell.stack.is_none() {
            // First run: this worker becomes home; give the task a stack and a fresh frame.
            self.home.store(worker + 1, Release);
            let stack = match stacks.get(self.stack_size) {
                Ok(s) => s,
                Err(e) => {
                    self.state.store(RUNNABLE, Release);
                    return Err(e);
                }
            };
            // SAFETY: `top()` is the 16-byte aligned top of a writable stack that stays
            // mapped while `cell.stack` holds it, i.e. until the task exits.
            cell.ctx = unsafe { arch::init(stack.top(), task_entry) };
            cell.running = Some(RunningTask::new(&stack, self.id, self.name()));
            cell.stack = Some(stack);
        } else {
            debug_assert_eq!(self.home(), Some(worker), "gort: a task migrated");
        }
        crate::stack::set_running(cell.running);
        CURRENT.with(|c| c.set(Arc::as_ptr(self)));
        // SAFETY: `sched` is this thread's scheduler context (saved by this switch) and
        // `cell.ctx` is fresh (from `init`) or suspended (by `suspend`); it is resumed once.
        // The argument is this task's address, which `task_entry` reads on the first run;
        // the Arc held by our caller keeps it alive while the task runs.
        let arg = unsafe { arch::switch(sched, &cell.ctx, Arc::as_ptr(self) as usize) };
        CURRENT.with(|c| c.set(std::ptr::null()));
        crate::stack::set_running(None);
        // SAFETY: the task switched back with the address of a `Request` on its own stack,
        // which stays valid until the task is resumed again, after we are done with it.
        let request = unsafe { &mut *(arg as *mut Request<'_>) };
        Ok(match request {
            Request::Yield => {
                self.state.store(RUNNABLE, Release);
                Outcome::Yielded
            }
            Request::Park(commit) => {
                // A SeqCst read-modify-write, not a plain store: a commit that re-checks a flag
                // (an unpark token, say) pairs with a waker that sets the flag and then CASes
                // this word; one of the two must see the other.
                self.state.swap(WAITING, SeqCst);
                if commit(self) {
                    Outcome::Parked
                } else if self.make_runnable() {
                    Outcome::CommitFailed
                } else {
                    // The commit failed yet someone else already made the task runnable:
                    // impossible with a correct commit, which publishes nothing on failure.
                    panic!("gort: task {} woken by a commit that failed", self.id)
                }
            }
            Request::Exit => {
                self.state.store(DEAD, Release);
                let stack = cell.stack.take().expect("an exiting task has a stack");
                stacks.put(stack);
                Outcome::Exited
            }
        })
    }
}

/// The task running on this thread, if any.
pub(crate) fn current() -> Option<TaskRef> {
    CURRENT.with(|c| {
        let p = c.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` was set by `resume` from a live `TaskRef` whose Arc the resuming worker
        // holds until the task switches back; we are on that task's stack, so it is live.
        unsafe { Arc::increment_strong_count(p) };
        // SAFETY: `p` came from `Arc::as_ptr` of a live Arc, and we just added the reference
        // this new Arc owns.
        Some(unsafe { Arc::from_raw(p) })
    })
}

/// Whether the task running on this thread is marked for unwinding (shutdown).
pub(crate) fn current_cancelled() -> bool {
    CURRENT.with(|c| {
        let p = c.get();
        // SAFETY: as in `current`: a non-null `p` is the live task running on this stack.
        !p.is_null() && unsafe { (*p).cancelled() }
    })
}

/// Whether this thread is running a task.
pub(crate) fn in_task() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// The task side of a switch (Go's `mcall`): hand `request` to this thread's scheduler and
/// return when the task is resumed. Must be called from inside a task.
pub(crate) fn suspend(mut request: Request<'_>) {
    let p = CURRENT.with(|c| c.get());
    assert!(!p.is_null(), "gort: suspend called outside a task");
    // SAFETY: `p` is the running task (see `current`); only this thread touches its cell, and
    // the scheduler side does not touch it while the task runs.
    let task = unsafe { &*p };
    // SAFETY: only this thread touches the running task's cell (see above).
    let cell = unsafe { &mut *task.cell.get() };
    let arg = &mut request as *mut Request<'_> as usize;
    // SAFETY: `cell.sched` is the scheduler context `resume` saved on this thread; the task's
    // own context is saved into `cell.ctx` and resumed only by a later `resume` on this thread.
    unsafe { arch::switch(&mut cell.ctx, cell.sched, arg) };
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
            .field("state", &self.state.load(Relaxed))
            .field("home", &self.home())
            .finish()
    }
}
