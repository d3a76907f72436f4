//! A group of fallible tasks: wait for all, keep the first error, cancel the rest's context.
//!
//! Mirrors: `golang.org/x/sync/errgroup` — `Group`, `WithContext`, `Go`, `Wait` (Go programs in
//! this project's seed material use it).
//!
//! | event                         | effect                                                    |
//! |-------------------------------|-----------------------------------------------------------|
//! | `go(f)`                       | the counter goes up; `f` runs in a new task               |
//! | `f` returns `Err(e)`, first   | `e` is kept; the group's context (if any) is cancelled     |
//! | `f` returns `Err(e)`, later   | `e` is dropped                                            |
//! | `f` panics                    | counted as done; the panic is re-raised by `wait`          |
//! | `wait()`                      | parks until every `f` returned; cancels the context (as Go's `Wait`); the first error |
//!
//! Invariant: the first error is stored before the counter goes down, so `wait` always sees it.

#![forbid(unsafe_code)]

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::WaitGroup;
use crate::context::{self, CancelFn, Context};

struct Shared<E> {
    first: Mutex<Option<E>>,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    cancel: Option<CancelFn>,
}

/// Go's `errgroup.Group`.
pub struct ErrGroup<E> {
    wg: WaitGroup,
    shared: Arc<Shared<E>>,
}

impl<E> fmt::Debug for ErrGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrGroup").finish_non_exhaustive()
    }
}

impl<E: Send + 'static> Default for ErrGroup<E> {
    fn default() -> Self {
        ErrGroup::new()
    }
}

impl<E: Send + 'static> ErrGroup<E> {
    /// A group without a context.
    pub fn new() -> ErrGroup<E> {
        ErrGroup::build(None)
    }

    /// Go's `errgroup.WithContext`: the returned context is cancelled when a task fails or
    /// `wait` returns.
    pub fn with_context(parent: &Context) -> (ErrGroup<E>, Context) {
        let (ctx, cancel) = context::with_cancel(parent);
        (ErrGroup::build(Some(cancel)), ctx)
    }

    fn build(cancel: Option<CancelFn>) -> ErrGroup<E> {
        ErrGroup {
            wg: WaitGroup::new(),
            shared: Arc::new(Shared { first: Mutex::new(None), panic: Mutex::new(None), cancel }),
        }
    }

    /// Go's `g.Go(f)`: runs `f` in a new task of the current runtime.
    ///
    /// # Panics
    /// Outside a runtime (as [`crate::go`]).
    pub fn go(&self, f: impl FnOnce() -> Result<(), E> + Send + 'static) {
        self.wg.add(1);
        let (wg, shared) = (self.wg.clone(), self.shared.clone());
        crate::go(move || {
            match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let first = {
                        let mut slot = shared.first.lock().unwrap_or_else(|p| p.into_inner());
                        let first = slot.is_none();
                        if first {
                            *slot = Some(e);
                        }
                        first
                    };
                    if first && let Some(c) = &shared.cancel {
                        c.cancel();
                    }
                }
                Err(p) => {
                    let mut slot = shared.panic.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(p);
                }
            }
            wg.done();
        });
    }

    /// Go's `g.Wait()`: waits for every task, cancels the context, and returns the first error.
    ///
    /// # Panics
    /// With the payload of a task that panicked (as a join would give it).
    pub fn wait(self) -> Result<(), E> {
        self.wg.wait();
        if let Some(c) = &self.shared.cancel {
            c.cancel();
        }
        if let Some(p) = self.shared.panic.lock().unwrap_or_else(|p| p.into_inner()).take() {
            panic::resume_unwind(p);
        }
        match self.shared.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
