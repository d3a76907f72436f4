//! What every stream socket does the same way, TCP or Unix: read, write all, peek, shut down,
//! and confirm a non-blocking connect.
//!
//! Mirrors: `internal/poll/fd_unix.go` (Go 1.19) `FD.Read`, `FD.Write` (its loop until every
//! byte is out), `FD.Writev`; `net/fd_unix.go` `netFD.connect` (the wait-writable,
//! `SO_ERROR`, `getpeername` dance); `net/net.go` `conn`, the one type behind `TCPConn` and
//! `UnixConn`.
//!
//! Invariants:
//! - A zero-length read or write returns `Ok(0)` before any lock or syscall (Go: `if len(p) ==
//!   0 { return 0, nil }`).
//! - A write holds the write lock until every byte is out or an error stops it, so writes from
//!   several tasks never interleave; bytes written before an error are reported, and the next
//!   call reports the error.
//! - A read or write that moved fewer bytes than asked marks its direction drained (`fd.rs`).

#![forbid(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;

use reactor::Mode;
use reactor::socket::{self, SockAddr};

use super::fd::Fd;

/// Linux's ENOTCONN (libc is fenced into `sys/`).
const ENOTCONN: i32 = 107;

impl Fd {
    /// `FD.Read` on a stream.
    pub(crate) fn read_stream(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let _g = self.lock(Some(Mode::Read))?;
        let len = buf.len();
        self.io(Mode::Read, |s| s.recv(buf), |&n| n < len)
    }

    /// `readv` on a stream.
    pub(crate) fn read_vectored_stream(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Ok(0);
        }
        let _g = self.lock(Some(Mode::Read))?;
        self.io(Mode::Read, |s| s.recv_vectored(bufs), |&n| n < len)
    }

    /// `FD.Write`: every byte of `buf`, or the bytes written before an error stopped it.
    pub(crate) fn write_stream(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let _g = self.lock(Some(Mode::Write))?;
        let mut done = 0;
        while done < buf.len() {
            let rest = &buf[done..];
            match self.io(Mode::Write, |s| s.send(rest), |&n| n < rest.len()) {
                Ok(n) => done += n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break, // report what went out; the next call reports the error
            }
        }
        Ok(done)
    }

    /// `FD.Writev`: one `sendmsg`, parking on EAGAIN (the caller loops for the rest, as
    /// `Write::write_vectored` allows).
    pub(crate) fn write_vectored_stream(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Ok(0);
        }
        let _g = self.lock(Some(Mode::Write))?;
        self.io(Mode::Write, |s| s.send_vectored(bufs), |&n| n < len)
    }

    /// `recv(MSG_PEEK)`, parking like a read.
    pub(crate) fn peek_stream(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let _g = self.lock(Some(Mode::Read))?;
        self.io(Mode::Read, |s| s.peek(buf), |_| false)
    }

    /// `shutdown(2)` of one or both directions.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let _g = self.lock(None)?;
        self.with(|s| s.shutdown(how))
    }

    /// `netFD.connect`: start a non-blocking connect and wait until it is confirmed (a write
    /// deadline set beforehand bounds the wait).
    pub(crate) fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        match self.with(|s| s.connect(addr)) {
            Ok(()) => Ok(()),
            Err(e) if socket::is_in_progress(&e) => loop {
                self.wait(Mode::Write)?;
                if let Some(e) = self.with(|s| s.take_error())? {
                    return Err(e);
                }
                // Writable is a hint (Go #14548): only a peer address proves the connection.
                match self.with(|s| s.peer_addr()) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(ENOTCONN) => continue,
                    Err(e) => return Err(e),
                }
            },
            Err(e) => Err(e),
        }
    }
}

/// `std::io::Read` and `Write` for a stream type and for a shared reference to it (so a reader
/// task and a writer task can share one connection), and the stream-only methods, all
/// through its `fd`.
macro_rules! stream_io {
    ($t:ty) => {
        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.fd.read_stream(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.fd.read_vectored_stream(bufs)
            }
        }
        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.fd.read_stream(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.fd.read_vectored_stream(bufs)
            }
        }
        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.fd.write_stream(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.fd.write_vectored_stream(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.fd.write_stream(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.fd.write_vectored_stream(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl $t {
            /// Reads without taking the data off the socket; parks like `read`.
            pub fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.fd.peek_stream(buf)
            }

            /// Parks until a read may make progress (data, EOF, an error), the socket closes,
            /// or the read deadline passes: for servers that read until EAGAIN themselves.
            pub fn wait_readable(&self) -> std::io::Result<()> {
                self.fd.wait_ready(reactor::Mode::Read)
            }

            /// Parks until a write may make progress, the socket closes, or the write deadline
            /// passes.
            pub fn wait_writable(&self) -> std::io::Result<()> {
                self.fd.wait_ready(reactor::Mode::Write)
            }

            /// Shuts down one or both directions (the peer reads EOF after a write shutdown).
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.fd.shutdown(how)
            }

            /// Go's `CloseRead`.
            pub fn close_read(&self) -> std::io::Result<()> {
                self.shutdown(std::net::Shutdown::Read)
            }

            /// Go's `CloseWrite`: the peer reads EOF; this side may still read.
            pub fn close_write(&self) -> std::io::Result<()> {
                self.shutdown(std::net::Shutdown::Write)
            }
        }
    };
}

/// What every connection type has (Go's `net.Conn` methods and more), through its `fd`:
/// `close`, the deadline setters, `try_clone`, `AsRawFd`, and a `Debug` that shows the fd and
/// both addresses.
macro_rules! conn_methods {
    ($t:ident) => {
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.fd.raw()
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($t));
                d.field("fd", &self.fd.raw());
                if let Ok(a) = self.local_addr() {
                    d.field("local", &a);
                }
                if let Ok(a) = self.peer_addr() {
                    d.field("peer", &a);
                }
                d.finish()
            }
        }

        impl $t {
            /// Another handle to the same socket (Go shares one `net.Conn` the same way);
            /// closing either closes both.
            pub fn try_clone(&self) -> std::io::Result<$t> {
                Ok($t { fd: self.fd.clone() })
            }

            /// Go's `Close`: wakes every task blocked on this socket with the closed error
            /// ([`is_closed`](crate::net::is_closed)), waits for the operations in flight,
            /// deregisters and closes the fd. A second call returns the closed error and does
            /// nothing else.
            pub fn close(&self) -> std::io::Result<()> {
                self.fd.close()
            }

            /// Go's `SetDeadline`: both directions. `None` removes it.
            pub fn set_deadline(&self, t: Option<std::time::Instant>) -> std::io::Result<()> {
                self.fd.set_deadline(reactor::Mode::Read, t)?;
                self.fd.set_deadline(reactor::Mode::Write, t)
            }

            /// Go's `SetReadDeadline`: once passed, every read fails with `TimedOut` until the
            /// deadline is moved or removed.
            pub fn set_read_deadline(&self, t: Option<std::time::Instant>) -> std::io::Result<()> {
                self.fd.set_deadline(reactor::Mode::Read, t)
            }

            /// Go's `SetWriteDeadline`: once passed, every write fails with `TimedOut`.
            pub fn set_write_deadline(&self, t: Option<std::time::Instant>) -> std::io::Result<()> {
                self.fd.set_deadline(reactor::Mode::Write, t)
            }
        }
    };
}

pub(crate) use {conn_methods, stream_io};
