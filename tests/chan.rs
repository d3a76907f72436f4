//! Channels. Several tests port the shapes of Go's `runtime/chan_test.go` (Go 1.19,
//! BSD-style license, © The Go Authors): `TestChan`, `TestNonblockRecvRace`,
//! `TestMultiConsumer`; the others cover what Rust adds (values back on failure, drops).

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use gort::chan::{self, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use gort::go;
use util::{rt, within};

/// Go's TestChan, for each capacity.
#[test]
fn go_test_chan() {
    within(Duration::from_secs(60), "chan", || {
        rt(2).block_on(|| {
            for cap in [0usize, 1, 2, 10, 100] {
                // A receive from an empty channel blocks.
                let (s, r) = chan::bounded::<usize>(cap);
                assert_eq!(
                    r.recv_timeout(Duration::from_millis(5)),
                    Err(RecvTimeoutError::Timeout)
                );
                assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
                // A send to a full channel blocks.
                for i in 0..cap {
                    s.send(i).unwrap();
                }
                assert!(s.send_timeout(99, Duration::from_millis(5)).unwrap_err().is_timeout());
                assert!(s.try_send(99).unwrap_err().is_full());
                // FIFO.
                for i in 0..cap {
                    assert_eq!(r.recv().unwrap(), i);
                }
                // Closed: buffered values drain first, then errors.
                let (s, r) = chan::bounded::<usize>(cap);
                for i in 0..cap {
                    s.send(i).unwrap();
                }
                s.close();
                for i in 0..cap {
                    assert_eq!(r.recv().unwrap(), i);
                }
                assert!(r.recv().is_err());
                assert_eq!(s.send(7).unwrap_err().into_inner(), 7);
                // Many senders and receivers: every value arrives once.
                let (s, r) = chan::bounded::<usize>(cap);
                let senders: Vec<_> = (0..4)
                    .map(|k| {
                        let s = s.clone();
                        go(move || (0..1000).for_each(|i| s.send(k * 1000 + i).unwrap()))
                    })
                    .collect();
                drop(s);
                let receivers: Vec<_> = (0..4)
                    .map(|_| {
                        let r = r.clone();
                        go(move || r.iter().map(|v| v as u64).collect::<Vec<_>>())
                    })
                    .collect();
                senders.into_iter().for_each(|h| h.join().unwrap());
                let mut all: Vec<u64> =
                    receivers.into_iter().flat_map(|h| h.join().unwrap()).collect();
                all.sort();
                assert_eq!(all, (0..4000).collect::<Vec<u64>>(), "cap {cap}");
            }
        })
    });
}

/// Go's TestNonblockRecvRace: a value sent before a non-blocking receive is always seen.
#[test]
fn go_nonblock_recv_race() {
    within(Duration::from_secs(60), "chan", || {
        rt(2).block_on(|| {
            for _ in 0..10_000 {
                let (s, r) = chan::bounded::<i32>(1);
                s.send(1).unwrap();
                let h = go(move || r.try_recv());
                assert_eq!(h.join().unwrap(), Ok(1));
            }
        })
    });
}

/// Go's TestMultiConsumer: nwork workers share one channel of ints, each adds what it
/// receives; the sums and counts must match what was sent.
#[test]
fn go_multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 27_182;
    within(Duration::from_secs(120), "chan", || {
        rt(2).block_on(|| {
            let pn = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31];
            let (s, r) = chan::bounded::<usize>(1);
            let (rs, rr) = chan::bounded::<(usize, usize)>(NWORK);
            for _ in 0..NWORK {
                let (r, rs) = (r.clone(), rs.clone());
                go(move || {
                    let (mut sum, mut n) = (0, 0);
                    for v in r.iter() {
                        // Mess with the fairness of the channel's queues, as Go's test does.
                        if v.is_multiple_of(3) {
                            gort::yield_now();
                        }
                        sum += v;
                        n += 1;
                    }
                    rs.send((n, sum)).unwrap();
                });
            }
            drop((r, rs));
            let mut expect = 0;
            for i in 0..NITER {
                let v = pn[i % pn.len()];
                expect += v;
                s.send(v).unwrap();
            }
            drop(s);
            let (mut n, mut sum) = (0, 0);
            for (wn, wsum) in rr.iter() {
                n += wn;
                sum += wsum;
            }
            assert_eq!((n, sum), (NITER, expect));
        })
    });
}

