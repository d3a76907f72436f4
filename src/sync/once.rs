//! Running an initialisation exactly once, with latecomers parked until it has finished.
//!
//! Mirrors: `sync/once.go` (Go 1.19) — `Once`, `Do`, `doSlow` (Go's `done` flag is the
//! atomic fast path here too; its inner `Mutex` becomes the `Running` state and a `waitq.rs`
//! queue).
//!
//! # The state
//!
//! | state     | a `call_once(f)` caller                         | left by                              |
//! |-----------|-------------------------------------------------|--------------------------------------|
//! | `New`     | becomes the runner: → `Running`, runs `f` with no lock held | —                        |
//! | `Running` | queues and parks until `Done`                   | `f` returns *or panics*: → `Done`, every waiter woken |
//! | `Done`    | returns at once (one atomic load, `done`)       | never                                |
//!
//! Invariants: `f` of at most one call ever runs; `done` is set (Release) only after that `f`
//! has finished, so a caller that sees it (Acquire) sees all `f` did; no caller returns
//! before that.
//!
//! # A panicking `f`: Go's rule, not std's
//!
//! Go's `Do` counts a panicking `f` as done: the panic goes on up the caller's stack, and
//! later calls return at once without calling their `f`. `std::sync::Once` instead poisons
//! itself, and later calls panic. gort follows Go: the runner's panic propagates to it (in a
//! task, [`JoinHandle::join`](crate::JoinHandle::join) reports it), the waiters are released
//! normally, and the `Once` is done.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering::*};

use super::waitq::{self, WaitQueue, lock};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    New,
    Running,
    Done,
}

struct State {
    stage: Stage,
    queue: WaitQueue<()>,
}

/// Go's `sync.Once`: [`call_once`](Once::call_once) runs its closure the first time only;
/// callers that arrive while it runs park (tasks) or sleep (threads) until it has finished.
///
/// A panicking closure still counts as done, as in Go (see the module docs): there is no
/// poisoning. Calling `call_once` on the same `Once` from inside its own closure deadlocks,
/// as in Go.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
///
/// static INIT: gort::sync::Once = gort::sync::Once::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// gort::run(|| {
///     let hs: Vec<_> = (0..10)
///         .map(|_| gort::go(|| INIT.call_once(|| { RUNS.fetch_add(1, SeqCst); })))
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
/// });
/// assert_eq!(RUNS.load(SeqCst), 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    done: AtomicBool,
    state: StdMutex<State>,
}

/// Marks the `Once` done when the runner's `f` returns or unwinds.
struct Finish<'a>(&'a Once);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let wakers = {
            let mut s = lock(&self.0.state);
            s.stage = Stage::Done;
            self.0.done.store(true, Release);
            s.queue.grant_all()
        };
        waitq::wake_all(wakers);
    }
}

impl Once {
    /// A `Once` that has not run yet.
    pub const fn new() -> Self {
        Once {
            done: AtomicBool::new(false),
            state: StdMutex::new(State { stage: Stage::New, queue: WaitQueue::new() }),
        }
    }

    /// Go's `Do`: calls `f` if no call on this `Once` has yet; otherwise waits until that first
    /// call has finished (returned or panicked), and returns without calling `f`.
    pub fn call_once(&self, f: impl FnOnce()) {
        if self.done.load(Acquire) {
            return;
        }
        self.call_slow(f);
    }

    /// Whether a call has finished (returned or panicked).
    pub fn is_completed(&self) -> bool {
        self.done.load(Acquire)
    }

    #[cold]
    fn call_slow(&self, f: impl FnOnce()) {
        let stage = {
            let mut s = lock(&self.state);
            let stage = s.stage;
            if stage == Stage::New {
                s.stage = Stage::Running;
            }
            stage
        };
        match stage {
            Stage::New => {
                let _finish = Finish(self);
                f();
            }
            Stage::Running => waitq::acquire(
                &self.state,
                |s| &mut s.queue,
                |s| (s.stage != Stage::Done).then_some(()),
                |_, _| Vec::new(),
            ),
            Stage::Done => {}
        }
    }
}

impl Default for Once {
    fn default() -> Self {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("Once").field("stage", &s.stage).field("queue", &s.queue).finish()
    }
}
