//! Sockets: the system calls under Go's `net` package, as a small safe API.
//!
//! Mirrors: `net/sock_cloexec.go`, `internal/poll/sock_cloexec.go`, `net/sock_posix.go`,
//! `net/fd_unix.go`, `internal/poll/fd_unix.go` (Go 1.19) — `sysSocket`, `accept` (`accept4`),
//! `socket`/`listenStream`/`listenDatagram`, `netFD.connect`, and one syscall of each
//! `FD.Read`, `Write`, `ReadFrom`, `WriteTo`, `Writev`. Socket options (`net/sockopt_*.go`) are
//! in `opt.rs`, the `syscall` sockaddr conversions in `addr.rs`.
//!
//! This is the bottom of the net layer: each method is one system call (two or three for
//! [`Socket::from_fd`] and the socket options), never a wait. Waiting for readiness is the
//! poller's job ([`Poller`](crate::Poller)); the net layer (gort's `src/net/`) loops "try the
//! call; on `WouldBlock` park on the poll descriptor; try again", as Go's `poll.FD` does.
//!
//! Invariants:
//! - Every fd a [`Socket`] owns is `O_NONBLOCK|O_CLOEXEC`: born so (`SOCK_NONBLOCK|SOCK_CLOEXEC`
//!   on `socket`, `socketpair`, `accept4`; architecture decision 7) or made so by
//!   [`Socket::from_fd`]. No call here blocks a thread; one that would returns
//!   `ErrorKind::WouldBlock` (EAGAIN).
//! - Every send passes `MSG_NOSIGNAL`: writing to a reset or shut-down peer returns EPIPE (or
//!   ECONNRESET) and never raises SIGPIPE, whatever the process's SIGPIPE disposition.
//! - EINTR is retried inside every call (Go's `ignoringEINTRIO`), except `connect`, where a
//!   retry would be wrong (see [`Socket::connect`]).
//! - The fd is closed once, when the [`Socket`] drops. Deregistering it from epoll first is
//!   the caller's job ([`Poller::close`](crate::Poller::close)).
//!
//! | call                        | EINTR          | EAGAIN                 | special                      |
//! |-----------------------------|----------------|------------------------|------------------------------|
//! | [`Socket::accept`]          | retried        | `WouldBlock`           | ECONNABORTED retried (Go)    |
//! | [`Socket::connect`]         | returned       | returned (Unix: backlog full) | EINPROGRESS: see [`is_in_progress`]; EISCONN = `Ok` |
//! | `recv*`, `peek*`            | retried        | `WouldBlock`           | `Ok(0)` = EOF on streams     |
//! | `send*`                     | retried        | `WouldBlock`           | `MSG_NOSIGNAL`               |
//!
//! # Socket options
//!
//! The `set_*`/getter pairs (`setsockopt`/`getsockopt`) live in `opt.rs`: [`Socket::set_nodelay`],
//! [`Socket::set_keepalive`], [`Socket::set_reuse_address`], [`Socket::set_only_v6`],
//! [`Socket::set_broadcast`], [`Socket::set_linger`], [`Socket::set_send_buffer_size`],
//! [`Socket::set_recv_buffer_size`], [`Socket::set_ttl`], and [`Socket::take_error`].

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

mod addr;
mod opt;
#[cfg(test)]
mod tests;

pub use addr::{SUN_PATH_LEN, SockAddr, UnixAddr};
pub use opt::DEFAULT_KEEPALIVE;

use addr::RawAddr;

/// The protocol family of a socket (`AF_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// `AF_INET`.
    Ipv4,
    /// `AF_INET6` (dual-stack unless [`Socket::set_only_v6`]).
    Ipv6,
    /// `AF_UNIX`.
    Unix,
}

impl Domain {
    fn raw(self) -> libc::c_int {
        match self {
            Domain::Ipv4 => libc::AF_INET,
            Domain::Ipv6 => libc::AF_INET6,
            Domain::Unix => libc::AF_UNIX,
        }
    }
}

/// The kind of socket (`SOCK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `SOCK_STREAM`: TCP, or a Unix stream (Go's `"tcp"`, `"unix"`).
    Stream,
    /// `SOCK_DGRAM`: UDP, or Unix datagrams (Go's `"udp"`, `"unixgram"`).
    Datagram,
    /// `SOCK_SEQPACKET`: Unix only, records over a connection (Go's `"unixpacket"`).
    SeqPacket,
}

