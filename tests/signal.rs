//! Signals reach every listener on channels, in tasks and in plain threads. One test on
//! purpose: signals are process-wide, and parallel tests would see each other's.

mod util;

use std::time::Duration;

use gort::signal::{self, Signal};
use util::rt;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn a_signal_reaches_every_listener_and_only_them() {
    rt(2).block_on(|| {
        let a = signal::notify(&[Signal::User1]);
        let b = signal::notify(&[Signal::User1, Signal::User2]);
        let other = signal::notify(&[Signal::User2]);
        // A listener in a plain thread too.
        let c = signal::notify(&[Signal::User1]);
        let thread = std::thread::spawn(move || c.recv_timeout(WAIT));

        signal::raise(Signal::User1).unwrap();
        assert_eq!(a.recv_timeout(WAIT), Ok(Signal::User1));
        assert_eq!(b.recv_timeout(WAIT), Ok(Signal::User1));
        assert_eq!(thread.join().unwrap(), Ok(Signal::User1));
        assert!(
            other.recv_timeout(Duration::from_millis(100)).is_err(),
            "User2's listener got User1"
        );

        signal::raise(Signal::User2).unwrap();
        assert_eq!(b.recv_timeout(WAIT), Ok(Signal::User2));
        assert_eq!(other.recv_timeout(WAIT), Ok(Signal::User2));
        assert!(a.try_recv().is_err());

        // A task parked on a listener wakes for it.
        let a2 = a.clone();
        let waiter = gort::go(move || a2.recv_timeout(WAIT));
        gort::time::sleep(Duration::from_millis(20));
        signal::raise(Signal::User1).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(Signal::User1));
        assert_eq!(b.recv_timeout(WAIT), Ok(Signal::User1));

        // Stop: no more deliveries; its channel ends.
        signal::stop(&a);
        signal::raise(Signal::User1).unwrap();
        assert_eq!(b.recv_timeout(WAIT), Ok(Signal::User1));
        assert!(
            a.recv_timeout(Duration::from_millis(100)).is_err(),
            "a stopped listener got a signal"
        );
        signal::stop(&b);
        signal::stop(&other);
    });
}
