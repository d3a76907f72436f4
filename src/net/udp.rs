//! Mirrors: net/udpsock.go (Go 1.19) — `UDPConn`, `ListenUDP`, `ReadFrom`, `WriteTo`, `Read`,
//! `Write`; `net/udpsock_posix.go` — `readFrom`, `writeTo`; `net/sockopt_linux.go` —
//! `setDefaultSockopts` (`SO_BROADCAST` on for every datagram socket); `internal/poll/fd_unix.go`
//! — `FD.ReadFrom`, `FD.WriteTo` (one `recvfrom`/`sendto` per call, parking on EAGAIN).
//!
//! Invariants:
//! - Sockets are non-blocking and close-on-exec from birth and registered once (architecture
//!   decision 7); every wait goes through [`Fd`], and every datagram operation through
//!   [`datagram_io`] (shared with `UnixDatagram`).
//! - One call moves exactly one datagram: a receive takes one (truncated to the buffer, the rest
//!   is lost, as in Go), a send puts the whole buffer in one datagram or fails (`EMSGSIZE`).
//!   Hence no "write all" loop, and a short read never marks the socket drained.
//! - A zero-length datagram is a datagram: `send(&[])` sends one, `recv(&mut [])` waits for one
//!   and takes it off the queue. Nothing returns at once just because a buffer is empty
//!   (unlike [`TcpStream`](super::TcpStream), where a zero-length read means nothing).
//! - Deadlines are Go's (decision 8): absolute, per direction; once passed, every operation
//!   in that direction fails with `ErrorKind::TimedOut` until the deadline moves.
//!
//! | Go                                 | gort                                              |
//! |------------------------------------|---------------------------------------------------|
//! | `net.ListenUDP("udp", laddr)`      | [`UdpSocket::bind`]                                |
//! | `net.DialUDP` (connect a socket)   | [`UdpSocket::bind`] then [`UdpSocket::connect`]    |
//! | `ReadFrom`, `WriteTo`              | [`UdpSocket::recv_from`], [`UdpSocket::send_to`]   |
//! | `Read`, `Write` (connected)        | [`UdpSocket::recv`], [`UdpSocket::send`]           |
//! | `LocalAddr`, `RemoteAddr`          | [`UdpSocket::local_addr`], [`UdpSocket::peer_addr`] |
//! | `SetDeadline`, `SetReadDeadline`, `SetWriteDeadline` | the same names, `Option<Instant>` |
//! | `Close`                            | [`UdpSocket::close`]                               |

#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reactor::Mode;
use reactor::socket::{Domain, SockAddr, Socket, Type};

use super::fd::Fd;
use super::stream::conn_methods;
use super::{each_addr, resolve};

fn domain(a: &SocketAddr) -> Domain {
    if a.is_ipv4() { Domain::Ipv4 } else { Domain::Ipv6 }
}

fn inet(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_inet().ok_or_else(|| io::Error::other("gort: not an internet address"))
}

/// One datagram operation in direction `mode`: holds the direction's lock (one reader and one
/// writer at a time, others queue in FIFO order), tries `op`, parks on EAGAIN.
///
/// A successful result never marks the socket drained (`short` is `|_| false`): a datagram
/// socket hands out one datagram per call, so a receive that filled less than the buffer says
/// nothing about whether more datagrams are queued, and a send that "fell short" cannot happen
/// (a datagram goes whole or not at all). Only EAGAIN proves the queue empty (or full).
pub(super) fn datagram_io<R>(
    fd: &Fd,
    mode: Mode,
    op: impl FnMut(&Socket) -> io::Result<R>,
) -> io::Result<R> {
    let _g = fd.lock(Some(mode))?;
    fd.io(mode, op, |_| false)
}

/// Go's `net.UDPConn`: a UDP socket whose calls park the calling task instead of its thread.
///
/// Clones ([`UdpSocket::try_clone`]) share the socket, as Go's `*UDPConn` copies do; `close`
/// through any of them closes it for all.
pub struct UdpSocket {
    fd: Arc<Fd>,
}

