//! # raw_echo: an echo server driven by the reactor alone (one thread, no tasks, no async)
//!
//! ```text
//! cargo run -p reactor --example raw_echo                           # server + own client, checked
//! cargo run -p reactor --example raw_echo -- server 127.0.0.1:7007  # server only, until Ctrl-C
//! cargo run -p reactor --example raw_echo -- client 127.0.0.1:7007  # client only
//! ```
//!
//! The Go program it takes apart (Go's runtime does all of this file for you):
//!
//! ```go
//! ln, _ := net.Listen("tcp", "127.0.0.1:0")
//! for {
//!     c, _ := ln.Accept()
//!     go io.Copy(c, c)
//! }
//! ```
//!
//! With no goroutines, nothing can park; so each socket is a `Record` in a slab, run as a state
//! machine that *returns* where a goroutine would park. The [`Waiter`] word it leaves in its
//! `PollDesc` is its slab id + [`Waiter::MIN`], and the "scheduler" is one loop around `netpoll`.
//!
//! | here                                        | Go                                                  |
//! |---------------------------------------------|-----------------------------------------------------|
//! | `Poller::new()`                             | `netpollinit`: epoll fd + wake-up pipe              |
//! | `poller.open(fd)`, listener and connections | `poll_runtime_pollOpen` → `netpollopen` (ET, both directions, once) |
//! | `accept`/`read`/`write` until `WouldBlock`  | `FD.Accept`/`FD.Read`/`FD.Write`: try; on EAGAIN wait, retry |
//! | `pd.prepare(mode)`                          | `netpollblock`: `pdReady → nil` (retry) or `nil → pdWait` |
//! | `pd.commit(mode, waiter)`                   | `netpollblockcommit`, run by `gopark`: `pdWait → g` |
//! | `poller.netpoll_into(None, &mut woken)`     | `netpoll(-1)` → `gList`, from `findRunnable`        |
//! | … inside it, `PollDesc::ready`              | `netpollready` → `netpollunblock`: `g → pdReady`    |
//! | `pd.complete(mode)`, run the record again   | the goroutine resumes: `netpollblock`'s `Swap(nil) == pdReady` |
//! | `pd.evict()`                                | `poll_runtime_pollUnblock` (`FD.Close` → `pd.evict`) |
//! | `poller.close(&pd)`, *then* drop the socket | `poll_runtime_pollClose` (`EPOLL_CTL_DEL`), then `close(2)` |
//! | stop flag + `poller.netpoll_break()`        | `netpollBreak`: wake the thread in `epoll_wait`     |
//!
//! What a real runtime adds (the `gort` crate): a record *is* a task with its own stack, so
//! `echo` becomes a plain `loop { read; write_all }` and parking is a context switch, not a
//! `return`; several workers share the poller and one blocks in `netpoll`, until its next timer;
//! deadlines end waits (`PollDesc::expire`); and `evict` runs on another thread while a task is
//! parked, so the waiter it hands back must be woken, to fail with `PollError::Closing`.

#![forbid(unsafe_code)]

use std::io::ErrorKind::{ConnectionAborted, Interrupted, WouldBlock};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use reactor::{Mode, PollDesc, Poller, Prepared, Waiter};

/// The listener's slab id; connections get the others.
const LISTENER: usize = 0;
/// The built-in client: `CONNS` connections × `MESSAGES` messages of `MESSAGE_LEN` bytes, then
/// one stream of `BULK_LEN` bytes, more than loopback buffers (~4 MB a side) absorb.
const CONNS: usize = 8;
const MESSAGES: usize = 200;
const MESSAGE_LEN: usize = 64;
const BULK_LEN: usize = 16 << 20;
/// A client socket that waits longer fails, rather than hang the demo.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a run of a record ends: `Some(mode)` parked in `mode`; `None` the peer closed.
type Run = io::Result<Option<Mode>>;

/// What a record runs when it is resumed.
enum Socket {
    Listener(TcpListener),
    /// A connection, and the bytes read from it not yet written back.
    Conn(TcpStream, Vec<u8>),
}

/// One registered fd: what is, in Go, a goroutine and its `netFD`.
struct Record {
    socket: Socket,
    pd: Arc<PollDesc>,
    /// The direction it is parked in (`None` while it runs). The reactor gives back only the
    /// `Waiter`, so the record keeps the mode, as a goroutine keeps it on its stack.
    parked: Option<Mode>,
}

/// Counters for the report.
#[derive(Debug, Default)]
struct Stats {
    accepted: usize,
    closed_by_peer: usize,
    bytes_echoed: usize,
    netpolls: usize,
    wakeups: usize,
    read_parks: usize,
    write_parks: usize,
    /// `prepare` found readiness that came while nobody waited.
    ready_retries: usize,
    /// Readiness or a close came between prepare and commit: needs a second thread, so 0.
    failed_commits: usize,
    /// Waiters `evict` handed back: records still parked at shutdown.
    evicted: usize,
}

