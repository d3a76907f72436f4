//! The scheduler: workers, run queues, and who wakes whom.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) — `schedt` (here [`Shared`]), `p` (here [`Remote`], the
//! part of a worker other threads touch, and `worker::Worker`, the part only its thread
//! touches), `newproc`/`runqput`, `ready`/`goready`, `wakep`, `injectglist`.
//!
//! ```text
//!                       global queue (unstarted tasks from outside, overflow)
//!                                   │
//!  worker i ── runnext ─ local (started, FIFO) ─ runq (unstarted, stealable) ─ inbox (wakes from
//!     │                                                                           other threads)
//!     └── timers (heap) ── netpoll(0) ── steal half of another worker's runq ── sleep
//!         (one sleeping worker blocks in netpoll until its next timer; the others on a condvar)
//! ```
//!
//! Invariants:
//! - A started task is only ever queued on its home worker (architecture decision 1): in its
//!   `runnext`/`local` when woken on that thread, in its `inbox` when woken from another thread.
//!   Only `runq` and the global queue are shared, and they hold unstarted tasks only.
//! - A worker about to sleep publishes its state (`SLEEPING`/`POLLING`), then looks for work
//!   once more; a thread that hands it work publishes the work, then looks at the state. Both
//!   pairs are `SeqCst`, so a hand-off never meets a sleeper that missed it.
//! - At most one worker blocks in `netpoll` (`polling`); new work for it goes through
//!   `netpoll_break`, new work for the others through their condvar, and neither costs a
//!   syscall when the worker is awake.
//! - At most one extra worker is woken to look for new work while none is spinning
//!   (Go's `wakep` with `nmspinning`): a burst of spawns costs one wake-up, not one each.

#![forbid(unsafe_code)]

mod blocking;
mod idle;
mod io_wait;
mod park;
pub(crate) mod worker;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use reactor::Poller;

use crate::spawn::{JoinHandle, new_task};
use crate::task::TaskRef;
use crate::time::Timers;

pub(crate) use blocking::BlockingPool;
pub use blocking::{blocking, try_blocking};
pub(crate) use io_wait::{wait_io, wake_io};
pub use park::yield_now;
pub use park::{Unparker, park_current, unparker};
pub(crate) use park::{Waker, backoff, coop_tick, park, reset_budget, wait, wait_until};
pub(crate) use worker::run_worker;

use idle::Parker;

/// A worker's sleep state, as other threads see it.
pub(crate) const AWAKE: u8 = 0;
/// Sleeping on its condvar.
pub(crate) const SLEEPING: u8 = 1;
/// Blocked in `netpoll`: wake it with `netpoll_break`.
pub(crate) const POLLING: u8 = 2;

/// Every 61st scheduling round takes from the global queue first (Go's `schedtick%61`).
pub(crate) const GLOBAL_FAIRNESS: u64 = 61;
/// How many unstarted tasks a worker keeps before spilling half to the global queue (Go: 256).
pub(crate) const RUNQ_CAP: usize = 256;

/// A snapshot of the scheduler's counters (for the trace and tests).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub(crate) workers: Vec<WorkerStats>,
    pub(crate) idle: usize,
    pub(crate) spinning: usize,
    pub(crate) polling: bool,
    pub(crate) global: usize,
    pub(crate) io_waiters: usize,
}

/// One worker's part of [`Stats`].
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerStats {
    pub(crate) runq: usize,
    pub(crate) inbox: usize,
    pub(crate) sleep: u8,
}

/// What the runtime was built with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) stack_size: usize,
    pub(crate) max_blocking: usize,
    /// Route every wake through the target's inbox, even on its own thread (a test mode).
    pub(crate) stress_inbox: bool,
}