#[test]
fn an_unbuffered_send_completes_only_when_taken() {
    rt(2).block_on(|| {
        let (s, r) = chan::bounded::<u32>(0);
        let taken = Arc::new(AtomicUsize::new(0));
        let t2 = taken.clone();
        let sender = go(move || {
            s.send(5).unwrap();
            t2.load(SeqCst)
        });
        gort::time::sleep(Duration::from_millis(30));
        assert!(!sender.is_finished(), "a rendezvous send completed with nobody receiving");
        taken.store(1, SeqCst);
        assert_eq!(r.recv().unwrap(), 5);
        assert_eq!(sender.join().unwrap(), 1);
    });
}

#[test]
fn close_wakes_every_receiver_and_gives_parked_senders_their_values() {
    rt(2).block_on(|| {
        let (s, r) = chan::bounded::<u32>(0);
        let receivers: Vec<_> = (0..10)
            .map(|_| {
                let r = r.clone();
                go(move || r.recv())
            })
            .collect();
        gort::time::sleep(Duration::from_millis(20));
        s.close();
        for h in receivers {
            assert!(h.join().unwrap().is_err());
        }
        let (s, r) = chan::bounded::<u32>(0);
        let senders: Vec<_> = (0..10)
            .map(|i| {
                let s = s.clone();
                go(move || s.send(i).unwrap_err().into_inner())
            })
            .collect();
        gort::time::sleep(Duration::from_millis(20));
        s.close();
        let mut back: Vec<u32> = senders.into_iter().map(|h| h.join().unwrap()).collect();
        back.sort();
        assert_eq!(back, (0..10).collect::<Vec<_>>());
        drop(r);
    });
}

#[test]
fn dropping_every_receiver_makes_sends_fail() {
    rt(2).block_on(|| {
        let (s, r) = chan::bounded::<u32>(0);
        let blocked = {
            let s = s.clone();
            go(move || s.send(1))
        };
        gort::time::sleep(Duration::from_millis(20));
        drop(r);
        assert_eq!(blocked.join().unwrap().unwrap_err().into_inner(), 1);
        assert!(matches!(s.try_send(2), Err(TrySendError::Disconnected(2))));
    });
}

#[test]
fn dropping_every_sender_closes() {
    rt(2).block_on(|| {
        let (s, r) = chan::unbounded::<u32>();
        s.send(1).unwrap();
        drop(s);
        assert_eq!(r.recv(), Ok(1));
        assert!(r.recv().is_err());
        assert!(r.is_closed());
    });
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn buffered_items_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let (s, r) = chan::bounded::<Counted>(100);
        for _ in 0..100 {
            s.send(Counted(drops.clone())).unwrap();
        }
        // Some received and dropped, the rest go with the channel.
        for _ in 0..30 {
            drop(r.recv().unwrap());
        }
        assert_eq!(drops.load(SeqCst), 30);
        let (u, ur) = chan::unbounded::<Counted>();
        for _ in 0..50 {
            u.send(Counted(drops.clone())).unwrap();
        }
        drop((s, r, u, ur));
    }
    assert_eq!(drops.load(SeqCst), 150);
}

