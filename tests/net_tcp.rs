//! TCP through the public API: echo, half-close, deadlines, close, errors, fd hygiene.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream, is_closed};
use gort::{Runtime, go};

mod util;

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// An echo server task: copies each connection back until EOF.
fn echo_server(l: TcpListener) {
    go(move || {
        while let Ok((s, _)) = l.accept() {
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

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn one_mib_echo_is_byte_exact() {
    rt().block_on(|| {
        let (l, a) = listener();
        echo_server(l);
        let s = Arc::new(TcpStream::connect(a).unwrap());
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
        let (s2, d2) = (s.clone(), data.clone());
        let writer = go(move || (&*s2).write_all(&d2).unwrap());
        let mut got = vec![0u8; data.len()];
        (&*s).read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data, "echo differs");
    });
}

#[test]
fn zero_length_io_returns_at_once() {
    rt().block_on(|| {
        let (l, a) = listener();
        let _c = TcpStream::connect(a).unwrap();
        let (s, _) = l.accept().unwrap();
        let t = Instant::now();
        assert_eq!((&s).read(&mut []).unwrap(), 0);
        assert_eq!((&s).write(&[]).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn data_written_before_accept_is_read_at_once() {
    rt().block_on(|| {
        let (l, a) = listener();
        let c = TcpStream::connect(a).unwrap();
        (&c).write_all(b"early").unwrap();
        gort::time::sleep(Duration::from_millis(20));
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        let mut buf = [0u8; 5];
        (&s).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"early");
    });
}

#[test]
fn ten_acceptors_take_each_dial_once_and_close_ends_them() {
    rt().block_on(|| {
        let (l, a) = listener();
        let l = Arc::new(l);
        let accepted = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..10)
            .map(|_| {
                let (l, accepted) = (l.clone(), accepted.clone());
                go(move || {
                    let mut mine = Vec::new();
                    loop {
                        match l.accept() {
                            Ok((s, _)) => {
                                accepted.fetch_add(1, SeqCst);
                                let mut b = [0u8; 1];
                                (&s).read_exact(&mut b).unwrap();
                                mine.push(b[0]);
                            }
                            Err(e) => {
                                assert!(is_closed(&e), "{e}");
                                return mine;
                            }
                        }
                    }
                })
            })
            .collect();
        let dials: Vec<_> = (0..100u8)
            .map(|i| {
                go(move || {
                    let c = TcpStream::connect(a).unwrap();
                    (&c).write_all(&[i]).unwrap();
                    c
                })
            })
            .collect();
        let conns: Vec<_> = dials.into_iter().map(|h| h.join().unwrap()).collect();
        while accepted.load(SeqCst) < 100 {
            gort::time::sleep(Duration::from_millis(5));
        }
        gort::time::sleep(Duration::from_millis(20));
        l.close().unwrap();
        let mut seen: Vec<u8> = loops.into_iter().flat_map(|h| h.join().unwrap()).collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<u8>>(), "each dial accepted exactly once");
        drop(conns);
    });
}

#[test]
fn connection_refused_is_quick() {
    rt().block_on(|| {
        let (l, a) = listener();
        l.close().unwrap();
        let t = Instant::now();
        let e = TcpStream::connect(a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert!(t.elapsed() < Duration::from_millis(100), "{:?}", t.elapsed());
    });
}

#[test]
fn nodelay_is_on_by_default() {
    rt().block_on(|| {
        let (l, a) = listener();
        let c = TcpStream::connect(a).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(c.nodelay().unwrap() && s.nodelay().unwrap());
    });
}

#[test]
fn half_close_both_ways() {
    rt().block_on(|| {
        let (l, a) = listener();
        let c = TcpStream::connect(a).unwrap();
        let (s, _) = l.accept().unwrap();
        (&c).write_all(b"ping").unwrap();
        c.close_write().unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");
        // The other way still works after the first half closed.
        (&s).write_all(b"pong").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        (&c).read_to_end(&mut back).unwrap();
        assert_eq!(back, b"pong");
    });
}

fn pair() -> (TcpStream, TcpStream) {
    let (l, a) = listener();
    let c = TcpStream::connect(a).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

#[test]
fn a_past_deadline_fails_at_once() {
    rt().block_on(|| {
        let (c, _s) = pair();
        c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1))).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 4];
        let e = (&c).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_millis(100));
    });
}

#[test]
fn a_blocked_read_times_out_on_time() {
    rt().block_on(|| {
        let (c, _s) = pair();
        for ms in [30u64, 120] {
            let d = Duration::from_millis(ms);
            let t = Instant::now();
            c.set_read_deadline(Some(t + d)).unwrap();
            let e = (&c).read(&mut [0u8; 4]).unwrap_err();
            let took = t.elapsed();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert!(took >= d, "timed out early: {took:?} < {d:?}");
            assert!(took <= d + d / 10 + Duration::from_millis(20), "late: {took:?} for {d:?}");
            c.set_read_deadline(None).unwrap();
        }
    });
}

#[test]
fn shrinking_a_deadline_wakes_the_blocked_read() {
    rt().block_on(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(3600))).unwrap();
        let c2 = c.clone();
        let reader = go(move || {
            let t = Instant::now();
            let e = (&*c2).read(&mut [0u8; 4]).unwrap_err();
            (e.kind(), t.elapsed())
        });
        gort::time::sleep(Duration::from_millis(30));
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(20))).unwrap();
        let (kind, took) = reader.join().unwrap();
        assert_eq!(kind, ErrorKind::TimedOut);
        assert!(took < Duration::from_secs(2), "{took:?}");
    });
}

