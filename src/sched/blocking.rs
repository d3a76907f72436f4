//! Running blocking work (files, DNS, foreign calls) on OS threads, parking only the caller.
//!
//! Mirrors: what Go does at `entersyscall`/`exitsyscall` + `sysmon`'s `retake` (Go 1.19
//! `runtime/proc.go`): a goroutine in a blocking syscall gives its P away so the other goroutines
//! keep running. We cannot detach a worker from a task that is already in a syscall, so the task
//! asks first: `blocking(f)` sends `f` to a pool thread and parks; the pool thread wakes it.
//!
//! | pool state            | a job arrives                                  |
//! |-----------------------|------------------------------------------------|
//! | an idle thread waits  | it takes the job                               |
//! | none idle, < max      | a new thread starts (`thread::Builder::spawn`) |
//! | none idle, at max     | the job queues until a thread is free (bounded concurrency) |
//! | no thread can start   | `try_blocking` returns the error; `blocking` runs `f` on the caller, with a log line |
//!
//! Idle threads exit after 10 s without work.

#![forbid(unsafe_code)]

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::{Waker, wait, worker};
use crate::task;

type Job = Box<dyn FnOnce() + Send>;

const IDLE_EXIT: Duration = Duration::from_secs(10);

/// The pool of threads for blocking work.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    max: usize,
    /// Threads alive, and threads waiting for a job.
    threads: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
}

impl BlockingPool {
    pub(crate) fn new(max: usize) -> BlockingPool {
        let (tx, rx) = unbounded();
        BlockingPool {
            tx,
            rx,
            max: max.max(1),
            threads: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `job`, starting a thread if none is idle and the bound allows.
    fn submit(&self, job: Job) -> io::Result<()> {
        self.tx.send(job).map_err(|_| io::Error::other("gort: the blocking pool is closed"))?;
        if self.idle.load(SeqCst) > 0 {
            return Ok(());
        }
        let n = self.threads.fetch_add(1, SeqCst);
        if n >= self.max {
            self.threads.fetch_sub(1, SeqCst);
            return Ok(()); // at the bound: a running thread will take it
        }
        let (rx, threads, idle) = (self.rx.clone(), self.threads.clone(), self.idle.clone());
        let spawned = thread::Builder::new()
            .name("gort-blocking".into())
            .spawn(move || pool_thread(rx, threads, idle));
        if let Err(e) = spawned {
            self.threads.fetch_sub(1, SeqCst);
            if n == 0 {
                // Nobody will take the job: say why. It stays queued, but its caller takes `f`
                // back, so if a thread starts later the job finds nothing to run.
                return Err(io::Error::new(
                    e.kind(),
                    format!("gort: cannot start a thread for blocking work: {e}"),
                ));
            }
        }
        Ok(())
    }
}

fn pool_thread(rx: Receiver<Job>, threads: Arc<AtomicUsize>, idle: Arc<AtomicUsize>) {
    loop {
        idle.fetch_add(1, SeqCst);
        let job = rx.recv_timeout(IDLE_EXIT);
        idle.fetch_sub(1, SeqCst);
        match job {
            Ok(job) => job(),
            Err(RecvTimeoutError::Timeout) => {
                threads.fetch_sub(1, SeqCst);
                // A job sent while we were leaving saw `idle > 0`: do not strand it.
                match rx.try_recv() {
                    Ok(job) => {
                        threads.fetch_add(1, SeqCst);
                        job();
                    }
                    Err(_) => return,
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                threads.fetch_sub(1, SeqCst);
                return;
            }
        }
    }
}

/// Runs `f` on the blocking pool while the calling task parks; other tasks keep running.
/// Outside a task, runs `f` right here. A panic in `f` resumes in the caller.
///
/// If no pool thread can be started at all (the process is out of threads), `f` runs on the
/// calling worker instead, and a log line says so; [`try_blocking`] returns that error.
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let f = Arc::new(Mutex::new(Some(f)));
    match try_blocking_shared(f.clone()) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("{e}; running the blocking call on the worker");
            let f = f.lock().unwrap_or_else(|p| p.into_inner()).take().expect("f not run");
            f()
        }
    }
}

/// [`blocking`], but an error if no pool thread can be started.
pub fn try_blocking<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let f = Arc::new(Mutex::new(Some(f)));
    try_blocking_shared(f.clone()).inspect_err(|_| {
        // The queued job must not run `f` after we reported that it could not.
        drop(f.lock().unwrap_or_else(|p| p.into_inner()).take());
    })
}

fn try_blocking_shared<F, T>(f: Arc<Mutex<Option<F>>>) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let take = |f: &Mutex<Option<F>>| f.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(w) = worker::current().filter(|_| task::in_task()) else {
        return Ok(take(&f).expect("f not run")());
    };
    type Out<T> = Mutex<Option<thread::Result<T>>>;
    let out: Arc<Out<T>> = Arc::new(Mutex::new(None));
    let mut err = None;
    wait(|waker: Waker| {
        let (f, out2) = (f.clone(), out.clone());
        let job: Job = Box::new(move || {
            let Some(f) = take(&f) else { return };
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            *out2.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            waker.wake();
        });
        // Submitted here, in the commit: the caller is parked before the job can finish.
        match w.shared.blocking.submit(job) {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    // Only the job wakes us, after storing the result (shutdown unwinds out of `park` instead).
    let r = out.lock().unwrap_or_else(|p| p.into_inner()).take();
    let r = r.expect("gort: a blocking job woke its caller without a result");
    Ok(r.unwrap_or_else(|p| panic::resume_unwind(p)))
}
