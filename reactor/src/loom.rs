//! The atomics of the model-checked state machine: std's normally, loom's under `--cfg loom`.
//!
//! Only [`PollDesc`](crate::PollDesc) goes through this shim: it is pure atomics, so loom can
//! explore every interleaving of prepare, commit, unblock and close (tokio's `src/loom` pattern).

#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicUsize, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, fence};
