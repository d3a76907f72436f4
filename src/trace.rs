//! The runtime narrating itself: one line per period on stderr, as Go's
//! `GODEBUG=schedtrace=1000` does.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) `schedtrace`, printed by `sysmon`.
//!
//! Switch it on with `GORT_SCHEDTRACE=<milliseconds>`. A line reads:
//!
//! ```text
//! SCHED 2013ms: workers=2 idle=1 spinning=0 polling=1 global=0 io_waiters=3 runq=[0 4] inbox=[0 0] sleep=[P R]
//! ```
//!
//! | field        | Go's                    | meaning                                                   |
//! |--------------|-------------------------|-----------------------------------------------------------|
//! | `workers`    | `gomaxprocs`            | worker threads                                            |
//! | `idle`       | `idleprocs`             | workers asleep or blocked in `netpoll`                    |
//! | `spinning`   | `spinningthreads`       | workers looking for work to steal                         |
//! | `polling`    | `sched.lastpoll == 0`   | 1 if a worker is blocked in `netpoll`                     |
//! | `global`     | `runqueue`              | tasks in the global queue                                 |
//! | `io_waiters` | `netpollWaiters`        | tasks parked in the netpoller                             |
//! | `runq`       | `[0 1 0 ...]`           | each worker's stealable queue of unstarted tasks          |
//! | `inbox`      | —                       | each worker's wake-ups from other threads, not yet taken  |
//! | `sleep`      | —                       | each worker: `R` running, `S` asleep on its condvar, `P` in `netpoll` |
//!
//! The tracer is a plain thread holding a weak reference: it ends with the runtime.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::Weak;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use crate::sched::{POLLING, SLEEPING, Shared};

/// Starts the tracer if `GORT_SCHEDTRACE` asks for it.
pub(crate) fn start(shared: Weak<Shared>) {
    let Some(ms) = std::env::var("GORT_SCHEDTRACE").ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    if ms == 0 {
        return;
    }
    let started = Instant::now();
    let spawned = thread::Builder::new().name("gort-schedtrace".into()).spawn(move || {
        loop {
            thread::sleep(Duration::from_millis(ms));
            let Some(s) = shared.upgrade() else { return };
            if s.shutdown.load(Relaxed) {
                return;
            }
            eprintln!("{}", line(&s, started.elapsed()));
        }
    });
    if let Err(e) = spawned {
        log::warn!("gort: GORT_SCHEDTRACE is set but the tracer thread cannot start: {e}");
    }
}

/// One trace line.
pub(crate) fn line(s: &Shared, elapsed: Duration) -> String {
    let st = s.stats();
    let mut out = format!(
        "SCHED {}ms: workers={} idle={} spinning={} polling={} global={} io_waiters={} runq=[",
        elapsed.as_millis(),
        st.workers.len(),
        st.idle,
        st.spinning,
        u8::from(st.polling),
        st.global,
        st.io_waiters,
    );
    let list = |out: &mut String, f: &dyn Fn(&crate::sched::WorkerStats) -> String| {
        for (i, w) in st.workers.iter().enumerate() {
            let _ = write!(out, "{}{}", if i > 0 { " " } else { "" }, f(w));
        }
    };
    list(&mut out, &|w| w.runq.to_string());
    out.push_str("] inbox=[");
    list(&mut out, &|w| w.inbox.to_string());
    out.push_str("] sleep=[");
    list(&mut out, &|w| {
        match w.sleep {
            SLEEPING => "S",
            POLLING => "P",
            _ => "R",
        }
        .to_string()
    });
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::Runtime;
    use crate::sched::worker;

    #[test]
    fn a_trace_line_names_every_worker() {
        let rt = Runtime::builder().workers(3).build().unwrap();
        let line = rt.block_on(|| {
            let shared = worker::current().unwrap().shared.clone();
            // One task parked in a sleep, so a worker is busy or idle, never absent.
            let _h = crate::go(|| crate::time::sleep(Duration::from_millis(50)));
            super::line(&shared, Duration::from_millis(1234))
        });
        assert!(line.starts_with("SCHED 1234ms: workers=3 idle="), "{line}");
        for field in ["runq=[", "inbox=[", "sleep=["] {
            let list = line.split(field).nth(1).unwrap().split(']').next().unwrap();
            assert_eq!(list.split(' ').count(), 3, "{field} in {line}");
        }
    }
}
