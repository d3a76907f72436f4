//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use gort::Runtime;

/// A runtime with `workers` workers.
pub fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime")
}

/// Runs `f` on a thread and fails if it takes longer than `limit`: a lost wake-up shows up as a
/// clear failure naming `what`, not as a hung test run.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(_) if h.is_finished() => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(_) => panic!("{what}: not done within {limit:?} (a lost wake-up?)"),
    }
}
