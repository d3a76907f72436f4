//! Socket options: `setsockopt`/`getsockopt`, one pair per option.
//!
//! Mirrors: `net/sockopt_*.go`, `net/tcpsockopt_*.go`, `net/ipsockopt_posix.go` (Go 1.19) —
//! `setDefaultSockopts` (`IPV6_V6ONLY`, `SO_BROADCAST`), `setDefaultListenerSockopts`
//! (`SO_REUSEADDR`), `setReadBuffer`, `setWriteBuffer`, `setKeepAlive`, `setLinger`,
//! `setNoDelay`, `setKeepAlivePeriod`, `IP_TTL`; and `getsockopt(SO_ERROR)` from
//! `net/fd_unix.go` `connect`.
//!
//! Invariants:
//! - Options are ints (booleans are 0/1) except `SO_LINGER` (a `struct linger`); the length
//!   passed is always `size_of` the value.
//! - Durations go to the kernel in whole seconds, rounded up (Go's `roundDurationUp`), so a
//!   short non-zero duration never becomes 0 ("off" or "reset") by accident.

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::{Socket, Type};

/// Go's `defaultTCPKeepAlive`: the keep-alive period of accepted and dialed TCP connections.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// The values an option may hold: plain integers, so any bytes the kernel writes are valid.
trait OptValue: Copy {
    const ZERO: Self;
}

impl OptValue for libc::c_int {
    const ZERO: Self = 0;
}

impl OptValue for libc::linger {
    const ZERO: Self = libc::linger { l_onoff: 0, l_linger: 0 };
}

/// Whole seconds, rounded up, at least `min`, as a C int.
fn secs_up(d: Duration, min: libc::c_int) -> libc::c_int {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX).max(min)
}

/// A byte count as a C int, saturating.
fn int_of(n: usize) -> libc::c_int {
    libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX)
}

