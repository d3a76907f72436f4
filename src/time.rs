//! Timers: sleeping tasks, and functions to start later. The nearest timer bounds how long an
//! idle worker sleeps (in `netpoll` or on its condvar).
//!
//! Mirrors: `runtime/time.go` (Go 1.19: per-P heaps, `addtimer`, `deltimer`, `modtimer`,
//! `checkTimers`, `runOneTimer`), and `time/sleep.go` (`Sleep`, `AfterFunc`, `Timer.Stop`,
//! `Timer.Reset`).
//!
//! Each worker owns a heap of timers for its tasks. A timer never runs a task: it makes one
//! runnable (`Sleep`) or starts one (`AfterFunc`), and the worker's scheduler runs it.
//!
//! # A `Timer`'s states (Go's `timerWaiting` / `timerDeleted` / `timerModified*`, made lazy)
//!
//! | state    | entered by              | in the heap                                  | fires? |
//! |----------|-------------------------|----------------------------------------------|--------|
//! | armed    | `after_func`, `reset`   | one entry with the timer's current `seq`     | yes, once |
//! | stopped  | `stop`, or it fired     | entries with an old `seq` (zombies), if any  | no     |
//!
//! `stop` and `reset` bump the timer's `seq` instead of searching the heap; an entry whose `seq`
//! is old is dropped when it reaches the top, and the heap is rebuilt when zombies pass a quarter
//! of it (Go's `clearDeletedTimers` rule).
//!
//! Invariants:
//! - `sleep` arms its timer in the park's commit, after the task is off its stack (Go's
//!   `resetForSleep`): the timer cannot fire before the task is parked.
//! - Timer actions run with the heap lock released (Go #35532).
//! - `next` mirrors the heap's earliest entry, so an idle check costs one atomic load.

#![forbid(unsafe_code)]

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::chan::{self, Receiver, Sender};
use crate::sched::{self, Shared, park, worker};
use crate::task::{self, TaskRef};

/// What a timer does when it fires.
enum Action {
    /// Make a task runnable (Go's `goroutineReady`), if it is still in park number `u64`.
    Ready(TaskRef, u64),
    /// Start `AfterFunc`'s function in a new task, if `seq` is still the timer's.
    Func(Arc<TimerShared>, u64),
    /// A runtime-internal step that only makes tasks runnable, such as a socket deadline
    /// (Go's `netpollDeadline`); it runs on the worker, with the heap unlocked.
    Call(Box<dyn FnOnce(&Shared) + Send>),
}

struct Entry {
    when: Instant,
    /// Insertion order: equal deadlines fire first-in, first-out.
    order: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.when, self.order) == (o.when, o.order)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (self.when, self.order).cmp(&(o.when, o.order))
    }
}

impl Entry {
    fn is_zombie(&self) -> bool {
        matches!(&self.action, Action::Func(t, seq) if t.seq.load(SeqCst) != *seq)
    }
}

#[derive(Default)]
struct Heap {
    heap: BinaryHeap<Reverse<Entry>>,
    order: u64,
    /// Entries known to be stale (Go's `deletedTimers`).
    zombies: usize,
}

/// One worker's timers (Go's `p.timers` + `p.timersLock` + `p.timer0When`).
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    /// Nanoseconds from `epoch` to the earliest entry; `u64::MAX` when empty.
    next: AtomicU64,
    epoch: Instant,
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").field("next", &self.next_deadline()).finish()
    }
}

impl Timers {
    pub(crate) fn new(epoch: Instant) -> Timers {
        Timers { heap: Mutex::new(Heap::default()), next: AtomicU64::new(u64::MAX), epoch }
    }

