//! Go's `sync` package for tasks: [`WaitGroup`], [`Mutex`], [`RwLock`], [`Once`]. Waiting
//! parks the task, never its worker thread; on a plain OS thread it sleeps the thread.
//!
//! Mirrors: `sync/waitgroup.go`, `sync/mutex.go`, `sync/rwmutex.go`, `sync/once.go`,
//! `sync/runtime.go` and `runtime/sema.go` (Go 1.19).
//!
//! | Go                                  | gort                                           | file            |
//! |-------------------------------------|------------------------------------------------|-----------------|
//! | `sync.WaitGroup` `Add`/`Done`/`Wait`| [`WaitGroup`] `add`/`done`/`wait`              | `waitgroup.rs`  |
//! | `sync.Mutex` `Lock`/`TryLock`/`Unlock` | [`Mutex`] `lock`/`try_lock`, dropping the [`MutexGuard`] | `mutex.rs` |
//! | `sync.RWMutex` `RLock`/`Lock`/`TryRLock`/`TryLock` | [`RwLock`] `read`/`write`/`try_read`/`try_write` | `rwlock.rs` |
//! | `sync.Once` `Do`                    | [`Once`] `call_once`                           | `once.rs`       |
//! | `runtime_Semacquire`, `semrelease` (`sema.go`) | the FIFO wait queue with hand-off   | `waitq.rs`      |
//!
//! # Why not `std::sync::Mutex`
//!
//! A `std::sync::Mutex` blocks the OS *thread*. If a task holds one across anything that parks
//! it (`yield_now`, `time::sleep`, a channel receive, a socket read), and another task of the
//! same worker then calls `lock`, that call blocks the worker thread itself: none of the
//! worker's tasks run any more, the holder included, and since a started task never moves to
//! another worker (architecture decision 1) the holder can never run to unlock: a deadlock,
//! whatever the number of workers. Even held briefly it stalls every task of that worker.
//! These types are the answer (architecture decision 9): a contended `lock` parks only the
//! calling task, the worker runs others, and the unlock hands the lock to the first waiter.
//! A `std::sync::Mutex` is still fine for a short critical section that never parks.
//!
//! # Without `unsafe`
//!
//! Every file here is `#![forbid(unsafe_code)]`. [`Mutex`] and [`RwLock`] keep their data in
//! a `std::sync::Mutex` / `std::sync::RwLock` that is only ever locked by the holder of the
//! task-level lock, and released before it: it is never contended, so it never blocks a
//! thread, and it gives the guards their `&T` / `&mut T` in safe Rust.
//!
//! # Differences from Go
//!
//! - The data sits inside the lock and guards unlock on drop (Rust's shape, not Go's).
//! - Locks are always fair (Go's starvation mode): waiters get the lock in FIFO order.
//! - [`WaitGroup`] is a cloneable handle rather than a value used by pointer.
//! - No poisoning anywhere, as in Go; a panicking [`Once`] closure counts as done, as in Go.

#![forbid(unsafe_code)]

mod errgroup;
mod mutex;
mod once;
mod rwlock;
mod waitgroup;
mod waitq;

pub use errgroup::ErrGroup;
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use waitgroup::WaitGroup;
