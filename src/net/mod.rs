//! Blocking-style networking on the netpoller: a task that would block parks instead.
//!
//! Mirrors: Go's `net` package (`net/tcpsock.go`, `net/udpsock.go`, `net/unixsock.go`,
//! `net/fd_unix.go`, `net/ipsock.go`) over
//! `internal/poll` (here [`fd`](self)).
//!
//! | Go                                  | gort                                              |
//! |-------------------------------------|---------------------------------------------------|
//! | `net.Listen("tcp", addr)`           | [`TcpListener::bind`]                             |
//! | `ln.Accept()`                       | [`TcpListener::accept`], [`TcpListener::incoming`] |
//! | `net.Dial`, `net.DialTimeout`       | [`TcpStream::connect`], [`TcpStream::connect_timeout`] |
//! | `conn.Read` / `conn.Write`          | `std::io::Read` / `Write` on [`TcpStream`] and `&TcpStream` |
//! | `SetDeadline`, `SetReadDeadline`, `SetWriteDeadline` | the same names, with `Option<Instant>` |
//! | `CloseRead`, `CloseWrite`, `Close`  | the same names; `close(&self)` wakes every blocked task |
//! | `net.ErrClosed`                     | [`is_closed`]                                     |
//! | `os.ErrDeadlineExceeded`            | `io::ErrorKind::TimedOut`                          |
//! | `net.ListenUDP`, `ReadFrom`, `WriteTo` | [`UdpSocket::bind`], [`UdpSocket::recv_from`], [`UdpSocket::send_to`] |
//! | `net.Listen("unix", path)`, `AcceptUnix` | [`UnixListener::bind`], [`UnixListener::accept`] |
//! | `net.Dial("unix", path)`            | [`UnixStream::connect`], [`UnixStream::pair`]     |
//! | `net.ListenUnixgram`, `ReadFromUnix`, `WriteToUnix` | [`UnixDatagram::bind`], [`UnixDatagram::recv_from`], [`UnixDatagram::send_to`] |
//! | `net.UnixAddr` (`"@name"`: abstract) | [`UnixAddr`] ([`UnixAddr::abstract_name`])      |
//!
//! Addresses with host names are resolved on the blocking pool ([`crate::blocking`]), never on a
//! worker.

#![forbid(unsafe_code)]

mod fd;
mod fd_mutex;
mod stream;
mod tcp;
mod udp;
mod unix;

use std::any::Any;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

pub use fd::is_closed;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

pub use reactor::socket::UnixAddr;

/// Resolves `addr`: literal addresses here, host names on the blocking pool (Go's resolver
/// runs in its own goroutine-friendly way; a Rust resolver call blocks its thread).
pub(crate) fn resolve<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let any: &dyn Any = &addr;
    if let Some(a) = any.downcast_ref::<SocketAddr>() {
        return Ok(vec![*a]);
    }
    let literal = any
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| any.downcast_ref::<String>().map(String::as_str))
        .and_then(|s| s.parse::<SocketAddr>().ok());
    if let Some(a) = literal {
        return Ok(vec![a]);
    }
    crate::blocking(move || addr.to_socket_addrs().map(Iterator::collect))
}

/// Tries `f` on each address in turn; the last error if none works (Go's `dialSerial`).
pub(crate) fn each_addr<T>(
    addrs: Vec<SocketAddr>,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "gort: no addresses to use");
    for a in addrs {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}
