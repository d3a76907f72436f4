//! A global allocator that counts allocations while switched on: how the tests and benches
//! show that the netpoller's steady state allocates nothing.
//!
//! Outside the `unsafe` fence on purpose (`.ci/run` names this file): `GlobalAlloc` is an
//! `unsafe trait`, and this shim only forwards to `System`. Include it with
//! `#[path = ".../counting_alloc.rs"] mod counting_alloc;` and install it with
//! `#[global_allocator] static A: counting_alloc::Counting = counting_alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// The allocator: `System`, plus a counter.
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations count. Per thread, so the test harness's own threads
    /// never show up in the count. `const` and without `Drop`: reading it never allocates.
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// Starts or stops counting the calling thread's allocations.
pub fn counting(on: bool) {
    ON.set(on);
}

fn on() -> bool {
    ON.try_with(Cell::get).unwrap_or(false)
}

/// Allocations (and reallocations) counted so far.
pub fn allocations() -> u64 {
    ALLOCS.load(SeqCst)
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on() {
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
        if on() {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
