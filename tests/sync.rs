//! `gort::sync` through the public API: WaitGroup, Mutex, RwLock, Once, from tasks and plain
//! threads. Every test runs under a time limit, so a lost wake-up fails instead of hanging.
//!
//! Run them once more with every wake-up sent through the cross-worker inbox:
//! `GORT_STRESS_INBOX=1 cargo test --test sync`.

mod util;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gort::sync::{Mutex, Once, RwLock, WaitGroup};
use util::{rt, within};

const LIMIT: Duration = Duration::from_secs(60);

/// Raises the running maximum `max` to `n`.
fn note_max(max: &AtomicUsize, n: usize) {
    max.fetch_max(n, SeqCst);
}

// ---------------------------------------------------------------- WaitGroup

#[test]
fn waitgroup_barrier_of_1000_tasks_on_2_workers() {
    within(LIMIT, "barrier", || {
        rt(2).block_on(|| {
            const N: usize = 1000;
            let wg = WaitGroup::new();
            let arrived = Arc::new(AtomicUsize::new(0));
            wg.add(N as isize);
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let (wg, arrived) = (wg.clone(), arrived.clone());
                    gort::go(move || {
                        if i % 7 == 0 {
                            gort::yield_now();
                        }
                        arrived.fetch_add(1, SeqCst);
                        wg.done();
                        // Every task waits on the same group: all must be released.
                        wg.wait();
                        assert_eq!(arrived.load(SeqCst), N, "released before all arrived");
                    })
                })
                .collect();
            wg.wait();
            assert_eq!(arrived.load(SeqCst), N);
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(wg.count(), 0);
        })
    });
}

#[test]
fn waitgroup_wait_returns_at_once_at_zero() {
    within(LIMIT, "zero", || {
        let wg = WaitGroup::new();
        wg.wait(); // a plain thread, counter 0
        rt(1).block_on(move || {
            wg.wait();
            wg.add(2);
            wg.add(-2);
            wg.wait();
        });
    });
}

#[test]
fn waitgroup_wait_from_a_plain_thread() {
    within(LIMIT, "thread waits for tasks", || {
        let runtime = rt(2);
        let wg = WaitGroup::new();
        let n = Arc::new(AtomicUsize::new(0));
        wg.add(10);
        let waiter = {
            let (wg, n) = (wg.clone(), n.clone());
            thread::spawn(move || {
                wg.wait();
                n.load(SeqCst)
            })
        };
        runtime.block_on(move || {
            for i in 0..10u64 {
                let (wg, n) = (wg.clone(), n.clone());
                gort::go(move || {
                    gort::time::sleep(Duration::from_millis(i * 3));
                    n.fetch_add(1, SeqCst);
                    wg.done();
                });
            }
            wg.wait();
        });
        assert_eq!(waiter.join().unwrap(), 10);
    });
}

#[test]
fn waitgroup_negative_counter_panics_with_gos_message() {
    let wg = WaitGroup::new();
    let p = catch_unwind(AssertUnwindSafe(|| wg.done())).expect_err("no panic");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"sync: negative WaitGroup counter"));
    assert_eq!(wg.count(), 0, "left unchanged");
    wg.add(1);
    let p = catch_unwind(AssertUnwindSafe(|| wg.add(-2))).expect_err("no panic");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"sync: negative WaitGroup counter"));
    assert_eq!(wg.count(), 1);

    // In a task, the panic stays in the task and reaches its join.
    within(LIMIT, "panic in task", || {
        rt(1).block_on(|| {
            let err = gort::go(|| WaitGroup::new().done()).join().unwrap_err();
            assert_eq!(err.panic_message(), Some("sync: negative WaitGroup counter"));
        })
    });
}

// ---------------------------------------------------------------- Mutex

