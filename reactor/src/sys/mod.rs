//! The operating-system half of the netpoller: the only place in `reactor` that calls `libc`.
//!
//! Mirrors: the platform contract at the top of `runtime/netpoll.go` (Go 1.19), which every
//! backend (`netpoll_epoll.go`, `netpoll_kqueue.go`, ...) must provide:
//!
//! | Go                         | here                                  | what it does                                      |
//! |----------------------------|---------------------------------------|---------------------------------------------------|
//! | `netpollinit()`            | [`Epoll::new`] + [`Pipe::new`]        | create the epoll instance and the wake-up pipe    |
//! | `netpollopen(fd, pd)`      | [`Epoll::add`]                        | register `fd` once, both directions, edge-triggered |
//! | `netpollclose(fd)`         | [`Epoll::delete`]                     | `EPOLL_CTL_DEL`; must come before `close(fd)`     |
//! | `netpoll(delay)` (wait half) | [`Epoll::wait`]                     | `epoll_wait` with Go's millisecond rounding       |
//! | `netpollBreak()` (write half) | [`Pipe::write_byte`]               | one byte into the self-pipe                       |
//! | drain in `netpoll`         | [`Pipe::drain`]                       | empty the pipe after a blocking wait              |
//! | `netpollIsPollDescriptor`  | [`Epoll::fd`], [`Pipe::fds`]          | the poller's own fds, for tests                   |
//!
//! What the net layer needs ([`socket`], re-exported as `reactor::socket`; gort's `src/net/`
//! builds `TcpListener`, `TcpStream`, `UdpSocket` and the Unix types on it):
//!
//! | Go                                         | here                                   | what it does                                     |
//! |--------------------------------------------|----------------------------------------|--------------------------------------------------|
//! | `sysSocket` (`net/sock_cloexec.go`)        | [`socket::Socket::new`]                | `socket(SOCK_NONBLOCK\|SOCK_CLOEXEC)`            |
//! | `syscall.Socketpair`                       | [`socket::Socket::pair`]               | `socketpair(AF_UNIX, ...NONBLOCK\|CLOEXEC)`      |
//! | `newFileFD` (`net/file_unix.go`)           | [`socket::Socket::from_fd`]            | check `SO_TYPE`, set `O_NONBLOCK` + `FD_CLOEXEC`  |
//! | `accept` (`internal/poll/sock_cloexec.go`) | [`socket::Socket::accept`]             | `accept4(SOCK_NONBLOCK\|SOCK_CLOEXEC)`, EAGAIN → `WouldBlock` |
//! | `netFD.connect` (`net/fd_unix.go`)         | [`socket::Socket::connect`], [`socket::is_in_progress`], [`socket::Socket::take_error`] | non-blocking `connect`, then `SO_ERROR` |
//! | one syscall of `poll.FD.Read`/`Write`/...  | `recv`, `peek`, `send`, `*_vectored`, `recv_from`, `peek_from`, `send_to` | EINTR retried; sends use `MSG_NOSIGNAL` |
//! | `bind`, `listen`, `shutdown`, `getsockname`, `getpeername` | the methods of those names | one syscall each                     |
//! | `setDefaultSockopts`, `setNoDelay`, `setKeepAlive*`, `setLinger`, `set*Buffer` | [`socket::Socket`]'s `set_*`/getters | `setsockopt`/`getsockopt` |
//! | `syscall.Sockaddr`, `anyToSockaddr`        | [`socket::SockAddr`], [`socket::UnixAddr`] | ↔ `sockaddr_in`/`_in6`/`_un` in a `sockaddr_storage` |
//!
//! Everything above this module is portable Rust without `unsafe`: the portable files speak of
//! [`Event`]s (a token plus [`Readiness`] flags), never of `epoll_event`.
//!
//! There is one `cfg` switch, here. Only Linux epoll is implemented; any other target stops the
//! build with a message instead of compiling silent stubs.

#[cfg(not(target_os = "linux"))]
compile_error!("reactor: only Linux (epoll) is implemented; see reactor/src/sys/mod.rs");

/// Calls a libc function and turns its `-1` return into `io::Error::last_os_error()`.
///
/// The one pattern of FFI in the crate (mio's `syscall!`). The macro expands to an `unsafe`
/// block: each use site carries the `// SAFETY:` comment that says why its arguments are valid.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the caller of the macro documents why the arguments are valid for `$fn`.
        #[allow(clippy::undocumented_unsafe_blocks)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

mod epoll;
mod pipe;
pub mod signal;
pub mod socket;

pub use epoll::{EVENTS_CAPACITY, Epoll, Event, Events, Readiness};
pub use pipe::{Pipe, Written};
