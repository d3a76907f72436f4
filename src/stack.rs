//! Task stacks: reserved lazily, guarded below, pooled, and watched for overflow.
//!
//! Mirrors: `runtime/stack.go` (Go 1.19) — `stackalloc`, `stackfree`, `stackpool`, `stackcache`,
//! `stackcacherefill`, `stackcacherelease`, `stackcache_clear`; `runtime/signal_unix.go` —
//! `sigtramp`/`sighandler` (the overflow report), `minitSignalStack`/`signalstack` (the
//! alternate signal stack).
//!
//! Go grows a goroutine's stack by copying it (`morestack`, `copystack`), which needs a check in
//! every function prologue and a compiler that knows every pointer into the stack. Rust has
//! neither, so a gort stack is a fixed virtual reservation (default 256 KiB, per-spawn
//! configurable) whose pages the kernel commits on first touch: memory follows the touched
//! depth, and running past the end hits a guard page instead of someone else's memory
//! (architecture.md, decision 5).
//!
//! ## One stack
//!
//! ```text
//!  high  +------------------------+ <- top(): page-aligned; arch::init builds the first frame here
//!        | usable: size() bytes   |    committed page by page as the task touches it,
//!        |          ...           |    from the top down
//!        +------------------------+ <- guard().end: the lowest usable byte starts here
//!        | guard page             |    any access faults (SIGSEGV), see "Overflow" below
//!  low   +------------------------+ <- guard().start: the start of the stack's one mmap
//! ```
//!
//! One `mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_STACK)` per
//! stack. rustc emits stack probes for frames larger than a page (x86_64, and AArch64 since
//! 1.79), so one guard page is enough: a huge frame touches the guard before anything below it.
//!
//! ## Guard pages
//!
//! | method                          | used when                                    | VMAs per stack | how many stacks fit          |
//! |---------------------------------|----------------------------------------------|----------------|------------------------------|
//! | `madvise(MADV_GUARD_INSTALL)`   | Linux ≥ 6.13 (detected once, at run time)    | 1, and adjacent stacks merge into one | as many as memory allows (a million is fine) |
//! | `mprotect(PROT_NONE)`           | older kernels; qemu-user; a refused `madvise` | 2              | `vm.max_map_count` / 2: ≈ 32,700 with the default 65530 |
//!
//! Detection: the first stack tries `MADV_GUARD_INSTALL` and then checks that the kernel really
//! refuses to read the page (a one-byte `write(2)` from it into a pipe must fail with `EFAULT`):
//! qemu-user accepts unknown `madvise` advice as a no-op hint, and a guard that silently does
//! nothing would be worse than an error. [`guard_method`] reports the outcome.
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
//! | shared pool already holds 1024 (per size) | the excess is unmapped, outside the lock                                   | `munmap`      |
//! | [`StackPool::scavenge`] (idle worker)   | trim every stack the worker holds                                            |               |
//! | worker pool dropped (worker exits)      | its stacks are trimmed and given to the shared pool (Go's `stackcache_clear`) |              |
//! | size other than the worker pool's       | no caching: [`Stack::new`] on `get`, unmapped on `put`                       | as fresh      |
//!
//! So the resident memory of idle stacks is bounded: at most 64 per worker keep whatever depth
//! their last task touched, and at most 1024 shared ones (per size) keep 16 KiB each.
//!
//! ## Overflow
//!
//! | step | when                                       | what                                                                 |
//! |------|--------------------------------------------|----------------------------------------------------------------------|
//! | 1    | once per process: [`install_overflow_handler`] | `sigaction(SIGSEGV, SIGBUS)` with `SA_SIGINFO\|SA_ONSTACK`; the previous actions are remembered |
//! | 2    | once per worker thread: [`AltStack::install`] | a guarded ≥ 64 KiB alternate signal stack: the handler cannot run on the stack that just overflowed |
//! | 3    | each time a task is resumed: [`set_running`] | a thread-local record: the task's guard range, id, name, stack KiB  |
//! | 4    | a fault inside that guard range             | on the alternate stack: `gort: task 7 (deep) overflowed its 64 KiB stack` with raw `write(2)`, then `abort()` |
//! | 5    | any other fault                            | restore the previous action and return: the instruction faults again and reaches std's handler ("thread ... has overflowed its stack") or the default action (core dump) |
//!
//! ## Invariants
//!
//! - A [`Stack`] exclusively owns its mapping and unmaps it on drop; nothing may run on it or
//!   resume a context on it afterwards (the callers of `arch::switch` guarantee that).
//! - A pooled stack runs nothing: its contents are garbage and may be discarded at any time.
//! - The fault handler touches only async-signal-safe things: the const-initialized thread-local
//!   record, the previous actions (written once, before the handler is installed), a stack
//!   buffer, `write(2)`, `sigaction(2)` and `abort(3)`.
//! - Running out of memory or mappings is an `io::Error` that names the cause and the numbers,
//!   never a panic.

use std::cell::Cell;
use std::ffi::{c_int, c_ulong, c_void};
use std::fmt;
use std::io;
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering, compiler_fence};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The usable size of a task stack unless the spawner asks otherwise (decision 5).
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smaller requests are rounded up to this: enough for the entry frames, a panic message and
/// a little user code.
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;

/// How many stacks a worker keeps for itself (Go: `_StackCacheSize` per size class).
pub(crate) const STACK_CACHE_CAPACITY: usize = 64;

/// How many stacks the shared pool keeps; more are unmapped.
pub(crate) const STACK_POOL_CAPACITY: usize = 1024;

