//! The netpoller's own costs, measured alone.
//!
//! Run: `cargo bench -p reactor --bench netpoll`
//!
//! - `netpoll_zero/{10,10000}`: one `netpoll(Some(ZERO))` with 10 and with 10 000 registered,
//!   idle fds. epoll keeps a ready list, so the cost must not grow with the count.
//! - `wake_latency`: `netpoll_break` on one thread until `netpoll(None)` returns on another;
//!   median and p99 over 20 000 samples, printed (criterion's estimate is of the mean).
//! - `allocations per event`: a counting allocator around 10 000 steady-state events.

// criterion_group! generates `pub fn benches` with no doc comment.
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use reactor::{Events, Mode, Poller, Prepared, Waiter};

#[path = "../tests/util/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// A poller with `n` idle registered fds (n/2 socket pairs), initial edges consumed.
fn idle_poller(n: usize) -> (Poller, Vec<UnixStream>) {
    let poller = Poller::new().unwrap();
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let (a, b) = UnixStream::pair().unwrap();
        for s in [a, b] {
            s.set_nonblocking(true).unwrap();
            poller.open(s.as_raw_fd()).unwrap();
            socks.push(s);
        }
    }
    let mut events = Events::new();
    while poller.wait_events(Some(Duration::ZERO), &mut events).unwrap() > 0 {}
    (poller, socks)
}

fn netpoll_zero(c: &mut Criterion) {
    let mut g = c.benchmark_group("netpoll_zero");
    for n in [10, 10_000] {
        let (poller, _socks) = idle_poller(n);
        let mut out = Vec::with_capacity(128);
        g.bench_function(n.to_string(), |b| {
            b.iter(|| black_box(poller.netpoll_into(Some(Duration::ZERO), &mut out).unwrap()))
        });
    }
    g.finish();
}

fn wake_latency(c: &mut Criterion) {
    let poller = Arc::new(Poller::new().unwrap());
    let returned = Arc::new(AtomicU64::new(0)); // ns since `epoch` of the last return
    let rounds = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let sleeper = {
        let (p, returned, rounds, stop) =
            (poller.clone(), returned.clone(), rounds.clone(), stop.clone());
        thread::spawn(move || {
            let mut out = Vec::with_capacity(8);
            while !stop.load(SeqCst) {
                p.netpoll_into(None, &mut out).unwrap();
                returned.store(epoch.elapsed().as_nanos() as u64, SeqCst);
                rounds.fetch_add(1, SeqCst);
            }
        })
    };
    // One sample: wait until the sleeper is (very likely) back in epoll_wait, break, spin
    // until it reports.
    let sample = || -> Duration {
        let before = rounds.load(SeqCst);
        thread::sleep(Duration::from_micros(50));
        let sent = epoch.elapsed().as_nanos() as u64;
        poller.netpoll_break().unwrap();
        while rounds.load(SeqCst) == before {
            std::hint::spin_loop();
        }
        Duration::from_nanos(returned.load(SeqCst).saturating_sub(sent))
    };
    let mut samples: Vec<Duration> = (0..20_000).map(|_| sample()).collect();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "wake_latency (netpoll_break -> netpoll returns on another thread), 20000 samples: \
         median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        samples[samples.len() - 1]
    );
    c.bench_function("wake_latency", |b| b.iter_custom(|iters| (0..iters).map(|_| sample()).sum()));
    stop.store(true, SeqCst);
    poller.netpoll_break().unwrap();
    sleeper.join().unwrap();
}

fn allocations_per_event(_: &mut Criterion) {
    let poller = Poller::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let pd = poller.open(a.as_raw_fd()).unwrap();
    let waiter = Waiter::new(7).unwrap();
    let mut out = Vec::with_capacity(16);
    let mut buf = [0u8; 16];
    poller.netpoll(Some(Duration::ZERO)).unwrap();
    const EVENTS: u64 = 10_000;
    counting_alloc::counting(true);
    for _ in 0..EVENTS {
        assert_eq!(pd.prepare(Mode::Read), Ok(Prepared::Park));
        assert!(pd.commit(Mode::Read, waiter));
        b.write_all(b"x").unwrap();
        out.clear();
        while out.is_empty() {
            poller.netpoll_into(None, &mut out).unwrap();
        }
        assert!(pd.complete(Mode::Read));
        (&a).read_exact(&mut buf[..1]).unwrap();
    }
    counting_alloc::counting(false);
    println!(
        "allocations per event (steady state, {EVENTS} events): {}",
        counting_alloc::allocations() as f64 / EVENTS as f64
    );
}

criterion_group!(benches, netpoll_zero, wake_latency, allocations_per_event);
criterion_main!(benches);
