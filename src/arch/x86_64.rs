//! Mirrors: `runtime/asm_amd64.s` (Go 1.19) — `gogo`, `mcall`, `gosave`; `runtime/sys_x86.go` —
//! `gostartcall`.
//!
//! The x86_64 System V backend of the contract in `arch/mod.rs`: an inline-`asm!` switch, the
//! frame [`init`] builds on a new stack, and the naked [`task_trampoline`] that starts it.
//!
//! ## Why inline `asm!` with `clobber_abi`, and `jmp` rather than `ret`
//!
//! Measured on this machine (2 vCPU AMD EPYC, release, 20M round trips, best of 5):
//!
//! | variant                                                        | A→B→A round trip |
//! |----------------------------------------------------------------|------------------|
//! | naked `extern "C"` fn, push all 6 callee-saved, `ret` to the other side | 25–27 ns |
//! | same, but `pop rcx; jmp rcx` instead of `ret`                  | 11–12 ns         |
//! | inline `asm!` + `clobber_abi("sysv64")`, `pop rcx; jmp rcx` (this file) | 3.4 ns  |
//!
//! A `ret` that returns to a different stack than the `call` came from misses the CPU's return
//! stack buffer every time; an indirect `jmp` is predicted from its own history, and with no
//! `call` at all the return stack buffer stays balanced for the frames that return later. Inline
//! `asm!` adds the corosensei technique: declaring the callee-saved registers clobbered makes LLVM
//! save only those that are live at each switch site, in the caller's own frame, instead of all
//! six every time. The price is that the switch is inlined at every call site (there are few: the
//! scheduler's, `suspend`, and the direct yield, which `gort::yield_now` inlines into each of its
//! callers so that no `ret` crosses that switch either) and that the saved frame proper holds
//! only what LLVM cannot save for us.
//!
//! ## What is saved, and by whom
//!
//! | register                  | SysV ABI                        | here                                               |
//! |---------------------------|---------------------------------|----------------------------------------------------|
//! | rsp                       | callee-saved                    | stored in `Context.sp`                             |
//! | rip                       | —                               | the resume address (label `2:`) is pushed          |
//! | rbx, rbp                  | callee-saved; reserved by LLVM, so not allowed as asm operands | pushed and popped by the switch |
//! | r12, r13, r14, r15        | callee-saved                    | declared `lateout`: LLVM spills the live ones around the switch |
//! | rax, rcx, rdx, rsi, rdi, r8–r11, xmm0–15, x87/MMX stack, k0–7 | caller-saved | `clobber_abi("sysv64")`   |
//! | MXCSR control bits, x87 control word | callee-saved         | **not saved** (see below)                          |
//! | DF (direction flag)       | clear on call and return        | never set                                          |
//!
//! MXCSR (SSE rounding, flush-to-zero, denormals-are-zero, exception masks) and the x87 control
//! word are not saved, like Go's `gogo` and unlike Boost.Context. Saving them would add a
//! `stmxcsr`/`fnstcw` pair and a slow `ldmxcsr`/`fldcw` pair to every switch. It is acceptable
//! because every thread starts with the ABI default (MXCSR `0x1F80`), stable Rust has no API to
//! change these modes, and the runtime never does; a task that changes them through `asm!` or FFI
//! must restore them before it parks, or the mode leaks into whatever runs next on that worker.
//! Debug builds check this at every switch ([`fp_control`], compared in `arch::switch`).
//!
//! ## The saved frame (a suspended context; `Context.sp` points at offset 0)
//!
//! ```text
//!  offset  contents
//!  +24     ...  the caller's frame: LLVM's spills of live r12-r15 and other values
//!  +16     rip  resume address: the instruction after the switch (label `2:`)
//!  +8      rbp  (with +16, the shape of a frame-pointer record {saved rbp, return address})
//!  +0      rbx            <- Context.sp
//! ```
//!
//! The inline `asm!` starts with `rsp` 16-aligned (it may push: no `nostack`), so a saved
//! `Context.sp` is 8 mod 16.
//!
//! ## The first frame of a new stack (built by [`init`]; `T` is the 16-aligned stack top)
//!
//! ```text
//!  address  contents
//!  T-8      0                 end marker: no return address above the trampoline
//!  T-16     0                 <- rsp when the trampoline starts (16-aligned)
//!  T-24     task_trampoline   popped as "rip" by the first switch into this context
//!  T-32     0                 popped as rbp: the frame-pointer chain ends here
//!  T-40     entry             popped as rbx          <- Context.sp
//! ```
//!
//! The first switch pops rbx = `entry`, rbp = 0 and jumps to [`task_trampoline`] with
//! rsp = T-16 and the switch's `arg` in rdx. The trampoline moves `arg` to rdi and `call`s
//! `entry`, so `entry` starts with rsp = T-24: `rsp + 8` is 16-aligned, exactly as after a normal
//! `call`. Backtraces end cleanly (rust-lessons §2.5, option B): the trampoline's CFI says the
//! return address is undefined (`.cfi_undefined rip`, as glibc's `clone` and `_start` do), and
//! rbp is 0 for frame-pointer walkers.
//!
//! Not supported: CET shadow stacks and IBT (a Rust binary does not opt in, so the kernel does not
//! enable them); unwinding while a signal interrupts the ten switch instructions (their pushes
//! are invisible to the enclosing function's CFI, as in corosensei).

