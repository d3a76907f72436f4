//! Where the records live: a slab of `PollDesc`s, each slot with a generation.
//!
//! Mirrors: `runtime/netpoll.go` (Go 1.21) `pollCache` (`alloc`, `free`) and `pollDesc.fdseq`.
//!
//! Go keeps `pollDesc`s in non-GC memory that is never freed, because "we can get ready
//! notification from epoll/kqueue after the descriptor is closed/reused". Here each record is an
//! `Arc<PollDesc>` held by its slot and by its owner, so it is never freed or moved while anyone
//! can name it; what can go stale is the *slot*, and the slot's generation catches that.
//!
//! Invariants (all under `inner`'s lock):
//! - `generations[i]` is the generation of slot `i`; a live record in slot `i` has the token
//!   `(i, generations[i])`. `generations` only grows.
//! - [`free`](PollCache::free) bumps the slot's generation *before* the slot can be reused, so an
//!   event fetched with the old token, even by an `epoll_wait` that ran before the close, no
//!   longer matches and is dropped by [`lookup`](PollCache::lookup).
//! - A slot whose fd could not be deregistered (a failed `EPOLL_CTL_DEL`) is *leaked*: it keeps
//!   its record, its generation is bumped, and its index is never handed out again, because
//!   epoll may go on reporting that fd with the old token.
//!
//! | slot state | entered by                 | `lookup(token)` finds the record when            |
//! |------------|----------------------------|--------------------------------------------------|
//! | vacant     | start, `free`              | never                                            |
//! | live       | `alloc`                    | `token.generation == generations[i]`             |
//! | leaked     | `free` after a failed DEL  | never (the generation moved on)                  |

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use slab::Slab;

use crate::poll_desc::PollDesc;
use crate::token::Token;

/// The slab of records (Go's `pollcache`).
#[derive(Debug, Default)]
#[doc(alias = "pollCache")]
pub(crate) struct PollCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// Live and leaked records, by slot index.
    slots: Slab<Arc<PollDesc>>,
    /// Go's `fdseq`, per slot index.
    generations: Vec<u32>,
    /// Slots kept out of reuse after a failed deregistration.
    leaked: usize,
}

impl Inner {
    /// The live record `token` names, if it is still that record's token.
    pub(crate) fn lookup(&self, token: Token) -> Option<&PollDesc> {
        let i = token.index();
        match self.generations.get(i) {
            Some(&g) if g == token.generation() => self.slots.get(i).map(|pd| &**pd),
            _ => None,
        }
    }
}

impl PollCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections below cannot panic halfway through a change; a poisoned lock
        // only means some other thread panicked while holding it, and the data is whole.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `pollcache.alloc` + the record set-up of `poll_runtime_pollOpen`.
    pub(crate) fn alloc(&self, fd: RawFd) -> io::Result<Arc<PollDesc>> {
        let mut inner = self.lock();
        let entry = inner.slots.vacant_entry();
        let index = entry.key();
        if index > Token::MAX_INDEX {
            return Err(io::Error::other("reactor: too many registered fds"));
        }
        let generation = match inner.generations.get(index) {
            Some(&g) => g,
            None => {
                inner.generations.push(0);
                0
            }
        };
        let pd = Arc::new(PollDesc::new(fd, Token::new(index, generation)));
        inner.slots.insert(Arc::clone(&pd));
        Ok(pd)
    }

    /// `pollcache.free`: bump the slot's generation; give the slot back unless `leak`.
    /// Returns `false` if `pd` was not live (already freed).
    pub(crate) fn free(&self, pd: &PollDesc, leak: bool) -> bool {
        let mut inner = self.lock();
        let token = pd.token();
        let live = inner.lookup(token).is_some_and(|cur| std::ptr::eq(cur, pd));
        if !live {
            return false;
        }
        let i = token.index();
        inner.generations[i] = inner.generations[i].wrapping_add(1);
        if leak {
            inner.leaked += 1;
        } else {
            inner.slots.remove(i);
        }
        true
    }

    /// Runs `f` with the slab locked: `netpoll` maps a whole batch of tokens under one lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self.lock())
    }

    /// (live records, leaked slots).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.slots.len() - inner.leaked, inner.leaked)
    }
}
