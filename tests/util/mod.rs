//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use gort::Runtime;

/// A runtime with `workers` workers.
pub fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime")
}

#[path = "../../src/within.rs"]
mod within_impl;
#[allow(unused_imports)] // not every test binary uses it
pub use within_impl::within;
