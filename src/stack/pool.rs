//! The stack pools: each worker's cache of stacks, and the shared overflow pool behind them.
//!
//! Mirrors: `runtime/stack.go` (Go 1.19) — `stackpool`, `stackcache`, `stackcacherefill`,
//! `stackcacherelease`, `stackcache_clear`; `stackalloc`/`stackfree` are [`StackPool::get`] and
//! [`StackPool::put`].
//!
//! ## Pool policy
//!
//! Two levels, as in Go: each worker's [`StackPool`] (Go's per-P `stackcache`) and one shared,
//! bounded overflow pool (Go's global `stackpool`), with one list per stack size in use.
//!
//! | event                                   | what happens                                                                 | cost          |
//! |-----------------------------------------|------------------------------------------------------------------------------|---------------|
//! | `get`, worker pool not empty            | pop the most recently returned stack: its top pages are resident and warm    | a `Vec::pop`  |
//! | `get`, worker pool empty                | `refill`: take up to 32 stacks from the shared pool, one lock                | one lock      |
//! | `get`, shared pool empty too            | [`Stack::new`]: mmap + guard; pages fault in on first touch                  | µs            |
//! | `put`, worker pool holds fewer than 64  | push it; **nothing is released**, so reuse costs a push and a pop            | a `Vec::push` |
//! | `put`, worker pool full                 | `release`: the 32 *oldest* stacks are trimmed and moved to the shared pool   | 32 `madvise`, rare |
//! | trim                                    | `madvise(MADV_DONTNEED)` of everything below the top 16 KiB; skipped when the stack is known clean (fresh, or trimmed and unused since) | µs |
//! | shared pool already holds 1024 (per size) | the excess is *hollowed* (every page released, the mapping kept) and kept aside, outside the lock | `madvise`     |
//! | `refill`, shared pool empty but hollow stacks kept | take hollow ones: their pages fault in again as used, no `mmap`  | one lock      |
//! | [`StackPool::scavenge`] (idle worker)   | trim every stack the worker holds                                            |               |
//! | worker pool dropped (worker exits)      | its stacks are trimmed and given to the shared pool (Go's `stackcache_clear`) |              |
//! | `put` while the runtime shuts down ([`StackPool::drain`]) | kept, untrimmed, however many                          | a `Vec::push` |
//! | worker pool dropped after `drain`       | its stacks join the doomed list; the runtime, once its workers are gone, unmaps them if it was the last one running, else hollows them ([`unmap_doomed`]) | sorted `munmap`s |
//! | size other than the worker pool's       | no worker cache: `get` takes from the shared pool's class for that size (else [`Stack::new`]), `put` trims it into that class | one lock |
//!
//! Why surplus stacks are hollowed, not unmapped: with `MADV_GUARD_INSTALL` guards, stacks
//! mapped one after another merge into one VMA. Unmapping one whose neighbours still run
//! punches a hole: one more VMA. With 300 000 tasks of which half exited in random order, one
//! `munmap` per surplus stack took the process to `vm.max_map_count` (65 530), where every
//! `mmap` and most `munmap`s in the process fail, and 14 000 mappings leaked; shutting down a
//! runtime with a million parked tasks did the same (a peak of 65 268). A hollow stack costs no
//! memory but its page-table share (about 512 bytes for a 256 KiB stack) and its entry here (32
//! bytes); the next tasks reuse them before anything is mapped. Go keeps freed stack spans'
//! address space too, and gives their pages back (`stackfree`, the scavenger). Stacks are
//! unmapped only when the last runtime has shut down ([`unmap_doomed`]): all at once, sorted,
//! each run of adjacent ones in one call, so no hole is ever left between stacks in use.
//!
//! Why shutdown is different: a runtime that shuts down with a million parked tasks gets a
//! million stacks back at once. A draining pool keeps them as they come (no `madvise` each: the
//! memory was resident while the tasks were parked anyway) and leaves them to
//! [`unmap_doomed`]: a million-task shutdown took 3.2 s instead of 11.
//!
//! So the resident memory of idle stacks is bounded: at most 64 per worker keep whatever depth
//! their last task touched, and at most 1024 shared ones (per size) keep 16 KiB each; hollow
//! ones keep none.
//!
//! ## Invariants
//!
//! - A pooled stack runs nothing: its contents are garbage and may be discarded at any time.

#![forbid(unsafe_code)]

use std::io;
use std::sync::{Mutex, PoisonError};

use super::{STACK_CACHE_CAPACITY, STACK_POOL_CAPACITY, Stack, usable_size};

