//! `mpmc_4x4` of `benches/chan.rs` as interleaved rounds: gort, crossbeam-channel and
//! async-channel take turns, round after round, in one process, and each reports the minimum,
//! median and maximum of its rounds.
//!
//! Run: `cargo bench --bench mpmc_rounds` (env: `ROUNDS`, default 20).
//!
//! Why besides the criterion group: where the eight tasks start decides a round's figure (see
//! `benches/chan.rs`), and so does the host's placement of this VM's two vCPUs, which changes
//! over seconds. Criterion measures one library after the other, each for a few seconds with one
//! runtime; taking turns every round gives all three the same mix of conditions, so their
//! medians compare.

#![allow(missing_docs)]

use std::time::Instant;

#[path = "shared/mpmc.rs"]
mod mpmc;

use mpmc::{PER_SENDER, async_channel_round, crossbeam_round, gort_round};

/// Millions of messages per second of one round that started at `t`.
fn rate(t: Instant) -> f64 {
    4.0 * PER_SENDER as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn summary(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!("min {:5.2}  median {:5.2}  max {:5.2}", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
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
