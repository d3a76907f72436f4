//! A reader/writer lock that parks tasks, not threads; a waiting writer holds back new readers.
//!
//! Mirrors: `sync/rwmutex.go` (Go 1.19) — `RWMutex`, `RLock`, `RUnlock`, `Lock`, `Unlock`,
//! `TryRLock`, `TryLock` (`readerCount`, `readerWait`, `rwmutexMaxReaders`), on
//! `runtime/sema.go` (here `waitq.rs`).
//!
//! # The state (under a short internal lock)
//!
//! | `readers` | `writer` | queue                  | a new `read()`     | a new `write()`   |
//! |-----------|----------|------------------------|--------------------|-------------------|
//! | 0         | false    | empty                  | enters             | enters            |
//! | n > 0     | false    | empty                  | enters             | queues            |
//! | n > 0     | false    | a writer first         | queues (Go: a waiting writer blocks new readers) | queues |
//! | 0         | true     | any                    | queues             | queues            |
//!
//! A release that leaves the lock free of conflict grants the front of the queue: a writer
//! alone, or every reader up to the next writer, all at once. The waiters own their share
//! before they run (a hand-off), so the order is FIFO: readers that came after a waiting
//! writer go after it, and a stream of readers cannot starve a writer, nor a stream of writers
//! the readers.
//!
//! Invariants: `writer` implies `readers == 0`; the queue is not empty only while the lock is
//! held in a way its front cannot join (the front is a writer and the lock is held, or the
//! front is a reader and a writer holds it).
//!
//! # Where the data lives, without `unsafe`
//!
//! In a `std::sync::RwLock<T>`, read-locked only by holders of a task-level read share and
//! write-locked only by the holder of the task-level write lock; guards let go of it before
//! they release their share. It is therefore never contended and never blocks a thread, and
//! guards may be held across a park. No poisoning, as in Go.

#![forbid(unsafe_code)]

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{
    Mutex as StdMutex, RwLock as StdRwLock, RwLockReadGuard as StdReadGuard,
    RwLockWriteGuard as StdWriteGuard, TryLockError,
};

use super::waitq::{self, WaitQueue, lock};
use crate::sched::Waker;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Read,
    Write,
}

struct State {
    readers: usize,
    writer: bool,
    queue: WaitQueue<Kind>,
}

impl State {
    /// Takes a share at once if that keeps the FIFO order and excludes what must be excluded.
    fn try_enter(&mut self, kind: Kind) -> bool {
        let free = self.queue.is_empty()
            && !self.writer
            && match kind {
                Kind::Read => true,
                Kind::Write => self.readers == 0,
            };
        if free {
            self.take(kind);
        }
        free
    }

    fn take(&mut self, kind: Kind) {
        match kind {
            Kind::Read => self.readers += 1,
            Kind::Write => self.writer = true,
        }
    }

    /// Gives up a share and grants whoever can now enter.
    fn release(&mut self, kind: Kind) -> Vec<Waker> {
        match kind {
            Kind::Read => self.readers -= 1,
            Kind::Write => self.writer = false,
        }
        self.dispatch()
    }

    /// Grants the front of the queue while it can enter: a writer alone, or readers.
    fn dispatch(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while let Some(&kind) = self.queue.front() {
            let can = !self.writer && (kind == Kind::Read || self.readers == 0);
            if !can {
                break;
            }
            self.take(kind);
            wakers.extend(self.queue.grant_front());
            if kind == Kind::Write {
                break;
            }
        }
        wakers
    }
}

/// Go's `sync.RWMutex`, holding the data it protects: many readers or one writer. Waiting
/// parks the task (or sleeps a plain OS thread), and guards may be held across a park.
///
/// Fair: waiters enter in the order they came, so once a writer waits, new readers wait behind
/// it (as in Go) and the writer is not starved. There is no poisoning.
///
/// ```
/// let v = gort::run(|| {
///     let l = gort::sync::RwLock::new(vec![1, 2]);
///     {
///         let (a, b) = (l.read(), l.read()); // readers share
///         assert_eq!(a.len() + b.len(), 4);
///     }
///     l.write().push(3);
///     l.into_inner()
/// });
/// assert_eq!(v, [1, 2, 3]);
/// ```
pub struct RwLock<T: ?Sized> {
    state: StdMutex<State>,
    data: StdRwLock<T>,
}

/// Gives up a share of the task-level lock when dropped: the last field of a guard.
struct Share<'a, T: ?Sized>(&'a RwLock<T>, Kind);

impl<T: ?Sized> Drop for Share<'_, T> {
    fn drop(&mut self) {
        let wakers = lock(&self.0.state).release(self.1);
        waitq::wake_all(wakers);
    }
}

/// Shared access to the data of a read-locked [`RwLock`]; releases the read share when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    // The data guard drops first, then the share is released.
    data: StdReadGuard<'a, T>,
    _share: Share<'a, T>,
}

/// Exclusive access to the data of a write-locked [`RwLock`]; unlocks when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    data: StdWriteGuard<'a, T>,
    _share: Share<'a, T>,
}

impl<T> RwLock<T> {
    /// A new, unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        RwLock {
            state: StdMutex::new(State { readers: 0, writer: false, queue: WaitQueue::new() }),
            data: StdRwLock::new(value),
        }
    }

    /// Consumes the lock, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Go's `RLock`: waits until no writer holds or awaits the lock, and takes a read share.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.acquire(Kind::Read);
        self.read_guard()
    }

    /// Go's `Lock`: waits until no reader or writer holds the lock (and those queued before
    /// have had their turn), and takes it.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.acquire(Kind::Write);
        self.write_guard()
    }

    /// Go's `TryRLock`: a read share if one can be had without waiting.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        lock(&self.state).try_enter(Kind::Read).then(|| self.read_guard())
    }

    /// Go's `TryLock`: the write lock if it can be had without waiting.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        lock(&self.state).try_enter(Kind::Write).then(|| self.write_guard())
    }

    /// The data, through a `&mut` (which proves nobody holds the lock).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn acquire(&self, kind: Kind) {
        if lock(&self.state).try_enter(kind) {
            return;
        }
        waitq::acquire(
            &self.state,
            |s| &mut s.queue,
            |s| (!s.try_enter(kind)).then_some(kind),
            |s, owner| if owner { s.release(kind) } else { s.dispatch() },
        );
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        let data = match self.data.try_read() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => unreachable!("gort::sync::RwLock: data write-locked"),
        };
        RwLockReadGuard { data, _share: Share(self, Kind::Read) }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        let data = match self.data.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => unreachable!("gort::sync::RwLock: data locked"),
        };
        RwLockWriteGuard { data, _share: Share(self, Kind::Write) }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
