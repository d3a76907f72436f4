//! `reactor::socket` through its public API, on loopback and Unix sockets only.
//!
//! Nothing here blocks: every socket is non-blocking, so a test that must wait for the kernel
//! (a connect to finish, a datagram to arrive) retries every millisecond for at most 5 s.
//! Flag checks that need `fcntl`, and the SIGPIPE test, are unit tests in
//! `reactor/src/sys/socket/tests.rs`.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reactor::socket::{self, Domain, SockAddr, Socket, Type, UnixAddr};

// Linux errno values (tests outside `reactor/src/sys/` may not use `libc`).
const EPIPE: i32 = 32;
const ECONNRESET: i32 = 104;
const ENOTSOCK: i32 = 88;

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

/// Retries a non-blocking call while it says `WouldBlock`.
fn retry<T>(what: &str, mut f: impl FnMut() -> io::Result<T>) -> T {
    eventually(what, || match f() {
        Ok(v) => Some(v),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("{what}: {e}"),
    })
}

fn v4(port: u16) -> SockAddr {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into()
}

fn v6(port: u16) -> SockAddr {
    SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0).into()
}

/// Whether `::1` can be bound here (IPv6 may be disabled in containers).
fn ipv6_works() -> bool {
    let ok = Socket::new(Domain::Ipv6, Type::Datagram).and_then(|s| s.bind(&v6(0))).is_ok();
    if !ok {
        println!("skipped: cannot bind [::1] on this machine");
    }
    ok
}

/// A unique name for this test process: pid + counter.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn listener(domain: Domain, addr: &SockAddr) -> Socket {
    let l = Socket::new(domain, Type::Stream).unwrap();
    if domain != Domain::Unix {
        l.set_reuse_address(true).unwrap();
    }
    l.bind(addr).unwrap();
    l.listen(16).unwrap();
    l
}

/// Connects the way the net layer will: start, wait for the kernel, check `SO_ERROR`.
fn connect(domain: Domain, addr: &SockAddr) -> Socket {
    let c = Socket::new(domain, Type::Stream).unwrap();
    match c.connect(addr) {
        Ok(()) => {}
        Err(e) => assert!(socket::is_in_progress(&e), "connect: {e}"),
    }
    eventually("connected", || c.peer_addr().ok());
    assert!(c.take_error().unwrap().is_none());
    c
}

/// A full TCP round trip on `addr`: accept on an empty queue, connect, accept, talk, shut down.
fn tcp_round_trip(domain: Domain, addr: SockAddr) {
    let l = listener(domain, &addr);
    let addr = l.local_addr().unwrap();
    assert_ne!(addr.as_inet().unwrap().port(), 0);

    let err = l.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "empty accept queue: {err}");

    let c = connect(domain, &addr);
    let (s, peer) = retry("accept", || l.accept());
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(c.peer_addr().unwrap(), addr);
    assert!(s.take_error().unwrap().is_none());

    talk(&c, &s);
}

/// send/recv/peek, vectored both ways, then shutdown(Write) → EOF on the other side.
fn talk(a: &Socket, b: &Socket) {
    let mut buf = [0u8; 64];
    assert_eq!(b.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock, "nothing sent yet");

    assert_eq!(a.send(b"hello").unwrap(), 5);
    let n = retry("peek", || b.peek(&mut buf));
    assert_eq!(&buf[..n], b"hello");
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello", "peek left the data queued");

    let sent = b.send_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")]);
    assert_eq!(sent.unwrap(), 5);
    let (mut x, mut y) = ([0u8; 3], [0u8; 8]);
    let n = retry("recv_vectored", || {
        a.recv_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
    });
    assert_eq!(n, 5);
    assert_eq!((&x[..], &y[..2]), (&b"abc"[..], &b"de"[..]));

    a.send(b"last").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let n = retry("recv before EOF", || b.recv(&mut buf));
    assert_eq!(&buf[..n], b"last");
    assert_eq!(retry("EOF", || b.recv(&mut buf)), 0, "the peer reads EOF after shutdown(Write)");
    let err = a.send(b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EPIPE), "send after shutdown(Write) is EPIPE: {err}");
}

#[test]
fn tcp_v4_listen_connect_accept_talk() {
    tcp_round_trip(Domain::Ipv4, v4(0));
}

