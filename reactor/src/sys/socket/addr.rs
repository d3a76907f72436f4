//! Socket addresses: Rust's `SocketAddr` and Unix addresses ↔ the kernel's `sockaddr_*` structs.
//!
//! Mirrors: `syscall/syscall_linux.go` (Go 1.19) — `(*SockaddrInet4).sockaddr`,
//! `(*SockaddrInet6).sockaddr`, `(*SockaddrUnix).sockaddr` and `anyToSockaddr`.
//!
//! Invariants:
//! - An address goes to the kernel inside a zeroed `sockaddr_storage` ([`RawAddr`]), with the
//!   exact length of the struct it holds (`size_of::<sockaddr_in>()`, ...): padding and
//!   `sin_zero` are always zero.
//! - Ports and IPv4 addresses are big-endian in the kernel structs; `sin6_flowinfo` and
//!   `sin6_scope_id` pass through unchanged, as in std and Go.
//! - Unix address lengths (unix(7)), `sun_path` being 108 bytes:
//!
//! | kind     | `sun_path` holds          | length given to the kernel      | longest         |
//! |----------|---------------------------|---------------------------------|-----------------|
//! | pathname | path bytes, then a NUL    | family + path + 1               | 107 path bytes  |
//! | abstract | a NUL, then the name      | family + 1 + name (no final NUL)| 107 name bytes  |
//! | unnamed  | nothing                   | family only                     | —               |
//!
//! The only `unsafe` here is viewing the storage as the struct its family says (two helpers).

use std::ffi::OsStr;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::mem::{self, offset_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Domain;

/// Bytes in `sockaddr_un.sun_path` on Linux: 108.
pub const SUN_PATH_LEN: usize =
    size_of::<libc::sockaddr_un>() - offset_of!(libc::sockaddr_un, sun_path);

/// Where `sun_path` starts: after the 2-byte family.
const SUN_PATH_OFFSET: usize = offset_of!(libc::sockaddr_un, sun_path);

/// An address a socket binds to, connects to, or receives from (Go's `syscall.Sockaddr`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// IPv4 or IPv6: `sockaddr_in` / `sockaddr_in6`.
    Inet(SocketAddr),
    /// A Unix-domain address: `sockaddr_un`.
    Unix(UnixAddr),
}

impl SockAddr {
    /// The Internet address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SockAddr::Inet(a) => Some(*a),
            SockAddr::Unix(_) => None,
        }
    }

    /// The Unix address, if this is one.
    pub fn as_unix(&self) -> Option<&UnixAddr> {
        match self {
            SockAddr::Unix(a) => Some(a),
            SockAddr::Inet(_) => None,
        }
    }

    /// The domain a socket needs to use this address (Go's `favoriteAddrFamily`, simplified).
    pub fn domain(&self) -> Domain {
        match self {
            SockAddr::Inet(SocketAddr::V4(_)) => Domain::Ipv4,
            SockAddr::Inet(SocketAddr::V6(_)) => Domain::Ipv6,
            SockAddr::Unix(_) => Domain::Unix,
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> SockAddr {
        SockAddr::Inet(a)
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(a: SocketAddrV4) -> SockAddr {
        SockAddr::Inet(a.into())
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(a: SocketAddrV6) -> SockAddr {
        SockAddr::Inet(a.into())
    }
}

impl From<UnixAddr> for SockAddr {
    fn from(a: UnixAddr) -> SockAddr {
        SockAddr::Unix(a)
    }
}

/// `127.0.0.1:80`, `[::1]:80`, `/tmp/sock`, `@name` (abstract, as Go prints it) or `(unnamed)`.
impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(a) => a.fmt(f),
            SockAddr::Unix(a) => a.fmt(f),
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(a) => write!(f, "Inet({a:?})"),
            SockAddr::Unix(a) => write!(f, "Unix({a:?})"),
        }
    }
}

/// A Unix-domain socket address: a pathname, an abstract name (Linux), or unnamed.
///
/// Stored as the meaningful bytes of `sun_path` (no trailing NUL for a pathname), so it is
/// `Copy` and reading it allocates nothing.
#[derive(Clone, Copy)]
pub struct UnixAddr {
    /// `path[..len]`: empty (unnamed), a NUL then the name (abstract), or the path bytes.
    path: [u8; SUN_PATH_LEN],
    /// How many bytes of `path` are used; the rest are zero.
    len: usize,
}