/// The part of a worker other threads touch (Go's `p`, minus what only its M reads).
#[derive(Debug)]
pub(crate) struct Remote {
    /// Started tasks woken by other threads; drained by the owner.
    inbox: Mutex<Vec<TaskRef>>,
    inbox_len: AtomicUsize,
    /// Unstarted tasks; stealable.
    runq: Mutex<VecDeque<TaskRef>>,
    runq_len: AtomicUsize,
    /// `AWAKE` / `SLEEPING` / `POLLING`.
    sleep: AtomicU8,
    /// Set by `wakep` before it wakes this worker: the waker's spinning token is handed over,
    /// so the worker wakes up counted as spinning (Go's `startm(spinning=true)`).
    spin_handoff: AtomicBool,
    parker: Parker,
    /// Timers that wake this worker's tasks.
    pub(crate) timers: Timers,
}

/// The runtime's shared state (Go's `schedt` plus the netpoller).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) workers: Box<[Remote]>,
    global: Mutex<VecDeque<TaskRef>>,
    global_len: AtomicUsize,
    pub(crate) poller: Poller,
    /// A worker is blocked in `netpoll` (Go: `sched.lastpoll == 0`).
    polling: AtomicBool,
    /// Workers looking for work (Go's `nmspinning`).
    spinning: AtomicUsize,
    /// Workers asleep or polling.
    idle: AtomicUsize,
    /// Tasks parked in the netpoller (Go's `netpollWaiters`): polls are skipped when 0.
    pub(crate) io_waiters: AtomicUsize,
    pub(crate) shutdown: AtomicBool,
    pub(crate) blocking: BlockingPool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: Config) -> io::Result<Arc<Shared>> {
        let epoch = Instant::now();
        let workers = (0..config.workers)
            .map(|_| Remote {
                inbox: Mutex::new(Vec::new()),
                inbox_len: AtomicUsize::new(0),
                runq: Mutex::new(VecDeque::with_capacity(RUNQ_CAP)),
                runq_len: AtomicUsize::new(0),
                sleep: AtomicU8::new(AWAKE),
                spin_handoff: AtomicBool::new(false),
                parker: Parker::default(),
                timers: Timers::new(epoch),
            })
            .collect();
        Ok(Arc::new(Shared {
            blocking: BlockingPool::new(config.max_blocking),
            config,
            workers,
            global: Mutex::new(VecDeque::new()),
            global_len: AtomicUsize::new(0),
            poller: Poller::new()?,
            polling: AtomicBool::new(false),
            spinning: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            io_waiters: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        }))
    }

    /// Queues an unstarted task on the global queue (from outside the runtime, or overflow).
    pub(crate) fn push_global(&self, tasks: impl IntoIterator<Item = TaskRef>) {
        let mut g = lock(&self.global);
        g.extend(tasks);
        self.global_len.store(g.len(), SeqCst);
    }

    /// Takes up to `max` tasks from the global queue.
    pub(crate) fn pop_global(&self, max: usize, out: &mut VecDeque<TaskRef>) -> Option<TaskRef> {
        if self.global_len.load(SeqCst) == 0 {
            return None;
        }
        let mut g = lock(&self.global);
        let first = g.pop_front()?;
        let n = max.saturating_sub(1).min(g.len());
        out.extend(g.drain(..n));
        self.global_len.store(g.len(), SeqCst);
        Some(first)
    }

    /// The counters, read without locks (each is exact, the set is not a single instant).
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            workers: self
                .workers
                .iter()
                .map(|w| WorkerStats {
                    runq: w.runq_len.load(SeqCst),
                    inbox: w.inbox_len.load(SeqCst),
                    sleep: w.sleep.load(SeqCst),
                })
                .collect(),
            idle: self.idle.load(SeqCst),
            spinning: self.spinning.load(SeqCst),
            polling: self.polling.load(SeqCst),
            global: self.global_len.load(SeqCst),
            io_waiters: self.io_waiters.load(SeqCst),
        }
    }

    /// Moves everything in the global queue to `out` (shutdown).
    pub(crate) fn drain_global(&self, out: &mut Vec<TaskRef>) {
        let mut g = lock(&self.global);
        out.extend(g.drain(..));
        self.global_len.store(0, SeqCst);
    }

    /// Whether any queue a sleeping worker could serve holds work.
    pub(crate) fn has_shared_work(&self) -> bool {
        self.global_len.load(SeqCst) > 0 || self.workers.iter().any(|w| w.runq_len.load(SeqCst) > 0)
    }

    /// Whether a worker besides the caller (a worker) is running tasks: neither asleep,
    /// polling, nor looking for work (Go's `runtime_canSpin` test
    /// `gomaxprocs > npidle + nmspinning + 1`). A hint: the counters move as it reads them.
    pub(crate) fn others_running(&self) -> bool {
        let resting = self.idle.load(Relaxed) + self.spinning.load(Relaxed);
        self.workers.len() > resting + 1
    }

    /// Go's `wakep`: if nobody is looking for work, wake one idle worker to look.
    pub(crate) fn wakep(&self) {
        std::sync::atomic::fence(SeqCst);
        if self.idle.load(SeqCst) == 0 || self.spinning.load(SeqCst) != 0 {
            return;
        }
        if self.spinning.compare_exchange(0, 1, SeqCst, SeqCst).is_err() {
            return;
        }
        // Prefer a condvar sleeper; the poller is woken only if it is the only idle worker.
        let target = self
            .workers
            .iter()
            .position(|w| w.sleep.load(SeqCst) == SLEEPING)
            .or_else(|| self.workers.iter().position(|w| w.sleep.load(SeqCst) == POLLING));
        let Some(i) = target else {
            self.spinning.fetch_sub(1, SeqCst);
            return;
        };
        let w = &self.workers[i];
        w.spin_handoff.store(true, SeqCst);
        // If it was awake already, take the token back, unless it took it first (then it is
        // spinning with it).
        if !self.wake_worker(i) && w.spin_handoff.swap(false, SeqCst) {
            self.spinning.fetch_sub(1, SeqCst);
        }
    }

    /// Wakes worker `i` if it sleeps. Returns whether it did.
    pub(crate) fn wake_worker(&self, i: usize) -> bool {
        let w = &self.workers[i];
        match w.sleep.swap(AWAKE, SeqCst) {
            SLEEPING => {
                w.parker.unpark();
                true
            }
            POLLING => {
                if let Err(e) = self.poller.netpoll_break() {
                    log::error!("gort: netpoll_break failed: {e}");
                }
                true
            }
            _ => false,
        }
    }

    /// Hands a started task woken on another thread to its home worker (Go's `goready` from a
    /// foreign M, where Go would use any P).
    pub(crate) fn push_inbox(&self, home: usize, task: TaskRef) {
        let w = &self.workers[home];
        {
            let mut inbox = lock(&w.inbox);
            inbox.push(task);
            w.inbox_len.store(inbox.len(), SeqCst);
        }
        self.wake_worker(home);
    }

    /// Wakes every worker (shutdown).
    pub(crate) fn wake_all(&self) {
        for i in 0..self.workers.len() {
            self.wake_worker(i);
        }
        let _ = self.poller.netpoll_break();
    }
}

