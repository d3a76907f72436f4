//! `select!`. Several tests port the shapes of Go's `runtime/chan_test.go` (Go 1.19,
//! BSD-style license, © The Go Authors): `TestSelectStress`, `TestSelectFairness`,
//! `TestNonblockSelectRace`, `TestSelfSelect`; the others cover the claim (exactly one case
//! wins, losers are unlinked), timeouts, temporaries such as `time::after`, plain threads and
//! shutdown.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use gort::chan::{self, Receiver, RecvError, Sender, TrySendError};
use gort::sync::WaitGroup;
use gort::{context, go, select};
use util::{rt, within};

/// Go's TestSelectStress: plain senders and receivers on four channels (two unbuffered, two
/// buffered) interleave with one select that sends on all four and one that receives from all
/// four; a channel that is done is swapped for one that is never ready (Go: set to nil).
#[test]
fn go_test_select_stress() {
    const N: usize = 20_000;
    within(Duration::from_secs(120), "select stress", || {
        for workers in [1, 2] {
            rt(workers).block_on(|| {
                let chans: Vec<(Sender<u32>, Receiver<u32>)> =
                    [0, 0, 2, 3].into_iter().map(chan::bounded).collect();
                let wg = WaitGroup::new();
                wg.add(10);
                for (s, r) in &chans {
                    let (s, r, wg1, wg2) = (s.clone(), r.clone(), wg.clone(), wg.clone());
                    go(move || {
                        (0..N).for_each(|_| s.send(0).unwrap());
                        wg1.done();
                    });
                    go(move || {
                        (0..N).for_each(|_| {
                            r.recv().unwrap();
                        });
                        wg2.done();
                    });
                }
                // Never ready: a rendezvous channel whose receiver never receives.
                let (nil_tx, nil_rx) = chan::bounded::<u32>(0);
                let mut tx: Vec<Sender<u32>> = chans.iter().map(|c| c.0.clone()).collect();
                let wg1 = wg.clone();
                go(move || {
                    let mut n = [0; 4];
                    for _ in 0..4 * N {
                        let i = select! {
                            send(tx[3], 0) -> r => { r.unwrap(); 3 },
                            send(tx[2], 0) -> r => { r.unwrap(); 2 },
                            send(tx[0], 0) -> r => { r.unwrap(); 0 },
                            send(tx[1], 0) -> r => { r.unwrap(); 1 },
                        };
                        n[i] += 1;
                        if n[i] == N {
                            tx[i] = nil_tx.clone();
                        }
                    }
                    wg1.done();
                });
                let mut rx: Vec<Receiver<u32>> = chans.iter().map(|c| c.1.clone()).collect();
                let wg2 = wg.clone();
                go(move || {
                    let mut n = [0; 4];
                    for _ in 0..4 * N {
                        let i = select! {
                            recv(rx[0]) -> r => { r.unwrap(); 0 },
                            recv(rx[1]) -> r => { r.unwrap(); 1 },
                            recv(rx[2]) -> r => { r.unwrap(); 2 },
                            recv(rx[3]) -> r => { r.unwrap(); 3 },
                        };
                        n[i] += 1;
                        if n[i] == N {
                            rx[i] = chan::never();
                        }
                    }
                    wg2.done();
                });
                wg.wait();
                drop(nil_rx);
            });
        }
    });
}

