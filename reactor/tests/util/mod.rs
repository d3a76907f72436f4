//! Helpers for the reactor's tests: OS threads as waiters, socket pairs, time bounds.
//!
//! A thread that waits on a `PollDesc` gets a [`Waiter`] word (its slot in a registry, plus 3),
//! commits it, and sleeps on a condition variable; whoever gets that `Waiter` back from
//! `netpoll`, `evict` or `expire` calls [`wake`]. That is the runtime's park/ready with threads.
#![allow(dead_code)]

pub mod counting_alloc;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use reactor::{Mode, PollDesc, PollError, Poller, Waiter};

/// One sleeping thread's flag.
#[derive(Default)]
struct Slot {
    woken: Mutex<bool>,
    cv: Condvar,
}

fn registry() -> &'static Mutex<Vec<Arc<Slot>>> {
    static REG: OnceLock<Mutex<Vec<Arc<Slot>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

thread_local! {
    static ME: (Waiter, Arc<Slot>) = {
        let slot = Arc::new(Slot::default());
        let mut reg = registry().lock().unwrap();
        reg.push(slot.clone());
        (Waiter::new(reg.len() - 1 + Waiter::MIN).unwrap(), slot)
    };
}

/// The calling thread's waiter word.
pub fn my_waiter() -> Waiter {
    ME.with(|(w, _)| *w)
}

/// The `park` step of `PollDesc::wait` for a thread: commit, then sleep until woken.
/// A failed commit means readiness or an error came first: return without sleeping.
pub fn park_thread(pd: &PollDesc, mode: Mode) {
    park_thread_then(pd, mode, || {})
}

/// [`park_thread`] that runs `committed` once the waiter is published, before it sleeps.
pub fn park_thread_then(pd: &PollDesc, mode: Mode, committed: impl FnOnce()) {
    ME.with(|(w, slot)| {
        if !pd.commit(mode, *w) {
            return;
        }
        committed();
        let mut woken = slot.woken.lock().unwrap();
        while !*woken {
            woken = slot.cv.wait(woken).unwrap();
        }
        *woken = false;
    })
}

/// Wakes the thread parked under `w` (Go's `goready`).
pub fn wake(w: Waiter) {
    let slot = registry().lock().unwrap()[w.get() - Waiter::MIN].clone();
    *slot.woken.lock().unwrap() = true;
    slot.cv.notify_one();
}

/// Wakes every waiter in `ws`.
pub fn wake_all(ws: impl IntoIterator<Item = Waiter>) {
    ws.into_iter().for_each(wake);
}

/// A thread that runs `netpoll(None)` and wakes what it returns, until `stop` is set and a
/// `netpoll_break` makes it look. Returns how many times `netpoll` returned.
pub fn spawn_driver(poller: Arc<Poller>, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut rounds = 0;
        let mut out = Vec::with_capacity(64);
        while !stop.load(SeqCst) {
            out.clear();
            poller.netpoll_into(None, &mut out).expect("netpoll");
            rounds += 1;
            wake_all(out.drain(..));
        }
        rounds
    })
}

/// A connected, non-blocking pair of Unix stream sockets.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Go's `FD.Read` loop with a thread as the waiter: try the syscall, park on EAGAIN, retry.
pub fn read_blocking(pd: &PollDesc, sock: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    read_parking(pd, sock, buf, park_thread)
}

/// [`read_blocking`] with a chosen park step.
pub fn read_parking(
    pd: &PollDesc,
    mut sock: &UnixStream,
    buf: &mut [u8],
    mut park: impl FnMut(&PollDesc, Mode),
) -> io::Result<usize> {
    loop {
        match sock.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pd.wait(Mode::Read, &mut park).map_err(io::Error::from)?
            }
            other => return other,
        }
    }
}

/// Go's `FD.Write` loop: every byte goes out, parking on EAGAIN.
pub fn write_blocking(pd: &PollDesc, sock: &UnixStream, buf: &[u8]) -> io::Result<()> {
    write_parking(pd, sock, buf, park_thread)
}

/// [`write_blocking`] with a chosen park step.
pub fn write_parking(
    pd: &PollDesc,
    mut sock: &UnixStream,
    mut buf: &[u8],
    mut park: impl FnMut(&PollDesc, Mode),
) -> io::Result<()> {
    while !buf.is_empty() {
        match sock.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pd.wait(Mode::Write, &mut park).map_err(io::Error::from)?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `sock`'s send buffer until the kernel says EAGAIN. Returns the bytes written.
pub fn fill(mut sock: &UnixStream) -> usize {
    let chunk = [0x5au8; 16 * 1024];
    let mut total = 0;
    loop {
        match sock.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// Reads everything `sock` has right now.
pub fn drain(mut sock: &UnixStream) -> usize {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("drain: {e}"),
        }
    }
}

/// Runs `f` on a thread and fails the test if it has not finished within `limit`: a lost
/// wake-up shows up as a clear failure, not a hung test run.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(_) => {
            if h.is_finished() {
                // The closure panicked: surface its message.
                match h.join() {
                    Err(p) => std::panic::resume_unwind(p),
                    Ok(()) => unreachable!(),
                }
            }
            panic!("{what}: not done within {limit:?} (a lost wake-up?)")
        }
    }
}

/// The raw fd of a socket.
pub fn fd(s: &UnixStream) -> i32 {
    s.as_raw_fd()
}

/// Waits up to `limit` for `cond`, polling every millisecond.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Shorthand for the error of a closed record.
pub const CLOSING: PollError = PollError::Closing;