/// How much of a stack's top stays resident when the stack is trimmed.
pub(crate) const STACK_KEEP_RESIDENT: usize = 16 * 1024;

/// `MADV_GUARD_INSTALL` (Linux 6.13, `include/uapi/asm-generic/mman-common.h`); libc 0.2.191
/// does not have the constant yet.
const MADV_GUARD_INSTALL: c_int = 102;

/// `AT_MINSIGSTKSZ` (`include/uapi/linux/auxvec.h`): the kernel's minimum signal frame size,
/// which grows with the CPU's register state (AVX-512, AMX, SVE); missing from libc.
const AT_MINSIGSTKSZ: c_ulong = 51;

/// The smallest alternate signal stack we install.
const ALTSTACK_MIN_SIZE: usize = 64 * 1024;

/// Stacks currently mapped by this process (tasks', pooled and alternate signal stacks), for
/// the error message when mapping fails.
static LIVE_STACKS: AtomicUsize = AtomicUsize::new(0);

/// The page size, read once.
fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page).ok().filter(|&p| p.is_power_of_two()).unwrap_or(4096);
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

/// The usable size a request for `size` bytes gets: at least [`MIN_STACK_SIZE`], rounded up to
/// whole pages. `None` if that overflows.
fn usable_size(size: usize) -> Option<usize> {
    size.max(MIN_STACK_SIZE).checked_next_multiple_of(page_size())
}

/// Turns a libc `-1` return into the current `errno`.
fn check(ret: c_int) -> io::Result<()> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// How a stack's guard page was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardMethod {
    /// `madvise(MADV_GUARD_INSTALL)`: no extra VMA (Linux ≥ 6.13).
    GuardInstall,
    /// `mprotect(PROT_NONE)`: splits the mapping in two VMAs.
    Mprotect,
}

impl fmt::Display for GuardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuardMethod::GuardInstall => "MADV_GUARD_INSTALL",
            GuardMethod::Mprotect => "mprotect(PROT_NONE)",
        })
    }
}

/// [`GUARD_METHOD`] before the first stack is mapped.
const GUARD_UNKNOWN: u8 = 0;
/// [`GUARD_METHOD`]: `MADV_GUARD_INSTALL` works here.
const GUARD_INSTALL: u8 = 1;
/// [`GUARD_METHOD`]: use `mprotect`.
const GUARD_MPROTECT: u8 = 2;

/// What the first stack found out about `MADV_GUARD_INSTALL`. Two threads racing to map the
/// first stacks both probe and store the same answer.
static GUARD_METHOD: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);

/// How guard pages are installed in this process: `None` until the first stack is mapped.
pub(crate) fn guard_method() -> Option<GuardMethod> {
    match GUARD_METHOD.load(Ordering::Relaxed) {
        GUARD_INSTALL => Some(GuardMethod::GuardInstall),
        GUARD_MPROTECT => Some(GuardMethod::Mprotect),
        _ => None,
    }
}

/// Makes `page..page + len`, the lowest page of a fresh mapping of ours, a guard.
fn install_guard(page: NonNull<u8>, len: usize) -> io::Result<()> {
    let known = GUARD_METHOD.load(Ordering::Relaxed);
    if known != GUARD_MPROTECT {
        // SAFETY: the range is the first page of a private anonymous mapping we just created
        // and nobody else uses; the advice only changes what an access to it does.
        let rc = unsafe { libc::madvise(page.as_ptr().cast(), len, MADV_GUARD_INSTALL) };
        let refused = (rc != 0).then(io::Error::last_os_error);
        if refused.is_none() && (known == GUARD_INSTALL || guard_faults(page)) {
            if known == GUARD_UNKNOWN {
                GUARD_METHOD.store(GUARD_INSTALL, Ordering::Relaxed);
                log::debug!("gort: task stack guard pages use MADV_GUARD_INSTALL");
            }
            return Ok(());
        }
        if known == GUARD_UNKNOWN {
            // EINVAL before 6.13; or accepted but ineffective (qemu-user).
            GUARD_METHOD.store(GUARD_MPROTECT, Ordering::Relaxed);
            log::debug!(
                "gort: MADV_GUARD_INSTALL unavailable ({}); task stack guard pages use mprotect, \
                 2 mappings per stack",
                refused.map_or_else(|| "accepted but not enforced".to_string(), |e| e.to_string())
            );
        }
        // Otherwise the kernel has it but refused this mapping (e.g. under mlockall): fall
        // back for this one stack.
    }
    // SAFETY: as above: the first page of our own fresh mapping.
    check(unsafe { libc::mprotect(page.as_ptr().cast(), len, libc::PROT_NONE) })
}

/// Whether the kernel refuses to read `page`: a one-byte `write(2)` from it into a fresh pipe
/// must fail with `EFAULT`. Any other outcome (including failing to make the pipe) says no, which
/// falls back to the always-effective `mprotect`.
fn guard_faults(page: NonNull<u8>) -> bool {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    // SAFETY: the kernel reads one byte of `page`: either our own zero-filled page, or it finds
    // the guard and returns EFAULT; our code never touches the page itself.
    let written = unsafe { libc::write(fds[1], page.as_ptr().cast(), 1) };
    let efault = written == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    for fd in fds {
        // SAFETY: both ends of the pipe are ours and closed exactly once.
        unsafe { libc::close(fd) };
    }
    efault
}

/// Which step of mapping a stack failed, for the error message.
#[derive(Clone, Copy, Debug)]
enum MapStep {
    Map,
    Guard,
}