/// 100 tasks × 1000 increments, some holding the lock across `yield_now` and `time::sleep`.
fn mutex_counter(workers: usize) {
    let n = within(LIMIT, "mutex counter", move || {
        rt(workers).block_on(|| {
            let m = Arc::new(Mutex::new(0u64));
            let hs: Vec<_> = (0..100u64)
                .map(|t| {
                    let m = m.clone();
                    gort::go(move || {
                        for i in 0..1000u64 {
                            let mut g = m.lock();
                            let v = *g;
                            if i % 100 == t % 100 {
                                gort::yield_now(); // parked while holding it
                            }
                            if i == 500 && t % 10 == 0 {
                                gort::time::sleep(Duration::from_millis(1));
                            }
                            *g = v + 1;
                        }
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
            Arc::into_inner(m).unwrap().into_inner()
        })
    });
    assert_eq!(n, 100_000);
}

#[test]
fn mutex_counter_100_tasks_x_1000_on_4_workers() {
    mutex_counter(4);
}

/// A `std::sync::Mutex` held across `yield_now`/`sleep` here would block the single worker
/// for good when a second task locks it: the holder could never run again to unlock.
#[test]
fn mutex_held_across_parks_on_1_worker() {
    mutex_counter(1);
}

#[test]
fn mutex_task_and_plain_thread_contend() {
    within(LIMIT, "task vs thread", || {
        let m = Arc::new(Mutex::new(Vec::new()));
        let runtime = rt(2);
        let thread_side = {
            let m = m.clone();
            thread::spawn(move || {
                for i in 0..2000 {
                    let mut g = m.lock();
                    g.push(('t', i));
                    if i % 200 == 0 {
                        thread::sleep(Duration::from_micros(300));
                    }
                }
            })
        };
        let m2 = m.clone();
        runtime.block_on(move || {
            let hs: Vec<_> = (0..2)
                .map(|k| {
                    let m = m2.clone();
                    gort::go(move || {
                        for i in 0..1000 {
                            let mut g = m.lock();
                            g.push((if k == 0 { 'a' } else { 'b' }, i));
                            if i % 100 == 0 {
                                gort::time::sleep(Duration::from_micros(300));
                            }
                        }
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        });
        thread_side.join().unwrap();
        let v = Arc::into_inner(m).unwrap().into_inner();
        assert_eq!(v.len(), 4000);
        for who in ['t', 'a', 'b'] {
            let mine: Vec<_> = v.iter().filter(|(w, _)| *w == who).map(|(_, i)| *i).collect();
            assert!(mine.windows(2).all(|w| w[0] + 1 == w[1]), "{who}: out of order");
        }
    });
}

#[test]
fn mutex_try_lock_get_mut_into_inner() {
    within(LIMIT, "try_lock", || {
        rt(2).block_on(|| {
            let m = Arc::new(Mutex::new(1));
            let g = m.try_lock().expect("free");
            assert!(m.try_lock().is_none(), "held by us");
            let m2 = m.clone();
            assert!(gort::go(move || m2.try_lock().is_none()).join().unwrap(), "held");
            drop(g);
            let m2 = m.clone();
            assert_eq!(gort::go(move || *m2.try_lock().unwrap()).join().unwrap(), 1);
            *m.lock() += 1;
            let mut m = Arc::into_inner(m).unwrap();
            *m.get_mut() += 1;
            assert_eq!(format!("{m:?}"), "Mutex { data: 3, .. }");
            assert_eq!(m.into_inner(), 3);
        })
    });
}

#[test]
fn mutex_waiters_get_the_lock_in_fifo_order() {
    let order = within(LIMIT, "fifo", || {
        rt(1).block_on(|| {
            let m = Arc::new(Mutex::new(Vec::new()));
            let g = m.lock();
            let hs: Vec<_> = (0..10)
                .map(|i| {
                    let m = m.clone();
                    let h = gort::go(move || m.lock().push(i));
                    // Let it run and queue before the next one comes.
                    gort::time::sleep(Duration::from_millis(2));
                    h
                })
                .collect();
            // A latecomer's try_lock must not barge in ahead of the queue.
            drop(g);
            assert!(m.try_lock().is_none(), "handed to the first waiter, not free");
            hs.into_iter().for_each(|h| h.join().unwrap());
            Arc::into_inner(m).unwrap().into_inner()
        })
    });
    assert_eq!(order, (0..10).collect::<Vec<_>>());
}

#[test]
fn mutex_waiters_cancelled_at_shutdown_pass_the_lock_on() {
    within(LIMIT, "cancelled waiters", || {
        let m = Arc::new(Mutex::new(0));
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            thread::spawn(move || {
                let mut g = m.lock();
                locked_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                *g += 1;
            })
        };
        locked_rx.recv().unwrap();
        {
            let runtime = rt(2);
            let m = m.clone();
            runtime.block_on(move || {
                for _ in 0..5 {
                    let m = m.clone();
                    gort::go(move || *m.lock() += 100);
                }
                gort::time::sleep(Duration::from_millis(20)); // they queue
            });
            // The runtime drops here: the five parked lockers unwind out of their wait.
        }
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        // Nobody was handed the lock for good: it is free again, and nobody else added 100.
        assert_eq!(*m.lock(), 1);
        assert!(m.try_lock().is_some());
    });
}

// ---------------------------------------------------------------- RwLock

#[test]
fn rwlock_readers_overlap() {
    within(LIMIT, "readers", || {
        rt(2).block_on(|| {
            const READERS: usize = 8;
            const HOLD: Duration = Duration::from_millis(100);
            let l = Arc::new(RwLock::new(7));
            let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let start = Instant::now();
            let hs: Vec<_> = (0..READERS)
                .map(|_| {
                    let (l, now, max) = (l.clone(), now.clone(), max.clone());
                    gort::go(move || {
                        let g = l.read();
                        note_max(&max, now.fetch_add(1, SeqCst) + 1);
                        gort::time::sleep(HOLD); // parked, still reading
                        now.fetch_sub(1, SeqCst);
                        *g
                    })
                })
                .collect();
            for h in hs {
                assert_eq!(h.join().unwrap(), 7);
            }
            let took = start.elapsed();
            assert!(max.load(SeqCst) >= 2, "no two readers at once");
            assert!(took < HOLD * READERS as u32 / 2, "readers ran one by one: {took:?}");
        })
    });
}

#[test]
fn rwlock_writer_excludes_readers_and_writers() {
    within(LIMIT, "exclusion", || {
        rt(4).block_on(|| {
            let l = Arc::new(RwLock::new(0u64));
            let readers = Arc::new(AtomicUsize::new(0));
            let writers = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..40u64)
                .map(|t| {
                    let (l, readers, writers) = (l.clone(), readers.clone(), writers.clone());
                    gort::go(move || {
                        for i in 0..200u64 {
                            if (t + i) % 4 == 0 {
                                let mut g = l.write();
                                assert_eq!(writers.fetch_add(1, SeqCst), 0, "two writers");
                                assert_eq!(readers.load(SeqCst), 0, "a reader beside a writer");
                                let v = *g;
                                if i % 16 == 0 {
                                    gort::yield_now();
                                }
                                *g = v + 1;
                                writers.fetch_sub(1, SeqCst);
                            } else {
                                let _g = l.read();
                                readers.fetch_add(1, SeqCst);
                                assert_eq!(writers.load(SeqCst), 0, "a writer beside a reader");
                                if i % 16 == 1 {
                                    gort::yield_now();
                                }
                                readers.fetch_sub(1, SeqCst);
                            }
                        }
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(*l.read(), 40 * 200 / 4);
        })
    });
}

#[test]
fn rwlock_writer_is_not_starved_by_a_stream_of_readers() {
    within(LIMIT, "writer starvation", || {
        rt(2).block_on(|| {
            let l = Arc::new(RwLock::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let reads = Arc::new(AtomicUsize::new(0));
            // Four readers, staggered, each holding the lock for 5 ms: without writer
            // preference the lock would never be free of readers.
            let hs: Vec<_> = (0..4u64)
                .map(|k| {
                    let (l, stop, reads) = (l.clone(), stop.clone(), reads.clone());
                    gort::go(move || {
                        gort::time::sleep(Duration::from_millis(k * 2));
                        while !stop.load(SeqCst) {
                            let _g = l.read();
                            reads.fetch_add(1, SeqCst);
                            gort::time::sleep(Duration::from_millis(5));
                        }
                    })
                })
                .collect();
            gort::time::sleep(Duration::from_millis(30));
            assert!(l.try_write().is_none(), "readers hold it");
            let t = Instant::now();
            *l.write() += 1;
            let waited = t.elapsed();
            stop.store(true, SeqCst);
            hs.into_iter().for_each(|h| h.join().unwrap());
            assert!(waited < Duration::from_millis(500), "writer waited {waited:?}");
            assert!(reads.load(SeqCst) > 4);
            assert_eq!(*l.read(), 1);
        })
    });
}

#[test]
fn rwlock_try_read_try_write_and_a_plain_thread() {
    within(LIMIT, "try", || {
        let l = Arc::new(RwLock::new(String::from("a")));
        {
            let r = l.try_read().unwrap();
            assert!(l.try_read().is_some(), "readers share");
            assert!(l.try_write().is_none(), "a reader excludes writers");
            drop(r);
        }
        let w = l.try_write().unwrap();
        assert!(l.try_read().is_none() && l.try_write().is_none());
        // A plain thread sleeps until the write lock held here goes, then contends with a task.
        let l2 = l.clone();
        let t = thread::spawn(move || l2.write().push('c'));
        drop(w);
        rt(1).block_on({
            let l = l.clone();
            move || l.write().push('b')
        });
        t.join().unwrap();
        let s = Arc::into_inner(l).unwrap().into_inner();
        assert!(s == "abc" || s == "acb", "{s}");
    });
}

// ---------------------------------------------------------------- Once

#[test]
fn once_runs_once_under_100_concurrent_callers_who_wait_for_it() {
    within(LIMIT, "once", || {
        rt(4).block_on(|| {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let finished = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..100)
                .map(|_| {
                    let (once, runs, finished) = (once.clone(), runs.clone(), finished.clone());
                    gort::go(move || {
                        once.call_once(|| {
                            runs.fetch_add(1, SeqCst);
                            // Long enough for the others to arrive while it runs.
                            gort::time::sleep(Duration::from_millis(50));
                            finished.store(true, SeqCst);
                        });
                        // Nobody returns before the one call has finished.
                        assert!(finished.load(SeqCst), "returned before f finished");
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(runs.load(SeqCst), 1);
            assert!(once.is_completed());
            once.call_once(|| panic!("ran twice"));
        })
    });
}

#[test]
fn once_with_a_panicking_f_is_done_as_in_go() {
    within(LIMIT, "once panic", || {
        rt(2).block_on(|| {
            let once = Arc::new(Once::new());
            let o = once.clone();
            let runner = gort::go(move || {
                o.call_once(|| {
                    gort::time::sleep(Duration::from_millis(30));
                    panic!("init failed");
                })
            });
            gort::time::sleep(Duration::from_millis(5));
            // Arrives while f runs: released when it panics, without running its own f.
            let o = once.clone();
            let waiter = gort::go(move || o.call_once(|| panic!("second f ran")));
            // A plain thread waits too.
            let o = once.clone();
            let thread_waiter = thread::spawn(move || o.call_once(|| panic!("third f ran")));
            let err = runner.join().unwrap_err();
            assert_eq!(err.panic_message(), Some("init failed"));
            waiter.join().unwrap();
            thread_waiter.join().unwrap();
            assert!(once.is_completed());
        })
    });
}
