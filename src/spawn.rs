//! Starting tasks and waiting for their results: Go's `go` statement, plus a join.
//!
//! Mirrors: `runtime/proc.go` (Go 1.19) `newproc` (the `go` statement). Go has no join: a Go
//! program passes results over a channel or a `sync.WaitGroup`; [`JoinHandle`] is that channel,
//! built in, with the panic of the task as an error rather than a crash of the process.
//!
//! # The result slot
//!
//! | slot state       | entered by                                  | `join` then                       |
//! |------------------|---------------------------------------------|-----------------------------------|
//! | empty, no waiter | spawn                                       | parks (task) or sleeps (thread)   |
//! | empty, waiter    | a `join` that parked                        | (it is parked)                    |
//! | done             | the task returned, panicked, or was dropped unrun or cancelled at shutdown | returns the result at once |
//!
//! Invariant: the slot becomes done exactly once (the entry completes it when the task returns,
//! panics or unwinds; `Task::discard` when it never runs), and the waiter, if any, is woken
//! after the lock is released.

#![forbid(unsafe_code)]

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use crate::sched::{self, Waker};
use crate::task::{Task, TaskRef};

/// Why [`JoinHandle::join`] got no value.
pub enum JoinError {
    /// The task panicked; here is the payload (as `std::thread::JoinHandle::join` gives it).
    Panic(Box<dyn Any + Send + 'static>),
    /// The task was cancelled: its runtime shut down while it was parked or had not started.
    Cancelled,
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panic(_))
    }

    /// Whether the task was cancelled at shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// The panic payload, if the task panicked.
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            JoinError::Panic(p) => Some(p),
            JoinError::Cancelled => None,
        }
    }

    /// The panic message, when the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panic(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            JoinError::Cancelled => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panic(_) => write!(f, "Panic({:?})", self.panic_message().unwrap_or("..")),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panic(_) => match self.panic_message() {
                Some(m) => write!(f, "task panicked: {m}"),
                None => f.write_str("task panicked"),
            },
            JoinError::Cancelled => f.write_str("task cancelled: its runtime shut down"),
        }
    }
}

impl std::error::Error for JoinError {}

/// The private payload a cancelled task unwinds with (caught at its entry).
pub(crate) struct Cancelled;

/// Where a task's result waits for its [`JoinHandle`]; part of the task record, so a spawn
/// allocates no separate slot. The value is boxed as `dyn Any` (no allocation for `()` and other
/// zero-sized results) and unboxed by the typed handle.
#[derive(Default)]
pub(crate) struct JoinSlot {
    state: Mutex<SlotState>,
}

type Outcome = Result<Box<dyn Any + Send>, JoinError>;

#[derive(Default)]
struct SlotState {
    result: Option<Outcome>,
    /// Set once the result was given (and maybe already taken).
    done: bool,
    waiter: Option<Waker>,
}

impl fmt::Debug for JoinSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSlot").field("done", &self.lock().done).finish()
    }
}

impl JoinSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the task's outcome, once; later calls do nothing. Wakes the joiner, if any,
    /// after the lock is released.
    pub(crate) fn complete(&self, r: Outcome) {
        let waiter = {
            let mut s = self.lock();
            if s.done {
                return;
            }
            s.done = true;
            s.result = Some(r);
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// Owns the right to wait for a task's result (Go has none; see the module docs).
///
/// Dropping it detaches the task, which runs on.
pub struct JoinHandle<T> {
    task: TaskRef,
    _result: PhantomData<fn() -> T>,
}

impl<T: 'static> JoinHandle<T> {
    /// Waits for the task to finish and returns its value, or why there is none.
    ///
    /// Inside a task this parks the task; on any other thread it blocks the thread.
    pub fn join(self) -> Result<T, JoinError> {
        let slot = self.task.join_slot();
        if let Some(r) = slot.lock().result.take() {
            return r.map(|v| *v.downcast::<T>().expect("gort: a task's result has its type"));
        }
        loop {
            sched::wait(|waker| {
                let mut s = slot.lock();
                if s.done {
                    return false;
                }
                s.waiter = Some(waker);
                true
            });
            if let Some(r) = slot.lock().result.take() {
                return r.map(|v| *v.downcast::<T>().expect("gort: a task's result has its type"));
            }
        }
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished (its result is waiting).
    pub fn is_finished(&self) -> bool {
        self.task.join_slot().lock().done
    }

    /// The task's id.
    pub fn id(&self) -> u64 {
        self.task.id()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.task.id()).finish()
    }
}

/// Wraps `f` into a task whose result lands in the task's join slot.
pub(crate) fn new_task<F, T>(
    f: F,
    name: Option<Box<str>>,
    stack_size: usize,
) -> (TaskRef, JoinHandle<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let entry = Box::new(move |task: &Task| {
        let r = panic::catch_unwind(AssertUnwindSafe(f))
            .map(|v| Box::new(v) as Box<dyn Any + Send>)
            .map_err(
                |p| if p.is::<Cancelled>() { JoinError::Cancelled } else { JoinError::Panic(p) },
            );
        task.join_slot().complete(r);
    });
    let task = Task::new(entry, name, stack_size);
    let handle = JoinHandle { task: task.clone(), _result: PhantomData };
    (task, handle)
}

/// Per-task options: Go has none; here a name (for traces and the overflow message) and a
/// stack size.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Default options: no name, the runtime's stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// The task's stack size in bytes (rounded up to pages; at least 16 KiB).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts `f` as a task of the current runtime (Go's `go` statement).
    ///
    /// # Panics
    /// Outside a runtime; use [`crate::run`] or a [`crate::Handle`].
    pub fn go<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        sched::spawn(f, self.name.map(String::into_boxed_str), self.stack_size, None)
    }
}

/// Go's `go f()`: starts `f` as a task of the current runtime and returns a handle to join it.
///
/// # Panics
/// Outside a runtime: use [`crate::run`], [`crate::Runtime::block_on`], or
/// [`crate::Handle::go`] from other threads.
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    sched::spawn(f, None, None, None)
}
