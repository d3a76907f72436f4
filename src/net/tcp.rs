//! TCP: listeners and connections with blocking-style calls that park the calling task.
//!
//! Mirrors: `net/tcpsock.go`, `net/tcpsock_posix.go`, `net/sock_posix.go` (Go 1.19) —
//! `TCPListener.Accept`, `TCPConn`, `netFD.connect`, `listenStream`; defaults from
//! `net/tcpsockopt_unix.go` and `net/sockopt_linux.go` (`TCP_NODELAY` on, keep-alive 15 s).
//!
//! Invariants:
//! - Sockets are non-blocking and close-on-exec from birth and registered once (architecture
//!   decision 7); every wait goes through [`Fd`].
//! - A `write` puts all its bytes on the wire before the next writer starts (the write lock is
//!   held for the whole call); a deadline or error part-way returns the bytes written so far,
//!   and the next call reports the error.
//! - Reads, writes and `connect` are the shared stream code of `stream.rs`.
//!
//! | connect step | result                                                          |
//! |--------------|-----------------------------------------------------------------|
//! | `connect(2)` | 0 → connected; EINPROGRESS/EINTR → wait writable; other → error |
//! | writable     | `SO_ERROR` ≠ 0 → that error (e.g. refused); else `getpeername` ok → connected, ENOTCONN → wait again |
//! | deadline     | `TimedOut`, the socket is closed                                 |

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reactor::Mode;
use reactor::socket::{DEFAULT_KEEPALIVE, Domain, SockAddr, Socket, Type};

use super::fd::Fd;
use super::stream::{conn_methods, stream_io};
use super::{each_addr, resolve};
use crate::context::Context;

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

fn domain(a: &SocketAddr) -> Domain {
    if a.is_ipv4() { Domain::Ipv4 } else { Domain::Ipv6 }
}

fn inet(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_inet().ok_or_else(|| io::Error::other("gort: not an internet address"))
}

/// Go's `net.TCPListener`.
pub struct TcpListener {
    fd: Arc<Fd>,
}

impl TcpListener {
    /// Go's `net.Listen("tcp", addr)`: binds (with `SO_REUSEADDR`, as Go) and listens.
    pub fn bind<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<TcpListener> {
        each_addr(resolve(addr)?, |a| {
            let sock = Socket::new(domain(&a), Type::Stream)?;
            sock.set_reuse_address(true)?;
            sock.bind(&a.into())?;
            sock.listen(BACKLOG)?;
            Ok(TcpListener { fd: Fd::new(sock)? })
        })
    }

    /// Go's `Accept`: parks until a connection comes, the listener closes, or its deadline
    /// passes. ECONNABORTED and EINTR are retried; EMFILE/ENFILE are returned (back off and
    /// call again: a connection already queued is taken at once).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let _g = self.fd.lock(Some(Mode::Read))?;
        let (sock, addr) = self.fd.io(Mode::Read, Socket::accept, |_| false)?;
        Ok((TcpStream::from_socket(sock)?, inet(addr)?))
    }

    /// Accepted connections, forever (errors included, as std's `incoming`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Adopts a std listener (made non-blocking here) into the runtime.
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener { fd: Fd::new(Socket::from_fd(OwnedFd::from(l))?)? })
    }

    /// Leaves the runtime: a std listener in blocking mode. Fails if the listener is shared.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::from(OwnedFd::from(self.fd.into_socket()?));
        l.set_nonblocking(false)?;
        Ok(l)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with(|s| s.local_addr()).and_then(inet)
    }

    /// Go's `SetDeadline` on a listener: `accept` fails with `TimedOut` after `t`.
    pub fn set_deadline(&self, t: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(Mode::Read, t)
    }

    /// Go's `Close`: every task blocked in `accept` wakes with the closed error
    /// ([`is_closed`](super::is_closed)); the port is free once this returns.
    pub fn close(&self) -> io::Result<()> {
        self.fd.close()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.fd.raw()).finish()
    }
}

