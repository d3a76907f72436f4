//! Signals delivered on channels: Go's `os/signal`.
//!
//! Mirrors: `os/signal/signal.go` (Go 1.19) — `Notify`, `Stop`, `Reset`'s effect when the last
//! listener goes; `runtime/sigqueue.go` `signal_recv` (here the dispatcher thread).
//!
//! ```text
//!  kernel ── SIGUSR1 ──► handler (reactor::signal): one byte into the self-pipe
//!  dispatcher thread: netpoll on its own Poller, the pipe registered ─► drain ─► every
//!  listener of that signal gets it with try_send (a full channel drops it, as in Go)
//! ```
//!
//! | listener state | entered by                    | receives                      |
//! |----------------|-------------------------------|-------------------------------|
//! | listening      | [`notify`]                    | each of its signals, once per delivery |
//! | stopped        | [`stop`]                      | nothing new; its channel closes once drained |
//! | gone           | every receiver dropped; seen at the next delivery | nothing; it is removed |
//!
//! Invariants: the handler only writes to the pipe (async-signal-safe); everything else runs
//! on the dispatcher thread. A signal's handler is installed while someone listens to it and
//! the previous action is put back when the last listener stops or is gone. A signal that
//! arrives for listeners that are all gone is raised again once the previous action is back,
//! so it is not lost (Go, which has no drop, keeps delivering to such a channel until `Stop`).

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use reactor::Poller;
use reactor::signal as sys;

use crate::chan::{self, Receiver, Sender, TrySendError};

/// The signals a program can listen to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT (Go's `os.Interrupt`): Ctrl-C.
    Interrupt,
    /// SIGTERM: the polite request to stop.
    Terminate,
    /// SIGQUIT.
    Quit,
    /// SIGHUP.
    Hangup,
    /// SIGUSR1.
    User1,
    /// SIGUSR2.
    User2,
}

const ALL: [Signal; 6] = [
    Signal::Interrupt,
    Signal::Terminate,
    Signal::Quit,
    Signal::Hangup,
    Signal::User1,
    Signal::User2,
];

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Interrupt => sys::SIGINT,
            Signal::Terminate => sys::SIGTERM,
            Signal::Quit => sys::SIGQUIT,
            Signal::Hangup => sys::SIGHUP,
            Signal::User1 => sys::SIGUSR1,
            Signal::User2 => sys::SIGUSR2,
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        ALL.into_iter().find(|s| s.number() == n)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "interrupt",
            Signal::Terminate => "terminated",
            Signal::Quit => "quit",
            Signal::Hangup => "hangup",
            Signal::User1 => "user defined signal 1",
            Signal::User2 => "user defined signal 2",
        })
    }
}

/// One `notify` call: its signals and its sender. Only the caller holds receivers, so a
/// listener whose receivers are all dropped shows as a disconnected send.
struct Listener {
    signals: Vec<Signal>,
    tx: Sender<Signal>,
}

static LISTENERS: Mutex<Vec<Listener>> = Mutex::new(Vec::new());
static DISPATCHER: OnceLock<Result<(), String>> = OnceLock::new();

fn listeners() -> MutexGuard<'static, Vec<Listener>> {
    LISTENERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many deliveries a listener's channel holds before new ones are dropped.
const BUFFER: usize = 16;

/// Go's `signal.Notify`: a receiver that gets each of `signals` when the process receives it.
/// Every listener of a signal gets it. Works in tasks and in plain threads.
///
/// # Panics
/// If the signal pipe or the dispatcher thread cannot be created (out of fds or threads).
pub fn notify(signals: &[Signal]) -> Receiver<Signal> {
    if let Err(e) = DISPATCHER.get_or_init(start_dispatcher) {
        panic!("gort::signal::notify: {e}");
    }
    let (tx, rx) = chan::bounded(BUFFER);
    let mut l = listeners();
    for s in signals {
        if let Err(e) = sys::install(s.number()) {
            panic!("gort::signal::notify: cannot install a handler for {s}: {e}");
        }
    }
    l.push(Listener { signals: signals.to_vec(), tx });
    rx
}

/// Go's `signal.Stop`: `rx` receives no more signals (its channel closes once drained). A
/// signal nobody listens to any more gets its previous action back.
pub fn stop(rx: &Receiver<Signal>) {
    let mut l = listeners();
    l.retain(|x| !x.tx.feeds(rx));
    restore_unwatched(&l);
}

/// Puts back the previous action of every signal no listener in `l` watches.
fn restore_unwatched(l: &[Listener]) {
    for s in ALL {
        if !l.iter().any(|x| x.signals.contains(&s)) {
            let _ = sys::restore(s.number());
        }
    }
}

/// Sends `sig` to this process (Go's tests use `syscall.Kill(os.Getpid(), sig)`).
pub fn raise(sig: Signal) -> std::io::Result<()> {
    sys::raise(sig.number())
}

fn start_dispatcher() -> Result<(), String> {
    let fd = sys::pipe_fd().map_err(|e| e.to_string())?;
    let poller = Poller::new().map_err(|e| format!("no poller for signals: {e}"))?;
    let pd = poller.open(fd).map_err(|e| format!("cannot watch the signal pipe: {e}"))?;
    std::thread::Builder::new()
        .name("gort-signal".into())
        .spawn(move || {
            let _keep = pd;
            let mut got = Vec::new();
            loop {
                // Readiness, not waiters, is what we want here: any event returns.
                if let Err(e) = poller.netpoll(Some(Duration::from_secs(1))) {
                    log::error!("gort: signal poller failed: {e}");
                }
                got.clear();
                if let Err(e) = sys::drain(&mut got) {
                    log::error!("gort: reading the signal pipe failed: {e}");
                }
                for sig in got.iter().filter_map(|&n| Signal::from_number(n)) {
                    deliver(sig);
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

fn deliver(sig: Signal) {
    let mut l = listeners();
    let mut gone = false;
    l.retain(|x| {
        if !x.signals.contains(&sig) {
            return true;
        }
        match x.tx.try_send(sig) {
            Ok(()) | Err(TrySendError::Full(_)) => true, // a full channel drops it, as Go's does
            Err(TrySendError::Disconnected(_)) => {
                gone = true; // every receiver was dropped without `stop`
                false
            }
        }
    });
    if !gone {
        return;
    }
    restore_unwatched(&l);
    if !l.iter().any(|x| x.signals.contains(&sig)) {
        // Nobody got this one: the previous action is back, let it have the signal.
        drop(l);
        if let Err(e) = sys::raise(sig.number()) {
            log::error!("gort: cannot raise {sig} again for its previous action: {e}");
        }
    }
}
