//! Mirrors: net/unixsock.go (Go 1.19) — `ListenUnix`, `DialUnix`, `AcceptUnix`,
//! `ListenUnixgram`, `ReadFromUnix`, `WriteToUnix`, `CloseRead`/`CloseWrite`, deadlines and
//! `Close`, through gort's public API.
//!
//! Invariants checked: streams are byte-exact and half-closable; binding an existing path is
//! `AddrInUse` and a too-long one `InvalidInput`; a listener's `close` removes its file;
//! datagrams keep their boundaries; `close` wakes blocked calls with the closed error;
//! deadlines fail with `TimedOut`. Each socket file gets a unique temporary path, removed
//! afterwards; every wait is bounded.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gort::net::{UnixAddr, UnixDatagram, UnixListener, UnixStream, is_closed};
use gort::{Runtime, go};

/// Linux's EADDRINUSE (tests do not use libc).
const EADDRINUSE: i32 = 98;

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// A unique socket path in the temp directory, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("gort-{}-{}-{tag}.sock", std::process::id(), N.fetch_add(1, Relaxed));
        let p = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// An echo server task: copies each connection back until EOF.
fn echo_server(l: UnixListener) {
    go(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            go(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match (&s).read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if (&s).write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

fn bounded(s: &UnixStream) {
    s.set_deadline(Some(Instant::now() + Duration::from_secs(10))).unwrap();
}

#[test]
fn stream_echo_through_a_listener_and_close_removes_the_file() {
    let path = TempPath::new("echo");
    rt().block_on(move || {
        let l = Arc::new(UnixListener::bind(&path).unwrap());
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.0.as_path()));
        let l2 = l.clone();
        let server = go(move || {
            let (s, peer) = l2.accept().unwrap();
            assert!(peer.is_unnamed(), "{peer:?}");
            let mut buf = [0u8; 5];
            (&s).read_exact(&mut buf).unwrap();
            (&s).write_all(&buf).unwrap();
            s
        });
        let c = UnixStream::connect(&path).unwrap();
        bounded(&c);
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.0.as_path()));
        (&c).write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let _s = server.join().unwrap();
        // Go's unlink-on-close: the path is free again once the listener is closed.
        assert!(path.0.exists());
        l.close().unwrap();
        assert!(!path.0.exists(), "close removes the socket file");
        let again = UnixListener::bind(&path).unwrap();
        again.set_unlink_on_close(false);
        again.close().unwrap();
        assert!(path.0.exists(), "unlink-on-close turned off leaves the file");
    });
}

#[test]
fn many_clients_through_incoming() {
    let path = TempPath::new("many");
    rt().block_on(move || {
        echo_server(UnixListener::bind(&path).unwrap());
        let clients: Vec<_> = (0..20u32)
            .map(|i| {
                let p = path.0.clone();
                go(move || {
                    let c = UnixStream::connect(&p).unwrap();
                    bounded(&c);
                    (&c).write_all(&i.to_le_bytes()).unwrap();
                    let mut b = [0u8; 4];
                    (&c).read_exact(&mut b).unwrap();
                    u32::from_le_bytes(b)
                })
            })
            .collect();
        for (i, h) in clients.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u32);
        }
    });
}

#[test]
fn pair_echoes_one_mib_byte_exact() {
    rt().block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        bounded(&a);
        bounded(&b);
        let echo = go(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match (&b).read(&mut buf).unwrap() {
                    0 => return,
                    n => (&b).write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let a = Arc::new(a);
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
        let (a2, d2) = (a.clone(), data.clone());
        let writer = go(move || {
            (&*a2).write_all(&d2).unwrap();
            a2.close_write().unwrap();
        });
        let mut got = Vec::with_capacity(data.len());
        (&*a).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        echo.join().unwrap();
        assert!(got == data, "echo differs ({} bytes back)", got.len());
    });
}