/// The slab of records, its free ids, and the poller they are registered with.
struct Server<'p> {
    poller: &'p Poller,
    slab: Vec<Option<Record>>,
    free: Vec<usize>,
    stats: Stats,
    verbose: bool,
}

impl<'p> Server<'p> {
    /// `net.Listen`: a non-blocking listener, registered as record 0 and run once.
    fn new(poller: &'p Poller, listener: TcpListener, verbose: bool) -> io::Result<Self> {
        let mut server =
            Server { poller, slab: Vec::new(), free: Vec::new(), stats: Stats::default(), verbose };
        listener.set_nonblocking(true)?;
        server.insert(listener.as_raw_fd(), Socket::Listener(listener))?; // the first id: 0
        server.run(LISTENER)?;
        Ok(server)
    }

    /// `poll_runtime_pollOpen`: register the fd (edge-triggered, both directions, once) and
    /// give its record a slab id.
    fn insert(&mut self, fd: i32, socket: Socket) -> io::Result<usize> {
        let pd = self.poller.open(fd)?;
        let id = self.free.pop().unwrap_or(self.slab.len());
        if id == self.slab.len() {
            self.slab.push(None);
        }
        self.slab[id] = Some(Record { socket, pd, parked: None });
        Ok(id)
    }

    /// The scheduler loop (Go's `findRunnable` → `netpoll` → `injectglist`): wait for
    /// readiness, then resume each record whose waiter came back.
    fn serve(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut woken = Vec::with_capacity(64);
        while !stop.load(SeqCst) {
            self.poller.netpoll_into(None, &mut woken)?;
            self.stats.netpolls += 1;
            for waiter in woken.drain(..) {
                self.stats.wakeups += 1;
                self.wake(waiter)?;
            }
        }
        Ok(())
    }

    /// `goready`, then the end of `netpollblock` in the resumed record.
    fn wake(&mut self, waiter: Waiter) -> io::Result<()> {
        let id = waiter.get() - Waiter::MIN;
        let record = self.slab[id].as_mut().expect("a waiter names a live record");
        let mode = record.parked.take().expect("a woken record was parked");
        // `true`: readiness woke us. `false` would be an evict or a deadline (not here); either
        // way we retry, and `prepare` reports any error, as Go's `pollWait` loop does.
        record.pd.complete(mode);
        self.run(id)
    }

    /// Runs record `id` until it parks (back into the slab) or ends (closed): one goroutine's
    /// run from a wake-up to its next `gopark`.
    fn run(&mut self, id: usize) -> io::Result<()> {
        let mut record = self.slab[id].take().expect("run a live record");
        let waiter = Waiter::new(id + Waiter::MIN).expect("id + MIN is a waiter word");
        let result = match &mut record.socket {
            Socket::Listener(listener) => self.accept_all(listener, &record.pd, waiter),
            Socket::Conn(sock, pending) => self.echo(sock, pending, &record.pd, waiter),
        };
        match result {
            Ok(Some(mode)) => {
                record.parked = Some(mode);
                self.slab[id] = Some(record);
            }
            Ok(None) => {
                self.stats.closed_by_peer += 1;
                self.close(id, record, "closed by peer");
            }
            Err(e) if id == LISTENER => {
                self.slab[id] = Some(record);
                return Err(e); // no listener, no server
            }
            Err(e) => self.close(id, record, &e.to_string()), // e.g. ConnectionReset
        }
        Ok(())
    }

    /// `FD.Accept`'s loop: accept until EAGAIN, then park on Read. Each new connection gets a
    /// record and runs at once, where Go would start its goroutine.
    fn accept_all(&mut self, listener: &TcpListener, pd: &PollDesc, w: Waiter) -> Run {
        loop {
            match listener.accept() {
                Ok((sock, peer)) => {
                    sock.set_nonblocking(true)?;
                    sock.set_nodelay(true)?; // Go's default for TCP
                    let id = self.insert(sock.as_raw_fd(), Socket::Conn(sock, Vec::new()))?;
                    self.stats.accepted += 1;
                    if self.verbose {
                        println!("record {id}: accepted {peer}");
                    }
                    self.run(id)?;
                }
                // Reset before we took it: Go's accept loop skips ECONNABORTED too.
                Err(e) if e.kind() == ConnectionAborted => {}
                Err(e) => {
                    if self.on_error(e, pd, Mode::Read, w)? {
                        return Ok(Some(Mode::Read));
                    }
                }
            }
        }
    }

