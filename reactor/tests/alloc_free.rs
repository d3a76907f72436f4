//! The steady state of the netpoller allocates nothing: not per `netpoll`, not per event, not
//! per wake-up.
//!
//! A counting global allocator watches a loop of real round trips: the waiter announces,
//! commits, the peer writes, `netpoll_into` hands the waiter back, the waiter completes and
//! reads. This file holds one test so that no other test allocates while it counts.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use reactor::{Mode, Poller, Prepared, Waiter};
use util::counting_alloc::{Counting, allocations, counting};
use util::socketpair;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_netpoll_allocates_nothing() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = socketpair();
    let pd = poller.open(std::os::fd::AsRawFd::as_raw_fd(&a)).unwrap();
    let waiter = Waiter::new(99).unwrap();
    let mut woken = Vec::with_capacity(16);
    let mut buf = [0u8; 64];
    poller.netpoll(Some(Duration::ZERO)).unwrap(); // the initial writable edge

    let mut round = |count: bool| {
        counting(count);
        assert_eq!(pd.prepare(Mode::Read), Ok(Prepared::Park));
        assert!(pd.commit(Mode::Read, waiter));
        b.write_all(b"ping").unwrap();
        woken.clear();
        while woken.is_empty() {
            poller.netpoll_into(Some(Duration::from_secs(5)), &mut woken).unwrap();
        }
        poller.netpoll_break().unwrap();
        poller.netpoll_into(Some(Duration::from_secs(5)), &mut woken).unwrap(); // drains
        assert!(pd.complete(Mode::Read));
        assert_eq!((&a).read(&mut buf).unwrap(), 4);
        counting(false);
        assert_eq!(woken, [waiter]);
    };
    round(false); // warm-up: anything lazily set up happens here
    for _ in 0..1_000 {
        round(true);
    }
    assert_eq!(allocations(), 0, "allocations in 1 000 steady-state rounds");
}