#[test]
fn plain_threads_send_and_receive_with_tasks() {
    within(Duration::from_secs(30), "chan", || {
        let rt = rt(2);
        let (s, r) = chan::bounded::<u64>(4);
        let (back_s, back_r) = chan::bounded::<u64>(0);
        // A task receives from a thread and answers on a rendezvous channel.
        let task = rt.handle().go(move || {
            for v in r.iter() {
                back_s.send(v * 2).unwrap();
            }
        });
        let thread_sender = thread::spawn(move || (0..1000).for_each(|i| s.send(i).unwrap()));
        let sum: u64 = (0..1000).map(|_| back_r.recv().unwrap()).sum();
        thread_sender.join().unwrap();
        task.join().unwrap();
        assert_eq!(sum, 2 * 999 * 1000 / 2);
    });
}

#[test]
fn timeouts_are_never_early_and_never_lose_a_value() {
    rt(2).block_on(|| {
        let (s, r) = chan::bounded::<u32>(0);
        for ms in [1u64, 10, 30] {
            let t = Instant::now();
            assert_eq!(r.recv_timeout(Duration::from_millis(ms)), Err(RecvTimeoutError::Timeout));
            assert!(t.elapsed() >= Duration::from_millis(ms));
            let t = Instant::now();
            assert!(matches!(
                s.send_timeout(1, Duration::from_millis(ms)),
                Err(SendTimeoutError::Timeout(1))
            ));
            assert!(t.elapsed() >= Duration::from_millis(ms));
        }
        // Racing timeouts against sends: each value is received once or comes back.
        let (s, r) = chan::bounded::<u32>(0);
        let sender = go(move || {
            let mut back = 0;
            for i in 0..2000 {
                if s.send_timeout(i, Duration::from_micros(50)).is_err() {
                    back += 1;
                }
            }
            back
        });
        let mut got = 0;
        loop {
            match r.recv_timeout(Duration::from_micros(70)) {
                Ok(_) => got += 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        assert_eq!(got + sender.join().unwrap(), 2000);
    });
}

/// Timed sends whose timers fire while receivers take their values: a sender woken by its
/// timer may find, when it takes the lock to settle, that a receiver completed it meanwhile.
/// Each value is received exactly once or comes back to its sender, never both, never
/// neither. (With 32 senders and two slow receivers, about 70% of the sends time out, their
/// timers firing in bursts while the receivers keep taking values.)
#[test]
fn timed_sends_racing_receivers_deliver_or_return_each_value_once() {
    const SENDERS: u32 = 32;
    const PER: u32 = 200;
    within(Duration::from_secs(60), "timed sends racing receivers", || {
        rt(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let senders: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    go(move || {
                        let mut back = Vec::new();
                        for i in 0..PER {
                            let v = s * PER + i;
                            let wait = Duration::from_micros(100);
                            if let Err(e) = tx.send_timeout(v, wait) {
                                assert!(e.is_timeout(), "{e:?}");
                                back.push(e.into_inner());
                            }
                        }
                        back
                    })
                })
                .collect();
            drop(tx);
            // Slow receivers that look all the time: most sends time out, and the timed-out
            // senders, woken together at a timer tick, race the receivers for their sudogs.
            let receive = |rx: chan::Receiver<u32>| {
                let mut got = Vec::new();
                loop {
                    match rx.try_recv() {
                        Ok(v) => {
                            got.push(v);
                            let until = Instant::now() + Duration::from_micros(20);
                            while Instant::now() < until {
                                std::hint::spin_loop();
                            }
                        }
                        Err(TryRecvError::Empty) => std::hint::spin_loop(),
                        Err(TryRecvError::Disconnected) => return got,
                    }
                }
            };
            let thread_rx: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    thread::spawn(move || receive(rx))
                })
                .collect();
            drop(rx);
            let mut seen = vec![0u8; (SENDERS * PER) as usize];
            let mut count = |vs: Vec<u32>| vs.into_iter().for_each(|v| seen[v as usize] += 1);
            senders.into_iter().for_each(|h| count(h.join().unwrap()));
            thread_rx.into_iter().for_each(|h| count(h.join().unwrap()));
            let wrong: Vec<usize> = (0..seen.len()).filter(|&v| seen[v] != 1).collect();
            assert!(
                wrong.is_empty(),
                "values seen other than once: {:?}",
                &wrong[..wrong.len().min(10)]
            );
        })
    });
}

