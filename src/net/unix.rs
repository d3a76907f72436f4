//! Mirrors: net/unixsock.go (Go 1.19) — `UnixListener`, `UnixConn`, `ListenUnix`, `DialUnix`,
//! `ListenUnixgram`, `AcceptUnix`, `ReadFromUnix`, `WriteToUnix`, `SetUnlinkOnClose`;
//! `net/unixsock_posix.go` — `listenUnix`, `(*UnixListener).close` (unlink, then close);
//! `syscall.Socketpair` for the pairs.
//!
//! Invariants:
//! - Sockets are non-blocking and close-on-exec from birth and registered once (architecture
//!   decision 7); every wait goes through [`Fd`].
//! - A socket is registered with the runtime *before* it is bound, so a bind that would leave a
//!   file behind never happens outside a runtime.
//! - Binding a path that exists fails with `AddrInUse` (EADDRINUSE), as in Go: nothing here
//!   removes a file before binding. A path of 108 bytes or more, or one with a NUL, fails with
//!   `InvalidInput` before any system call.
//! - [`UnixListener::close`] removes the socket file the listener's `bind` created, once, before
//!   closing the fd (Go's unlink-on-close, on by default for listeners; see
//!   [`UnixListener::set_unlink_on_close`]). Dropping a listener without `close` leaves the file,
//!   as Go's finalizer does. Datagram sockets never remove their file (Go neither).
//! - [`UnixStream`] has [`TcpStream`](super::TcpStream)'s semantics: a `write` puts all its bytes
//!   in the socket before the next writer starts; a zero-length read or write returns `Ok(0)`
//!   at once; a deadline or error part-way through a write returns the bytes written so far.
//! - [`UnixDatagram`] has [`UdpSocket`](super::UdpSocket)'s: one datagram per call, message
//!   boundaries kept, zero-length datagrams are real datagrams.
//!
//! | Go                                        | gort                                        |
//! |-------------------------------------------|---------------------------------------------|
//! | `net.Listen("unix", path)`                | [`UnixListener::bind`], [`UnixListener::bind_addr`] |
//! | `ln.AcceptUnix()`                         | [`UnixListener::accept`], [`UnixListener::incoming`] |
//! | `net.Dial("unix", path)`                  | [`UnixStream::connect`], [`UnixStream::connect_addr`] |
//! | `syscall.Socketpair` + `net.FileConn`     | [`UnixStream::pair`], [`UnixDatagram::pair`] |
//! | `net.ListenUnixgram("unixgram", laddr)`   | [`UnixDatagram::bind`], [`UnixDatagram::unbound`] |
//! | `ReadFromUnix`, `WriteToUnix`             | [`UnixDatagram::recv_from`], [`UnixDatagram::send_to`] |
//! | `"@name"` (abstract, Linux)               | [`UnixAddr::abstract_name`] with the `*_addr` calls |
//! | `*net.UnixAddr`                           | [`UnixAddr`]                                |
//!
//! The stream half shares its reads, writes and connect with TCP (`stream.rs`).

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel, Ordering::Release};
use std::time::Instant;

use reactor::Mode;
use reactor::socket::{Domain, SockAddr, Socket, Type, UnixAddr};

use super::fd::Fd;
use super::stream::{conn_methods, stream_io};
use super::udp::datagram_io;

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

fn unix(a: SockAddr) -> io::Result<UnixAddr> {
    a.as_unix().copied().ok_or_else(|| io::Error::other("gort: not a Unix address"))
}

/// A new Unix socket, registered with the runtime (before any bind: see the invariants).
fn new_fd(ty: Type) -> io::Result<Arc<Fd>> {
    Fd::new(Socket::new(Domain::Unix, ty)?)
}

/// Go's `net.UnixListener`: a Unix stream socket accepting connections.
pub struct UnixListener {
    fd: Arc<Fd>,
    /// The file `bind` created (pathname addresses only).
    path: Option<PathBuf>,
    /// Remove `path` on the first `close` (Go's `unlink` + `unlinkOnce`).
    unlink: AtomicBool,
}

