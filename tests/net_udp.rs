//! Mirrors: net/udpsock.go (Go 1.19) — `ListenUDP`, `ReadFrom`, `WriteTo`, `Read`, `Write`,
//! deadlines and `Close`, through gort's public API.
//!
//! Invariants checked: the sender's address comes back with each datagram; a datagram is one
//! call (boundaries kept, zero-length included); a read deadline fails with `TimedOut` no
//! earlier than it was set for and clears; `close` wakes a blocked receive with the closed
//! error. Loopback only; every wait is bounded.

#![forbid(unsafe_code)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::net::{UdpSocket, is_closed};
use gort::{Runtime, go};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

fn socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// A bound on every receive a test expects to succeed, so a lost datagram fails the test
/// instead of hanging it.
fn bounded(s: &UdpSocket) {
    s.set_read_deadline(Some(Instant::now() + Duration::from_secs(5))).unwrap();
}

#[test]
fn send_to_and_recv_from_carry_the_source_address() {
    rt().block_on(|| {
        let (a, a_addr) = socket();
        let (b, b_addr) = socket();
        bounded(&a);
        bounded(&b);
        assert_eq!(a.send_to(b"ping", b_addr).unwrap(), 4);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
        // And back, with a string address this time.
        b.send_to(b"pong", a_addr.to_string()).unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    });
}

#[test]
fn datagrams_keep_their_boundaries_and_peek_leaves_them_queued() {
    rt().block_on(|| {
        let (a, _) = socket();
        let (b, b_addr) = socket();
        bounded(&b);
        for msg in [&b"one"[..], b"two2", b"three"] {
            a.send_to(msg, b_addr).unwrap();
        }
        let mut buf = [0u8; 64];
        let (n, _) = b.peek_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        for want in [&b"one"[..], b"two2", b"three"] {
            let (n, _) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
        // A datagram longer than the buffer is truncated; the rest is gone.
        a.send_to(b"0123456789", b_addr).unwrap();
        a.send_to(b"next", b_addr).unwrap();
        let (n, _) = b.recv_from(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..n], b"0123");
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"next");
    });
}

#[test]
fn connected_send_and_recv() {
    rt().block_on(|| {
        let (a, a_addr) = socket();
        let (b, b_addr) = socket();
        bounded(&a);
        bounded(&b);
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        assert_eq!(a.send(b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        b.send(b"world").unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"world");
    });
}

#[test]
fn an_unconnected_socket_has_no_peer() {
    rt().block_on(|| {
        let (a, _) = socket();
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    });
}

#[test]
fn a_zero_length_datagram_is_a_datagram() {
    rt().block_on(|| {
        let (a, a_addr) = socket();
        let (b, b_addr) = socket();
        bounded(&b);
        assert_eq!(a.send_to(&[], b_addr).unwrap(), 0);
        a.send_to(b"after", b_addr).unwrap();
        let mut buf = [0u8; 16];
        // The empty one comes first, with its sender, and is consumed.
        assert_eq!(b.recv_from(&mut buf).unwrap(), (0, a_addr));
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
        // An empty buffer also waits for a datagram (and takes it).
        a.send_to(b"dropped", b_addr).unwrap();
        assert_eq!(b.recv_from(&mut []).unwrap(), (0, a_addr));
        // ... so with nothing queued it parks, here until the deadline.
        b.set_read_deadline(Some(Instant::now() + Duration::from_millis(30))).unwrap();
        assert_eq!(b.recv_from(&mut []).unwrap_err().kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn a_read_deadline_times_out_on_time_and_clears() {
    rt().block_on(|| {
        let (a, _) = socket();
        let (b, b_addr) = socket();
        for ms in [30u64, 120] {
            let d = Duration::from_millis(ms);
            let t = Instant::now();
            b.set_read_deadline(Some(t + d)).unwrap();
            let e = b.recv_from(&mut [0u8; 8]).unwrap_err();
            let took = t.elapsed();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            assert!(took >= d, "timed out early: {took:?} < {d:?}");
            assert!(took <= d + d / 10 + Duration::from_millis(20), "late: {took:?} for {d:?}");
            // Still expired: every receive fails until the deadline moves.
            assert_eq!(b.recv(&mut [0u8; 8]).unwrap_err().kind(), ErrorKind::TimedOut);
        }
        b.set_read_deadline(None).unwrap();
        let sender = go(move || {
            gort::time::sleep(Duration::from_millis(20));
            a.send_to(b"late", b_addr).unwrap();
        });
        let mut buf = [0u8; 8];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        sender.join().unwrap();
    });
}

#[test]
fn a_past_write_deadline_fails_sends_at_once() {
    rt().block_on(|| {
        let (a, _) = socket();
        let (_b, b_addr) = socket();
        a.set_write_deadline(Some(Instant::now() - Duration::from_secs(1))).unwrap();
        assert_eq!(a.send_to(b"x", b_addr).unwrap_err().kind(), ErrorKind::TimedOut);
        a.set_deadline(None).unwrap();
        assert_eq!(a.send_to(b"x", b_addr).unwrap(), 1);
    });
}

#[test]
fn close_wakes_a_blocked_recv_from() {
    rt().block_on(|| {
        let (s, _) = socket();
        let s = Arc::new(s);
        bounded(&s);
        let s2 = s.clone();
        let reader = go(move || {
            let t = Instant::now();
            (s2.recv_from(&mut [0u8; 8]).unwrap_err(), t.elapsed())
        });
        gort::time::sleep(Duration::from_millis(50));
        s.close().unwrap();
        let (e, took) = reader.join().unwrap();
        assert!(is_closed(&e), "{e}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Closing twice is an error and nothing else; a clone sees the close too.
        assert!(is_closed(&s.close().unwrap_err()));
        let c = s.try_clone().unwrap();
        assert!(is_closed(&c.send_to(b"x", "127.0.0.1:9").unwrap_err()));
    });
}

#[test]
fn options_broadcast_on_by_default_and_ttl() {
    rt().block_on(|| {
        let (s, _) = socket();
        assert!(s.broadcast().unwrap(), "Go turns SO_BROADCAST on for datagram sockets");
        s.set_broadcast(false).unwrap();
        assert!(!s.broadcast().unwrap());
        s.set_ttl(7).unwrap();
        assert_eq!(s.ttl().unwrap(), 7);
        let dbg = format!("{s:?}");
        assert!(dbg.starts_with("UdpSocket") && dbg.contains("127.0.0.1"), "{dbg}");
    });
}

#[test]
fn many_senders_one_receiver() {
    rt().block_on(|| {
        let (r, r_addr) = socket();
        bounded(&r);
        let senders: Vec<_> = (0..8u8)
            .map(|i| {
                go(move || {
                    let (s, _) = socket();
                    for j in 0..8u8 {
                        s.send_to(&[i, j], r_addr).unwrap();
                    }
                    s // keep it open until the receiver is done
                })
            })
            .collect();
        let mut seen = vec![0u32; 8];
        let mut buf = [0u8; 4];
        for _ in 0..64 {
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(n, 2);
            seen[buf[0] as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c == 8), "{seen:?}");
        drop(senders.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>());
    });
}

#[test]
fn ipv6_loopback_where_available() {
    rt().block_on(|| {
        let a = match UdpSocket::bind("[::1]:0") {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipped: no IPv6 loopback here ({e})");
                return;
            }
        };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        bounded(&b);
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert!(a_addr.is_ipv6());
        a.send_to(b"v6", b_addr).unwrap();
        let mut buf = [0u8; 4];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"v6"[..], a_addr));
    });
}
