//! Mirrors: `runtime/asm_arm64.s` (Go 1.19) — `gogo`, `mcall`, `gosave`; `runtime/sys_arm64.go` —
//! `gostartcall`.
//!
//! The AArch64 (AAPCS64, Linux) backend of the contract in `arch/mod.rs`: an inline-`asm!`
//! switch, the frame [`init`] builds on a new stack, and the naked [`task_trampoline`] that
//! starts it. The choices are the x86_64 backend's, for the same reasons (see `x86_64.rs`):
//! `clobber_abi` lets LLVM save only the live callee-saved registers, and the switch ends with
//! `br` to the saved resume address, never `ret` to another stack's link register, so the
//! return-address predictor stays balanced.
//!
//! ## What is saved, and by whom
//!
//! | register            | AAPCS64                                  | here                                          |
//! |---------------------|------------------------------------------|-----------------------------------------------|
//! | sp                  | callee-saved, 16-aligned whenever used   | stored in `Context.sp`                        |
//! | pc                  | —                                        | the resume address (label `2:`) is stored     |
//! | x19                 | callee-saved; LLVM's base pointer, not allowed as an asm operand | stored and loaded by the switch |
//! | x29 (fp)            | callee-saved; reserved by LLVM           | stored and loaded by the switch               |
//! | x20–x28             | callee-saved                             | declared `lateout`: LLVM spills the live ones |
//! | d8–d15 (low 64 bits of v8–v15) | callee-saved                  | `clobber_abi("C")` lists v8–v15 as clobbered, so LLVM spills the live ones |
//! | x30 (lr), x0–x17, v0–v7, v16–v31 | caller-saved                | `clobber_abi("C")`                            |
//! | x18                 | platform register                        | never touched                                 |
//! | FPCR                | control bits are callee-saved            | **not saved** (see below)                     |
//!
//! FPCR (rounding mode, flush-to-zero, default-NaN) is not saved, like Go's `gogo`: every thread
//! starts with FPCR = 0, stable Rust cannot change it, and the runtime never does; a task that
//! changes it through `asm!` or FFI must restore it before it parks. Debug builds check this at
//! every switch ([`fp_control`], compared in `arch::switch`). FPSR holds only sticky status
//! flags and needs no saving.
//!
//! ## The saved frame (a suspended context; `Context.sp` points at offset 0)
//!
//! ```text
//!  offset  contents
//!  +32     ...  the caller's frame: LLVM's spills of live x20-x28, d8-d15, other values
//!  +24     pc   resume address: the instruction after the switch (label `2:`)
//!  +16     x29  (with +24, the shape of an AArch64 frame record {fp, lr})
//!  +8      0    padding: sp stays 16-aligned
//!  +0      x19            <- Context.sp
//! ```
//!
//! ## The first frame of a new stack (built by [`init`]; `T` is the 16-aligned stack top)
//!
//! ```text
//!  address  contents
//!  T-8      task_trampoline   loaded as "pc" by the first switch into this context
//!  T-16     0                 loaded as x29: the frame-record chain ends here
//!  T-24     0                 padding
//!  T-32     entry             loaded as x19          <- Context.sp
//! ```
//!
//! The first switch loads x19 = `entry`, x29 = 0, pops the 32 bytes (sp = T, 16-aligned) and
//! branches to [`task_trampoline`] with the switch's `arg` in x2. The trampoline moves `arg` to x0
//! and `blr`s `entry`. Backtraces end cleanly (rust-lessons §2.5, option B): the trampoline's CFI
//! marks the return address undefined (`.cfi_undefined x30`) and x29 is 0 for frame-record
//! walkers.
//!
//! Not supported: pointer authentication and BTI (`-Z branch-protection` is nightly-only, and
//! this workspace does not use it; with BTI the resume label would need a `bti j` landing pad).

use core::arch::{asm, naked_asm};

use super::Context;

/// Words of the frame [`init`] writes below the stack top (see the table above).
const FRESH_FRAME_WORDS: usize = 4;