/// The error for a stack that could not be mapped: names the cause and the numbers.
fn stack_error(step: MapStep, size: usize, cause: io::Error) -> io::Error {
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
    let live = LIVE_STACKS.load(Ordering::Relaxed);
    let method = guard_method();
    let guards = method.map_or_else(|| "not yet known".to_string(), |m| m.to_string());
    let what = match step {
        MapStep::Map => "map",
        MapStep::Guard => "install the guard page of",
    };
    // With mprotect guards the mapping count, not memory, is the usual limit: say what to do.
    let hint = if method == Some(GuardMethod::Mprotect)
        && cause.raw_os_error() == Some(libc::ENOMEM)
    {
        "; mprotect guard pages cost 2 mappings per stack: raise vm.max_map_count above twice the \
         task count, or run on Linux 6.13+ for MADV_GUARD_INSTALL"
    } else {
        ""
    };
    let message = format!(
        "gort: cannot {what} a {} KiB task stack: {cause} (vm.max_map_count is {max_map_count}, \
         {live} stacks live, guard pages by {guards}{hint})",
        size / 1024
    );
    io::Error::new(cause.kind(), message)
}

/// A task stack: one anonymous mapping, a guard page at its low end, the rest usable.
///
/// Go: the `stack{lo, hi}` a `g` runs on, from `stackalloc`.
#[derive(Debug)]
pub(crate) struct Stack {
    /// The start of the mapping, which is the start of the guard page.
    base: NonNull<u8>,
    /// The length of the whole mapping: the guard page plus the usable part.
    len: usize,
    /// The length of the guard at `base`: one page.
    guard_len: usize,
    /// Known to have no resident pages below the keep-resident top: trimming would be a no-op.
    /// True when fresh and after a trim; false once it comes back from a task
    /// ([`StackPool::put`]).
    clean: bool,
}

// SAFETY: a `Stack` owns its mapping outright (no aliases outside the contexts that run on it,
// which the switch's callers keep on one thread at a time); anonymous memory is not tied to the
// thread that mapped it.
unsafe impl Send for Stack {}

impl Stack {
    /// Maps a stack with at least `size` usable bytes (at least [`MIN_STACK_SIZE`], rounded up
    /// to pages) and a guard page below them. Pages are committed only when touched.
    ///
    /// Running out of memory or mappings is an error that names the cause and the numbers.
    #[doc(alias = "stackalloc")]
    pub(crate) fn new(size: usize) -> io::Result<Stack> {
        let page = page_size();
        let too_big = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gort: a task stack of {size} bytes is too large"),
            )
        };
        let usable = usable_size(size).ok_or_else(too_big)?;
        let len = usable.checked_add(page).ok_or_else(too_big)?;
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing: it
        // cannot overlap anything Rust already uses.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(stack_error(MapStep::Map, usable, io::Error::last_os_error()));
        }
        // Without MAP_FIXED the kernel never picks address 0 (vm.mmap_min_addr).
        let base = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("gort: mmap returned address 0 for a task stack"))?;
        LIVE_STACKS.fetch_add(1, Ordering::Relaxed);
        // From here on, dropping `stack` unmaps it.
        let stack = Stack { base, len, guard_len: page, clean: true };
        if let Err(e) = install_guard(base, page) {
            drop(stack); // Unmapped first, so the message counts only the stacks that exist.
            return Err(stack_error(MapStep::Guard, usable, e));
        }
        Ok(stack)
    }

    /// The top of the stack (exclusive): page-aligned, so 16-aligned, ready for `arch::init`.
    pub(crate) fn top(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_add(self.len)
    }

    /// The usable size in bytes (without the guard page).
    pub(crate) fn size(&self) -> usize {
        self.len - self.guard_len
    }

    /// The address range of the guard page; the usable part starts at its end.
    pub(crate) fn guard(&self) -> Range<usize> {
        let start = self.base.as_ptr() as usize;
        start..start + self.guard_len
    }

    /// Gives back to the kernel the pages below the top [`STACK_KEEP_RESIDENT`] bytes, unless
    /// the stack is known clean. Only for stacks nothing runs on.
    fn trim(&mut self) {
        if self.clean {
            return;
        }
        let keep = STACK_KEEP_RESIDENT.next_multiple_of(self.guard_len).min(self.size());
        let len = self.size() - keep;
        if len > 0 {
            let start = self.base.as_ptr().wrapping_add(self.guard_len);
            // SAFETY: `start..start + len` lies inside our mapping, above the guard and below
            // the kept top; nothing runs on a stack being trimmed, so its contents may go.
            let rc = unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) };
            if rc != 0 {
                log::debug!("gort: trimming a pooled stack failed: {}", io::Error::last_os_error());
                return;
            }
        }
        self.clean = true;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: `base..base + len` is exactly the mapping `new` created and this value owns;
        // no context runs on it any more (the switch callers' contract).
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(
            rc,
            0,
            "gort: munmap of a task stack failed: {}",
            io::Error::last_os_error()
        );
        LIVE_STACKS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One size class of the shared overflow pool.
#[derive(Debug)]
struct SizeClass {
    /// The usable size of every stack in `stacks`.
    size: usize,
    /// Clean (trimmed) stacks that run nothing, at most [`STACK_POOL_CAPACITY`].
    stacks: Vec<Stack>,
}

/// The shared overflow pool that every worker's [`StackPool`] spills to and refills from: one
/// bounded list per stack size in use (in practice one or two: the runtime's configured size).
/// The lock is held only to move stacks in or out, never across a syscall.
///
/// Go: the global `stackpool` (one list per size order).
#[doc(alias = "stackpool")]
static SHARED_POOL: Mutex<Vec<SizeClass>> = Mutex::new(Vec::new());

