//! Channels against tokio and crossbeam, side by side in one run.
//!
//! Run: `cargo bench --bench chan`
//!
//! | group        | gort                                   | others                                         |
//! |--------------|----------------------------------------|------------------------------------------------|
//! | `ping_pong`  | two tasks, two `bounded(0)` channels, 1 worker; one iteration = there and back | tokio current-thread, two `mpsc::channel(1)` |
//! | `mpmc_4x4`   | 4 sender tasks × 4 receiver tasks through `bounded(64)`, 2 workers; one iteration = one message | crossbeam-channel `bounded(64)` on 8 OS threads; async-channel `bounded(64)` on tokio multi-thread (2 workers) |
//!
//! Reading `mpmc_4x4`: where the eight tasks start still matters. Started tasks never move
//! (architecture decision 1), and whether the second worker steals some of them before they
//! start depends on how fast it wakes. All eight on one worker: no cache line crosses cores.
//! Spread over both: messages move the ring's slots (and its head or tail) from one core to the
//! other, which on a 2-vCPU VM costs from ~30 ns to several times that, depending on where the
//! host placed the vCPUs at the time. Until 2026-12-01 a spread placement ran at a third of the
//! one-worker rate, because a task that found the ring full (empty) switched to a sibling that
//! retried at once and pulled the lines back; since the retries spin while another worker runs
//! (`sched::backoff`), spread placements run about as fast as the one-worker one. One criterion
//! run keeps one runtime, so its samples tend to share a pattern: `benches/chan_rounds.rs`
//! interleaves rounds of all three and is the figure to quote.

#![allow(missing_docs)] // criterion_group! generates `pub fn benches` without docs

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "shared/ping_pong.rs"]
mod ping_pong_round;

use ping_pong_round::{gort_ping_pong, tokio_ping_pong};

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    g.bench_function("gort_unbuffered", |b| b.iter_custom(|iters| gort_ping_pong(&rt, iters)));
    let trt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    g.bench_function("tokio_mpsc_ct", |b| b.iter_custom(|iters| tokio_ping_pong(&trt, iters)));
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
