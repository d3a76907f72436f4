//! Go's `select`: wait on several channel operations, complete exactly one.
//!
//! Mirrors: `runtime/select.go` (Go 1.19) `selectgo`, `sellock`/`selunlock`, `selparkcommit`,
//! `pollorder`/`lockorder`; the [`select!`](crate::select!) macro is what `cmd/compile` turns a
//! `select` statement into (`walkSelectCases`).
//!
//! # One select, step by step
//!
//! | step | Go                          | here                                                      |
//! |------|-----------------------------|-----------------------------------------------------------|
//! | 1    | `pollorder`: random shuffle | [`shuffle`] (cases that are ready together win equally often) |
//! | 2    | `lockorder`: by `hchan` address | `order`: cases sorted by channel address; a case on a channel already held is an *alias* and shares its lock |
//! | 3    | `sellock`                   | every distinct channel locked, in address order           |
//! | 4    | pass 1                      | each case, in poll order, tries the part of its operation that never waits; the first that completes wins: unlock, wake its peer, done |
//! | 5    | `block == false`            | no case ready and a `default`: unlock, return `false`     |
//! | 6    | pass 2                      | a sudog per case (all in one [`Group`]) enqueued on its channel, still under every lock |
//! | 7    | `gopark(selparkcommit)`     | park; the commit stores the waker, then unlocks every channel |
//! | 6½   | —                           | a case on a bounded channel (a lock-free ring, `hchan.rs`) has announced its sudog; if its ring became ready meanwhile, unlink everything and start over at step 3 |
//! | 8    | pass 3                      | woken (or timed out): [`Group::finish`] names the winner or cancels the claim; each case unlinks its sudog, the winner reads its result; a winner on a ring that was woken with nothing (a lock-free peer was quicker) starts over at step 3 |
//!
//! Why every lock is held from step 3 to step 7: until its sudogs are enqueued, a select cannot
//! be claimed, so pass 1 may complete a case (and claim a peer's select) without a claim of its
//! own; once they are enqueued, the locks keep peers out until the waker is stored. Taking the
//! locks one at a time instead loses hand-offs between two selects on one unbuffered channel.
//!
//! Invariants: locks are only ever taken in address order (every other channel operation holds
//! one lock at a time), so two selects cannot deadlock; wakers are called with no lock held; a
//! case's sudog is in its channel's queue only between steps 6 and 8.
//!
//! Channels in a `select!` must carry `'static` values: two cases on one channel reach its
//! state through [`std::any::Any`].

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use super::fast::Side;
use super::hchan::{Chan, Locked, QueueOf, State, Wakes, recvq, sendq};
use super::sudog::{CLOSED, DONE, Group, Outcome, Sudog, WAITING};
use super::{Receiver, RecvError, SendError, Sender};
use crate::sched::wait_until;

/// How a select waits when no case is ready.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No `default`: wait for a case.
    Block,
    /// `default => ..`: do not wait.
    NonBlock,
    /// `default(timeout) => ..`: wait until this instant.
    Until(Instant),
}

mod private {
    use super::*;

    /// What [`select`] needs of a case; hidden so that only this module's cases exist.
    #[allow(private_interfaces)] // sealed: callers outside the crate cannot name it
    pub trait Sealed {
        /// The case's channel and its lock.
        fn held(&self) -> &dyn Lock;
        fn held_mut(&mut self) -> &mut dyn Lock;
        /// Step 4: completes the case if it can without waiting (peers to wake in `wakes`).
        fn poll(&mut self, alias: Option<&mut dyn Any>, wakes: &mut Wakes) -> bool;
        /// Step 6: enqueues this case's sudog, as case `index` of `group`.
        fn enqueue(&mut self, alias: Option<&mut dyn Any>, group: &Arc<Group>, index: usize);
        /// Step 6½: whether the case's ring became ready after the sudog was announced.
        fn ready(&self) -> bool;
        /// Step 8: unlinks the sudog; the winner also takes its result, if it has one.
        fn finish(&mut self, won: bool);
        /// Whether the case completed (its result is set).
        fn done(&self) -> bool;
    }
}

/// One case of a [`select!`](crate::select!) (made by the macro).
#[doc(hidden)]
pub trait Case: private::Sealed {}