/// Runs `f` on the shared pool's list for `size`, creating it if needed.
fn with_size_class<R>(size: usize, f: impl FnOnce(&mut Vec<Stack>) -> R) -> R {
    // Nothing panics while the lock is held; were it poisoned, the lists would still be valid.
    let mut classes = SHARED_POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let index = match classes.iter().position(|class| class.size == size) {
        Some(index) => index,
        None => {
            classes.push(SizeClass { size, stacks: Vec::new() });
            classes.len() - 1
        }
    };
    f(&mut classes[index].stacks)
}

/// Moves up to `n` shared stacks of `size` into `into`.
fn shared_take(size: usize, n: usize, into: &mut Vec<Stack>) {
    with_size_class(size, |stacks| {
        let from = stacks.len().saturating_sub(n);
        into.extend(stacks.drain(from..));
    });
}

/// Gives clean stacks of `size` to the shared pool; what does not fit is unmapped after the
/// lock is released.
fn shared_put(size: usize, mut spill: Vec<Stack>) {
    with_size_class(size, |stacks| {
        let room = STACK_POOL_CAPACITY.saturating_sub(stacks.len()).min(spill.len());
        let keep_from = spill.len() - room;
        stacks.extend(spill.drain(keep_from..));
    });
    drop(spill);
}

/// How many stacks of `size` the shared pool holds.
#[cfg(test)]
fn shared_len(size: usize) -> usize {
    with_size_class(size, |stacks| stacks.len())
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
}

impl StackPool {
    /// An empty pool for stacks of `size` usable bytes.
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size: usable_size(size).unwrap_or(usize::MAX),
            stacks: Vec::with_capacity(STACK_CACHE_CAPACITY),
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

    /// A stack with at least `size` usable bytes: a pooled one when `size` is the pool's size,
    /// otherwise a fresh mapping. Errors are [`Stack::new`]'s.
    #[doc(alias = "stackalloc")]
    pub(crate) fn get(&mut self, size: usize) -> io::Result<Stack> {
        if usable_size(size) != Some(self.size) {
            return Stack::new(size);
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
        if stack.size() != self.size {
            return; // Not our size: dropped, so unmapped.
        }
        stack.clean = false;
        if self.stacks.len() >= STACK_CACHE_CAPACITY {
            self.release();
        }
        self.stacks.push(stack);
    }

    /// Trims every held stack to its top [`STACK_KEEP_RESIDENT`] bytes: for an idle worker.
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
        all.iter_mut().for_each(Stack::trim);
        shared_put(self.size, all);
    }
}

/// The longest task name the overflow message shows (longer names are cut at a char boundary).
const RUNNING_NAME_MAX: usize = 32;

/// What the fault handler needs to know about the task running on this thread. Plain `Copy`
/// data with the name inline, so the handler reads it without following a pointer that could
/// dangle or allocating.
///
/// Go: `getg().m.curg` with its `stack.lo`, `goid`.
#[doc(alias = "curg")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunningTask {
    /// Start of the task stack's guard page.
    guard_start: usize,
    /// End (exclusive) of the guard page.
    guard_end: usize,
    /// The task id, as the runtime numbers tasks.
    id: u64,
    /// The usable stack size in KiB, for the message.
    stack_kib: usize,
    /// The first `name_len` bytes are the task's name, UTF-8, possibly cut short.
    name: [u8; RUNNING_NAME_MAX],
    /// How many bytes of `name` are used; 0 for an unnamed task.
    name_len: u8,
}

impl RunningTask {
    /// The record for task `id`, named `name` if it has a name, running on `stack`.
    pub(crate) fn new(stack: &Stack, id: u64, name: Option<&str>) -> RunningTask {
        let name = name.unwrap_or("");
        let mut len = name.len().min(RUNNING_NAME_MAX);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut inline = [0; RUNNING_NAME_MAX];
        inline[..len].copy_from_slice(&name.as_bytes()[..len]);
        let guard = stack.guard();
        RunningTask {
            guard_start: guard.start,
            guard_end: guard.end,
            id,
            stack_kib: stack.size() / 1024,
            name: inline,
            name_len: len as u8,
        }
    }

    /// The task id.
    #[cfg(test)]
    fn id(&self) -> u64 {
        self.id
    }

    /// The (possibly shortened) name, as bytes.
    fn name_bytes(&self) -> &[u8] {
        self.name.get(..usize::from(self.name_len)).unwrap_or(&[])
    }

    /// Whether `addr` is in this task's guard page.
    fn guard_contains(&self, addr: usize) -> bool {
        self.guard_start <= addr && addr < self.guard_end
    }
}

thread_local! {
    /// The task running on this thread, for the fault handler; `None` while the scheduler runs.
    ///
    /// Why a signal handler may read it: `const` initialization of a type without `Drop` makes
    /// std use a plain ELF TLS slot, with no lazy-initialization flag and no destructor
    /// registration, so an access is one load relative to the thread pointer (no allocation, no
    /// lock, nothing that can be half-done when the signal arrives). SIGSEGV is delivered to
    /// the thread that faulted, so the handler reads that thread's record. The writer
    /// ([`set_running`]) runs on the same thread, and its `compiler_fence` keeps the compiler
    /// from moving the store past code that may fault. (Were gort loaded with `dlopen`, the
    /// first access could allocate the module's TLS block; [`set_running`] runs before any task
    /// does, so the handler is never that first access.)
    static RUNNING: Cell<Option<RunningTask>> = const { Cell::new(None) };
}