impl Remote {
    #[inline]
    fn take_inbox(&self, out: &mut VecDeque<TaskRef>) {
        if self.inbox_len.load(SeqCst) != 0 {
            self.take_inbox_slow(out);
        }
    }

    #[inline(never)]
    fn take_inbox_slow(&self, out: &mut VecDeque<TaskRef>) {
        let mut inbox = lock(&self.inbox);
        out.extend(inbox.drain(..));
        self.inbox_len.store(0, SeqCst);
    }

    /// Go's `runqput` for a new task; returns the overflow to spill to the global queue.
    fn push_runq(&self, task: TaskRef) -> Option<Vec<TaskRef>> {
        let mut q = lock(&self.runq);
        q.push_back(task);
        let half = q.len() / 2;
        let spill =
            if q.len() > RUNQ_CAP { Some(q.drain(..half).collect::<Vec<_>>()) } else { None };
        self.runq_len.store(q.len(), SeqCst);
        spill
    }

    #[inline]
    fn pop_runq(&self) -> Option<TaskRef> {
        if self.runq_len.load(SeqCst) == 0 {
            return None;
        }
        self.pop_runq_slow()
    }

    #[inline(never)]
    fn pop_runq_slow(&self) -> Option<TaskRef> {
        let mut q = lock(&self.runq);
        let t = q.pop_front();
        self.runq_len.store(q.len(), SeqCst);
        t
    }

