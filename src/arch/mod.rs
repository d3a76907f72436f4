//! The machine layer: switching between stacks, and the first frame of a new stack.
//!
//! Mirrors: `runtime/asm_amd64.s` and `runtime/asm_arm64.s` (Go 1.19) — `gogo`, `mcall`,
//! `gosave`; `runtime/sys_x86.go` and `runtime/sys_arm64.go` — `gostartcall`, `gostartcallfn`.
//!
//! ## The contract every backend provides
//!
//! | here                       | Go                                 | what it does                                              |
//! |----------------------------|------------------------------------|-----------------------------------------------------------|
//! | [`Context`]                | `gobuf` (`sp`, `pc`, `bp`, `ctxt`) | a suspended execution: one stack pointer; the rest is on that stack |
//! | `imp::init(top, entry)`    | `gostartcallfn`                    | build a fresh frame at `top` so the first switch into it calls `entry(arg)` |
//! | `imp::switch(from, to, arg)` | `gosave` + `gogo`; `mcall` when `to` is the scheduler | save into `from`, resume `to`, hand it `arg`; returns the `arg` of whoever resumes `from` |
//! | `imp::prefetch(addr)`      | —                                  | a cache hint for the line at `addr` (never faults)        |
//! | `imp::fp_control()`        | —                                  | debug builds only: the FP control word (MXCSR+x87 CW / FPCR), for the check in [`switch`] |
//!
//! [`init`] and [`switch`] below are the portable names; they only add debug checks. The backend
//! files draw their saved frame and their fresh frame as tables.
//!
//! Go's `gobuf` stores `pc`, `bp` and `g` in the struct and `gogo` jumps to `pc`. Here a
//! [`Context`] is just `sp`: the resume address and the callee-saved registers are pushed on the
//! suspended stack itself, so saving is a few pushes and a [`Context`] is one word that may be
//! moved freely while its execution is suspended.
//!
//! ## States of a context
//!
//! | state      | reached by                         | may next be                                         |
//! |------------|------------------------------------|-----------------------------------------------------|
//! | empty      | `Context::default()` (`sp == 0`)   | the `from` of a [`switch`]                          |
//! | fresh      | [`init`]                           | the `to` of exactly one [`switch`]: runs `entry(arg)` |
//! | suspended  | being the `from` of a [`switch`]   | the `to` of exactly one [`switch`]: that `switch` returns `arg` |
//! | running    | being the `to` of a [`switch`]     | nothing: it is the code executing now; its `Context` value is stale |
//!
//! ## Invariants
//!
//! - A context is resumed at most once per suspension, and never while it runs.
//! - Nothing unwinds through a switch: `entry` is `extern "C"` and returns `!`, so a panic that
//!   escapes it aborts (Rust 1.81+). The task layer catches panics at the entry (architecture.md,
//!   decision 6).
//! - The floating-point *control* state (x86_64 MXCSR and x87 control word, AArch64 FPCR) belongs
//!   to the thread, not to a context: it is not saved, as in Go's `gogo`. Debug builds check at
//!   every [`switch`] that it is unchanged when a context comes back.
//! - LLVM may keep a thread-local's address across a [`switch`] (rust-lessons §8.3). That is sound
//!   here only because a task never resumes on another thread once it has run (decision 1).
//!
//! There is one `cfg` switch, here: x86_64 (System V) and AArch64 (AAPCS64) on Linux. Any other
//! target stops the build with a message.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use x86_64 as imp;

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod aarch64;
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
use aarch64 as imp;

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
compile_error!(
    "gort: the context switch exists for x86_64 and aarch64 Linux only; see src/arch/mod.rs"
);

/// A suspended execution: only its stack pointer; the callee-saved registers and the resume
/// address are on that stack (the backend file draws the frame).
#[doc(alias = "gobuf")]
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// The suspended stack pointer, pointing at the saved frame; 0 while empty. `#[repr(C)]`
    /// with this single field puts it at offset 0, where the switch code reads and writes it.
    sp: usize,
}

impl Context {
    /// An empty context (`sp == 0`), usable in `const` items such as a thread-local.
    pub(crate) const fn empty() -> Context {
        Context { sp: 0 }
    }
}