    /// `io.Copy(c, c)` as a state machine: write out what is pending, then read more. A short
    /// write keeps the rest for the next try; EAGAIN parks on Write. Reads go on until EAGAIN
    /// before parking on Read: edge-triggered epoll sends no new edge for data already there.
    fn echo(&mut self, sock: &mut TcpStream, out: &mut Vec<u8>, pd: &PollDesc, w: Waiter) -> Run {
        let mut buf = [0u8; 16 * 1024];
        loop {
            while !out.is_empty() {
                match sock.write(out) {
                    Ok(n) => {
                        out.drain(..n);
                        self.stats.bytes_echoed += n;
                    }
                    Err(e) => {
                        if self.on_error(e, pd, Mode::Write, w)? {
                            return Ok(Some(Mode::Write));
                        }
                    }
                }
            }
            match sock.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    if self.on_error(e, pd, Mode::Read, w)? {
                        return Ok(Some(Mode::Read));
                    }
                }
            }
        }
    }

    /// A non-blocking syscall failed with `e` (the `err != nil` branch of Go's `FD.Read` loop):
    /// EAGAIN parks in `mode` (`Ok(true)`), EINTR retries (`Ok(false)`), the rest is an error.
    fn on_error(&mut self, e: io::Error, pd: &PollDesc, mode: Mode, w: Waiter) -> io::Result<bool> {
        match e.kind() {
            WouldBlock => self.park(pd, mode, w),
            Interrupted => Ok(false),
            _ => Err(e),
        }
    }

    /// `netpollblock` + `gopark(netpollblockcommit)`. `true`: parked, return to the loop;
    /// `false`: readiness is already here, retry the syscall now.
    fn park(&mut self, pd: &PollDesc, mode: Mode, w: Waiter) -> io::Result<bool> {
        match pd.prepare(mode)? {
            // An edge came while nobody waited: consumed (`pdReady → nil`). Only a hint: the
            // retried syscall may say EAGAIN again, and then we park.
            Prepared::Ready => self.stats.ready_retries += 1,
            // Announced (`nil → pdWait`). Go commits once off the goroutine's stack; a state
            // machine has no stack to leave, so it commits at once.
            Prepared::Park => {
                if pd.commit(mode, w) {
                    match mode {
                        Mode::Read => self.stats.read_parks += 1,
                        Mode::Write => self.stats.write_parks += 1,
                    }
                    return Ok(true);
                }
                // The word moved between announce and commit: do not sleep. Reset it, as the
                // resumed goroutine would, and retry.
                self.stats.failed_commits += 1;
                pd.complete(mode);
            }
        }
        Ok(false)
    }

    /// `FD.Close` → `destroy`, in Go's order: evict, deregister, and only then close the fd,
    /// so `EPOLL_CTL_DEL` cannot hit another socket that reused the fd number.
    fn close(&mut self, id: usize, record: Record, why: &str) {
        // Mark it closing and take back whoever is parked; a runtime would wake them, to fail
        // with `Closing`. Here the only waiter can be this record: none when it closes itself,
        // its own word when it is closed at shutdown.
        let (reader, writer) = record.pd.evict();
        self.stats.evicted += reader.iter().chain(&writer).count();
        if let Err(e) = self.poller.close(&record.pd) {
            eprintln!("record {id}: deregistering failed: {e}");
        }
        drop(record.socket); // close(2)
        if id != LISTENER {
            self.free.push(id);
        }
        if self.verbose {
            println!("record {id}: {why}");
        }
    }

    /// Closes every record still open: the listener, and connections left open.
    fn shutdown(mut self) -> Stats {
        for id in 0..self.slab.len() {
            if let Some(record) = self.slab[id].take() {
                self.close(id, record, "closed at shutdown");
            }
        }
        self.stats
    }
}

/// Fills `buf` with stream `seed`: varied bytes the checking side can rebuild.
fn fill(buf: &mut [u8], seed: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = ((seed as u64) << 32 | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *b = (x >> 56) as u8;
    }
}

/// An error, naming the first differing byte, unless the echo is exactly what was sent.
fn verify(got: &[u8], sent: &[u8], what: &str) -> io::Result<()> {
    if got == sent {
        return Ok(());
    }
    let at = got.iter().zip(sent).take_while(|(g, s)| g == s).count();
    let (g, s) = (got.len(), sent.len());
    Err(io::Error::other(format!("{what}: echo differs at byte {at} ({g} back, {s} sent)")))
}

/// A plain blocking socket, with timeouts so a broken server fails the client, not hangs it.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    sock.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    Ok(sock)
}