    /// Go's `runqsteal`: half of the victim's unstarted tasks, oldest first.
    fn steal_into(&self, out: &mut VecDeque<TaskRef>) -> Option<TaskRef> {
        if self.runq_len.load(SeqCst) == 0 {
            return None;
        }
        let mut q = lock(&self.runq);
        let n = q.len().div_ceil(2);
        let first = q.pop_front()?;
        out.extend(q.drain(..n - 1));
        self.runq_len.store(q.len(), SeqCst);
        Some(first)
    }
}

/// Go's `newproc`: starts `f` as a task of the runtime this thread belongs to, or of `shared`.
pub(crate) fn spawn<F, T>(
    f: F,
    name: Option<Box<str>>,
    stack_size: Option<usize>,
    shared: Option<&Arc<Shared>>,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let worker = worker::current();
    let shared = match (shared, &worker) {
        (Some(s), _) => s.clone(),
        (None, Some(w)) => w.shared.clone(),
        (None, None) => panic!(
            "gort::go called outside a runtime: start one with gort::run(...) or \
             Runtime::block_on, or spawn from another thread with Runtime::handle().go(...)"
        ),
    };
    let stack = stack_size.unwrap_or(shared.config.stack_size);
    let (task, handle) = new_task(f, name, stack);
    match worker.filter(|w| Arc::ptr_eq(&w.shared, &shared)) {
        Some(w) => w.push_new(task),
        None => {
            shared.push_global([task]);
            shared.wakep();
            if shared.shutdown.load(SeqCst) {
                // No worker may be left to run it: drop what the global queue holds, so every
                // join sees `Cancelled` instead of waiting forever.
                let mut stranded = Vec::new();
                shared.drain_global(&mut stranded);
                stranded.into_iter().for_each(|t| t.discard());
            }
        }
    }
    handle
}

/// Go's `goready`: makes a parked task of `shared` runnable on its home worker, to run next
/// there (`runnext`, so a hand-off stays on one worker). A no-op if the task was not parked
/// (someone else woke it first, or it was cancelled).
pub(crate) fn ready(shared: &Shared, task: TaskRef) {
    if task.make_runnable() {
        queue_ready(shared, task, true);
    }
}

/// [`ready`] at the back of the queue: for batches (timers, netpoll, Go's `injectglist`), which
/// then run in the order they became ready.
pub(crate) fn ready_tail(shared: &Shared, task: TaskRef) {
    if task.make_runnable() {
        queue_ready(shared, task, false);
    }
}

/// [`ready`] only if the task is still in park number `seq`: for wakers that may outlive the
/// wait they were made for (a timed wait, a cancelled one). `next` as in [`ready`]. The task's
/// own runtime is used: a waker carries no reference to it.
pub(crate) fn ready_if(task: TaskRef, seq: u64, next: bool) {
    if !task.make_runnable_if(seq) {
        return;
    }
    let home = task.home().expect("a parked task has started");
    let rt = task.runtime().expect("a parked task has started");
    if let Some(w) = worker::current()
        && w.index == home
        && std::ptr::eq(&*w.shared, &**rt)
        && !w.shared.config.stress_inbox
    {
        return w.push_ready(task, next);
    }
    // Another thread: the inbox of the task's home worker (one refcount for the runtime).
    let rt = rt.clone();
    rt.push_inbox(home, task);
}

/// Queues a task that was just made runnable on its home worker.
fn queue_ready(shared: &Shared, task: TaskRef, next: bool) {
    let home = task.home().expect("a parked task has started");
    match worker::current() {
        Some(w)
            if w.index == home
                && std::ptr::eq(&*w.shared, shared)
                && !shared.config.stress_inbox =>
        {
            w.push_ready(task, next)
        }
        _ => shared.push_inbox(home, task),
    }
}
