//! Readiness reaches the right waiter, once, and never gets lost.
//!
//! The first tests drive the protocol step by step on one thread, with made-up waiter words, so
//! each assertion names exactly what `netpoll` handed back. The later ones park real OS threads.

mod util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use reactor::{Mode, PollError, Poller, Prepared, Waiter};
use util::*;

const ZERO: Option<Duration> = Some(Duration::ZERO);

fn w(n: usize) -> Waiter {
    Waiter::new(n).unwrap()
}

#[test]
fn waiter_words_reserve_go_sentinels() {
    assert!(Waiter::new(0).is_none() && Waiter::new(1).is_none() && Waiter::new(2).is_none());
    assert_eq!(Waiter::new(3).unwrap().get(), 3);
    assert_eq!(Waiter::new(usize::MAX).unwrap().get(), usize::MAX);
}

#[test]
fn readiness_wakes_exactly_the_waiter_of_that_direction() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();

    // A fresh socket is writable at once: the first edge says so and wakes nobody.
    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Park);
    assert!(pd.commit(Mode::Read, w(10)));
    let woken = poller.netpoll(Some(Duration::from_millis(50))).unwrap();
    assert!(woken.is_empty(), "writability alone woke the reader: {woken:?}");

    // Park a writer too: fill the send buffer so the write side is not ready.
    assert_eq!(pd.prepare(Mode::Write).unwrap(), Prepared::Ready, "the writable edge was kept");
    fill(&a);
    assert_eq!(pd.prepare(Mode::Write).unwrap(), Prepared::Park);
    assert!(pd.commit(Mode::Write, w(20)));

    // Data for the reader wakes the reader and nobody else.
    b.write_all(b"x").unwrap();
    assert_eq!(poller.netpoll(Some(Duration::from_secs(5))).unwrap(), vec![w(10)]);
    assert!(pd.complete(Mode::Read));

    // Room for the writer wakes the writer and nobody else.
    drain(&b);
    assert_eq!(poller.netpoll(Some(Duration::from_secs(5))).unwrap(), vec![w(20)]);
    assert!(pd.complete(Mode::Write));

    // Nothing left to say: a peek returns nothing.
    assert!(poller.netpoll(ZERO).unwrap().is_empty());
    let mut buf = [0u8; 1];
    assert_eq!((&a).read(&mut buf).unwrap(), 1);
    poller.close(&pd).unwrap();
}

#[test]
fn readiness_between_prepare_and_commit_is_not_lost() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    poller.netpoll(ZERO).unwrap(); // take the initial writable edge

    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Park);
    b.write_all(b"hello").unwrap();
    // The event arrives while the waiter is announced but not committed: nobody to hand back.
    assert!(poller.netpoll(Some(Duration::from_secs(5))).unwrap().is_empty());
    // So the commit fails: the waiter must not sleep ...
    assert!(!pd.commit(Mode::Read, w(10)));
    // ... and finds the readiness waiting for it.
    assert!(pd.complete(Mode::Read));
    let mut buf = [0u8; 8];
    assert_eq!((&a).read(&mut buf).unwrap(), 5);
    poller.close(&pd).unwrap();
}

#[test]
fn readiness_before_the_wait_is_consumed_by_prepare() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    b.write_all(b"x").unwrap();
    assert!(poller.netpoll(Some(Duration::from_secs(5))).unwrap().is_empty());
    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Ready);
    // Consumed: the next wait parks.
    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Park);
    assert!(pd.commit(Mode::Read, w(5)));
    assert_eq!(pd.expire(Mode::Read), Some(w(5)));
    assert!(!pd.complete(Mode::Read));
}

