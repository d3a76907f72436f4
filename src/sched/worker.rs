//! One worker: an OS thread that runs tasks, polls the network, runs timers, steals and sleeps.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) — `schedule`, `findRunnable`, `execute`, `runqget`,
//! `globrunqget`, `stealWork`, `stopm`, `checkTimers`; `mstart` for [`run_worker`].
//!
//! # `find_runnable`, in order (Go's `findRunnable`)
//!
//! | step | where                                   | why                                                     |
//! |------|-----------------------------------------|---------------------------------------------------------|
//! | 1    | expired timers → their tasks made runnable | timers only make tasks runnable; they never run them |
//! | 2    | global queue, every 61st round          | so a busy worker cannot starve the global queue         |
//! | 3    | inbox → local                           | started tasks woken by other threads                    |
//! | 4    | `runnext` (at most 3 in a row)          | the task just woken here runs next (channel hand-off)   |
//! | 5    | `local` / `runq`, alternating           | started and new tasks share the worker fairly           |
//! | 6    | global queue, a batch                   |                                                         |
//! | 7    | `netpoll(0)` if tasks wait on I/O, nobody is polling and there are other workers | cheap readiness before stealing (one worker goes straight to 9) |
//! | 8    | steal half of another worker's `runq`   | only unstarted tasks move (architecture decision 1)     |
//! | 9a   | spin up to 20 µs on the inbox and shared queues, if another worker is busy | a hand-off then needs no wake-up (Go's spinning M) |
//! | 9    | sleep: in `netpoll(until next timer)` if nobody polls, else on the condvar | |
//!
//! The direct yield and the direct park, which bypass this loop when it would pick the same
//! task anyway, are in `worker/direct.rs`.
//!
//! Invariants: only this thread touches `Worker::q` and `Worker::stacks` (they are `RefCell`s,
//! never borrowed across a task switch: a running task may call back into `push_new`,
//! `push_ready`, `pick_direct` or `pick_after_park` on this worker; `stacks` is the one exception, borrowed
//! by `execute` across `resume`, which no task code touches).

#![forbid(unsafe_code)]

mod direct;

pub(crate) use direct::{yield_direct, yield_direct_or_idle};

use std::cell::{OnceCell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{Ordering::*, fence};
use std::time::{Duration, Instant};

use reactor::Waiter;
use slab::Slab;

use super::{AWAKE, GLOBAL_FAIRNESS, POLLING, SLEEPING, Shared};
use crate::stack::{self, StackPool};
use crate::task::{self, Outcome, Task, TaskRef};

/// At most this many `runnext` picks in a row before the queues get a turn (tokio caps its LIFO
/// slot at 3 for the same reason: a ping-pong pair must not starve the rest of the worker).
const RUNNEXT_STREAK: u32 = 3;
/// Global-queue batch size limit (Go's `globrunqget` max).
const GLOBAL_BATCH: usize = 128;
/// How long an idle worker watches its inbox and the shared queues before it sleeps, while
/// another worker is busy ([`Worker::spin_for_work`]): a few times the cost of a wake-up
/// (futex or `netpoll_break` plus a context switch, 5–10 µs here).
const SPIN_FOR_WORK: Duration = Duration::from_micros(20);

/// A worker's own state: only its thread touches it.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    q: RefCell<Queues>,
    stacks: RefCell<StackPool>,
}

#[derive(Debug, Default)]
struct Queues {
    /// The task to run next (Go's `p.runnext`).
    runnext: Option<TaskRef>,
    /// How many `runnext` picks in a row.
    streak: u32,
    /// How many direct yields since `find_local` last ran.
    direct: u32,
    /// Started tasks that are runnable, FIFO.
    local: VecDeque<TaskRef>,
    /// Scheduling rounds (Go's `schedtick`).
    tick: u64,
    /// Every started task whose home is this worker, until it exits (for shutdown).
    live: Slab<TaskRef>,
    /// Whether this worker counts in `Shared::spinning`.
    spinning: bool,
    /// xorshift state for the steal order.
    rng: u64,
    /// Reused by `netpoll`.
    woken: Vec<Waiter>,
}

thread_local! {
    static CURRENT: OnceCell<Rc<Worker>> = const { OnceCell::new() };
}

/// The worker this thread is, if it is one.
#[inline]
pub(crate) fn current() -> Option<Rc<Worker>> {
    CURRENT.with(|c| c.get().cloned())
}

