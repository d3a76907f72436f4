//! The self-pipe that wakes a poller blocked in `epoll_wait`.
//!
//! Mirrors: `runtime/nbpipe_pipe2.go` `nonblockingPipe` and the `netpollBreakRd`/`netpollBreakWr`
//! pair of `runtime/netpoll_epoll.go` (Go 1.19; Go 1.23 replaced the pipe by an eventfd, #65443).
//!
//! Invariants:
//! - Both ends are `O_NONBLOCK|O_CLOEXEC` from birth (`pipe2`), so neither a full pipe nor an
//!   empty one can block a thread, and no child process inherits them.
//! - A write that meets a full pipe (EAGAIN) is a success: a wake-up is already pending.
//! - Only this file touches the two fds; [`crate::wakeup`] decides *when* to write and drain.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking pipe: the read end goes into epoll, the write end is the wake-up button.
#[derive(Debug)]
pub struct Pipe {
    /// Registered with epoll, level-triggered; drained by the poller that blocked.
    rd: OwnedFd,
    /// Written by `netpoll_break`.
    wr: OwnedFd,
}

/// What a [`Pipe::write_byte`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// A byte went into the pipe.
    Byte,
    /// The pipe was full (EAGAIN): a wake-up is pending already.
    AlreadyFull,
}

impl Pipe {
    /// `nonblockingPipe`: `pipe2(O_NONBLOCK|O_CLOEXEC)`.
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [-1 as libc::c_int; 2];
        // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
        syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
        // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
        let rd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        // SAFETY: as above, for the write end.
        let wr = unsafe { OwnedFd::from_raw_fd(fds[1]) };
        Ok(Pipe { rd, wr })
    }

    /// The read end, to register with epoll.
    pub fn read_fd(&self) -> RawFd {
        self.rd.as_raw_fd()
    }

    /// Both ends (read, write): the poller's own descriptors.
    pub fn fds(&self) -> (RawFd, RawFd) {
        (self.rd.as_raw_fd(), self.wr.as_raw_fd())
    }

    /// The write half of `netpollBreak`: one byte, retried on EINTR; EAGAIN means "already
    /// awake".
    pub fn write_byte(&self) -> io::Result<Written> {
        let byte = 0u8;
        loop {
            // SAFETY: `wr` is a live fd; the buffer is one readable byte on our stack.
            match syscall!(write(self.wr.as_raw_fd(), (&byte as *const u8).cast(), 1)) {
                Ok(_) => return Ok(Written::Byte),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Written::AlreadyFull),
                Err(e) => return Err(e),
            }
        }
    }

    /// Empties the pipe: reads until EAGAIN. Returns how many bytes were in it.
    pub fn drain(&self) -> io::Result<usize> {
        let mut buf = [0u8; 16];
        let mut total = 0;
        loop {
            // SAFETY: `rd` is a live fd; `buf` is writable for `buf.len()` bytes.
            match syscall!(read(self.rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }
}
