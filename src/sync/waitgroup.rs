//! Waiting for a group of tasks to finish: a counter, and waiters woken when it reaches 0.
//!
//! Mirrors: `sync/waitgroup.go` (Go 1.19) — `WaitGroup`, `Add`, `Done`, `Wait` (Go packs the
//! counter and the number of waiters into one atomic word beside a semaphore; here both sit
//! under a short internal lock beside a `waitq.rs` queue).
//!
//! # The state
//!
//! | counter | waiters | `add(+n)`       | `done()` / `add(-n)`                     | `wait()`       |
//! |---------|---------|-----------------|------------------------------------------|----------------|
//! | 0       | none    | → n             | panics: "sync: negative WaitGroup counter" | returns at once |
//! | n > 0   | any     | → counter + n   | → counter − n; on reaching 0 every waiter is woken, the queue emptied | queues and parks |
//!
//! Invariants: the counter is never negative (an `add` that would make it so panics and
//! leaves it unchanged); waiters are queued only while the counter is positive, and all of
//! them are released, together, by the change that brings it to 0. A `wait` returns once the
//! counter has been 0 since it began, even if a later `add` raised it again (as Go's, which
//! calls such a reuse misuse).

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};

use super::waitq::{self, WaitQueue, lock};

struct State {
    count: isize,
    queue: WaitQueue<()>,
}

/// Go's `sync.WaitGroup`: [`add`](WaitGroup::add) the number of tasks to wait for, each calls
/// [`done`](WaitGroup::done) when it finishes, and [`wait`](WaitGroup::wait) blocks until all
/// have. A handle: clones share one counter, so give each task a clone (Go passes a pointer).
///
/// `wait` parks a task (its worker runs others) and sleeps a plain OS thread, so a thread
/// outside the runtime can wait for tasks.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
///
/// gort::run(|| {
///     let wg = gort::sync::WaitGroup::new();
///     let n = Arc::new(AtomicUsize::new(0));
///     for _ in 0..10 {
///         wg.add(1);
///         let (wg, n) = (wg.clone(), n.clone());
///         gort::go(move || {
///             n.fetch_add(1, SeqCst);
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(n.load(SeqCst), 10);
/// });
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    state: Arc<StdMutex<State>>,
}

impl WaitGroup {
    /// A group with a counter of 0.
    pub fn new() -> Self {
        WaitGroup { state: Arc::new(StdMutex::new(State { count: 0, queue: WaitQueue::new() })) }
    }

    /// Go's `Add`: adds `delta` (which may be negative) to the counter. When it reaches 0,
    /// every task and thread blocked in [`wait`](WaitGroup::wait) is released.
    ///
    /// # Panics
    /// With "sync: negative WaitGroup counter" if the counter would go below 0; it is then left
    /// unchanged.
    pub fn add(&self, delta: isize) {
        let wakers = {
            let mut s = lock(&self.state);
            let count = s.count.checked_add(delta).filter(|&c| c >= 0);
            let Some(count) = count else {
                drop(s);
                panic!("sync: negative WaitGroup counter");
            };
            s.count = count;
            if count == 0 { s.queue.grant_all() } else { Vec::new() }
        };
        waitq::wake_all(wakers);
    }

    /// Go's `Done`: `add(-1)`.
    ///
    /// # Panics
    /// With "sync: negative WaitGroup counter" if the counter is already 0.
    pub fn done(&self) {
        self.add(-1);
    }

    /// Go's `Wait`: returns once the counter is 0 (at once if it is already). A task parks
    /// meanwhile, a plain OS thread sleeps.
    pub fn wait(&self) {
        if lock(&self.state).count == 0 {
            return;
        }
        waitq::acquire(
            &self.state,
            |s| &mut s.queue,
            |s| (s.count != 0).then_some(()),
            |_, _| Vec::new(),
        );
    }

    /// The current value of the counter (for diagnostics: it may change at once).
    pub fn count(&self) -> usize {
        lock(&self.state).count as usize
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("WaitGroup").field("count", &s.count).field("queue", &s.queue).finish()
    }
}