/// Builds the fresh frame drawn above and returns a context pointing at it.
///
/// # Safety
///
/// `stack_top` is 16-aligned and the 32 bytes below it are writable and stay reserved for the
/// new context (the contract of `arch::init`).
#[inline]
pub(super) unsafe fn init(stack_top: *mut u8, entry: unsafe extern "C" fn(usize) -> !) -> Context {
    let frame: [usize; FRESH_FRAME_WORDS] = [
        entry as usize,                        // x19: what the trampoline calls
        0,                                     // padding
        0,                                     // x29: ends the frame-record chain
        task_trampoline as *const () as usize, // pc: where the first switch branches
    ];
    let sp = stack_top.wrapping_sub(FRESH_FRAME_WORDS * size_of::<usize>());
    // SAFETY: the caller guarantees these 32 bytes below the aligned top are writable and ours;
    // `sp` is 16-aligned because `stack_top` is.
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
    // SAFETY: the asm saves exactly what AAPCS64 requires a call to preserve (see the table in
    // the module doc) and restores it from `to`'s frame, whose validity the caller guarantees;
    // execution continues at `2:` only when another switch resumes `from`.
    unsafe {
        asm!(
            // x9 = where this context resumes: the `2:` label at the end.
            "adr x9, 2f",
            // Store x19, x29 and the resume address in a 32-byte frame (sp stays 16-aligned).
            "sub sp, sp, #32",
            "str x19, [sp]",
            "stp x29, x9, [sp, #16]",
            // from.sp = sp (Context is #[repr(C)] { sp }: offset 0).
            "mov x10, sp",
            "str x10, [x0]",
            // sp = to.sp: from here on we are on the other stack.
            "ldr x10, [x1]",
            "mov sp, x10",
            // Load its x19, x29 and resume address, drop the frame and branch there.
            "ldr x19, [sp]",
            "ldp x29, x9, [sp, #16]",
            "add sp, sp, #32",
            "br x9",
            // A later switch into `from` lands here with the other side's arg in x2.
            "2:",
            // x0 and x1 carry the two contexts in; on resumption they hold whatever the
            // resuming switch had there, so they are clobbered.
            inout("x0") from => _,
            inout("x1") to => _,
            // x2 carries `arg` out and, on resumption, the resumer's `arg` in. A fresh context's
            // trampoline reads it from x2 too.
            inout("x2") arg => ret,
            // The callee-saved registers LLVM may use as operands: marking them clobbered makes
            // LLVM save the live ones in this function's frame. x9, x10, x30 and v0-v31 are
            // covered by clobber_abi.
            lateout("x20") _,
            lateout("x21") _,
            lateout("x22") _,
            lateout("x23") _,
            lateout("x24") _,
            lateout("x25") _,
            lateout("x26") _,
            lateout("x27") _,
            lateout("x28") _,
            clobber_abi("C"),
        );
    }
    ret
}

/// The first code a new context runs: calls `entry(arg)` with `entry` in x19 and `arg` in x2,
/// and marks itself as the outermost frame for unwinders.
///
/// Never called from Rust; [`init`] stores its address as the fresh frame's resume address.
#[doc(alias = "goexit")]
#[unsafe(naked)]
unsafe extern "C" fn task_trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        // There is no caller: unwinders and debuggers stop here.
        ".cfi_undefined x30",
        // Frame-record walkers stop at x29 = 0 (already 0 from the fresh frame; be explicit),
        // and there is no return address.
        "mov x29, xzr",
        "mov x30, xzr",
        // entry(arg): the first argument goes in x0; sp is 16-aligned (sp = stack top).
        "mov x0, x2",
        "blr x19",
        // `entry` returns `!`: getting here is a bug, so trap.
        "brk #0x1",
        ".cfi_endproc",
    )
}

/// Asks the cache for the line at `addr` (`prfm pldl1keep`). A hint: it never faults,
/// whatever the address.
#[inline(always)]
pub(super) fn prefetch(addr: usize) {
    // SAFETY: `prfm` is a hint: it reads nothing architecturally and does not fault, even on an
    // unmapped or null address; it changes no register or flag.
    unsafe {
        asm!("prfm pldl1keep, [{}]", in(reg) addr, options(nostack, readonly, preserves_flags))
    };
}