/// The connections a listener accepts ([`TcpListener::incoming`]).
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// Go's `net.TCPConn`. Clones (`try_clone`) share the connection, as Go's do.
pub struct TcpStream {
    fd: Arc<Fd>,
}

impl TcpStream {
    fn from_socket(sock: Socket) -> io::Result<TcpStream> {
        // Go's defaults for every TCP connection.
        sock.set_nodelay(true)?;
        sock.set_keepalive(Some(DEFAULT_KEEPALIVE))?;
        Ok(TcpStream { fd: Fd::new(sock)? })
    }

    /// Go's `net.Dial("tcp", addr)`: tries each resolved address in turn.
    pub fn connect<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<TcpStream> {
        each_addr(resolve(addr)?, |a| connect_one(a, None))
    }

    /// Go's `Dialer.DialContext`: connects unless `ctx` is cancelled or its deadline passes
    /// first; then the error is the context's (`TimedOut` for a deadline).
    pub fn connect_context<A: ToSocketAddrs + Send + 'static>(
        ctx: &Context,
        addr: A,
    ) -> io::Result<TcpStream> {
        if let Some(e) = ctx.err() {
            return Err(e.into());
        }
        each_addr(resolve(addr)?, |a| {
            let stream = TcpStream::from_socket(Socket::new(domain(&a), Type::Stream)?)?;
            stream.fd.set_deadline(Mode::Write, ctx.deadline())?;
            // Go's recipe: on cancel, a deadline in the past ends the wait for writability.
            let fd = stream.fd.clone();
            let watch = ctx.after_func(move || {
                let _ = fd.set_deadline(Mode::Write, Some(Instant::now()));
            });
            let res = stream.fd.connect(&a.into());
            watch.stop();
            match (res, ctx.err()) {
                (Ok(()), _) => {
                    stream.fd.set_deadline(Mode::Write, None)?;
                    Ok(stream)
                }
                (Err(_), Some(e)) => Err(e.into()),
                (Err(e), None) => Err(e),
            }
        })
    }

    /// Go's `net.DialTimeout`: fails with `TimedOut` if the connection is not made in `d`.
    pub fn connect_timeout(addr: &SocketAddr, d: Duration) -> io::Result<TcpStream> {
        connect_one(*addr, Some(Instant::now() + d))
    }

    /// `TCP_NODELAY` (on by default, as in Go).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.fd.with(|s| s.set_nodelay(on))
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.fd.with(|s| s.nodelay())
    }

    /// TCP keep-alive with this idle period, or off (default: 15 s, as Go).
    pub fn set_keepalive(&self, period: Option<Duration>) -> io::Result<()> {
        self.fd.with(|s| s.set_keepalive(period))
    }

    /// Go's `SetLinger`: `Some(ZERO)` makes `close` discard unsent data and send a reset.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.fd.with(|s| s.set_linger(linger))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with(|s| s.peer_addr()).and_then(inet)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with(|s| s.local_addr()).and_then(inet)
    }

    /// Adopts a std stream (made non-blocking here) into the runtime.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_socket(Socket::from_fd(OwnedFd::from(s))?)
    }

    /// Leaves the runtime: a std stream in blocking mode (Go's `File()` does the same switch).
    /// Fails if clones of this stream are alive.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let s = std::net::TcpStream::from(OwnedFd::from(self.fd.into_socket()?));
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

fn connect_one(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let stream = TcpStream::from_socket(Socket::new(domain(&addr), Type::Stream)?)?;
    if deadline.is_some() {
        stream.fd.set_deadline(Mode::Write, deadline)?;
    }
    stream.fd.connect(&addr.into())?;
    if deadline.is_some() {
        stream.fd.set_deadline(Mode::Write, None)?;
    }
    Ok(stream)
}

stream_io!(TcpStream);
conn_methods!(TcpStream);