impl Context {
    /// Starts loading the top of the suspended stack into the cache: the frame a [`switch`]
    /// into this context pops first. A scheduler that knows which task runs next calls it a
    /// task ahead, so the switch does not wait for memory (with a thousand tasks their stacks
    /// are rarely cached). Does nothing useful, and no harm, on an empty or running context.
    #[inline(always)]
    pub(crate) fn prefetch(&self) {
        imp::prefetch(self.sp);
    }
}

/// Prepares a fresh context at the top of a stack: the first [`switch`] into it calls
/// `entry(arg)`, with `arg` the value passed by that first switch, on a correctly aligned stack
/// whose backtrace ends at the backend's trampoline.
///
/// `entry` must never return (its type says so); when its work is done it switches away for the
/// last time and is never resumed.
///
/// # Safety
///
/// - `stack_top` is 16-byte aligned and is the top (highest address, exclusive) of a writable
///   region that stays mapped for as long as the returned context may run or be resumed; at
///   least a few KiB of it must lie below `stack_top` (a [`crate::stack::Stack`] has this).
/// - Nothing else uses that region while the context exists.
#[doc(alias = "gostartcall")]
#[doc(alias = "gostartcallfn")]
#[inline]
pub(crate) unsafe fn init(
    stack_top: *mut u8,
    entry: unsafe extern "C" fn(arg: usize) -> !,
) -> Context {
    debug_assert_eq!(stack_top as usize % 16, 0, "gort: stack top must be 16-byte aligned");
    // SAFETY: the caller upholds exactly `imp::init`'s contract, which is this function's.
    unsafe { imp::init(stack_top, entry) }
}

/// Saves the current execution into `*from`, resumes `*to` and hands it `arg`.
///
/// Returns the `arg` passed by whichever [`switch`] later resumes `from`. If `to` is fresh, its
/// `entry(arg)` starts instead.
///
/// # Safety
///
/// - `from` is valid for a one-word write; `to` is valid for a one-word read and holds a fresh
///   or suspended context (not empty, not the running one, not one already resumed since its
///   last suspension).
/// - The stack `to` runs on is still mapped, and so is the current stack for as long as `from`
///   may later be resumed.
/// - No Rust frame on the current stack may be unwound, moved or freed while it is suspended;
///   the values it borrows must stay valid until it is resumed.
#[doc(alias = "gogo")]
#[doc(alias = "mcall")]
#[doc(alias = "gosave")]
#[inline(always)]
pub(crate) unsafe fn switch(from: *mut Context, to: *const Context, arg: usize) -> usize {
    #[cfg(debug_assertions)]
    let fp_before = imp::fp_control();
    // SAFETY: `to` is readable (caller's contract); an empty context would jump to address 0.
    debug_assert_ne!(unsafe { (*to).sp }, 0, "gort: switch to an empty context");
    // SAFETY: the caller upholds exactly `imp::switch`'s contract, which is this function's.
    let ret = unsafe { imp::switch(from, to, arg) };
    #[cfg(debug_assertions)]
    debug_assert_eq!(
        imp::fp_control(),
        fp_before,
        "gort: the floating-point control word (rounding/FTZ/DAZ) changed while this context \
         was suspended: some task changed it and it is not saved per context (see src/arch)"
    );
    ret
}

#[cfg(test)]
mod tests {
    use super::imp::test_support::{SENTINEL_REGS, caller_sp, sentinel_switch};
    use super::{Context, init, switch};
    use crate::stack::{DEFAULT_STACK_SIZE, Stack};
    use std::hint::black_box;
    use std::time::Instant;

    /// A fixed set of contexts at stable addresses: tasks keep raw pointers to them, so they
    /// live in one heap block that is never moved or reborrowed while tasks run.
    struct Contexts {
        ptr: *mut Context,
        len: usize,
    }

    impl Contexts {
        fn new(len: usize) -> Contexts {
            let boxed: Box<[Context]> = (0..len).map(|_| Context::default()).collect();
            Contexts { ptr: Box::into_raw(boxed).cast::<Context>(), len }
        }

        fn get(&self, i: usize) -> *mut Context {
            assert!(i < self.len);
            self.ptr.wrapping_add(i)
        }

        /// Makes context `i` fresh on `stack`.
        fn start(&self, i: usize, stack: &Stack, entry: unsafe extern "C" fn(usize) -> !) {
            // SAFETY: the stack's top is 16-aligned and the test keeps the stack alive longer
            // than any switch into this context.
            let fresh = unsafe { init(stack.top(), entry) };
            // SAFETY: `get` returns an in-bounds pointer into our live allocation, and no task
            // runs on context `i` yet.
            unsafe { self.get(i).write(fresh) };
        }
    }