/// One size class of the shared overflow pool.
#[derive(Debug)]
struct SizeClass {
    /// The usable size of every stack in `stacks`.
    size: usize,
    /// Clean (trimmed) stacks that run nothing, at most [`STACK_POOL_CAPACITY`].
    stacks: Vec<Stack>,
    /// Hollow stacks: the surplus beyond `stacks`, no page resident (see "Why surplus stacks
    /// are hollowed"). Unbounded: as many as the most tasks alive at once, less the caches.
    hollow: Vec<Stack>,
}

/// The shared overflow pool that every worker's [`StackPool`] spills to and refills from: per
/// stack size in use (in practice one or two: the runtime's configured size), a bounded list
/// of clean stacks and the hollow ones beside it. The lock is held only to move stacks in or
/// out, never across a syscall.
///
/// Go: the global `stackpool` (one list per size order).
#[doc(alias = "stackpool")]
static SHARED_POOL: Mutex<Vec<SizeClass>> = Mutex::new(Vec::new());

/// Stacks of workers that exited while their runtime shut down, for [`unmap_doomed`].
static DOOMED: Mutex<Vec<Stack>> = Mutex::new(Vec::new());

/// Deals with what draining pools left behind (see "Why shutdown is different"); a runtime
/// calls it once its workers have exited. With `last` (no other runtime is running) every
/// stack no task uses goes: the doomed ones, the hollow ones and the pooled ones, sorted so
/// that adjacent ones go in one call. Otherwise nothing is unmapped, since another runtime's
/// stacks may lie between these and every hole would cost a VMA: the doomed stacks are
/// hollowed and kept for reuse.
///
/// Calls are serialized: a last runtime's sweep must not unmap its stacks while another
/// runtime's call is still hollowing stacks that lie between them (each would become a hole).
pub(crate) fn unmap_doomed(last: bool) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut doomed = std::mem::take(&mut *DOOMED.lock().unwrap_or_else(PoisonError::into_inner));
    if !last {
        doomed.iter_mut().for_each(Stack::hollow);
        // One runtime's stacks share one size, in practice: one lock per run of a size.
        doomed.sort_unstable_by_key(Stack::size);
        while let Some(size) = doomed.last().map(Stack::size) {
            let from = doomed.partition_point(|s| s.size() < size);
            let same: Vec<Stack> = doomed.drain(from..).collect();
            with_size_class(size, |class| class.hollow.extend(same));
        }
        return;
    }
    {
        let mut classes = SHARED_POOL.lock().unwrap_or_else(PoisonError::into_inner);
        for class in classes.iter_mut() {
            doomed.append(&mut class.hollow);
            doomed.append(&mut class.stacks);
        }
    }
    super::unmap_all(doomed);
}

/// Runs `f` on the shared pool's list for `size`, creating it if needed.
fn with_size_class<R>(size: usize, f: impl FnOnce(&mut SizeClass) -> R) -> R {
    // Nothing panics while the lock is held; were it poisoned, the lists would still be valid.
    let mut classes = SHARED_POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let index = match classes.iter().position(|class| class.size == size) {
        Some(index) => index,
        None => {
            classes.push(SizeClass { size, stacks: Vec::new(), hollow: Vec::new() });
            classes.len() - 1
        }
    };
    f(&mut classes[index])
}

/// Moves up to `n` shared stacks of `size` into `into`: clean ones first, then hollow ones.
fn shared_take(size: usize, n: usize, into: &mut Vec<Stack>) {
    with_size_class(size, |class| {
        let mut want = n;
        for list in [&mut class.stacks, &mut class.hollow] {
            let k = want.min(list.len());
            into.extend(list.drain(list.len() - k..));
            want -= k;
        }
    });
}

/// Gives clean stacks of `size` to the shared pool; what does not fit is hollowed after the
/// lock is released, and then kept with the hollow ones.
fn shared_put(size: usize, mut spill: Vec<Stack>) {
    with_size_class(size, |class| {
        let room = STACK_POOL_CAPACITY.saturating_sub(class.stacks.len()).min(spill.len());
        let keep_from = spill.len() - room;
        class.stacks.extend(spill.drain(keep_from..));
    });
    if spill.is_empty() {
        return;
    }
    spill.iter_mut().for_each(Stack::hollow);
    with_size_class(size, |class| class.hollow.append(&mut spill));
}

/// How many stacks of `size` the shared pool holds.
#[cfg(test)]
fn shared_len(size: usize) -> usize {
    with_size_class(size, |class| class.stacks.len())
}