/// A case's channel, as the select driver sees it: an address to order by and a lock.
trait Lock {
    /// The channel's address (the lock order).
    fn addr(&self) -> usize;
    fn lock(&mut self);
    fn unlock(&mut self);
    /// The locked channel's state, for an alias case on the same channel.
    fn state(&mut self) -> &mut dyn Any;
}

impl<T: 'static> Lock for Held<'_, T> {
    fn addr(&self) -> usize {
        std::ptr::from_ref(self.chan).addr()
    }
    fn lock(&mut self) {
        self.guard = Some(self.chan.lock());
    }
    fn unlock(&mut self) {
        self.guard = None;
    }
    fn state(&mut self) -> &mut dyn Any {
        self.st(None)
    }
}

/// A case's hold on its channel: the lock while the select holds it, and its parked slot.
struct Held<'a, T> {
    chan: &'a Chan<T>,
    guard: Option<Locked<'a, T>>,
    slot: Option<usize>,
    queue: QueueOf<T>,
    side: Side,
}

impl<'a, T: 'static> Held<'a, T> {
    fn new(chan: &'a Chan<T>, queue: QueueOf<T>, side: Side) -> Self {
        Held { chan, guard: None, slot: None, queue, side }
    }

    /// The locked state: this case's own guard, or the alias's.
    fn st<'s>(&'s mut self, alias: Option<&'s mut dyn Any>) -> &'s mut State<T> {
        match alias {
            Some(a) => a.downcast_mut().expect("cases on one channel share its type"),
            None => self.guard.as_deref_mut().expect("select: the case's channel is locked"),
        }
    }

    /// Step 6: a slot holding `value`, and a sudog for it in this case's queue.
    fn enqueue(
        &mut self,
        alias: Option<&mut dyn Any>,
        value: Option<T>,
        group: &Arc<Group>,
        i: usize,
    ) {
        let (queue, chan, side) = (self.queue, self.chan, self.side);
        let st = self.st(alias);
        let slot = st.slots.insert(value);
        queue(st).push_back(Sudog::new_case(slot, group, i));
        if chan.ring().is_some() {
            chan.announce(st, side, 0);
        }
        self.slot = Some(slot);
    }

    /// Step 8: takes the slot back (and the sudog, if nobody popped it). Locking also waits out
    /// a peer that claimed this case and is completing it right now.
    fn settle(&mut self) -> Option<Outcome<T>> {
        let slot = self.slot.take()?;
        Some(self.chan.lock().settle(self.queue, slot))
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        self.guard = None;
        // Unwinding out of the park (runtime shutdown); the select's group is cancelled by now.
        if let Some(slot) = self.slot.take() {
            let s = self.chan.lock().settle(self.queue, slot);
            drop(s);
        }
    }
}

/// `recv(rx) -> res => ..`: its result is `Result<T, RecvError>`.
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    held: Held<'a, T>,
    result: Option<Result<T, RecvError>>,
}

impl<'a, T: 'static> RecvCase<'a, T> {
    /// A receive from `rx`.
    pub fn new(rx: &'a Receiver<T>) -> Self {
        RecvCase { held: Held::new(&rx.chan, recvq, Side::Recv), result: None }
    }

    /// The result, if this case was the one completed.
    pub fn into_result(mut self) -> Option<Result<T, RecvError>> {
        self.result.take()
    }
}

impl<T: 'static> Case for RecvCase<'_, T> {}

impl<T> std::fmt::Debug for RecvCase<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvCase").finish_non_exhaustive()
    }
}

#[allow(private_interfaces)] // sealed: callers outside the crate cannot name these methods
impl<T: 'static> private::Sealed for RecvCase<'_, T> {
    fn held(&self) -> &dyn Lock {
        &self.held
    }
    fn held_mut(&mut self) -> &mut dyn Lock {
        &mut self.held
    }
    fn poll(&mut self, alias: Option<&mut dyn Any>, wakes: &mut Wakes) -> bool {
        let ring = self.held.chan.ring();
        match self.held.st(alias).try_recv(ring, wakes) {
            Ok(v) => self.result = Some(Ok(v)),
            Err(false) => self.result = Some(Err(RecvError)),
            Err(true) => return false,
        }
        true
    }
    fn ready(&self) -> bool {
        self.held.chan.ring().is_some_and(|r| r.can_pop())
    }
    fn done(&self) -> bool {
        self.result.is_some()
    }
    fn enqueue(&mut self, alias: Option<&mut dyn Any>, group: &Arc<Group>, index: usize) {
        self.held.enqueue(alias, None, group, index);
    }
    fn finish(&mut self, won: bool) {
        let Some(s) = self.held.settle() else { return };
        if won && s.status != WAITING {
            self.result = Some(match s.status {
                DONE => Ok(s.value.expect("a completed receive has a value")),
                _ => Err(RecvError),
            });
        }
    }
}