    impl Drop for Contexts {
        fn drop(&mut self) {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
            // SAFETY: `ptr`/`len` came from `Box::into_raw` of a boxed slice of this length.
            drop(unsafe { Box::from_raw(slice) });
        }
    }

    /// What a test task is given as its first `arg`: where to save itself, where to go back.
    #[derive(Clone, Copy)]
    struct Link {
        me: *mut Context,
        next: *const Context,
    }

    /// Reads the [`Link`] a task got as its first argument.
    ///
    /// # Safety
    ///
    /// `arg` is the address of a live `Link`.
    unsafe fn link(arg: usize) -> Link {
        // SAFETY: the caller passes the address of a live `Link`.
        unsafe { *(arg as *const Link) }
    }

    /// `switch` as a plain C function, for the assembly helpers to call.
    unsafe extern "C" fn switch_c(from: *mut Context, to: *const Context, arg: usize) -> usize {
        // SAFETY: forwarded; the helpers' callers uphold `switch`'s contract.
        unsafe { switch(from, to, arg) }
    }

    /// Replies `n + 1` to the `n`-th message (counting from 0), or `usize::MAX` when a message
    /// arrives out of order.
    unsafe extern "C" fn echo_task(arg: usize) -> ! {
        // SAFETY: every test that starts this task passes a `Link`'s address first.
        let link = unsafe { link(arg) };
        // SAFETY: the link's contexts are live; `next` is the suspended test thread.
        let mut got = unsafe { switch(link.me, link.next, 0) };
        let mut expected = 0;
        loop {
            let reply = if got == expected { got + 1 } else { usize::MAX };
            expected += 1;
            // SAFETY: as above.
            got = unsafe { switch(link.me, link.next, reply) };
        }
    }