/// The client: `CONNS` connections in lock step (a message on each, then each echo), a
/// half-close on each, then the bulk stream. Returns the bytes it sent.
fn run_client(addr: SocketAddr) -> io::Result<usize> {
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect(addr)).collect::<Result<_, _>>()?;
    let (mut msg, mut echo) = ([0u8; MESSAGE_LEN], [0u8; MESSAGE_LEN]);
    for m in 0..MESSAGES {
        for (c, conn) in conns.iter_mut().enumerate() {
            fill(&mut msg, c * MESSAGES + m);
            conn.write_all(&msg)?;
        }
        for (c, conn) in conns.iter_mut().enumerate() {
            conn.read_exact(&mut echo)?;
            fill(&mut msg, c * MESSAGES + m);
            verify(&echo, &msg, &format!("connection {c}, message {m}"))?;
        }
    }
    for conn in &mut conns {
        // Half-close, then wait for the server's close: it has seen our EOF and closed.
        conn.shutdown(Shutdown::Write)?;
        if conn.read(&mut echo)? != 0 {
            return Err(io::Error::other("bytes echoed after the last message"));
        }
    }
    bulk(addr)?;
    Ok(CONNS * MESSAGES * MESSAGE_LEN + BULK_LEN)
}

/// One connection streams `BULK_LEN` bytes while its reader starts late: the buffers fill, and
/// the server's writes come up short, hit EAGAIN, and park on Write with output pending.
fn bulk(addr: SocketAddr) -> io::Result<()> {
    let mut reader = connect(addr)?;
    let mut writer = reader.try_clone()?;
    let mut sent = vec![0u8; BULK_LEN];
    fill(&mut sent, usize::MAX >> 32);
    let mut got = Vec::with_capacity(BULK_LEN);
    thread::scope(|s| {
        let sender = s.spawn(|| {
            writer.write_all(&sent)?;
            writer.shutdown(Shutdown::Write) // EOF after the last byte: the server then closes
        });
        thread::sleep(Duration::from_millis(100));
        let read = reader.read_to_end(&mut got);
        sender.join().expect("bulk sender panicked").and(read)
    })?;
    verify(&got, &sent, "bulk stream")
}

/// No arguments: the server on this thread, the client on another, checks, a clean shutdown.
fn demo() -> io::Result<()> {
    let poller = Poller::new()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("raw_echo: echo server on {addr}, driven by one thread and the reactor");
    let (start, stop) = (Instant::now(), AtomicBool::new(false));
    let mut server = Server::new(&poller, listener, false)?;
    let (served, stats, sent) = thread::scope(|s| {
        let client = s.spawn(|| {
            let sent = run_client(addr);
            // Done, or failed: stop the server. Set the flag, then break its `epoll_wait`.
            stop.store(true, SeqCst);
            poller.netpoll_break().expect("netpoll_break");
            sent
        });
        let served = server.serve(&stop);
        let stats = server.shutdown(); // closes every socket: a failing client fails fast
        let sent = client.join().expect("client thread panicked");
        (served, stats, sent)
    });
    let (elapsed, registered) = (start.elapsed(), poller.stats().registered);
    served?;
    let sent = sent?;
    let messages = CONNS * MESSAGES;
    println!("client:   {messages} messages of {MESSAGE_LEN} B on {CONNS} connections, then");
    println!("          {BULK_LEN} B on one more: {sent} B sent, every byte of the echo verified");
    println!("elapsed:  {elapsed:.2?}; after shutdown {registered} fds are still registered");
    println!("server:   {stats:#?}");
    let conns = CONNS + 1;
    let (accepted, closed, echoed) = (stats.accepted, stats.closed_by_peer, stats.bytes_echoed);
    if accepted != conns || closed != conns || echoed != sent || registered != 0 {
        return Err(io::Error::other("the server's counts differ from the client's"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = |a: &str| a.parse::<SocketAddr>().map_err(|e| io::Error::other(format!("{a}: {e}")));
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => demo(),
        ["server", a] => addr(a).and_then(|addr| {
            let (poller, listener) = (Poller::new()?, TcpListener::bind(addr)?);
            println!("raw_echo: serving on {}; Ctrl-C to stop", listener.local_addr()?);
            Server::new(&poller, listener, true)?.serve(&AtomicBool::new(false))
        }),
        ["client", a] => addr(a).and_then(|addr| {
            let start = Instant::now();
            let sent = run_client(addr)?;
            println!(
                "raw_echo: {sent} bytes echoed by {addr} and verified in {:.2?}",
                start.elapsed()
            );
            Ok(())
        }),
        _ => {
            eprintln!("usage: raw_echo [server ADDR | client ADDR]");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = result {
        eprintln!("raw_echo: FAILED: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
