//! Echo servers on gort and on tokio, driven by the same client in the same run.
//!
//! Run: `cargo bench --bench echo` (env: `ECHO_SECS` per measurement, default 2; `ECHO_ROUNDS`
//! interleaved rounds, default 5; `ECHO_CONNS`, default "100,1000").
//!
//! - Each server runs in a child process (this binary with `ECHO_HOLD`), pinned to CPU 0 with
//!   `taskset`; the client is this process, pinned to CPU 1 (as in `performance.md`). Without two
//!   CPUs or `taskset` nothing is pinned, and the output says so.
//! - The client is one thread with a tokio current-thread runtime (the same code for both
//!   servers): `conns` connections in a closed loop, each writes 64 bytes and reads them back
//!   before the next. After 300 ms of warm-up, round trips are counted and timed for `ECHO_SECS`.
//! - The servers have one worker each: gort `workers(1)`, tokio multi-thread
//!   `worker_threads(1)`. Each connection's handler is a plain read/write loop.
//! - Reported: req/s, p50/p99 latency, and the server's CPU time (user + system, from
//!   `/proc/PID/stat`) per round trip, with its user-space part (the runtime's own cost; the rest
//!   is the kernel's); medians over the rounds, gort and tokio alternating. `/proc` counts in
//!   10 ms ticks: for the user part take `ECHO_SECS=4` or more.
//!
//! Syscalls per round trip: `benches/echo_syscalls.sh [conns] [client processes] [rounds]`
//! counts them with `perf stat` for both servers, alternating. It uses two modes of this
//! binary: `ECHO_HOLD=gort` (or `tokio`) runs that server alone on 127.0.0.1:7878 (or
//! `ECHO_ADDR`) until its stdin closes; `ECHO_CLIENT=127.0.0.1:7878` runs the client alone.
//!
//! What bounds these figures (measured 2026-12-01 with `perf record -g -p PID` on each server
//! under the same client, 100 connections): about 90% of either server's CPU time is the
//! kernel's loopback TCP path, the same for both (`sendto` alone, which also delivers into the
//! client's socket, is 71–73%; `recvfrom` 13–15%; `epoll_wait` 3–4%). The runtimes differ only
//! in the remaining ~9% of user time, so no runtime can beat the other by more than about that
//! here, and run-to-run swings of the host (10–30%) dwarf the difference: compare medians of
//! many interleaved rounds. Syscalls: with one client process as fast as the server, a server
//! that idles between bursts calls `epoll_wait` once per burst, every 5–30 round trips
//! depending on the host's phase (gort 2.03–2.20 per round trip, tokio 2.18–2.31 in the same
//! runs, 2026-12-01); with four client processes the server is the bottleneck and both are at
//! 2.01–2.03.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
    /// The server's CPU time (user + system) per round trip, if its pid was given.
    cpu_us: Option<f64>,
    /// The user-space part of it: the runtime's own cost (the rest is the kernel's).
    user_us: Option<f64>,
}

/// User and system CPU time of process `pid` so far (`/proc/PID/stat` fields 14 and 15, in
/// clock ticks of 10 ms: `getconf CLK_TCK` is 100 on Linux, so take windows of seconds).
fn cpu_time(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| Some(Duration::from_millis(f.get(i)?.parse::<u64>().ok()? * 10));
    Some((ticks(11)?, ticks(12)?))
}

/// The closed-loop client: `conns` connections; round trips are counted and timed only in the
/// measured window of `secs` (after 300 ms of warm-up). `server` is the server's pid, for its CPU
/// time over the window.
fn client(addr: SocketAddr, conns: usize, secs: f64, server: Option<u32>) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let measuring = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (stop, measuring) = (stop.clone(), measuring.clone());
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
                    if measuring.load(SeqCst) {
                        lat.push(t.elapsed());
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu0 = server.and_then(cpu_time);
        measuring.store(true, SeqCst);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        measuring.store(false, SeqCst);
        let elapsed = start.elapsed();
        let cpu1 = server.and_then(cpu_time);
        stop.store(true, SeqCst);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let at = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        let n = all.len() as f64;
        let per_rt = |d: Duration| d.as_secs_f64() * 1e6 / n;
        let spent = cpu0.zip(cpu1).map(|((u0, s0), (u1, s1))| (u1 - u0, s1 - s0));
        Run {
            rps: n / elapsed.as_secs_f64(),
            p50: at(0.5),
            p99: at(0.99),
            cpu_us: spent.map(|(u, s)| per_rt(u + s)),
            user_us: spent.map(|(u, _)| per_rt(u)),
        }
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Pins this whole process (every thread, and those it starts later) to `cpu`.
fn pin_self(cpu: usize) -> bool {
    let pid = std::process::id().to_string();
    Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server child process, pinned to `cpu` when `pin`; ends when its stdin closes.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str, pin: bool) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = cmd
            .env("ECHO_HOLD", kind)
            .env("ECHO_ADDR", "127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().parse().expect("the child prints its address");
        Server { child, addr }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take()); // EOF: the child exits
        let _ = self.child.wait();
    }
}