/// Go's TestSelectFairness: two always-ready channels among four cases are chosen about equally
/// often. The bound is Go's: more than 4.4172 standard deviations from 1/2 fails (a chance of
/// about 1 in 100 000 for a fair choice).
#[test]
fn go_test_select_fairness() {
    const TRIALS: usize = 10_000;
    within(Duration::from_secs(60), "select fairness", || {
        rt(2).block_on(|| {
            let (c1, r1) = chan::bounded::<u8>(TRIALS + 1);
            let (c2, r2) = chan::bounded::<u8>(TRIALS + 1);
            for _ in 0..=TRIALS {
                c1.send(1).unwrap();
                c2.send(2).unwrap();
            }
            let (_c3, r3) = chan::bounded::<u8>(0);
            let (_c4, r4) = chan::bounded::<u8>(0);
            let (out, out_rx) = chan::bounded::<u8>(0);
            let (done_tx, done) = chan::bounded::<()>(0);
            let picker = go(move || {
                loop {
                    let b = select! {
                        recv(r3) -> b => b.unwrap(),
                        recv(r4) -> b => b.unwrap(),
                        recv(r1) -> b => b.unwrap(),
                        recv(r2) -> b => b.unwrap(),
                    };
                    select! {
                        send(out, b) -> r => r.unwrap(),
                        recv(done) -> _ => return,
                    }
                }
            });
            let mut cnt = [0usize; 3];
            for _ in 0..TRIALS {
                cnt[out_rx.recv().unwrap() as usize] += 1;
            }
            done_tx.close();
            picker.join().unwrap();
            assert_eq!(cnt[0], 0);
            let r = cnt[1] as f64 / TRIALS as f64;
            let e = (r - 0.5).abs();
            assert!(e <= 4.4172 / (2.0 * (TRIALS as f64).sqrt()), "unfair select: {cnt:?}");
        });
    });
}

/// Go's TestNonblockSelectRace (and its second form): one of two channels is always ready, so
/// a select with `default` must never take the default.
#[test]
fn go_test_nonblock_select_race() {
    within(Duration::from_secs(60), "nonblock select race", || {
        rt(2).block_on(|| {
            for i in 0..10_000 {
                let (c1, r1) = chan::bounded::<i32>(1);
                let (c2, r2) = chan::bounded::<i32>(1);
                c1.send(1).unwrap();
                let (r1b, r2b) = (r1.clone(), r2.clone());
                let t = go(move || {
                    select! {
                        recv(r1b) -> _ => true,
                        recv(r2b) -> _ => true,
                        default => false,
                    }
                });
                c2.send(1).unwrap();
                if i % 2 == 0 {
                    select! { recv(r1) -> _ => {}, default => {} }
                } else {
                    select! { recv(r2) -> _ => {}, default => {} }
                }
                assert!(t.join().unwrap(), "round {i}: default taken while a case was ready");
            }
        });
    });
}

