//! A stale event for a closed fd whose number was reused never wakes the new record's waiter.
//!
//! Go issue #59545: an `epoll_wait` on one thread fetched an event (an `EPOLLERR`) for an fd
//! that another thread then closed; the fd number and the `pollDesc` were reused, and the old
//! event made the new fd's reads fail. Go 1.21 tags `epoll_event.data` with `fdseq`; we tag
//! it with the slot's generation.
//!
//! This file holds one test on purpose: it needs the kernel to hand out the same fd number
//! again, which only holds while no other test in the process opens fds.

mod util;

use std::io::Write;
use std::time::Duration;

use reactor::{Event, Events, Mode, Poller, Prepared, Readiness, Waiter};
use util::*;

#[test]
fn stale_event_after_fd_reuse_is_dropped() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let old_fd = fd(&a);
    let old = poller.open(old_fd).unwrap();

    // 1. An epoll_wait fetches events for the old fd (its initial writable edge, and data) ...
    b.write_all(b"old data").unwrap();
    let mut events = Events::new();
    assert!(poller.wait_events(Some(Duration::from_secs(5)), &mut events).unwrap() >= 1);
    let fetched: Vec<Event> = events.iter().collect();
    assert!(fetched.iter().any(|e| e.token == old.token().as_u64()));
    // ... and, as in #59545, an error event for it too.
    events.push(Event { token: old.token().as_u64(), readiness: Readiness::ERROR });

    // 2. Before those events are dispatched, another thread closes the fd ...
    assert_eq!(old.evict(), (None, None));
    poller.close(&old).unwrap();
    drop(a);
    drop(b);

    // 3. ... and a new socket gets the same fd number and the same slot.
    let (c, _d) = socketpair();
    assert_eq!(fd(&c), old_fd, "the kernel should reuse the lowest free fd number");
    let new = poller.open(fd(&c)).unwrap();
    assert_eq!(new.token().index(), old.token().index(), "the slab should reuse the slot");
    assert_ne!(new.token(), old.token(), "the generation must differ");

    // The new record's reader parks.
    let waiter = Waiter::new(42).unwrap();
    assert_eq!(new.prepare(Mode::Read).unwrap(), Prepared::Park);
    assert!(new.commit(Mode::Read, waiter));

    // 4. The old batch is dispatched now: every event in it is stale.
    let stale_before = poller.stats().stale_events;
    let mut out = Vec::new();
    assert_eq!(poller.dispatch(&events, &mut out).unwrap(), 0);
    assert!(out.is_empty(), "a stale event woke the new record's waiter: {out:?}");
    assert_eq!(poller.stats().stale_events - stale_before, events.len() as u64);
    assert_eq!(new.check_err(Mode::Read), Ok(()), "a stale EPOLLERR leaked into the new record");

    // The new record still works: its own readiness wakes its waiter.
    (&_d).write_all(b"new").unwrap();
    let mut woken = Vec::new();
    while woken.is_empty() {
        poller.netpoll_into(Some(Duration::from_secs(5)), &mut woken).unwrap();
    }
    assert_eq!(woken, vec![waiter]);
    assert!(new.complete(Mode::Read));
}