/// The three kinds of Unix address, borrowed.
enum Kind<'a> {
    Unnamed,
    Pathname(&'a [u8]),
    Abstract(&'a [u8]),
}

impl UnixAddr {
    /// The unnamed address: what an unbound socket, or a `socketpair` end, has.
    ///
    /// Binding a stream or datagram socket to it makes Linux "autobind" a fresh abstract name.
    pub fn unnamed() -> UnixAddr {
        UnixAddr { path: [0; SUN_PATH_LEN], len: 0 }
    }

    /// A filesystem path. Fails with `InvalidInput` if the path is empty, contains a NUL, or
    /// has 108 bytes or more (it must fit `sun_path` with its terminating NUL).
    pub fn pathname<P: AsRef<Path>>(path: P) -> io::Result<UnixAddr> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(invalid("empty Unix socket path (use UnixAddr::unnamed)".into()));
        }
        if bytes.contains(&0) {
            return Err(invalid("Unix socket path contains a NUL byte".into()));
        }
        if bytes.len() >= SUN_PATH_LEN {
            return Err(invalid(format!(
                "Unix socket path is {} bytes; it must be shorter than {SUN_PATH_LEN} bytes \
                 (sun_path holds {SUN_PATH_LEN} bytes including the terminating NUL)",
                bytes.len()
            )));
        }
        Ok(UnixAddr::from_bytes(bytes))
    }

    /// An abstract name (Linux): no file, gone when the last socket bound to it closes.
    /// `name` excludes the leading NUL; at most 107 bytes (`InvalidInput` otherwise).
    pub fn abstract_name(name: &[u8]) -> io::Result<UnixAddr> {
        if name.len() >= SUN_PATH_LEN {
            return Err(invalid(format!(
                "abstract Unix socket name is {} bytes; at most {} fit in sun_path \
                 ({SUN_PATH_LEN} bytes, the first of which is the NUL marker)",
                name.len(),
                SUN_PATH_LEN - 1
            )));
        }
        let mut addr = UnixAddr::unnamed();
        addr.path[1..=name.len()].copy_from_slice(name);
        addr.len = 1 + name.len();
        Ok(addr)
    }

    /// The path, if this is a pathname address.
    pub fn as_pathname(&self) -> Option<&Path> {
        match self.kind() {
            Kind::Pathname(p) => Some(Path::new(OsStr::from_bytes(p))),
            _ => None,
        }
    }

    /// The name without its leading NUL, if this is an abstract address.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        match self.kind() {
            Kind::Abstract(name) => Some(name),
            _ => None,
        }
    }

    /// Whether this is the unnamed address.
    pub fn is_unnamed(&self) -> bool {
        matches!(self.kind(), Kind::Unnamed)
    }

    /// `sun_path` bytes as they are meant: a pathname ends at its first NUL (the kernel may or
    /// may not count the NUL in the length it returns, unix(7)); an abstract name is all of them.
    fn from_bytes(bytes: &[u8]) -> UnixAddr {
        let bytes = match bytes.first() {
            Some(0) => bytes,
            _ => bytes.split(|&b| b == 0).next().unwrap_or_default(),
        };
        let mut addr = UnixAddr::unnamed();
        addr.path[..bytes.len()].copy_from_slice(bytes);
        addr.len = bytes.len();
        addr
    }

    fn kind(&self) -> Kind<'_> {
        match &self.path[..self.len] {
            [] => Kind::Unnamed,
            [0, name @ ..] => Kind::Abstract(name),
            path => Kind::Pathname(path),
        }
    }
}

impl PartialEq for UnixAddr {
    fn eq(&self, other: &UnixAddr) -> bool {
        self.path[..self.len] == other.path[..other.len]
    }
}

impl Eq for UnixAddr {}

impl Hash for UnixAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.path[..self.len].hash(state);
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Kind::Unnamed => f.write_str("(unnamed)"),
            Kind::Pathname(p) => Path::new(OsStr::from_bytes(p)).display().fmt(f),
            Kind::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
        }
    }
}

impl fmt::Debug for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Kind::Unnamed => f.write_str("UnixAddr(unnamed)"),
            Kind::Pathname(p) => write!(f, "UnixAddr({:?})", Path::new(OsStr::from_bytes(p))),
            Kind::Abstract(name) => write!(f, "UnixAddr(abstract \"{}\")", name.escape_ascii()),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A `sockaddr_storage` and the length that goes with it: what the kernel reads or fills.
pub(super) struct RawAddr {
    pub(super) storage: libc::sockaddr_storage,
    pub(super) len: libc::socklen_t,
}

/// The `sockaddr_*` structs a [`RawAddr`] may hold. Each fits in `sockaddr_storage`, needs no
/// more alignment, and is plain integers, so any bytes are a valid value (checked below).
trait SockaddrStruct {}
impl SockaddrStruct for libc::sockaddr_in {}
impl SockaddrStruct for libc::sockaddr_in6 {}
impl SockaddrStruct for libc::sockaddr_un {}

