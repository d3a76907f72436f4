//! What only `libc` can check: fd flags, raw address layouts, and that no send raises SIGPIPE.
//! The behaviour through the public API is tested in `reactor/tests/socket.rs`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

fn fd_flags(fd: RawFd) -> (bool, bool) {
    // SAFETY: `fd` is live for the test; F_GETFL takes no argument.
    let status = syscall!(fcntl(fd, libc::F_GETFL)).unwrap();
    // SAFETY: as above, F_GETFD.
    let flags = syscall!(fcntl(fd, libc::F_GETFD)).unwrap();
    (status & libc::O_NONBLOCK != 0, flags & libc::FD_CLOEXEC != 0)
}

fn loopback_listener() -> (Socket, SockAddr) {
    let l = Socket::new(Domain::Ipv4, Type::Stream).unwrap();
    l.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    l.listen(16).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Retries `f` every millisecond for up to 5 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A connected TCP pair over loopback: (client, accepted server side).
fn tcp_pair() -> (Socket, Socket) {
    let (l, addr) = loopback_listener();
    let c = Socket::new(Domain::Ipv4, Type::Stream).unwrap();
    match c.connect(&addr) {
        Ok(()) => {}
        Err(e) => assert!(is_in_progress(&e), "{e}"),
    }
    let (s, _) = eventually("accept", || l.accept().ok());
    eventually("connected", || c.peer_addr().ok());
    (c, s)
}

#[test]
fn every_socket_is_nonblocking_and_cloexec_from_birth() {
    for (domain, ty) in [
        (Domain::Ipv4, Type::Stream),
        (Domain::Ipv4, Type::Datagram),
        (Domain::Unix, Type::Stream),
        (Domain::Unix, Type::Datagram),
        (Domain::Unix, Type::SeqPacket),
    ] {
        let s = Socket::new(domain, ty).unwrap();
        assert_eq!(fd_flags(s.as_raw_fd()), (true, true), "{domain:?} {ty:?}");
    }
    let (a, b) = Socket::pair(Type::Stream).unwrap();
    assert_eq!(fd_flags(a.as_raw_fd()), (true, true));
    assert_eq!(fd_flags(b.as_raw_fd()), (true, true));
    let (c, s) = tcp_pair();
    assert_eq!(fd_flags(c.as_raw_fd()), (true, true));
    assert_eq!(fd_flags(s.as_raw_fd()), (true, true), "accepted socket (accept4 flags)");
}

#[test]
fn from_fd_makes_a_blocking_socket_nonblocking_and_cloexec() {
    // SAFETY: plain socket(2) without SOCK_NONBLOCK/SOCK_CLOEXEC: blocking, inheritable.
    let fd = syscall!(socket(libc::AF_INET, libc::SOCK_STREAM, 0)).unwrap();
    // SAFETY: `fd` was just created.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    assert_eq!(fd_flags(fd.as_raw_fd()), (false, false));
    let s = Socket::from_fd(fd).unwrap();
    assert_eq!(fd_flags(s.as_raw_fd()), (true, true));
    assert_eq!(s.socket_type().unwrap(), Type::Stream);
}

#[test]
fn raw_lengths_match_the_kernel_structs() {
    let len = |a: SockAddr| RawAddr::from_addr(&a).len() as usize;
    let v4 = SockAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 0x1234));
    assert_eq!(len(v4), size_of::<libc::sockaddr_in>());
    let raw = RawAddr::from_addr(&v4);
    // SAFETY: `raw` holds a sockaddr_in, which fits and is aligned in sockaddr_storage.
    let sin = unsafe { &*raw.as_ptr().cast::<libc::sockaddr_in>() };
    assert_eq!(sin.sin_port.to_ne_bytes(), [0x12, 0x34], "port in network byte order");
    assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [10, 1, 2, 3]);
    assert_eq!(raw.to_addr().unwrap(), v4);

    let v6 = SockAddr::from(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 7, 3));
    assert_eq!(len(v6), size_of::<libc::sockaddr_in6>());
    assert_eq!(RawAddr::from_addr(&v6).to_addr().unwrap(), v6, "flowinfo and scope_id kept");

    let family = size_of::<libc::sa_family_t>();
    let path = SockAddr::from(UnixAddr::pathname("/tmp/s").unwrap());
    assert_eq!(len(path), family + 6 + 1, "pathname counts its NUL");
    let abs = SockAddr::from(UnixAddr::abstract_name(b"gort").unwrap());
    assert_eq!(len(abs), family + 1 + 4, "abstract: leading NUL, no trailing NUL");
    assert_eq!(len(SockAddr::from(UnixAddr::unnamed())), family);
    for a in [path, abs, SockAddr::from(UnixAddr::unnamed())] {
        assert_eq!(RawAddr::from_addr(&a).to_addr().unwrap(), a);
    }

    // A 107-byte pathname fills sun_path with its NUL; the kernel may also report one without.
    let long = "p".repeat(SUN_PATH_LEN - 1);
    let a = SockAddr::from(UnixAddr::pathname(&long).unwrap());
    assert_eq!(len(a), size_of::<libc::sockaddr_un>());
    assert_eq!(RawAddr::from_addr(&a).to_addr().unwrap(), a);
}