/// Go's TestSelfSelect: a select that sends and receives on the same channel never matches
/// itself (unbuffered), and neither crashes nor deadlocks (buffered).
#[test]
fn go_test_self_select() {
    within(Duration::from_secs(60), "self select", || {
        for cap in [0, 10] {
            rt(2).block_on(move || {
                let (s, r) = chan::bounded::<usize>(cap);
                let handles: Vec<_> = (0..2)
                    .map(|p| {
                        let (s, r) = (s.clone(), r.clone());
                        go(move || {
                            for i in 0..1000 {
                                let got = if p == 0 || i % 2 == 0 {
                                    select! {
                                        send(s, p) -> res => { res.unwrap(); None },
                                        recv(r) -> v => Some(v.unwrap()),
                                    }
                                } else {
                                    select! {
                                        recv(r) -> v => Some(v.unwrap()),
                                        send(s, p) -> res => { res.unwrap(); None },
                                    }
                                };
                                if cap == 0 {
                                    assert_ne!(got, Some(p), "task {p} received its own value");
                                }
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap();
                }
            });
        }
    });
}

/// Two senders race to a select over both of their rendezvous channels, many times: every
/// select takes exactly one value, every other send times out with its value back, and the
/// losing case leaves nothing behind (a later `try_send` on its channel finds no receiver).
#[test]
fn exactly_one_case_wins_and_the_losers_are_unlinked() {
    within(Duration::from_secs(60), "one claim per select", || {
        rt(2).block_on(|| {
            const ROUNDS: usize = 2_000;
            let (a, ar) = chan::bounded::<usize>(0);
            let (b, br) = chan::bounded::<usize>(0);
            let sent = Arc::new(AtomicUsize::new(0));
            let senders: Vec<_> = [a.clone(), b.clone()]
                .into_iter()
                .map(|tx| {
                    let sent = sent.clone();
                    go(move || {
                        for i in 0..ROUNDS {
                            if tx.send_timeout(i, Duration::from_millis(5)).is_ok() {
                                sent.fetch_add(1, SeqCst);
                            }
                        }
                    })
                })
                .collect();
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while senders.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
                select! {
                    recv(ar) -> v => { v.unwrap(); got += 1 },
                    recv(br) -> v => { v.unwrap(); got += 1 },
                    default(Duration::from_millis(20)) => {},
                }
            }
            for h in senders {
                h.join().unwrap();
            }
            assert_eq!(got, sent.load(SeqCst), "values taken vs sends that succeeded");
            assert!(got > 0);
            // No select is waiting now: nobody may take these.
            assert!(matches!(a.try_send(1), Err(TrySendError::Full(1))));
            assert!(matches!(b.try_send(2), Err(TrySendError::Full(2))));
        });
    });
}

#[test]
fn a_losing_case_is_unlinked_at_once() {
    rt(1).block_on(|| {
        let (a, ar) = chan::bounded::<u32>(0);
        let (b, br) = chan::bounded::<u32>(0);
        let (ar2, br2) = (ar.clone(), br.clone());
        let t = go(move || {
            select! {
                recv(ar2) -> v => v.unwrap(),
                recv(br2) -> v => v.unwrap() + 100,
            }
        });
        gort::yield_now(); // the select parks on both
        a.send(1).unwrap();
        assert_eq!(t.join().unwrap(), 1);
        // The select is over: its sudog on `b` is gone, nobody receives.
        assert!(matches!(b.try_send(2), Err(TrySendError::Full(2))));
        drop((ar, br));
    });
}

#[test]
fn default_timeout_is_not_early_and_a_late_value_still_wins() {
    rt(2).block_on(|| {
        let (_s, r) = chan::bounded::<u32>(0);
        let t = Instant::now();
        let v = select! {
            recv(r) -> v => v.ok(),
            default(Duration::from_millis(40)) => None,
        };
        assert_eq!(v, None);
        assert!(t.elapsed() >= Duration::from_millis(40), "{:?}", t.elapsed());

        let (s, r) = chan::bounded::<u32>(0);
        go(move || {
            gort::time::sleep(Duration::from_millis(10));
            s.send(5).unwrap();
        });
        let v = select! {
            recv(r) -> v => v.ok(),
            default(Duration::from_secs(5)) => None,
        };
        assert_eq!(v, Some(5));
    });
}

#[test]
fn closed_channels_and_gone_receivers_are_ready() {
    rt(1).block_on(|| {
        let (s, r) = chan::bounded::<u32>(0);
        s.close();
        let res = select! { recv(r) -> v => v, default => panic!("closed is ready") };
        assert_eq!(res, Err(RecvError));

        let (s, r) = chan::bounded::<String>(0);
        drop(r);
        let back = select! {
            send(s, "v".to_string()) -> res => res.unwrap_err().into_inner(),
        };
        assert_eq!(back, "v");

        // A close wakes a parked select with the closed case.
        let (s, r) = chan::bounded::<u32>(0);
        let (_s2, r2) = chan::bounded::<u32>(0);
        let t = go(move || {
            select! {
                recv(r) -> v => v.is_err(),
                recv(r2) -> _ => false,
            }
        });
        gort::yield_now();
        s.close();
        assert!(t.join().unwrap());
    });
}

#[test]
fn after_tick_and_context_done_work_as_cases() {
    rt(2).block_on(|| {
        let (_s, r) = chan::bounded::<u32>(0);
        let t = Instant::now();
        let fired = select! {
            recv(r) -> _ => false,
            recv(gort::time::after(Duration::from_millis(30))) -> _ => true,
        };
        assert!(fired && t.elapsed() >= Duration::from_millis(30));

        let (ctx, cancel) = context::with_cancel(&context::background());
        go(move || {
            gort::time::sleep(Duration::from_millis(10));
            cancel.cancel();
        });
        let ticks = gort::time::tick(Duration::from_millis(2));
        let mut n = 0;
        loop {
            select! {
                recv(ticks) -> _ => n += 1,
                recv(ctx.done()) -> _ => break,
            }
        }
        assert!(n >= 1);
        assert!(ctx.err().is_some());
    });
}

#[test]
fn a_value_in_a_send_case_not_chosen_is_dropped_once() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    rt(1).block_on({
        let drops = drops.clone();
        move || {
            let (s, _r) = chan::bounded::<Counted>(0); // no receiver: never ready
            let (s2, r2) = chan::bounded::<u32>(1);
            s2.send(1).unwrap();
            let got = select! {
                send(s, Counted(drops.clone())) -> _ => 0,
                recv(r2) -> v => v.unwrap(),
            };
            assert_eq!(got, 1);
            assert_eq!(drops.load(SeqCst), 1, "the unsent value is dropped once");
            // And one that waits, then loses to a timeout.
            select! {
                send(s, Counted(drops.clone())) -> _ => unreachable!(),
                default(Duration::from_millis(5)) => {},
            }
            assert_eq!(drops.load(SeqCst), 2);
        }
    });
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn select_on_a_plain_thread_with_a_task_peer() {
    within(Duration::from_secs(30), "select on a thread", || {
        let runtime = rt(2);
        let (s, r) = chan::bounded::<u32>(0);
        let (s2, r2) = chan::bounded::<u32>(0);
        let handle = runtime.handle();
        // Kept open until the thread is done: a closed channel would be a ready case.
        let keep = (s.clone(), s2.clone());
        let th = thread::spawn(move || {
            let mut sum = 0;
            for _ in 0..200 {
                sum += select! {
                    recv(r) -> v => v.unwrap(),
                    recv(r2) -> v => v.unwrap() * 1000,
                };
            }
            sum
        });
        runtime.block_on(move || {
            let t = handle.go(move || (0..100).for_each(|_| s.send(1).unwrap()));
            (0..100).for_each(|_| s2.send(1).unwrap());
            t.join().unwrap();
        });
        assert_eq!(th.join().unwrap(), 100 + 100 * 1000);
        drop(keep);

        // And a task selecting against a thread that sends.
        let (s, r) = chan::bounded::<u32>(0);
        let th = thread::spawn(move || (0..100).for_each(|i| s.send(i).unwrap()));
        let sum = runtime.block_on(move || {
            let mut sum = 0;
            loop {
                select! {
                    recv(r) -> v => match v {
                        Ok(v) => sum += v,
                        Err(_) => break sum,
                    },
                }
            }
        });
        th.join().unwrap();
        assert_eq!(sum, (0..100).sum());
    });
}

#[test]
fn shutdown_unwinds_a_parked_select() {
    within(Duration::from_secs(10), "shutdown with a parked select", || {
        let (s, r) = chan::bounded::<u32>(0);
        let (s2, r2) = chan::bounded::<u32>(0);
        rt(2).block_on(move || {
            go(move || {
                select! {
                    recv(r) -> _ => {},
                    recv(r2) -> _ => {},
                }
            });
            gort::time::sleep(Duration::from_millis(10));
        });
        // The unwound select left nothing parked on the channels.
        assert!(matches!(s.try_send(1), Err(TrySendError::Disconnected(1))));
        assert!(matches!(s2.try_send(1), Err(TrySendError::Disconnected(1))));
    });
}

#[test]
fn control_flow_in_bodies_and_empty_default() {
    rt(1).block_on(|| {
        let (s, r) = chan::bounded::<u32>(4);
        for i in 0..4 {
            s.send(i).unwrap();
        }
        s.close();
        let mut seen = Vec::new();
        loop {
            select! {
                recv(r) -> v => {
                    let Ok(v) = v else { break };
                    if v == 1 {
                        continue;
                    }
                    seen.push(v);
                }
            }
        }
        assert_eq!(seen, [0, 2, 3]);
        let only_default = select! { default => 7 };
        assert_eq!(only_default, 7);
        let f = || -> Result<u32, RecvError> {
            let (_s, r) = chan::bounded::<u32>(0);
            drop(_s);
            select! { recv(r) -> v => Ok(v? + 1) }
        };
        assert_eq!(f(), Err(RecvError));
    });
}

/// More cases than the driver keeps on its stack (8): the same rules hold.
#[test]
fn a_select_over_ten_channels() {
    rt(2).block_on(|| {
        let chans: Vec<(Sender<usize>, Receiver<usize>)> =
            (0..10).map(|_| chan::bounded(0)).collect();
        for k in [0, 7, 9] {
            let (tx, rx) =
                (chans[k].0.clone(), chans.iter().map(|c| c.1.clone()).collect::<Vec<_>>());
            let t = go(move || {
                select! {
                    recv(rx[0]) -> v => v.unwrap(),
                    recv(rx[1]) -> v => v.unwrap(),
                    recv(rx[2]) -> v => v.unwrap(),
                    recv(rx[3]) -> v => v.unwrap(),
                    recv(rx[4]) -> v => v.unwrap(),
                    recv(rx[5]) -> v => v.unwrap(),
                    recv(rx[6]) -> v => v.unwrap(),
                    recv(rx[7]) -> v => v.unwrap(),
                    recv(rx[8]) -> v => v.unwrap(),
                    recv(rx[9]) -> v => v.unwrap(),
                }
            });
            gort::time::sleep(Duration::from_millis(2)); // parked on all ten
            tx.send(100 + k).unwrap();
            assert_eq!(t.join().unwrap(), 100 + k);
            // Every losing case was unlinked: nobody receives on the other nine.
            for (j, (s, _)) in chans.iter().enumerate().filter(|(j, _)| *j != k) {
                assert!(matches!(s.try_send(j), Err(TrySendError::Full(_))), "channel {j}");
            }
        }
    });
}

/// A select over two bounded channels (lock-free rings) while plain threads send on both as
/// fast as the rings take values: a send that slips into a ring between the select's first
/// look and its announce must not be missed (the select looks again and starts over), and a
/// select woken for a value that a faster receiver took polls again. Every value arrives once.
#[test]
fn select_over_rings_misses_no_value_sent_while_it_enqueues() {
    const N: u64 = 50_000;
    within(Duration::from_secs(120), "select over rings", || {
        rt(2).block_on(|| {
            let (a_tx, a_rx) = chan::bounded::<u64>(1);
            let (b_tx, b_rx) = chan::bounded::<u64>(1);
            let senders: Vec<_> = [a_tx, b_tx]
                .into_iter()
                .map(|tx| thread::spawn(move || (0..N).for_each(|v| tx.send(v).unwrap())))
                .collect();
            // Two selecting tasks and one plain receiver compete for the values.
            let selecting: Vec<_> = (0..2)
                .map(|_| {
                    let (a_rx, b_rx) = (a_rx.clone(), b_rx.clone());
                    go(move || {
                        // A closed channel is swapped for one never ready (Go: set to nil).
                        let never = chan::never::<u64>();
                        let (mut sum, mut a_open, mut b_open) = (0u64, true, true);
                        while a_open || b_open {
                            let a = if a_open { &a_rx } else { &never };
                            let b = if b_open { &b_rx } else { &never };
                            select! {
                                recv(a) -> r => match r { Ok(v) => sum += v, Err(_) => a_open = false },
                                recv(b) -> r => match r { Ok(v) => sum += v, Err(_) => b_open = false },
                            }
                        }
                        sum
                    })
                })
                .collect();
            let plain = go(move || a_rx.iter().sum::<u64>());
            drop(b_rx);
            senders.into_iter().for_each(|h| h.join().unwrap());
            let got: u64 = selecting.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                + plain.join().unwrap();
            assert_eq!(got, 2 * (N * (N - 1) / 2));
        })
    });
}

/// The window of the test above, without anyone else to rescue a missed value: a plain thread
/// sends one value at a time on one of two rings and waits for the select's acknowledgement
/// before the next. A value that lands in a ring just before the select announces itself must
/// be seen by its second look, or both sides would wait for ever.
#[test]
fn select_over_rings_sees_a_value_sent_just_before_it_parks() {
    const N: u64 = 30_000;
    within(Duration::from_secs(120), "select ring window", || {
        rt(2).block_on(|| {
            let (a_tx, a_rx) = chan::bounded::<u64>(1);
            let (b_tx, b_rx) = chan::bounded::<u64>(1);
            let (ack_tx, ack_rx) = chan::bounded::<u64>(1);
            let sender = thread::spawn(move || {
                for v in 0..N {
                    let tx = if v % 2 == 0 { &a_tx } else { &b_tx };
                    tx.send(v).unwrap();
                    assert_eq!(ack_rx.recv(), Ok(v));
                }
            });
            for _ in 0..N {
                let v = select! {
                    recv(a_rx) -> r => r.unwrap(),
                    recv(b_rx) -> r => r.unwrap(),
                };
                ack_tx.send(v).unwrap();
            }
            sender.join().unwrap();
        })
    });
}
