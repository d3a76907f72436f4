//! A runtime that ends gives back its file descriptors (epoll, the wake-up pipe), even when its
//! tasks were parked at shutdown in channels and timers, and a task's `JoinHandle` outlived it
//! only briefly. Alone in its own test binary: other tests would open descriptors meanwhile.

mod util;

use std::time::Duration;

use util::within;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ended_runtimes_leave_no_descriptor_behind() {
    within(Duration::from_secs(60), "runtimes ending", || {
        // One runtime first: lazily created process-wide state (the blocking pool, say) is
        // not a leak.
        util::rt(2).block_on(|| gort::go(|| ()).join().unwrap());
        let before = open_fds();
        for _ in 0..50 {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            let (parked, sleeping, selecting) = util::rt(2).block_on(move || {
                let parked = gort::go(move || rx.recv().is_ok());
                let sleeping = gort::go(|| gort::time::sleep(Duration::from_secs(3600)));
                let selecting = gort::go(|| {
                    let (_s, r) = gort::chan::bounded::<u32>(0);
                    gort::select! {
                        recv(r) -> _ => {},
                        recv(gort::time::after(Duration::from_secs(3600))) -> _ => {},
                    }
                });
                gort::time::sleep(Duration::from_millis(2));
                (parked, sleeping, selecting)
            });
            // The runtime is gone; its tasks unwound. Their handles see that, then go.
            assert!(parked.join().is_err());
            assert!(sleeping.join().is_err());
            assert!(selecting.join().is_err());
            drop(tx);
        }
        let after = open_fds();
        assert_eq!(after, before, "descriptors open before {before}, after 50 runtimes {after}");
    });
}