const _: () = {
    use std::mem::align_of;
    type S = libc::sockaddr_storage;
    assert!(size_of::<libc::sockaddr_in>() <= size_of::<S>());
    assert!(size_of::<libc::sockaddr_in6>() <= size_of::<S>());
    assert!(size_of::<libc::sockaddr_un>() <= size_of::<S>());
    assert!(align_of::<libc::sockaddr_in>() <= align_of::<S>());
    assert!(align_of::<libc::sockaddr_in6>() <= align_of::<S>());
    assert!(align_of::<libc::sockaddr_un>() <= align_of::<S>());
};

fn view<T: SockaddrStruct>(storage: &libc::sockaddr_storage) -> &T {
    // SAFETY: T fits in the storage and needs no more alignment (asserted above); T is plain
    // integers, so every byte pattern is a valid T; the borrow keeps the storage alive.
    unsafe { &*std::ptr::from_ref(storage).cast::<T>() }
}

fn view_mut<T: SockaddrStruct>(storage: &mut libc::sockaddr_storage) -> &mut T {
    // SAFETY: as in `view`; the exclusive borrow of the storage becomes the exclusive borrow of T.
    unsafe { &mut *std::ptr::from_mut(storage).cast::<T>() }
}

fn socklen_of<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

impl RawAddr {
    /// Zeroed storage with room for any address: the out-parameter of `accept4`, `recvfrom`,
    /// `getsockname`, `getpeername`.
    pub(super) fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain integers (and private padding): all zeros is valid.
        let storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        RawAddr { storage, len: socklen_of::<libc::sockaddr_storage>() }
    }

    /// The kernel form of `addr` (Go's `Sockaddr.sockaddr()`).
    pub(super) fn from_addr(addr: &SockAddr) -> RawAddr {
        let mut raw = RawAddr::empty();
        raw.len = match addr {
            SockAddr::Inet(SocketAddr::V4(a)) => {
                let sin: &mut libc::sockaddr_in = view_mut(&mut raw.storage);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                socklen_of::<libc::sockaddr_in>()
            }
            SockAddr::Inet(SocketAddr::V6(a)) => {
                let sin6: &mut libc::sockaddr_in6 = view_mut(&mut raw.storage);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                socklen_of::<libc::sockaddr_in6>()
            }
            SockAddr::Unix(a) => {
                let sun: &mut libc::sockaddr_un = view_mut(&mut raw.storage);
                sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
                for (dst, &src) in sun.sun_path.iter_mut().zip(&a.path[..a.len]) {
                    *dst = src as libc::c_char;
                }
                // A pathname counts its terminating NUL (already zero in the storage) when it
                // fits; abstract and unnamed addresses count exactly their bytes.
                let nul = matches!(a.kind(), Kind::Pathname(_)) && a.len < SUN_PATH_LEN;
                (SUN_PATH_OFFSET + a.len + usize::from(nul)) as libc::socklen_t
            }
        };
        raw
    }

    /// Back from the kernel form (Go's `anyToSockaddr`), using the length the kernel returned.
    ///
    /// A length shorter than the family field means "no address": Linux reports a datagram
    /// from an unbound Unix socket that way, so it reads as the unnamed Unix address (std does
    /// the same). An unknown family is an `InvalidData` error.
    pub(super) fn to_addr(&self) -> io::Result<SockAddr> {
        let len = (self.len as usize).min(size_of::<libc::sockaddr_storage>());
        if len < size_of::<libc::sa_family_t>() {
            return Ok(SockAddr::Unix(UnixAddr::unnamed()));
        }
        let family = libc::c_int::from(self.storage.ss_family);
        match family {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let sin: &libc::sockaddr_in = view(&self.storage);
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let sin6: &libc::sockaddr_in6 = view(&self.storage);
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Ok(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            libc::AF_UNIX => {
                let sun: &libc::sockaddr_un = view(&self.storage);
                let n = len.min(size_of::<libc::sockaddr_un>()) - SUN_PATH_OFFSET;
                let mut path = [0u8; SUN_PATH_LEN];
                for (dst, &src) in path.iter_mut().zip(&sun.sun_path[..n]) {
                    *dst = src as u8;
                }
                Ok(SockAddr::Unix(UnixAddr::from_bytes(&path[..n])))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("socket address family {family} (length {len}) is not supported"),
            )),
        }
    }

    /// For calls that read an address: `bind`, `connect`, `sendto`.
    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        std::ptr::from_ref(&self.storage).cast()
    }

    /// The length that goes with [`RawAddr::as_ptr`].
    pub(super) fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// For calls that fill an address: the storage and its in/out length, reset to "all of it".
    pub(super) fn as_out(&mut self) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        self.len = socklen_of::<libc::sockaddr_storage>();
        (std::ptr::from_mut(&mut self.storage).cast(), &raw mut self.len)
    }
}