#[test]
fn a_length_shorter_than_the_family_is_the_unnamed_unix_address() {
    let raw = RawAddr { len: 0, ..RawAddr::empty() };
    assert_eq!(raw.to_addr().unwrap(), SockAddr::Unix(UnixAddr::unnamed()));
}

/// Set in the child process of the SIGPIPE tests; names what the child does.
const CHILD_ENV: &str = "REACTOR_SOCKET_SIGPIPE_CHILD";

/// In the child: SIGPIPE back to its default action (terminate), then write to a socket whose
/// peer has reset, until the kernel says EPIPE. With `MSG_NOSIGNAL` (our `send`) the child
/// lives; with plain `write` it must die of SIGPIPE (the control: proves the set-up works).
fn sigpipe_child(use_write: bool) {
    // SAFETY: signal() with a valid signal number and SIG_DFL; the test child is
    // single-threaded in what it does (it runs one test, --test-threads=1).
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(old, libc::SIG_ERR);
    let (c, s) = tcp_pair();
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s); // RST, not FIN
    let mut errors = Vec::new();
    for _ in 0..100 {
        let res = if use_write {
            // SAFETY: `c` is live; the buffer is 1 readable byte.
            syscall!(write(c.as_raw_fd(), b"x".as_ptr().cast(), 1)).map(|n| n as usize)
        } else {
            c.send(b"x")
        };
        match res {
            Ok(_) => std::thread::sleep(Duration::from_millis(1)), // RST not processed yet
            Err(e) => {
                let errno = e.raw_os_error().unwrap();
                assert!(errno == libc::EPIPE || errno == libc::ECONNRESET, "{e}");
                errors.push(errno);
                if errno == libc::EPIPE {
                    break;
                }
            }
        }
    }
    assert!(errors.contains(&libc::EPIPE), "never reached EPIPE: {errors:?}");
    println!("SIGPIPE-CHILD-SURVIVED {errors:?}");
}

fn run_sigpipe_child(test: &str, mode: &str) -> std::process::Output {
    let name = format!("{}::{test}", module_path!().split_once("::").unwrap().1);
    Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap()
}

#[test]
fn send_to_a_reset_peer_is_epipe_not_sigpipe() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("send") => return sigpipe_child(false),
        Ok("write") => return sigpipe_child(true),
        _ => {}
    }
    let test = "send_to_a_reset_peer_is_epipe_not_sigpipe";
    // The control: plain write(2) to the same kind of socket kills the child with SIGPIPE.
    let out = run_sigpipe_child(test, "write");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "control: {out:?}");
    // Our send (MSG_NOSIGNAL): the child sees EPIPE and exits normally.
    let out = run_sigpipe_child(test, "send");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child died: {:?}\n{stdout}", out.status);
    assert!(stdout.contains("SIGPIPE-CHILD-SURVIVED"), "the child did not run the test:\n{stdout}");
}