    fn lock(&self) -> MutexGuard<'_, Heap> {
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, h: &Heap) {
        let next = h.heap.peek().map_or(u64::MAX, |Reverse(e)| {
            e.when.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128 - 1) as u64
        });
        self.next.store(next, SeqCst);
    }

    /// Go's `addtimer`. Returns whether the new entry is now the earliest (the owner may need
    /// waking, if it sleeps past it).
    fn add(&self, when: Instant, action: Action) -> bool {
        let mut h = self.lock();
        h.order += 1;
        let order = h.order;
        h.heap.push(Reverse(Entry { when, order, action }));
        let earliest = h.heap.peek().is_some_and(|Reverse(e)| e.order == order);
        self.publish(&h);
        earliest
    }

    /// The earliest deadline, if any (may be a zombie's: an early wake-up is harmless).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.next.load(SeqCst) {
            u64::MAX => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }

    /// Go's `checkTimers`: fires every entry due now, with the lock released. With no timer
    /// it costs one atomic load (not even a clock read).
    #[inline]
    pub(crate) fn run_expired(&self, shared: &Shared) {
        if self.next.load(SeqCst) != u64::MAX {
            self.run_expired_slow(shared);
        }
    }

    #[inline(never)]
    fn run_expired_slow(&self, shared: &Shared) {
        let Some(next) = self.next_deadline() else { return };
        let now = Instant::now();
        if next > now {
            return;
        }
        let mut due = Vec::new();
        {
            let mut h = self.lock();
            while h.heap.peek().is_some_and(|Reverse(e)| e.when <= now) {
                let Reverse(e) = h.heap.pop().expect("peeked");
                if e.is_zombie() {
                    h.zombies = h.zombies.saturating_sub(1);
                } else {
                    due.push(e.action);
                }
            }
            self.publish(&h);
        }
        for action in due {
            match action {
                Action::Ready(t, seq) => sched::ready_if(t, seq, false),
                Action::Func(t, seq) => t.fire(seq),
                Action::Call(f) => f(shared),
            }
        }
    }

    /// Arms a timer that makes `task` runnable at `when`, if it is still in park `seq`.
    pub(crate) fn add_ready(&self, when: Instant, task: TaskRef, seq: u64) {
        self.add(when, Action::Ready(task, seq));
    }

    /// A timer was stopped or reset: one entry became a zombie. Rebuild past a quarter.
    fn note_zombie(&self) {
        let mut h = self.lock();
        h.zombies += 1;
        if h.zombies * 4 > h.heap.len() {
            let entries = std::mem::take(&mut h.heap).into_vec();
            h.heap = entries.into_iter().filter(|Reverse(e)| !e.is_zombie()).collect();
            h.zombies = 0;
            self.publish(&h);
        }
    }

    /// Drops every entry (shutdown).
    pub(crate) fn clear(&self) {
        let mut h = self.lock();
        h.heap.clear();
        h.zombies = 0;
        self.publish(&h);
    }
}

/// Arms a runtime-internal timer: at `when`, `f` runs on a worker of `shared` (this thread's,
/// if it is one of them; else worker 0, woken if the new timer is its earliest). `f` must only
/// make tasks runnable (Go's timer functions: `goroutineReady`, `netpollDeadline`).
pub(crate) fn call_at(shared: &Shared, when: Instant, f: impl FnOnce(&Shared) + Send + 'static) {
    let i = worker::current().filter(|w| std::ptr::eq(&*w.shared, shared)).map_or(0, |w| w.index);
    if shared.workers[i].timers.add(when, Action::Call(Box::new(f))) {
        shared.wake_worker(i);
    }
}

/// Go's `time.Sleep`: pauses the calling task for at least `d`; other tasks run meanwhile.
/// On a thread outside a runtime, sleeps the thread.
pub fn sleep(d: Duration) {
    match Instant::now().checked_add(d) {
        Some(deadline) => sleep_until(deadline),
        None => sleep_until(Instant::now() + Duration::from_secs(u32::MAX as u64)),
    }
}

/// Pauses the calling task until `deadline` (at least).
pub fn sleep_until(deadline: Instant) {
    let Some(w) = worker::current().filter(|_| task::in_task()) else {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        return;
    };
    // The loop makes "never early" hold even if something else readies the task.
    while Instant::now() < deadline {
        let timers = &w.shared.workers[w.index].timers;
        park(|t| {
            timers.add_ready(deadline, t.clone(), t.park_seq());
            true
        });
    }
}

