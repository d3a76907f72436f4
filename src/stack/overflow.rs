//! Task stack overflow: the SIGSEGV/SIGBUS handler that names the task, and the alternate
//! signal stacks it runs on.
//!
//! Mirrors: `runtime/signal_unix.go` (Go 1.19) — `sigtramp`/`sighandler` (the overflow report),
//! `minitSignalStack`/`signalstack` (the alternate signal stack).
//!
//! ## Overflow
//!
//! | step | when                                       | what                                                                 |
//! |------|--------------------------------------------|----------------------------------------------------------------------|
//! | 1    | once per process: [`install_overflow_handler`] | `sigaction(SIGSEGV, SIGBUS)` with `SA_SIGINFO\|SA_ONSTACK`; the previous actions are remembered |
//! | 2    | once per worker thread: [`AltStack::install`] | a guarded ≥ 64 KiB alternate signal stack: the handler cannot run on the stack that just overflowed |
//! | 3    | each time a task is resumed or switched to: [`set_running`] | a thread-local pointer to the task's record (guard range, id, name, stack KiB), kept inside the task |
//! | 4    | a fault inside that guard range             | on the alternate stack: `gort: task 7 (deep) overflowed its 64 KiB stack` with raw `write(2)`, then `abort()` |
//! | 5    | any other fault                            | restore the previous action and return: the instruction faults again and reaches std's handler ("thread ... has overflowed its stack") or the default action (core dump) |
//!
//! ## Invariants
//!
//! - The fault handler touches only async-signal-safe things: the const-initialized thread-local
//!   pointer and the record it points to, the previous actions (written once, before the handler
//!   is installed), a stack buffer, `write(2)`, `sigaction(2)` and `abort(3)`.
//! - The record [`set_running`] points to is immutable and stays valid until the next
//!   [`set_running`] on the same thread: the task layer points it at a record inside the running
//!   task, whose `Arc` the thread holds while the task runs, and resets it (or points it at the
//!   next task) before that `Arc` can go. A pointer (one store per switch) rather than a copy of
//!   the 88-byte record: the record is written on every task switch, read only on a fault.

use std::cell::Cell;
use std::ffi::{c_int, c_ulong, c_void};
use std::fmt;
use std::io;
use std::ptr;
use std::sync::atomic::{Ordering, compiler_fence};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{Stack, check};

/// `AT_MINSIGSTKSZ` (`include/uapi/linux/auxvec.h`): the kernel's minimum signal frame size,
/// which grows with the CPU's register state (AVX-512, AMX, SVE); missing from libc.
const AT_MINSIGSTKSZ: c_ulong = 51;

/// The smallest alternate signal stack we install.
const ALTSTACK_MIN_SIZE: usize = 64 * 1024;

/// The longest task name the overflow message shows (longer names are cut at a char boundary).
const RUNNING_NAME_MAX: usize = 32;

/// What the fault handler needs to know about the task running on this thread. Plain `Copy`
/// data with the name inline, so the handler reads it without following any further pointer
/// or allocating.
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
    /// The task running on this thread, for the fault handler; null while the scheduler runs.
    ///
    /// Why a signal handler may read it: `const` initialization of a type without `Drop` makes
    /// std use a plain ELF TLS slot, with no lazy-initialization flag and no destructor
    /// registration, so an access is one load relative to the thread pointer (no allocation, no
    /// lock, nothing that can be half-done when the signal arrives). SIGSEGV is delivered to
    /// the thread that faulted, so the handler reads that thread's pointer, and the record it
    /// points to is alive and unchanging (the contract of [`set_running`]). The writer runs on
    /// the same thread, and its `compiler_fence` keeps the compiler from moving the store past
    /// code that may fault. (Were gort loaded with `dlopen`, the first access could allocate
    /// the module's TLS block; [`set_running`] runs before any task does, so the handler is
    /// never that first access.)
    static RUNNING: Cell<*const RunningTask> = const { Cell::new(ptr::null()) };
}

/// Records which task this thread runs from now on (null: the scheduler's own code). The task
/// layer calls it before each switch into a task (from the scheduler or directly from another
/// task) and after switching back to the scheduler.
///
/// # Safety
///
/// `task` is null, or points to a record that is not written and stays valid until the next
/// call of `set_running` on this thread (the fault handler may read it at any moment until
/// then).
#[doc(alias = "setg")]
#[inline]
pub(crate) unsafe fn set_running(task: *const RunningTask) {
    RUNNING.with(|r| r.set(task));
    // A signal fence: the handler on this thread must see the store before any fault that
    // follows.
    compiler_fence(Ordering::SeqCst);
}

/// The task this thread runs, as last recorded by [`set_running`].
#[cfg(test)]
fn running() -> Option<RunningTask> {
    let p = RUNNING.get();
    // SAFETY: `set_running`'s contract: a non-null pointer is valid until the next call.
    (!p.is_null()).then(|| unsafe { *p })
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
    let task = RUNNING.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: a non-null pointer is valid and unchanging until the next `set_running` on this
    // thread (its contract), and that thread is the one this handler interrupted.
    if let Some(task) = unsafe { task.as_ref() }
        && task.guard_contains(addr)
    {
        write_stderr(overflow_message(task).as_bytes());
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
    use crate::stack::page_size;
    use crate::stack::tests::{CHILD_ENV, run_child};
    use std::hint::black_box;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Output;

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
        // SAFETY: `cut` outlives the record: it is reset below, before `cut` goes.
        unsafe { set_running(&cut) };
        assert_eq!(running().map(|t| t.id()), Some(1));
        // SAFETY: null is always allowed.
        unsafe { set_running(ptr::null()) };
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
        let record = RunningTask::new(&stack, 7, Some("deep"));
        // SAFETY: `record` lives until the reset below (and the child exits there anyway).
        unsafe { set_running(&record) };
        // SAFETY: `task` is fresh on a live stack; `main` is ours to save into.
        unsafe { arch::switch(&mut main, &task, 0) };
        // SAFETY: null is always allowed.
        unsafe { set_running(ptr::null()) };
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
        assert_reported_overflow(&run_child(
            module_path!(),
            "overflow_by_recursion_is_reported",
            "recurse",
        ));
    }

    #[test]
    fn overflow_by_a_huge_frame_is_reported() {
        if std::env::var(CHILD_ENV).as_deref() == Ok("huge-frame") {
            child_runs_task(one_huge_frame);
        }
        assert_reported_overflow(&run_child(
            module_path!(),
            "overflow_by_a_huge_frame_is_reported",
            "huge-frame",
        ));
    }

    #[test]
    fn other_faults_reach_the_previous_handler() {
        if std::env::var(CHILD_ENV).as_deref() == Ok("elsewhere") {
            child_runs_task(fault_elsewhere);
        }
        let output =
            run_child(module_path!(), "other_faults_reach_the_previous_handler", "elsewhere");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGSEGV),
            "child: {:?}\nstderr:\n{stderr}",
            output.status
        );
        assert!(!stderr.contains("gort: task"), "stderr:\n{stderr}");
    }
}
