//! # reactor: Go's network poller, without goroutines
//!
//! Mirrors: `runtime/netpoll.go` and `runtime/netpoll_epoll.go` (Go 1.19, with the 1.21
//! `fdseq` stale-event fix). This crate is the part of Go's runtime that turns "this socket
//! would block" into "wake this goroutine when it is ready", and nothing else: it has no tasks,
//! no threads of its own and no timers. A runtime (the `gort` crate) drives it; so do the tests,
//! with OS threads as waiters, and `examples/raw_echo.rs`, with one thread and no waiters at all.
//!
//! ## Go ↔ reactor
//!
//! | Go (runtime)                                   | reactor                                          | file            |
//! |------------------------------------------------|--------------------------------------------------|-----------------|
//! | `netpollinit`                                  | [`Poller::new`]                                  | `poller.rs`, `sys/` |
//! | `poll_runtime_pollOpen` / `netpollopen`        | [`Poller::open`]                                 | `poller.rs`     |
//! | `poll_runtime_pollClose` / `netpollclose`      | [`Poller::close`]                                | `poller.rs`     |
//! | `netpoll(delay) gList`                         | [`Poller::netpoll`] → `Vec<`[`Waiter`]`>`         | `poller.rs`     |
//! | `netpollBreak`, `netpollWakeSig`               | [`Poller::netpoll_break`]                        | `wakeup.rs`     |
//! | `pollDesc`, `rg`/`wg`, `pdReady`/`pdWait`      | [`PollDesc`]                                     | `poll_desc.rs`  |
//! | `netpollblock` (announce + re-check)           | [`PollDesc::prepare`]                            | `poll_desc.rs`  |
//! | `netpollblockcommit`                           | [`PollDesc::commit`]                             | `poll_desc.rs`  |
//! | `netpollunblock`, `netpollready`               | [`PollDesc::unblock`], [`PollDesc::ready`]       | `poll_desc.rs`  |
//! | `netpollcheckerr`, `pollErr*`                  | [`PollDesc::check_err`], [`PollError`]           | `error.rs`      |
//! | `poll_runtime_pollWait`                        | [`PollDesc::wait`]                               | `poll_desc.rs`  |
//! | `poll_runtime_pollUnblock`                     | [`PollDesc::evict`]                              | `poll_desc.rs`  |
//! | `netpolldeadlineimpl` (expiry)                 | [`PollDesc::expire`]                             | `poll_desc.rs`  |
//! | `pollCache`, `fdseq`                           | `PollCache` (internal), slot generations         | `poll_cache.rs` |
//! | `taggedPointer` in `epoll_event.data`          | [`Token`] = (slot index, generation)             | `token.rs`      |
//! | `*g`                                           | [`Waiter`]: an opaque word of the user's         | `poll_desc.rs`  |
//! | `sysSocket`, `accept4`, `connect`, `SO_ERROR`, sockopts, `Sockaddr` (`net`, `internal/poll`, `syscall`) | [`socket::Socket`], [`socket::SockAddr`]: the syscalls under gort's `net` | `sys/socket/` |
//!
//! ## One wait, start to end
//!
//! ```text
//!  waiter (task or thread)                 poller thread (netpoll)
//!  read(fd) → EAGAIN
//!  pd.prepare(Read)   rg: nil → wait
//!    re-check closing / deadline
//!  park; scheduler side: pd.commit(w)  rg: wait → w        (fails if the word moved: run again)
//!                                          epoll_wait → event(token)
//!                                          cache.lookup(token) → pd    (stale generation: drop)
//!                                          pd.ready: rg: w → ready, hand back w
//!                                          caller wakes w
//!  pd.complete(Read)  rg: ready → nil → true
//!  read(fd) → data
//! ```
//!
//! Only `sys/` calls the OS (and holds all of this crate's `unsafe`); every other module is
//! `#![forbid(unsafe_code)]`. The one part of `sys/` that is public is [`socket`]: the
//! non-blocking socket system calls that gort's net layer parks around.

#![warn(missing_docs)]

mod error;
mod loom;
mod poll_cache;
mod poll_desc;
mod poller;
mod sys;
mod token;
mod wakeup;

pub use error::PollError;
pub use poll_desc::{Mode, PollDesc, Prepared, Waiter};
pub use poller::{Poller, PollerStats};
pub use sys::{EVENTS_CAPACITY, Event, Events, Readiness};
pub use sys::{signal, socket};
pub use token::Token;