/// The FP control state that is *not* saved per context: FPCR.
#[cfg(debug_assertions)]
#[inline]
pub(super) fn fp_control() -> u32 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
    // FPCR's defined bits all fit in the low 32 (the upper 32 are reserved, read as zero).
    fpcr as u32
}

/// Assembly helpers for the portable tests in `arch/mod.rs`.
#[cfg(test)]
pub(super) mod test_support {
    use super::super::Context;
    use core::arch::naked_asm;

    /// The registers [`sentinel_switch`] fills with sentinels, in the order it reports them.
    pub(crate) const SENTINEL_REGS: [&str; 19] = [
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "d8", "d9",
        "d10", "d11", "d12", "d13", "d14", "d15",
    ];

    /// Calls `switch_fn(from, to, arg)` with every callee-saved register (x19–x29, d8–d15) set to
    /// `seed + 1 ..= seed + 19`, then stores what those registers hold after the call into
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
        out: *mut [usize; 19],
    ) -> usize {
        naked_asm!(
            // Save x29, x30, x19-x28, d8-d15 and `out` (x5) in a 176-byte frame.
            "stp x29, x30, [sp, #-176]!",
            "stp x19, x20, [sp, #16]",
            "stp x21, x22, [sp, #32]",
            "stp x23, x24, [sp, #48]",
            "stp x25, x26, [sp, #64]",
            "stp x27, x28, [sp, #80]",
            "stp d8, d9, [sp, #96]",
            "stp d10, d11, [sp, #112]",
            "stp d12, d13, [sp, #128]",
            "stp d14, d15, [sp, #144]",
            "str x5, [sp, #160]",
            "add x19, x3, #1",
            "add x20, x3, #2",
            "add x21, x3, #3",
            "add x22, x3, #4",
            "add x23, x3, #5",
            "add x24, x3, #6",
            "add x25, x3, #7",
            "add x26, x3, #8",
            "add x27, x3, #9",
            "add x28, x3, #10",
            "add x29, x3, #11",
            "add x9, x3, #12",
            "fmov d8, x9",
            "add x9, x3, #13",
            "fmov d9, x9",
            "add x9, x3, #14",
            "fmov d10, x9",
            "add x9, x3, #15",
            "fmov d11, x9",
            "add x9, x3, #16",
            "fmov d12, x9",
            "add x9, x3, #17",
            "fmov d13, x9",
            "add x9, x3, #18",
            "fmov d14, x9",
            "add x9, x3, #19",
            "fmov d15, x9",
            // x0, x1, x2 are still from, to, arg; x0 will be switch_fn's result.
            "blr x4",
            "ldr x5, [sp, #160]",
            "stp x19, x20, [x5]",
            "stp x21, x22, [x5, #16]",
            "stp x23, x24, [x5, #32]",
            "stp x25, x26, [x5, #48]",
            "stp x27, x28, [x5, #64]",
            "str x29, [x5, #80]",
            "stp d8, d9, [x5, #88]",
            "stp d10, d11, [x5, #104]",
            "stp d12, d13, [x5, #120]",
            "stp d14, d15, [x5, #136]",
            "ldp d14, d15, [sp, #144]",
            "ldp d12, d13, [sp, #128]",
            "ldp d10, d11, [sp, #112]",
            "ldp d8, d9, [sp, #96]",
            "ldp x27, x28, [sp, #80]",
            "ldp x25, x26, [sp, #64]",
            "ldp x23, x24, [sp, #48]",
            "ldp x21, x22, [sp, #32]",
            "ldp x19, x20, [sp, #16]",
            "ldp x29, x30, [sp], #176",
            "ret",
        )
    }

    /// The caller's stack pointer: always 16-aligned when the stack is correctly aligned.
    #[unsafe(naked)]
    pub(crate) extern "C" fn caller_sp() -> usize {
        naked_asm!("mov x0, sp", "ret")
    }
}
