//! Signals into a self-pipe: the async-signal-safe half of Go's `os/signal`.
//!
//! Mirrors: `runtime/sigqueue.go` and `runtime/signal_unix.go` (Go 1.19) — `sigsend` (the
//! handler side: record the signal, wake the reader) and `signal_recv` (the reader side), with a
//! pipe where Go uses a lock-free mask and a note.
//!
//! Invariants:
//! - The handler does one thing: `write(2)` the signal number (one byte) to a non-blocking pipe.
//!   `write` is async-signal-safe; the fd is read from an atomic set once, before any handler is
//!   installed; `errno` is saved and restored. A full pipe drops the byte: the reader is already
//!   behind and will see the signal's earlier bytes (Go also coalesces pending signals).
//! - Handlers are installed with `SA_RESTART` (interrupted syscalls restart) and `SA_ONSTACK`
//!   (they may run on the alternate signal stack of a worker).
//! - [`restore`] puts back the handler that was there before [`install`].

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

use super::pipe::Pipe;

/// The pipe's write end, for the handler (-1 until the pipe exists).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The pipe: created once per process.
static PIPE: OnceLock<io::Result<Pipe>> = OnceLock::new();

/// The actions replaced by [`install`], by signal number.
static PREVIOUS: Mutex<Vec<(i32, libc::sigaction)>> = Mutex::new(Vec::new());

/// SIGINT (Go's `os.Interrupt`).
pub const SIGINT: i32 = libc::SIGINT;
/// SIGTERM.
pub const SIGTERM: i32 = libc::SIGTERM;
/// SIGQUIT.
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// SIGHUP.
pub const SIGHUP: i32 = libc::SIGHUP;
/// SIGUSR1.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// SIGUSR2.
pub const SIGUSR2: i32 = libc::SIGUSR2;

/// The read end of the process's signal pipe (created on first use): register it with a
/// [`Poller`](crate::Poller) and [`drain`] it when it turns readable.
pub fn pipe_fd() -> io::Result<RawFd> {
    let pipe = PIPE.get_or_init(|| {
        let p = Pipe::new()?;
        WRITE_FD.store(p.fds().1, SeqCst);
        Ok(p)
    });
    match pipe {
        Ok(p) => Ok(p.read_fd()),
        Err(e) => Err(io::Error::new(e.kind(), format!("reactor: no signal pipe: {e}"))),
    }
}

/// Appends the signal numbers waiting in the pipe to `out`, until the pipe is empty.
pub fn drain(out: &mut Vec<i32>) -> io::Result<()> {
    let fd = pipe_fd()?;
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: `fd` is the pipe's read end, open for the life of the process; `buf` is
        // writable for its length.
        match syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend(buf[..n as usize].iter().map(|&b| b as i32)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The handler: one byte into the pipe, `errno` untouched.
extern "C" fn on_signal(signo: libc::c_int) {
    let fd = WRITE_FD.load(SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: `__errno_location` only returns this thread's errno slot (always valid).
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: `errno` points at this thread's errno; saving it keeps the interrupted code's
    // errno intact across our write.
    let saved = unsafe { *errno };
    let byte = signo as u8;
    // SAFETY: write(2) is async-signal-safe; `fd` is the open, non-blocking write end; the
    // buffer is one byte on this stack. A failure (full pipe) is deliberately ignored.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    // SAFETY: as above: restoring this thread's errno.
    unsafe { *errno = saved };
}

/// Routes `signo` to the pipe (Go's `signal.Notify` → `enableSignal`). Idempotent.
pub fn install(signo: i32) -> io::Result<()> {
    pipe_fd()?;
    let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    if previous.iter().any(|(s, _)| *s == signo) {
        return Ok(());
    }
    let mut new = sigaction_zeroed();
    new.sa_sigaction = on_signal as *const () as usize;
    new.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t inside `new`.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    let mut old = sigaction_zeroed();
    // SAFETY: both pointers are valid sigaction structs; the handler is an `extern "C"` fn that
    // only does async-signal-safe work.
    syscall!(sigaction(signo, &new, &mut old))?;
    previous.push((signo, old));
    Ok(())
}

/// Puts back the action `signo` had before [`install`] (Go's `signal.Reset`).
pub fn restore(signo: i32) -> io::Result<()> {
    let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = previous.iter().position(|(s, _)| *s == signo) {
        let (_, old) = previous.remove(i);
        // SAFETY: `old` is the action the kernel gave us for `signo`.
        syscall!(sigaction(signo, &old, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// Sends `signo` to this process (for tests: Go's tests do `syscall.Kill(os.Getpid(), sig)`).
pub fn raise(signo: i32) -> io::Result<()> {
    // SAFETY: kill(2) with our own pid and a signal number; no memory is involved.
    syscall!(kill(libc::getpid(), signo))?;
    Ok(())
}

fn sigaction_zeroed() -> libc::sigaction {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a valid value
    // (SIG_DFL, empty mask, no flags).
    unsafe { MaybeUninit::<libc::sigaction>::zeroed().assume_init() }
}
