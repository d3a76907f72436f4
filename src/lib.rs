//! # gort: Go's runtime model, rebuilt in Rust from the syscalls up
//!
//! The scheduler, tasks, timers, networking and channels land here issue by issue; the
//! netpoller they stand on is the `reactor` crate.
