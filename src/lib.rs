//! # gort: Go's runtime model, rebuilt in Rust from the syscalls up
//!
//! Green tasks on hand-switched stacks, an M:N scheduler that drives the netpoller (the
//! `reactor` crate) from `find_runnable` as Go's `findRunnable` does, timers, and a
//! blocking-style API on top.
//!
//! ```
//! let sum = gort::run(|| {
//!     let handles: Vec<_> = (1..=10u64).map(|i| gort::go(move || i * i)).collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(sum, 385);
//! ```
//!
//! ## Go ↔ gort
//!
//! | Go                                   | gort                                       | file              |
//! |--------------------------------------|--------------------------------------------|-------------------|
//! | `go f()`                             | [`go`], [`task::Builder`], [`Handle::go`]   | `spawn.rs`        |
//! | `g`, `_Grunnable`/`_Gwaiting`/...    | `task::Task`                               | `task.rs`         |
//! | `gogo`, `mcall`, `gostartcall`       | `arch::switch`, `arch::init`               | `arch/`           |
//! | `stackalloc`, `stackfree`            | `stack::Stack`, `stack::StackPool`         | `stack/`          |
//! | `schedule`, `findRunnable`, `runqput`| `sched::worker`                            | `sched/worker.rs` |
//! | `gopark(unlockf)`, `goready`         | `sched::park`, `sched::ready`              | `sched/park.rs`   |
//! | `wakep`, `nmspinning`, `stopm`       | `Shared::wakep`, `Worker::sleep`           | `sched/`          |
//! | `Gosched`                            | [`yield_now`]                              | `sched/park.rs`   |
//! | `entersyscall` (giving the P away)   | [`blocking`]                               | `sched/blocking.rs` |
//! | `time.Sleep`, `After`, `Tick`, `AfterFunc` | [`time::sleep`], [`time::after`], [`time::Ticker`], [`time::after_func`] | `time.rs` |
//! | `sync.WaitGroup`, `Mutex`, `RWMutex`, `Once` | [`sync::WaitGroup`], [`sync::Mutex`], [`sync::RwLock`], [`sync::Once`] | `sync/` |
//! | `GOMAXPROCS`, `main`                 | [`Runtime::builder`], [`run`]              | `runtime.rs`      |
//! | `make(chan T, n)`, `<-ch`, `close`  | [`chan::bounded`], [`chan::Receiver::recv`], [`chan::Sender::close`] | `chan/` |
//! | `select { case ... }`                | [`select!`]                                | `chan/select.rs`  |
//! | `context`, `errgroup`                | [`context`], [`sync::ErrGroup`]            | `context.rs`, `sync/errgroup.rs` |
//! | `os/signal.Notify`, `Stop`           | [`signal::notify`], [`signal::stop`]        | `signal.rs`       |
//! | `GODEBUG=schedtrace=1000`            | `GORT_SCHEDTRACE=1000`                     | `trace.rs`        |
//!
//! ## Where gort differs from Go
//!
//! - **A task stays on the worker that first ran it.** LLVM may keep a thread-local's address
//!   across the call that switches stacks, so a task resumed on another thread could read the
//!   wrong thread's data. Idle workers therefore steal only tasks that have not started.
//! - **Fixed stacks** (256 KiB reserved by default, touched lazily, with a guard page): Rust
//!   cannot move a stack, so there is no growth; an overflow stops the process with a message
//!   naming the task.
//! - **No preemption**: a task runs until it blocks, yields or returns.
//! - **Panics stay in their task**: [`JoinHandle::join`] returns them as an error.
//! - Holding a `std::sync::Mutex` across a park can stall a worker; use the runtime's own
//!   primitives instead.

#![warn(missing_docs)]

mod arch;
pub mod chan;
pub mod context;
pub mod net;
mod runtime;
mod sched;
pub mod signal;
mod spawn;
mod stack;
pub mod sync;
pub mod task;
pub mod time;
mod trace;
#[cfg(test)]
mod within;

pub use runtime::{Builder, Handle, Runtime, run};
pub use sched::{blocking, try_blocking, yield_now};
pub use spawn::{JoinError, JoinHandle, go};
