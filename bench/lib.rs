//! Benchmarks of Mycelix FL, apart from the crates they measure: `aggregators.rs` (criterion,
//! `cargo bench -p mycelix_fl_bench --bench aggregators`) and `peer_bench.rs`, the
//! executable `bench/peers.sh` times against ByzFL and Flower. The library is empty.