#[test]
fn evict_wakes_both_waiters_and_every_later_wait_fails() {
    let poller = Arc::new(Poller::new().unwrap());
    let (a, _b) = socketpair();
    let a = Arc::new(a);
    let pd = poller.open(fd(&a)).unwrap();
    poller.netpoll(ZERO).unwrap();
    fill(&a); // so the writer parks too

    // Each thread bumps `parked` once its waiter is committed, so evict runs only when both
    // really sleep in the poll descriptor.
    let parked = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (pd, a, parked) = (pd.clone(), a.clone(), parked.clone());
        thread::spawn(move || {
            read_parking(&pd, &a, &mut [0u8; 16], |pd, m| {
                park_thread_then(pd, m, || {
                    parked.fetch_add(1, SeqCst);
                })
            })
        })
    };
    let writer = {
        let (pd, a, parked) = (pd.clone(), a.clone(), parked.clone());
        thread::spawn(move || {
            write_parking(&pd, &a, &[1u8; 1 << 20], |pd, m| {
                park_thread_then(pd, m, || {
                    parked.fetch_add(1, SeqCst);
                })
            })
        })
    };
    assert!(eventually(Duration::from_secs(10), || parked.load(SeqCst) == 2), "both should park");
    let mut woken = Vec::new();
    let (r, w) = pd.evict();
    woken.extend(r);
    woken.extend(w);
    assert_eq!(woken.len(), 2, "evict must hand back both parked waiters");
    wake_all(woken);

    for (what, res) in
        [("read", reader.join().unwrap().map(|_| ())), ("write", writer.join().unwrap())]
    {
        let err = res.expect_err(what);
        assert_eq!(
            err.get_ref().unwrap().downcast_ref::<PollError>(),
            Some(&PollError::Closing),
            "{what}: {err}"
        );
    }
    assert_eq!(pd.prepare(Mode::Read), Err(PollError::Closing));
    assert_eq!(pd.prepare(Mode::Write), Err(PollError::Closing));
    assert_eq!(pd.evict(), (None, None), "a second evict finds nobody");
    poller.close(&pd).unwrap();
}

#[test]
fn expire_fails_one_direction_until_cleared() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    poller.netpoll(ZERO).unwrap();

    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Park);
    assert!(pd.commit(Mode::Read, w(7)));
    assert_eq!(pd.expire(Mode::Read), Some(w(7)));
    assert!(!pd.complete(Mode::Read));
    assert_eq!(pd.check_err(Mode::Read), Err(PollError::Timeout));
    assert_eq!(pd.prepare(Mode::Read), Err(PollError::Timeout));
    // Readiness does not lift the expiry; the write side is untouched.
    b.write_all(b"x").unwrap();
    poller.netpoll(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(pd.prepare(Mode::Read), Err(PollError::Timeout));
    assert_eq!(pd.check_err(Mode::Write), Ok(()));
    pd.clear_expired(Mode::Read);
    assert_eq!(pd.prepare(Mode::Read).unwrap(), Prepared::Ready);
}

#[test]
fn bare_epollerr_makes_reads_not_pollable_until_the_next_event() {
    let poller = Poller::new().unwrap();
    let (a, _b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    let mut events = reactor::Events::new();
    events
        .push(reactor::Event { token: pd.token().as_u64(), readiness: reactor::Readiness::ERROR });
    let mut out = Vec::new();
    poller.dispatch(&events, &mut out).unwrap();
    assert_eq!(pd.check_err(Mode::Read), Err(PollError::NotPollable));
    assert_eq!(pd.check_err(Mode::Write), Ok(()), "write errors surface from the write call");
    events.clear();
    events.push(reactor::Event {
        token: pd.token().as_u64(),
        readiness: reactor::Readiness::READABLE,
    });
    poller.dispatch(&events, &mut out).unwrap();
    assert_eq!(pd.check_err(Mode::Read), Ok(()));
}

#[test]
fn after_a_partial_read_the_rest_is_read_without_a_new_edge() {
    let poller = Arc::new(Poller::new().unwrap());
    let (a, mut b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    b.write_all(&[9u8; 100]).unwrap();
    // One edge for 100 bytes.
    poller.netpoll(Some(Duration::from_secs(5))).unwrap();
    // The reader takes 10 ...
    let mut small = [0u8; 10];
    assert_eq!(read_blocking(&pd, &a, &mut small).unwrap(), 10);
    // ... and then the other 90 with no netpoll in between: the syscall comes first, so no new
    // edge is needed. (Waiting for one would hang: the kernel sends none for old data.)
    let got = within(Duration::from_secs(5), "second read", move || {
        let mut rest = [0u8; 200];
        read_blocking(&pd, &a, &mut rest).unwrap()
    });
    assert_eq!(got, 90);
}

#[test]
fn threads_ping_pong_without_lost_wakeups() {
    // 20 000 one-byte round trips between two threads, each parking on EAGAIN, with a third
    // thread in netpoll(None). A single lost wake-up hangs a side: `within` turns that into a
    // failure.
    const ROUNDS: usize = 20_000;
    let poller = Arc::new(Poller::new().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let driver = spawn_driver(poller.clone(), stop.clone());
    let (a, b) = socketpair();
    let (pa, pb) = (poller.open(fd(&a)).unwrap(), poller.open(fd(&b)).unwrap());
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 1];
        for _ in 0..ROUNDS {
            assert_eq!(read_blocking(&pb, &b, &mut buf).unwrap(), 1);
            write_blocking(&pb, &b, &buf).unwrap();
        }
    });
    within(Duration::from_secs(60), "ping-pong", move || {
        let mut buf = [0u8; 1];
        for i in 0..ROUNDS {
            let byte = [i as u8];
            write_blocking(&pa, &a, &byte).unwrap();
            assert_eq!(read_blocking(&pa, &a, &mut buf).unwrap(), 1);
            assert_eq!(buf, byte);
        }
    });
    echo.join().unwrap();
    stop.store(true, SeqCst);
    poller.netpoll_break().unwrap();
    assert!(driver.join().unwrap() > 0);
}

