//! Tasks and the scheduler through the public API: spawn, join, park/unpark, panics, homes,
//! `blocking`, `Handle::go`, shutdown.
//!
//! Run them once more with every wake-up sent through the cross-worker inbox:
//! `GORT_STRESS_INBOX=1 cargo test --test sched_tasks` (CI does).

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gort::{Runtime, task};
use util::{rt, within};

#[test]
fn hundred_thousand_tasks_spawned_and_joined() {
    for workers in [1, 4] {
        let sum = within(Duration::from_secs(120), "100k tasks", move || {
            rt(workers).block_on(|| {
                let hs: Vec<_> = (0..100_000u64).map(|i| gort::go(move || i * 2)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            })
        });
        assert_eq!(sum, 100_000 * 99_999, "{workers} workers");
    }
}

#[test]
fn million_park_unpark_ping_pongs() {
    // Two tasks hand a turn back and forth with park/unpark: 1 000 000 hand-offs in all. A lost
    // wake-up leaves both parked forever; `within` turns that into a failure.
    const ROUNDS: usize = 500_000;
    for workers in [1, 4] {
        within(Duration::from_secs(120), "ping-pong", move || {
            rt(workers).block_on(move || {
                let turn = Arc::new(AtomicUsize::new(0)); // even: ping's turn, odd: pong's
                // Swap unparkers through std channels that never block: ping's is sent before
                // pong starts; pong's is polled for with yields.
                let (to_pong, from_ping) = mpsc::channel::<task::Unparker>();
                let (to_ping, from_pong) = mpsc::channel::<task::Unparker>();
                to_pong.send(task::unparker()).unwrap();
                let t2 = turn.clone();
                let pong = gort::go(move || {
                    let ping = from_ping.try_recv().unwrap();
                    to_ping.send(task::unparker()).unwrap();
                    for i in 0..ROUNDS {
                        while t2.load(SeqCst) != 2 * i + 1 {
                            task::park();
                        }
                        t2.store(2 * i + 2, SeqCst);
                        ping.unpark();
                    }
                });
                let pong_u = loop {
                    match from_pong.try_recv() {
                        Ok(u) => break u,
                        Err(_) => gort::yield_now(),
                    }
                };
                for i in 0..ROUNDS {
                    while turn.load(SeqCst) != 2 * i {
                        task::park();
                    }
                    turn.store(2 * i + 1, SeqCst);
                    pong_u.unpark();
                }
                pong.join().unwrap();
                assert_eq!(turn.load(SeqCst), 2 * ROUNDS);
            })
        });
    }
}

#[test]
fn a_panicking_task_reports_its_payload_and_the_others_run_on() {
    let rt = rt(2);
    rt.block_on(|| {
        let ok = gort::go(|| {
            gort::time::sleep(Duration::from_millis(20));
            7
        });
        let bad = gort::go(|| -> u32 { panic!("boom {}", 42) });
        let err = bad.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("boom 42"));
        assert_eq!(ok.join().unwrap(), 7);
        // The worker that ran the panicking task still serves new ones.
        let more: Vec<_> = (0..100).map(|i| gort::go(move || i)).collect();
        assert_eq!(more.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 4950);
    });
}