/// Records which task this thread runs from now on (`None`: the scheduler's own code). The
/// scheduler calls it before each switch into a task and after switching back.
#[doc(alias = "setg")]
pub(crate) fn set_running(task: Option<RunningTask>) {
    RUNNING.set(task);
    // A signal fence: the handler on this thread must see the store before any fault that
    // follows.
    compiler_fence(Ordering::SeqCst);
}

/// The task this thread runs, as last recorded by [`set_running`].
#[cfg(test)]
fn running() -> Option<RunningTask> {
    RUNNING.get()
}

/// The SIGSEGV and SIGBUS actions found when the handler was installed: the handler restores
/// them for faults that are not task stack overflows.
struct PreviousActions {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

/// Written once by [`install_overflow_handler`] *before* the handler is installed; read by the
/// handler with a lock-free `OnceLock::get`.
static PREVIOUS_ACTIONS: OnceLock<PreviousActions> = OnceLock::new();

/// An all-zero `sigaction`: `SIG_DFL`, no flags, an empty mask.
fn default_action() -> libc::sigaction {
    // SAFETY: `sigaction` is a C struct of integers, a signal set and an `Option` of a function
    // pointer, for all of which all-zero bytes are valid (`SIG_DFL`, empty set, `None`).
    unsafe { std::mem::zeroed() }
}

/// Installs the task stack overflow handler for SIGSEGV and SIGBUS, once per process (later
/// calls do nothing). Each worker thread also needs [`AltStack::install`].
///
/// It cannot fail in practice (`sigaction` on these two signals only fails for invalid
/// arguments); if it does, the error is logged and overflows go unnamed (they still crash).
#[doc(alias = "initsig")]
pub(crate) fn install_overflow_handler() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *installed {
        return;
    }
    match try_install_overflow_handler() {
        Ok(()) => *installed = true,
        Err(e) => log::error!("gort: cannot install the stack overflow handler: {e}"),
    }
}

/// The work of [`install_overflow_handler`], with its errors.
fn try_install_overflow_handler() -> io::Result<()> {
    // Record the current actions first: the handler may run as soon as it is installed.
    let mut previous = PreviousActions { segv: default_action(), bus: default_action() };
    // SAFETY: a null new action only reads the current one into the valid out-pointer.
    check(unsafe { libc::sigaction(libc::SIGSEGV, ptr::null(), &mut previous.segv) })?;
    // SAFETY: as above.
    check(unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous.bus) })?;
    // Set once: after a success `install_overflow_handler` never calls us again, and a failure
    // happens before the handler exists, so an older record is as good as this one.
    let _ = PREVIOUS_ACTIONS.set(previous);

    let mut action = default_action();
    let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = handle_fault;
    action.sa_sigaction = handler as libc::sighandler_t;
    // SA_ONSTACK: run on the thread's alternate stack, since the task stack is exhausted.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: `action` is fully initialized and `handle_fault` has the SA_SIGINFO signature
        // and is async-signal-safe.
        check(unsafe { libc::sigaction(signal, &action, ptr::null_mut()) })?;
    }
    Ok(())
}

/// The SIGSEGV/SIGBUS handler. Runs on the alternate signal stack.
///
/// Go: `sigtramp` → `sighandler`. (Go itself reports a goroutine overflow earlier, from
/// `newstack`: "goroutine stack exceeds 1000000000-byte limit"; a fixed stack can only fault.)
#[doc(alias = "sighandler")]
extern "C" fn handle_fault(signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let info = unsafe { &*info };
    // SAFETY: for SIGSEGV and SIGBUS the kernel fills in the fault address.
    let addr = unsafe { info.si_addr() } as usize;
    let task = RUNNING.try_with(Cell::get).ok().flatten();
    if let Some(task) = task
        && task.guard_contains(addr)
    {
        write_stderr(overflow_message(&task).as_bytes());
        std::process::abort();
    }
    // Not ours: put the previous action back and return. The faulting instruction runs again
    // and its fault goes where it would have gone without gort.
    let fallback = default_action();
    let previous = match PREVIOUS_ACTIONS.get() {
        Some(p) if signal == libc::SIGBUS => &p.bus,
        Some(p) => &p.segv,
        None => &fallback,
    };
    // SAFETY: `previous` is an action the kernel gave us (or SIG_DFL); sigaction is
    // async-signal-safe.
    unsafe { libc::sigaction(signal, previous, ptr::null_mut()) };
}

/// A fixed buffer that formats without allocating, locking or panicking: safe in a signal
/// handler. Text that does not fit is dropped.
struct SignalSafeBuf {
    bytes: [u8; 160],
    len: usize,
}

impl SignalSafeBuf {
    fn new() -> SignalSafeBuf {
        SignalSafeBuf { bytes: [0; 160], len: 0 }
    }

    fn push(&mut self, text: &[u8]) {
        for &byte in text {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }
    }

