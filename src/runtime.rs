//! Starting and stopping a runtime: workers, the main task, shutdown.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) `schedinit`, `main` (the main goroutine), `newm`; and
//! what happens when `main` returns (Go exits the process; we unwind the tasks left, so their
//! destructors run and their fds close).
//!
//! | phase      | what happens                                                               |
//! |------------|----------------------------------------------------------------------------|
//! | `build`    | the poller, `workers` threads (each with its signal stack), all idle       |
//! | `block_on` | the closure becomes the main task; the calling thread waits for its result |
//! | drop       | shutdown: unstarted tasks are dropped, parked ones unwound, workers joined |
//! | after drop | the stacks the workers kept: unmapped if this was the last runtime, else hollowed for the others (`stack/pool.rs`) |
//!
//! A task that never parks cannot be unwound (there is no preemption); shutdown waits for it
//! and says so on stderr after 5 s.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use crate::sched::{self, Config, Shared};
use crate::spawn::JoinHandle;
use crate::stack;

/// Options for a [`Runtime`] (Go: `GOMAXPROCS` and friends).
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    max_blocking: usize,
    stress_inbox: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: None,
            stack_size: stack::DEFAULT_STACK_SIZE,
            max_blocking: 512,
            stress_inbox: std::env::var_os("GORT_STRESS_INBOX").is_some_and(|v| v != "0"),
        }
    }
}

impl Builder {
    /// Default options: one worker per CPU this process may use, 256 KiB stacks.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of workers (Go's `GOMAXPROCS`); default: `available_parallelism`, which
    /// follows the CPU affinity mask and cgroup quota.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// The default stack size of tasks, in bytes (rounded up to pages; at least 16 KiB).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// The most threads the blocking pool may run at once (default 512).
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking = n;
        self
    }

    /// Test mode: every wake-up goes through the woken task's inbox, even on its own worker
    /// (also switched on by the environment variable `GORT_STRESS_INBOX=1`).
    #[doc(hidden)]
    pub fn stress_inbox(mut self, on: bool) -> Builder {
        self.stress_inbox = on;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// `InvalidInput` for zero workers; the OS error if the poller or a thread cannot start.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(0) => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "gort: zero workers"));
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let config = Config {
            workers,
            stack_size: self.stack_size.max(stack::MIN_STACK_SIZE),
            max_blocking: self.max_blocking,
            stress_inbox: self.stress_inbox,
        };
        let shared = Shared::new(config)?;
        // Counted from here: the error path below builds a `Runtime` and drops it.
        RUNNING.fetch_add(1, SeqCst);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let s = shared.clone();
            let t = thread::Builder::new()
                .name(format!("gort-worker-{i}"))
                .spawn(move || sched::run_worker(s, i));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let rt = Runtime { shared, threads };
                    drop(rt); // stops the ones started
                    return Err(io::Error::new(
                        e.kind(),
                        format!("gort: cannot start worker thread {i}: {e}"),
                    ));
                }
            }
        }
        crate::trace::start(Arc::downgrade(&shared));
        Ok(Runtime { shared, threads })
    }
}

/// How many runtimes of this process have been built and not dropped yet.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A running set of workers and their netpoller (Go's runtime, minus the process-wide part).
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("workers", &self.shared.workers.len()).finish()
    }
}

impl Runtime {
    /// [`Builder`] with default options.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A runtime with default options.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// Runs `f` as this runtime's main task and returns its value once it returns. Other tasks
    /// keep running afterwards, until the runtime is dropped.
    ///
    /// # Panics
    /// If `f` panics, with its payload (as Go's main goroutine would crash the program).
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.handle().go(f).join() {
            Ok(v) => v,
            Err(e) => match e.into_panic() {
                Some(p) => panic::resume_unwind(p),
                None => panic!("gort: the main task was cancelled"),
            },
        }
    }

    /// A handle that starts tasks on this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        self.shared.wake_all();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                eprintln!("gort: a worker thread panicked during shutdown");
            }
        }
        // The workers' stacks, kept through the shutdown, go now, sorted (`stack/pool.rs`),
        // with the hollow ones; the pooled ones too if no other runtime may reuse them.
        let last = RUNNING.fetch_sub(1, SeqCst) == 1;
        crate::stack::unmap_doomed(last);
    }
}

/// Starts tasks on a runtime from any thread (tokio's `Handle`; Go needs none).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Go's `go f()` from any thread, into this runtime.
    pub fn go<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        sched::spawn(f, None, None, Some(&self.shared))
    }
}

/// Starts a runtime with default options, runs `f` as its main task, and returns `f`'s value
/// once it returns; tasks still parked then are unwound (their destructors run) before `run`
/// returns.
///
/// # Panics
/// If the runtime cannot start, or if `f` panics (with its payload).
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = Runtime::new().unwrap_or_else(|e| panic!("gort: cannot start the runtime: {e}"));
    rt.block_on(f)
}
