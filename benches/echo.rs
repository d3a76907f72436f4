//! Echo servers on gort and on tokio, driven by the same client in the same run.
//!
//! Run: `cargo bench --bench echo` (env: `ECHO_SECS` per measurement, default 2; `ECHO_ROUNDS`
//! interleaved rounds, default 3; `ECHO_CONNS`, default "100,1000").
//!
//! - The client is one thread with a tokio current-thread runtime (the same code for both
//!   servers): `conns` connections in a closed loop, each writes 64 bytes and reads them back
//!   before the next, and records every round trip's latency.
//! - The servers have one worker each (the client takes the other core of this 2-vCPU machine):
//!   gort `workers(1)`, tokio multi-thread `worker_threads(1)`. Each connection's handler is a
//!   plain read/write loop.
//! - Medians over the rounds; gort and tokio alternate within each round.
//!
//! Syscalls per round trip: `ECHO_HOLD=gort` (or `tokio`) runs that server alone on
//! 127.0.0.1:7878 until killed, for `perf stat -e raw_syscalls:sys_enter --per-thread -p PID`
//! while a client runs (`ECHO_CLIENT=127.0.0.1:7878`).

#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MSG: usize = 64;

/// Starts a gort echo server; returns its address and the runtime (dropped to stop it).
fn gort_server(addr: &str) -> (SocketAddr, gort::Runtime) {
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    let addr = addr.to_string();
    let bound = rt.block_on(move || {
        let l = gort::net::TcpListener::bind(addr).unwrap();
        let a = l.local_addr().unwrap();
        gort::go(move || {
            while let Ok((s, _)) = l.accept() {
                gort::go(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match (&s).read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if (&s).write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        a
    });
    (bound, rt)
}

/// Starts a tokio echo server with one worker.
fn tokio_server(addr: &str) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let l = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let a = l.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (a, rt)
}

/// What one client run saw.
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// The closed-loop client: `conns` connections for `secs`.
fn client(addr: SocketAddr, conns: usize, secs: f64) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let msg = [42u8; MSG];
                let mut back = [0u8; MSG];
                let mut lat = Vec::with_capacity(4096);
                while !stop.load(SeqCst) {
                    let t = Instant::now();
                    s.write_all(&msg).await.unwrap();
                    s.read_exact(&mut back).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        // Warm up a little, then measure.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, SeqCst);
        let elapsed = start.elapsed();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let at = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        // Round trips during warm-up are in `all` too; the rate uses the measured window only
        // (approximated by scaling: warm-up is short and at the same rate).
        let rps = all.len() as f64 / (elapsed.as_secs_f64() + 0.2);
        Run { rps, p50: at(0.5), p99: at(0.99) }
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench -- --list
    }
    if let Ok(which) = std::env::var("ECHO_HOLD") {
        let (a, _rt_g, _rt_t);
        if which == "tokio" {
            (a, _rt_t) = tokio_server("127.0.0.1:7878");
        } else {
            (a, _rt_g) = gort_server("127.0.0.1:7878");
        }
        eprintln!("{which} echo server on {a}, pid {}", std::process::id());
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Ok(addr) = std::env::var("ECHO_CLIENT") {
        let r = client(addr.parse().unwrap(), env("ECHO_CONNS", 100usize), env("ECHO_SECS", 5.0));
        println!("client: {:.0} req/s, p50 {:?}, p99 {:?}", r.rps, r.p50, r.p99);
        return;
    }
    let secs: f64 = env("ECHO_SECS", 2.0);
    let rounds: usize = env("ECHO_ROUNDS", 3);
    let conns: Vec<usize> = std::env::var("ECHO_CONNS")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    for &n in &conns {
        let (mut g_rps, mut t_rps, mut g_p99, mut t_p99) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (a, rt) = gort_server("127.0.0.1:0");
            let g = client(a, n, secs);
            drop(rt);
            let (a, rt) = tokio_server("127.0.0.1:0");
            let t = client(a, n, secs);
            rt.shutdown_timeout(Duration::from_secs(1));
            println!(
                "echo/{n} conns: gort {:.0} req/s (p50 {:?}, p99 {:?}) | tokio {:.0} req/s (p50 {:?}, p99 {:?})",
                g.rps, g.p50, g.p99, t.rps, t.p50, t.p99
            );
            g_rps.push(g.rps);
            t_rps.push(t.rps);
            g_p99.push(g.p99.as_secs_f64() * 1e3);
            t_p99.push(t.p99.as_secs_f64() * 1e3);
        }
        let (g, t) = (median(g_rps), median(t_rps));
        println!(
            "echo/{n} conns, medians of {rounds}: gort {g:.0} req/s, tokio {t:.0} req/s, ratio {:.2}; p99 gort {:.2} ms, tokio {:.2} ms",
            g / t,
            median(g_p99),
            median(t_p99)
        );
    }
}
