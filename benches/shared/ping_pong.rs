//! The unbuffered ping-pong of `benches/chan.rs` for gort and tokio: two tasks on one worker,
//! two channels, `iters` round trips. Shared by `benches/chan.rs` (criterion) and
//! `benches/chan_rounds.rs` (interleaved rounds), so both measure the same code.

use std::time::{Duration, Instant};

/// gort: two `bounded(0)` channels on `rt` (1 worker); the time of `iters` round trips.
pub fn gort_ping_pong(rt: &gort::Runtime, iters: u64) -> Duration {
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
}

/// tokio: two `mpsc::channel(1)` on the current-thread runtime `rt`.
pub fn tokio_ping_pong(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
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
}
