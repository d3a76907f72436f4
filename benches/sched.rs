//! The scheduler against tokio, side by side in one run.
//!
//! Run: `cargo bench --bench sched` (add `-- <filter>` for one group).
//!
//! | group          | gort                                   | tokio                                    |
//! |----------------|----------------------------------------|------------------------------------------|
//! | `yield_pair`   | two tasks `yield_now` to each other, 1 worker: one round trip = both yield once | the same with `tokio::task::yield_now` on a current-thread runtime |
//! | `spawn_join`   | `go(|| ()).join()` from a task, 2 workers | `tokio::spawn(async {}).await`, multi-thread, 2 workers |
//! | `wake_remote`  | a thread unparks a task parked on a sleeping worker; median/p99 printed | a thread `Notify`s a task on a sleeping tokio worker |
//!
//! After the groups, `parked_rss` prints the memory held per parked task for 1 000 000 tasks
//! parked at once (gort: `task::park`; tokio: a `Notify` wait), measured from `/proc/self/statm`.
//! Set `GORT_BENCH_PARKED=N` to change N (0 skips it).

#![allow(missing_docs)] // criterion_group! generates `pub fn benches` without docs

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn gort_rt(workers: usize) -> gort::Runtime {
    gort::Runtime::builder().workers(workers).build().unwrap()
}

fn tokio_mt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn tokio_ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn yield_pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_pair");
    let rt = gort_rt(1);
    g.bench_function("gort", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let other = gort::go(move || {
                    for _ in 0..iters {
                        gort::yield_now();
                    }
                });
                let t = Instant::now();
                for _ in 0..iters {
                    gort::yield_now();
                }
                let e = t.elapsed();
                other.join().unwrap();
                e
            })
        })
    });
    let trt = tokio_ct();
    g.bench_function("tokio_ct", |b| {
        b.iter_custom(|iters| {
            trt.block_on(async move {
                let other = tokio::spawn(async move {
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                });
                let t = Instant::now();
                for _ in 0..iters {
                    tokio::task::yield_now().await;
                }
                let e = t.elapsed();
                other.await.unwrap();
                e
            })
        })
    });
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    let rt = gort_rt(2);
    g.bench_function("gort_2w", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    gort::go(|| ()).join().unwrap();
                }
                t.elapsed()
            })
        })
    });
    let trt = tokio_mt(2);
    g.bench_function("tokio_mt_2w", |b| {
        b.iter_custom(|iters| {
            trt.block_on(async move {
                tokio::spawn(async move {
                    let t = Instant::now();
                    for _ in 0..iters {
                        tokio::spawn(async {}).await.unwrap();
                    }
                    t.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    g.finish();
}

/// Median and p99 of `samples`, printed.
fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{what}: {} samples, median {:?}, p90 {:?}, p99 {:?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
}

const WAKES: usize = 5_000;

/// Where a woken task reports: when it woke (ns since `epoch`) and how many times.
#[derive(Clone)]
struct Woke {
    epoch: Instant,
    at_ns: Arc<AtomicU64>,
    count: Arc<AtomicUsize>,
}

impl Woke {
    fn new() -> Woke {
        Woke { epoch: Instant::now(), at_ns: Arc::default(), count: Arc::default() }
    }

    /// The woken side: note the time.
    fn note(&self) {
        self.at_ns.store(self.epoch.elapsed().as_nanos() as u64, SeqCst);
        self.count.fetch_add(1, SeqCst);
    }

    /// The waking side: `WAKES` times, let the target's worker fall asleep, `wake`, and measure
    /// until the woken task notes it.
    fn sample(&self, wake: impl Fn()) -> Vec<Duration> {
        (0..WAKES)
            .map(|i| {
                thread::sleep(Duration::from_micros(100));
                let sent = self.epoch.elapsed().as_nanos() as u64;
                wake();
                while self.count.load(SeqCst) == i {
                    std::hint::spin_loop();
                }
                Duration::from_nanos(self.at_ns.load(SeqCst).saturating_sub(sent))
            })
            .collect()
    }
}

fn wake_remote(_: &mut Criterion) {
    // gort: the task parks; a plain thread unparks it after the worker has gone to sleep.
    let rt = gort_rt(2);
    let woke = Woke::new();
    let (tx, rx) = mpsc::channel();
    let w = woke.clone();
    let task = rt.handle().go(move || {
        tx.send(gort::task::unparker()).unwrap();
        for _ in 0..WAKES {
            gort::task::park();
            w.note();
        }
    });
    let u = rx.recv().unwrap();
    let samples = woke.sample(|| u.unpark());
    task.join().unwrap();
    report("wake_remote/gort (thread unparks a task on a sleeping worker)", samples);

    // tokio: the same with a Notify.
    let trt = tokio_mt(2);
    let notify = Arc::new(tokio::sync::Notify::new());
    let woke = Woke::new();
    let (w, n) = (woke.clone(), notify.clone());
    let h = trt.spawn(async move {
        for _ in 0..WAKES {
            n.notified().await;
            w.note();
        }
    });
    let samples = woke.sample(|| notify.notify_one());
    trt.block_on(h).unwrap();
    report("wake_remote/tokio_mt (thread notifies a task on a sleeping worker)", samples);
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn parked_rss(_: &mut Criterion) {
    let n: usize =
        std::env::var("GORT_BENCH_PARKED").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    if n == 0 {
        return;
    }
    {
        let rt = gort_rt(2);
        let before = rss_bytes();
        let parked = rt.block_on(move || {
            let count = Arc::new(AtomicUsize::new(0));
            let mut unparkers = Vec::with_capacity(n);
            let (tx, rx) = mpsc::channel();
            for _ in 0..n {
                let (count, tx) = (count.clone(), tx.clone());
                gort::go(move || {
                    tx.send(gort::task::unparker()).unwrap();
                    count.fetch_add(1, SeqCst);
                    gort::task::park();
                });
            }
            while count.load(SeqCst) < n {
                gort::time::sleep(Duration::from_millis(10));
            }
            let after = rss_bytes();
            for _ in 0..n {
                unparkers.push(rx.recv().unwrap());
            }
            (after, unparkers.len())
        });
        let per = (parked.0.saturating_sub(before)) as f64 / n as f64;
        println!("parked_rss/gort: {n} tasks parked in task::park: {per:.0} B RSS per task");
        drop(rt);
    }
    {
        let trt = tokio_mt(2);
        let before = rss_bytes();
        let notify = Arc::new(tokio::sync::Notify::new());
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (notify, count) = (notify.clone(), count.clone());
            trt.spawn(async move {
                let fut = notify.notified();
                count.fetch_add(1, SeqCst);
                fut.await;
            });
        }
        while count.load(SeqCst) < n {
            thread::sleep(Duration::from_millis(10));
        }
        let per = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
        println!("parked_rss/tokio_mt: {n} tasks parked on a Notify: {per:.0} B RSS per task");
        notify.notify_waiters();
    }
}

criterion_group!(benches, yield_pair, spawn_join, wake_remote, parked_rss);
criterion_main!(benches);
