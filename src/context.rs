//! Cancellation trees with deadlines: Go's `context` package.
//!
//! Mirrors: `context/context.go` (Go 1.19, plus 1.21's `AfterFunc`) — `Background`,
//! `WithCancel`, `WithDeadline`, `WithTimeout`, `cancelCtx` (`children`, `done`, `err`),
//! `propagateCancel`, `removeChild`, `timerCtx`.
//!
//! ```text
//!  background ── A (with_cancel) ── B (with_timeout 1 s) ── D
//!                └─ C (with_deadline t)
//!  cancel(A): A, B, C, D are cancelled (Canceled); each done() closes; B's timer is moot
//!  B's deadline passes: B and D are cancelled (DeadlineExceeded); A and C go on
//! ```
//!
//! | node state | entered by                                      | `done()`   | `err()`                |
//! |------------|-------------------------------------------------|------------|------------------------|
//! | live       | creation (under a live parent)                  | open       | `None`                 |
//! | cancelled  | its `CancelFn`, its deadline, or its parent's cancel | closed | `Some(Canceled)` or `Some(DeadlineExceeded)` |
//!
//! Invariants:
//! - A node is cancelled at most once; its children are cancelled with the same error; then it
//!   removes itself from its parent's children (so a parent does not collect dead children).
//! - A child created under a cancelled parent is born cancelled.
//! - `done()` closes by dropping the only sender of its channel: every receiver, in a task or a
//!   thread, wakes with the channel's "closed" error.
//! - Callbacks (`after_func`) run once, in a new task (a thread outside a runtime), never under
//!   a lock.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::chan::{self, Receiver, Sender};
use crate::sched::worker;

/// Why a context ended (Go's `context.Canceled` and `context.DeadlineExceeded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its cancel function was called (or its parent's).
    Canceled,
    /// Its deadline passed (or its parent's).
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

impl From<ContextError> for io::Error {
    /// `DeadlineExceeded` reports as a timeout (Go: `Timeout() == true`).
    fn from(e: ContextError) -> io::Error {
        let kind = match e {
            ContextError::DeadlineExceeded => io::ErrorKind::TimedOut,
            ContextError::Canceled => io::ErrorKind::Interrupted,
        };
        io::Error::new(kind, e)
    }
}

type Callback = Box<dyn FnOnce() + Send>;

struct NodeState {
    err: Option<ContextError>,
    /// The only sender of `done`: dropped on cancel, which closes the channel.
    done_tx: Option<Sender<()>>,
    children: HashMap<u64, Arc<Node>>,
    callbacks: HashMap<u64, Callback>,
}

struct Node {
    id: u64,
    parent: Option<Weak<Node>>,
    deadline: Option<Instant>,
    done_rx: Receiver<()>,
    state: Mutex<NodeState>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn id() -> u64 {
    NEXT_ID.fetch_add(1, Relaxed)
}

impl Node {
    fn new(parent: Option<&Arc<Node>>, deadline: Option<Instant>) -> Arc<Node> {
        let (tx, rx) = chan::bounded(0);
        Arc::new(Node {
            id: id(),
            parent: parent.map(Arc::downgrade),
            deadline,
            done_rx: rx,
            state: Mutex::new(NodeState {
                err: None,
                done_tx: Some(tx),
                children: HashMap::new(),
                callbacks: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Go's `cancelCtx.cancel`: this node, then its children; then out of the parent.
    fn cancel(self: &Arc<Self>, err: ContextError, remove_from_parent: bool) {
        let (children, callbacks, done_tx) = {
            let mut st = self.lock();
            if st.err.is_some() {
                return;
            }
            st.err = Some(err);
            (std::mem::take(&mut st.children), std::mem::take(&mut st.callbacks), st.done_tx.take())
        };
        drop(done_tx); // closes done()
        for child in children.into_values() {
            child.cancel(err, false);
        }
        for f in callbacks.into_values() {
            run_detached(f);
        }
        if remove_from_parent && let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
            parent.lock().children.remove(&self.id);
        }
    }
}

/// Runs `f` in a new task (a new thread outside a runtime), as Go's `AfterFunc` runs it in its
/// own goroutine.
fn run_detached(f: Callback) {
    match worker::current() {
        Some(w) => {
            crate::sched::spawn(f, None, None, Some(&w.shared));
        }
        None => {
            if let Err(e) = std::thread::Builder::new().name("gort-context".into()).spawn(f) {
                log::error!("gort: a context callback could not start a thread: {e}");
            }
        }
    }
}

/// A node of a cancellation tree (Go's `context.Context`). Cheap to clone; all clones are the
/// same context.
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.node.deadline)
            .finish()
    }
}

/// Go's `context.Background()`: never cancelled, no deadline; the root of every tree.
pub fn background() -> Context {
    Context { node: Node::new(None, None) }
}

/// Cancels a context and its descendants (Go's `CancelFunc`). Calling it twice is harmless;
/// dropping it does *not* cancel (as in Go, where not calling it only delays the release until
/// the parent ends).
pub struct CancelFn {
    node: Arc<Node>,
}

impl CancelFn {
    /// Cancels with `ContextError::Canceled`.
    pub fn cancel(&self) {
        self.node.cancel(ContextError::Canceled, true);
    }
}

impl fmt::Debug for CancelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFn").finish_non_exhaustive()
    }
}

