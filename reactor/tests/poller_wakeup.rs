//! `netpoll_break`: it ends a blocking `netpoll` quickly, and bursts merge into one pipe write.

mod util;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use reactor::Poller;
use util::*;

#[test]
fn break_ends_a_blocking_netpoll_promptly() {
    let poller = Arc::new(Poller::new().unwrap());
    for _ in 0..20 {
        let p = poller.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = thread::spawn(move || {
            tx.send(()).unwrap();
            let woken = p.netpoll(None).unwrap();
            (Instant::now(), woken)
        });
        rx.recv().unwrap();
        thread::sleep(Duration::from_millis(20)); // let it reach epoll_wait
        let sent = Instant::now();
        poller.netpoll_break().unwrap();
        let (returned, woken) =
            within(Duration::from_secs(10), "break", move || sleeper.join().unwrap());
        assert!(woken.is_empty());
        let latency = returned.saturating_duration_since(sent);
        assert!(
            latency < Duration::from_millis(50),
            "netpoll returned {latency:?} after the break"
        );
    }
}

#[test]
fn a_break_before_the_wait_is_not_lost_and_peeks_do_not_swallow_it() {
    let poller = Poller::new().unwrap();
    poller.netpoll_break().unwrap();
    // Non-blocking polls see the pipe but leave it for the sleeper.
    for _ in 0..3 {
        assert!(poller.netpoll(Some(Duration::ZERO)).unwrap().is_empty());
    }
    // The blocking poll returns at once and drains.
    let t = Instant::now();
    poller.netpoll(Some(Duration::from_secs(30))).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "the pending break was lost");
    // Drained: the next timed wait sleeps its full delay.
    let t = Instant::now();
    poller.netpoll(Some(Duration::from_millis(20))).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(20));
}

#[test]
fn a_thousand_concurrent_breaks_write_the_pipe_once() {
    let poller = Arc::new(Poller::new().unwrap());
    let before = poller.stats().wakeup_writes;
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (p, b) = (poller.clone(), barrier.clone());
            thread::spawn(move || {
                b.wait();
                for _ in 0..125 {
                    p.netpoll_break().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    // Nobody drained in between, so all 1 000 merged into the first.
    assert_eq!(poller.stats().wakeup_writes - before, 1);
}

#[test]
fn breaks_against_a_live_poller_write_at_most_once_per_drain() {
    let poller = Arc::new(Poller::new().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let driver = spawn_driver(poller.clone(), stop.clone());
    let before = poller.stats().wakeup_writes;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = poller.clone();
            thread::spawn(move || {
                for _ in 0..250 {
                    p.netpoll_break().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    stop.store(true, SeqCst);
    poller.netpoll_break().unwrap();
    let rounds = within(Duration::from_secs(10), "driver exit", move || driver.join().unwrap());
    let writes = poller.stats().wakeup_writes - before;
    // Each write needs a drain by a blocking poll before the next can happen.
    assert!(writes <= rounds + 1, "{writes} writes for {rounds} polls");
    assert!(writes < 1001, "{writes} writes for 1001 breaks");
    eprintln!("1001 breaks against a live poller: {writes} pipe writes, {rounds} netpoll returns");
}
