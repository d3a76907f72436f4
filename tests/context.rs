//! Context trees, ErrGroup, and a context ending a network wait.

mod util;

use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use gort::context::{self, ContextError};
use gort::net::{TcpListener, TcpStream};
use gort::sync::ErrGroup;
use gort::{chan, go};
use util::{rt, within};

#[test]
fn a_hundred_node_tree_cancelled_concurrently_closes_every_done_and_leaves_no_child() {
    within(Duration::from_secs(60), "context tree", || {
        rt(2).block_on(|| {
            let root = context::background();
            let (top, cancel_top) = context::with_cancel(&root);
            // 10 subtrees of 10 nodes; each node has a waiter parked on its done().
            let mut nodes = Vec::new();
            let mut cancels = Vec::new();
            for _ in 0..10 {
                let (mid, c) = context::with_cancel(&top);
                cancels.push(c);
                for _ in 0..9 {
                    let (leaf, c) = context::with_timeout(&mid, Duration::from_secs(3600));
                    cancels.push(c);
                    nodes.push(leaf);
                }
                nodes.push(mid);
            }
            assert_eq!(nodes.len(), 100);
            let closed = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let (done, closed) = (n.done(), closed.clone());
                    go(move || {
                        assert!(done.recv().is_err(), "done() only ever closes");
                        closed.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            // Cancel some leaves and the top at the same time, from several tasks.
            let mut racers = Vec::new();
            for c in cancels.into_iter().step_by(7) {
                racers.push(go(move || c.cancel()));
            }
            racers.push(go(move || cancel_top.cancel()));
            racers.into_iter().for_each(|h| h.join().unwrap());
            waiters.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(closed.load(SeqCst), 100);
            assert!(nodes.iter().all(|n| n.err() == Some(ContextError::Canceled)));
            assert!(nodes.iter().all(|n| n.children() == 0), "a cancelled node kept children");
            assert_eq!(top.children(), 0, "cancelled children were not removed from the parent");
            assert_eq!(root.children(), 0);
            assert_eq!(root.err(), None, "cancelling a child never cancels its parent");
        })
    });
}

#[test]
fn deadlines_cancel_with_deadline_exceeded_not_early() {
    rt(2).block_on(|| {
        let root = context::background();
        let t = Instant::now();
        let (ctx, _c) = context::with_timeout(&root, Duration::from_millis(40));
        assert!(ctx.done().recv().is_err());
        assert!(t.elapsed() >= Duration::from_millis(40));
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
        let e: std::io::Error = ContextError::DeadlineExceeded.into();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        // A child asking for a later deadline gets the parent's.
        let (parent, _pc) = context::with_timeout(&root, Duration::from_millis(20));
        let (child, _cc) = context::with_timeout(&parent, Duration::from_secs(3600));
        assert_eq!(child.deadline(), parent.deadline());
        child.done().recv().unwrap_err();
        assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
        // Born under a cancelled parent: cancelled at once.
        let (late, _) = context::with_cancel(&parent);
        assert_eq!(late.err(), Some(ContextError::DeadlineExceeded));
    });
}

#[test]
fn done_works_from_plain_threads_and_with_timeouts() {
    let root = context::background();
    let (ctx, cancel) = context::with_cancel(&root);
    let done = ctx.done();
    let waiter = std::thread::spawn(move || done.recv().is_err());
    assert_eq!(
        ctx.done().recv_timeout(Duration::from_millis(20)),
        Err(chan::RecvTimeoutError::Timeout)
    );
    cancel.cancel();
    cancel.cancel(); // twice is harmless
    assert!(waiter.join().unwrap());
}

#[test]
fn after_func_runs_once_on_cancel_unless_stopped() {
    rt(2).block_on(|| {
        let root = context::background();
        let (ctx, cancel) = context::with_cancel(&root);
        let ran = Arc::new(AtomicUsize::new(0));
        let (r1, r2) = (ran.clone(), ran.clone());
        let keep = ctx.after_func(move || {
            r1.fetch_add(1, SeqCst);
        });
        let stopped = ctx.after_func(move || {
            r2.fetch_add(100, SeqCst);
        });
        assert!(stopped.stop());
        cancel.cancel();
        gort::time::sleep(Duration::from_millis(30));
        assert_eq!(ran.load(SeqCst), 1);
        assert!(!keep.stop(), "already ran");
    });
}

#[test]
fn errgroup_returns_the_first_error_and_cancels_its_context() {
    rt(2).block_on(|| {
        let (g, ctx) = ErrGroup::<String>::with_context(&context::background());
        let cancelled_seen = Arc::new(AtomicUsize::new(0));
        for i in 0..10 {
            let (ctx, seen) = (ctx.clone(), cancelled_seen.clone());
            g.go(move || {
                if i == 3 {
                    gort::time::sleep(Duration::from_millis(10));
                    return Err(format!("task {i} failed"));
                }
                // The others wait for the group's context to end.
                let _ = ctx.done().recv();
                seen.fetch_add(1, SeqCst);
                Ok(())
            });
        }
        assert_eq!(g.wait(), Err("task 3 failed".to_string()));
        assert_eq!(cancelled_seen.load(SeqCst), 9);
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
        // All good: Ok.
        let g = ErrGroup::<String>::new();
        for _ in 0..5 {
            g.go(|| Ok(()));
        }
        assert_eq!(g.wait(), Ok(()));
    });
}

#[test]
fn a_context_ends_a_connect_and_a_blocked_read() {
    rt(2).block_on(|| {
        // connect_context against a listener that exists: fine.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let root = context::background();
        let c = TcpStream::connect_context(&root, a).unwrap();
        let (s, _) = l.accept().unwrap();
        // A cancelled context refuses at once.
        let (dead, cancel) = context::with_cancel(&root);
        cancel.cancel();
        let e = TcpStream::connect_context(&dead, a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
        // Go's recipe to end a blocked read: a past deadline from after_func.
        let (ctx, cancel) = context::with_cancel(&root);
        let c = Arc::new(c);
        let c2 = c.clone();
        let _watch = ctx.after_func(move || {
            let _ = c2.set_read_deadline(Some(Instant::now()));
        });
        let reader = go(move || (&*c).read(&mut [0u8; 8]).unwrap_err().kind());
        gort::time::sleep(Duration::from_millis(20));
        cancel.cancel();
        assert_eq!(reader.join().unwrap(), ErrorKind::TimedOut);
        drop(s);
    });
}
