//! A global allocator that counts allocations while switched on: how the tests and benches
//! show that the netpoller's steady state allocates nothing.
//!
//! Outside the `unsafe` fence on purpose (`.ci/run` names this file): `GlobalAlloc` is an
//! `unsafe trait`, and this shim only forwards to `System`. Include it with
//! `#[path = ".../counting_alloc.rs"] mod counting_alloc;` and install it with
//! `#[global_allocator] static A: counting_alloc::Counting = counting_alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

/// The allocator: `System`, plus a counter.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// Starts or stops counting.
pub fn counting(on: bool) {
    ON.store(on, SeqCst);
}

/// Allocations (and reallocations) counted so far.
pub fn allocations() -> u64 {
    ALLOCS.load(SeqCst)
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