impl UnixListener {
    /// Go's `net.Listen("unix", path)`: binds a new socket file at `path` and listens. Fails
    /// with `AddrInUse` if `path` exists, `InvalidInput` if it is too long (108 bytes or more).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&UnixAddr::pathname(path)?)
    }

    /// Binds any Unix address: a pathname, an abstract name ([`UnixAddr::abstract_name`],
    /// Linux: no file, Go's `"@name"`), or [`UnixAddr::unnamed`] (the kernel picks an abstract
    /// name; read it back with [`local_addr`](UnixListener::local_addr)).
    pub fn bind_addr(addr: &UnixAddr) -> io::Result<UnixListener> {
        let fd = new_fd(Type::Stream)?;
        fd.with(|s| s.bind(&(*addr).into()))?;
        let path = addr.as_pathname().map(Path::to_path_buf);
        if let Err(e) = fd.with(|s| s.listen(BACKLOG)) {
            if let Some(p) = &path {
                let _ = std::fs::remove_file(p); // we just made it
            }
            return Err(e);
        }
        Ok(UnixListener { fd, path, unlink: AtomicBool::new(true) })
    }

    /// Go's `AcceptUnix`: parks until a connection comes, the listener closes, or its deadline
    /// passes. The address is the client's, usually [unnamed](UnixAddr::is_unnamed).
    pub fn accept(&self) -> io::Result<(UnixStream, UnixAddr)> {
        let _g = self.fd.lock(Some(Mode::Read))?;
        let (sock, addr) = self.fd.io(Mode::Read, Socket::accept, |_| false)?;
        Ok((UnixStream { fd: Fd::new(sock)? }, unix(addr)?))
    }

    /// Accepted connections, forever (errors included, as std's `incoming`).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<UnixAddr> {
        self.fd.with(|s| s.local_addr()).and_then(unix)
    }

    /// Go's `SetDeadline` on a listener: `accept` fails with `TimedOut` after `t`.
    pub fn set_deadline(&self, t: Option<Instant>) -> io::Result<()> {
        self.fd.set_deadline(Mode::Read, t)
    }

    /// Go's `SetUnlinkOnClose`: whether [`close`](UnixListener::close) removes the socket file
    /// (on by default). Has no effect for abstract or unnamed addresses.
    pub fn set_unlink_on_close(&self, on: bool) {
        self.unlink.store(on, Release);
    }

    /// Go's `Close`: removes the socket file (first call only, if unlink-on-close is on), then
    /// wakes every task blocked in `accept` with the closed error
    /// ([`is_closed`](super::is_closed)) and closes the fd.
    ///
    /// The `unlink(2)` runs on the calling worker, as Go runs it on its thread: it is the same
    /// kind of quick metadata call as the `bind(2)` that created the file.
    pub fn close(&self) -> io::Result<()> {
        if let Some(p) = &self.path
            && self.unlink.swap(false, AcqRel)
        {
            let _ = std::fs::remove_file(p); // Go ignores this error too
        }
        self.fd.close()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        d.field("fd", &self.fd.raw());
        if let Ok(a) = self.local_addr() {
            d.field("local", &a);
        }
        d.finish()
    }
}

/// The connections a listener accepts ([`UnixListener::incoming`]).
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// Go's `net.UnixConn` over a stream socket. Clones (`try_clone`) share the connection.
pub struct UnixStream {
    fd: Arc<Fd>,
}

impl UnixStream {
    /// Go's `net.Dial("unix", path)`. Fails with `InvalidInput` for a path of 108 bytes or
    /// more, `NotFound` if nothing is there, `ConnectionRefused` if nobody listens.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&UnixAddr::pathname(path)?)
    }

    /// Connects to any Unix address, e.g. an abstract name ([`UnixAddr::abstract_name`]).
    ///
    /// A Unix connect completes at once or fails at once; when the listener's backlog is full
    /// it fails with `WouldBlock` (EAGAIN), as Go's `Dial` does, rather than wait.
    pub fn connect_addr(addr: &UnixAddr) -> io::Result<UnixStream> {
        let stream = UnixStream { fd: new_fd(Type::Stream)? };
        stream.fd.connect(&(*addr).into())?;
        Ok(stream)
    }

    /// Two connected streams (`socketpair(AF_UNIX, SOCK_STREAM)`), both registered.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Type::Stream)?;
        Ok((UnixStream { fd: Fd::new(a)? }, UnixStream { fd: Fd::new(b)? }))
    }

    /// Adopts a std stream (made non-blocking here) into the runtime.
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream { fd: Fd::new(Socket::from_fd(OwnedFd::from(s))?)? })
    }

    /// The peer's address (unnamed for the client end of a connection and for pairs).
    pub fn peer_addr(&self) -> io::Result<UnixAddr> {
        self.fd.with(|s| s.peer_addr()).and_then(unix)
    }

    /// This end's address (unnamed unless it was bound).
    pub fn local_addr(&self) -> io::Result<UnixAddr> {
        self.fd.with(|s| s.local_addr()).and_then(unix)
    }
}