    /// Appends `n` in decimal.
    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(digits.get(start..).unwrap_or(&[]));
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// `gort: task <id> (<name>) overflowed its <N> KiB stack\n` (no parentheses when unnamed).
fn overflow_message(task: &RunningTask) -> SignalSafeBuf {
    let mut message = SignalSafeBuf::new();
    message.push(b"gort: task ");
    message.push_u64(task.id);
    if task.name_len > 0 {
        message.push(b" (");
        message.push(task.name_bytes());
        message.push(b")");
    }
    message.push(b" overflowed its ");
    message.push_u64(task.stack_kib as u64);
    message.push(b" KiB stack\n");
    message
}

/// Writes all of `bytes` to fd 2 with raw `write(2)` (async-signal-safe), retrying on EINTR.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live buffer of `bytes.len()` bytes.
        let written =
            unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        if written > 0 {
            bytes = bytes.get(written as usize..).unwrap_or(&[]);
        } else if written == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// This thread's alternate signal stack, installed while the value lives; dropping it restores
/// the previous one. Each worker thread installs one before running tasks.
///
/// Rust's std gives the threads it spawns an alternate stack only when its own SIGSEGV handler
/// was installed at startup, sized for its handler (`SIGSTKSZ`-ish); gort does not rely on
/// that and maps its own: at least 64 KiB, `SIGSTKSZ` and 4 × the kernel's `AT_MINSIGSTKSZ`
/// (large with AVX-512/AMX state), with a guard page like any [`Stack`].
///
/// Go: `minitSignalStack` / `signalstack` (`gsignal`'s 32 KiB stack).
#[doc(alias = "minitSignalStack")]
#[doc(alias = "sigaltstack")]
pub(crate) struct AltStack {
    /// The memory the kernel delivers signals on.
    stack: Stack,
    /// What `sigaltstack` reported before: restored on drop.
    previous: libc::stack_t,
}

impl fmt::Debug for AltStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AltStack")
            .field("stack", &self.stack)
            .field("previous_sp", &self.previous.ss_sp)
            .finish()
    }
}

impl AltStack {
    /// Maps an alternate signal stack and makes it this thread's.
    pub(crate) fn install() -> io::Result<AltStack> {
        // SAFETY: getauxval only reads the auxiliary vector; 0 means the entry is absent.
        let kernel_min = unsafe { libc::getauxval(AT_MINSIGSTKSZ) } as usize;
        let size = ALTSTACK_MIN_SIZE.max(libc::SIGSTKSZ).max(kernel_min.saturating_mul(4));
        let stack = Stack::new(size)?;
        let new = libc::stack_t {
            ss_sp: stack.guard().end as *mut c_void,
            ss_flags: 0,
            ss_size: stack.size(),
        };
        let mut previous = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        // SAFETY: `new` describes memory owned by the returned value, which unregisters it
        // before unmapping it; `previous` is a valid out-pointer.
        check(unsafe { libc::sigaltstack(&new, &mut previous) })?;
        Ok(AltStack { stack, previous })
    }