/// A worker's stacks of the runtime's stack size: `get` and `put` without a lock in the common
/// case, spilling to and refilling from the shared pool (see the policy table above).
///
/// Go: `mcache.stackcache` (per P), with `stackcacherefill`, `stackcacherelease` and
/// `stackcache_clear`; `stackalloc`/`stackfree` are [`StackPool::get`]/[`StackPool::put`].
///
/// Invariants: every stack held has `size() == self.size` and runs nothing; there are never
/// more than [`STACK_CACHE_CAPACITY`].
#[doc(alias = "stackcache")]
#[derive(Debug)]
pub(crate) struct StackPool {
    /// The usable size this pool serves (rounded like [`Stack::new`]); other sizes bypass it.
    size: usize,
    /// The cached stacks, oldest first: `get` takes from the end (the warmest).
    stacks: Vec<Stack>,
    /// The runtime shuts down: keep every stack, give them all to [`DOOMED`] when dropped.
    draining: bool,
}

impl StackPool {
    /// An empty pool for stacks of `size` usable bytes.
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size: usable_size(size).unwrap_or(usize::MAX),
            stacks: Vec::with_capacity(STACK_CACHE_CAPACITY),
            draining: false,
        }
    }

    /// The usable size of the stacks this pool serves.
    #[cfg(test)]
    fn size(&self) -> usize {
        self.size
    }

    /// How many stacks this worker holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.stacks.len()
    }

    /// A stack with at least `size` usable bytes: a pooled one if there is one (this worker's
    /// for the pool's size, the shared pool's for other sizes), otherwise a fresh mapping.
    /// Errors are [`Stack::new`]'s.
    #[doc(alias = "stackalloc")]
    pub(crate) fn get(&mut self, size: usize) -> io::Result<Stack> {
        let usable = usable_size(size);
        if usable != Some(self.size) {
            let mut got = Vec::new();
            if let Some(usable) = usable {
                shared_take(usable, 1, &mut got);
            }
            return got.pop().map_or_else(|| Stack::new(size), Ok);
        }
        if self.stacks.is_empty() {
            self.refill();
        }
        match self.stacks.pop() {
            Some(stack) => Ok(stack),
            None => Stack::new(self.size),
        }
    }

    /// Takes back a stack whose task is finished: nothing may run on it any more.
    #[doc(alias = "stackfree")]
    pub(crate) fn put(&mut self, mut stack: Stack) {
        stack.clean = false;
        if stack.size() != self.size {
            // Not our size: to the shared pool's class for it (unmapping it here would punch a
            // hole between stacks in use, see "Why surplus stacks are hollowed").
            if self.draining {
                DOOMED.lock().unwrap_or_else(PoisonError::into_inner).push(stack);
            } else {
                stack.trim();
                shared_put(stack.size(), vec![stack]);
            }
            return;
        }
        if self.stacks.len() >= STACK_CACHE_CAPACITY && !self.draining {
            self.release();
        }
        self.stacks.push(stack);
    }

    /// The runtime shuts down: from now on keep every stack that comes back, and at the end
    /// leave them to [`unmap_doomed`] (see "Why shutdown is different").
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    /// Trims every held stack to its top [`STACK_KEEP_RESIDENT`](super::STACK_KEEP_RESIDENT)
    /// bytes: for an idle worker.
    #[allow(dead_code, reason = "for the scheduler's idle path, which does not call it yet")]
    pub(crate) fn scavenge(&mut self) {
        self.stacks.iter_mut().for_each(Stack::trim);
    }

    /// Fills an empty pool halfway from the shared pool.
    #[doc(alias = "stackcacherefill")]
    fn refill(&mut self) {
        shared_take(self.size, STACK_CACHE_CAPACITY / 2, &mut self.stacks);
    }

    /// Moves the oldest half of a full pool, trimmed, to the shared pool.
    #[doc(alias = "stackcacherelease")]
    fn release(&mut self) {
        let mut spill: Vec<Stack> = self.stacks.drain(..STACK_CACHE_CAPACITY / 2).collect();
        spill.iter_mut().for_each(Stack::trim);
        shared_put(self.size, spill);
    }
}