#[test]
fn tcp_v6_listen_connect_accept_talk() {
    if ipv6_works() {
        tcp_round_trip(Domain::Ipv6, v6(0));
    }
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let port = {
        let l = listener(Domain::Ipv4, &v4(0));
        l.local_addr().unwrap().as_inet().unwrap().port()
    }; // closed: nothing listens there now
    let c = Socket::new(Domain::Ipv4, Type::Stream).unwrap();
    let err = match c.connect(&v4(port)) {
        Ok(()) => panic!("connected to a closed port"),
        Err(e) if socket::is_in_progress(&e) => eventually("SO_ERROR", || c.take_error().unwrap()),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn send_to_a_peer_that_reset_is_epipe_or_econnreset() {
    let l = listener(Domain::Ipv4, &v4(0));
    let c = connect(Domain::Ipv4, &l.local_addr().unwrap());
    let (s, _) = retry("accept", || l.accept());
    s.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
    drop(s); // close with SO_LINGER 0: RST
    let err = eventually("an error", || c.send(b"x").err());
    assert!(matches!(err.raw_os_error(), Some(EPIPE | ECONNRESET)), "EPIPE or ECONNRESET: {err}");
}

fn udp_round_trip(domain: Domain, any: SockAddr) {
    let a = Socket::new(domain, Type::Datagram).unwrap();
    let b = Socket::new(domain, Type::Datagram).unwrap();
    a.bind(&any).unwrap();
    b.bind(&any).unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());

    let mut buf = [0u8; 16];
    assert_eq!(b.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(a.send_to(b"ping", &b_addr).unwrap(), 4);
    let (n, from) = retry("peek_from", || b.peek_from(&mut buf));
    assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr), "peek_from left the datagram");

    // A connected datagram socket: send/recv without addresses.
    a.connect(&b_addr).unwrap();
    a.send(b"pong").unwrap();
    let n = retry("recv", || b.recv(&mut buf));
    assert_eq!(&buf[..n], b"pong");
}

#[test]
fn udp_v4_send_to_recv_from_peek_from() {
    udp_round_trip(Domain::Ipv4, v4(0));
}

#[test]
fn udp_v6_send_to_recv_from_peek_from() {
    if ipv6_works() {
        udp_round_trip(Domain::Ipv6, v6(0));
    }
}

#[test]
fn unix_stream_pair_echo() {
    let (a, b) = Socket::pair(Type::Stream).unwrap();
    assert!(a.local_addr().unwrap().as_unix().unwrap().is_unnamed());
    talk(&a, &b);
}

#[test]
fn unix_datagram_pair_keeps_message_boundaries() {
    let (a, b) = Socket::pair(Type::Datagram).unwrap();
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf).unwrap(), 3);
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
    assert!(from.as_unix().unwrap().is_unnamed(), "{from:?}");
}

/// A temporary socket path, removed on drop.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn unix_pathname_listener() {
    let path = TempPath(std::env::temp_dir().join(unique("reactor-sock")));
    let addr = SockAddr::from(UnixAddr::pathname(&path.0).unwrap());
    let l = listener(Domain::Unix, &addr);
    assert_eq!(l.local_addr().unwrap(), addr);
    assert_eq!(l.local_addr().unwrap().as_unix().unwrap().as_pathname(), Some(path.0.as_path()));
    assert_eq!(addr.to_string(), path.0.display().to_string());

    let c = connect(Domain::Unix, &addr);
    let (s, peer) = retry("accept", || l.accept());
    assert!(peer.as_unix().unwrap().is_unnamed(), "an unbound client: {peer:?}");
    assert_eq!(c.peer_addr().unwrap(), addr);
    talk(&s, &c);
}