#[test]
fn a_task_never_changes_thread_once_started() {
    // 64 tasks × 160 parks (sleeps, yields, unpark hand-offs) on 4 workers, each recording
    // the thread it runs on after every park: one thread per task, always.
    let moved = within(Duration::from_secs(120), "homes", || {
        rt(4).block_on(|| {
            let hs: Vec<_> = (0..64)
                .map(|i| {
                    gort::go(move || {
                        let home = thread::current().id();
                        let mut seen = HashSet::new();
                        for k in 0..160 {
                            match k % 3 {
                                0 => gort::yield_now(),
                                1 => gort::time::sleep(Duration::from_micros(50 + i)),
                                _ => {
                                    let u = task::unparker();
                                    gort::go(move || u.unpark());
                                    task::park();
                                }
                            }
                            seen.insert(thread::current().id());
                        }
                        seen.len() == 1 && seen.contains(&home)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).filter(|ok| !ok).count()
        })
    });
    assert_eq!(moved, 0, "tasks that changed thread");
}

#[test]
fn blocking_keeps_the_other_tasks_running() {
    let rt = rt(1);
    let ticks = rt.block_on(|| {
        let sleeper = gort::go(|| gort::blocking(|| thread::sleep(Duration::from_secs(1))));
        // With one worker, these ticks run only if the blocking call left the worker free.
        let start = Instant::now();
        let mut ticks = 0;
        while !sleeper.is_finished() && start.elapsed() < Duration::from_secs(5) {
            gort::time::sleep(Duration::from_millis(10));
            ticks += 1;
        }
        sleeper.join().unwrap();
        ticks
    });
    assert!(ticks >= 20, "only {ticks} ticks while a blocking call slept 1 s");
    // A panic inside the blocking call comes back to the caller.
    let r = rt.block_on(|| gort::go(|| gort::blocking(|| panic!("in the pool"))).join());
    assert_eq!(r.unwrap_err().panic_message(), Some("in the pool"));
}

#[test]
fn handle_go_from_a_plain_thread_runs_promptly() {
    let rt = rt(2);
    let h = rt.handle();
    // Let the workers go to sleep first: the spawn must wake one.
    thread::sleep(Duration::from_millis(50));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let sent = Instant::now();
        let started = h.go(Instant::now).join().unwrap();
        worst = worst.max(started - sent);
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        worst < Duration::from_millis(10),
        "a task from a plain thread started after {worst:?}"
    );
}

#[test]
fn join_from_a_plain_thread_blocks_the_thread() {
    let rt = rt(2);
    let h = rt.handle().go(|| {
        gort::time::sleep(Duration::from_millis(30));
        "done"
    });
    assert_eq!(h.join().unwrap(), "done");
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn shutdown_unwinds_parked_tasks_and_runs_their_destructors() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let t = Instant::now();
    let rt = rt(2);
    rt.block_on(move || {
        for i in 0..50 {
            let guard = CountDrop(d.clone());
            gort::go(move || {
                let _g = guard;
                if i % 2 == 0 {
                    gort::time::sleep(Duration::from_secs(3600));
                } else {
                    loop {
                        task::park(); // nobody will unpark it
                    }
                }
            });
        }
        // Let them all park.
        gort::time::sleep(Duration::from_millis(50));
    });
    drop(rt);
    assert!(t.elapsed() < Duration::from_secs(1) + Duration::from_millis(50), "{:?}", t.elapsed());
    assert_eq!(dropped.load(SeqCst), 50, "every parked task's destructors ran");
}

#[test]
fn run_returns_the_main_value_and_cancels_the_rest() {
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let (v, h) = gort::run(move || {
        let h = gort::go(move || {
            s.store(true, SeqCst);
            gort::time::sleep(Duration::from_secs(3600));
        });
        gort::time::sleep(Duration::from_millis(20));
        (5, h)
    });
    assert_eq!(v, 5);
    assert!(started.load(SeqCst));
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
#[should_panic(expected = "outside a runtime")]
fn go_outside_a_runtime_says_what_to_do() {
    let _ = gort::go(|| ());
}

#[test]
fn zero_workers_is_an_error() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_spawn_after_shutdown_is_cancelled_not_stranded() {
    let rt = rt(2);
    let handle = rt.handle();
    drop(rt);
    let h = handle.go(|| 1);
    let r = within(Duration::from_secs(10), "join after shutdown", move || h.join());
    assert!(r.unwrap_err().is_cancelled());
}

#[test]
fn direct_yields_keep_homes_counts_and_round_robin_order() {
    // 8 tasks × 100 000 yields on one worker: nearly every yield switches task to task without
    // the scheduler (worker.rs, "direct yield"). Each task checks its thread never changes;
    // the shared counter must add up; and since the order is round robin, no task may finish
    // while another lags behind by more than the start-up skew.
    const TASKS: usize = 8;
    const YIELDS: usize = 100_000;
    let lag = within(Duration::from_secs(120), "direct yields", || {
        rt(1).block_on(|| {
            let total = Arc::new(AtomicUsize::new(0));
            let progress: Arc<Vec<AtomicUsize>> =
                Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
            let hs: Vec<_> = (0..TASKS)
                .map(|i| {
                    let (total, progress) = (total.clone(), progress.clone());
                    gort::go(move || {
                        let home = thread::current().id();
                        for _ in 0..YIELDS {
                            gort::yield_now();
                            assert_eq!(thread::current().id(), home, "task {i} moved");
                            total.fetch_add(1, SeqCst);
                            progress[i].fetch_add(1, SeqCst);
                        }
                        // How far behind the slowest task is when this one is done.
                        YIELDS - progress.iter().map(|p| p.load(SeqCst)).min().unwrap()
                    })
                })
                .collect();
            let lag = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
            assert_eq!(total.load(SeqCst), TASKS * YIELDS);
            lag
        })
    });
    // A few yields of skew come from the start (the first tasks yield through the scheduler
    // while the others are still unstarted in `runq`); unfairness would show as thousands.
    assert!(lag <= TASKS, "a task finished {lag} yields ahead of another: not round robin");
}

#[test]
fn direct_yields_mixed_with_sleeps_parks_and_exits() {
    // Tasks that yield in tight loops while others sleep, park/unpark and exit at different
    // times: timers must still fire (every 16th direct yield looks at the timers), no
    // wake-up may be lost, and every task stays on its thread.
    for workers in [1, 2] {
        let sum = within(Duration::from_secs(120), "mixed yields", move || {
            rt(workers).block_on(|| {
                let stop = Arc::new(AtomicBool::new(false));
                // Spinners: yield until the sleeper below says stop; each exits at its own time.
                let spinners: Vec<_> = (0..4)
                    .map(|i| {
                        let stop = stop.clone();
                        gort::go(move || {
                            let home = thread::current().id();
                            let mut n = 0u64;
                            while !stop.load(SeqCst) || n < 1000 * (i + 1) {
                                gort::yield_now();
                                assert_eq!(thread::current().id(), home);
                                n += 1;
                            }
                        })
                    })
                    .collect();
                // Mixers: yields, sleeps and park/unpark hand-offs, interleaved.
                let mixers: Vec<_> = (0..8u64)
                    .map(|i| {
                        gort::go(move || {
                            let home = thread::current().id();
                            for k in 0..300u64 {
                                match (k + i) % 4 {
                                    0 | 1 => gort::yield_now(),
                                    2 => gort::time::sleep(Duration::from_micros(20 + i)),
                                    _ => {
                                        let u = task::unparker();
                                        gort::go(move || {
                                            gort::yield_now();
                                            u.unpark();
                                        });
                                        task::park();
                                    }
                                }
                                assert_eq!(thread::current().id(), home);
                            }
                            i
                        })
                    })
                    .collect();
                // A sleeper among the spinners: its timer must fire although they never park.
                gort::time::sleep(Duration::from_millis(20));
                let sum: u64 = mixers.into_iter().map(|h| h.join().unwrap()).sum();
                stop.store(true, SeqCst);
                for h in spinners {
                    h.join().unwrap();
                }
                sum
            })
        });
        assert_eq!(sum, 28, "{workers} workers");
    }
}

#[test]
fn shutdown_unwinds_tasks_that_only_yield() {
    // Tasks that never park, only yield to each other, are still cancelled at shutdown and
    // their destructors run.
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    within(Duration::from_secs(30), "shutdown of yielders", move || {
        rt(1).block_on(move || {
            for _ in 0..6 {
                let guard = CountDrop(d.clone());
                gort::go(move || {
                    let _g = guard;
                    loop {
                        gort::yield_now();
                    }
                });
            }
            gort::time::sleep(Duration::from_millis(20));
        });
    });
    assert_eq!(dropped.load(SeqCst), 6, "every yielding task's destructors ran");
}

/// A channel ping-pong hands the worker straight from one task to the other (the direct
/// park). It must still leave turns to the other tasks queued on the worker, and let timers
/// fire: the pair keeps going until a sleeper has woken 3 times, and a yielding task must have
/// run many times meanwhile (with no fairness it would run 0 times until the pair stops).
#[test]
fn a_ping_pong_pair_leaves_turns_to_queued_tasks_and_timers() {
    within(Duration::from_secs(60), "ping-pong fairness", || {
        rt(1).block_on(|| {
            let woke = Arc::new(AtomicUsize::new(0));
            let turns = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (w, st) = (woke.clone(), stop.clone());
            let sleeper = gort::go(move || {
                while !st.load(SeqCst) {
                    gort::time::sleep(Duration::from_millis(2));
                    w.fetch_add(1, SeqCst);
                }
            });
            let (t, st) = (turns.clone(), stop.clone());
            let yielder = gort::go(move || {
                while !st.load(SeqCst) {
                    t.fetch_add(1, SeqCst);
                    gort::yield_now();
                }
            });
            gort::yield_now(); // both started
            let (ping_tx, ping_rx) = gort::chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = gort::chan::bounded::<u64>(0);
            let echo = gort::go(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let turns_before = turns.load(SeqCst);
            let mut rounds = 0u64;
            while woke.load(SeqCst) < 3 {
                ping_tx.send(rounds).unwrap();
                assert_eq!(pong_rx.recv().unwrap(), rounds);
                rounds += 1;
            }
            let yields = turns.load(SeqCst) - turns_before;
            stop.store(true, SeqCst);
            drop(ping_tx);
            echo.join().unwrap();
            sleeper.join().unwrap();
            yielder.join().unwrap();
            // One turn of the yielder per few hand-offs (`find_local`'s runnext streak of 3).
            assert!(yields as u64 >= rounds / 8, "{yields} turns in {rounds} round trips");
        });
    });
}
