//! `benches/chan.rs` as interleaved rounds: gort and the others take turns, round after round,
//! in one process; each reports the minimum, median and maximum of its rounds, and the
//! ping-pong also the median of the per-round ratios gort / tokio.
//!
//! Run: `cargo bench --bench chan_rounds` (env: `ROUNDS`, default 20; `PP_ITERS`, round trips
//! per ping-pong round, default 200 000).
//!
//! Why besides the criterion groups: this VM's two vCPUs run in fast and slow phases of the
//! host that last seconds, and criterion measures one library after the other, each for a few
//! seconds, so one of them can get a fast phase and the other a slow one. Taking turns every
//! round gives all of them the same mix of conditions, so their medians compare. For
//! `mpmc_4x4`, where the eight tasks start also decides a round's figure (see
//! `benches/chan.rs`).

#![allow(missing_docs)]

use std::time::{Duration, Instant};

#[path = "shared/mpmc.rs"]
mod mpmc;
#[path = "shared/ping_pong.rs"]
mod ping_pong;

use mpmc::{PER_SENDER, async_channel_round, crossbeam_round, gort_round};
use ping_pong::{gort_ping_pong, tokio_ping_pong};

/// Millions of messages per second of one 4×4 round that started at `t`.
fn rate(t: Instant) -> f64 {
    4.0 * PER_SENDER as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summary(v: &mut [f64]) -> String {
    let m = median(v);
    format!("min {:6.2}  median {:6.2}  max {:6.2}", v[0], m, v[v.len() - 1])
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let rounds: usize = env("ROUNDS", 20);
    let iters: u64 = env("PP_ITERS", 200_000);
    let ns = |d: Duration| d.as_nanos() as f64 / iters as f64;

    let rt1 = gort::Runtime::builder().workers(1).build().unwrap();
    let trt1 = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (mut g, mut t, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = ns(gort_ping_pong(&rt1, iters));
        let b = ns(tokio_ping_pong(&trt1, iters));
        g.push(a);
        t.push(b);
        ratio.push(a / b);
    }
    println!("ping_pong unbuffered, {rounds} interleaved rounds of {iters} round trips, ns each:");
    println!("  gort (1 worker)             {}", summary(&mut g));
    println!("  tokio mpsc (current-thread) {}", summary(&mut t));
    println!("  gort / tokio per round      {}", summary(&mut ratio));

    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (mut g, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        gort_round(&rt);
        g.push(rate(t));
        let t = Instant::now();
        crossbeam_round();
        c.push(rate(t));
        let t = Instant::now();
        async_channel_round(&trt);
        a.push(rate(t));
    }
    println!("mpmc 4x4 bounded(64), {rounds} interleaved rounds, M msg/s:");
    println!("  gort (2 workers)            {}", summary(&mut g));
    println!("  crossbeam (8 OS threads)    {}", summary(&mut c));
    println!("  async-channel (tokio, 2 w.) {}", summary(&mut a));
}