impl Socket {
    fn setsockopt<T: OptValue>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: T,
    ) -> io::Result<()> {
        let len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `fd` is live; `value` is readable for `len` bytes for the whole call.
        syscall!(setsockopt(self.as_raw_fd(), level, name, (&raw const value).cast(), len))?;
        Ok(())
    }

    fn getsockopt<T: OptValue>(&self, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
        let mut value = T::ZERO;
        let mut len = size_of::<T>() as libc::socklen_t;
        let ptr = (&raw mut value).cast();
        // SAFETY: `fd` is live; `value` is writable for `len` bytes and any bytes are a valid T.
        syscall!(getsockopt(self.as_raw_fd(), level, name, ptr, &mut len))?;
        Ok(value)
    }

    fn set_flag(&self, level: libc::c_int, name: libc::c_int, on: bool) -> io::Result<()> {
        self.setsockopt(level, name, libc::c_int::from(on))
    }

    fn flag(&self, level: libc::c_int, name: libc::c_int) -> io::Result<bool> {
        Ok(self.getsockopt::<libc::c_int>(level, name)? != 0)
    }

    /// The pending error, cleared by reading it (`getsockopt(SO_ERROR)`): how a non-blocking
    /// [`connect`](Socket::connect) reports its outcome once the socket is writable.
    /// `Ok(None)`: no error (connected, if a connect was in progress).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let errno: libc::c_int = self.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR)?;
        Ok((errno != 0).then(|| io::Error::from_raw_os_error(errno)))
    }

    pub(super) fn socket_type_raw(&self) -> io::Result<libc::c_int> {
        self.getsockopt(libc::SOL_SOCKET, libc::SO_TYPE)
    }

    /// `SO_TYPE`: what kind of socket this is (Go's `FileConn` switches on it). A type this
    /// module does not know (e.g. `SOCK_RAW`) is an `InvalidData` error.
    pub fn socket_type(&self) -> io::Result<Type> {
        match self.socket_type_raw()? {
            libc::SOCK_STREAM => Ok(Type::Stream),
            libc::SOCK_DGRAM => Ok(Type::Datagram),
            libc::SOCK_SEQPACKET => Ok(Type::SeqPacket),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("socket type {other} is not supported"),
            )),
        }
    }

    /// `TCP_NODELAY`: send small segments at once instead of coalescing them (Nagle off).
    /// Go turns it on for every TCP connection.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.set_flag(libc::IPPROTO_TCP, libc::TCP_NODELAY, on)
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.flag(libc::IPPROTO_TCP, libc::TCP_NODELAY)
    }

    /// TCP keep-alive (Go's `setKeepAlive` + `setKeepAlivePeriod`). `None` turns it off.
    /// `Some(period)` turns `SO_KEEPALIVE` on and sets both the idle time before the first
    /// probe (`TCP_KEEPIDLE`) and the interval between probes (`TCP_KEEPINTVL`) to `period`,
    /// rounded up to whole seconds, at least 1 s (the kernel refuses more than 32767 s).
    /// Go's default period is [`DEFAULT_KEEPALIVE`].
    pub fn set_keepalive(&self, period: Option<Duration>) -> io::Result<()> {
        let Some(period) = period else {
            return self.set_flag(libc::SOL_SOCKET, libc::SO_KEEPALIVE, false);
        };
        let secs = secs_up(period, 1);
        self.set_flag(libc::SOL_SOCKET, libc::SO_KEEPALIVE, true)?;
        self.setsockopt(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)?;
        self.setsockopt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)
    }

    /// `None` if `SO_KEEPALIVE` is off, else the idle time before the first probe
    /// (`TCP_KEEPIDLE`).
    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        if !self.flag(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? {
            return Ok(None);
        }
        let secs: libc::c_int = self.getsockopt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?;
        Ok(Some(Duration::from_secs(secs.max(0) as u64)))
    }

    /// `SO_REUSEADDR`: a listener may bind a port that still has connections in TIME_WAIT.
    /// Go sets it on every listening TCP socket (`setDefaultListenerSockopts`).
    pub fn set_reuse_address(&self, on: bool) -> io::Result<()> {
        self.set_flag(libc::SOL_SOCKET, libc::SO_REUSEADDR, on)
    }

    /// Whether `SO_REUSEADDR` is on.
    pub fn reuse_address(&self) -> io::Result<bool> {
        self.flag(libc::SOL_SOCKET, libc::SO_REUSEADDR)
    }

    /// `IPV6_V6ONLY` (IPv6 sockets only, before `bind`): refuse IPv4-mapped traffic. Go sets
    /// it to `false` for wildcard listens that serve both families, `true` for `"tcp6"`.
    pub fn set_only_v6(&self, on: bool) -> io::Result<()> {
        self.set_flag(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)
    }

    /// Whether `IPV6_V6ONLY` is on.
    pub fn only_v6(&self) -> io::Result<bool> {
        self.flag(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
    }

    /// `SO_BROADCAST`: a datagram socket may send to a broadcast address. Go sets it on every
    /// UDP socket (`setDefaultSockopts`).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.set_flag(libc::SOL_SOCKET, libc::SO_BROADCAST, on)
    }

    /// Whether `SO_BROADCAST` is on.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.flag(libc::SOL_SOCKET, libc::SO_BROADCAST)
    }

    /// `SO_LINGER` (Go's `SetLinger`). `None`: close returns at once and the kernel sends the
    /// unsent data in the background (the default). `Some(d)`: on a blocking socket close would
    /// wait up to `d` (rounded up to seconds) for the data to go. `Some(ZERO)`: close discards
    /// unsent data and sends a reset (RST) instead of a FIN.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let value = match linger {
            None => libc::linger { l_onoff: 0, l_linger: 0 },
            Some(d) => libc::linger { l_onoff: 1, l_linger: secs_up(d, 0) },
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_LINGER, value)
    }

    /// The `SO_LINGER` setting, as [`Socket::set_linger`] takes it.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        let value: libc::linger = self.getsockopt(libc::SOL_SOCKET, libc::SO_LINGER)?;
        Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
    }

    /// `SO_SNDBUF` (Go's `SetWriteBuffer`). Linux doubles the value for its bookkeeping and
    /// caps it at `net.core.wmem_max`; the getter returns the doubled value.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, int_of(bytes))
    }

    /// `SO_SNDBUF` as the kernel holds it.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        let n: libc::c_int = self.getsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        Ok(n.max(0) as usize)
    }

    /// `SO_RCVBUF` (Go's `SetReadBuffer`); doubled and capped (`net.core.rmem_max`) as
    /// [`Socket::set_send_buffer_size`].
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, int_of(bytes))
    }

    /// `SO_RCVBUF` as the kernel holds it.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let n: libc::c_int = self.getsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        Ok(n.max(0) as usize)
    }

    /// `IP_TTL`: the time-to-live of outgoing IPv4 packets (1..=255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.setsockopt(libc::IPPROTO_IP, libc::IP_TTL, int_of(ttl as usize))
    }

    /// `IP_TTL` as set (64 by default on Linux).
    pub fn ttl(&self) -> io::Result<u32> {
        let ttl: libc::c_int = self.getsockopt(libc::IPPROTO_IP, libc::IP_TTL)?;
        Ok(ttl.max(0) as u32)
    }
}