#[test]
fn a_deadline_in_one_direction_leaves_the_other_alone_and_can_be_cleared() {
    rt().block_on(|| {
        let (c, s) = pair();
        c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1))).unwrap();
        // Writes still work.
        (&c).write_all(b"abc").unwrap();
        let mut buf = [0u8; 3];
        (&s).read_exact(&mut buf).unwrap();
        // Reads keep failing until the deadline is cleared ...
        (&s).write_all(b"xyz").unwrap();
        assert_eq!((&c).read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!((&c).read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        c.set_read_deadline(None).unwrap();
        // ... and then the data that waited is there.
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
    });
}

#[test]
fn close_wakes_blocked_read_write_and_accept() {
    rt().block_on(|| {
        let (l, a) = listener();
        let c = Arc::new(TcpStream::connect(a).unwrap());
        let (s, _) = l.accept().unwrap();
        let l = Arc::new(l);
        let c_read = c.clone();
        let reader = go(move || (&*c_read).read(&mut [0u8; 4]).unwrap_err());
        // A writer blocks once the peer stops reading and the buffers fill.
        let c_write = c.clone();
        let writer = go(move || {
            let chunk = vec![7u8; 1 << 20];
            loop {
                if let Err(e) = (&*c_write).write(&chunk) {
                    return e;
                }
            }
        });
        let l2 = l.clone();
        let acceptor = go(move || l2.accept().unwrap_err());
        gort::time::sleep(Duration::from_millis(100));
        c.close().unwrap();
        l.close().unwrap();
        for (what, e) in [
            ("read", reader.join().unwrap()),
            ("write", writer.join().unwrap()),
            ("accept", acceptor.join().unwrap()),
        ] {
            assert!(is_closed(&e), "{what}: {e}");
            assert_ne!(e.kind(), ErrorKind::TimedOut);
        }
        // Closing twice is harmless: an error, nothing else.
        assert!(is_closed(&c.close().unwrap_err()));
        drop(s);
    });
}

/// Go's fdMutex: writes from several tasks never interleave. Each write is bigger than the
/// socket buffers, so it parks part-way (EAGAIN) while the others wait for the write lock; the
/// reader must see each block whole.
#[test]
fn concurrent_writes_never_interleave() {
    const BLOCK: usize = 512 * 1024;
    const WRITERS: u8 = 6;
    util::within(Duration::from_secs(30), "six concurrent writers", || {
        rt().block_on(|| {
            let (c, s) = pair();
            let c = Arc::new(c);
            let writers: Vec<_> = (1..=WRITERS)
                .map(|b| {
                    let c = c.clone();
                    go(move || (&*c).write(&vec![b; BLOCK]).unwrap())
                })
                .collect();
            let mut got = vec![0u8; BLOCK * WRITERS as usize];
            (&s).read_exact(&mut got).unwrap();
            for w in writers {
                assert_eq!(w.join().unwrap(), BLOCK, "one write call puts all its bytes out");
            }
            let mut seen = Vec::new();
            for (i, block) in got.chunks(BLOCK).enumerate() {
                let b = block[0];
                let bad = block.iter().position(|&x| x != b);
                assert_eq!(bad, None, "block {i} (of byte {b}) was interleaved with another write");
                seen.push(b);
            }
            seen.sort_unstable();
            assert_eq!(seen, (1..=WRITERS).collect::<Vec<_>>(), "every block exactly once");
        })
    });
}