#[test]
fn zero_length_stream_io_returns_at_once() {
    rt().block_on(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let t = Instant::now();
        assert_eq!((&a).read(&mut []).unwrap(), 0);
        assert_eq!((&a).write(&[]).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn half_close_both_ways() {
    rt().block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        bounded(&a);
        bounded(&b);
        (&a).write_all(b"ping").unwrap();
        a.close_write().unwrap();
        let mut got = Vec::new();
        (&b).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");
        // The other direction still works.
        (&b).write_all(b"pong").unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        (&a).read_to_end(&mut back).unwrap();
        assert_eq!(back, b"pong");
        // Writing after close_write fails (EPIPE), and the process lives (MSG_NOSIGNAL).
        let e = (&a).write(b"late").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
    });
}

#[test]
fn binding_an_existing_path_is_addr_in_use() {
    let path = TempPath::new("inuse");
    rt().block_on(move || {
        let l = UnixListener::bind(&path).unwrap();
        let e = UnixListener::bind(&path).unwrap_err();
        assert_eq!((e.kind(), e.raw_os_error()), (ErrorKind::AddrInUse, Some(EADDRINUSE)), "{e}");
        let e = UnixDatagram::bind(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        // Dropped without close, a listener leaves its file (as Go's finalizer does): still
        // in use for bind, and connecting to it is refused.
        drop(l);
        assert_eq!(UnixListener::bind(&path).unwrap_err().kind(), ErrorKind::AddrInUse);
        let e = UnixStream::connect(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    });
    // Any file is in the way, not only sockets.
    let file = TempPath::new("plain");
    std::fs::write(&file, b"").unwrap();
    rt().block_on(move || {
        assert_eq!(UnixListener::bind(&file).unwrap_err().kind(), ErrorKind::AddrInUse);
    });
}

#[test]
fn a_too_long_path_is_invalid_input() {
    rt().block_on(|| {
        let long = std::env::temp_dir().join("x".repeat(120));
        for e in [
            UnixListener::bind(&long).unwrap_err(),
            UnixStream::connect(&long).unwrap_err(),
            UnixDatagram::bind(&long).unwrap_err(),
            UnixDatagram::unbound().unwrap().send_to(b"x", &long).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        assert!(!long.exists());
        let e = UnixStream::connect(std::env::temp_dir().join("gort-no-such.sock")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn abstract_names_need_no_file() {
    rt().block_on(|| {
        let name = format!("gort-test-{}", std::process::id());
        let addr = UnixAddr::abstract_name(name.as_bytes()).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        echo_server(l);
        let c = UnixStream::connect_addr(&addr).unwrap();
        bounded(&c);
        (&c).write_all(b"abs").unwrap();
        let mut buf = [0u8; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abs");
        // Unnamed: the kernel picks an abstract name.
        let d = UnixDatagram::bind_addr(&UnixAddr::unnamed()).unwrap();
        assert!(d.local_addr().unwrap().as_abstract_name().is_some());
    });
}

#[test]
fn datagram_pair_keeps_message_boundaries() {
    rt().block_on(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_deadline(Some(Instant::now() + Duration::from_secs(5))).unwrap();
        for msg in [&b"one"[..], b"", b"three33"] {
            assert_eq!(a.send(msg).unwrap(), msg.len());
        }
        let mut buf = [0u8; 64];
        assert_eq!(b.peek(&mut buf).unwrap(), 3);
        for want in [&b"one"[..], b"", b"three33"] {
            let n = b.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
        assert!(a.peer_addr().unwrap().is_unnamed());
    });
}

#[test]
fn datagrams_between_bound_sockets_carry_the_sender() {
    let (pa, pb) = (TempPath::new("dga"), TempPath::new("dgb"));
    rt().block_on(move || {
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        b.set_read_deadline(Some(Instant::now() + Duration::from_secs(5))).unwrap();
        a.send_to(b"from a", &pb).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from a");
        assert_eq!(from.as_pathname(), Some(pa.0.as_path()));
        // An unbound sender is unnamed.
        let u = UnixDatagram::unbound().unwrap();
        u.send_to(b"anon", &pb).unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"anon"[..], true));
        // Connected: send/recv.
        u.connect(&pb).unwrap();
        u.send(b"conn").unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        // Datagram sockets keep their file after close (Go's too).
        a.close().unwrap();
        assert!(pa.0.exists());
    });
}

#[test]
fn close_wakes_blocked_read_recv_and_accept() {
    let path = TempPath::new("close");
    rt().block_on(move || {
        let (a, _b) = UnixStream::pair().unwrap();
        let (da, _db) = UnixDatagram::pair().unwrap();
        let l = Arc::new(UnixListener::bind(&path).unwrap());
        let (a, da) = (Arc::new(a), Arc::new(da));
        let (a2, da2, l2) = (a.clone(), da.clone(), l.clone());
        let reader = go(move || (&*a2).read(&mut [0u8; 4]).unwrap_err());
        let receiver = go(move || da2.recv(&mut [0u8; 4]).unwrap_err());
        let acceptor = go(move || l2.accept().unwrap_err());
        gort::time::sleep(Duration::from_millis(50));
        let t = Instant::now();
        a.close().unwrap();
        da.close().unwrap();
        l.close().unwrap();
        for (what, e) in [
            ("read", reader.join().unwrap()),
            ("recv", receiver.join().unwrap()),
            ("accept", acceptor.join().unwrap()),
        ] {
            assert!(is_closed(&e), "{what}: {e}");
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(is_closed(&a.close().unwrap_err()));
    });
}

#[test]
fn deadlines_time_out_and_clear() {
    let path = TempPath::new("deadline");
    rt().block_on(move || {
        let (a, b) = UnixStream::pair().unwrap();
        let (da, db) = UnixDatagram::pair().unwrap();
        let l = UnixListener::bind(&path).unwrap();
        let d = Duration::from_millis(40);
        let t = Instant::now();
        a.set_read_deadline(Some(t + d)).unwrap();
        da.set_read_deadline(Some(t + d)).unwrap();
        l.set_deadline(Some(t + d)).unwrap();
        for (what, e) in [
            ("read", (&a).read(&mut [0u8; 4]).unwrap_err()),
            ("recv", da.recv(&mut [0u8; 4]).unwrap_err()),
            ("accept", l.accept().unwrap_err()),
        ] {
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{what}: {e}");
        }
        let took = t.elapsed();
        assert!(took >= d, "timed out early: {took:?}");
        assert!(took < Duration::from_secs(2), "late: {took:?}");
        // Still failing until moved; then the data that waited is there.
        (&b).write_all(b"xy").unwrap();
        db.send(b"z").unwrap();
        assert_eq!((&a).read(&mut [0u8; 4]).unwrap_err().kind(), ErrorKind::TimedOut);
        a.set_read_deadline(None).unwrap();
        da.set_deadline(None).unwrap();
        let mut buf = [0u8; 2];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xy");
        assert_eq!(da.recv(&mut buf).unwrap(), 1);
        // wait_readable parks until data comes.
        let b2 = b.try_clone().unwrap();
        let w = go(move || {
            gort::time::sleep(Duration::from_millis(20));
            (&b2).write_all(b"!").unwrap();
        });
        a.wait_readable().unwrap();
        assert_eq!((&a).read(&mut buf).unwrap(), 1);
        w.join().unwrap();
        a.wait_writable().unwrap();
    });
}

#[test]
fn debug_names_the_type_and_address() {
    let path = TempPath::new("dbg");
    rt().block_on(move || {
        let l = UnixListener::bind(&path).unwrap();
        let s = format!("{l:?}");
        assert!(s.starts_with("UnixListener") && s.contains("gort-"), "{s}");
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(format!("{a:?}").starts_with("UnixStream"));
        let (d, _e) = UnixDatagram::pair().unwrap();
        assert!(format!("{d:?}").starts_with("UnixDatagram"));
        l.close().unwrap();
    });
}