#[test]
fn never_never_receives() {
    rt(1).block_on(|| {
        let r = chan::never::<u8>();
        let t = Instant::now();
        assert_eq!(r.recv_timeout(Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
        assert!(t.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn shutdown_unwinds_parked_sends_and_receives_and_leaves_no_waiter() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (s, r) = chan::bounded::<Counted>(0);
    let (s2, r2) = chan::bounded::<u32>(0);
    let (sc, r2c, d) = (s.clone(), r2.clone(), drops.clone());
    within(Duration::from_secs(10), "shutdown with parked channel ops", move || {
        rt(2).block_on(move || {
            go(move || sc.send(Counted(d)).is_ok());
            go(move || r2c.recv().is_ok());
            gort::time::sleep(Duration::from_millis(10));
        });
    });
    // The unsent value went with the unwound task, once; nothing is left parked.
    assert_eq!(drops.load(SeqCst), 1);
    assert!(matches!(r.try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(s2.try_send(1), Err(TrySendError::Full(1))));
}

/// Bounded channels keep their values in a lock-free ring that sends and receives use without
/// the channel lock while nobody waits. Many tasks on two workers plus plain threads, on both
/// sides, through small rings (where the fast path and parking alternate all the time): every
/// value arrives exactly once, and nobody stays parked while the ring has what it waits for
/// (a lost wake-up would hang here).
#[test]
fn bounded_rings_lose_and_repeat_nothing_across_workers_and_threads() {
    const PER: usize = 20_000;
    within(Duration::from_secs(120), "ring mpmc", || {
        for cap in [1, 2, 64] {
            rt(2).block_on(move || {
                let (tx, rx) = chan::bounded::<usize>(cap);
                let (dtx, drx) = chan::unbounded::<Vec<usize>>();
                let task_senders: Vec<_> = (0..4)
                    .map(|s| {
                        let tx = tx.clone();
                        go(move || (0..PER).for_each(|i| tx.send(s * PER + i).unwrap()))
                    })
                    .collect();
                let thread_senders: Vec<_> = (4..6)
                    .map(|s| {
                        let tx = tx.clone();
                        thread::spawn(move || {
                            for i in 0..PER {
                                // Mix the send that never waits with one that waits a little.
                                let mut v = s * PER + i;
                                loop {
                                    match tx.try_send(v) {
                                        Ok(()) => break,
                                        Err(TrySendError::Full(back)) => v = back,
                                        Err(e) => panic!("{e:?}"),
                                    }
                                    match tx.send_timeout(v, Duration::from_millis(1)) {
                                        Ok(()) => break,
                                        Err(SendTimeoutError::Timeout(back)) => v = back,
                                        Err(e) => panic!("{e:?}"),
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                drop(tx);
                for _ in 0..4 {
                    let (rx, dtx) = (rx.clone(), dtx.clone());
                    go(move || dtx.send(rx.iter().collect()).unwrap());
                }
                let thread_rx = {
                    let (rx, dtx) = (rx.clone(), dtx.clone());
                    thread::spawn(move || {
                        let mut got = Vec::new();
                        loop {
                            match rx.recv_timeout(Duration::from_millis(1)) {
                                Ok(v) => got.push(v),
                                Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        dtx.send(got).unwrap();
                    })
                };
                drop((rx, dtx));
                task_senders.into_iter().for_each(|h| h.join().unwrap());
                thread_senders.into_iter().for_each(|h| h.join().unwrap());
                let mut all: Vec<usize> = drx.iter().flatten().collect();
                thread_rx.join().unwrap();
                all.sort_unstable();
                assert_eq!(all.len(), 6 * PER, "cap {cap}: values lost or repeated");
                assert!(all.iter().enumerate().all(|(i, &v)| i == v), "cap {cap}: wrong values");
            })
        }
    });
}

/// A close racing with sends into a ring: a send that returned `Ok` was received, one that
/// failed got its value back, and receivers parked at the close get the values still in the
/// ring before they are told the channel is closed (Go: a value sent before `close` is never
/// lost).
#[test]
fn close_racing_ring_sends_loses_no_value() {
    within(Duration::from_secs(60), "ring close race", || {
        rt(2).block_on(|| {
            for round in 0..1000 {
                let (tx, rx) = chan::bounded::<u32>(1 + round % 4);
                let receivers: Vec<_> = (0..1 + round % 2)
                    .map(|_| {
                        let rx = rx.clone();
                        go(move || rx.iter().count())
                    })
                    .collect();
                let started = Arc::new(AtomicUsize::new(0));
                let senders: Vec<_> = (0..3)
                    .map(|_| {
                        let (tx, started) = (tx.clone(), started.clone());
                        go(move || {
                            let mut n = 0usize;
                            while tx.send(n as u32).is_ok() {
                                n += 1;
                                started.fetch_add(1, SeqCst);
                            }
                            n
                        })
                    })
                    .collect();
                // Close while all three keep sending.
                while started.load(SeqCst) < 10 + round {
                    gort::yield_now();
                }
                tx.close();
                let sent: usize = senders.into_iter().map(|h| h.join().unwrap()).sum();
                let got: usize = receivers.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(got, sent, "round {round}");
                drop(rx);
            }
        })
    });
}

/// Go's `len(ch)` and `cap(ch)`, and the closed flag, on each kind of channel (a bounded one
/// keeps its values in a ring, the others in the locked state), from both halves.
#[test]
fn len_capacity_and_is_closed_as_in_go() {
    let (tx, rx) = chan::bounded::<u8>(3);
    assert_eq!((tx.len(), rx.capacity(), tx.is_empty()), (0, Some(3), true));
    for (i, v) in [1, 2, 3].into_iter().enumerate() {
        tx.try_send(v).unwrap();
        assert_eq!((tx.len(), rx.len()), (i + 1, i + 1));
    }
    assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(4).unwrap(); // the ring wraps
    assert_eq!(rx.len(), 3);
    assert!(!rx.is_closed());
    tx.close();
    assert!(rx.is_closed() && tx.is_closed());
    assert_eq!(rx.iter().collect::<Vec<_>>(), [2, 3, 4], "a closed channel drains in order");
    assert_eq!((rx.len(), rx.is_empty()), (0, true));

    let (tx, rx) = chan::bounded::<u8>(0);
    assert_eq!((tx.len(), rx.capacity()), (0, Some(0)));
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))), "no receiver waits");

    let (tx, rx) = chan::unbounded::<u8>();
    (0..100).for_each(|v| tx.send(v).unwrap());
    assert_eq!((rx.len(), rx.capacity()), (100, None));
    drop(tx);
    assert!(rx.is_closed(), "the last sender closes");
    assert_eq!(rx.iter().count(), 100);
}

/// One value at a time through a ring, each acknowledged before the next, between a plain
/// thread and a task, both ways: a value (or room) that appears just before the other side
/// parks must be seen by its announced second look, or both would wait for ever.
#[test]
fn a_ring_wait_sees_what_came_just_before_it_parked() {
    const N: u32 = 30_000;
    within(Duration::from_secs(120), "ring wait window", || {
        rt(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(1);
            let (ack_tx, ack_rx) = chan::bounded::<u32>(1);
            let thread = thread::spawn(move || {
                for v in 0..N {
                    tx.send(v).unwrap();
                    assert_eq!(ack_rx.recv(), Ok(v));
                }
            });
            for v in 0..N {
                assert_eq!(rx.recv(), Ok(v));
                ack_tx.send(v).unwrap();
            }
            thread.join().unwrap();
        })
    });
}
