//! A task that overflows its stack stops the process with a message that names it.
//!
//! The test binary runs itself again as a child (with `GORT_OVERFLOW_CHILD` set) so the abort
//! happens in the child; the parent checks how the child died and what it said.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use gort::Runtime;

const CHILD: &str = "GORT_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth as u8; 256]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + pad[0] as u64
}

#[inline(never)]
fn big_frame() -> u8 {
    let a = std::hint::black_box([1u8; 1 << 20]);
    a[12345]
}

/// The child's side: overflow a 64 KiB task stack one of two ways.
fn child(kind: &str) {
    let rt = Runtime::builder().workers(2).stack_size(64 * 1024).build().unwrap();
    let kind = kind.to_string();
    rt.block_on(move || {
        // Another task keeps running meanwhile: the overflow must still be reported, and stop
        // the process rather than corrupt anything.
        let _other = gort::go(|| {
            loop {
                gort::time::sleep(Duration::from_millis(1));
            }
        });
        let h = gort::task::Builder::new().name("deep").go(move || match kind.as_str() {
            "recurse" => recurse(0),
            _ => big_frame() as u64,
        });
        let _ = h.join();
    });
    unreachable!("the overflow should have aborted the process");
}

fn run_child(kind: &str, test: &str) -> (Option<i32>, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, kind)
        .output()
        .expect("run the child");
    (out.status.signal(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn check(kind: &str, test: &str) {
    if let Ok(k) = std::env::var(CHILD) {
        if k == kind {
            child(&k);
        }
        return;
    }
    let (signal, stderr) = run_child(kind, test);
    assert_eq!(signal, Some(libc_sigabrt()), "the child should abort; stderr:\n{stderr}");
    let line = stderr.lines().find(|l| l.contains("overflowed")).unwrap_or_else(|| {
        panic!("no overflow message; stderr:\n{stderr}");
    });
    let ok =
        line.starts_with("gort: task ") && line.ends_with(" (deep) overflowed its 64 KiB stack");
    assert!(ok, "unexpected message: {line:?}");
}

/// SIGABRT's number on Linux (x86_64 and aarch64 alike).
fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn infinite_recursion_in_a_task_is_reported_and_aborts() {
    check("recurse", "infinite_recursion_in_a_task_is_reported_and_aborts");
}

#[test]
fn a_one_mib_local_on_a_64_kib_stack_is_reported_and_aborts() {
    check("array", "a_one_mib_local_on_a_64_kib_stack_is_reported_and_aborts");
}
