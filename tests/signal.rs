//! Signals reach every listener on channels, in tasks and in plain threads. One in-process test
//! on purpose: signals are process-wide, and parallel tests would see each other's; the other
//! test raises its signal in a child process (this binary, run again with `GORT_SIGNAL_CHILD`).

mod util;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
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

const CHILD: &str = "GORT_SIGNAL_CHILD";

/// SIGUSR2's number on Linux (x86_64 and aarch64 alike).
const SIGUSR2: i32 = 12;

/// A listener whose receiver is dropped without `stop` is removed at the next delivery; the
/// signal's previous action (here the default: end the process) comes back and gets that
/// signal, instead of the signal vanishing into a channel nobody reads.
#[test]
fn a_dropped_listener_gives_the_signal_back_to_its_previous_action() {
    const TEST: &str = "a_dropped_listener_gives_the_signal_back_to_its_previous_action";
    if std::env::var_os(CHILD).is_some() {
        rt(1).block_on(|| {
            let kept = signal::notify(&[Signal::User1]);
            drop(signal::notify(&[Signal::User2]));
            signal::raise(Signal::User2).unwrap();
            // The dispatcher finds the listener gone and raises SIGUSR2 again: we end here.
            gort::time::sleep(Duration::from_secs(5));
            drop(kept);
        });
        eprintln!("the child outlived its SIGUSR2");
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(SIGUSR2), "status {:?}; stderr:\n{stderr}", out.status);
}