/// Tasks queued for a direction's lock (behind a write that is parked in the poller) fail with
/// the closed error when the socket closes, and the close waits for all of them.
#[test]
fn close_fails_the_tasks_queued_for_the_lock() {
    util::within(Duration::from_secs(30), "close with tasks queued for the lock", || {
        rt().block_on(|| {
            let (c, _s) = pair();
            let c = Arc::new(c);
            let waiting = Arc::new(AtomicUsize::new(0));
            let writers: Vec<_> = (0..4)
                .map(|_| {
                    let (c, waiting) = (c.clone(), waiting.clone());
                    go(move || {
                        waiting.fetch_add(1, SeqCst);
                        // The peer never reads: the first write parks once the buffers fill, the
                        // others wait for its lock.
                        (&*c).write(&vec![1u8; 8 << 20])
                    })
                })
                .collect();
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let c = c.clone();
                    go(move || (&*c).read(&mut [0u8; 16]).unwrap_err())
                })
                .collect();
            while waiting.load(SeqCst) < 4 {
                gort::time::sleep(Duration::from_millis(1));
            }
            gort::time::sleep(Duration::from_millis(50));
            c.close().unwrap();
            // The write in progress reports what it put out before the close (as `write` does for
            // any error after some bytes); the queued ones never started.
            let mut partial = 0;
            for h in writers {
                match h.join().unwrap() {
                    Ok(n) => {
                        assert!(n < 8 << 20, "a write to a peer that never reads cannot finish");
                        partial += 1;
                    }
                    Err(e) => assert!(is_closed(&e), "{e}"),
                }
            }
            assert!(partial <= 1, "only the lock holder wrote anything, got {partial}");
            for h in readers {
                let e = h.join().unwrap();
                assert!(is_closed(&e), "{e}");
            }
        })
    });
}

#[test]
fn a_peer_reset_reads_as_connection_reset() {
    rt().block_on(|| {
        let (c, s) = pair();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        gort::time::sleep(Duration::from_millis(20));
        let e = (&c).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        // Writing to it fails too, and the process lives (MSG_NOSIGNAL).
        let e = (&c).write_all(&[1u8; 1 << 16]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset), "{e}");
    });
}

#[test]
fn a_big_write_to_a_slow_reader_delivers_everything() {
    rt().block_on(|| {
        let (c, s) = pair();
        const N: usize = 64 << 20;
        let writer = go(move || {
            let data = vec![3u8; N];
            (&c).write(&data).unwrap()
        });
        let mut total = 0;
        let mut buf = vec![0u8; 256 * 1024];
        while total < N {
            let n = (&s).read(&mut buf).unwrap();
            assert!(n > 0);
            total += n;
            if total % (8 << 20) < n {
                gort::time::sleep(Duration::from_millis(2)); // a slow reader, now and then
            }
        }
        assert_eq!(writer.join().unwrap(), N);
    });
}

#[test]
fn ten_thousand_cycles_leave_no_fd_behind() {
    let rt = rt();
    let before = open_fds();
    rt.block_on(|| {
        let (l, a) = listener();
        echo_server(l);
        for i in 0..10_000u32 {
            let c = TcpStream::connect(a).unwrap();
            (&c).write_all(&i.to_le_bytes()).unwrap();
            let mut b = [0u8; 4];
            (&c).read_exact(&mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), i);
            c.close().unwrap();
        }
    });
    drop(rt);
    let after = open_fds();
    assert!(after <= before, "fds: {before} before, {after} after");
}

#[test]
fn dual_stack_where_ipv6_loopback_exists() {
    rt().block_on(|| {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let a = l.local_addr().unwrap();
        echo_server(l);
        let c = TcpStream::connect(a).unwrap();
        (&c).write_all(b"v6").unwrap();
        let mut b = [0u8; 2];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"v6");
    });
}