/// Links a new child under `parent` (Go's `propagateCancel`): born cancelled if the parent is.
fn child(parent: &Context, deadline: Option<Instant>) -> (Context, CancelFn) {
    let node = Node::new(Some(&parent.node), deadline);
    let inherited = {
        let mut st = parent.node.lock();
        match st.err {
            Some(e) => Some(e),
            None => {
                st.children.insert(node.id, node.clone());
                None
            }
        }
    };
    if let Some(e) = inherited {
        node.cancel(e, false);
    }
    (Context { node: node.clone() }, CancelFn { node })
}

/// Go's `context.WithCancel`.
pub fn with_cancel(parent: &Context) -> (Context, CancelFn) {
    child(parent, parent.node.deadline)
}

/// Go's `context.WithDeadline`: also cancelled (with `DeadlineExceeded`) at `t`, or at the
/// parent's deadline if that is sooner.
pub fn with_deadline(parent: &Context, t: Instant) -> (Context, CancelFn) {
    if parent.node.deadline.is_some_and(|p| p <= t) {
        return with_cancel(parent); // the parent's deadline comes first: nothing to arm
    }
    let (ctx, cancel) = child(parent, Some(t));
    if t <= Instant::now() {
        ctx.node.cancel(ContextError::DeadlineExceeded, true);
        return (ctx, cancel);
    }
    let weak = Arc::downgrade(&ctx.node);
    let fire = move || {
        if let Some(node) = weak.upgrade() {
            node.cancel(ContextError::DeadlineExceeded, true);
        }
    };
    match worker::current() {
        Some(w) => crate::time::call_at(&w.shared, t, move |_| fire()),
        None => {
            let spawned =
                std::thread::Builder::new().name("gort-deadline".into()).spawn(move || {
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                    fire();
                });
            if let Err(e) = spawned {
                log::error!("gort: a context deadline could not start its thread: {e}");
            }
        }
    }
    (ctx, cancel)
}

/// Go's `context.WithTimeout`.
pub fn with_timeout(parent: &Context, d: Duration) -> (Context, CancelFn) {
    with_deadline(parent, Instant::now() + d)
}

impl Context {
    /// Go's `ctx.Done()`: a channel that closes when the context is cancelled. `recv()` on it
    /// waits until then and returns `Err`; use it beside other channels as Go uses `<-ctx.Done()`.
    pub fn done(&self) -> Receiver<()> {
        self.node.done_rx.clone()
    }

    /// Go's `ctx.Err()`: `None` while live, then why it ended.
    pub fn err(&self) -> Option<ContextError> {
        self.node.lock().err
    }

    /// Go's `ctx.Deadline()`.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Go 1.21's `context.AfterFunc`: runs `f` (in a new task) once the context is cancelled,
    /// or at once if it already is. The returned handle's `stop` prevents that if it has not
    /// happened yet. This is how a blocked read is ended by a context:
    /// `ctx.after_func(move || stream.set_read_deadline(Some(past)))` — Go's own recipe.
    pub fn after_func(&self, f: impl FnOnce() + Send + 'static) -> AfterFunc {
        let key = id();
        let now = {
            let mut st = self.node.lock();
            if st.err.is_some() {
                true
            } else {
                st.callbacks.insert(key, Box::new(f) as Callback);
                return AfterFunc { node: Arc::downgrade(&self.node), key };
            }
        };
        debug_assert!(now);
        run_detached(Box::new(f));
        AfterFunc { node: Weak::new(), key }
    }

    /// How many live children this context has (for tests of the tree's hygiene).
    pub fn children(&self) -> usize {
        self.node.lock().children.len()
    }
}

/// The handle of [`Context::after_func`].
#[derive(Debug)]
pub struct AfterFunc {
    node: Weak<Node>,
    key: u64,
}

impl AfterFunc {
    /// Go's `stop()`: `true` if this call kept the function from running.
    pub fn stop(&self) -> bool {
        self.node.upgrade().is_some_and(|n| n.lock().callbacks.remove(&self.key).is_some())
    }
}
