//! Task stacks: reserved lazily, guarded below, pooled, and watched for overflow.
//!
//! Mirrors: `runtime/stack.go` (Go 1.19) — `stackalloc`, `stackfree` (one stack and its guard
//! page). The rest of the stack machinery lives beside this file:
//!
//! | file          | mirrors (Go 1.19)                                           | holds                                      |
//! |---------------|-------------------------------------------------------------|--------------------------------------------|
//! | `mod.rs`      | `stack.go`: `stackalloc`, `stackfree`                       | [`Stack`] (mmap, guard page, guard-method detection), the constants |
//! | `pool.rs`     | `stack.go`: `stackpool`, `stackcache` (refill, release, clear) | [`StackPool`], the shared overflow pool |
//! | `overflow.rs` | `signal_unix.go`: `sigtramp`/`sighandler`, `minitSignalStack` | the fault handler, [`RunningTask`], [`set_running`], [`install_overflow_handler`], [`AltStack`] |
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
//!        | guard page             |    any access faults (SIGSEGV), see overflow.rs
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
//! ## Invariants
//!
//! - A [`Stack`] exclusively owns its mapping and unmaps it on drop; nothing may run on it or
//!   resume a context on it afterwards (the callers of `arch::switch` guarantee that).
//! - Running out of memory or mappings is an `io::Error` that names the cause and the numbers,
//!   never a panic.

mod overflow;
mod pool;

pub(crate) use overflow::{AltStack, RunningTask, install_overflow_handler, set_running};
pub(crate) use pool::{StackPool, unmap_doomed};

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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
        if self.discard_below(self.size() - keep) {
            self.clean = true;
        }
    }

    /// Gives back every usable page (the guard stays): the stack keeps its place in the address
    /// space and its VMA, and nothing else. Only for stacks nothing runs on.
    fn hollow(&mut self) {
        if self.discard_below(self.size()) {
            self.clean = true;
        }
    }

    /// `madvise(MADV_DONTNEED)` of the lowest `len` usable bytes; whether it worked.
    fn discard_below(&mut self, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let start = self.base.as_ptr().wrapping_add(self.guard_len);
        // SAFETY: `start..start + len` lies inside our mapping, above the guard (`len` is at
        // most the usable size); nothing runs on a pooled stack, so its contents may go.
        let rc = unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) };
        if rc != 0 {
            log::debug!("gort: releasing a pooled stack failed: {}", io::Error::last_os_error());
        }
        rc == 0
    }
}

/// Unmaps `stacks` with as few `munmap` calls as their addresses allow: sorted by address, each
/// run of adjacent mappings goes in one call.
///
/// Why: with `MADV_GUARD_INSTALL`, stacks mapped one after another merge into one VMA (a
/// million parked tasks took about 80 VMAs here). Unmapping them one at a time punches a hole
/// in the middle of such a VMA for each stack freed out of address order, and every hole is
/// one more VMA until its neighbours go too: tearing down a runtime with a million parked
/// tasks, one `munmap` per stack, peaked at 65 268 VMAs against `vm.max_map_count` 65 530,
/// where `munmap` itself fails (a split needs a new VMA; the stacks leaked) and so does every
/// `mmap` in the process. A run unmapped in one call removes whole stretches instead.
///
/// A run whose `munmap` fails (it would have to split a VMA while at the limit) falls back to
/// one call per stack, which may succeed where the run did not.
fn unmap_all(mut stacks: Vec<Stack>) {
    stacks.sort_unstable_by_key(|s| s.base.as_ptr() as usize);
    let mut rest = stacks.into_iter().peekable();
    while let Some(first) = rest.next() {
        let start = first.base.as_ptr() as usize;
        let mut run = vec![first];
        let mut end = start + run[0].len;
        while let Some(next) = rest.next_if(|s| s.base.as_ptr() as usize == end) {
            end += next.len;
            run.push(next);
        }
        // SAFETY: `start..end` is exactly the union of the mappings the stacks of `run` own
        // (adjacent, in order), and nothing runs on any of them (only pooled stacks, which
        // run nothing, are given here).
        let rc = unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
        if rc == 0 {
            LIVE_STACKS.fetch_sub(run.len(), Ordering::Relaxed);
            // Unmapped already: their `Drop` must not unmap again.
            run.into_iter().for_each(std::mem::forget);
        } else {
            log::debug!(
                "gort: unmapping {} adjacent stacks at once failed ({}); one at a time",
                run.len(),
                io::Error::last_os_error()
            );
            drop(run);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;
    use std::process::{Command, Output, Stdio};
    use std::time::Duration;

    /// Lines in /proc/self/maps: one per VMA.
    fn map_count() -> usize {
        std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
    }

    /// Whether the page holding `addr` is resident.
    pub(super) fn resident(addr: usize) -> bool {
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
    pub(super) fn poke(addr: usize, value: u8) {
        // SAFETY: the tests pass addresses inside the usable part of a live `Stack`.
        unsafe { ptr::write_volatile(addr as *mut u8, value) };
    }

    pub(super) fn peek(addr: usize) -> u8 {
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

    // ---- The test binary runs itself as a child: used here and by `overflow.rs`'s tests. ----

    /// Set in the child's environment to the scenario it must run.
    pub(super) const CHILD_ENV: &str = "GORT_STACK_CHILD";

    /// Runs this test binary again with only `test_fn` of `module` (the caller's
    /// `module_path!()`) selected and `GORT_STACK_CHILD=mode`, through the same runner as the
    /// parent when one is configured (qemu-user for the cross-arch run), and returns what it
    /// did; kills it after two minutes.
    pub(super) fn run_child(module: &str, test_fn: &str, mode: &str) -> Output {
        let name = format!("{}::{test_fn}", module.split_once("::").unwrap().1);
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
        let output =
            run_child(module_path!(), "running_out_of_mappings_is_a_clear_error", "exhaust");
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
