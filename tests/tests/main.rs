//! The sweettest scenarios: real conductors on an in-process rendezvous bootstrap/relay.
//!
//! One test binary for all of them, so Holochain (with its `test_utils`) is linked once,
//! not once per scenario. Run them one at a time (each starts several conductors):
//!
//! ```sh
//! cargo test -p mycelix_fl_tests -- --test-threads=1
//! cargo test -p mycelix_fl_tests -- --test-threads=1 rounds::   # one scenario
//! ```

mod common;

mod bench_round;
mod liveness;
mod membership;
mod offline;
mod rejections;
mod rounds;