#[test]
fn host_names_are_resolved_off_the_workers() {
    rt().block_on(|| {
        let (l, a) = listener();
        echo_server(l);
        let c = TcpStream::connect(format!("localhost:{}", a.port())).unwrap();
        (&c).write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
    });
}

#[test]
fn connect_timeout_to_a_full_backlog_times_out() {
    use reactor::socket::{Domain, Socket, Type};
    rt().block_on(|| {
        // A listener that never accepts, with the smallest backlog: once its queue is full,
        // the kernel drops further SYNs and a dial can only time out.
        let l = Socket::new(Domain::Ipv4, Type::Stream).unwrap();
        l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        l.listen(0).unwrap();
        let a = l.local_addr().unwrap().as_inet().unwrap();
        let mut held = Vec::new();
        let mut timed_out = false;
        for _ in 0..8 {
            let t = Instant::now();
            match TcpStream::connect_timeout(&a, Duration::from_millis(200)) {
                Ok(c) => held.push(c),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                    assert!(t.elapsed() >= Duration::from_millis(200));
                    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(timed_out, "{} dials got through a backlog of 0", held.len());
    });
}

#[test]
fn a_flooded_connection_does_not_starve_its_worker() {
    // One worker: a reader whose socket is always ready must still let a ticking task run.
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let (c, s) = pair();
        let s = Arc::new(s);
        let flood = {
            let c = Arc::new(c);
            go(move || {
                let chunk = vec![1u8; 64 * 1024];
                while (&*c).write_all(&chunk).is_ok() {}
            })
        };
        let s2 = s.clone();
        let reader = go(move || {
            let mut buf = vec![0u8; 64];
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(300) {
                if (&*s2).read(&mut buf).is_err() {
                    break;
                }
            }
        });
        let ticker = go(|| {
            let mut ticks = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(300) {
                gort::yield_now();
                ticks += 1;
            }
            ticks
        });
        let ticks = ticker.join().unwrap();
        reader.join().unwrap();
        s.close().unwrap();
        drop(flood);
        assert!(ticks > 100, "the ticking task ran only {ticks} times next to a flooded reader");
    });
}

/// EMFILE on accept: the error comes back, and once fds are free again the connection that
/// was already queued is accepted at once (no new edge is coming for it). Runs in a child with
/// a low fd limit (`ulimit -n`), so the rest of the test process keeps its fds.
#[test]
fn accept_after_emfile_takes_the_pending_connection() {
    const CHILD: &str = "GORT_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        rt().block_on(|| {
            let (l, a) = listener();
            let mut hog = Vec::new();
            // Leave room for exactly the client socket, then fill the table.
            let client = TcpStream::connect(a).unwrap();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
            }
            let e = l.accept().unwrap_err();
            assert_eq!(e.raw_os_error(), Some(24), "EMFILE expected, got {e}");
            hog.truncate(hog.len().saturating_sub(4));
            let t = Instant::now();
            let (s, _) = l.accept().unwrap();
            assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
            (&client).write_all(b"ok").unwrap();
            let mut b = [0u8; 2];
            (&s).read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ok");
        });
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec '{}' --exact accept_after_emfile_takes_the_pending_connection --test-threads=1",
            exe.display()
        ))
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn streams_and_listeners_move_to_and_from_std() {
    rt().block_on(|| {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std_l.local_addr().unwrap();
        let l = TcpListener::from_std(std_l).unwrap();
        let c = TcpStream::connect(a).unwrap();
        let (s, _) = l.accept().unwrap();
        // Out of the runtime: a blocking std stream that still works.
        let mut std_s = s.into_std().unwrap();
        (&c).write_all(b"to std").unwrap();
        let mut b = [0u8; 6];
        gort::blocking(move || {
            std_s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"to std");
            std_s.write_all(b"back").unwrap();
        });
        let mut back = [0u8; 4];
        (&c).read_exact(&mut back).unwrap();
        assert_eq!(&back, b"back");
        // A shared stream cannot leave.
        let c2 = c.try_clone().unwrap();
        assert!(c.into_std().is_err());
        drop(c2);
        let _std_l = l.into_std().unwrap();
    });
}
