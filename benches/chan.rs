//! Channels against tokio and crossbeam, side by side in one run.
//!
//! Run: `cargo bench --bench chan`
//!
//! | group        | gort                                   | others                                         |
//! |--------------|----------------------------------------|------------------------------------------------|
//! | `ping_pong`  | two tasks, two `bounded(0)` channels, 1 worker; one iteration = there and back | tokio current-thread, two `mpsc::channel(1)` |
//! | `mpmc_4x4`   | 4 sender tasks × 4 receiver tasks through `bounded(64)`, 2 workers; one iteration = one message | crossbeam-channel `bounded(64)` on 8 OS threads; async-channel `bounded(64)` on tokio multi-thread (2 workers) |
//!
//! Reading `mpmc_4x4`: where the eight tasks start decides the figure more than anything else.
//! Started tasks never move (architecture decision 1), and whether the second worker steals
//! some of them before they start depends on how fast it wakes. All eight on one worker: no
//! cache line crosses cores. Spread over both: every message moves the ring's slot (and often
//! its head or tail) from one core to the other, which on a 2-vCPU VM costs from ~30 ns to
//! several times that, depending on where the host placed the vCPUs at the time. One criterion
//! run keeps one runtime, so its samples tend to share a pattern: run the group several times
//! and compare medians across runs.

#![allow(missing_docs)] // criterion_group! generates `pub fn benches` without docs

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    g.bench_function("gort_unbuffered", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let (ping_tx, ping_rx) = gort::chan::bounded::<u64>(0);
                let (pong_tx, pong_rx) = gort::chan::bounded::<u64>(0);
                let echo = gort::go(move || {
                    for v in ping_rx.iter() {
                        pong_tx.send(v).unwrap();
                    }
                });
                let t = Instant::now();
                for i in 0..iters {
                    ping_tx.send(i).unwrap();
                    pong_rx.recv().unwrap();
                }
                let e = t.elapsed();
                drop(ping_tx);
                echo.join().unwrap();
                e
            })
        })
    });
    let trt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    g.bench_function("tokio_mpsc_ct", |b| {
        b.iter_custom(|iters| {
            trt.block_on(async move {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(v) = ping_rx.recv().await {
                        pong_tx.send(v).await.unwrap();
                    }
                });
                let t = Instant::now();
                for i in 0..iters {
                    ping_tx.send(i).await.unwrap();
                    pong_rx.recv().await.unwrap();
                }
                let e = t.elapsed();
                drop(ping_tx);
                echo.await.unwrap();
                e
            })
        })
    });
    g.finish();
}

#[path = "shared/mpmc.rs"]
mod mpmc_round;

use mpmc_round::{PER_SENDER, async_channel_round, crossbeam_round, gort_round};

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_4x4");
    g.sample_size(10);
    g.throughput(Throughput::Elements(4 * PER_SENDER));
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    g.bench_function("gort_bounded64", |b| b.iter(|| gort_round(&rt)));
    g.bench_function("crossbeam_threads", |b| b.iter(crossbeam_round));
    let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    g.bench_function("async_channel_tokio_mt", |b| b.iter(|| async_channel_round(&trt)));
    g.finish();
}

criterion_group!(benches, ping_pong, mpmc);
criterion_main!(benches);