    /// The usable size of the alternate stack.
    #[cfg(test)]
    fn size(&self) -> usize {
        self.stack.size()
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let mut current = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        // SAFETY: a null new stack only queries into the valid out-pointer.
        let rc = unsafe { libc::sigaltstack(ptr::null(), &mut current) };
        if rc != 0 || current.ss_sp as usize != self.stack.guard().end {
            return; // Someone replaced ours since: leave theirs; ours is no longer in use.
        }
        let mut restore = self.previous;
        restore.ss_flags &= !libc::SS_ONSTACK;
        // SAFETY: puts back what the thread had before (or disables the alternate stack);
        // that memory, if any, belongs to whoever installed it and is still mapped.
        let rc = unsafe { libc::sigaltstack(&restore, ptr::null_mut()) };
        debug_assert_eq!(rc, 0, "gort: restoring the alternate signal stack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{self, Context};
    use std::hint::black_box;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output, Stdio};
    use std::time::Duration;

    /// Lines in /proc/self/maps: one per VMA.
    fn map_count() -> usize {
        std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
    }

    /// Whether the page holding `addr` is resident.
    fn resident(addr: usize) -> bool {
        let page = page_size();
        let mut vec = [0u8; 1];
        // SAFETY: the page-aligned address lies in a mapping of ours; `vec` has room for the
        // one page asked about.
        let rc =
            unsafe { libc::mincore((addr & !(page - 1)) as *mut c_void, page, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        vec[0] & 1 == 1
    }

    /// Writes one byte at `addr`, which must be in a usable stack range.
    fn poke(addr: usize, value: u8) {
        // SAFETY: the tests pass addresses inside the usable part of a live `Stack`.
        unsafe { ptr::write_volatile(addr as *mut u8, value) };
    }

    fn peek(addr: usize) -> u8 {
        // SAFETY: as for `poke`.
        unsafe { ptr::read_volatile(addr as *const u8) }
    }

    #[test]
    fn a_stack_has_its_size_and_a_guard_below() {
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(stack.size(), DEFAULT_STACK_SIZE);
        assert_eq!(stack.guard().len(), page_size());
        assert_eq!(stack.guard().end + stack.size(), stack.top() as usize);
        assert_eq!(stack.top() as usize % 16, 0);
        let method = guard_method().expect("known once a stack is mapped");
        println!("gort: guard pages here: {method}");
        // Small and odd sizes are rounded.
        assert_eq!(Stack::new(1).unwrap().size(), MIN_STACK_SIZE);
        assert_eq!(Stack::new(MIN_STACK_SIZE + 1).unwrap().size(), MIN_STACK_SIZE + page_size());
    }

    #[test]
    fn the_first_and_last_usable_bytes_are_writable() {
        let stack = Stack::new(64 * 1024).unwrap();
        let lowest = stack.guard().end;
        let highest = stack.top() as usize - 1;
        poke(lowest, 0xA5);
        poke(highest, 0x5A);
        assert_eq!((peek(lowest), peek(highest)), (0xA5, 0x5A));
    }

    #[test]
    fn ten_thousand_stacks_and_the_map_count() {
        const N: usize = 10_000;
        let before = map_count();
        let stacks: Vec<Stack> = (0..N).map(|_| Stack::new(DEFAULT_STACK_SIZE).unwrap()).collect();
        let during = map_count();
        let method = guard_method().unwrap();
        let grown = during.saturating_sub(before);
        println!(
            "gort: {N} stacks ({method}): /proc/self/maps {before} -> {during} lines (+{grown})"
        );
        // Tests run in parallel and map stacks too, so only coarse bounds are checked.
        match method {
            // Guards create no VMA and neighbouring anonymous mappings merge.
            GuardMethod::GuardInstall => assert!(grown < N / 10, "+{grown} VMAs for {N} stacks"),
            // Two VMAs per stack.
            GuardMethod::Mprotect => assert!(grown > N, "+{grown} VMAs for {N} stacks"),
        }
        drop(stacks);
        if method == GuardMethod::Mprotect {
            assert!(map_count() + N < during, "unmapping did not reduce the map count");
        }
    }

    #[test]
    fn impossible_sizes_are_errors_that_name_the_cause() {
        let err = Stack::new(usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // 1 PiB: more than the address space; mmap fails with ENOMEM.
        let err = Stack::new(1 << 50).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory, "{text}");
        assert!(text.starts_with("gort: cannot map a 1099511627776 KiB task stack: "), "{text}");
        assert!(text.contains("vm.max_map_count is ") && text.contains(" stacks live"), "{text}");
    }

    // The shared pool is process-wide and tests run in parallel: each pool test uses a stack
    // size of its own, hence a size class of its own.

    #[test]
    fn the_pool_hands_back_the_stack_it_got() {
        let mut pool = StackPool::new(DEFAULT_STACK_SIZE);
        let stack = pool.get(DEFAULT_STACK_SIZE).unwrap();
        let top = stack.top();
        pool.put(stack);
        assert_eq!(pool.len(), 1);
        let again = pool.get(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(again.top(), top);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn other_sizes_bypass_the_pool() {
        let mut pool = StackPool::new(DEFAULT_STACK_SIZE);
        let big = pool.get(1 << 20).unwrap();
        assert_eq!(big.size(), 1 << 20);
        pool.put(big);
        assert_eq!(pool.len(), 0);
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

    #[test]
    fn the_running_record_keeps_a_short_name_inline() {
        let stack = Stack::new(64 * 1024).unwrap();
        let task = RunningTask::new(&stack, 7, Some("deep"));
        assert_eq!(task.id(), 7);
        assert_eq!(
            overflow_message(&task).as_bytes(),
            b"gort: task 7 (deep) overflowed its 64 KiB stack\n"
        );
        assert!(
            task.guard_contains(stack.guard().start) && task.guard_contains(stack.guard().end - 1)
        );
        assert!(!task.guard_contains(stack.guard().end));
        let unnamed = RunningTask::new(&stack, u64::MAX, None);
        assert_eq!(
            overflow_message(&unnamed).as_bytes(),
            b"gort: task 18446744073709551615 overflowed its 64 KiB stack\n"
        );
        // 31 ASCII bytes then a 2-byte char: the cut falls before the char.
        let long = format!("{}é and more", "x".repeat(31));
        let cut = RunningTask::new(&stack, 1, Some(&long));
        assert_eq!(cut.name_bytes(), "x".repeat(31).as_bytes());
        set_running(Some(cut));
        assert_eq!(running().map(|t| t.id()), Some(1));
        set_running(None);
        assert!(running().is_none());
    }

    #[test]
    fn an_altstack_is_installed_and_the_previous_one_restored() {
        let query = || {
            let mut current = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: 0, ss_size: 0 };
            // SAFETY: a null new stack only queries.
            check(unsafe { libc::sigaltstack(ptr::null(), &mut current) }).unwrap();
            (current.ss_sp as usize, current.ss_flags, current.ss_size)
        };
        let before = query();
        let alt = AltStack::install().unwrap();
        assert!(alt.size() >= ALTSTACK_MIN_SIZE && alt.size() >= libc::SIGSTKSZ);
        assert_eq!(query(), (alt.stack.guard().end, 0, alt.size()));
        drop(alt);
        assert_eq!(query(), before);
    }

    #[test]
    fn installing_the_handler_twice_is_harmless() {
        install_overflow_handler();
        install_overflow_handler();
        let mut current = default_action();
        // SAFETY: a null new action only queries.
        check(unsafe { libc::sigaction(libc::SIGSEGV, ptr::null(), &mut current) }).unwrap();
        let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = handle_fault;
        assert_eq!(current.sa_sigaction, handler as libc::sighandler_t);
        assert_ne!(current.sa_flags & libc::SA_ONSTACK, 0);
    }

    // ---- Overflow, observed from outside: the test binary runs itself as a child. ----

    /// Set in the child's environment to the scenario it must run.
    const CHILD_ENV: &str = "GORT_STACK_CHILD";

    /// Runs this test binary again with only `test_fn` selected and `GORT_STACK_CHILD=mode`,
    /// through the same runner as the parent when one is configured (qemu-user for the
    /// cross-arch run), and returns what it did; kills it after two minutes.
    fn run_child(test_fn: &str, mode: &str) -> Output {
        let name = format!("{}::{test_fn}", module_path!().split_once("::").unwrap().1);
        let runner_var = format!(
            "CARGO_TARGET_{}_UNKNOWN_LINUX_GNU_RUNNER",
            std::env::consts::ARCH.to_uppercase()
        );
        let mut argv: Vec<String> = std::env::var(&runner_var)
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        argv.push(std::env::current_exe().unwrap().to_string_lossy().into_owned());
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(output) => output.unwrap(),
            Err(_) => {
                // SAFETY: `pid` is our child, not yet reaped (the waiting thread is still
                // blocked in wait), so the id cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the child running {name} did not finish in 120 s");
            }
        }
    }

    /// In the child: runs `entry` as task 7 "deep" on a 64 KiB stack, with the handler and an
    /// alternate stack installed, expecting it to die inside the task.
    fn child_runs_task(entry: unsafe extern "C" fn(usize) -> !) -> ! {
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `no_core` is a valid rlimit; dumping no core file keeps the test quick and clean.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        install_overflow_handler();
        let _alt = AltStack::install().unwrap();
        let stack = Stack::new(64 * 1024).unwrap();
        // SAFETY: the stack's top is 16-aligned and the stack outlives the task (we exit).
        let task = unsafe { arch::init(stack.top(), entry) };
        let mut main = Context::default();
        set_running(Some(RunningTask::new(&stack, 7, Some("deep"))));
        // SAFETY: `task` is fresh on a live stack; `main` is ours to save into.
        unsafe { arch::switch(&mut main, &task, 0) };
        set_running(None);
        eprintln!("child: the task came back without faulting");
        std::process::exit(3);
    }

    /// Recurses until the stack runs out; each frame stays live (no tail call, no loop).
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        let frame = black_box([depth; 8]);
        if black_box(depth) == u64::MAX {
            return frame[0];
        }
        let below = recurse(depth + 1);
        black_box(&frame);
        below ^ frame[1]
    }

    unsafe extern "C" fn recurse_forever(_: usize) -> ! {
        black_box(recurse(0));
        std::process::abort();
    }

    unsafe extern "C" fn one_huge_frame(_: usize) -> ! {
        let big = black_box([0u8; 1 << 20]);
        black_box(&big);
        std::process::abort();
    }

    unsafe extern "C" fn fault_elsewhere(_: usize) -> ! {
        let page = page_size();
        // SAFETY: a fresh inaccessible anonymous page, mapped only to be faulted on.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        // SAFETY: deliberately invalid: this write faults, which is the point of the test.
        unsafe { ptr::write_volatile(addr.cast::<u8>(), 1) };
        std::process::abort();
    }

    const OVERFLOW_MESSAGE: &str = "gort: task 7 (deep) overflowed its 64 KiB stack";

    fn assert_reported_overflow(output: &Output) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGABRT),
            "child: {:?}\nstderr:\n{stderr}",
            output.status
        );
        assert!(stderr.contains(OVERFLOW_MESSAGE), "stderr:\n{stderr}");
    }