/// `send(tx, v) -> res => ..`: its result is `Result<(), SendError<T>>`.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    held: Held<'a, T>,
    value: Option<T>,
    result: Option<Result<(), SendError<T>>>,
}

impl<'a, T: 'static> SendCase<'a, T> {
    /// A send of `v` on `tx`.
    pub fn new(tx: &'a Sender<T>, v: T) -> Self {
        SendCase { held: Held::new(&tx.chan, sendq, Side::Send), value: Some(v), result: None }
    }

    /// The result, if this case was the one completed (a send not chosen drops its value).
    pub fn into_result(mut self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }
}

impl<T: 'static> Case for SendCase<'_, T> {}

impl<T> std::fmt::Debug for SendCase<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendCase").finish_non_exhaustive()
    }
}

#[allow(private_interfaces)] // sealed: callers outside the crate cannot name these methods
impl<T: 'static> private::Sealed for SendCase<'_, T> {
    fn held(&self) -> &dyn Lock {
        &self.held
    }
    fn held_mut(&mut self) -> &mut dyn Lock {
        &mut self.held
    }
    fn poll(&mut self, alias: Option<&mut dyn Any>, wakes: &mut Wakes) -> bool {
        let v = self.value.take().expect("a send case holds its value until it runs");
        let ring = self.held.chan.ring();
        match self.held.st(alias).try_send(ring, v, wakes) {
            Ok(()) => self.result = Some(Ok(())),
            Err((v, false)) => self.result = Some(Err(SendError(v))),
            Err((v, true)) => {
                self.value = Some(v);
                return false;
            }
        }
        true
    }
    fn ready(&self) -> bool {
        self.held.chan.ring().is_some_and(|r| r.can_push())
    }
    fn done(&self) -> bool {
        self.result.is_some()
    }
    fn enqueue(&mut self, alias: Option<&mut dyn Any>, group: &Arc<Group>, index: usize) {
        self.held.enqueue(alias, self.value.take(), group, index);
    }
    fn finish(&mut self, won: bool) {
        let Some(s) = self.held.settle() else { return };
        match s.status {
            DONE if won => self.result = Some(Ok(())),
            CLOSED if won => {
                self.result = Some(Err(SendError(s.value.expect("a failed send keeps its value"))))
            }
            // Not completed: the value comes back (dropped with the case, or sent on a retry).
            _ => self.value = s.value,
        }
    }
}

