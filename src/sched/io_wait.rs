//! Parking a task on a poll descriptor, and waking it from the netpoller.
//!
//! Mirrors: `runtime/netpoll.go` (Go 1.19/1.21) — `poll_runtime_pollWait` as the task sees it,
//! `netpollblockcommit` run from `gopark`, `netpollWaiters` and `netpollAdjustWaiters`, and
//! `netpollgoready`. The fd layer (`net/fd.rs`) is the one caller: it tries the syscall, and on
//! EAGAIN calls [`wait_io`].
//!
//! | step                        | where                     | what                                            |
//! |-----------------------------|---------------------------|-------------------------------------------------|
//! | announce                    | `PollDesc::prepare`       | `nil → wait`, re-check closing / deadline       |
//! | park                        | `sched::park`             | switch to the scheduler                         |
//! | commit (scheduler side)     | here                      | `io_waiters += 1`; `wait → task`; on failure undo both, run the task again |
//! | readiness                   | `Worker::poll_network`    | `netpoll` hands the task back; `io_waiters -= 1` after it is queued |
//! | close / deadline            | [`wake_io`]               | `evict`/`expire` hand the task back; same accounting |
//!
//! Invariants:
//! - `io_waiters` counts tasks whose waiter word sits in a poll descriptor. It goes up in the
//!   commit and down only once the task is back in a run queue (Go #61454: counting down first
//!   let the scheduler believe nobody waited, and skip the poll).
//! - The waiter word carries one strong reference to the task (`task::into_waiter`), taken back
//!   exactly once: by whoever the reactor hands it to, or by the commit that failed to store it.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::SeqCst;

use reactor::{Mode, PollDesc, PollError, Waiter};

use super::{Shared, park, ready_tail, worker};
use crate::task;

/// `poll_runtime_pollWait` from a task: parks until `pd` is ready in `mode`, or fails with the
/// error that ended the wait (closing, deadline). Readiness is a hint: the caller retries its
/// syscall afterwards.
///
/// # Panics
/// Outside a task of a runtime (the fd layer only calls it from tasks).
pub(crate) fn wait_io(pd: &PollDesc, mode: Mode) -> Result<(), PollError> {
    let w = worker::current().filter(|_| task::in_task()).expect("gort: wait_io outside a task");
    let shared = &w.shared;
    pd.wait(mode, |pd, mode| {
        park(|t| {
            shared.io_waiters.fetch_add(1, SeqCst);
            let waiter = task::into_waiter(t.clone());
            if pd.commit(mode, waiter) {
                return true;
            }
            // Readiness, a close or a deadline came first: the word was not stored.
            drop(task::from_waiter(waiter));
            shared.io_waiters.fetch_sub(1, SeqCst);
            false
        })
    })
}

/// Wakes a task that `PollDesc::evict` or `PollDesc::expire` handed back (Go's
/// `netpollgoready` from `poll_runtime_pollUnblock` and `netpolldeadlineimpl`).
pub(crate) fn wake_io(shared: &Shared, waiter: Waiter) {
    ready_tail(shared, task::from_waiter(waiter));
    shared.io_waiters.fetch_sub(1, SeqCst);
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Runtime;

    /// Go's `FD.Read` with a task as the waiter.
    fn read_parking(pd: &PollDesc, mut s: &UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match s.read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => wait_io(pd, Mode::Read)?,
                r => return r,
            }
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_task_parked_on_a_socket_is_woken_by_the_netpoller() {
        for workers in [1, 2] {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let got = rt.block_on(|| {
                let w = worker::current().unwrap();
                let shared = w.shared.clone();
                let (a, b) = pair();
                let pd = shared.poller.open(a.as_raw_fd()).unwrap();
                let reader = {
                    let pd = pd.clone();
                    crate::go(move || {
                        let mut buf = [0u8; 16];
                        let n = read_parking(&pd, &a, &mut buf).unwrap();
                        (buf[..n].to_vec(), a)
                    })
                };
                crate::time::sleep(Duration::from_millis(30));
                assert_eq!(
                    shared.io_waiters.load(SeqCst),
                    1,
                    "the reader should wait in the poller"
                );
                (&b).write_all(b"hello").unwrap();
                let (got, a) = reader.join().unwrap();
                assert_eq!(shared.io_waiters.load(SeqCst), 0);
                assert_eq!(pd.evict(), (None, None));
                shared.poller.close(&pd).unwrap();
                drop(a);
                got
            });
            assert_eq!(got, b"hello", "{workers} workers");
        }
    }

    #[test]
    fn many_readers_ping_pong_through_the_poller() {
        // 50 connections × 200 one-byte round trips, each side parking on EAGAIN; a lost wake-up
        // hangs, which the deadline below turns into a failure.
        let t = Instant::now();
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let shared = worker::current().unwrap().shared.clone();
            let mut hs = Vec::new();
            for _ in 0..50 {
                let (a, b) = pair();
                let (pa, pb) = (
                    shared.poller.open(a.as_raw_fd()).unwrap(),
                    shared.poller.open(b.as_raw_fd()).unwrap(),
                );
                hs.push(crate::go(move || {
                    let mut buf = [0u8; 1];
                    for _ in 0..200 {
                        assert_eq!(read_parking(&pb, &b, &mut buf).unwrap(), 1);
                        (&b).write_all(&buf).unwrap();
                    }
                    (pb, b)
                }));
                hs.push(crate::go(move || {
                    let mut buf = [0u8; 1];
                    for i in 0..200u32 {
                        (&a).write_all(&[i as u8]).unwrap();
                        assert_eq!(read_parking(&pa, &a, &mut buf).unwrap(), 1);
                        assert_eq!(buf[0], i as u8);
                    }
                    (pa, a)
                }));
            }
            for h in hs {
                let (pd, sock) = h.join().unwrap();
                shared.poller.close(&pd).unwrap();
                drop(sock);
            }
            assert_eq!(shared.io_waiters.load(SeqCst), 0);
        });
        assert!(t.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn evict_wakes_a_parked_reader_with_the_closing_error() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let shared = worker::current().unwrap().shared.clone();
            let (a, _b) = pair();
            let pd = shared.poller.open(a.as_raw_fd()).unwrap();
            let reader = {
                let pd = pd.clone();
                crate::go(move || {
                    (read_parking(&pd, &a, &mut [0u8; 4]).map_err(|e| e.to_string()), a)
                })
            };
            crate::time::sleep(Duration::from_millis(30));
            let (r, w) = pd.evict();
            assert!(w.is_none());
            wake_io(&shared, r.expect("the reader was parked"));
            let (res, a) = reader.join().unwrap();
            assert_eq!(res.unwrap_err(), "use of closed network connection");
            assert_eq!(shared.io_waiters.load(SeqCst), 0);
            // Deregister before the fd closes (Go: pollClose, then close(2)).
            shared.poller.close(&pd).unwrap();
            drop(a);
        });
    }
}