stream_io!(UnixStream);
conn_methods!(UnixStream);

/// Go's `net.UnixConn` over a datagram socket (`"unixgram"`): one message per call, boundaries
/// kept. Clones (`try_clone`) share the socket.
///
/// A send to a receiver whose queue is full parks. Connected, the kernel wakes the sender
/// when the peer's queue drains; through `send_to` it wakes it only when one of this socket's
/// own datagrams is consumed, so behind a queue full of other senders' datagrams it may stay
/// parked until its write deadline. Connect first (or set a write deadline) when the receiver
/// may fall behind; Go has the same limit.
pub struct UnixDatagram {
    fd: Arc<Fd>,
}

impl UnixDatagram {
    /// Go's `net.ListenUnixgram("unixgram", path)`: a datagram socket bound to a new socket
    /// file. Fails with `AddrInUse` if `path` exists. The file stays after `close` (Go's too).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&UnixAddr::pathname(path)?)
    }

    /// Binds any Unix address (pathname, abstract, or unnamed for a kernel-chosen name).
    pub fn bind_addr(addr: &UnixAddr) -> io::Result<UnixDatagram> {
        let fd = new_fd(Type::Datagram)?;
        fd.with(|s| s.bind(&(*addr).into()))?;
        Ok(UnixDatagram { fd })
    }

    /// A datagram socket bound to nothing: it can send (receivers see an unnamed sender) and
    /// [`connect`](UnixDatagram::connect).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram { fd: new_fd(Type::Datagram)? })
    }

    /// Two connected datagram sockets (`socketpair(AF_UNIX, SOCK_DGRAM)`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Type::Datagram)?;
        Ok((UnixDatagram { fd: Fd::new(a)? }, UnixDatagram { fd: Fd::new(b)? }))
    }

    /// Sets the default peer: [`send`](UnixDatagram::send) goes there and
    /// [`recv`](UnixDatagram::recv) only takes its datagrams.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.connect_addr(&UnixAddr::pathname(path)?)
    }

    /// [`connect`](UnixDatagram::connect) to any Unix address.
    pub fn connect_addr(&self, addr: &UnixAddr) -> io::Result<()> {
        let _g = self.fd.lock(None)?;
        self.fd.with(|s| s.connect(&(*addr).into()))
    }

    /// Sends `buf` as one datagram to the connected peer; parks while the peer's queue is full.
    /// An empty `buf` sends an empty datagram.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Write, |s| s.send(buf))
    }

    /// Parks until a datagram comes and copies it into `buf` (the part that does not fit is
    /// lost). An empty `buf` still waits for, and consumes, one datagram.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Read, |s| s.recv(buf))
    }

    /// Like [`recv`](UnixDatagram::recv), but the datagram stays queued (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        datagram_io(&self.fd, Mode::Read, |s| s.peek(buf))
    }

    /// Go's `WriteToUnix`: sends `buf` as one datagram to the socket bound at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        self.send_to_addr(buf, &UnixAddr::pathname(path)?)
    }

    /// [`send_to`](UnixDatagram::send_to) any Unix address.
    pub fn send_to_addr(&self, buf: &[u8], addr: &UnixAddr) -> io::Result<usize> {
        let to = SockAddr::from(*addr);
        datagram_io(&self.fd, Mode::Write, |s| s.send_to(buf, &to))
    }

    /// Go's `ReadFromUnix`: one datagram and its sender ([unnamed](UnixAddr::is_unnamed) when
    /// the sender is not bound).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, UnixAddr)> {
        let (n, from) = datagram_io(&self.fd, Mode::Read, |s| s.recv_from(buf))?;
        Ok((n, unix(from)?))
    }

    /// The address this socket is bound to (unnamed if none).
    pub fn local_addr(&self) -> io::Result<UnixAddr> {
        self.fd.with(|s| s.local_addr()).and_then(unix)
    }

    /// The connected peer's address (`NotConnected` without one).
    pub fn peer_addr(&self) -> io::Result<UnixAddr> {
        self.fd.with(|s| s.peer_addr()).and_then(unix)
    }
}

conn_methods!(UnixDatagram);
