//! Timers: `sleep` is never early, deadlines fire in order, `after_func` can be stopped and
//! reset.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gort::Runtime;
use gort::time::{after_func, sleep, sleep_until};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime")
}

#[test]
fn sleep_never_returns_early() {
    let early = rt(4).block_on(|| {
        let hs: Vec<_> = (0..400u64)
            .map(|i| {
                gort::go(move || {
                    let d = Duration::from_micros(100 + (i * 7919) % 20_000);
                    let t = Instant::now();
                    sleep(d);
                    t.elapsed() < d
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).filter(|&early| early).count()
    });
    assert_eq!(early, 0, "sleeps that returned early");
}

#[test]
fn ten_thousand_timers_fire_in_deadline_order() {
    // One worker, so "in order" is exact: each task sleeps until its own deadline, spread
    // 20 µs apart in a shuffled order, and notes when it runs.
    const N: usize = 10_000;
    let order = rt(1).block_on(|| {
        let base = Instant::now() + Duration::from_millis(500);
        let woke = Arc::new(Mutex::new(Vec::with_capacity(N)));
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let slot = (i * 7_919) % N; // a permutation of 0..N
                let deadline = base + Duration::from_micros(20 * slot as u64);
                let woke = woke.clone();
                gort::go(move || {
                    let parked_in_time = Instant::now() < deadline;
                    sleep_until(deadline);
                    assert!(Instant::now() >= deadline);
                    woke.lock().unwrap().push(slot);
                    parked_in_time
                })
            })
            .collect();
        let in_time = hs.into_iter().map(|h| h.join().unwrap()).filter(|&t| t).count();
        assert_eq!(in_time, N, "every task should park before its deadline");
        Arc::try_unwrap(woke).unwrap().into_inner().unwrap()
    });
    assert_eq!(order.len(), N);
    let out_of_order = order.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!(out_of_order, 0, "timers that fired out of deadline order");
}

#[test]
fn after_func_fires_once_and_stop_prevents_it() {
    rt(2).block_on(|| {
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let t = Instant::now();
        let when = Arc::new(Mutex::new(None));
        let w = when.clone();
        let timer = after_func(Duration::from_millis(30), move || {
            f.fetch_add(1, SeqCst);
            *w.lock().unwrap() = Some(Instant::now());
        });
        sleep(Duration::from_millis(150));
        assert_eq!(fired.load(SeqCst), 1);
        assert!(when.lock().unwrap().unwrap() - t >= Duration::from_millis(30));
        assert!(!timer.stop(), "stop after firing reports false");

        let fired2 = Arc::new(AtomicUsize::new(0));
        let f2 = fired2.clone();
        let timer = after_func(Duration::from_millis(30), move || {
            f2.fetch_add(1, SeqCst);
        });
        assert!(timer.stop(), "stop before firing reports true");
        assert!(!timer.stop(), "a second stop reports false");
        sleep(Duration::from_millis(100));
        assert_eq!(fired2.load(SeqCst), 0, "a stopped timer fired");
    });
}

#[test]
fn reset_moves_the_deadline() {
    rt(2).block_on(|| {
        let fired_at = Arc::new(Mutex::new(Vec::new()));
        let f = fired_at.clone();
        let t = Instant::now();
        let timer =
            after_func(Duration::from_millis(20), move || f.lock().unwrap().push(Instant::now()));
        assert!(timer.reset(Duration::from_millis(120)), "reset of an armed timer reports true");
        sleep(Duration::from_millis(60));
        assert!(fired_at.lock().unwrap().is_empty(), "fired at the old deadline");
        sleep(Duration::from_millis(200));
        let fired = fired_at.lock().unwrap().clone();
        assert_eq!(fired.len(), 1);
        assert!(fired[0] - t >= Duration::from_millis(120));
        // A fired timer can be reset to fire again.
        assert!(!timer.reset(Duration::from_millis(10)));
        sleep(Duration::from_millis(100));
        assert_eq!(fired_at.lock().unwrap().len(), 2);
    });
}

#[test]
fn many_stops_do_not_grow_the_heap_without_bound() {
    // 100 000 reset cycles of one far-away timer leave zombies behind; the heap is rebuilt when
    // they pass a quarter, so this stays fast and small (bounded by time here).
    rt(1).block_on(|| {
        let timer = after_func(Duration::from_secs(3600), || {});
        let t = Instant::now();
        for _ in 0..100_000 {
            timer.reset(Duration::from_secs(3600));
        }
        assert!(timer.stop());
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    });
}

#[test]
fn after_delivers_once_not_early_and_from_threads_too() {
    rt(2).block_on(|| {
        let t = Instant::now();
        let r = gort::time::after(Duration::from_millis(30));
        let at = r.recv().unwrap();
        assert!(at - t >= Duration::from_millis(30));
        assert!(r.recv_timeout(Duration::from_millis(50)).is_err(), "after delivers once");
    });
    let t = Instant::now();
    let r = gort::time::after(Duration::from_millis(20));
    assert!(r.recv().unwrap() - t >= Duration::from_millis(20));
}

#[test]
fn a_ticker_ticks_skips_for_slow_receivers_and_stops() {
    rt(2).block_on(|| {
        let ticker = gort::time::Ticker::new(Duration::from_millis(10));
        let t = Instant::now();
        let mut last = t;
        for _ in 0..5 {
            let at = ticker.receiver().recv().unwrap();
            assert!(at >= last);
            last = at;
        }
        assert!(t.elapsed() >= Duration::from_millis(50));
        // A slow receiver: the buffer holds one tick, the rest are dropped.
        sleep(Duration::from_millis(60));
        assert!(ticker.receiver().try_recv().is_ok());
        assert!(ticker.receiver().try_recv().is_err());
        ticker.stop();
        let _ = ticker.receiver().try_recv();
        assert!(
            ticker.receiver().recv_timeout(Duration::from_millis(40)).is_err(),
            "ticked after stop"
        );
        ticker.reset(Duration::from_millis(5));
        assert!(
            ticker.receiver().recv_timeout(Duration::from_millis(500)).is_ok(),
            "reset restarts"
        );
        let tick = gort::time::tick(Duration::from_millis(5));
        assert!(tick.recv().is_ok() && tick.recv().is_ok());
    });
}