#[test]
fn unix_abstract_address_round_trip() {
    let name = unique("reactor-abstract");
    let unix = UnixAddr::abstract_name(name.as_bytes()).unwrap();
    assert_eq!(unix.as_abstract_name(), Some(name.as_bytes()));
    assert_eq!(unix.as_pathname(), None);
    let addr = SockAddr::from(unix);
    assert_eq!(addr.to_string(), format!("@{name}"));

    let l = listener(Domain::Unix, &addr);
    assert_eq!(l.local_addr().unwrap(), addr);
    let c = connect(Domain::Unix, &addr);
    let (s, _) = retry("accept", || l.accept());
    assert_eq!(c.peer_addr().unwrap(), addr);
    talk(&c, &s);

    // Datagrams from an abstract-bound sender carry its name.
    let rx = Socket::new(Domain::Unix, Type::Datagram).unwrap();
    let tx = Socket::new(Domain::Unix, Type::Datagram).unwrap();
    let rx_addr = SockAddr::from(UnixAddr::abstract_name(unique("rx").as_bytes()).unwrap());
    let tx_addr = SockAddr::from(UnixAddr::abstract_name(unique("tx").as_bytes()).unwrap());
    rx.bind(&rx_addr).unwrap();
    tx.bind(&tx_addr).unwrap();
    tx.send_to(b"hi", &rx_addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = retry("recv_from", || rx.recv_from(&mut buf));
    assert_eq!((&buf[..n], from), (&b"hi"[..], tx_addr));
}

#[test]
fn binding_the_unnamed_address_autobinds_an_abstract_name() {
    let s = Socket::new(Domain::Unix, Type::Datagram).unwrap();
    s.bind(&UnixAddr::unnamed().into()).unwrap();
    let local = s.local_addr().unwrap();
    assert!(local.as_unix().unwrap().as_abstract_name().is_some(), "{local:?}");
}

#[test]
fn unix_paths_too_long_or_malformed_are_invalid_input() {
    let err = UnixAddr::pathname("x".repeat(108)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("108"), "the message names the limit: {err}");
    assert!(UnixAddr::pathname("x".repeat(107)).is_ok());
    assert_eq!(UnixAddr::pathname("").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(UnixAddr::pathname("a\0b").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(UnixAddr::abstract_name(&[b'x'; 108]).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(UnixAddr::abstract_name(&[b'x'; 107]).is_ok());
}

#[test]
fn addresses_convert_and_compare() {
    let inet: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let addr = SockAddr::from(inet);
    assert_eq!(addr.as_inet(), Some(inet));
    assert!(addr.as_unix().is_none());
    assert_eq!(addr.domain(), Domain::Ipv4);
    assert_eq!(addr.to_string(), "127.0.0.1:8080");
    assert_eq!(v6(1).domain(), Domain::Ipv6);
    let unix = SockAddr::from(UnixAddr::pathname("/tmp/a").unwrap());
    assert_eq!(unix.domain(), Domain::Unix);
    assert_eq!(unix, SockAddr::from(UnixAddr::pathname("/tmp/a").unwrap()));
    assert_ne!(unix, SockAddr::from(UnixAddr::abstract_name(b"/tmp/a").unwrap()));
    assert_eq!(SockAddr::from(UnixAddr::unnamed()).to_string(), "(unnamed)");
}

#[test]
fn from_fd_adopts_a_std_socket_and_rejects_non_sockets() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // blocking
    let l = Socket::from_fd(std_listener.into()).unwrap();
    assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock, "now non-blocking");
    assert_eq!(l.socket_type().unwrap(), Type::Stream);

    let file = std::fs::File::open("/dev/null").unwrap();
    let err = Socket::from_fd(file.into()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(ENOTSOCK), "ENOTSOCK: {err}");
}

#[test]
fn sockopt_getters_return_what_setters_set() {
    let tcp = Socket::new(Domain::Ipv4, Type::Stream).unwrap();
    for on in [true, false] {
        tcp.set_nodelay(on).unwrap();
        assert_eq!(tcp.nodelay().unwrap(), on);
        tcp.set_reuse_address(on).unwrap();
        assert_eq!(tcp.reuse_address().unwrap(), on);
    }
    tcp.set_keepalive(Some(socket::DEFAULT_KEEPALIVE)).unwrap();
    assert_eq!(tcp.keepalive().unwrap(), Some(Duration::from_secs(15)));
    tcp.set_keepalive(Some(Duration::from_millis(1500))).unwrap();
    assert_eq!(tcp.keepalive().unwrap(), Some(Duration::from_secs(2)), "rounded up");
    tcp.set_keepalive(None).unwrap();
    assert_eq!(tcp.keepalive().unwrap(), None);
    tcp.set_linger(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(tcp.linger().unwrap(), Some(Duration::from_secs(3)));
    tcp.set_linger(None).unwrap();
    assert_eq!(tcp.linger().unwrap(), None);
    tcp.set_ttl(42).unwrap();
    assert_eq!(tcp.ttl().unwrap(), 42);
    tcp.set_send_buffer_size(64 * 1024).unwrap();
    assert!(tcp.send_buffer_size().unwrap() >= 64 * 1024);
    tcp.set_recv_buffer_size(64 * 1024).unwrap();
    assert!(tcp.recv_buffer_size().unwrap() >= 64 * 1024);

    let udp = Socket::new(Domain::Ipv4, Type::Datagram).unwrap();
    assert_eq!(udp.socket_type().unwrap(), Type::Datagram);
    for on in [true, false] {
        udp.set_broadcast(on).unwrap();
        assert_eq!(udp.broadcast().unwrap(), on);
    }

    if let Ok(tcp6) = Socket::new(Domain::Ipv6, Type::Stream) {
        for on in [true, false] {
            tcp6.set_only_v6(on).unwrap();
            assert_eq!(tcp6.only_v6().unwrap(), on);
        }
    }
}