use core::arch::{asm, naked_asm};

use super::Context;

/// Words of the frame [`init`] writes below the stack top (see the table above).
const FRESH_FRAME_WORDS: usize = 5;

/// Builds the fresh frame drawn above and returns a context pointing at it.
///
/// # Safety
///
/// `stack_top` is 16-aligned and the 40 bytes below it are writable and stay reserved for the
/// new context (the contract of `arch::init`).
#[inline]
pub(super) unsafe fn init(stack_top: *mut u8, entry: unsafe extern "C" fn(usize) -> !) -> Context {
    let frame: [usize; FRESH_FRAME_WORDS] = [
        entry as usize,                        // rbx: what the trampoline calls
        0,                                     // rbp: ends the frame-pointer chain
        task_trampoline as *const () as usize, // rip: where the first switch jumps
        0,                                     // padding: rsp = T-16 at the trampoline
        0,                                     // end marker
    ];
    let sp = stack_top.wrapping_sub(FRESH_FRAME_WORDS * size_of::<usize>());
    // SAFETY: the caller guarantees these 40 bytes below the aligned top are writable and ours;
    // `sp` is 8-aligned because `stack_top` is 16-aligned.
    unsafe { sp.cast::<[usize; FRESH_FRAME_WORDS]>().write(frame) };
    Context { sp: sp as usize }
}

/// Saves the running execution into `*from` and resumes `*to`, which receives `arg`; returns the
/// `arg` of the switch that later resumes `from`.
///
/// # Safety
///
/// The contract of `arch::switch`: `from` writable, `to` a fresh or suspended context whose
/// stack is mapped, and the current stack kept intact while suspended.
#[inline(always)]
pub(super) unsafe fn switch(from: *mut Context, to: *const Context, arg: usize) -> usize {
    let ret: usize;
    // SAFETY: the asm saves exactly what the SysV ABI requires a call to preserve (see the table
    // in the module doc) and restores it from `to`'s frame, whose validity the caller
    // guarantees; execution continues at `2:` only when another switch resumes `from`, with that
    // switch's registers state except the ones declared below.
    unsafe {
        asm!(
            // Push where this context resumes: the `2:` label at the end.
            "lea rax, [rip + 2f]",
            "push rax",
            // rbx and rbp are reserved by LLVM (they cannot be operands), so save them by hand.
            "push rbp",
            "push rbx",
            // from.sp = rsp (Context is #[repr(C)] { sp }: offset 0).
            "mov [rdi], rsp",
            // rsp = to.sp: from here on we are on the other stack.
            "mov rsp, [rsi]",
            // Restore its rbx and rbp and jump to its resume address. `jmp`, not `ret`: see the
            // module doc (the return stack buffer would mispredict every time).
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            // A later switch into `from` lands here with the other side's arg in rdx.
            "2:",
            // rdi and rsi carry the two contexts in; on resumption they hold whatever the
            // resuming switch had there, so they are clobbered.
            inout("rdi") from => _,
            inout("rsi") to => _,
            // rdx carries `arg` out and, on resumption, the resumer's `arg` in. A fresh
            // context's trampoline reads it from rdx too.
            inout("rdx") arg => ret,
            // The callee-saved registers LLVM may use as operands: marking them clobbered makes
            // LLVM save the live ones in this function's frame. rax, rcx and every other
            // caller-saved register are covered by clobber_abi.
            lateout("r12") _,
            lateout("r13") _,
            lateout("r14") _,
            lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    ret
}

/// The first code a new context runs: calls `entry(arg)` with `entry` in rbx and `arg` in rdx,
/// and marks itself as the outermost frame for unwinders.
///
/// Never called from Rust; [`init`] stores its address as the fresh frame's resume address.
#[doc(alias = "goexit")]
#[unsafe(naked)]
unsafe extern "C" fn task_trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        // There is no caller: unwinders and debuggers stop here.
        ".cfi_undefined rip",
        // Frame-pointer walkers stop at rbp = 0 (already 0 from the fresh frame; be explicit).
        "xor ebp, ebp",
        // entry(arg): the first argument goes in rdi. rsp is 16-aligned here, so after the
        // call pushes its return address `entry` sees the ABI's rsp + 8 ≡ 0 (mod 16).
        "mov rdi, rdx",
        "call rbx",
        // `entry` returns `!`: getting here is a bug, so trap.
        "ud2",
        ".cfi_endproc",
    )
}