/// The shared part of a [`Timer`].
struct TimerShared {
    /// Bumped by every stop and reset; an entry fires only with the current value.
    seq: AtomicU64,
    /// The worker whose heap holds the entries.
    worker: usize,
    shared: Weak<Shared>,
    f: Arc<dyn Fn() + Send + Sync>,
}

impl TimerShared {
    fn fire(self: Arc<Self>, seq: u64) {
        // Claim this firing: a concurrent stop or reset may win instead.
        if self.seq.compare_exchange(seq, seq + 1, SeqCst, SeqCst).is_err() {
            return;
        }
        if let Some(shared) = self.shared.upgrade() {
            let f = self.f.clone();
            sched::spawn(move || f(), None, None, Some(&shared));
        }
    }

    fn timers<'a>(&self, shared: &'a Shared) -> &'a Timers {
        &shared.workers[self.worker].timers
    }
}

/// Go's `*time.Timer` made by `AfterFunc`: runs a function in a new task once its time comes,
/// unless stopped first.
#[derive(Clone)]
pub struct Timer {
    inner: Arc<TimerShared>,
    /// The `seq` of the armed entry.
    armed: Arc<AtomicU64>,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").field("seq", &self.inner.seq.load(SeqCst)).finish()
    }
}

/// Go's `time.AfterFunc`: after `d`, starts `f` in a new task. Returns a [`Timer`] that can
/// stop or reset it.
///
/// # Panics
/// Outside a runtime.
pub fn after_func(d: Duration, f: impl Fn() + Send + Sync + 'static) -> Timer {
    let w = worker::current().expect("gort::time::after_func called outside a runtime");
    let inner = Arc::new(TimerShared {
        seq: AtomicU64::new(0),
        worker: w.index,
        shared: Arc::downgrade(&w.shared),
        f: Arc::new(f),
    });
    let timer = Timer { inner, armed: Arc::new(AtomicU64::new(0)) };
    timer.arm(Instant::now() + d, &w.shared);
    timer
}

impl Timer {
    fn arm(&self, when: Instant, shared: &Shared) {
        let seq = self.inner.seq.load(SeqCst);
        self.armed.store(seq, SeqCst);
        let earliest = self.inner.timers(shared).add(when, Action::Func(self.inner.clone(), seq));
        if earliest {
            shared.wake_worker(self.inner.worker);
        }
    }

    /// Go's `Timer.Stop`: prevents the timer from firing. Returns `true` if this call stopped
    /// it, `false` if it had already fired or been stopped.
    pub fn stop(&self) -> bool {
        let seq = self.armed.load(SeqCst);
        let stopped = self.inner.seq.compare_exchange(seq, seq + 1, SeqCst, SeqCst).is_ok();
        if stopped && let Some(shared) = self.inner.shared.upgrade() {
            self.inner.timers(&shared).note_zombie();
        }
        stopped
    }

    /// Go's `Timer.Reset`: makes the timer fire after `d` from now. Returns `true` if it was
    /// still armed (it is re-armed either way).
    pub fn reset(&self, d: Duration) -> bool {
        let was_armed = self.stop();
        if let Some(shared) = self.inner.shared.upgrade() {
            self.arm(Instant::now() + d, &shared);
        }
        was_armed
    }
}

/// Go's `time.After`: a channel that receives the time once, after `d`. Works in `select!`-style
/// code and from plain threads (outside a runtime a helper thread waits instead of a timer).
pub fn after(d: Duration) -> Receiver<Instant> {
    let (s, r) = chan::bounded(1);
    let when = Instant::now() + d;
    match worker::current() {
        Some(w) => call_at(&w.shared, when, move |_| {
            let _ = s.try_send(Instant::now());
        }),
        None => {
            let spawned = std::thread::Builder::new().name("gort-after".into()).spawn(move || {
                std::thread::sleep(when.saturating_duration_since(Instant::now()));
                let _ = s.try_send(Instant::now());
            });
            if let Err(e) = spawned {
                panic!("gort::time::after outside a runtime: cannot start its thread: {e}");
            }
        }
    }
    r
}