#[test]
fn timed_netpoll_waits_at_least_its_delay_and_zero_never_blocks() {
    let poller = Poller::new().unwrap();
    for delay in [Duration::from_micros(10), Duration::from_millis(1), Duration::from_millis(3)] {
        let t = Instant::now();
        assert!(poller.netpoll(Some(delay)).unwrap().is_empty());
        assert!(t.elapsed() >= delay, "netpoll({delay:?}) returned after {:?}", t.elapsed());
    }
    // A zero delay must not wait: a generous bound, nothing here depends on machine speed.
    let t = Instant::now();
    for _ in 0..100 {
        poller.netpoll(ZERO).unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(2), "100 peeks took {:?}", t.elapsed());
}

#[test]
fn open_and_close_errors_are_clear_and_lose_nothing() {
    let poller = Poller::new().unwrap();
    let (a, _b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    // Registering the same fd twice is epoll's EEXIST, and leaves no record behind.
    let err = poller.open(fd(&a)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(17), "{err}");
    assert_eq!(poller.stats().registered, 1);
    // Closing twice: the second touches nothing.
    poller.close(&pd).unwrap();
    assert!(poller.close(&pd).unwrap_err().to_string().contains("closed in the poller already"));
    assert_eq!(poller.stats().registered, 0);
    // A bad fd.
    assert!(poller.open(-1).is_err());
    assert_eq!(poller.stats(), reactor::PollerStats { wakeup_writes: 0, ..Default::default() });
    assert!(poller.is_poll_descriptor(poller_fds(&poller)));
}

fn poller_fds(p: &Poller) -> i32 {
    // The poller's own fds are the lowest that `is_poll_descriptor` accepts; probe a few.
    (0..1024).find(|&fd| p.is_poll_descriptor(fd)).expect("the poller has fds")
}

#[test]
fn a_failed_deregistration_keeps_the_slot_out_of_reuse() {
    let poller = Poller::new().unwrap();
    let (a, _b) = socketpair();
    let pd = poller.open(fd(&a)).unwrap();
    // Close the fd behind the poller's back: EPOLL_CTL_DEL then fails, with EBADF, or with
    // ENOENT if another test's socket took the number meanwhile.
    drop(a);
    let err = poller.close(&pd).unwrap_err();
    assert!(matches!(err.raw_os_error(), Some(9) | Some(2)), "{err}");
    let s = poller.stats();
    assert_eq!((s.registered, s.leaked), (0, 1));
    let (c, _d) = socketpair();
    let pd2 = poller.open(fd(&c)).unwrap();
    assert_ne!(pd2.token().index(), pd.token().index(), "a leaked slot was reused");
    poller.close(&pd2).unwrap();
}
