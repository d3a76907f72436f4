//! Model checks of the `PollDesc` park protocol: every interleaving, not just the likely ones.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p reactor --release --test loom_poll_desc`
//!
//! Each model has one waiter that runs Go's `poll_runtime_pollWait` loop
//! ([`PollDesc::wait`]) with a park step that commits and then sleeps until woken, and one or
//! two other threads that deliver readiness, close or expire. A lost wake-up leaves the waiter
//! asleep forever, which loom reports as a deadlock; a double wake-up trips the counters.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::thread;

use reactor::{Mode, PollDesc, PollError, Token, Waiter};

const W: usize = 0x1000;

/// What the waiter thread shares with the wakers.
struct Parked {
    pd: PollDesc,
    /// Set by whoever got the waiter back; the waiter sleeps until it is set.
    woken: AtomicBool,
    /// How many actors got the waiter back (must be 0 or 1 per commit).
    handed_back: AtomicUsize,
    /// Whether the commit succeeded.
    committed: AtomicBool,
    waiter_thread: std::sync::Mutex<Option<thread::Thread>>,
}

impl Parked {
    fn new() -> Arc<Parked> {
        Arc::new(Parked {
            pd: PollDesc::new(3, Token::new(0, 0)),
            woken: AtomicBool::new(false),
            handed_back: AtomicUsize::new(0),
            committed: AtomicBool::new(false),
            waiter_thread: std::sync::Mutex::new(Some(thread::current())),
        })
    }

    /// The waiter: Go's pollWait with a thread-like park.
    fn wait(&self, mode: Mode) -> Result<(), PollError> {
        self.pd.wait(mode, |pd, mode| {
            if pd.commit(mode, Waiter::new(W).unwrap()) {
                self.committed.store(true, SeqCst);
                while !self.woken.load(SeqCst) {
                    thread::park();
                }
            }
        })
    }

    /// A waker: if an unblock handed the waiter back, wake it.
    fn wake(&self, got: Option<Waiter>) {
        if let Some(w) = got {
            assert_eq!(w.get(), W);
            self.handed_back.fetch_add(1, SeqCst);
            self.woken.store(true, SeqCst);
            self.waiter_thread.lock().unwrap().as_ref().unwrap().unpark();
        }
    }

    fn check_one_wake_per_commit(&self) {
        let expected = usize::from(self.committed.load(SeqCst));
        assert_eq!(self.handed_back.load(SeqCst), expected, "wake-ups per committed wait");
    }

    /// The closer: `evict`, then wake what it hands back (nobody waits to write here).
    fn close(&self) {
        let (r, w) = self.pd.evict();
        assert!(w.is_none());
        self.wake(r);
    }
}

/// Runs `f` on a new loom thread with a handle to `p`.
fn on_thread(p: &Arc<Parked>, f: impl FnOnce(&Parked) + Send + 'static) -> thread::JoinHandle<()> {
    let p = p.clone();
    thread::spawn(move || f(&p))
}

#[test]
fn readiness_against_prepare_and_commit() {
    loom::model(|| {
        let p = Parked::new();
        let poller = on_thread(&p, |p| p.wake(p.pd.unblock(Mode::Read, true)));
        // Readiness always arrives, so the wait must end with Ok, whatever the order.
        assert_eq!(p.wait(Mode::Read), Ok(()));
        poller.join().unwrap();
        p.check_one_wake_per_commit();
    });
}

#[test]
fn close_against_commit() {
    loom::model(|| {
        let p = Parked::new();
        let closer = on_thread(&p, Parked::close);
        assert_eq!(p.wait(Mode::Read), Err(PollError::Closing));
        closer.join().unwrap();
        p.check_one_wake_per_commit();
        assert_eq!(p.pd.prepare(Mode::Read), Err(PollError::Closing));
    });
}

#[test]
fn two_unblockers_hand_the_waiter_to_exactly_one() {
    loom::model(|| {
        let p = Parked::new();
        let ready = on_thread(&p, |p| p.wake(p.pd.unblock(Mode::Read, true)));
        let deadline = on_thread(&p, |p| p.wake(p.pd.expire(Mode::Read)));
        // Either the readiness or the deadline ends the wait; never neither, never both wakes.
        let res = p.wait(Mode::Read);
        assert!(matches!(res, Ok(()) | Err(PollError::Timeout)), "{res:?}");
        ready.join().unwrap();
        deadline.join().unwrap();
        p.check_one_wake_per_commit();
    });
}

#[test]
fn write_readiness_never_wakes_a_reader() {
    loom::model(|| {
        let p = Parked::new();
        let poller = on_thread(&p, |p| {
            p.wake(p.pd.unblock(Mode::Write, true));
            // Then close, so the reader's wait ends and the model terminates.
            p.close();
        });
        assert_eq!(p.wait(Mode::Read), Err(PollError::Closing));
        poller.join().unwrap();
        p.check_one_wake_per_commit();
    });
}

#[test]
fn close_and_deadline_hand_the_waiter_to_exactly_one() {
    loom::model(|| {
        let p = Parked::new();
        let closer = on_thread(&p, Parked::close);
        let deadline = on_thread(&p, |p| p.wake(p.pd.expire(Mode::Read)));
        // No readiness at all: only the re-check after the announce, or an unblocker that
        // finds the announced or parked waiter, can end this wait.
        let res = p.wait(Mode::Read);
        assert!(matches!(res, Err(PollError::Closing) | Err(PollError::Timeout)), "{res:?}");
        closer.join().unwrap();
        deadline.join().unwrap();
        p.check_one_wake_per_commit();
    });
}