/// A worker thread's main (Go's `mstart` → `schedule`).
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize) {
    stack::install_overflow_handler();
    let _altstack = match stack::AltStack::install() {
        Ok(a) => Some(a),
        Err(e) => {
            log::error!("gort: worker {index}: no signal stack ({e}); overflows will not be named");
            None
        }
    };
    let worker = Rc::new(Worker {
        index,
        stacks: RefCell::new(StackPool::new(shared.config.stack_size)),
        q: RefCell::new(Queues {
            rng: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1),
            ..Default::default()
        }),
        shared,
    });
    CURRENT.with(|c| c.set(worker.clone())).expect("one worker per thread");
    worker.schedule();
    worker.shutdown();
}

impl Worker {
    /// A task spawned on this worker: into `runnext` if free (no wake-up needed: this worker
    /// will run it), else the previous `runnext` moves to the stealable `runq` and an idle
    /// worker may come for it.
    pub(crate) fn push_new(&self, task: TaskRef) {
        let old = self.q.borrow_mut().runnext.replace(task);
        if let Some(old) = old {
            self.push_runq(old);
        }
    }

    fn push_runq(&self, task: TaskRef) {
        let remote = &self.shared.workers[self.index];
        if task.started() {
            self.q.borrow_mut().local.push_back(task);
            return;
        }
        if let Some(spill) = remote.push_runq(task) {
            self.shared.push_global(spill);
        }
        self.shared.wakep();
    }

    /// A parked task of this worker, woken on this thread: next (Go's `ready` →
    /// `runqput(next)`), or at the back of the local queue.
    pub(crate) fn push_ready(&self, task: TaskRef, next: bool) {
        let mut q = self.q.borrow_mut();
        if !next {
            q.local.push_back(task);
            return;
        }
        if let Some(old) = q.runnext.replace(task) {
            if old.started() {
                q.local.push_back(old);
            } else {
                drop(q);
                self.push_runq(old);
            }
        }
    }

    /// Go's `schedule` loop: find a task, run it, repeat, until shutdown.
    fn schedule(&self) {
        while let Some(task) = self.find_runnable() {
            self.execute(task);
        }
    }

    /// Go's `execute`: run `task` until it (or, after direct yields and parks, another task of
    /// this worker) switches back to the scheduler, then deal with that task.
    fn execute(&self, task: TaskRef) {
        if !task.started() {
            let key = self.q.borrow_mut().live.insert(task.clone());
            task.set_slot(key);
        }
        super::reset_budget();
        // The task queued next most likely runs after this one: have its stack's top in the
        // cache by then (with many tasks, a switch otherwise waits for memory).
        if let Some(next) = self.q.borrow().local.front() {
            next.prefetch_stack(self.index);
        }
        // `back` is the task that switched back to us: `task`, or, after direct yields and
        // parks, whichever task of this worker ran last (see "The direct yield").
        let (back, outcome) = {
            let mut stacks = self.stacks.borrow_mut();
            Task::resume(task, self, &mut stacks)
        };
        match outcome {
            Ok(Outcome::Yielded) => self.q.borrow_mut().local.push_back(back),
            Ok(Outcome::Parked) => {}
            Ok(Outcome::Exited) => {
                self.q.borrow_mut().live.try_remove(back.slot());
            }
            Err(e) => {
                log::error!("gort: cannot start task {}: {e}; it is dropped", back.id());
                self.q.borrow_mut().live.try_remove(back.slot());
                back.discard();
            }
        }
    }

    /// Go's `findRunnable` (the table at the top of this file). `None` means shut down.
    fn find_runnable(&self) -> Option<TaskRef> {
        loop {
            if self.shared.shutdown.load(Acquire) {
                self.stop_spinning();
                return None;
            }
            if let Some(t) = self.find_local() {
                self.stop_spinning();
                return Some(t);
            }
            // With one worker the blocking poll in `sleep` comes next anyway, and returns at
            // once if something is ready: a non-blocking poll first would cost a syscall each
            // time the queues run dry.
            if self.shared.workers.len() > 1 && self.poll_network(Some(Duration::ZERO)) {
                continue;
            }
            if let Some(t) = self.steal() {
                self.stop_spinning();
                return Some(t);
            }
            if self.spin_for_work() {
                continue;
            }
            self.sleep();
        }
    }