impl Drop for StackPool {
    /// A worker that exits gives its stacks, trimmed, to the shared pool.
    #[doc(alias = "stackcache_clear")]
    fn drop(&mut self) {
        let mut all = std::mem::take(&mut self.stacks);
        if self.draining {
            DOOMED.lock().unwrap_or_else(PoisonError::into_inner).append(&mut all);
            return;
        }
        all.iter_mut().for_each(Stack::trim);
        shared_put(self.size, all);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;
    use crate::stack::tests::{peek, poke, resident};
    use crate::stack::{DEFAULT_STACK_SIZE, MIN_STACK_SIZE};

    // The shared pool is process-wide and tests run in parallel: each pool test uses a stack
    // size of its own, hence a size class of its own.

    #[test]
    fn the_pool_hands_back_the_stack_it_got() {
        // Not DEFAULT_STACK_SIZE: runtimes in other tests of this process share that class.
        let size = DEFAULT_STACK_SIZE + 7 * 4096;
        let mut pool = StackPool::new(size);
        let stack = pool.get(size).unwrap();
        let top = stack.top();
        pool.put(stack);
        assert_eq!(pool.len(), 1);
        let again = pool.get(size).unwrap();
        assert_eq!(again.top(), top);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn other_sizes_skip_the_worker_pool_and_come_back_from_the_shared_one() {
        // A size of its own: the shared pool is process-wide.
        const BIG: usize = (1 << 20) + 3 * 4096;
        let mut pool = StackPool::new(DEFAULT_STACK_SIZE);
        let big = pool.get(BIG).unwrap();
        assert_eq!(big.size(), BIG);
        let top = big.top();
        pool.put(big);
        assert_eq!(pool.len(), 0, "the worker pool keeps its own size only");
        assert_eq!(shared_len(BIG), 1);
        let again = pool.get(BIG).unwrap();
        assert_eq!(again.top(), top, "the shared pool's stack came back");
        assert_eq!(shared_len(BIG), 0);
    }

    #[test]
    fn a_full_pool_spills_its_oldest_half_trimmed_and_another_refills_from_it() {
        const SIZE: usize = 200 * 1024;
        let mut pool = StackPool::new(SIZE);
        let stacks: Vec<Stack> =
            (0..=STACK_CACHE_CAPACITY).map(|_| pool.get(SIZE).unwrap()).collect();
        // Touch every stack deep down, as a task with a deep call chain would.
        let deep: Vec<usize> = stacks.iter().map(|s| s.guard().end).collect();
        deep.iter().for_each(|&addr| poke(addr, 1));
        let oldest: Vec<*mut u8> =
            stacks.iter().take(STACK_CACHE_CAPACITY / 2).map(Stack::top).collect();
        for stack in stacks {
            pool.put(stack);
        }
        // The 65th put found the pool full: the 32 oldest went to the shared pool.
        assert_eq!(shared_len(SIZE), STACK_CACHE_CAPACITY / 2);
        assert_eq!(pool.len(), STACK_CACHE_CAPACITY / 2 + 1);
        // Spilled stacks were trimmed below the kept top; the worker's own were not touched.
        assert!(!resident(deep[0]), "a spilled stack kept its deep pages");
        assert!(resident(deep[STACK_CACHE_CAPACITY]), "a kept stack lost its pages");
        // Another worker refills from the shared pool and gets exactly those.
        let mut other = StackPool::new(SIZE);
        let got = other.get(SIZE).unwrap();
        assert!(oldest.contains(&got.top()));
        assert_eq!(other.len(), STACK_CACHE_CAPACITY / 2 - 1);
        assert_eq!(shared_len(SIZE), 0);
        drop(got);
        // A pool that is dropped gives its stacks to the shared pool.
        drop(other);
        assert_eq!(shared_len(SIZE), STACK_CACHE_CAPACITY / 2 - 1);
    }

    #[test]
    fn the_shared_pool_is_bounded() {
        const SIZE: usize = MIN_STACK_SIZE + 12 * 1024;
        let mut pool = StackPool::new(SIZE);
        // Each spill moves 32 stacks; 33 spills overfill the shared pool.
        let n = STACK_POOL_CAPACITY + 2 * STACK_CACHE_CAPACITY;
        let stacks: Vec<Stack> = (0..n).map(|_| pool.get(SIZE).unwrap()).collect();
        stacks.into_iter().for_each(|s| pool.put(s));
        assert_eq!(shared_len(SIZE), STACK_POOL_CAPACITY);
        assert!(pool.len() <= STACK_CACHE_CAPACITY);
        assert_eq!(pool.size(), SIZE);
    }

    #[test]
    fn scavenge_trims_held_stacks() {
        const SIZE: usize = 128 * 1024;
        let mut pool = StackPool::new(SIZE);
        let stack = pool.get(SIZE).unwrap();
        let (deep, near_top) = (stack.guard().end, stack.top() as usize - 1);
        poke(deep, 1);
        poke(near_top, 1);
        pool.put(stack);
        assert!(resident(deep));
        pool.scavenge();
        assert!(!resident(deep), "scavenge left the deep page resident");
        assert!(resident(near_top), "scavenge dropped the kept top");
        let again = pool.get(SIZE).unwrap();
        assert_eq!(peek(deep), 0, "a trimmed page comes back zeroed");
        drop(again);
    }

    /// The number of mappings (VMAs) of this process.
    fn mappings() -> usize {
        std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
    }

    /// Whether stacks merge into shared VMAs here (`MADV_GUARD_INSTALL`), which is when freeing
    /// them one by one fragments the address space; with `mprotect` guards each stack is two
    /// VMAs anyway, and the tests below could not map enough stacks to show anything.
    fn stacks_merge() -> bool {
        drop(Stack::new(MIN_STACK_SIZE).unwrap()); // the first stack decides the guard method
        let merge = crate::stack::guard_method() == Some(crate::stack::GuardMethod::GuardInstall);
        if !merge {
            eprintln!("skipped: guard pages use mprotect here (2 VMAs per stack, none merge)");
        }
        merge
    }

    /// Samples the process's mapping count every millisecond until dropped; `peak()` is the
    /// highest seen so far.
    struct PeakMappings {
        peak: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl PeakMappings {
        fn start() -> PeakMappings {
            let (peak, stop) =
                (Arc::new(AtomicUsize::new(mappings())), Arc::new(AtomicBool::new(false)));
            let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
            let thread = std::thread::spawn(move || {
                while !s.load(SeqCst) {
                    p.fetch_max(mappings(), SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            PeakMappings { peak, stop, thread: Some(thread) }
        }

        fn peak(&self) -> usize {
            self.peak.load(SeqCst)
        }
    }

    impl Drop for PeakMappings {
        fn drop(&mut self) {
            self.stop.store(true, SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Starts `n` tasks that park until their flag is set and they are unparked; returns the
    /// flags and unparkers once all of them are parked. Call it inside `rt`.
    fn parked_tasks(n: usize) -> Vec<(Arc<AtomicBool>, crate::task::Unparker)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (tx, started) = (tx.clone(), started.clone());
            crate::go(move || {
                let flag = Arc::new(AtomicBool::new(false));
                tx.send((flag.clone(), crate::task::unparker())).unwrap();
                started.fetch_add(1, SeqCst);
                while !flag.load(SeqCst) {
                    crate::task::park();
                }
            });
        }
        // Not `rx.recv()` here: it would block this worker's thread, and the tasks with it.
        while started.load(SeqCst) < n {
            crate::time::sleep(Duration::from_millis(5));
        }
        rx.try_iter().collect()
    }

    // One `munmap` per stack, in shutdown order, went past the baseline by tens of thousands
    // of mappings in both tests below. Other tests of this process map and unmap too: the
    // bounds leave room for them.

    #[test]
    fn a_runtime_shutting_down_with_many_parked_tasks_keeps_the_mapping_count_low() {
        if !stacks_merge() {
            return;
        }
        let baseline = mappings();
        let peak = PeakMappings::start();
        let rt = crate::Runtime::builder().workers(2).build().unwrap();
        let _unparkers = rt.block_on(|| parked_tasks(100_000));
        drop(rt); // unwinds the 100 000 parked tasks
        let (peak, after) = (peak.peak(), mappings());
        assert!(peak < baseline + 2_000, "{peak} mappings at the peak, {baseline} before");
        assert!(after < baseline + 500, "{after} mappings left, {baseline} before");
    }

    #[test]
    fn tasks_exiting_in_random_order_keep_the_mapping_count_low() {
        if !stacks_merge() {
            return;
        }
        let baseline = mappings();
        let rt = crate::Runtime::builder().workers(2).build().unwrap();
        rt.block_on(move || {
            let mut tasks = parked_tasks(60_000);
            let peak = PeakMappings::start();
            // Half of them exit, in an order unrelated to where their stacks are.
            let mut x = 0x9e37_79b9_7f4a_7c15_u64;
            for i in (1..tasks.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tasks.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let rest = tasks.split_off(tasks.len() / 2);
            for (flag, unparker) in &tasks {
                flag.store(true, SeqCst);
                unparker.unpark();
            }
            // A task holds its flag until it exits.
            while tasks.iter().any(|(flag, _)| Arc::strong_count(flag) > 1) {
                crate::time::sleep(Duration::from_millis(5));
            }
            let peak = peak.peak();
            assert!(peak < baseline + 2_000, "{peak} mappings at the peak, {baseline} before");
            for (flag, unparker) in &rest {
                flag.store(true, SeqCst);
                unparker.unpark();
            }
        });
        drop(rt);
    }
}