impl UdpSocket {
    /// Go's `net.ListenUDP("udp", addr)`: a socket bound to the first resolved address that
    /// works (port 0 picks a free port). `SO_BROADCAST` is on, as Go sets it on every datagram
    /// socket. Must be called inside a runtime.
    pub fn bind<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<UdpSocket> {
        each_addr(resolve(addr)?, |a| {
            let sock = Socket::new(domain(&a), Type::Datagram)?;
            sock.set_broadcast(true)?;
            sock.bind(&a.into())?;
            Ok(UdpSocket { fd: Fd::new(sock)? })
        })
    }

    /// Sets the default peer (`connect(2)` on a datagram socket: no packet is sent). After it,
    /// [`send`](UdpSocket::send) goes there and [`recv`](UdpSocket::recv) only takes datagrams
    /// from there. Tries each resolved address until one suits the socket's family.
    pub fn connect<A: ToSocketAddrs + Send + 'static>(&self, addr: A) -> io::Result<()> {
        let addrs = resolve(addr)?;
        let _g = self.fd.lock(None)?;
        each_addr(addrs, |a| self.fd.with(|s| s.connect(&a.into())))
    }

    /// Go's `Write` on a connected socket: sends `buf` as one datagram to the peer; parks while
    /// the send buffer is full. Returns `buf.len()`. An empty `buf` sends an empty datagram.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Write, |s| s.send(buf))
    }

    /// Go's `Read` on a connected socket: parks until a datagram comes, copies it into `buf`
    /// (the part that does not fit is lost) and returns its length as copied.
    ///
    /// An empty `buf` still waits for, and consumes, one datagram (as `recv(2)` and std do;
    /// Go's `Read` returns 0 at once there, its issue 15735, but Go's `ReadFrom` does not).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Read, |s| s.recv(buf))
    }

    /// Go's `WriteTo`: sends `buf` as one datagram to `addr` (its first resolved address: a
    /// datagram has no reply to tell whether another would have been better).
    pub fn send_to<A: ToSocketAddrs + Send + 'static>(
        &self,
        buf: &[u8],
        addr: A,
    ) -> io::Result<usize> {
        let Some(to) = resolve(addr)?.into_iter().next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "gort: no addresses to send data to",
            ));
        };
        let to = SockAddr::from(to);
        datagram_io(&self.fd, Mode::Write, |s| s.send_to(buf, &to))
    }

    /// Go's `ReadFrom`: parks until a datagram comes; copies it into `buf` (truncating) and
    /// returns the length copied and the sender. Zero-length datagrams are received as `0`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = datagram_io(&self.fd, Mode::Read, |s| s.recv_from(buf))?;
        Ok((n, inet(from)?))
    }

    /// Like [`recv`](UdpSocket::recv), but the datagram stays queued (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Read, |s| s.peek(buf))
    }

    /// Like [`recv_from`](UdpSocket::recv_from), but the datagram stays queued (`MSG_PEEK`).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = datagram_io(&self.fd, Mode::Read, |s| s.peek_from(buf))?;
        Ok((n, inet(from)?))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with(|s| s.local_addr()).and_then(inet)
    }

    /// The peer set by [`connect`](UdpSocket::connect) (`NotConnected` without one).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.with(|s| s.peer_addr()).and_then(inet)
    }

    /// `SO_BROADCAST`: may datagrams go to a broadcast address (on by default, as in Go).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.fd.with(|s| s.set_broadcast(on))
    }

    /// Whether `SO_BROADCAST` is on.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.fd.with(|s| s.broadcast())
    }

    /// `IP_TTL`: the time-to-live of outgoing IPv4 datagrams.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.with(|s| s.set_ttl(ttl))
    }

    /// The `IP_TTL` value.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.with(|s| s.ttl())
    }
}

conn_methods!(UdpSocket);