    /// Steps 1–6: everything that needs no syscall.
    fn find_local(&self) -> Option<TaskRef> {
        let remote = &self.shared.workers[self.index];
        self.run_timers();
        let mut q = self.q.borrow_mut();
        q.tick += 1;
        q.direct = 0;
        if q.tick.is_multiple_of(GLOBAL_FAIRNESS) {
            let mut rest = VecDeque::new();
            if let Some(t) = self.shared.pop_global(1, &mut rest) {
                return Some(t);
            }
        }
        remote.take_inbox(&mut q.local);
        if q.streak < RUNNEXT_STREAK
            && let Some(t) = q.runnext.take()
        {
            q.streak += 1;
            return Some(t);
        }
        q.streak = 0;
        if q.tick.is_multiple_of(2)
            && let Some(t) = q.local.pop_front()
        {
            return Some(t);
        }
        if let Some(t) = remote.pop_runq() {
            return Some(t);
        }
        if let Some(t) = q.local.pop_front() {
            return Some(t);
        }
        if let Some(t) = q.runnext.take() {
            return Some(t);
        }
        drop(q);
        let n = (self.shared.global_len.load(Relaxed) / self.shared.workers.len() + 1)
            .min(GLOBAL_BATCH);
        let mut batch = VecDeque::new();
        let first = self.shared.pop_global(n, &mut batch)?;
        for t in batch {
            self.push_runq(t);
        }
        Some(first)
    }

    /// Step 7, and step 9 when `delay` is not zero: poll the network, make the woken tasks
    /// runnable. Returns whether it found any.
    fn poll_network(&self, delay: Option<Duration>) -> bool {
        let shared = &self.shared;
        if delay == Some(Duration::ZERO)
            && (shared.io_waiters.load(SeqCst) == 0 || shared.polling.load(SeqCst))
        {
            return false;
        }
        let mut woken = std::mem::take(&mut self.q.borrow_mut().woken);
        if let Err(e) = shared.poller.netpoll_into(delay, &mut woken) {
            log::error!("gort: netpoll failed: {e}");
        }
        let found = !woken.is_empty();
        for w in woken.drain(..) {
            shared.io_waiters.fetch_sub(1, SeqCst);
            let t = task::from_waiter(w);
            // Most of these run here next, one after the other (see `execute`).
            t.prefetch_stack(self.index);
            super::ready_tail(shared, t);
        }
        self.q.borrow_mut().woken = woken;
        found
    }

