//! A time limit for tests: one helper for the unit tests inside the crate and, through
//! `#[path]` in `tests/util/mod.rs`, for the integration tests.
//!
//! Mirrors: nothing in Go (`go test -timeout` ends the whole binary instead). A lost wake-up in a
//! runtime shows as a hang; run under `within`, it shows as a failure that names what did not
//! finish, and a panic in the checked code comes out as itself.
//!
//! | `f` on its thread        | `within` does                                   |
//! |--------------------------|-------------------------------------------------|
//! | returns in time          | returns its value                               |
//! | panics (in time or not)  | resumes that panic on the caller                |
//! | still running at `limit` | panics "WHAT: not done within LIMIT"; the thread is left running |

#![forbid(unsafe_code)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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
            Ok(()) => unreachable!("the thread ended without sending its value or panicking"),
        },
        Err(_) => panic!("{what}: not done within {limit:?} (a lost wake-up?)"),
    }
}