impl Type {
    fn raw(self) -> libc::c_int {
        match self {
            Type::Stream => libc::SOCK_STREAM,
            Type::Datagram => libc::SOCK_DGRAM,
            Type::SeqPacket => libc::SOCK_SEQPACKET,
        }
    }
}

/// Whether a [`Socket::connect`] error means "the connection is being set up; wait for the
/// socket to become writable, then ask [`Socket::take_error`]".
///
/// True for EINPROGRESS, EALREADY and EINTR: Go's `netFD.connect` treats the three alike,
/// because after an interrupted `connect` the kernel goes on connecting in the background.
pub fn is_in_progress(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY | libc::EINTR))
}

/// Blocks the calling *thread* until `fd` is readable (or writable), with `poll(2)`: the way a
/// plain OS thread outside the runtime waits on a runtime socket. Returns `false` when
/// `timeout` passed first. EINTR restarts the wait with the time that is left.
pub fn wait_fd(
    fd: RawFd,
    readable: bool,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    let events = if readable { libc::POLLIN | libc::POLLRDHUP } else { libc::POLLOUT };
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd on our stack, and we pass a count of 1.
        match syscall!(poll(&mut pfd, 1, ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A socket file descriptor, non-blocking and close-on-exec; closed on drop.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

/// Takes ownership of an fd the kernel just returned.
///
/// # Safety
/// `fd` must be a newly created, open descriptor that nothing else owns or will close.
unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller passes a fresh fd owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Runs `f` until it fails with something other than EINTR (Go's `ignoringEINTRIO`).
fn ignoring_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return res,
        }
    }
}

/// `SOCK_NONBLOCK|SOCK_CLOEXEC`: every fd this module creates carries both (decision 7).
const NONBLOCK_CLOEXEC: libc::c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

/// The most buffers one `readv`/`sendmsg` takes (`UIO_MAXIOV`, Go's 1024 in `Writev`).
const MAX_IOV: usize = libc::UIO_MAXIOV as usize;

impl Socket {
    /// A new socket (Go's `sysSocket`): `socket(domain, ty|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)`.
    pub fn new(domain: Domain, ty: Type) -> io::Result<Socket> {
        // SAFETY: socket takes three integers and returns a new fd or -1.
        let fd = syscall!(socket(domain.raw(), ty.raw() | NONBLOCK_CLOEXEC, 0))?;
        // SAFETY: `fd` was just created by socket.
        Ok(Socket { fd: unsafe { owned(fd) } })
    }

    /// Two connected Unix sockets (`syscall.Socketpair`): `socketpair(AF_UNIX, ty|NONBLOCK|CLOEXEC)`.
    pub fn pair(ty: Type) -> io::Result<(Socket, Socket)> {
        let mut fds = [-1 as libc::c_int; 2];
        // SAFETY: `fds` is a writable array of two c_ints, as socketpair requires.
        syscall!(socketpair(libc::AF_UNIX, ty.raw() | NONBLOCK_CLOEXEC, 0, fds.as_mut_ptr()))?;
        // SAFETY: fds[0] was just created by socketpair.
        let a = Socket { fd: unsafe { owned(fds[0]) } };
        // SAFETY: as above, for fds[1].
        let b = Socket { fd: unsafe { owned(fds[1]) } };
        Ok((a, b))
    }

    /// Adopts a socket made elsewhere (Go's `net.FileConn`/`FileListener` path): checks that
    /// it is a socket (`ENOTSOCK` otherwise), then sets `O_NONBLOCK` and `FD_CLOEXEC` if
    /// missing.
    ///
    /// `O_NONBLOCK` belongs to the open file description: every `dup` of this fd (in this or
    /// another process) becomes non-blocking too.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Socket> {
        let socket = Socket { fd };
        // 1. Is it a socket? SO_TYPE answers for any socket and fails with ENOTSOCK otherwise.
        socket.socket_type_raw()?;
        let fd = socket.fd.as_raw_fd();
        // 2. Non-blocking: a file-status flag (F_GETFL/F_SETFL).
        // SAFETY: `fd` is live; F_GETFL takes no argument.
        let status = syscall!(fcntl(fd, libc::F_GETFL))?;
        if status & libc::O_NONBLOCK == 0 {
            // SAFETY: `fd` is live; F_SETFL takes an int of flags.
            syscall!(fcntl(fd, libc::F_SETFL, status | libc::O_NONBLOCK))?;
        }
        // 3. Close-on-exec: a descriptor flag (F_GETFD/F_SETFD).
        // SAFETY: `fd` is live; F_GETFD takes no argument.
        let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
        if flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: `fd` is live; F_SETFD takes an int of flags.
            syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
        }
        Ok(socket)
    }

    /// Gives the fd back (still non-blocking and close-on-exec).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// `bind(2)`. Binding a Unix socket to [`UnixAddr::unnamed`] autobinds an abstract name.
    pub fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        let raw = RawAddr::from_addr(addr);
        // SAFETY: `fd` is live; `raw` holds a valid sockaddr of length `raw.len()`.
        syscall!(bind(self.fd.as_raw_fd(), raw.as_ptr(), raw.len()))?;
        Ok(())
    }

    /// `listen(2)`. Go passes `/proc/sys/net/core/somaxconn` (read once by the net layer);
    /// the kernel clamps larger values to it.
    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        // SAFETY: `fd` is live; backlog is an int.
        syscall!(listen(self.fd.as_raw_fd(), backlog))?;
        Ok(())
    }

    /// Takes one connection off the queue: `accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)`, with the
    /// peer's address.
    ///
    /// An empty queue is `ErrorKind::WouldBlock`. EINTR and ECONNABORTED (a connection reset
    /// while queued: "a silly error", Go's `FD.Accept`) are retried here.
    pub fn accept(&self) -> io::Result<(Socket, SockAddr)> {
        let mut raw = RawAddr::empty();
        loop {
            let (addr, len) = raw.as_out();
            // SAFETY: `fd` is live; `addr`/`len` point to `raw`'s storage and its length,
            // both writable and alive for the call.
            match syscall!(accept4(self.fd.as_raw_fd(), addr, len, NONBLOCK_CLOEXEC)) {
                Ok(fd) => {
                    // SAFETY: `fd` was just created by accept4.
                    let socket = Socket { fd: unsafe { owned(fd) } };
                    return Ok((socket, raw.to_addr()?));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts connecting (`connect(2)` on a non-blocking socket).
    ///
    /// - `Ok(())`: connected (always so for datagram sockets; also when the socket was
    ///   connected already, EISCONN, as in Go).
    /// - `Err(e)` with [`is_in_progress(&e)`](is_in_progress) (EINPROGRESS, EALREADY, or
    ///   EINTR): the kernel goes on connecting. Do not call `connect` again; wait until the
    ///   socket is writable, then [`Socket::take_error`]: `None` means connected (Go then
    ///   confirms with `getpeername`, i.e. [`Socket::peer_addr`], against spurious wake-ups),
    ///   `Some(e)` is the failure (ECONNREFUSED, ETIMEDOUT, ...).
    /// - Any other `Err`: failed now (ECONNREFUSED may come here directly on loopback;
    ///   EAGAIN on a Unix socket means the listener's backlog is full).
    pub fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        let raw = RawAddr::from_addr(addr);
        // SAFETY: `fd` is live; `raw` holds a valid sockaddr of length `raw.len()`.
        match syscall!(connect(self.fd.as_raw_fd(), raw.as_ptr(), raw.len())) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EISCONN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `recv(2)`: reads what is there, up to `buf.len()`. `Ok(0)` is EOF on a stream (or an
    /// empty datagram).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_with_flags(buf, 0)
    }

    /// Like [`Socket::recv`], but leaves the data queued (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_with_flags(buf, libc::MSG_PEEK)
    }

    fn recv_with_flags(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
        ignoring_eintr(|| {
            // SAFETY: `fd` is live; `buf` is writable for `buf.len()` bytes.
            let n = syscall!(recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags))?;
            Ok(n as usize)
        })
    }

    /// Scatter read: `readv(2)` into up to 1024 buffers (`UIO_MAXIOV`), in order.
    pub fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let count = bufs.len().min(MAX_IOV) as libc::c_int;
        ignoring_eintr(|| {
            // SAFETY: `fd` is live; `IoSliceMut` is guaranteed ABI-compatible with `iovec`, and
            // the first `count` entries each describe a writable buffer borrowed for the call.
            let n = syscall!(readv(self.fd.as_raw_fd(), bufs.as_mut_ptr().cast(), count))?;
            Ok(n as usize)
        })
    }

    /// `send(2)` with `MSG_NOSIGNAL`: writes what fits, returns how much.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        ignoring_eintr(|| {
            let (fd, flags) = (self.fd.as_raw_fd(), libc::MSG_NOSIGNAL);
            // SAFETY: `fd` is live; `buf` is readable for `buf.len()` bytes.
            let n = syscall!(send(fd, buf.as_ptr().cast(), buf.len(), flags))?;
            Ok(n as usize)
        })
    }

    /// Gather write: `sendmsg(2)` with `MSG_NOSIGNAL` from up to 1024 buffers. (`writev` would
    /// do the same but cannot take `MSG_NOSIGNAL`.)
    pub fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: msghdr is plain integers and pointers (glibc/musl add private padding): all
        // zeros is valid, and means "no address, no control data".
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is ABI-compatible with `iovec`; sendmsg only reads through `msg_iov`.
        msg.msg_iov = bufs.as_ptr().cast::<libc::iovec>().cast_mut();
        msg.msg_iovlen = bufs.len().min(MAX_IOV) as _;
        ignoring_eintr(|| {
            // SAFETY: `fd` is live; `msg` points to `msg_iovlen` iovecs describing readable
            // buffers borrowed for the call.
            let n = syscall!(sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?;
            Ok(n as usize)
        })
    }

    /// `recvfrom(2)`: one datagram and its sender. A datagram longer than `buf` is truncated
    /// (the rest is lost, as in Go's `ReadFrom`). An unbound Unix sender reads as
    /// [`UnixAddr::unnamed`].
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
        self.recv_from_with_flags(buf, 0)
    }

    /// Like [`Socket::recv_from`], but leaves the datagram queued (`MSG_PEEK`).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
        self.recv_from_with_flags(buf, libc::MSG_PEEK)
    }

    fn recv_from_with_flags(
        &self,
        buf: &mut [u8],
        flags: libc::c_int,
    ) -> io::Result<(usize, SockAddr)> {
        let mut raw = RawAddr::empty();
        let n = ignoring_eintr(|| {
            let (addr, len) = raw.as_out();
            let (fd, ptr) = (self.fd.as_raw_fd(), buf.as_mut_ptr().cast());
            // SAFETY: `fd` is live; `buf` is writable for `buf.len()` bytes; `addr`/`len` point
            // to `raw`'s storage and its length, writable and alive for the call.
            let n = syscall!(recvfrom(fd, ptr, buf.len(), flags, addr, len))?;
            Ok(n as usize)
        })?;
        Ok((n, raw.to_addr()?))
    }

    /// `sendto(2)` with `MSG_NOSIGNAL`: one datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        let raw = RawAddr::from_addr(addr);
        ignoring_eintr(|| {
            let (fd, ptr, flags) = (self.fd.as_raw_fd(), buf.as_ptr().cast(), libc::MSG_NOSIGNAL);
            // SAFETY: `fd` is live; `buf` is readable for `buf.len()` bytes; `raw` holds a valid
            // sockaddr of length `raw.len()`.
            let n = syscall!(sendto(fd, ptr, buf.len(), flags, raw.as_ptr(), raw.len()))?;
            Ok(n as usize)
        })
    }

    /// `shutdown(2)` (Go's `CloseRead`/`CloseWrite`): after `Write` the peer reads EOF once it
    /// has read everything sent before.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: `fd` is live; `how` is one of the SHUT_* constants.
        syscall!(shutdown(self.fd.as_raw_fd(), how))?;
        Ok(())
    }

    /// `getsockname(2)`: the address this socket is bound to.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        let mut raw = RawAddr::empty();
        let (addr, len) = raw.as_out();
        // SAFETY: `fd` is live; `addr`/`len` point to `raw`'s storage and its length.
        syscall!(getsockname(self.fd.as_raw_fd(), addr, len))?;
        raw.to_addr()
    }

    /// `getpeername(2)`: the address of the connected peer (ENOTCONN if there is none).
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        let mut raw = RawAddr::empty();
        let (addr, len) = raw.as_out();
        // SAFETY: `fd` is live; `addr`/`len` point to `raw`'s storage and its length.
        syscall!(getpeername(self.fd.as_raw_fd(), addr, len))?;
        raw.to_addr()
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Socket> for OwnedFd {
    fn from(socket: Socket) -> OwnedFd {
        socket.fd
    }
}