    /// Step 8 (Go's `stealWork`): take half of another worker's unstarted tasks.
    fn steal(&self) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        if n == 1 {
            return None;
        }
        {
            let mut q = self.q.borrow_mut();
            if !q.spinning {
                // Go bounds spinning Ms to half the busy Ps; here: at most half the workers.
                if 2 * self.shared.spinning.load(SeqCst) >= n {
                    return None;
                }
                q.spinning = true;
                self.shared.spinning.fetch_add(1, SeqCst);
            }
        }
        let start = {
            let mut q = self.q.borrow_mut();
            q.rng ^= q.rng << 13;
            q.rng ^= q.rng >> 7;
            q.rng ^= q.rng << 17;
            q.rng as usize % n
        };
        let mine = &self.shared.workers[self.index];
        for k in 0..n {
            let victim = (start + k) % n;
            if victim == self.index {
                continue;
            }
            let mut batch = VecDeque::new();
            if let Some(t) = self.shared.workers[victim].steal_into(&mut batch) {
                if !batch.is_empty() {
                    let mut q = mine.runq.lock().unwrap_or_else(|p| p.into_inner());
                    q.extend(batch);
                    mine.runq_len.store(q.len(), SeqCst);
                }
                return Some(t);
            }
        }
        None
    }

    /// Leaves the spinning state; if this was the last spinner, another may be needed (Go's
    /// `resetspinning` → `wakep`).
    fn stop_spinning(&self) {
        let was = std::mem::replace(&mut self.q.borrow_mut().spinning, false);
        if was && self.shared.spinning.fetch_sub(1, SeqCst) == 1 {
            self.shared.wakep();
        }
    }

    /// Step 9 (Go's `stopm`, or the blocking `netpoll` of `findRunnable`).
    fn sleep(&self) {
        let shared = &self.shared;
        let remote = &shared.workers[self.index];
        let was_spinning = std::mem::replace(&mut self.q.borrow_mut().spinning, false);
        if was_spinning {
            shared.spinning.fetch_sub(1, SeqCst);
        }
        let deadline = remote.timers.next_deadline();
        let poller = shared.polling.compare_exchange(false, true, SeqCst, SeqCst).is_ok();
        remote.sleep.store(if poller { POLLING } else { SLEEPING }, SeqCst);
        shared.idle.fetch_add(1, SeqCst);
        // Publish "asleep", then look once more: pairs with the hand-off side (module docs).
        fence(SeqCst);
        let work = remote.inbox_len.load(SeqCst) > 0
            || shared.has_shared_work()
            || shared.shutdown.load(SeqCst)
            || deadline.is_some_and(|d| d <= Instant::now());
        if !work {
            if poller {
                let delay = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                self.poll_network(delay);
            } else {
                remote.parker.park_until(deadline);
            }
        }
        shared.idle.fetch_sub(1, SeqCst);
        if poller {
            shared.polling.store(false, SeqCst);
        }
        remote.sleep.store(AWAKE, SeqCst);
        // Woken by `wakep`: we hold its spinning token now.
        if remote.spin_handoff.swap(false, SeqCst) {
            self.q.borrow_mut().spinning = true;
        }
    }

    /// Step 9a: before sleeping, watch the queues other threads push to for a few
    /// microseconds, while some other worker is busy (it may hand us work: a channel wake, a
    /// spawn). Waking a sleeping worker costs its waker a syscall and it a context switch, both
    /// far longer than this spin; a worker that is only *about* to sleep is `AWAKE`, so a push
    /// to its inbox needs no wake-up at all. Go's spinning Ms play this part. Not with one
    /// worker, nor when every other worker is idle: then nobody is about to hand work over,
    /// and the network and the timers are served by sleeping in `netpoll`.
    fn spin_for_work(&self) -> bool {
        let shared = &self.shared;
        let remote = &shared.workers[self.index];
        let n = shared.workers.len();
        if n == 1 || shared.idle.load(Relaxed) + 1 >= n || shared.shutdown.load(Relaxed) {
            return false;
        }
        let until = Instant::now() + SPIN_FOR_WORK;
        loop {
            for _ in 0..64 {
                if remote.inbox_len.load(Relaxed) != 0 || shared.has_shared_work() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until || remote.timers.next_deadline().is_some_and(|d| d <= until)
            {
                return false;
            }
        }
    }

    /// Runs this worker's expired timers (Go's `checkTimers`).
    fn run_timers(&self) {
        let remote = &self.shared.workers[self.index];
        remote.timers.run_expired(&self.shared);
    }

    /// Shutdown: unstarted tasks are dropped (their joins see `Cancelled`); started ones are
    /// marked cancelled and resumed until they have all unwound out of their parks.
    fn shutdown(&self) {
        // Every stack that comes back from now on stays mapped until the runtime unmaps them
        // all at once (`stack/pool.rs`, "Why shutdown is different").
        self.stacks.borrow_mut().drain();
        let shared = &self.shared;
        let started = Instant::now();
        let mut warned = false;
        loop {
            // Unstarted work is dropped, each round: unwinding tasks may still spawn.
            self.discard_unstarted();
            let live: Vec<TaskRef> = self.q.borrow().live.iter().map(|(_, t)| t.clone()).collect();
            if live.is_empty() {
                break;
            }
            for t in &live {
                t.set_cancel();
                if t.make_runnable() {
                    self.q.borrow_mut().local.push_back(t.clone());
                }
            }
            drop(live);
            let remote = &shared.workers[self.index];
            remote.take_inbox(&mut self.q.borrow_mut().local);
            // Run everything runnable now, then look again (one pass per round, not one task:
            // a million parked tasks must unwind in linear time).
            let batch = std::mem::take(&mut self.q.borrow_mut().local);
            let progressed = !batch.is_empty();
            for t in batch {
                self.execute(t);
            }
            match progressed {
                true => {}
                false => {
                    if !warned && started.elapsed() > Duration::from_secs(5) {
                        warned = true;
                        let ids: Vec<u64> =
                            self.q.borrow().live.iter().map(|(_, t)| t.id()).collect();
                        eprintln!(
                            "gort: shutdown: worker {} still waits for tasks {ids:?}",
                            self.index
                        );
                    }
                    remote.sleep.store(SLEEPING, SeqCst);
                    remote.parker.park_until(Some(Instant::now() + Duration::from_millis(1)));
                    remote.sleep.store(AWAKE, SeqCst);
                }
            }
        }
        self.shared.workers[self.index].timers.clear();
    }

    /// Drops the tasks that have not started, here and in the global queue: their joins see
    /// `Cancelled`.
    fn discard_unstarted(&self) {
        let shared = &self.shared;
        let remote = &shared.workers[self.index];
        let mut dropped: Vec<TaskRef> = Vec::new();
        {
            let mut rq = remote.runq.lock().unwrap_or_else(|p| p.into_inner());
            dropped.extend(rq.drain(..));
            remote.runq_len.store(0, SeqCst);
        }
        shared.drain_global(&mut dropped);
        {
            let mut q = self.q.borrow_mut();
            let mut keep = VecDeque::new();
            for t in q.runnext.take().into_iter().chain(q.local.drain(..)) {
                if t.started() { keep.push_back(t) } else { dropped.push(t) }
            }
            q.local = keep;
        }
        for t in dropped {
            t.discard();
        }
    }
}