/// Go's `time.Tick`: a channel that receives the time every `d`, for as long as the receiver
/// lives. A slow receiver loses ticks, as in Go.
///
/// # Panics
/// If `d` is zero (Go: "non-positive interval for NewTicker"), or outside a runtime.
pub fn tick(d: Duration) -> Receiver<Instant> {
    Ticker::new(d).into_receiver()
}

/// Go's `time.Ticker`: delivers the time on [`Ticker::receiver`] every period; missed periods
/// are skipped, and a full channel drops the tick (the buffer holds one).
pub struct Ticker {
    inner: Arc<TickerShared>,
    rx: Receiver<Instant>,
    /// Dropping the ticker stops it, unless its receiver was taken over (`time::tick`).
    stop_on_drop: bool,
}

struct TickerShared {
    /// Bumped by `stop` and `reset`: a tick armed under an older value does nothing.
    seq: AtomicU64,
    period: Mutex<Duration>,
    tx: Sender<Instant>,
    shared: Weak<Shared>,
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").field("period", &*lock_period(&self.inner)).finish()
    }
}

fn lock_period(t: &TickerShared) -> MutexGuard<'_, Duration> {
    t.period.lock().unwrap_or_else(|p| p.into_inner())
}

impl TickerShared {
    fn arm(self: &Arc<Self>, when: Instant, seq: u64) {
        let Some(shared) = self.shared.upgrade() else { return };
        let me = self.clone();
        call_at(&shared, when, move |_| me.fire(when, seq));
    }

    fn fire(self: &Arc<Self>, when: Instant, seq: u64) {
        if self.seq.load(SeqCst) != seq {
            return;
        }
        let now = Instant::now();
        if let Err(chan::TrySendError::Disconnected(_)) = self.tx.try_send(now) {
            return; // nobody can receive ticks any more: stop re-arming
        }
        // Go's runOneTimer: the next tick after now, skipping the periods that were missed.
        let period = *lock_period(self);
        let mut next = when + period;
        if next <= now {
            let missed = (now - next).as_nanos() / period.as_nanos() + 1;
            next += period * missed.min(u32::MAX as u128) as u32;
        }
        self.arm(next, seq);
    }
}

impl Ticker {
    /// Go's `time.NewTicker`.
    ///
    /// # Panics
    /// If `d` is zero, or outside a runtime.
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "gort::time::Ticker: non-positive interval");
        let w = worker::current().expect("gort::time::Ticker used outside a runtime");
        let (tx, rx) = chan::bounded(1);
        let inner = Arc::new(TickerShared {
            seq: AtomicU64::new(0),
            period: Mutex::new(d),
            tx,
            shared: Arc::downgrade(&w.shared),
        });
        inner.arm(Instant::now() + d, 0);
        Ticker { inner, rx, stop_on_drop: true }
    }

    /// The channel the ticks arrive on.
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// The channel, keeping the ticker running for as long as it lives (Go's `time.Tick`).
    pub fn into_receiver(mut self) -> Receiver<Instant> {
        self.stop_on_drop = false;
        self.rx.clone()
    }

    /// Go's `Ticker.Stop`: no more ticks (the channel is not closed, as in Go).
    pub fn stop(&self) {
        self.inner.seq.fetch_add(1, SeqCst);
    }

    /// Go's `Ticker.Reset`: a new period, counted from now (it also restarts a stopped ticker).
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "gort::time::Ticker: non-positive interval");
        let seq = self.inner.seq.fetch_add(1, SeqCst) + 1;
        *lock_period(&self.inner) = d;
        self.inner.arm(Instant::now() + d, seq);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}
