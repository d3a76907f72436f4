//! One round of `mpmc_4x4` for each library: 4 senders × 4 receivers through `bounded(64)`,
//! `PER_SENDER` messages each. Shared by `benches/chan.rs` (criterion) and
//! `benches/chan_rounds.rs` (interleaved rounds), so both measure the same code.

/// Messages each sender sends.
pub const PER_SENDER: u64 = 25_000;

/// gort: tasks on `rt` (2 workers).
pub fn gort_round(rt: &gort::Runtime) {
    rt.block_on(|| {
        let (tx, rx) = gort::chan::bounded::<u64>(64);
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let tx = tx.clone();
                gort::go(move || (0..PER_SENDER).for_each(|i| tx.send(i).unwrap()))
            })
            .collect();
        drop(tx);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                gort::go(move || rx.iter().count())
            })
            .collect();
        senders.into_iter().for_each(|h| h.join().unwrap());
        let n: usize = receivers.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(n as u64, 4 * PER_SENDER);
    });
}

/// crossbeam-channel: 8 OS threads.
pub fn crossbeam_round() {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || (0..PER_SENDER).for_each(|i| tx.send(i).unwrap()))
        })
        .collect();
    drop(tx);
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().count())
        })
        .collect();
    senders.into_iter().for_each(|h| h.join().unwrap());
    let n: usize = receivers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(n as u64, 4 * PER_SENDER);
}

/// async-channel: tasks on tokio's multi-thread runtime `rt`.
pub fn async_channel_round(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let (tx, rx) = async_channel::bounded::<u64>(64);
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..PER_SENDER {
                        tx.send(i).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while rx.recv().await.is_ok() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        let mut n = 0;
        for r in receivers {
            n += r.await.unwrap();
        }
        assert_eq!(n as u64, 4 * PER_SENDER);
    });
}