/// Runs one select over `cases` (steps 1–8 above). Returns whether a case completed (its
/// `into_result` is `Some`); `false` only for [`Mode::NonBlock`] and [`Mode::Until`].
#[doc(hidden)]
pub fn select(cases: &mut [&mut dyn Case], mode: Mode) -> bool {
    let n = cases.len();
    // Up to `INLINE` cases, the three orders live on the stack: no allocation per select.
    let (mut order_stack, mut order_heap) = ([0; INLINE], Vec::new());
    let order = indices(n, &mut order_stack, &mut order_heap);
    order.sort_unstable_by_key(|&i| cases[i].held().addr());
    // alias[i]: the case whose lock case i shares (the first case on the same channel).
    let (mut alias_stack, mut alias_heap) = ([None; INLINE], Vec::new());
    let alias = scratch(n, None, &mut alias_stack, &mut alias_heap);
    for w in order.windows(2) {
        if cases[w[0]].held().addr() == cases[w[1]].held().addr() {
            alias[w[1]] = Some(alias[w[0]].unwrap_or(w[0]));
        }
    }
    let alias = &*alias;
    let (mut poll_stack, mut poll_heap) = ([0; INLINE], Vec::new());
    let poll = indices(n, &mut poll_stack, &mut poll_heap);
    shuffle(poll);
    let (order, poll) = (&*order, &*poll);

    loop {
        for &i in order {
            if alias[i].is_none() {
                cases[i].held_mut().lock();
            }
        }
        let mut wakes = Wakes::default();
        for &i in poll {
            if with_lock(cases, alias, i, |c, a| c.poll(a, &mut wakes)) {
                unlock_all(cases);
                wakes.wake();
                return true;
            }
        }
        let deadline = match mode {
            Mode::Block => None,
            Mode::Until(d) if d > Instant::now() => Some(d),
            Mode::NonBlock | Mode::Until(_) => {
                unlock_all(cases);
                wakes.wake();
                return false;
            }
        };
        if wakes.any() {
            // Pass 1 woke a select whose ring value went elsewhere: wake it before any wait.
            unlock_all(cases);
            wakes.wake();
            continue;
        }
        let group = Group::new();
        // Unwinding out of the park (shutdown) cancels the claim before the cases settle.
        let cancel = Cancel(&group);
        for &i in order {
            with_lock(cases, alias, i, |c, a| c.enqueue(a, &group, i));
        }
        if cases.iter().any(|c| c.ready()) {
            // A ring case became ready between pass 1 and the announce: start over.
            drop(cancel);
            unlock_all(cases);
            cases.iter_mut().for_each(|c| c.finish(false));
            continue;
        }
        wait_until(deadline, |waker| {
            group.set_waker(waker);
            unlock_all(cases); // Go's selparkcommit
            true
        });
        let won = group.finish();
        for (i, c) in cases.iter_mut().enumerate() {
            c.finish(won == Some(i));
        }
        match won {
            Some(i) if cases[i].done() => return true,
            // Woken for a ring value that another took first: poll again.
            Some(_) => {}
            None if deadline.is_some_and(|d| d <= Instant::now()) => return false,
            None => {}
        }
    }
}

/// Cases a select handles without allocating its lock and poll orders.
const INLINE: usize = 8;

/// `n` copies of `init`, in `stack` if they fit, else in `heap`.
fn scratch<'a, T: Copy>(
    n: usize,
    init: T,
    stack: &'a mut [T; INLINE],
    heap: &'a mut Vec<T>,
) -> &'a mut [T] {
    if n <= INLINE {
        let s = &mut stack[..n];
        s.fill(init);
        s
    } else {
        heap.resize(n, init);
        heap
    }
}

/// `0, 1, .., n - 1` (see [`scratch`]).
fn indices<'a>(
    n: usize,
    stack: &'a mut [usize; INLINE],
    heap: &'a mut Vec<usize>,
) -> &'a mut [usize] {
    let v = scratch(n, 0, stack, heap);
    v.iter_mut().enumerate().for_each(|(i, x)| *x = i);
    v
}

/// Cancels a select's claim when dropped (after [`Group::finish`] it changes nothing).
struct Cancel<'a>(&'a Group);

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Calls `f` on case `i` with the state it must use: its own lock, or its alias's.
fn with_lock<R>(
    cases: &mut [&mut dyn Case],
    alias: &[Option<usize>],
    i: usize,
    f: impl FnOnce(&mut dyn Case, Option<&mut dyn Any>) -> R,
) -> R {
    let Some(j) = alias[i] else { return f(&mut *cases[i], None) };
    // j < i or j > i: split so both cases can be borrowed at once.
    let (a, b) = if j < i {
        let (lo, hi) = cases.split_at_mut(i);
        (&mut *hi[0], &mut *lo[j])
    } else {
        let (lo, hi) = cases.split_at_mut(j);
        (&mut *lo[i], &mut *hi[0])
    };
    f(a, Some(b.held_mut().state()))
}

fn unlock_all(cases: &mut [&mut dyn Case]) {
    cases.iter_mut().for_each(|c| c.held_mut().unlock());
}

thread_local! {
    /// xorshift64 state for the poll order (Go's `cheaprandn`).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A uniform shuffle (Fisher–Yates) of the poll order.
fn shuffle(v: &mut [usize]) {
    if v.len() < 2 {
        return;
    }
    RNG.with(|rng| {
        let mut x = rng.get();
        if x == 0 {
            // First use on this thread: seed from the clock and the thread's stack address.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            x = (t ^ std::ptr::from_ref(rng).addr() as u64) | 1;
        }
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Lemire's multiply-shift: an unbiased-enough bound for tiny `i + 1`.
            let j = ((x >> 32) * (i as u64 + 1)) >> 32;
            v.swap(i, j as usize);
        }
        rng.set(x);
    });
}