    #[test]
    fn overflow_by_recursion_is_reported() {
        if std::env::var(CHILD_ENV).as_deref() == Ok("recurse") {
            child_runs_task(recurse_forever);
        }
        assert_reported_overflow(&run_child("overflow_by_recursion_is_reported", "recurse"));
    }

    #[test]
    fn overflow_by_a_huge_frame_is_reported() {
        if std::env::var(CHILD_ENV).as_deref() == Ok("huge-frame") {
            child_runs_task(one_huge_frame);
        }
        assert_reported_overflow(&run_child("overflow_by_a_huge_frame_is_reported", "huge-frame"));
    }

    #[test]
    fn other_faults_reach_the_previous_handler() {
        if std::env::var(CHILD_ENV).as_deref() == Ok("elsewhere") {
            child_runs_task(fault_elsewhere);
        }
        let output = run_child("other_faults_reach_the_previous_handler", "elsewhere");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGSEGV),
            "child: {:?}\nstderr:\n{stderr}",
            output.status
        );
        assert!(!stderr.contains("gort: task"), "stderr:\n{stderr}");
    }

    #[test]
    fn running_out_of_mappings_is_a_clear_error() {
        // As on a kernel before 6.13: mprotect guards, 2 VMAs per stack, so vm.max_map_count
        // (65530 by default) runs out after about 32,700 stacks, as may's did at 32,741.
        if std::env::var(CHILD_ENV).as_deref() == Ok("exhaust") {
            GUARD_METHOD.store(GUARD_MPROTECT, Ordering::Relaxed);
            let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .map_or(65530, |s| s.trim().parse().unwrap_or(65530));
            if limit > 1 << 20 {
                println!(
                    "CHILD-SKIP vm.max_map_count is {limit}: too many stacks to map in a test"
                );
                std::process::exit(0);
            }
            let mut stacks = Vec::new();
            let err = loop {
                match Stack::new(MIN_STACK_SIZE) {
                    Ok(stack) => stacks.push(stack),
                    Err(e) => break e,
                }
                assert!(stacks.len() <= limit, "no error after {} stacks", stacks.len());
            };
            println!("CHILD-RESULT {} {:?} {err}", stacks.len(), err.kind());
            std::process::exit(0);
        }
        let output = run_child("running_out_of_mappings_is_a_clear_error", "exhaust");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "child: {:?}\n{stdout}\n{stderr}", output.status);
        if let Some((_, reason)) = stdout.lines().find_map(|l| l.split_once("CHILD-SKIP")) {
            println!("skipped:{reason}");
            return;
        }
        // libtest's "test ... " prefix may share the line.
        let line = stdout.lines().find_map(|l| l.split_once("CHILD-RESULT")).expect("a result").1;
        println!("stacks mapped before the error, error kind, message:{line}");
        assert!(line.contains("OutOfMemory"), "{line}");
        assert!(line.contains(" KiB task stack: "), "{line}");
        assert!(line.contains("vm.max_map_count is "), "{line}");
        assert!(line.contains("stacks live, guard pages by mprotect(PROT_NONE)"), "{line}");
        assert!(line.contains("raise vm.max_map_count"), "{line}");
    }
}