    #[test]
    fn ping_pong_a_million_round_trips() {
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, echo_task);
        let link = Link { me: ctx.get(1), next: ctx.get(0) };
        // SAFETY: context 1 is fresh on a live stack; context 0 is ours to save into.
        assert_eq!(unsafe { switch(ctx.get(0), ctx.get(1), &raw const link as usize) }, 0);
        for i in 0..1_000_000 {
            // SAFETY: context 1 is suspended in `echo_task`, which only switches back to us.
            let reply = unsafe { switch(ctx.get(0), ctx.get(1), i) };
            assert_eq!(reply, i + 1, "round trip {i}");
        }
    }

    /// A member of a ring: adds `ADD` and passes the value on to the next context.
    unsafe extern "C" fn ring_task<const ADD: usize>(arg: usize) -> ! {
        // SAFETY: the test passes a `Link`'s address first.
        let link = unsafe { link(arg) };
        // SAFETY: the link's contexts are live; `next` is suspended or fresh.
        let mut value = unsafe { switch(link.me, link.next, 0) };
        loop {
            // SAFETY: as above.
            value = unsafe { switch(link.me, link.next, value + ADD) };
        }
    }

    #[test]
    fn three_contexts_in_a_ring() {
        // main (0) → B (1) → C (2) → main: each is resumed by the one before it.
        let stacks =
            [Stack::new(DEFAULT_STACK_SIZE).unwrap(), Stack::new(DEFAULT_STACK_SIZE).unwrap()];
        let ctx = Contexts::new(3);
        ctx.start(1, &stacks[0], ring_task::<1>);
        ctx.start(2, &stacks[1], ring_task::<1000>);
        let b = Link { me: ctx.get(1), next: ctx.get(2) };
        let c = Link { me: ctx.get(2), next: ctx.get(0) };
        // Start C first: its first switch goes straight back to us.
        // SAFETY: context 2 is fresh on a live stack.
        assert_eq!(unsafe { switch(ctx.get(0), ctx.get(2), &raw const c as usize) }, 0);
        // Then B: its first switch resumes C, which adds 1000 and resumes us.
        // SAFETY: context 1 is fresh on a live stack; C is suspended in its first switch.
        assert_eq!(unsafe { switch(ctx.get(0), ctx.get(1), &raw const b as usize) }, 1000);
        for i in 0..100_000 {
            // SAFETY: B is suspended in its loop and resumes C, which resumes us.
            let v = unsafe { switch(ctx.get(0), ctx.get(1), i) };
            assert_eq!(v, i + 1 + 1000);
        }
    }

    /// The registers [`sentinel_switch`] reports, as values.
    type Sentinels = [usize; SENTINEL_REGS.len()];

    /// Lists the registers that do not hold `seed + 1 ..` after a sentinel switch.
    fn lost_registers(seed: usize, seen: &Sentinels) -> Vec<String> {
        (0..seen.len())
            .filter(|&i| seen[i] != seed + i + 1)
            .map(|i| format!("{} = {:#x}, expected {:#x}", SENTINEL_REGS[i], seen[i], seed + i + 1))
            .collect()
    }

    /// Switches back and forth with every callee-saved register set to sentinels (seed 0x2000);
    /// aborts the process if its own sentinels do not come back.
    unsafe extern "C" fn sentinel_task(arg: usize) -> ! {
        // SAFETY: the test passes a `Link`'s address first.
        let link = unsafe { link(arg) };
        let mut seen: Sentinels = [0; SENTINEL_REGS.len()];
        loop {
            // SAFETY: the link's contexts are live; `switch_c` upholds the helper's contract and
            // `seen` is writable.
            unsafe { sentinel_switch(link.me, link.next, 0, 0x2000, switch_c, &raw mut seen) };
            if !lost_registers(0x2000, &seen).is_empty() {
                std::process::abort();
            }
        }
    }

    #[test]
    fn callee_saved_registers_survive() {
        // Both sides hold sentinels in every callee-saved register across each switch (x86_64:
        // rbx, rbp, r12-r15; AArch64: x19-x29 and d8-d15), so a register the switch fails to
        // restore shows up with the other side's value.
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, sentinel_task);
        let link = Link { me: ctx.get(1), next: ctx.get(0) };
        let mut arg = &raw const link as usize;
        let mut seen: Sentinels = [0; SENTINEL_REGS.len()];
        for round in 0..10_000 {
            // SAFETY: context 1 is fresh (first round) or suspended in `sentinel_task`; `seen`
            // is writable.
            unsafe {
                sentinel_switch(ctx.get(0), ctx.get(1), arg, 0x1000, switch_c, &raw mut seen)
            };
            let lost = lost_registers(0x1000, &seen);
            assert!(lost.is_empty(), "round {round}: callee-saved registers changed: {lost:?}");
            arg = 0;
        }
    }

    #[test]
    fn locals_survive_while_the_other_side_scrambles_registers() {
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, sentinel_task);
        let link = Link { me: ctx.get(1), next: ctx.get(0) };
        // SAFETY: context 1 is fresh on a live stack.
        unsafe { switch(ctx.get(0), ctx.get(1), &raw const link as usize) };
        let seed = black_box(7_u64);
        let (mut a, mut b, mut c, mut d) = (seed, seed * 3, seed * 5, seed * 7);
        let (mut e, mut f, mut g, mut h) = (seed * 11, seed * 13, seed * 17, seed * 19);
        let (mut x, mut y, mut z, mut w) =
            (seed as f64 * 0.5, seed as f64 * 1.25, 3.75_f64, -2.5_f64);
        let (mut p, mut q, mut r, mut s) = (1.0e10_f64, -1.0e-10_f64, 42.0_f64, seed as f64);
        for round in 0..1000_u64 {
            let sum_before = a ^ b ^ c ^ d ^ e ^ f ^ g ^ h;
            let fsum_before = x + y * z - w + p * q + r / s;
            // SAFETY: context 1 is suspended in `sentinel_task`, which only switches back.
            unsafe { switch(ctx.get(0), ctx.get(1), 0) };
            assert_eq!(a ^ b ^ c ^ d ^ e ^ f ^ g ^ h, sum_before, "round {round}");
            assert_eq!(x + y * z - w + p * q + r / s, fsum_before, "round {round}");
            (a, b, c, d) = (b.wrapping_add(round), c ^ a, d.rotate_left(3), a.wrapping_mul(3));
            (e, f, g, h) = (f ^ h, g.wrapping_sub(e), h.wrapping_add(1), e.rotate_right(7));
            (x, y, z, w) = (y * 0.5 + 1.0, z + x, w * 0.25 - 1.0, x - 0.125);
            (p, q, r, s) = (q + 1.0, r * 0.5, s + 2.0, p * 0.001 + 1.0);
        }
        black_box((a, b, c, d, e, f, g, h, x, y, z, w, p, q, r, s));
    }

    /// A local the compiler must place at a 16-aligned address (if `sp` is aligned).
    #[repr(align(16))]
    struct Aligned16 {
        _bytes: [u8; 16],
    }

    /// Reports whether its stack is aligned as the ABI requires: bit 0 for the stack pointer at
    /// a call site, bit 1 for the address of a 16-aligned local.
    unsafe extern "C" fn alignment_task(arg: usize) -> ! {
        // SAFETY: the test passes a `Link`'s address first.
        let link = unsafe { link(arg) };
        let local = Aligned16 { _bytes: [0; 16] };
        let sp_ok = caller_sp().is_multiple_of(16);
        let local_ok = (black_box(&raw const local) as usize).is_multiple_of(16);
        let report = usize::from(sp_ok) | usize::from(local_ok) << 1;
        loop {
            // SAFETY: the link's contexts are live.
            unsafe { switch(link.me, link.next, report) };
        }
    }

    #[test]
    fn a_fresh_stack_is_16_byte_aligned_at_entry() {
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, alignment_task);
        let link = Link { me: ctx.get(1), next: ctx.get(0) };
        // SAFETY: context 1 is fresh on a live stack.
        let report = unsafe { switch(ctx.get(0), ctx.get(1), &raw const link as usize) };
        assert_eq!(report, 0b11, "bit 0: sp at a call site, bit 1: a 16-aligned local");
    }

    /// What `backtrace_task` is given: its link and where to put the backtrace text.
    struct BacktraceJob {
        link: Link,
        out: String,
    }

    unsafe extern "C" fn backtrace_task(arg: usize) -> ! {
        let job = arg as *mut BacktraceJob;
        let text = std::backtrace::Backtrace::force_capture().to_string();
        // SAFETY: the test passes a live `BacktraceJob` and does not touch it until we switch
        // back.
        unsafe { (*job).out = text };
        // SAFETY: as above; read the link by value before switching.
        let link = unsafe { (*job).link };
        loop {
            // SAFETY: the link's contexts are live.
            unsafe { switch(link.me, link.next, 1) };
        }
    }

    #[test]
    fn a_backtrace_ends_at_the_trampoline() {
        // Symbolizing needs more stack than a task usually gets.
        let stack = Stack::new(4 << 20).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, backtrace_task);
        let mut job =
            BacktraceJob { link: Link { me: ctx.get(1), next: ctx.get(0) }, out: String::new() };
        // SAFETY: context 1 is fresh on a live stack; `job` outlives the task's use of it.
        unsafe { switch(ctx.get(0), ctx.get(1), &raw mut job as usize) };
        let trace = &job.out;
        // Frame lines look like "  12: symbol"; source lines ("at file:line") do not.
        let frames: Vec<&str> = trace
            .lines()
            .map(str::trim_start)
            .filter(|line| line.split_once(": ").is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
            .collect();
        assert!(frames.iter().any(|f| f.contains("backtrace_task")), "{trace}");
        // The unwinder stops at the trampoline (its return address is `.cfi_undefined`)
        // instead of wandering off into whatever lies above the stack top.
        assert!(frames.last().is_some_and(|f| f.contains("task_trampoline")), "{trace}");
    }

    /// A release-mode figure for the report (`cargo test --release -p gort --lib -- --nocapture
    /// switch_round_trip`); it only prints.
    #[test]
    fn switch_round_trip_timing() {
        let stack = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let ctx = Contexts::new(2);
        ctx.start(1, &stack, echo_task);
        let link = Link { me: ctx.get(1), next: ctx.get(0) };
        // SAFETY: context 1 is fresh on a live stack.
        unsafe { switch(ctx.get(0), ctx.get(1), &raw const link as usize) };
        const N: usize = 2_000_000;
        let mut best = f64::MAX;
        let mut i = 0;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..N {
                // SAFETY: context 1 is suspended in `echo_task`.
                i = unsafe { switch(ctx.get(0), ctx.get(1), i) };
            }
            best = best.min(start.elapsed().as_nanos() as f64 / N as f64);
        }
        assert_eq!(i, 5 * N);
        let build =
            if cfg!(debug_assertions) { "debug build: not representative" } else { "release" };
        println!("gort: switch round trip (A→B→A), best of 5 x {N}: {best:.2} ns ({build})");
    }
}