/// Child mode: serve until stdin closes, after printing the bound address.
fn hold(which: &str) {
    let addr = std::env::var("ECHO_ADDR").unwrap_or_else(|_| "127.0.0.1:7878".into());
    let (a, _rt_g, _rt_t);
    if which == "tokio" {
        (a, _rt_t) = tokio_server(&addr);
    } else {
        (a, _rt_g) = gort_server(&addr);
    }
    println!("{a}");
    eprintln!("{which} echo server on {a}, pid {}", std::process::id());
    // Until stdin closes (the parent stops us, or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench -- --list
    }
    if let Ok(which) = std::env::var("ECHO_HOLD") {
        hold(&which);
        return;
    }
    if let Ok(addr) = std::env::var("ECHO_CLIENT") {
        let pid = std::env::var("ECHO_SERVER_PID").ok().and_then(|p| p.parse().ok());
        let r = client(addr.parse().unwrap(), env("ECHO_CONNS", 100), env("ECHO_SECS", 5.0), pid);
        println!("client: {:.0} req/s, p50 {:?}, p99 {:?}", r.rps, r.p50, r.p99);
        return;
    }
    let secs: f64 = env("ECHO_SECS", 2.0);
    let rounds: usize = env("ECHO_ROUNDS", 5);
    let conns: Vec<usize> = std::env::var("ECHO_CONNS")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cpus >= 2 && pin_self(1);
    if pin {
        println!("server pinned to CPU 0 (a child process), client to CPU 1");
    } else {
        println!("not pinned ({cpus} CPUs, or no taskset): figures are rougher");
    }
    for &n in &conns {
        let mut runs: [Vec<Run>; 2] = [vec![], vec![]];
        for round in 0..rounds {
            // Alternate which server goes first, so drift in the machine hits both alike.
            let order = if round % 2 == 0 { ["gort", "tokio"] } else { ["tokio", "gort"] };
            for kind in order {
                let server = Server::start(kind, pin);
                let r = client(server.addr, n, secs, Some(server.child.id()));
                server.stop();
                println!(
                    "echo/{n} conns/{kind}: {:.0} req/s, p50 {:?}, p99 {:?}, server CPU {:.2} µs/req \
                     (user {:.2})",
                    r.rps,
                    r.p50,
                    r.p99,
                    r.cpu_us.unwrap_or(f64::NAN),
                    r.user_us.unwrap_or(f64::NAN)
                );
                runs[usize::from(kind == "tokio")].push(r);
            }
        }
        let stat = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
        let rps = |r: &Run| r.rps;
        let p99 = |r: &Run| r.p99.as_secs_f64() * 1e3;
        let cpu = |r: &Run| r.cpu_us.unwrap_or(f64::NAN);
        let user = |r: &Run| r.user_us.unwrap_or(f64::NAN);
        println!(
            "echo/{n} conns, medians of {rounds}: gort {:.0} req/s, tokio {:.0} req/s, ratio {:.2}; \
             p99 gort {:.2} ms, tokio {:.2} ms; server CPU gort {:.2} µs/req, tokio {:.2}; \
             user gort {:.2} µs/req, tokio {:.2}",
            stat(0, rps),
            stat(1, rps),
            stat(0, rps) / stat(1, rps),
            stat(0, p99),
            stat(1, p99),
            stat(0, cpu),
            stat(1, cpu),
            stat(0, user),
            stat(1, user),
        );
    }
}