/// Asks the cache for the line at `addr` (`prefetcht0`). A hint: it never faults, whatever
/// the address.
#[inline(always)]
pub(super) fn prefetch(addr: usize) {
    // SAFETY: `prefetcht0` reads nothing architecturally and cannot fault, even on an unmapped
    // or null address; it changes no register or flag.
    unsafe { asm!("prefetcht0 [{}]", in(reg) addr, options(nostack, readonly, preserves_flags)) };
}

/// The FP control state that is *not* saved per context: MXCSR's control bits (its low six
/// bits are sticky exception flags, not control, and are masked off) and the x87 control word.
#[cfg(debug_assertions)]
#[inline]
pub(super) fn fp_control() -> u32 {
    let mut mxcsr: u32 = 0;
    let mut x87_cw: u16 = 0;
    // SAFETY: `stmxcsr` stores 4 bytes into the local it is given and changes nothing else.
    unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut mxcsr, options(nostack, preserves_flags)) };
    // SAFETY: `fnstcw` stores 2 bytes into the local it is given and changes nothing else.
    unsafe { asm!("fnstcw [{}]", in(reg) &raw mut x87_cw, options(nostack, preserves_flags)) };
    (mxcsr & !0x3F) | u32::from(x87_cw) << 16
}

/// Assembly helpers for the portable tests in `arch/mod.rs`.
#[cfg(test)]
pub(super) mod test_support {
    use super::super::Context;
    use core::arch::naked_asm;

    /// The registers [`sentinel_switch`] fills with sentinels, in the order it reports them.
    pub(crate) const SENTINEL_REGS: [&str; 6] = ["rbx", "rbp", "r12", "r13", "r14", "r15"];

    /// Calls `switch_fn(from, to, arg)` with every callee-saved register (rbx, rbp, r12–r15) set
    /// to `seed + 1 ..= seed + 6`, then stores what those registers hold after the call into
    /// `*out` (in [`SENTINEL_REGS`] order) and returns what `switch_fn` returned. The caller's
    /// own values of those registers are saved and restored around all this.
    ///
    /// # Safety
    ///
    /// `switch_fn(from, to, arg)` must be safe to call (the contract of `arch::switch`), and
    /// `out` must be writable.
    #[unsafe(naked)]
    pub(crate) unsafe extern "C" fn sentinel_switch(
        from: *mut Context,
        to: *const Context,
        arg: usize,
        seed: usize,
        switch_fn: unsafe extern "C" fn(*mut Context, *const Context, usize) -> usize,
        out: *mut [usize; 6],
    ) -> usize {
        naked_asm!(
            // Save the caller's callee-saved registers. rsp is 8 mod 16 on entry and six pushes
            // keep it so; pushing `out` (r9) aligns it for the call.
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push r9",
            "lea rbx, [rcx + 1]",
            "lea rbp, [rcx + 2]",
            "lea r12, [rcx + 3]",
            "lea r13, [rcx + 4]",
            "lea r14, [rcx + 5]",
            "lea r15, [rcx + 6]",
            // rdi, rsi, rdx are still from, to, arg; rax will be switch_fn's result.
            "call r8",
            "mov r9, [rsp]",
            "mov [r9], rbx",
            "mov [r9 + 8], rbp",
            "mov [r9 + 16], r12",
            "mov [r9 + 24], r13",
            "mov [r9 + 32], r14",
            "mov [r9 + 40], r15",
            "pop r9",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
        )
    }

    /// The caller's stack pointer at its call instruction: 16-aligned in a correctly aligned
    /// frame.
    #[unsafe(naked)]
    pub(crate) extern "C" fn caller_sp() -> usize {
        naked_asm!("lea rax, [rsp + 8]", "ret")
    }
}
