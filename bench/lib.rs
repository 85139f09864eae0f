//! Benchmarks of Mycelix FL, apart from the crates they measure: `aggregators.rs` (criterion,
//! `cargo bench -p mycelix_fl_bench --bench aggregators`) and `peer_bench.rs`, the
//! executable `bench/peers.sh` times against ByzFL and Flower. The library holds what the
//! criterion benchmarks share.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs `f` `iters` times and returns the elapsed time (criterion's `iter_custom`),
/// recording the time per call under `key` in `results` for the benchmark's own table.
pub fn timed<K: Ord>(
    results: &Mutex<BTreeMap<K, Vec<f64>>>,
    key: K,
    iters: u64,
    mut f: impl FnMut(),
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    results
        .lock()
        .unwrap()
        .entry(key)
        .or_default()
        .push(elapsed.as_secs_f64() / iters as f64);
    elapsed
}
